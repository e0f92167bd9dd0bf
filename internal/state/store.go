package state

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

const (
	// DBFile is the database's file name under state.dir.
	DBFile = "state.db"
	// SecretFile holds the key config tokens are derived from.
	SecretFile = "token.key"
	// DefaultMaxEvents bounds each machine's event log: enough for several
	// full boots (about eight events each) without growing without end.
	DefaultMaxEvents = 64
	// compactMinSize and compactFreeRatio decide when Open compacts: bbolt
	// never shrinks its file, so a database that is mostly free pages
	// (machines forgotten, event logs trimmed) is rewritten.
	compactMinSize   = 1 << 20
	compactFreeRatio = 0.5
)

// The database's buckets, each keyed by the MAC's canonical string:
// machines holds each machine's Summary, events its event log (a JSON
// array, oldest first). Databases written before the split kept the log
// inside the machines record; Open moves it out (migrate).
var (
	machinesBucket = []byte("machines")
	eventsBucket   = []byte("events")
)

// Defaults for the bounds on discovered records (machines without a
// profile), which any host on the boot LAN can create.
const (
	// DefaultDiscoveredMax is enough for every machine of a large boot
	// LAN at once, and small enough to list in one page.
	DefaultDiscoveredMax = 1000
	// DefaultDiscoveredTTL forgets a machine a day after it was last
	// seen without a profile.
	DefaultDiscoveredTTL = 24 * time.Hour
)

// Options configures Open.
type Options struct {
	// MaxEvents bounds each machine's event log; 0 means DefaultMaxEvents.
	MaxEvents int
	// DiscoveredMax bounds the number of discovered records: beyond it,
	// the least recently seen are forgotten. 0 means DefaultDiscoveredMax.
	DiscoveredMax int
	// DiscoveredTTL is how long after it was last seen a discovered
	// record is forgotten by Sweep; 0 means never.
	DiscoveredTTL time.Duration
	// Now returns the current time; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// OnChange, when set, is called after every committed change with the
	// machine as stored (zero State when it was forgotten). It must not block.
	OnChange func(Machine)
	// OnCorrupt is what Open does with a corrupt database:
	// OnCorruptRestore (also when empty) or OnCorruptRefuse.
	OnCorrupt string
	// BackupKeep is how many backups Backup keeps; 0 means
	// DefaultBackupKeep, and a negative number turns the backup at Close
	// off (Backup still keeps one).
	BackupKeep int
	// WriteTimeout bounds a write's wait for the one before it; 0 means
	// DefaultWriteTimeout. Health reports a write in progress for longer.
	WriteTimeout time.Duration
	// CloseTimeout bounds Close; 0 means DefaultCloseTimeout.
	CloseTimeout time.Duration
	// OpenTimeout bounds Open; 0 means DefaultOpenTimeout.
	OpenTimeout time.Duration
	// Registerer, when set, receives the store's metrics.
	Registerer prometheus.Registerer
}

