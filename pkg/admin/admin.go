// Package admin is tinderbox's JSON admin API (CONTRACT §6) under /api/v1:
// the machines tinderbox knows, their rendered configs and boot scripts,
// and re-arming a machine for a reinstall. Every call needs the bearer
// token, except on a loopback listener configured without one.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tinderbox-boot/tinderbox/pkg/bootflow"
	"github.com/tinderbox-boot/tinderbox/pkg/state"
)

// Profiles is what the admin API needs of the profile set.
type Profiles interface {
	bootflow.Profiles
	// MACs lists the machines that have a profile.
	MACs() []string
}

// Scripts writes a machine's current boot script without recording it.
type Scripts interface {
	Script(ctx context.Context, mac, uuid, buildarch, remoteIP string, record bool) (bootflow.ScriptResult, error)
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
}

// API serves /api/v1. It is safe for concurrent use.
type API struct {
	opts Options
	log  *slog.Logger
}

// New returns the API.
func New(opts Options) *API { return &API{opts: opts, log: opts.Logger} }

// maxBody bounds request bodies; the machine calls take none, and a
// profile is a few kilobytes.
const maxBody = 1 << 20

// Mount adds /api/v1 to r.
func (a *API) Mount(r chi.Router) {
	r.Route("/api/v1", func(r chi.Router) {
		r.Use(a.auth, limitBody)
		r.Get("/machines", a.list)
		r.Get("/machines/{mac}", a.show)
		r.Delete("/machines/{mac}", a.forget)
		r.Get("/machines/{mac}/config", a.config)
		r.Get("/machines/{mac}/script", a.script)
		r.Post("/machines/{mac}/reinstall", a.reinstall)
		r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusNotFound, "no such API call")
		})
	})
}

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

func (a *API) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.opts.Token == "" {
			next.ServeHTTP(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(a.opts.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tinderbox"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Machine is one row of GET /api/v1/machines.
type Machine struct {
	MAC       string     `json:"mac"`
	Hostname  string     `json:"hostname"`
	State     string     `json:"state"`
	Arch      string     `json:"arch"`
	UUID      string     `json:"uuid"`
	IP        string     `json:"ip"`
	FirstSeen *time.Time `json:"firstSeen"`
	LastSeen  *time.Time `json:"lastSeen"`
	Profile   bool       `json:"profile"`
	// LastStep is the newest boot event's kind, "" when it never booted.
	LastStep string `json:"lastStep"`
	// Events is set only by GET /api/v1/machines/{mac}.
	Events []state.Event `json:"events,omitempty"`
}

// view joins a state record (rec, ok) and a profile into the API's shape.
// A machine with a profile that never booted shows the state it would start in.
func (a *API) view(mac string, rec state.Machine, recorded bool) (Machine, error) {
	prof, known, err := a.opts.Profiles.Lookup(mac)
	if err != nil {
		return Machine{}, err
	}
	m := Machine{MAC: mac, Hostname: prof.Hostname, Profile: known}
	if recorded {
		m.State, m.Arch, m.UUID, m.IP = string(rec.State), rec.Arch, rec.UUID, rec.IP
		m.FirstSeen, m.LastSeen = &rec.FirstSeen, &rec.LastSeen
		if n := len(rec.Events); n > 0 {
			m.LastStep = string(rec.Events[n-1].Kind)
		}
	} else {
		m.State = string(state.Reconcile("", known, prof.Install))
		m.Arch = prof.Arch
	}
	return m, nil
}

func (a *API) list(w http.ResponseWriter, _ *http.Request) {
	recs, err := a.opts.Store.List()
	if err != nil {
		a.internal(w, "list machines", err)
		return
	}
	out := make([]Machine, 0, len(recs))
	seen := map[string]bool{}
	for _, r := range recs {
		m, err := a.view(r.MAC, r, true)
		if err != nil {
			a.internal(w, "list machines", err)
			return
		}
		out = append(out, m)
		seen[r.MAC] = true
	}
	for _, mac := range a.opts.Profiles.MACs() {
		if seen[mac] {
			continue
		}
		m, err := a.view(mac, state.Machine{}, false)
		if err != nil {
			a.internal(w, "list machines", err)
			return
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(x, y Machine) int { return strings.Compare(x.MAC, y.MAC) })
	writeJSON(w, http.StatusOK, out)
}

// machineParam normalises {mac}; it answers 400 itself when it is not a MAC.
func machineParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	mac, err := state.NormalizeMAC(chi.URLParam(r, "mac"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	return mac, true
}

// lookup returns the machine's view; it answers 404 itself for a MAC with
// neither a record nor a profile.
func (a *API) lookup(w http.ResponseWriter, mac string) (Machine, state.Machine, bool) {
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
		writeError(w, http.StatusNotFound, "no machine "+mac+": it has neither booted through tinderbox nor a profile")
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
			m.Events = []state.Event{}
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
		writeError(w, http.StatusNotFound, "no state recorded for "+mac)
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
		m.Events = append(m.Events, a.opts.Store.Event(state.EventReinstall, "", 0))
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
	if _, known, err := a.opts.Profiles.Lookup(mac); err != nil || !known {
		writeError(w, http.StatusNotFound, "no profile for "+mac)
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
	// Problems lists every problem, for validation failures.
	Problems []string `json:"problems,omitempty"`
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
