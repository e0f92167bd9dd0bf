// Package cache keeps Talos Image Factory assets (kernel, initramfs, kernel
// command line per schematic, version and architecture) on disk under
// cache.dir and serves them: each asset is fetched once, checked, and served
// from disk by every later request.
//
// On disk, each asset is a data file <dir>/<schematic>/<version>/<file>
// beside a sidecar record <file>.json (size, sha256, fetch time, last use).
// Downloads go to a locked temporary file under <dir>/.tmp and are renamed
// into place only after the body was read completely, its size matches the
// announced Content-Length, its first bytes look like the file it claims to
// be, and it was synced to disk: a crash, a cut-off body, a full disk or a
// killed fetch never leaves a partial file that is later served. Leftover
// temporary files are removed when a Cache is opened.
//
// Concurrent requests for a missing asset share one upstream fetch, and each
// is streamed the bytes as they arrive. The fetch belongs to the cache, not
// to a request: a client that goes away does not cancel it for the others.
// A factory's 4xx answer is remembered for a short time (Options.NegativeTTL),
// so a missing asset asked for again does not reach the factory again.
// Entries are evicted least recently used beyond the size limit, those the
// Scope does not want first, and never while they are being served.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/factory"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

const (
	tmpDirName    = ".tmp"
	sidecarSuffix = ".json"
	// copyBuf is the download buffer: large enough that a 100 MB body is
	// a few hundred writes, small enough that waiters see bytes early.
	copyBuf = 256 << 10
	// touchEvery throttles rewriting a sidecar's last-use time on disk; the
	// in-memory value that eviction uses is exact.
	touchEvery = time.Minute
	// maxNegative bounds the remembered 4xx answers. Only wanted assets
	// reach the factory through the boot HTTP route, so a full table means
	// an admin's prefetch of many missing images; the oldest answers go.
	maxNegative = 1024
)

// DefaultNegativeTTL is how long a factory's 4xx answer for an asset is
// remembered: long enough that a rack of nodes retrying a missing asset
// every few seconds asks the factory about once a minute, short enough that
// a version published meanwhile is soon found.
const DefaultNegativeTTL = time.Minute

// Upstream opens an asset's body at its source. size is the announced
// length, or -1. Reads from body must fail, not end early, when the body is
// cut off.
type Upstream func(ctx context.Context, k Key) (body io.ReadCloser, size int64, err error)

// FromFactory fetches assets from an Image Factory.
func FromFactory(c *factory.Client) Upstream {
	return func(ctx context.Context, k Key) (io.ReadCloser, int64, error) {
		d, err := c.Image(ctx, k.Schematic, k.Version, k.File)
		if err != nil {
			return nil, 0, err
		}
		return d, d.Size, nil
	}
}

