package admin

import (
	"context"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/ipxe"
	"github.com/tinderbox-boot/tinderbox/internal/version"
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

// Listener is one of the daemon's sockets.
type Listener struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
}

// factoryTimeout bounds the reachability probe, so a status page does not
// hang on a factory that does not answer.
const factoryTimeout = 3 * time.Second

// FactoryStatus says whether the Image Factory answers.
type FactoryStatus struct {
	URL       string `json:"url"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// Versions is how many Talos versions it offers.
	Versions int `json:"versions,omitempty"`
}

func (a *API) factoryStatus(ctx context.Context) FactoryStatus {
	if a.opts.Factory == nil {
		return FactoryStatus{Error: "no Image Factory configured"}
	}
	ctx, cancel := context.WithTimeout(ctx, factoryTimeout)
	defer cancel()
	st := FactoryStatus{URL: a.opts.Factory.URL()}
	vs, err := a.opts.Factory.Versions(ctx)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.Reachable, st.Versions = true, len(vs)
	return st
}

// CacheListing is the answer of GET /api/v1/cache.
type CacheListing struct {
	Entries  []cache.Entry `json:"entries"`
	Size     int64         `json:"size"`
	Prefetch PrefetchState `json:"prefetch"`
	// Factory is filled only with ?factory=1: probing it takes time.
	Factory *FactoryStatus `json:"factory,omitempty"`
}

// PrefetchState is the background prefetch's progress.
type PrefetchState struct {
	Running  bool       `json:"running"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	Targets  []string   `json:"targets,omitempty"`
	Fetched  int        `json:"fetched"`
	Error    string     `json:"error,omitempty"`
}

type prefetchState struct {
	mu sync.Mutex
	PrefetchState
}

func (p *prefetchState) get() PrefetchState {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.PrefetchState
	s.Targets = slices.Clone(s.Targets)
	return s
}

func (a *API) cacheList(w http.ResponseWriter, r *http.Request) {
	if a.opts.Cache == nil {
		writeError(w, http.StatusNotImplemented, "this server has no asset cache")
		return
	}
	out := CacheListing{Entries: a.opts.Cache.List(), Size: a.opts.Cache.Size(), Prefetch: a.prefetch.get()}
	if r.URL.Query().Get("factory") != "" {
		f := a.factoryStatus(r.Context())
		out.Factory = &f
	}
	writeJSON(w, http.StatusOK, out)
}

// prefetchTargets is every Talos image the profiles name: each machine's
// and the maintenance image, once each.
func (a *API) prefetchTargets() []cache.Target {
	var out []cache.Target
	add := func(version, schematic string, arch machine.Arch) {
		if version == "" || schematic == "" {
			return
		}
		if arch == "" {
			arch = machine.ArchAMD64
		}
		t := cache.Target{Schematic: schematic, Version: version, Arch: arch}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	for _, p := range a.opts.Profiles.Machines() {
		add(p.Talos.Version, p.Talos.SchematicID, p.Talos.Arch)
	}
	m := a.opts.Profiles.Maintenance()
	add(m.Version, m.SchematicID, m.Arch)
	return out
}

// prefetchContext bounds a background prefetch: several hundred MiB from
// the factory, one asset after the other.
const prefetchTimeout = 30 * time.Minute

// cachePrefetch starts fetching every image the profiles name into the
// cache, in the background, and answers 202 at once; GET /api/v1/cache
// shows the progress. A second call while one runs answers 409.
func (a *API) cachePrefetch(w http.ResponseWriter, _ *http.Request) {
	if a.opts.Cache == nil {
		writeError(w, http.StatusNotImplemented, "this server has no asset cache")
		return
	}
	targets := a.prefetchTargets()
	if len(targets) == 0 {
		writeError(w, http.StatusUnprocessableEntity, "the profiles name no Talos version and schematic to prefetch")
		return
	}
	p := &a.prefetch
	p.mu.Lock()
	if p.Running {
		p.mu.Unlock()
		writeError(w, http.StatusConflict, "a prefetch is already running")
		return
	}
	now := time.Now()
	p.PrefetchState = PrefetchState{Running: true, Started: &now}
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

// Status is the answer of GET /api/v1/status.
type Status struct {
	Version   string        `json:"version"`
	Commit    string        `json:"commit"`
	Listeners []Listener    `json:"listeners"`
	Counters  []Counter     `json:"counters"`
	IPXE      IPXEStatus    `json:"ipxe"`
	Profiles  ProfileStatus `json:"profiles"`
	Factory   FactoryStatus `json:"factory"`
	Events    int           `json:"eventSubscribers"`
}

// IPXEStatus lists the boot binaries found in ipxe.dir and those missing.
type IPXEStatus struct {
	Dir     string   `json:"dir"`
	Found   []string `json:"found"`
	Missing []string `json:"missing"`
	Hint    string   `json:"hint,omitempty"`
}

// ProfileStatus is how loading the profiles directory goes.
type ProfileStatus struct {
	Dir         string     `json:"dir"`
	Machines    int        `json:"machines"`
	LoadedAt    *time.Time `json:"loadedAt,omitempty"`
	LastAttempt *time.Time `json:"lastAttempt,omitempty"`
	// Problems are why the files on disk do not load; the set loaded at
	// LoadedAt keeps serving meanwhile.
	Problems []string `json:"problems"`
}

// Counter is one tinderbox counter series.
type Counter struct {
	Name   string  `json:"name"`
	Labels string  `json:"labels,omitempty"`
	Value  float64 `json:"value"`
}

func (a *API) statusOf(ctx context.Context) Status {
	st := Status{Version: version.Version, Commit: version.Commit, Listeners: a.opts.Listeners, Counters: a.counters(), Factory: a.factoryStatus(ctx)}
	if st.Listeners == nil {
		st.Listeners = []Listener{}
	}
	if a.opts.Hub != nil {
		st.Events = a.opts.Hub.Subscribers()
	}
	all := append(slices.Clone(ipxe.Required), ipxe.EFIArm64)
	st.IPXE = IPXEStatus{Dir: a.opts.IPXEDir, Found: []string{}, Missing: ipxe.Missing(a.opts.IPXEDir, all...)}
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
		st.Profiles.Dir, st.Profiles.Machines = ps.Dir, ps.Machines
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
	writeJSON(w, http.StatusOK, a.statusOf(r.Context()))
}

// counters gathers every tinderbox_… counter series.
func (a *API) counters() []Counter {
	out := []Counter{}
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
			out = append(out, Counter{Name: mf.GetName(), Labels: strings.Join(labels, ","), Value: m.GetCounter().GetValue()})
		}
	}
	return out
}
