package profiles

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/metrics"
	"github.com/tinderbox-boot/tinderbox/internal/problem"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// DefaultDebounce is how long the directory must be quiet before a change
// is loaded: a `git pull` or an editor's save writes several files, or one
// file several times (a temporary file renamed over it), within a few
// milliseconds of each other. 100 ms leaves room for the writer to wait
// several scheduler periods for a CPU on a busy machine (Linux's CFS gives
// each runnable task a turn within 6 to 24 ms) without splitting its burst
// in two loads, and keeps an edit's reload within half a second.
const DefaultDebounce = 100 * time.Millisecond

// Status is how loading the directory goes, for logs and the UI.
type Status struct {
	Dir string
	// LoadedAt is when the set being served was loaded.
	LoadedAt time.Time
	// Machines is the number of machines with a profile in that set.
	Machines int
	// Hash is that set's hash (Set.Hash): replicas serving the same
	// tree show the same one.
	Hash string
	// LastAttempt is when the directory was last loaded, well or not.
	LastAttempt time.Time
	// Err is why the last attempt failed (nil when it succeeded): the set
	// being served is then older than the files. Problems is Err, one
	// problem a line.
	Err      error
	Problems []string
}

// Store serves the last good Set of a profiles directory and reloads it
// when the directory changes (Watch). It is safe for concurrent use.
type Store struct {
	opts     Options
	log      *slog.Logger
	debounce time.Duration

	// writeMu serialises WriteMachine and DeleteMachine: check, write
	// and reload happen as one step, so a precondition compares against
	// the file being replaced.
	writeMu sync.Mutex

	mu      sync.RWMutex
	set     *Set
	status  Status
	reloads *prometheus.CounterVec
	// memo is the last load's parsed layers and renders, which the next
	// load reuses for what did not change (memo.go).
	memo *memo

	lastGood string     // StoreOptions.LastGood
	keepMu   sync.Mutex // one copy at a time
}

// keep saves set's directory as the last good set, when the store keeps
// one, and the renders of its load (m) in the render cache, when there is
// one. A failure is logged: serving goes on, only the fallback is older,
// or the next start renders more.
func (s *Store) keep(set *Set, m *memo) {
	s.keepMu.Lock()
	defer s.keepMu.Unlock()
	if s.lastGood != "" {
		if err := saveLastGood(s.opts.Dir, s.lastGood, set.stamp); err != nil {
			s.log.Warn("profiles: cannot keep a copy of the loaded set for the next start", "dir", s.lastGood, "err", err)
		}
	}
	if s.opts.RenderCache != "" {
		if err := writeRenders(s.opts.RenderCache, m); err != nil {
			s.log.Warn("profiles: cannot keep the renders for the next start", "file", s.opts.RenderCache, "err", err)
		}
	}
}

// StoreOptions configures NewStore beyond what Load needs.
type StoreOptions struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Debounce overrides DefaultDebounce.
	Debounce time.Duration
	// LastGood, when set, is where a copy of the last directory that
	// loaded is kept (under state.dir): written after every good load,
	// and served by NewStore when the directory does not load.
	LastGood string
}

