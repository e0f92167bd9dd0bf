// Package admin is tinderbox's admin listener (docs/api.md): the JSON API
// under /api/v1 (the machines tinderbox knows, their profile files,
// rendered configs and boot scripts, re-arming a machine for a reinstall,
// live events as server-sent events, the asset cache, the daemon's status)
// and the web UI at / built on it. Every call needs the bearer token,
// except on a loopback listener configured without one; the UI keeps the
// token in a cookie after its login page.
package admin

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/bootflow"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Profiles is what the admin API needs of the profile set.
type Profiles interface {
	bootflow.Profiles
	// Machines lists every machine's profile, by MAC.
	Machines() []profiles.Profile
}

// Scripts writes a machine's current boot script without recording it.
type Scripts interface {
	Script(ctx context.Context, mac machine.MAC, uuid, buildarch, remoteIP string, record bool) (bootflow.ScriptResult, error)
}

// Options configures New.
type Options struct {
	// Token is the bearer token; empty disables authentication (allowed
	// only on a loopback listener, which config validation enforces).
	Token    string
	Store    *state.Store
	Profiles Profiles
	Scripts  Scripts
	Logger   *slog.Logger
	// Files is the profiles directory the profile calls edit; nil makes
	// them answer 501.
	Files ProfileFiles
	// Hub carries state changes to GET /api/v1/events; nil makes the call
	// answer 501.
	Hub *Hub
	// Heartbeat is how often an idle event stream gets a comment;
	// 0 means DefaultHeartbeat.
	Heartbeat time.Duration
	// Cache is the asset cache GET /api/v1/cache lists; nil makes the
	// cache calls answer 501.
	Cache Cache
	// Factory is asked for its version list to tell whether it answers;
	// nil reports it as not configured.
	Factory Factory
	// IPXEDir is ipxe.dir, whose boot binaries the status lists.
	IPXEDir string
	// Listeners are the daemon's sockets, for the status.
	Listeners []Listener
	// Gatherer supplies the counters the status shows; nil shows none.
	Gatherer prometheus.Gatherer
}

// API serves /api/v1. It is safe for concurrent use.
type API struct {
	opts Options
	log  *slog.Logger
	// writeMu serialises profile writes: check, write and reload happen
	// as one step, so If-Match compares against the file being replaced.
	writeMu  sync.Mutex
	prefetch prefetchState
	pages    *pages
}

// New returns the API.
func New(opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	return &API{opts: opts, log: opts.Logger, pages: loadPages()}
}

// maxBody bounds request bodies; the machine calls take none, and a
// profile is a few kilobytes.
const maxBody = 1 << 20

// Mount adds /api/v1 and the web UI to r.
func (a *API) Mount(r chi.Router) {
	r.Route("/api/v1", func(r chi.Router) {
		r.Use(a.auth, limitBody)
		r.Get("/machines", a.list)
		r.Get("/machines/{mac}", a.show)
		r.Delete("/machines/{mac}", a.forget)
		r.Get("/machines/{mac}/config", a.config)
		r.Get("/machines/{mac}/script", a.script)
		r.Post("/machines/{mac}/reinstall", a.reinstall)
		r.Get("/machines/{mac}/profile", a.getProfile)
		r.Put("/machines/{mac}/profile", a.putProfile)
		r.Delete("/machines/{mac}/profile", a.deleteProfile)
		r.Get("/events", a.events)
		r.Get("/cache", a.cacheList)
		r.Post("/cache/prefetch", a.cachePrefetch)
		r.Get("/status", a.status)
		r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusNotFound, "no such API call")
		})
		r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusMethodNotAllowed, "method not allowed for this API call")
		})
	})
	a.mountUI(r)
}

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

// CookieName is the cookie the UI's login sets: the token itself,
// HttpOnly and SameSite=Strict.
const CookieName = "tinderbox_token"