// withDefaults returns o with its zero fields that have a default set to
// it: MaxEvents, DiscoveredMax, Now and Logger (one that discards).
func (o Options) withDefaults() Options {
	if o.MaxEvents <= 0 {
		o.MaxEvents = DefaultMaxEvents
	}
	if o.DiscoveredMax <= 0 {
		o.DiscoveredMax = DefaultDiscoveredMax
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Store is the machine-state database. It is safe for concurrent use.
// Close it when done.
type Store struct {
	db            *bolt.DB
	secret        []byte
	maxEvents     int
	discoveredMax int
	discoveredTTL time.Duration
	now           func() time.Time
	log           *slog.Logger
	onChange      func(Machine)
	path          string
	backupDir     string
	onCorrupt     string
	keep          int
	writeTimeout  time.Duration
	closeTimeout  time.Duration
	metrics       *metricSet

	// wlock, a one-slot semaphore, serialises writes (and the index's
	// changes) with OnChange order; unlike a mutex, its wait is bounded
	// (lock). writeStart is when the write in progress began, in Unix
	// nanoseconds; 0 when none is.
	wlock      chan struct{}
	writeStart atomic.Int64

	// fault, once set, is why the store is degraded (Health).
	fmu   sync.Mutex
	fault error
	// unreadable holds the keys of records that do not decode.
	umu        sync.Mutex
	unreadable map[string]struct{}

	closeOnce sync.Once
	closeErr  error

	// index mirrors each readable record's summary, for Peek,
	// CountByState and the discovered bounds without a database read.
	// Writers change it under wlock and imu after their transaction
	// commits; under wlock alone they may read it.
	imu        sync.RWMutex
	index      map[machine.MAC]Summary
	discovered int // index entries in state discovered
	// counts holds how many events a record's stored log has, for the
	// records written since Open (appendLog); under wlock.
	counts map[machine.MAC]int

	// The committer (commit.go): subs carries submissions to it, quit
	// stops it, stopped is closed when it has.
	subs     chan *submission
	quit     chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once
}

// Open opens (creating if needed) the store under dir. It first checks
// the database (checkFile: size, every record decoded, bbolt's
// consistency check); a corrupt one (empty, truncated, bad pages) is
// moved aside to state.db.corrupt-<UTC time> and replaced by the newest
// good backup, or left in place and refused (Options.OnCorrupt): either
// way one line is logged or returned, and nothing of it is served. It
// then moves a database of the older layout (event logs inside the
// machine records) to the current one, and forgets discovered records
// beyond the bounds. It fails, naming the file, when another tinderbox
// holds the database, and after Options.OpenTimeout on a disk that does
// not answer.
func Open(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	secret, err := loadSecret(filepath.Join(dir, SecretFile))
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	s := &Store{
		secret: secret, maxEvents: opts.MaxEvents, discoveredMax: opts.DiscoveredMax, discoveredTTL: opts.DiscoveredTTL,
		now: opts.Now, log: opts.Logger, onChange: opts.OnChange,
		path: filepath.Join(dir, DBFile), backupDir: filepath.Join(dir, BackupDir), onCorrupt: opts.OnCorrupt,
		keep: opts.BackupKeep, writeTimeout: opts.WriteTimeout, closeTimeout: opts.CloseTimeout,
		metrics: newMetrics(), wlock: make(chan struct{}, 1), unreadable: map[string]struct{}{},
	}
	if s.onCorrupt == "" {
		s.onCorrupt = OnCorruptRestore
	}
	if s.keep == 0 {
		s.keep = DefaultBackupKeep
	}
	if s.writeTimeout <= 0 {
		s.writeTimeout = DefaultWriteTimeout
	}
	if s.closeTimeout <= 0 {
		s.closeTimeout = DefaultCloseTimeout
	}
	openTimeout := opts.OpenTimeout
	if openTimeout <= 0 {
		openTimeout = DefaultOpenTimeout
	}
	if opts.Registerer != nil {
		if err := s.register(opts.Registerer); err != nil {
			return nil, err
		}
	}
	// The file's reads may block for good on a frozen disk: open in a
	// goroutine, and give up on it after openTimeout (closing what it
	// opens, should it ever finish).
	done := make(chan error, 1)
	go func() { done <- s.open() }()
	t := time.NewTimer(openTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
		s.startCommitter()
		return s, nil
	case <-t.C:
		go func() {
			if <-done == nil {
				s.db.Close()
			}
		}()
		return nil, fmt.Errorf("state: open %s: %w: not open after %s (is the disk frozen?)", s.path, ErrStuck, openTimeout)
	}
}

// open is Open's work on the file, guarded against panics.
func (s *Store) open() (err error) {
	unreadable, err := s.recoverDB()
	if err != nil {
		return err
	}
	var db *bolt.DB
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				db.Close()
			}
			err = fmt.Errorf("state: open %s: %w: %v", s.path, ErrCorrupt, r)
		}
	}()
	path := s.path
	if err := compactIfSparse(path, s.log); err != nil {
		return err
	}
	db, err = openDB(path)
	if err != nil {
		return err
	}
	migrated, err := s.prepare(db)
	if err != nil {
		db.Close()
		return fmt.Errorf("state: %s: %w", path, err)
	}
	if migrated > 0 {
		s.log.Info("state database moved to the split layout", "file", path, "machines", migrated)
		// The old records' pages are free now: compact them away.
		db.Close()
		if err := compactIfSparse(path, s.log); err != nil {
			return err
		}
		if db, err = openDB(path); err != nil {
			return err
		}
	}
	s.db = db
	s.removeTemporaries()
	for k, why := range unreadable {
		s.markUnreadable(k, why)
	}
	if err := s.loadIndex(); err != nil {
		db.Close()
		return fmt.Errorf("state: %s: %w", path, err)
	}
	if _, err := s.Sweep(); err != nil {
		db.Close()
		return err
	}
	return nil
}