// NewStore loads the directory and returns a store serving it. When the
// directory does not load, it serves the last good set (StoreOptions.
// LastGood) and keeps the problems in Status, as Reload does; with no
// last good set it fails, with every problem.
func NewStore(ctx context.Context, opts Options, sopts StoreOptions) (*Store, error) {
	s := &Store{opts: opts, log: sopts.Logger, debounce: sopts.Debounce, lastGood: sopts.LastGood}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.debounce <= 0 {
		s.debounce = DefaultDebounce
	}
	set, m, err := load(ctx, opts, readRenders(opts.RenderCache, s.log))
	s.memo = m
	if err != nil {
		if s.lastGood == "" {
			return nil, err
		}
		good, gerr := loadLastGood(ctx, opts, s.lastGood)
		if gerr != nil {
			return nil, err
		}
		s.set = good
		s.status = Status{Dir: opts.Dir, LoadedAt: good.loadedAt, Machines: good.Len(), Hash: good.hash, LastAttempt: time.Now(), Err: err}
		for _, e := range problem.Leaves(err) {
			s.status.Problems = append(s.status.Problems, e.Error())
		}
		s.log.Error("profiles: the directory does not load; serving the last good set kept under state.dir until it is fixed",
			"dir", opts.Dir, "last_good", s.lastGood, "hash", good.hash, "problems", len(s.status.Problems), "err", strings.Join(s.status.Problems, "; "))
	} else {
		s.set = set
		s.status = Status{Dir: opts.Dir, LoadedAt: set.loadedAt, Machines: set.Len(), Hash: set.hash, LastAttempt: set.loadedAt}
		s.keep(set, m)
	}
	s.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: "profiles", Name: "reloads_total",
		Help: "Loads of the profiles directory after a change, by result (ok, error: the last good set keeps serving).",
	}, []string{"result"})
	s.reloads.WithLabelValues("ok")
	s.reloads.WithLabelValues("error")
	if sopts.Registerer != nil {
		cs := []prometheus.Collector{
			s.reloads,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: metrics.Namespace, Subsystem: "profiles", Name: "machines",
				Help: "Machines with a profile in the set being served.",
			}, func() float64 { return float64(s.Set().Len()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: metrics.Namespace, Subsystem: "profiles", Name: "last_load_success_timestamp_seconds",
				Help: "When the set being served was loaded, in seconds since the epoch.",
			}, func() float64 { return float64(s.Set().loadedAt.UnixNano()) / 1e9 }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: metrics.Namespace, Subsystem: "profiles", Name: "last_load_ok",
				Help: "1 when the last load of the directory succeeded, 0 when the files on disk have problems and an older set is served.",
			}, func() float64 {
				if s.Status().Err != nil {
					return 0
				}
				return 1
			}),
			setInfo{s},
		}
		for _, c := range cs {
			if err := sopts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("profiles: metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Set returns the set being served.
func (s *Store) Set() *Set {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.set
}

// Status returns how loading goes.
func (s *Store) Status() Status {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.status
}

// Machine returns mac's profile in the set being served.
func (s *Store) Machine(mac machine.MAC) (Profile, bool) { return s.Set().Machine(mac) }

// Machines returns every profile in the set being served, by MAC.
func (s *Store) Machines() []Profile { return s.Set().Machines() }

// Unknown is the policy for machines without a profile.
func (s *Store) Unknown() machine.Unknown { return s.Set().Unknown() }

// Maintenance is the Talos image of a maintenance boot; see
// Set.Maintenance.
func (s *Store) Maintenance() Talos { return s.Set().Maintenance() }

// MaintenanceArgs are the kernel arguments of a maintenance boot; see
// Set.MaintenanceArgs.
func (s *Store) MaintenanceArgs() []string { return s.Set().MaintenanceArgs() }

// Render returns mac's machine config as it is served; see Set.Render.
func (s *Store) Render(ctx context.Context, mac machine.MAC) ([]byte, error) {
	return s.Set().Render(ctx, mac)
}

// Rendered returns mac's machine config as it is served (Set.Render) and
// the hash of the set it comes from (Set.Hash), both of one set: a reload
// in between cannot pair a config with another set's hash.
func (s *Store) Rendered(ctx context.Context, mac machine.MAC) (config []byte, set string, err error) {
	cur := s.Set()
	config, err = cur.Render(ctx, mac)
	return config, cur.hash, err
}

// setInfo is tinderbox_profiles_set_info, an info metric: always 1, with
// the hash of the set being served as its label, so that replicas
// serving different trees show it on one graph. It reads the set at
// scrape time, so an old hash leaves no series behind.
type setInfo struct{ s *Store }

var setInfoDesc = prometheus.NewDesc(metrics.Namespace+"_profiles_set_info",
	"The profile set being served: 1, labelled with its hash (the SHA-256 of its input files by path and content).",
	[]string{"hash"}, nil)

func (i setInfo) Describe(ch chan<- *prometheus.Desc) { ch <- setInfoDesc }

func (i setInfo) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(setInfoDesc, prometheus.GaugeValue, 1, i.s.Set().hash)
}

// Images is every Talos image the served set names; see Set.Images.
func (s *Store) Images() []Image { return s.Set().Images() }

// Dir is the profiles directory.
func (s *Store) Dir() string { return s.opts.Dir }

// Check loads the directory as if the layer file rel (its path under Dir,
// as Options.Overlay names it) held data, or were gone when data is nil,
// and returns every problem, joined (each a *Problem). Nothing is written
// and the set being served does not change. It blocks while schematic
// names are resolved.
func (s *Store) Check(ctx context.Context, rel string, data []byte) error {
	opts := s.opts
	opts.Overlay = map[string][]byte{rel: data}
	s.mu.RLock()
	prev := s.memo
	s.mu.RUnlock()
	_, _, err := load(ctx, opts, prev)
	return err
}

// Reload loads the directory again, parsing and rendering only what
// changed since the last load (memo.go). On success the new set is
// served; on failure the old one stays and the error is kept in Status.
func (s *Store) Reload(ctx context.Context) error { return s.reload(ctx, "") }

// reload is Reload with the directory's fingerprint taken just before
// ("" to take it now).
func (s *Store) reload(ctx context.Context, stamp string) error {
	s.mu.RLock()
	prev := s.memo
	s.mu.RUnlock()
	set, m, err := loadStamped(ctx, s.opts, prev, stamp)
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: not a verdict on the files
	}
	now := time.Now()
	s.mu.Lock()
	s.memo = m
	s.status.LastAttempt = now
	s.status.Err = err
	s.status.Problems = nil
	if err != nil {
		for _, e := range problem.Leaves(err) {
			s.status.Problems = append(s.status.Problems, e.Error())
		}
	} else {
		s.set = set
		s.status.LoadedAt = set.loadedAt
		s.status.Machines = set.Len()
		s.status.Hash = set.hash
	}
	probs := s.status.Problems
	s.mu.Unlock()
	if err == nil {
		s.keep(set, m)
	}
	if err != nil {
		s.reloads.WithLabelValues("error").Inc()
		s.log.Error("profiles: the changed directory does not load; still serving the last good set",
			"dir", s.opts.Dir, "hash", s.Set().hash, "problems", len(probs), "err", strings.Join(probs, "; "))
		return err
	}
	s.reloads.WithLabelValues("ok").Inc()
	s.log.Info("profiles loaded", "dir", s.opts.Dir, "machines", set.Len(), "hash", set.hash)
	return nil
}