// auth admits a request with the right bearer token, or with the UI's
// cookie holding it. A state-changing request authenticated by the cookie
// must also come from the UI's own origin (sameOrigin): SameSite=Strict
// keeps the cookie off other sites' requests in current browsers, and the
// origin check covers browsers and proxies that do not honour it. A
// bearer header is never sent by a browser on its own, so it needs no
// such check.
func (a *API) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch a.authenticate(r) {
		case authBearer, authOpen:
		case authCookie:
			if !safeMethod(r.Method) && !sameOrigin(r) {
				writeError(w, http.StatusForbidden, "cross-site request refused: the UI's calls must come from its own origin")
				return
			}
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="tinderbox"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

type authKind int

const (
	authNone authKind = iota
	authOpen
	authBearer
	authCookie
)

func (a *API) authenticate(r *http.Request) authKind {
	if a.opts.Token == "" {
		return authOpen
	}
	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if a.tokenOK(got) {
			return authBearer
		}
		return authNone
	}
	if c, err := r.Cookie(CookieName); err == nil && a.tokenOK(c.Value) {
		return authCookie
	}
	return authNone
}

func (a *API) tokenOK(got string) bool {
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(a.opts.Token)) == 1
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin says the request comes from a page of this listener: its
// Origin names this host, or, without an Origin, the browser's
// Sec-Fetch-Site says same-origin.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host && (u.Scheme == "http" || u.Scheme == "https")
	}
	return r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

// Machine is one row of GET /api/v1/machines.
type Machine struct {
	MAC       machine.MAC   `json:"mac"`
	Hostname  string        `json:"hostname"`
	State     machine.State `json:"state"`
	Arch      machine.Arch  `json:"arch"`
	UUID      string        `json:"uuid"`
	IP        string        `json:"ip"`
	FirstSeen *time.Time    `json:"firstSeen"`
	LastSeen  *time.Time    `json:"lastSeen"`
	Profile   bool          `json:"profile"`
	// LastStep names the newest event for people ("Kernel", "Local boot",
	// "reinstall"), "" when it never booted.
	LastStep string `json:"lastStep"`
	// Events is set only by GET /api/v1/machines/{mac}.
	Events []machine.Event `json:"events,omitempty"`
}

// view joins a state record (rec, ok) and a profile into the API's shape.
// A machine with a profile that never booted shows the state it would start in.
func (a *API) view(mac machine.MAC, rec state.Machine, recorded bool) (Machine, error) {
	prof, known := a.opts.Profiles.Machine(mac)
	m := Machine{MAC: mac, Hostname: prof.Hostname, Profile: known}
	if recorded {
		m.State, m.Arch, m.UUID, m.IP = rec.State, rec.Arch, rec.UUID, rec.IP
		m.FirstSeen, m.LastSeen = &rec.FirstSeen, &rec.LastSeen
		if n := len(rec.Events); n > 0 {
			m.LastStep = stepLabel(rec.Events[n-1])
		}
	} else {
		m.State = state.Reconcile("", known, prof.Install)
		m.Arch = prof.Talos.Arch
	}
	return m, nil
}