// prepare creates the buckets, migrating records of the older layout;
// it returns how many it migrated.
func (s *Store) prepare(db *bolt.DB) (migrated int, err error) {
	err = db.Update(func(tx *bolt.Tx) error {
		old := tx.Bucket(machinesBucket) != nil && tx.Bucket(eventsBucket) == nil
		sb, err := tx.CreateBucketIfNotExists(machinesBucket)
		if err != nil {
			return err
		}
		eb, err := tx.CreateBucketIfNotExists(eventsBucket)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(servedBucket); err != nil {
			return err
		}
		if !old {
			return nil
		}
		migrated, err = s.migrate(sb, eb)
		return err
	})
	return migrated, err
}

// migrate splits every record of the older layout, which held the event
// log inline, into its summary and its event log, bounding both as
// Update does.
func (s *Store) migrate(sb, eb *bolt.Bucket) (int, error) {
	// A bucket must not change under its cursor: collect the keys first.
	var keys [][]byte
	if err := sb.ForEach(func(k, _ []byte) error {
		keys = append(keys, slices.Clone(k))
		return nil
	}); err != nil {
		return 0, err
	}
	for _, k := range keys {
		var m Machine
		if err := json.Unmarshal(sb.Get(k), &m); err != nil {
			return 0, fmt.Errorf("record %s: %w", k, err)
		}
		s.trim(&m)
		if err := put(sb, eb, k, &m); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

func openDB(path string) (*bolt.DB, error) {
	// A second tinderbox on the same state.dir waits on bbolt's file lock;
	// after a second, say so instead of hanging.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, inUse(path)
	}
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	return db, nil
}

// compactIfSparse rewrites the database when most of its file is free pages.
func compactIfSparse(path string, log *slog.Logger) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Size() < compactMinSize) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	src, err := openDB(path)
	if err != nil {
		return err
	}
	var free int
	err = src.View(func(tx *bolt.Tx) error {
		free = src.Stats().FreePageN + src.Stats().PendingPageN
		return nil
	})
	pages := int(fi.Size()) / src.Info().PageSize
	if err != nil || pages == 0 || float64(free)/float64(pages) < compactFreeRatio {
		src.Close()
		return nil
	}
	tmp := path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		src.Close()
		return fmt.Errorf("state: compact: %w", err)
	}
	// 64 KiB per transaction keeps the compaction's memory small.
	cerr := bolt.Compact(dst, src, 64<<10)
	dst.Close()
	src.Close()
	if cerr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("state: compact %s: %w", path, cerr)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("state: compact: %w", err)
	}
	nfi, _ := os.Stat(path)
	if nfi != nil {
		log.Info("state database compacted", "file", path, "bytes_before", fi.Size(), "bytes_after", nfi.Size())
	}
	return nil
}