// Options configures Open.
type Options struct {
	Dir string
	// MaxSize bounds the total size of the cached files; least recently
	// used entries are evicted beyond it. 0: no bound.
	MaxSize  int64
	Upstream Upstream
	// Scope is what the asset route serves and fetches, and what eviction
	// keeps longest; nil wants every asset (the CLI, tests).
	Scope Scope
	// NegativeTTL is how long an upstream 4xx answer (other than 408 and
	// 429) for an asset is remembered and returned without asking again:
	// 0 means DefaultNegativeTTL, a negative value remembers nothing. 5xx
	// answers, timeouts and network errors are never remembered.
	NegativeTTL time.Duration
	// Now is the clock of the remembered answers and of the entries'
	// fetch and last-use times; nil is time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Registerer receives the cache's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Cache is an on-disk asset cache. It is safe for concurrent use, and by
// several processes on the same directory. Close it to stop fetches in
// flight.
type Cache struct {
	dir, tmp string
	maxSize  int64
	upstream Upstream
	scope    Scope
	negTTL   time.Duration
	now      func() time.Time
	log      *slog.Logger
	m        *metricSet
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu      sync.Mutex
	entries map[Key]*entry
	total   int64
	flights map[Key]*flight
	missing map[Key]negative
	closed  bool
}

// negative is a remembered upstream 4xx answer.
type negative struct {
	err   error
	until time.Time
}

type entry struct {
	Entry
	refs    int       // assets open on it: never evicted while > 0
	touched time.Time // last-use time last written to the sidecar
}

// ErrClosed is returned by Open after Close.
var ErrClosed = errors.New("cache: closed")

// Open opens the cache in opts.Dir, creating it if needed, removes what
// crashed or killed fetches left behind (temporary files, data without a
// sidecar record, records whose data is missing or of the wrong size) and
// indexes the entries.
func Open(opts Options) (*Cache, error) {
	if opts.Dir == "" {
		return nil, errors.New("cache: no directory (cache.dir)")
	}
	c := &Cache{
		dir:      opts.Dir,
		tmp:      filepath.Join(opts.Dir, tmpDirName),
		maxSize:  opts.MaxSize,
		upstream: opts.Upstream,
		scope:    opts.Scope,
		negTTL:   opts.NegativeTTL,
		now:      opts.Now,
		log:      opts.Logger,
		entries:  map[Key]*entry{},
		flights:  map[Key]*flight{},
		missing:  map[Key]negative{},
	}
	if c.negTTL == 0 {
		c.negTTL = DefaultNegativeTTL
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(c.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	c.m = m
	c.cleanTemp()
	if err := c.scan(); err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.m.size.Set(float64(c.total))
	c.m.entries.Set(float64(len(c.entries)))
	return c, nil
}

// Dir returns the cache directory.
func (c *Cache) Dir() string { return c.dir }

// Close cancels every fetch in flight (their temporary files are removed)
// and waits for them to end. Assets already open stay readable.
func (c *Cache) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

// cleanTemp removes temporary files no live fetch holds: each fetch keeps
// an exclusive flock on its file, which the kernel drops when the process
// dies, so another tinderbox sharing the directory keeps its own.
func (c *Cache) cleanTemp() {
	des, err := os.ReadDir(c.tmp)
	if err != nil {
		return
	}
	for _, de := range des {
		p := filepath.Join(c.tmp, de.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if tryLock(f) == nil {
			os.Remove(p)
			c.log.Info("cache: removed a partial download left behind", "file", p)
		}
		f.Close()
	}
}

// scan indexes <dir>/<schematic>/<version>/<file>.json records and removes
// anything that is not a complete entry.
func (c *Cache) scan() error {
	err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(c.dir, p)
		if d.IsDir() {
			if rel == tmpDirName {
				return filepath.SkipDir
			}
			return nil
		}
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 3 {
			return nil // not ours (a README, a lost+found): leave it
		}
		name := strings.TrimSuffix(parts[2], sidecarSuffix)
		k, kerr := NewKey(parts[0], parts[1], name)
		if kerr != nil || k.Version != parts[1] {
			if strings.HasPrefix(parts[2], ".") && strings.Contains(parts[2], sidecarSuffix+".tmp-") {
				// A record being written when the process died.
				os.Remove(p)
			}
			return nil
		}
		if name == parts[2] {
			// A data file: keep it only if its record exists.
			if _, serr := os.Stat(p + sidecarSuffix); serr != nil {
				c.log.Info("cache: removed a data file without its record", "file", p)
				os.Remove(p)
			}
			return nil
		}
		e, lerr := c.load(k)
		if lerr != nil {
			c.log.Warn("cache: removed an incomplete entry", "asset", k.String(), "err", lerr)
			c.remove(k)
			return nil
		}
		c.entries[k] = &entry{Entry: e, touched: e.LastUsed}
		c.total += e.Size
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: scan %s: %w", c.dir, err)
	}
	return nil
}

// load reads k's record and checks its data file.
func (c *Cache) load(k Key) (Entry, error) {
	p := filepath.Join(c.dir, k.rel())
	b, err := os.ReadFile(p + sidecarSuffix)
	if err != nil {
		return Entry{}, err
	}
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return Entry{}, fmt.Errorf("record %s: %w", p+sidecarSuffix, err)
	}
	if e.Key != k || len(e.SHA256) != sha256.Size*2 {
		return Entry{}, fmt.Errorf("record %s does not describe this file", p+sidecarSuffix)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return Entry{}, err
	}
	if fi.Size() != e.Size {
		return Entry{}, fmt.Errorf("%s is %d bytes, its record says %d", p, fi.Size(), e.Size)
	}
	return e, nil
}

// remove deletes k's record, then its data: a crash in between leaves data
// without a record, which the next Open removes.
func (c *Cache) remove(k Key) {
	p := filepath.Join(c.dir, k.rel())
	os.Remove(p + sidecarSuffix)
	os.Remove(p)
	// Drop the version and schematic directories once empty.
	d := filepath.Dir(p)
	if os.Remove(d) == nil {
		os.Remove(filepath.Dir(d))
	}
}

// writeSidecar records e next to its data file.
func (c *Cache) writeSidecar(e Entry, sync bool) error {
	p := filepath.Join(c.dir, e.rel()) + sidecarSuffix
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// List returns every cached entry, sorted by schematic, version and file.
func (c *Cache) List() []Entry {
	c.mu.Lock()
	out := make([]Entry, 0, len(c.entries))
	for _, e := range c.entries {
		out = append(out, e.Entry)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Key.String(), b.Key.String()) })
	return out
}

// Size returns the total size of the cached files.
func (c *Cache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// Prune evicts least recently used entries until the cache holds at most
// limit bytes (limit 0: every entry), skipping entries being served. It
// returns the entries evicted.
func (c *Cache) Prune(limit int64) []Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evictLocked(limit, Key{}, false)
}

// evictLocked removes idle entries other than keep until total <= limit:
// the least recently used of those the scope does not want first, then,
// only when none is left, the least recently used wanted one. auto says
// the eviction keeps the cache within cache.maxSize (not a prune): having
// to remove a wanted entry then means the limit is too small, and is
// logged as a warning.
func (c *Cache) evictLocked(limit int64, keep Key, auto bool) []Entry {
	var gone []Entry
	for c.total > limit {
		var lru, lruWanted *entry
		for _, e := range c.entries {
			if e.refs > 0 || e.Key == keep {
				continue
			}
			if c.scope != nil && c.scope.Allowed(e.Key) {
				if lruWanted == nil || e.LastUsed.Before(lruWanted.LastUsed) {
					lruWanted = e
				}
				continue
			}
			if lru == nil || e.LastUsed.Before(lru.LastUsed) {
				lru = e
			}
		}
		if lru == nil {
			lru = lruWanted
			if lru == nil {
				break
			}
			if auto {
				c.log.Warn("cache: evicting an asset the profiles or cache.allow name: cache.maxSize is smaller than the images they need",
					"asset", lru.Key.String(), "max_size", c.maxSize, "size", c.total)
			}
		}
		delete(c.entries, lru.Key)
		c.total -= lru.Size
		c.remove(lru.Key)
		gone = append(gone, lru.Entry)
		c.m.evictions.Inc()
		c.log.Info("cache: evicted", "asset", lru.Key.String(), "size", lru.Size, "last_used", lru.LastUsed)
	}
	c.m.size.Set(float64(c.total))
	c.m.entries.Set(float64(len(c.entries)))
	return gone
}

// Asset is an open cached asset: either a complete file (Complete), or a
// download in flight whose bytes Read returns as they arrive. Close it.
type Asset struct {
	c     *Cache
	ctx   context.Context
	key   Key
	e     *entry   // complete
	f     *os.File // complete
	fl    *flight  // streaming
	off   int64
	hit   bool
	close sync.Once
}

// Hit reports whether the asset was cached before it was asked for.
func (a *Asset) Hit() bool { return a.hit }

// Key returns the asset's key.
func (a *Asset) Key() Key { return a.key }

// Complete returns the entry and its open file when the asset is fully
// cached. The file belongs to the Asset: do not close it.
func (a *Asset) Complete() (Entry, *os.File, bool) {
	if a.f == nil {
		return Entry{}, nil, false
	}
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	return a.e.Entry, a.f, true
}

// Size is the asset's size, or -1 while a download of unknown length is in
// flight.
func (a *Asset) Size() int64 {
	if a.f != nil {
		a.c.mu.Lock()
		defer a.c.mu.Unlock()
		return a.e.Size
	}
	a.fl.mu.Lock()
	defer a.fl.mu.Unlock()
	return a.fl.size
}

// Read reads the asset. For a download in flight it blocks until more bytes
// arrive, and returns the fetch's error if it fails.
func (a *Asset) Read(p []byte) (int, error) {
	if a.f != nil {
		n, err := a.f.ReadAt(p, a.off)
		a.off += int64(n)
		if err == io.EOF && n > 0 {
			err = nil
		}
		return n, err
	}
	return a.fl.readAt(a.ctx, p, &a.off)
}

// Close releases the asset; an entry that was kept from eviction while it
// was served may be evicted now.
func (a *Asset) Close() error {
	a.close.Do(func() {
		if a.fl != nil {
			a.fl.release()
			return
		}
		a.f.Close()
		a.c.mu.Lock()
		a.e.refs--
		if a.e.refs == 0 && a.c.maxSize > 0 && a.c.total > a.c.maxSize {
			a.c.evictLocked(a.c.maxSize, Key{}, true)
		}
		a.c.mu.Unlock()
	})
	return nil
}

// Open returns the asset for k: from disk when cached, else a stream of its
// download, which it starts unless one is already in flight. It blocks until
// the download has started (the upstream answered and the first bytes
// passed the content check) or failed. ctx bounds this wait and the reads
// from the returned Asset, not the download.
func (c *Cache) Open(ctx context.Context, k Key) (*Asset, error) {
	joined := false
	for {
		a, fl, err := c.lookup(ctx, k, joined)
		if a != nil || err != nil {
			return a, err
		}
		started, err := fl.waitStarted(ctx)
		if err != nil {
			return nil, err
		}
		if started {
			c.m.lookups.WithLabelValues("miss").Inc()
			return &Asset{c: c, ctx: ctx, key: k, fl: fl}, nil
		}
		fl.release()
		// Done and committed before it was seen streaming: serve it from
		// disk, still counted as the miss it was.
		joined = true
	}
}

// lookup returns the cached asset, or the flight to wait on (with a
// reference the caller releases or hands to an Asset). joined says the
// caller waited on a fetch for it: a miss, even if served from disk.
func (c *Cache) lookup(ctx context.Context, k Key, joined bool) (*Asset, *flight, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil, ErrClosed
	}
	e, ok := c.entries[k]
	if !ok {
		// Another process sharing the directory (tinderbox cache prefetch)
		// may have fetched it.
		if le, err := c.load(k); err == nil {
			e = &entry{Entry: le, touched: le.LastUsed}
			c.entries[k] = e
			c.total += le.Size
			ok = true
		}
	}
	if ok {
		f, err := os.Open(filepath.Join(c.dir, k.rel()))
		if err == nil {
			e.refs++
			now := c.now()
			e.LastUsed = now
			if now.Sub(e.touched) >= touchEvery {
				e.touched = now
				if err := c.writeSidecar(e.Entry, false); err != nil {
					c.log.Debug("cache: record last use", "asset", k.String(), "err", err)
				}
			}
			result := "hit"
			if joined {
				result = "miss"
			}
			c.m.lookups.WithLabelValues(result).Inc()
			return &Asset{c: c, ctx: ctx, key: k, e: e, f: f, hit: !joined}, nil, nil
		}
		// Removed behind our back (tinderbox cache prune): fetch it again.
		delete(c.entries, k)
		c.total -= e.Size
	}
	fl, ok := c.flights[k]
	if !ok {
		if n, ok := c.missing[k]; ok {
			if c.now().Before(n.until) {
				c.m.lookups.WithLabelValues("negative").Inc()
				return nil, nil, fmt.Errorf("%w (remembered; the factory is asked again after %s)", n.err, n.until.Format(time.TimeOnly))
			}
			delete(c.missing, k)
		}
		if c.upstream == nil {
			return nil, nil, fmt.Errorf("cache: %s is not cached and there is no upstream", k)
		}
		fl = newFlight(k)
		c.flights[k] = fl
		c.wg.Add(1)
		go c.fetch(fl)
	}
	fl.users++
	return nil, fl, nil
}

