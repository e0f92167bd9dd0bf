package state

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

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

var machinesBucket = []byte("machines")

// Options configures Open.
type Options struct {
	// MaxEvents bounds each machine's event log; 0 means DefaultMaxEvents.
	MaxEvents int
	// Now returns the current time; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// OnChange, when set, is called after every committed change with the
	// machine as stored (zero State when it was forgotten). It must not block.
	OnChange func(Machine)
}

// Store is the machine-state database. It is safe for concurrent use.
// Close it when done.
type Store struct {
	db        *bolt.DB
	secret    []byte
	maxEvents int
	now       func() time.Time
	onChange  func(Machine)
	mu        sync.Mutex // serialises Update's read-modify-write with OnChange order
}

// Open opens (creating if needed) the store under dir. It fails, naming
// the directory, when another tinderbox holds the database.
func Open(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	secret, err := loadSecret(filepath.Join(dir, SecretFile))
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, DBFile)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := compactIfSparse(path, log); err != nil {
		return nil, err
	}
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(machinesBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: %s: %w", path, err)
	}
	s := &Store{db: db, secret: secret, maxEvents: opts.MaxEvents, now: opts.Now, onChange: opts.OnChange}
	if s.maxEvents <= 0 {
		s.maxEvents = DefaultMaxEvents
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

func openDB(path string) (*bolt.DB, error) {
	// A second tinderbox on the same state.dir waits on bbolt's file lock;
	// after a second, say so instead of hanging.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("state: %s is in use by another process (is another tinderbox running with this state.dir?)", path)
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

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Get returns the machine recorded under mac; ok is false when there is none.
func (s *Store) Get(mac machine.MAC) (m Machine, ok bool, err error) {
	key := mac.String()
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(machinesBucket).Get([]byte(key))
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &m)
	})
	if err != nil {
		return Machine{}, false, fmt.Errorf("state: get %s: %w", key, err)
	}
	return m, ok, nil
}

// List returns every machine, ordered by MAC.
func (s *Store) List() ([]Machine, error) {
	var out []Machine
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(machinesBucket).ForEach(func(k, v []byte) error {
			var m Machine
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("record %s: %w", k, err)
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

// Update runs fn on the machine recorded under mac (a new record, with
// exists false, when there is none) and stores the result, in one
// transaction. A new record's FirstSeen is set; LastSeen is set when fn
// adds events. The event log is trimmed to its bound. If fn returns an
// error nothing is stored. Update returns the machine as stored.
func (s *Store) Update(mac machine.MAC, fn func(m *Machine, exists bool) error) (Machine, error) {
	key := mac.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	var m Machine
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(machinesBucket)
		exists := false
		if v := b.Get([]byte(key)); v != nil {
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("record %s: %w", key, err)
			}
			exists = true
		}
		m.MAC = mac
		before := len(m.Events)
		if err := fn(&m, exists); err != nil {
			return err
		}
		now := s.now()
		if !exists {
			m.FirstSeen = now
			m.LastSeen = now
		}
		if len(m.Events) != before && len(m.Events) > 0 {
			m.LastSeen = m.Events[len(m.Events)-1].Time
		}
		if over := len(m.Events) - s.maxEvents; over > 0 {
			m.Events = append([]machine.Event(nil), m.Events[over:]...)
		}
		v, err := json.Marshal(&m)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), v)
	})
	if err != nil {
		return Machine{}, fmt.Errorf("state: update %s: %w", key, err)
	}
	if s.onChange != nil {
		s.onChange(m)
	}
	return m, nil
}

// Event returns an event of kind k stamped with the store's clock.
func (s *Store) Event(k machine.EventKind, detail string, bytes int64) machine.Event {
	return machine.Event{Time: s.now(), Kind: k, Detail: detail, Bytes: bytes}
}

// Forget deletes the machine's record; ok is false when there was none.
func (s *Store) Forget(mac machine.MAC) (ok bool, err error) {
	key := mac.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(machinesBucket)
		ok = b.Get([]byte(key)) != nil
		return b.Delete([]byte(key))
	})
	if err != nil {
		return false, fmt.Errorf("state: forget %s: %w", key, err)
	}
	if ok && s.onChange != nil {
		s.onChange(Machine{MAC: mac})
	}
	return ok, nil
}

// Token returns the machine's config token: an HMAC of its MAC and
// generation under the store's secret key, so it is unguessable, stable
// across restarts, and rotated by Reinstall.
func (s *Store) Token(m Machine) string {
	h := hmac.New(sha256.New, s.secret)
	h.Write([]byte(m.MAC.String()))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatUint(m.Generation, 10)))
	// 128 bits are plenty against guessing and keep the kernel command line short.
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// CheckToken reports, in constant time, whether token is the machine's.
func (s *Store) CheckToken(m Machine, token string) bool {
	return hmac.Equal([]byte(s.Token(m)), []byte(token))
}