// loadSecret reads the token key, creating a random one on first use.
func loadSecret(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		key, derr := hex.DecodeString(string(trimNL(data)))
		if derr != nil || len(key) < 32 {
			return nil, fmt.Errorf("state: %s: not a hex key of at least 32 bytes; delete it to make a new one (issued config tokens change)", path)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("state: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("state: token key: %w", err)
	}
	// O_EXCL: two processes racing on first start must not both write.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadSecret(path)
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("state: write %s: %w", path, err)
	}
	return key, nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// Close takes a last backup (unless Options.BackupKeep is negative or the
// store is degraded) and closes the database. It returns within
// Options.CloseTimeout even when a write is stuck (a frozen disk), with
// an error wrapping ErrStuck: then the database stays open until the
// process exits, and what the stuck write and those waiting for it were
// storing is lost; every write Update, Forget or PutServed returned from
// is on disk. Later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		done := make(chan error, 1)
		go func() {
			var berr error
			if s.keep > 0 && s.Health() == nil {
				_, berr = s.Backup()
			}
			s.stopCommitter()
			done <- errors.Join(berr, s.db.Close())
		}()
		t := time.NewTimer(s.closeTimeout)
		defer t.Stop()
		select {
		case s.closeErr = <-done:
		case <-t.C:
			s.closeErr = fmt.Errorf("state: close %s: %w: not done after %s; the write in flight is lost", s.path, ErrStuck, s.closeTimeout)
		}
	})
	return s.closeErr
}

// Get returns the machine recorded under mac, with its event log; ok is
// false when there is none.
func (s *Store) Get(mac machine.MAC) (m Machine, ok bool, err error) {
	key := []byte(mac.String())
	err = s.view("get", func(tx *bolt.Tx) error {
		ok, err = load(tx.Bucket(machinesBucket), tx.Bucket(eventsBucket), key, &m)
		return err
	})
	if err != nil {
		return Machine{}, false, fmt.Errorf("state: get %s: %w", key, err)
	}
	return m, ok, nil
}