// Ensure makes sure k is cached, fetching it if needed, and returns its
// entry. progress, if not nil, is called as bytes arrive with the count so
// far and the total (-1 when unknown).
func (c *Cache) Ensure(ctx context.Context, k Key, progress func(done, total int64)) (Entry, error) {
	a, err := c.Open(ctx, k)
	if err != nil {
		return Entry{}, err
	}
	defer a.Close()
	if e, _, ok := a.Complete(); ok {
		if progress != nil {
			progress(e.Size, e.Size)
		}
		return e, nil
	}
	total := a.Size()
	buf := make([]byte, copyBuf)
	var done int64
	for {
		n, err := a.Read(buf)
		done += int64(n)
		if n > 0 && progress != nil {
			progress(done, total)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return Entry{}, err
		}
	}
	return a.fl.result()
}

// Prefetch ensures the kernel, initramfs and command line of every target
// are cached, one after the other, and returns the entries. progress, if
// not nil, is called as bytes of each asset arrive. It stops at the first
// error.
func (c *Cache) Prefetch(ctx context.Context, targets []Target, progress func(k Key, done, total int64)) ([]Entry, error) {
	var out []Entry
	for _, t := range targets {
		keys, err := t.Keys()
		if err != nil {
			return out, fmt.Errorf("cache: prefetch %s: %w", t, err)
		}
		for _, k := range keys {
			var p func(done, total int64)
			if progress != nil {
				p = func(done, total int64) { progress(k, done, total) }
			}
			e, err := c.Ensure(ctx, k, p)
			if err != nil {
				return out, err
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// maxCmdline bounds the command-line file: the kernel's own limit is a few KiB.
const maxCmdline = 64 << 10

// Cmdline returns the factory's kernel command line for PXE
// (cmdline-metal-ARCH) for a schematic and version, trimmed, from the cache
// (fetching it once if needed), so it is known offline once cached.
func (c *Cache) Cmdline(ctx context.Context, schematic, version string, arch machine.Arch) (string, error) {
	if err := factory.CheckArch(arch); err != nil {
		return "", fmt.Errorf("cache: cmdline: %w", err)
	}
	k, err := NewKey(schematic, version, factory.Cmdline(arch))
	if err != nil {
		return "", fmt.Errorf("cache: cmdline: %w", err)
	}
	a, err := c.Open(ctx, k)
	if err != nil {
		return "", err
	}
	defer a.Close()
	b, err := io.ReadAll(io.LimitReader(a, maxCmdline))
	if err != nil {
		return "", fmt.Errorf("cache: cmdline %s: %w", k, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// fetchError is a failed fetch with its metric result.
type fetchError struct {
	result string
	err    error
}

func (e *fetchError) Error() string { return e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

// fetch downloads fl's asset, commits it, and ends the flight.
func (c *Cache) fetch(fl *flight) {
	defer c.wg.Done()
	start := time.Now()
	e, err := c.download(fl)
	result := "ok"
	if err != nil {
		var fe *fetchError
		if errors.As(err, &fe) {
			result = fe.result
		}
		err = fmt.Errorf("cache: fetch %s: %w", fl.key, err)
	}
	c.m.fetches.WithLabelValues(result).Inc()
	c.m.fetchDuration.Observe(time.Since(start).Seconds())

	c.mu.Lock()
	delete(c.flights, fl.key)
	if err != nil && c.negTTL > 0 && permanent(err) {
		c.rememberLocked(fl.key, err)
	}
	if err == nil {
		c.entries[fl.key] = &entry{Entry: e, touched: e.LastUsed}
		c.total += e.Size
		if c.maxSize > 0 {
			c.evictLocked(c.maxSize, fl.key, true)
		}
		c.m.size.Set(float64(c.total))
		c.m.entries.Set(float64(len(c.entries)))
	}
	c.mu.Unlock()
	fl.finish(e, err)
	fl.release()
	if err != nil {
		c.log.Debug("cache: fetch failed", "asset", fl.key.String(), "result", result, "err", err)
		return
	}
	c.log.Info("cache: fetched", "asset", fl.key.String(), "size", e.Size, "sha256", e.SHA256,
		"duration", time.Since(start).Round(time.Millisecond))
}

// permanent reports whether err is an upstream answer that asking again
// soon would not change: a 4xx other than 408 (Request Timeout) and 429
// (Too Many Requests), which say "later", not "no".
func permanent(err error) bool {
	var fe *factory.Error
	if !errors.As(err, &fe) {
		return false
	}
	return fe.Status >= 400 && fe.Status < 500 && fe.Status != http.StatusRequestTimeout && fe.Status != http.StatusTooManyRequests
}

// rememberLocked remembers k's upstream answer err for negTTL, making room
// when the table is full: expired answers go, then the one closest to
// expiry.
func (c *Cache) rememberLocked(k Key, err error) {
	now := c.now()
	if len(c.missing) >= maxNegative {
		var first Key
		var firstUntil time.Time
		for mk, n := range c.missing {
			if !now.Before(n.until) {
				delete(c.missing, mk)
				continue
			}
			if firstUntil.IsZero() || n.until.Before(firstUntil) {
				first, firstUntil = mk, n.until
			}
		}
		if len(c.missing) >= maxNegative {
			delete(c.missing, first)
		}
	}
	c.missing[k] = negative{err: err, until: now.Add(c.negTTL)}
}

// download streams the upstream body into a locked temporary file, checks
// it, and renames it into place.
func (c *Cache) download(fl *flight) (Entry, error) {
	f, err := os.CreateTemp(c.tmp, "fetch-*")
	if err != nil {
		return Entry{}, &fetchError{"disk", err}
	}
	if err := tryLock(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return Entry{}, &fetchError{"disk", fmt.Errorf("lock %s: %w", f.Name(), err)}
	}
	// The assets are public; let another server (or nginx in the bench)
	// read them.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return Entry{}, &fetchError{"disk", err}
	}
	fl.setFile(f)
	committed := false
	defer func() {
		if !committed {
			os.Remove(f.Name())
		}
	}()

	body, size, err := c.upstream(c.ctx, fl.key)
	if err != nil {
		return Entry{}, classify(c.ctx, err)
	}
	defer body.Close()
	fl.setSize(size)

	h := sha256.New()
	head := make([]byte, min(int64(factory.SniffLen), max(size, 0)))
	if size < 0 {
		head = make([]byte, factory.SniffLen)
	}
	n, err := io.ReadFull(body, head)
	head = head[:n]
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return Entry{}, classify(c.ctx, err)
	}
	if err := factory.CheckContent(fl.key.File, head); err != nil {
		return Entry{}, &fetchError{"invalid", err}
	}
	if err := c.write(fl, f, h, head); err != nil {
		return Entry{}, err
	}
	written := int64(n)
	if int64(n) == int64(len(head)) && (size < 0 || written < size) {
		w, err := c.copy(fl, f, h, body)
		written += w
		if err != nil {
			return Entry{}, err
		}
	}
	if size >= 0 && written != size {
		return Entry{}, &fetchError{"size_mismatch", fmt.Errorf("got %d bytes, the factory announced %d", written, size)}
	}
	if err := f.Sync(); err != nil {
		return Entry{}, &fetchError{"disk", err}
	}
	now := c.now()
	e := Entry{Key: fl.key, Size: written, SHA256: hex.EncodeToString(h.Sum(nil)), Fetched: now, LastUsed: now}
	dst := filepath.Join(c.dir, fl.key.rel())
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Entry{}, &fetchError{"disk", err}
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return Entry{}, &fetchError{"disk", err}
	}
	committed = true
	if err := c.writeSidecar(e, true); err != nil {
		os.Remove(dst)
		return Entry{}, &fetchError{"disk", fmt.Errorf("record: %w", err)}
	}
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		d.Sync()
		d.Close()
	}
	c.m.fetchedBytes.Add(float64(written))
	return e, nil
}

// copy streams body to f, publishing each chunk to the flight's readers.
func (c *Cache) copy(fl *flight, f *os.File, h hash.Hash, body io.Reader) (int64, error) {
	buf := make([]byte, copyBuf)
	var total int64
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if werr := c.write(fl, f, h, buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, classify(c.ctx, err)
		}
	}
}

func (c *Cache) write(fl *flight, f *os.File, h hash.Hash, b []byte) error {
	if _, err := f.Write(b); err != nil {
		return &fetchError{"disk", err}
	}
	h.Write(b)
	fl.advance(int64(len(b)))
	return nil
}

// classify labels an upstream failure for the fetch metric.
func classify(ctx context.Context, err error) error {
	var fe *factory.Error
	switch {
	case ctx.Err() != nil:
		return &fetchError{"canceled", err}
	case errors.As(err, &fe) && fe.Timeout():
		return &fetchError{"timeout", err}
	case errors.As(err, &fe) && fe.Status != 0:
		return &fetchError{"http_error", err}
	default:
		return &fetchError{"network", err}
	}
}
