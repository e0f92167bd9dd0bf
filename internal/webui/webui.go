// Package webui is tinderbox's web UI on the admin listener: server-rendered
// pages (machines, one machine with its boot timeline and profile editor,
// the asset cache, the daemon's status, login) from the templates and
// static files package web embeds. The pages' scripts call the JSON API
// (internal/admin) for every change and follow its event stream; the UI
// shares the API's token: its login page checks it and sets the API's
// session cookie.
package webui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/go-chi/chi/v5"

	"github.com/tinderbox-boot/tinderbox/internal/admin"
	"github.com/tinderbox-boot/tinderbox/internal/machineview"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
	"github.com/tinderbox-boot/tinderbox/web"
)

// Profiles is what the pages read of the profiles. *profiles.Store
// implements it.
type Profiles interface {
	machineview.Profiles
	// Maintenance is the maintenance image defaults.yaml names, which a
	// new profile's template shows.
	Maintenance() profiles.Talos
	// Render returns mac's machine config as it is served.
	Render(ctx context.Context, mac machine.MAC) ([]byte, error)
}

// Files reads machine profile files for the editor. *profiles.Store
// implements it.
type Files interface {
	MachineFile(mac machine.MAC) (profiles.MachineFile, error)
	// Writable is nil when the editor can save, else why it cannot.
	Writable() error
}

// Options configures New.
type Options struct {
	// API is the JSON API the pages are built on: its token guards them,
	// and it gives the status and the cache's state. Required.
	API      *admin.API
	Records  machineview.Records
	Profiles Profiles
	// Files, when set, puts a profile editor on the machine page.
	Files  Files
	Logger *slog.Logger
	// StallAfter is reports.stallAfter, for the machines' attention.
	StallAfter time.Duration
}

// UI serves the pages. It is safe for concurrent use.
type UI struct {
	opts  Options
	log   *slog.Logger
	views machineview.Views
	pages map[string]*template.Template
}

// New parses the embedded templates and returns the UI.
func New(opts Options) *UI {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &UI{opts: opts, log: opts.Logger, views: machineview.Views{Records: opts.Records, Profiles: opts.Profiles, StallAfter: opts.StallAfter}, pages: loadPages()}
}

var pageNames = []string{"machines", "machine", "cache", "status", "login"}

var funcs = template.FuncMap{
	"when": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
	},
	"at": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"bytes": func(n int64) string { return humanize.IBytes(uint64(max(n, 0))) },
	// healthClass is the badge class of a health status.
	"healthClass": func(s api.HealthStatus) string {
		switch s {
		case api.HealthOK:
			return "ok"
		case api.HealthDegraded:
			return "warn"
		}
		return "bad"
	},
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12] + "…"
		}
		return s
	},
}

// loadPages parses the embedded templates, one set per page over the
// shared layout; a broken template is a programming error caught by
// every test.
func loadPages() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, n := range pageNames {
		out[n] = template.Must(template.New(n).Funcs(funcs).ParseFS(web.FS, "templates/layout.html", "templates/"+n+".html"))
	}
	return out
}

// page is what every template sees.
type page struct {
	Title string
	Nav   string
	// Auth is true when the listener needs a token (a logout button).
	Auth bool
	Data any
}

func (u *UI) render(w http.ResponseWriter, status int, name, title string, data any) {
	var b bytes.Buffer
	if err := u.pages[name].ExecuteTemplate(&b, "layout", page{Title: title, Nav: name, Auth: !u.opts.API.Open(), Data: data}); err != nil {
		u.log.Error("webui: render page", "page", name, "err", err)
		http.Error(w, "rendering the page failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// Mount adds the pages, the static files and login/logout to r.
func (u *UI) Mount(r chi.Router) {
	static, err := fs.Sub(web.FS, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the folder
	}
	r.Group(func(r chi.Router) {
		r.Use(headers)
		r.Handle("/static/*", http.StripPrefix("/static/", http.FileServerFS(static)))
		r.Get("/login", u.loginPage)
		r.With(admin.LimitBody).Post("/login", u.login)
		r.Post("/logout", u.logout)
		r.Group(func(r chi.Router) {
			r.Use(u.auth)
			r.Get("/", u.machinesPage)
			r.Get("/machines/{mac}", u.machinePage)
			r.Get("/cache", u.cachePage)
			r.Get("/status", u.statusPage)
		})
	})
}

// headers keeps the pages out of frames and other sites' scripts: the
// pages load only their own files.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// auth sends a browser without a session to the login page.
func (u *UI) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch u.opts.API.Authenticate(r) {
		case admin.AuthNone, admin.AuthThrottled:
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type loginData struct {
	Next, Error string
	Open        bool
}

// LocalNext returns next when it is a path of this site, else "/": it
// keeps the post-login redirect from leaving the site. A local path
// starts with a single "/" (not "//" or "/\", which browsers read as
// another host), parses as a URL with neither scheme nor host, and holds
// no backslash or ASCII control character, raw or percent-decoded (browsers
// drop a TAB or newline from a URL, so "/\t/evil.example" would become
// "//evil.example").
func LocalNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, `/\`) || badURLChars(next) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") || badURLChars(u.Path) {
		return "/"
	}
	if q, err := url.QueryUnescape(u.RawQuery); err != nil || badURLChars(q) {
		return "/"
	}
	return next
}

// badURLChars says s holds a backslash or an ASCII control character
// (TAB and newline included).
func badURLChars(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r == '\\' || r < 0x20 || r == 0x7f })
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	u.render(w, http.StatusOK, "login", "Log in", loginData{Next: LocalNext(r.URL.Query().Get("next")), Open: u.opts.API.Open()})
}

// login checks the token from the form and starts a session, kept in the
// cookie. The form must come from this origin (a login from another site
// would log the browser into the attacker's session of nothing, but
// refuse it all the same). Wrong tokens are throttled per address by the
// API (429 with Retry-After).
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	next := LocalNext(r.FormValue("next"))
	if !admin.SameOrigin(r) {
		admin.RefuseCrossSite(w)
		return
	}
	if u.opts.API.Open() {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	cookie, err := u.opts.API.Login(r, r.FormValue("token"))
	var throttled *admin.ThrottledError
	switch {
	case errors.As(err, &throttled):
		w.Header().Set("Retry-After", strconv.Itoa(throttled.Seconds()))
		u.render(w, http.StatusTooManyRequests, "login", "Log in", loginData{Next: next, Error: fmt.Sprintf("Too many wrong tokens from your address: try again in %d s.", throttled.Seconds())})
		return
	case err != nil:
		u.render(w, http.StatusUnauthorized, "login", "Log in", loginData{Next: next, Error: "That token is not the one in admin.tokenFile."})
		return
	}
	http.SetCookie(w, cookie)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session and clears the cookie.
func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	if !admin.SameOrigin(r) {
		admin.RefuseCrossSite(w)
		return
	}
	http.SetCookie(w, u.opts.API.Logout(r))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
