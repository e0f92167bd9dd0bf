package admin

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/ipxe"
	"github.com/tinderbox-boot/tinderbox/internal/version"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
)

// Cache is the asset cache as the API uses it. *cache.Cache implements it.
type Cache interface {
	List() []cache.Entry
	Size() int64
	Prefetch(ctx context.Context, targets []cache.Target, progress func(k cache.Key, done, total int64)) ([]cache.Entry, error)
}

// Factory is the Image Factory client as the status uses it.
// *factory.Client implements it.
type Factory interface {
	URL() string
	Versions(ctx context.Context) ([]string, error)
}

// factoryTimeout bounds the reachability probe, so a status page does not
// hang on a factory that does not answer.
const factoryTimeout = 3 * time.Second

// FactoryStatus asks the Image Factory for its versions, for at most
// three seconds, to tell whether it answers.
func (a *API) FactoryStatus(ctx context.Context) api.FactoryStatus {
	if a.opts.Factory == nil {
		return api.FactoryStatus{Error: "no Image Factory configured"}
	}
	ctx, cancel := context.WithTimeout(ctx, factoryTimeout)
	defer cancel()
	st := api.FactoryStatus{URL: a.opts.Factory.URL()}
	vs, err := a.opts.Factory.Versions(ctx)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.Reachable, st.Versions = true, len(vs)
	return st
}

func (p *prefetchState) get() api.PrefetchState {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.PrefetchState
	s.Targets = slices.Clone(s.Targets)
	return s
}

// CacheListing is the asset cache's entries, size and prefetch progress,
// without the factory's status; ok is false when the API has no cache.
func (a *API) CacheListing() (l api.CacheListing, ok bool) {
	if a.opts.Cache == nil {
		return api.CacheListing{}, false
	}
	entries := a.opts.Cache.List()
	l = api.CacheListing{Entries: make([]api.CacheEntry, 0, len(entries)), Size: a.opts.Cache.Size(), Prefetch: a.prefetch.get()}
	for _, e := range entries {
		l.Entries = append(l.Entries, api.CacheEntry{
			Schematic: e.Schematic, Version: e.Version, File: e.File,
			Size: e.Size, SHA256: e.SHA256, Fetched: e.Fetched, LastUsed: e.LastUsed,
		})
	}
	return l, true
}

func (a *API) cacheList(w http.ResponseWriter, r *http.Request) {
	out, ok := a.CacheListing()
	if !ok {
		WriteError(w, http.StatusNotImplemented, "this server has no asset cache")
		return
	}
	if r.URL.Query().Get("factory") != "" {
		f := a.FactoryStatus(r.Context())
		out.Factory = &f
	}
	writeJSON(w, http.StatusOK, out)
}

// PrefetchTargets is every Talos image the profiles name, each once.
func (a *API) PrefetchTargets() []cache.Target {
	return cache.TargetsOf(a.opts.Profiles.Images())
}

// prefetchTimeout bounds a background prefetch: several hundred MiB from
// the factory, one asset after the other.
const prefetchTimeout = 30 * time.Minute

// cachePrefetch starts fetching every image the profiles name into the
// cache, in the background, and answers 202 at once; GET /api/v1/cache
// shows the progress. A second call while one runs answers 409.
func (a *API) cachePrefetch(w http.ResponseWriter, _ *http.Request) {
	if a.opts.Cache == nil {
		WriteError(w, http.StatusNotImplemented, "this server has no asset cache")
		return
	}
	targets := a.PrefetchTargets()
	if len(targets) == 0 {
		WriteError(w, http.StatusUnprocessableEntity, "the profiles name no Talos version and schematic to prefetch")
		return
	}
	p := &a.prefetch
	p.mu.Lock()
	if p.Running {
		p.mu.Unlock()
		WriteError(w, http.StatusConflict, "a prefetch is already running")
		return
	}
	now := time.Now()
	p.PrefetchState = api.PrefetchState{Running: true, Started: &now}
	for _, t := range targets {
		p.Targets = append(p.Targets, t.String())
	}
	out := p.PrefetchState
	p.mu.Unlock()
	go func() {
		// Not the request's context: the fetch outlives the call.
		ctx, cancel := context.WithTimeout(context.Background(), prefetchTimeout)
		defer cancel()
		entries, err := a.opts.Cache.Prefetch(ctx, targets, nil)
		end := time.Now()
		p.mu.Lock()
		p.Running, p.Finished, p.Fetched = false, &end, len(entries)
		if err != nil {
			p.Error = err.Error()
		}
		p.mu.Unlock()
		if err != nil {
			a.log.Warn("prefetch from the admin API", "err", err)
		} else {
			a.log.Info("prefetch from the admin API done", "assets", len(entries))
		}
	}()
	writeJSON(w, http.StatusAccepted, out)
}

// Status is what GET /api/v1/status answers: version, health, listeners,
// counters, iPXE binaries, profiles, binding and the factory (probed, so it may
// take up to three seconds).
func (a *API) Status(ctx context.Context) api.Status {
	st := api.Status{Version: version.Version, Commit: version.Commit, Listeners: a.opts.Listeners, Counters: a.counters(), Factory: a.FactoryStatus(ctx)}
	if st.Listeners == nil {
		st.Listeners = []api.Listener{}
	}
	if a.opts.Binding != nil {
		st.Binding = a.opts.Binding()
	}
	if st.Binding.RoutedNetworks == nil {
		st.Binding.RoutedNetworks = []string{}
	}
	if a.opts.Hub != nil {
		st.Events = a.opts.Hub.Subscribers()
	}
	if a.opts.Health != nil {
		h := a.opts.Health()
		st.Health = &h
	}
	all := a.opts.IPXEFiles
	if all == nil {
		all = append(ipxe.Required(ipxe.SNPOnly), ipxe.EFIArm64)
	}
	st.IPXE = api.IPXEStatus{Dir: a.opts.IPXEDir, Found: []string{}, Missing: ipxe.Missing(a.opts.IPXEDir, all...)}
	for _, f := range all {
		if !slices.Contains(st.IPXE.Missing, f) {
			st.IPXE.Found = append(st.IPXE.Found, f)
		}
	}
	if st.IPXE.Missing == nil {
		st.IPXE.Missing = []string{}
	} else {
		st.IPXE.Hint = ipxe.InstallHint
	}
	st.Profiles.Problems = []string{}
	if a.opts.Files != nil {
		ps := a.opts.Files.Status()
		st.Profiles.Dir, st.Profiles.Machines, st.Profiles.Hash = ps.Dir, ps.Machines, ps.Hash
		if err := a.opts.Files.Writable(); err != nil {
			st.Profiles.ReadOnly = err.Error()
		}
		if !ps.LoadedAt.IsZero() {
			st.Profiles.LoadedAt = &ps.LoadedAt
		}
		if !ps.LastAttempt.IsZero() {
			st.Profiles.LastAttempt = &ps.LastAttempt
		}
		if ps.Problems != nil {
			st.Profiles.Problems = ps.Problems
		}
	}
	return st
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.Status(r.Context()))
}

// counters gathers every tinderbox_… counter series.
func (a *API) counters() []api.Counter {
	out := []api.Counter{}
	if a.opts.Gatherer == nil {
		return out
	}
	mfs, err := a.opts.Gatherer.Gather()
	if err != nil {
		a.log.Warn("admin: gather metrics", "err", err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "tinderbox_") || mf.GetType().String() != "COUNTER" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out = append(out, api.Counter{Name: mf.GetName(), Labels: strings.Join(labels, ","), Value: m.GetCounter().GetValue()})
		}
	}
	return out
}
