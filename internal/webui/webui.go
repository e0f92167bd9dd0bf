// Package webui is tinderbox's web UI on the admin listener: server-rendered
// pages (machines, one machine with its boot timeline and profile editor,
// the asset cache, the daemon's status, login) from the templates and
// static files package web embeds. The pages' scripts call the JSON API
// (internal/admin) for every change and follow its event stream; the UI
// shares the API's token, as a cookie set by its login page.
package webui

import (
	"bytes"
	"context"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/go-chi/chi/v5"

	"github.com/tinderbox-boot/tinderbox/internal/admin"
	"github.com/tinderbox-boot/tinderbox/internal/machineview"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
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
	return &UI{opts: opts, log: opts.Logger, views: machineview.Views{Records: opts.Records, Profiles: opts.Profiles}, pages: loadPages()}
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

// auth sends a browser without the cookie to the login page.
func (u *UI) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u.opts.API.Authenticate(r) == admin.AuthNone {
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

// localNext keeps a post-login redirect on this site.
func localNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, `/\`) {
		return "/"
	}
	return next
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	u.render(w, http.StatusOK, "login", "Log in", loginData{Next: localNext(r.URL.Query().Get("next")), Open: u.opts.API.Open()})
}

// login checks the token from the form and keeps it in the cookie. The
// form must come from this origin (a login from another site would log
// the browser into the attacker's session of nothing, but refuse it all
// the same).
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	next := localNext(r.FormValue("next"))
	if !admin.SameOrigin(r) {
		admin.RefuseCrossSite(w)
		return
	}
	if u.opts.API.Open() {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if !u.opts.API.TokenOK(r.FormValue("token")) {
		u.render(w, http.StatusUnauthorized, "login", "Log in", loginData{Next: next, Error: "That token is not the one in admin.tokenFile."})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: admin.CookieName, Value: strings.TrimSpace(r.FormValue("token")), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	if !admin.SameOrigin(r) {
		admin.RefuseCrossSite(w)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: admin.CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
