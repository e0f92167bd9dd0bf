package state

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Backend is the machine-state store as the rest of the daemon uses it:
// the embedded bbolt Store (Open) and the etcd store shared by several
// replicas (OpenEtcd) implement it. Every method is safe for concurrent
// use.
//
// Reads (Get, List, Peek, CountByState, Served) answer from the store's
// own process: bbolt's file or the etcd store's watch-driven cache; they
// never wait for another host. Writes (Update, Apply, Forget, PutServed)
// return once the change is durable (on disk, or committed by etcd's
// quorum) and fail, storing nothing, when it cannot be made in time.
type Backend interface {
	// Get returns the machine recorded under mac, with its event log;
	// ok is false when there is none.
	Get(mac machine.MAC) (m Machine, ok bool, err error)
	// List returns every machine's summary, ordered by MAC.
	List() ([]Summary, error)
	// CountByState returns how many machines are recorded in each state
	// (states with none are absent), from memory.
	CountByState() map[machine.State]int
	// Peek returns the machine's summary as a Machine without events,
	// from memory; ok is false when there is none.
	Peek(mac machine.MAC) (m Machine, ok bool, err error)
	// Latest is Peek as the shared database holds the record now, not
	// as this process last heard of it: the etcd store reads it from
	// the cluster (a round trip; it fails wrapping ErrUnavailable when
	// etcd does not answer), the bbolt Store is Peek. For a refusal
	// that must not rest on a cache lagging another replica's write.
	Latest(mac machine.MAC) (m Machine, ok bool, err error)
	// Update runs fn on the machine's record (exists false for a new
	// one) and stores the result; fn's error stores nothing and is
	// returned wrapped. fn may run more than once (etcd: a concurrent
	// change by another replica, or a refusal of the cached record
	// confirmed on the record as etcd holds it), each time on the
	// record as then stored, so it must decide from its arguments alone.
	Update(mac machine.MAC, fn func(m *Machine, exists bool) error) (Machine, error)
	// Apply stores changes (Change), one Result per change, in order.
	Apply(changes ...Change) []Result
	// Forget deletes the machine's record and its served config; ok is
	// false when there was none.
	Forget(mac machine.MAC) (ok bool, err error)
	// PutServed keeps what was served to mac; ok is false (nothing kept)
	// when mac has no record.
	PutServed(mac machine.MAC, sv Served) (ok bool, err error)
	// Served returns what was kept of the config last served to mac.
	Served(mac machine.MAC) (sv Served, ok bool, err error)
	// Event returns an event of kind k stamped with the store's clock.
	Event(k machine.EventKind, detail string, bytes int64) machine.Event
	// Token returns the machine's config token; every store sharing a
	// token secret (every etcd replica on one prefix) returns the same.
	Token(m Machine) string
	// CheckToken reports, in constant time, whether token is m's.
	CheckToken(m Machine, token string) bool
	// MaskTag returns a short tag of a secret value for masked configs.
	MaskTag(value string) string
	// Sweep forgets the discovered records beyond their bounds
	// (Options.DiscoveredTTL, Options.DiscoveredMax), returning how many.
	Sweep() (int, error)
	// Expire calls Sweep at each tick until ctx is cancelled.
	Expire(ctx context.Context, tick <-chan time.Time) error
	// Health returns nil when the store serves reads and writes, else
	// why not. It never blocks.
	Health() error
	// Close releases the store.
	Close() error
}

// Backupper is what a store that keeps backups of its own offers: the
// bbolt Store does; an etcd store leaves backups to etcd's snapshots.
type Backupper interface {
	// Backups takes a backup at each tick until ctx is cancelled.
	Backups(ctx context.Context, tick <-chan time.Time) error
}

var (
	_ Backend   = (*Store)(nil)
	_ Backupper = (*Store)(nil)
)

// ErrUnavailable marks a write, or a Health, of a store whose shared
// database does not answer (etcd: quorum lost or every endpoint
// unreachable). Reads keep answering from memory meanwhile.
var ErrUnavailable = errors.New("shared state store unavailable")

// token is Token under secret: an HMAC of the MAC and generation, so it
// is unguessable, stable across restarts, identical on every replica
// sharing secret, and rotated by Reinstall.
func token(secret []byte, m Machine) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(m.MAC.String()))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatUint(m.Generation, 10)))
	// 128 bits are plenty against guessing and keep the kernel command line short.
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// maskTag is MaskTag under secret: 32 bits of an HMAC-SHA256 under a key
// derived from secret, so equal values get equal tags and a changed
// secret a changed one, while a tag alone says nothing of the value.
func maskTag(secret []byte, value string) string {
	k := hmac.New(sha256.New, secret)
	k.Write([]byte("tinderbox served-config mask"))
	h := hmac.New(sha256.New, k.Sum(nil))
	h.Write([]byte(value))
	return hex.EncodeToString(h.Sum(nil)[:4])
}

// trimTo bounds m: its event log to the newest max, each text field to
// its limit.
func trimTo(m *Machine, max int) {
	if over := len(m.Events) - max; over > 0 {
		m.Events = append([]machine.Event(nil), m.Events[over:]...)
	}
	m.bound()
}

// expire calls sweep each time tick delivers, until ctx is cancelled;
// a failed sweep is logged and tried again at the next tick.
func expire(ctx context.Context, tick <-chan time.Time, sweep func() (int, error), log *slog.Logger, ttl time.Duration, max int) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			n, err := sweep()
			if err != nil {
				log.Error("state: sweep discovered machines", "err", err)
			} else if n > 0 {
				log.Info("discovered machines forgotten", "count", n, "ttl", ttl, "max", max)
			}
		}
	}
}