func (a *API) list(w http.ResponseWriter, _ *http.Request) {
	out, err := a.machines()
	if err != nil {
		a.internal(w, "list machines", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func sortMachines(ms []Machine) {
	slices.SortFunc(ms, func(x, y Machine) int { return bytes.Compare(x.MAC[:], y.MAC[:]) })
}

// machineParam normalises {mac}; it answers 400 itself when it is not a MAC.
func machineParam(w http.ResponseWriter, r *http.Request) (machine.MAC, bool) {
	raw := chi.URLParam(r, "mac")
	if u, err := url.PathUnescape(raw); err == nil {
		raw = u // 52%3A54%3A…: a client that escaped the colons
	}
	mac, err := machine.ParseMAC(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return machine.MAC{}, false
	}
	return mac, true
}

// lookup returns the machine's view; it answers 404 itself for a MAC with
// neither a record nor a profile.
func (a *API) lookup(w http.ResponseWriter, mac machine.MAC) (Machine, state.Machine, bool) {
	rec, recorded, err := a.opts.Store.Get(mac)
	if err != nil {
		a.internal(w, "get machine", err)
		return Machine{}, rec, false
	}
	m, err := a.view(mac, rec, recorded)
	if err != nil {
		a.internal(w, "get machine", err)
		return Machine{}, rec, false
	}
	if !recorded && !m.Profile {
		writeError(w, http.StatusNotFound, "no machine "+mac.String()+": it has neither booted through tinderbox nor a profile")
		return Machine{}, rec, false
	}
	m.Events = rec.Events
	return m, rec, true
}

func (a *API) show(w http.ResponseWriter, r *http.Request) {
	mac, ok := machineParam(w, r)
	if !ok {
		return
	}
	if m, _, ok := a.lookup(w, mac); ok {
		if m.Events == nil {
			m.Events = []machine.Event{}
		}
		writeJSON(w, http.StatusOK, m)
	}
}

func (a *API) forget(w http.ResponseWriter, r *http.Request) {
	mac, ok := machineParam(w, r)
	if !ok {
		return
	}
	found, err := a.opts.Store.Forget(mac)
	if err != nil {
		a.internal(w, "forget machine", err)
		return
	}
	if !found {
		writeError(w, http.StatusNotFound, "no state recorded for "+mac.String())
		return
	}
	a.log.Info("machine forgotten", "mac", mac)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) reinstall(w http.ResponseWriter, r *http.Request) {
	mac, ok := machineParam(w, r)
	if !ok {
		return
	}
	if _, _, ok := a.lookup(w, mac); !ok {
		return
	}
	rec, err := a.opts.Store.Update(mac, func(m *state.Machine, _ bool) error {
		m.Reinstall()
		m.Events = append(m.Events, a.opts.Store.Event(machine.EventReinstall, "", 0))
		return nil
	})
	if err != nil {
		a.internal(w, "reinstall", err)
		return
	}
	a.log.Info("machine re-armed for reinstall", "mac", mac)
	m, err := a.view(mac, rec, true)
	if err != nil {
		a.internal(w, "reinstall", err)
		return
	}
	m.Events = rec.Events
	writeJSON(w, http.StatusOK, m)
}

func (a *API) config(w http.ResponseWriter, r *http.Request) {
	mac, ok := machineParam(w, r)
	if !ok {
		return
	}
	if _, known := a.opts.Profiles.Machine(mac); !known {
		writeError(w, http.StatusNotFound, "no profile for "+mac.String())
		return
	}
	body, err := a.opts.Profiles.Render(r.Context(), mac)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(body)
}

func (a *API) script(w http.ResponseWriter, r *http.Request) {
	mac, ok := machineParam(w, r)
	if !ok {
		return
	}
	res, err := a.opts.Scripts.Script(r.Context(), mac, "", r.URL.Query().Get("arch"), "", false)
	if err != nil {
		status := res.Status
		if status < 400 {
			status = http.StatusInternalServerError
		}
		writeError(w, status, err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Tinderbox-Action", string(res.Action))
	w.Header().Set("X-Tinderbox-Status", http.StatusText(res.Status))
	_, _ = w.Write([]byte(res.Body))
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
	// Problems lists every problem, for validation failures, each as
	// "file:line: message".
	Problems []string `json:"problems,omitempty"`
	// At gives each of Problems apart, for the UI to show by its line.
	At []ProblemAt `json:"at,omitempty"`
}

// ProblemAt is one validation problem: the file (under the profiles
// directory) and line at fault where known.
type ProblemAt struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Machine string `json:"machine,omitempty"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, Error{Error: msg})
}

func (a *API) internal(w http.ResponseWriter, op string, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	a.log.Error("admin: "+op, "err", err)
	writeError(w, http.StatusInternalServerError, op+": "+err.Error())
}
