package profiles

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tinderbox-boot/tinderbox/internal/render"
)

// Renders kept across restarts. The memo of a load (memo.go) holds its
// renders by renderKey, the hash of every render input; Options.
// RenderCache keeps them in a bbolt file under state.dir too, so that a
// restart, or `validate` of a directory the daemon has loaded, renders
// only the machines whose inputs changed since, and takes the others'
// configs, warnings and facts from the file. The key does not cover the
// code that renders, so the file also names the build that wrote it (the
// SHA-256 of the executable): another build's renders are never used.
// Only renders without errors are kept. Each entry carries a CRC-32C of
// itself; one that does not match, or does not decode, is rendered
// again. The file is a cache: one that cannot be read is rendered
// around, and rewritten by the next good load.

var (
	rendersBucket = []byte("renders")
	metaBucket    = []byte("meta")
	buildKey      = []byte("build")
)

// cacheLockWait is how long an open of the render cache waits for
// another process's lock (a validate reading it while the daemon writes,
// or the reverse) before it does without the file.
const cacheLockWait = time.Second

// buildIdentity is this executable's SHA-256, read once; "" when the
// executable cannot be read (the render cache is then not used).
var buildIdentity = sync.OnceValue(func() string {
	path, err := os.Executable()
	if err != nil {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return fmt.Sprintf("%x", h.Sum(nil))
})

// readRenders returns a memo holding the renders that the cache file at
// path keeps from this build; nil when it keeps none or cannot be read.
// It only reads the file.
func readRenders(path string, log *slog.Logger) *memo {
	build := buildIdentity()
	if path == "" || build == "" {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil // not written yet, or state.dir not readable
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: cacheLockWait})
	if err != nil {
		log.Warn("profiles: the render cache cannot be read; rendering every machine", "file", path, "err", err)
		return nil
	}
	defer func() { _ = db.Close() }()
	m := newMemo()
	err = db.View(func(tx *bolt.Tx) error {
		meta, renders := tx.Bucket(metaBucket), tx.Bucket(rendersBucket)
		if meta == nil || renders == nil || string(meta.Get(buildKey)) != build {
			return nil
		}
		return renders.ForEach(func(k, v []byte) error {
			r, err := decodeRendered(v)
			if err != nil || len(k) != sha256.Size {
				return nil // rendered again, and rewritten by the next good load
			}
			m.renders[[sha256.Size]byte(k)] = r
			return nil
		})
	})
	if err != nil {
		log.Warn("profiles: the render cache cannot be read; rendering every machine", "file", path, "err", err)
		return nil
	}
	return m
}

// errUnchanged rolls back a write transaction that found nothing to do.
var errUnchanged = errors.New("unchanged")

// writeRenders makes the cache file at path hold exactly m's renders
// that have no error, for this build, and writes nothing when it does
// already. A file that is not a render cache (a torn or foreign file) is
// replaced. The write is one bbolt transaction, synced.
func writeRenders(path string, m *memo) error {
	build := buildIdentity()
	if build == "" {
		return errors.New("the executable cannot be read to name this build")
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: cacheLockWait})
	if err != nil && !errors.Is(err, bolterrors.ErrTimeout) && !errors.Is(err, fs.ErrPermission) {
		// Not a bbolt file, or a broken one: start again.
		if rerr := os.Remove(path); rerr != nil {
			return errors.Join(err, rerr)
		}
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: cacheLockWait})
	}
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		changed := false
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		if string(meta.Get(buildKey)) != build {
			if err := tx.DeleteBucket(rendersBucket); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
			if err := meta.Put(buildKey, []byte(build)); err != nil {
				return err
			}
			changed = true
		}
		b, err := tx.CreateBucketIfNotExists(rendersBucket)
		if err != nil {
			return err
		}
		var stale [][]byte
		kept := map[[sha256.Size]byte]bool{}
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			r, ok := (*rendered)(nil), false
			if len(k) == sha256.Size {
				r, ok = m.renders[[sha256.Size]byte(k)]
			}
			if !ok || r.err != nil {
				stale = append(stale, k)
				continue
			}
			kept[[sha256.Size]byte(k)] = true
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
			changed = true
		}
		for k, r := range m.renders {
			if kept[k] || r.err != nil {
				continue
			}
			v, ok := encodeRendered(r)
			if !ok {
				continue
			}
			if err := b.Put(k[:], v); err != nil {
				return err
			}
			changed = true
		}
		if !changed {
			return errUnchanged
		}
		return nil
	})
	if errors.Is(err, errUnchanged) {
		err = nil
	}
	return errors.Join(err, db.Close())
}

// renderedMeta is what a cache entry holds beside the config.
type renderedMeta struct {
	Warnings []*Problem   `json:"warnings,omitempty"`
	Facts    render.Facts `json:"facts"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeRendered is r as a cache entry: the CRC-32C of the rest (4
// bytes, big-endian), the length of the JSON of its warnings and facts
// (uvarint), that JSON, then the config. ok is false for a render that
// the cache does not keep (one with an error, or a warning that is not a
// *Problem).
func encodeRendered(r *rendered) (_ []byte, ok bool) {
	if r.err != nil {
		return nil, false
	}
	meta := renderedMeta{Facts: r.facts}
	for _, w := range r.warnings {
		p, ok := w.(*Problem)
		if !ok {
			return nil, false
		}
		meta.Warnings = append(meta.Warnings, p)
	}
	js, err := json.Marshal(meta)
	if err != nil {
		return nil, false
	}
	v := make([]byte, 4, 4+binary.MaxVarintLen64+len(js)+len(r.config))
	v = binary.AppendUvarint(v, uint64(len(js)))
	v = append(v, js...)
	v = append(v, r.config...)
	binary.BigEndian.PutUint32(v, crc32.Checksum(v[4:], castagnoli))
	return v, true
}

// decodeRendered is encodeRendered's inverse; the render it returns
// shares nothing with v.
func decodeRendered(v []byte) (*rendered, error) {
	if len(v) < 5 || binary.BigEndian.Uint32(v) != crc32.Checksum(v[4:], castagnoli) {
		return nil, errors.New("render cache: checksum mismatch")
	}
	rest := v[4:]
	n, size := binary.Uvarint(rest)
	if size <= 0 || n > uint64(len(rest)-size) {
		return nil, errors.New("render cache: bad length")
	}
	rest = rest[size:]
	var meta renderedMeta
	if err := json.Unmarshal(rest[:n], &meta); err != nil {
		return nil, fmt.Errorf("render cache: %w", err)
	}
	r := &rendered{facts: meta.Facts, config: bytes.Clone(rest[n:])}
	for _, p := range meta.Warnings {
		r.warnings = append(r.warnings, p)
	}
	return r, nil
}