// List returns every machine's summary, ordered by MAC. It reads no event
// log. A record that does not decode is left out, logged the first time
// and named by Unreadable.
func (s *Store) List() ([]Summary, error) {
	s.imu.RLock()
	out := make([]Summary, 0, len(s.index))
	s.imu.RUnlock()
	err := s.view("list", func(tx *bolt.Tx) error {
		return tx.Bucket(machinesBucket).ForEach(func(k, v []byte) error {
			var m Summary
			if err := json.Unmarshal(v, &m); err != nil {
				s.markUnreadable(string(k), err)
				return nil
			}
			out = append(out, m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state: list: %w", err)
	}
	return out, nil
}

// CountByState returns how many machines are recorded in each state
// (states with none are absent). It reads no database: the store keeps
// each record's state in memory.
func (s *Store) CountByState() map[machine.State]int {
	s.imu.RLock()
	defer s.imu.RUnlock()
	out := map[machine.State]int{}
	for _, e := range s.index {
		out[e.State]++
	}
	return out
}

// load reads the record under key into m, its log's newest run as the
// summary holds it (withLast); ok is false when there is none.
func load(sb, eb *bolt.Bucket, key []byte, m *Machine) (ok bool, err error) {
	v := sb.Get(key)
	if v == nil {
		return false, nil
	}
	var sum Summary
	if err := json.Unmarshal(v, &sum); err != nil {
		return false, fmt.Errorf("record %s: %w", key, err)
	}
	*m = Machine{
		MAC: sum.MAC, State: sum.State, Arch: sum.Arch, UUID: sum.UUID, IP: sum.IP,
		FirstSeen: sum.FirstSeen, LastSeen: sum.LastSeen, Generation: sum.Generation, Talos: sum.Talos,
	}
	if v := eb.Get(key); v != nil {
		if err := json.Unmarshal(v, &m.Events); err != nil {
			return false, fmt.Errorf("events of %s: %w", key, err)
		}
		withLast(m.Events, sum.Last)
	}
	return true, nil
}

// put stores m under key: its summary, and its event log apart (in
// encodeLog's layout, so a later append finds its last element at once).
func put(sb, eb *bolt.Bucket, key []byte, m *Machine) error {
	v, err := json.Marshal(m.Summary())
	if err != nil {
		return err
	}
	if err := sb.Put(key, v); err != nil {
		return err
	}
	if len(m.Events) == 0 {
		return eb.Delete(key)
	}
	if v, err = encodeLog(m.Events); err != nil {
		return err
	}
	return eb.Put(key, v)
}

// trim bounds m: its event log to the newest maxEvents, each text field
// to its limit.
func (s *Store) trim(m *Machine) { trimTo(m, s.maxEvents) }

// Update runs fn on the machine recorded under mac (a new record, with
// exists false, when there is none) and stores the result, in one
// transaction (shared with the writes submitted at the same time: see
// Apply). A new record's FirstSeen is set; LastSeen is set when fn adds
// events. The event log is trimmed to its bound and every text field
// clipped to its limit (MaxUUID, MaxIP, MaxName, MaxDetail). If fn
// returns an error nothing is stored. A record stored as discovered may
// push the least recently seen other discovered records out
// (Options.DiscoveredMax), in the same transaction; each is reported to
// OnChange as forgotten. Update returns the machine as stored, once it is
// on disk. Apply is cheaper when fn only appends to the event log.
func (s *Store) Update(mac machine.MAC, fn func(m *Machine, exists bool) error) (Machine, error) {
	o := &op{mac: mac, fn: fn, full: true}
	if err := s.submit("update "+mac.String(), o); err != nil {
		return Machine{}, err
	}
	if o.err != nil {
		return Machine{}, o.err
	}
	return o.out, nil
}

// callFn calls Update's fn, turning its panic into an error: a fault of
// the caller's, which must not count as a corrupt database.
func callFn(fn func(*Machine, bool) error, m *Machine, exists bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("update function panicked: %v", r)
		}
	}()
	return fn(m, exists)
}

// overflow returns the discovered records, other than mac, to forget so
// that no more than discoveredMax remain with mac stored as discovered,
// as st stages the index. The caller holds wlock.
func (s *Store) overflow(st *staged, mac machine.MAC) []machine.MAC {
	n := st.discovered
	if e, ok := st.get(mac); !ok || e.State != machine.Discovered {
		n++
	}
	if n <= s.discoveredMax {
		return nil
	}
	return s.oldestDiscovered(st, n-s.discoveredMax, func(k machine.MAC) bool { return k == mac })
}

// oldestDiscovered returns up to n discovered records of st, least
// recently seen first (ties broken by MAC), passing over those skip
// names. The caller holds wlock.
func (s *Store) oldestDiscovered(st *staged, n int, skip func(machine.MAC) bool) []machine.MAC {
	var sums []Summary
	st.each(func(e Summary) {
		if e.State == machine.Discovered && !skip(e.MAC) {
			sums = append(sums, e)
		}
	})
	slices.SortFunc(sums, func(a, b Summary) int {
		if c := a.LastSeen.Compare(b.LastSeen); c != 0 {
			return c
		}
		return bytes.Compare(a.MAC[:], b.MAC[:])
	})
	macs := make([]machine.MAC, 0, min(n, len(sums)))
	for _, e := range sums[:min(n, len(sums))] {
		macs = append(macs, e.MAC)
	}
	return macs
}

// Sweep forgets the discovered records last seen longer ago than
// Options.DiscoveredTTL (none when it is 0), then the least recently seen
// beyond Options.DiscoveredMax, in one transaction; each is reported to
// OnChange as forgotten. It returns how many it forgot.
func (s *Store) Sweep() (int, error) {
	if err := s.lock("sweep"); err != nil {
		return 0, err
	}
	defer s.unlock()
	expired := map[machine.MAC]bool{}
	if s.discoveredTTL > 0 {
		cutoff := s.now().Add(-s.discoveredTTL)
		for k, e := range s.index {
			if e.State == machine.Discovered && e.LastSeen.Before(cutoff) {
				expired[k] = true
			}
		}
	}
	doomed := slices.Collect(maps.Keys(expired))
	if over := s.discovered - len(expired) - s.discoveredMax; over > 0 {
		doomed = append(doomed, s.oldestDiscovered(s.newStaged(), over, func(k machine.MAC) bool { return expired[k] })...)
	}
	if len(doomed) == 0 {
		return 0, nil
	}
	slices.SortFunc(doomed, func(a, b machine.MAC) int { return bytes.Compare(a[:], b[:]) })
	if err := s.update("sweep", func(tx *bolt.Tx) error {
		return deleteAll(tx.Bucket(machinesBucket), tx.Bucket(eventsBucket), doomed)
	}); err != nil {
		return 0, fmt.Errorf("state: sweep: %w", err)
	}
	s.imu.Lock()
	for _, d := range doomed {
		s.dropIndex(d)
		delete(s.counts, d)
	}
	s.imu.Unlock()
	s.notifyForgotten(doomed)
	return len(doomed), nil
}

// Expire calls Sweep each time tick delivers, until ctx is cancelled; it
// then returns nil. A failed sweep is logged and tried again at the next
// tick. The daemon runs it with a time.Ticker of SweepInterval.
func (s *Store) Expire(ctx context.Context, tick <-chan time.Time) error {
	return expire(ctx, tick, s.Sweep, s.log, s.discoveredTTL, s.discoveredMax)
}

// SweepInterval is how often the daemon sweeps for a discovered-record
// TTL: every minute, or every ttl when that is shorter, so a record lives
// at most about ttl plus one interval.
func SweepInterval(ttl time.Duration) time.Duration {
	return min(ttl, time.Minute)
}

// Event returns an event of kind k stamped with the store's clock.
func (s *Store) Event(k machine.EventKind, detail string, bytes int64) machine.Event {
	return machine.Event{Time: s.now(), Kind: k, Detail: detail, Bytes: bytes}
}

// Forget deletes the machine's record, one that does not decode
// included; ok is false when there was none.
func (s *Store) Forget(mac machine.MAC) (ok bool, err error) {
	key := []byte(mac.String())
	if err := s.lock("forget " + string(key)); err != nil {
		return false, err
	}
	defer s.unlock()
	err = s.update("forget", func(tx *bolt.Tx) error {
		sb := tx.Bucket(machinesBucket)
		ok = sb.Get(key) != nil
		return deleteAll(sb, tx.Bucket(eventsBucket), []machine.MAC{mac})
	})
	if err != nil {
		return false, fmt.Errorf("state: forget %s: %w", key, err)
	}
	s.clearUnreadable(string(key))
	delete(s.counts, mac)
	if ok {
		s.imu.Lock()
		s.dropIndex(mac)
		s.imu.Unlock()
		s.notifyForgotten([]machine.MAC{mac})
	}
	return ok, nil
}

// deleteAll deletes the records (summary, event log and served config)
// of macs.
func deleteAll(sb, eb *bolt.Bucket, macs []machine.MAC) error {
	served := sb.Tx().Bucket(servedBucket)
	for _, mac := range macs {
		key := []byte(mac.String())
		if err := errors.Join(sb.Delete(key), eb.Delete(key), served.Delete(key)); err != nil {
			return err
		}
	}
	return nil
}

// loadIndex fills the in-memory index from the stored summaries.
func (s *Store) loadIndex() error {
	s.index = map[machine.MAC]Summary{}
	s.counts = map[machine.MAC]int{}
	s.discovered = 0
	list, err := s.List()
	if err != nil {
		return err
	}
	for _, m := range list {
		s.setIndex(m)
	}
	return nil
}

// setIndex and dropIndex change the index; the caller holds wlock and imu
// (or owns the store, before Open returns).
func (s *Store) setIndex(sum Summary) {
	s.dropIndex(sum.MAC)
	s.index[sum.MAC] = sum
	if sum.State == machine.Discovered {
		s.discovered++
	}
}

func (s *Store) dropIndex(mac machine.MAC) {
	if e, ok := s.index[mac]; ok {
		if e.State == machine.Discovered {
			s.discovered--
		}
		delete(s.index, mac)
	}
}

func (s *Store) notify(m Machine) {
	if s.onChange != nil {
		s.onChange(m)
	}
}

func (s *Store) notifyForgotten(macs []machine.MAC) {
	for _, mac := range macs {
		s.notify(Machine{MAC: mac})
	}
}

// Token returns the machine's config token: an HMAC of its MAC and
// generation under the store's secret key, so it is unguessable, stable
// across restarts, and rotated by Reinstall.
func (s *Store) Token(m Machine) string { return token(s.secret, m) }

// CheckToken reports, in constant time, whether token is the machine's.
func (s *Store) CheckToken(m Machine, token string) bool {
	return hmac.Equal([]byte(s.Token(m)), []byte(token))
}