// Watch reloads the directory whenever something in it changes, once it
// has been quiet for the debounce time. It blocks until ctx is cancelled,
// then returns nil; it fails only when the directory cannot be watched.
//
// The directory is watched by its path, not its inode: its parent is
// watched too, so that a directory moved into place (`mv new profiles`,
// as git checkout of a parent, rsync --delay-updates or a deploy tool
// does), or removed and created again, is watched anew and loaded.
func (s *Store) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("profiles: watch %s: %w", s.opts.Dir, err)
	}
	defer w.Close()
	dir, err := filepath.Abs(s.opts.Dir)
	if err != nil {
		return fmt.Errorf("profiles: watch %s: %w", s.opts.Dir, err)
	}
	parent := filepath.Dir(dir)
	watchTree := func() error {
		if err := w.Add(dir); err != nil {
			return err
		}
		for _, sub := range subdirs {
			// A missing subdirectory is added when it appears.
			_ = w.Add(filepath.Join(dir, sub))
		}
		return nil
	}
	if err := watchTree(); err != nil {
		return fmt.Errorf("profiles: watch %s: %w", s.opts.Dir, err)
	}
	if parent != dir {
		if err := w.Add(parent); err != nil {
			s.log.Warn("profiles: cannot watch the directory's parent; a directory moved into place will not be seen until restart",
				"dir", parent, "err", err)
		}
	}
	timer := time.NewTimer(0)
	<-timer.C
	// A change between the first load and the watch would go unseen.
	if stamp, err := fingerprint(s.opts.Dir); err != nil || stamp != s.Set().stamp {
		timer.Reset(0)
	}
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			evDir := filepath.Dir(ev.Name)
			if evDir == parent && parent != dir {
				if ev.Name != dir {
					continue // a sibling of the profiles directory
				}
				// The directory itself was replaced, removed or created:
				// watch whatever stands at its path now.
				if err := watchTree(); err != nil && !errors.Is(err, fs.ErrNotExist) {
					s.log.Warn("profiles: watching the replaced directory", "dir", dir, "err", err)
				}
			}
			if ev.Has(fsnotify.Create) && evDir == dir && isSubdir(ev.Name) {
				_ = w.Add(ev.Name)
			}
			timer.Reset(s.debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflowed event queue loses changes: reload to be sure.
			s.log.Warn("profiles: watching the directory", "dir", s.opts.Dir, "err", err)
			timer.Reset(s.debounce)
		case <-timer.C:
			stamp, err := fingerprint(s.opts.Dir)
			if err == nil && stamp == s.Set().stamp && s.Status().Err == nil {
				continue // touched, not changed
			}
			if err != nil {
				stamp = "" // the load finds the problem again and reports it
			}
			_ = s.reload(ctx, stamp)
		}
	}
}

var subdirs = []string{"groups", "machines", "schematics", "configs", "patches"}

func isSubdir(path string) bool {
	for _, s := range subdirs {
		if filepath.Base(path) == s {
			return true
		}
	}
	return false
}

// fingerprint sums the names, sizes and modification times of the
// directory's files, to tell a change from a touch. Symbolic links are
// followed, directories too, so that a swap of the link they point through
// counts as a change: that is how kubelet updates a ConfigMap or Secret
// volume (files are links through "..data", itself a link swapped to a new
// timestamped directory), and how many deploy tools switch releases.
func fingerprint(dir string) (string, error) {
	h := sha256.New()
	seen := map[string]bool{}
	var walk func(path, name string) error
	walk = func(path, name string) error {
		return filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel := filepath.Join(name, strings.TrimPrefix(p, path))
			if p != path && strings.HasPrefix(d.Name(), ".") {
				// .git, editor swap files, kubelet's ..data: not profiles
				// themselves (what links through ..data is followed below).
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			info, err := os.Stat(p) // follows links
			if err != nil {
				return err
			}
			if info.IsDir() {
				if d.Type()&fs.ModeSymlink == 0 {
					return nil // WalkDir goes on into it
				}
				real, err := filepath.EvalSymlinks(p)
				if err != nil || seen[real] {
					return err // a link back up the tree: once is enough
				}
				seen[real] = true
				fmt.Fprintf(h, "%s\x00->%s\n", rel, real)
				return walk(p+string(filepath.Separator), rel)
			}
			fmt.Fprintf(h, "%s\x00%d\x00%d\n", rel, info.Size(), info.ModTime().UnixNano())
			return nil
		})
	}
	err := walk(dir, "")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", &Problem{File: dir, Msg: "profiles directory: " + err.Error()}
		}
		return "", fmt.Errorf("profiles: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
