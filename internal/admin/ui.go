package admin

import (
	"bytes"
	"errors"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"go.yaml.in/yaml/v3"

	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
	"github.com/tinderbox-boot/tinderbox/web"
)

// pages are the UI's templates, one set per page over the shared layout.
type pages struct {
	byName map[string]*template.Template
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
	"bytes": humanBytes,
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12] + "…"
		}
		return s
	},
}

// loadPages parses the embedded templates; a broken template is a
// programming error caught by every test.
func loadPages() *pages {
	p := &pages{byName: map[string]*template.Template{}}
	for _, n := range pageNames {
		p.byName[n] = template.Must(template.New(n).Funcs(funcs).ParseFS(web.FS, "templates/layout.html", "templates/"+n+".html"))
	}
	return p
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}

// page is what every template sees.
type page struct {
	Title string
	Nav   string
	// Auth is true when the listener needs a token (a logout button).
	Auth bool
	Data any
}

func (a *API) render(w http.ResponseWriter, status int, name, title string, data any) {
	var b bytes.Buffer
	if err := a.pages.byName[name].ExecuteTemplate(&b, "layout", page{Title: title, Nav: name, Auth: a.opts.Token != "", Data: data}); err != nil {
		a.log.Error("admin: render page", "page", name, "err", err)
		http.Error(w, "rendering the page failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// mountUI adds the pages, the static files and login/logout to r.
func (a *API) mountUI(r chi.Router) {
	static, err := fs.Sub(web.FS, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the folder
	}
	r.Group(func(r chi.Router) {
		r.Use(uiHeaders)
		r.Handle("/static/*", http.StripPrefix("/static/", http.FileServerFS(static)))
		r.Get("/login", a.loginPage)
		r.With(limitBody).Post("/login", a.login)
		r.Post("/logout", a.logout)
		r.Group(func(r chi.Router) {
			r.Use(a.uiAuth)
			r.Get("/", a.machinesPage)
			r.Get("/machines/{mac}", a.machinePage)
			r.Get("/cache", a.cachePage)
			r.Get("/status", a.statusPage)
		})
	})
}

// uiHeaders keeps the pages out of frames and other sites' scripts: the
// pages load only their own files.
func uiHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// uiAuth sends a browser without the cookie to the login page.
func (a *API) uiAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.authenticate(r) == authNone {
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

func (a *API) loginPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, http.StatusOK, "login", "Log in", loginData{Next: localNext(r.URL.Query().Get("next")), Open: a.opts.Token == ""})
}

// login checks the token from the form and keeps it in the cookie. The
// form must come from this origin (a login from another site would log
// the browser into the attacker's session of nothing, but refuse it all
// the same).
func (a *API) login(w http.ResponseWriter, r *http.Request) {
	next := localNext(r.FormValue("next"))
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "cross-site request refused: the UI's calls must come from its own origin")
		return
	}
	if a.opts.Token == "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if !a.tokenOK(r.FormValue("token")) {
		a.render(w, http.StatusUnauthorized, "login", "Log in", loginData{Next: next, Error: "That token is not the one in admin.tokenFile."})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: strings.TrimSpace(r.FormValue("token")), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (a *API) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "cross-site request refused: the UI's calls must come from its own origin")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (a *API) machines() ([]Machine, error) {
	recs, err := a.opts.Store.List()
	if err != nil {
		return nil, err
	}
	out := make([]Machine, 0, len(recs))
	seen := map[machine.MAC]bool{}
	for _, r := range recs {
		m, err := a.view(r.MAC, r, true)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
		seen[r.MAC] = true
	}
	for _, p := range a.opts.Profiles.Machines() {
		if seen[p.MAC] {
			continue
		}
		m, err := a.view(p.MAC, state.Machine{}, false)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sortMachines(out)
	return out, nil
}

func (a *API) machinesPage(w http.ResponseWriter, _ *http.Request) {
	ms, err := a.machines()
	if err != nil {
		a.render(w, http.StatusInternalServerError, "machines", "Machines", map[string]any{"Error": err.Error()})
		return
	}
	a.render(w, http.StatusOK, "machines", "Machines", map[string]any{"Machines": ms, "States": machine.States})
}

// Step is one stage of the boot timeline.
type Step struct {
	Name   string
	Detail string
	Time   time.Time
	Bytes  int64
	Done   bool
}

// stepLabel names an event for people: its boot stage, else its kind in words.
func stepLabel(e machine.Event) string {
	if st := e.Kind.Stage(); st != machine.StageNone {
		return st.String()
	}
	return strings.ReplaceAll(string(e.Kind), "_", " ")
}

// timeline folds a machine's events into the boot's stages: the newest
// event of each stage since the newest DHCP offer (the current boot).
func timeline(events []machine.Event) []Step {
	steps := make([]Step, len(machine.Stages))
	for i, st := range machine.Stages {
		steps[i].Name = st.String()
	}
	start := 0
	for i, e := range events {
		if e.Kind == machine.EventDHCPOffer && (i == 0 || events[i-1].Kind != machine.EventDHCPOffer) {
			start = i
		}
	}
	for _, e := range events[start:] {
		if i := e.Kind.Stage(); i != machine.StageNone {
			steps[i] = Step{Name: steps[i].Name, Detail: e.Detail, Time: e.Time, Bytes: e.Bytes, Done: true}
		}
	}
	return steps
}

type machineData struct {
	Error     string
	Machine   Machine
	Steps     []Step
	Events    []machine.Event
	Profile   string
	ETag      string
	File      string
	Exists    bool
	Editable  bool
	Config    string
	ConfigOK  bool
	ConfigErr string
}

func (a *API) machinePage(w http.ResponseWriter, r *http.Request) {
	raw := chi.URLParam(r, "mac")
	if u, err := url.PathUnescape(raw); err == nil {
		raw = u
	}
	mac, err := machine.ParseMAC(raw)
	if err != nil {
		a.render(w, http.StatusBadRequest, "machine", "Machine", machineData{Error: err.Error()})
		return
	}
	rec, recorded, err := a.opts.Store.Get(mac)
	if err != nil {
		a.render(w, http.StatusInternalServerError, "machine", "Machine", machineData{Error: err.Error()})
		return
	}
	m, err := a.view(mac, rec, recorded)
	if err != nil {
		a.render(w, http.StatusInternalServerError, "machine", "Machine", machineData{Error: err.Error()})
		return
	}
	d := machineData{Machine: m, Steps: timeline(rec.Events), Events: rec.Events}
	if a.opts.Files != nil {
		d.Editable = true
		rel, path := a.profileFile(mac)
		d.File = rel
		b, err := readProfile(path)
		if err != nil {
			a.render(w, http.StatusInternalServerError, "machine", "Machine", machineData{Error: err.Error()})
			return
		}
		if b != nil {
			d.Profile, d.ETag, d.Exists = string(b), etag(b), true
		} else {
			d.Profile = a.newProfile(mac)
		}
	}
	if m.Profile {
		cfg, err := a.opts.Profiles.Render(r.Context(), mac)
		if err != nil {
			d.ConfigErr = err.Error()
		} else {
			d.Config, d.ConfigOK = maskSecrets(cfg), true
		}
	}
	a.render(w, http.StatusOK, "machine", mac.String(), d)
}

// newProfile is the editor's text for a machine without a profile file:
// a hostname from its MAC, and what defaults.yaml gives it, commented, to
// override.
func (a *API) newProfile(mac machine.MAC) string {
	def := a.opts.Profiles.Maintenance()
	var b strings.Builder
	b.WriteString("# New profile for " + mac.String() + ". defaults.yaml applies first;\n")
	b.WriteString("# uncomment a line to override it for this machine.\n")
	b.WriteString("hostname: node-" + strings.ReplaceAll(mac.String()[9:], ":", "") + "\n")
	b.WriteString("# groups: []\n")
	b.WriteString("# talos:\n")
	b.WriteString("#   version: " + orDefault(def.Version, "v1.12.7") + "\n")
	b.WriteString("#   arch: " + orDefault(string(def.Arch), "amd64") + "\n")
	b.WriteString("# install: once\n")
	return b.String()
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// secretWords mark a machine-config key whose value is a secret: Talos
// keeps its CA keys, certificates, join tokens and encryption secrets
// under keys such as key, crt, token, secret, aescbcEncryptionSecret.
var secretWords = []string{"key", "crt", "cert", "token", "secret", "password"}

const masked = "••••••••"

// maskSecrets returns a rendered config with every secret value replaced
// by a mask; text that is not YAML is masked whole.
func maskSecrets(cfg []byte) string {
	dec := yaml.NewDecoder(bytes.NewReader(cfg))
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return masked
		}
		maskNode(&doc, false)
		if err := enc.Encode(&doc); err != nil {
			return masked
		}
	}
	_ = enc.Close()
	return out.String()
}

func maskNode(n *yaml.Node, secret bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		if secret && n.Value != "" {
			n.Value, n.Style, n.Tag = masked, 0, "!!str"
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			maskNode(n.Content[i+1], secret || isSecretKey(n.Content[i].Value))
		}
	default:
		for _, c := range n.Content {
			maskNode(c, secret)
		}
	}
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

func (a *API) cachePage(w http.ResponseWriter, r *http.Request) {
	d := map[string]any{"Enabled": a.opts.Cache != nil, "Factory": a.factoryStatus(r.Context()), "Targets": a.prefetchTargets()}
	if a.opts.Cache != nil {
		d["Entries"], d["Size"], d["Prefetch"] = a.opts.Cache.List(), a.opts.Cache.Size(), a.prefetch.get()
	}
	a.render(w, http.StatusOK, "cache", "Cache", d)
}

func (a *API) statusPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, http.StatusOK, "status", "Status", a.statusOf(r.Context()))
}
