// Package admin is tinderbox's admin JSON API (docs/api.md), served under
// /api/v1 on the admin listener: the machines tinderbox knows, their profile files,
// rendered configs and boot scripts, re-arming a machine for a reinstall,
// live machine events as server-sent events, the asset cache and the
// daemon's status. Its JSON shapes are in pkg/api. Every call needs the
// bearer token, except on a loopback listener configured without one,
// where state changes must not come from another site; the web UI
// (internal/webui), built on this API, logs in with the token and keeps
// a session cookie, which the API accepts too. Failed token attempts are
// throttled per source address. Hosts.Middleware guards the whole listener
// against DNS rebinding.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/bootflow"
	"github.com/tinderbox-boot/tinderbox/internal/eventhub"
	"github.com/tinderbox-boot/tinderbox/internal/kmsglog"
	"github.com/tinderbox-boot/tinderbox/internal/machineview"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Profiles is what the API needs of the profile set. *profiles.Store
// implements it.
type Profiles interface {
	machineview.Profiles
	// Rendered returns mac's machine config as it is served and the
	// hash of the profile set it comes from (profiles.Set.Hash).
	Rendered(ctx context.Context, mac machine.MAC) (config []byte, set string, err error)
	// Images lists the Talos images the profiles name, for prefetch.
	Images() []profiles.Image
}

// Scripts writes a machine's current boot script without recording it.
// *bootflow.Flow implements it.
type Scripts interface {
	Script(ctx context.Context, mac machine.MAC, uuid, buildarch, remoteIP string, record bool) (bootflow.ScriptResult, error)
}

// Options configures New.
type Options struct {
	// Token is the bearer token; empty disables authentication (allowed
	// only on a loopback listener, which config validation enforces).
	Token    string
	Store    state.Backend
	Profiles Profiles
	Scripts  Scripts
	Logger   *slog.Logger
	// Files is the profiles directory the profile calls edit; nil makes
	// them answer 501.
	Files ProfileFiles
	// Hub carries machine changes to GET /api/v1/events; nil makes the
	// call answer 501. The API publishes to it when a profile changes.
	Hub *eventhub.Hub
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
	// IPXEFiles are the binaries the status looks for in IPXEDir; nil
	// means ipxe.Required(ipxe.SNPOnly) and ipxe.EFIArm64.
	IPXEFiles []string
	// Listeners are the daemon's sockets, for the status.
	Listeners []api.Listener
	// Health reports whether the daemon can boot a machine, for the
	// status; nil leaves the status without it.
	Health func() api.Health
	// Binding reports how boot sessions are bound, for the status; nil
	// reports binding off.
	Binding func() api.BindingStatus
	// Logs holds the machines' received Talos log lines; nil makes the
	// log calls answer 501.
	Logs *kmsglog.Buffer[machine.MAC]
	// StallAfter is reports.stallAfter, for the machines' attention.
	StallAfter time.Duration
	// Gatherer supplies the counters the status shows; nil shows none.
	Gatherer prometheus.Gatherer
	// Clock is the time for login sessions and the failed-attempt
	// throttle; nil means time.Now.
	Clock func() time.Time
}

// API serves /api/v1. It is safe for concurrent use.
type API struct {
	opts     Options
	log      *slog.Logger
	views    machineview.Views
	prefetch prefetchState
	throttle *throttle
	sessions *sessions
}

// New returns the API.
func New(opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &API{
		opts: opts, log: opts.Logger, views: machineview.Views{Records: opts.Store, Profiles: opts.Profiles, StallAfter: opts.StallAfter},
		throttle: newThrottle(opts.Clock), sessions: newSessions(opts.Clock),
	}
}

// maxBody bounds request bodies; the machine calls take none, and a
// profile is a few kilobytes.
const maxBody = 1 << 20

// Mount adds /api/v1 to r.
func (a *API) Mount(r chi.Router) {
	r.Route("/api/v1", func(r chi.Router) {
		r.Use(a.auth, LimitBody)
		r.Get("/machines", a.list)
		r.Get("/machines/{mac}", a.show)
		r.Delete("/machines/{mac}", a.forget)
		r.Get("/machines/{mac}/config", a.config)
		r.Get("/machines/{mac}/config/diff", a.configDiff)
		r.Get("/machines/{mac}/script", a.script)
		r.Post("/machines/{mac}/reinstall", a.reinstall)
		r.Get("/machines/{mac}/profile", a.getProfile)
		r.Put("/machines/{mac}/profile", a.putProfile)
		r.Delete("/machines/{mac}/profile", a.deleteProfile)
		r.Get("/machines/{mac}/logs", a.logs)
		r.Get("/machines/{mac}/logs/stream", a.logStream)
		r.Get("/events", a.events)
		r.Get("/cache", a.cacheList)
		r.Post("/cache/prefetch", a.cachePrefetch)
		r.Get("/status", a.status)
		r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
			WriteError(w, http.StatusNotFound, "no such API call")
		})
		r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
			WriteError(w, http.StatusMethodNotAllowed, "method not allowed for this API call")
		})
	})
}

// LimitBody bounds a request's body to 1 MiB; reading past it fails with
// an *http.MaxBytesError, which the API answers with 413.
func LimitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

// ParseMAC reads the {mac} URL parameter, any spelling machine.ParseMAC
// takes, with or without its colons percent-escaped.
func ParseMAC(r *http.Request) (machine.MAC, error) {
	raw := chi.URLParam(r, "mac")
	if u, err := url.PathUnescape(raw); err == nil {
		raw = u // 52%3A54%3A…: a client that escaped the colons
	}
	return machine.ParseMAC(raw)
}

// machineParam is ParseMAC answering 400 itself when {mac} is not a MAC.
func machineParam(w http.ResponseWriter, r *http.Request) (machine.MAC, bool) {
	mac, err := ParseMAC(r)
	if err != nil {
		WriteError(w, http.StatusBadRequest, err.Error())
		return machine.MAC{}, false
	}
	return mac, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError answers status with an api.Error holding msg.
func WriteError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, api.Error{Error: msg})
}

// internal answers 500 for err (413 for a body over the limit) and logs it.
func (a *API) internal(w http.ResponseWriter, op string, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		WriteError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	a.log.Error("admin: "+op, "err", err)
	WriteError(w, http.StatusInternalServerError, op+": "+err.Error())
}

// notify tells the event streams that mac changed outside the state store
// (its profile was written).
func (a *API) notify(mac machine.MAC) {
	if a.opts.Hub != nil {
		a.opts.Hub.Publish(mac)
	}
}

// prefetchState is the background prefetch's progress, guarded.
type prefetchState struct {
	mu sync.Mutex
	api.PrefetchState
}
