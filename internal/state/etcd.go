package state

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tinderbox-boot/tinderbox/internal/metrics"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// The etcd store (OpenEtcd) keeps the same records as the bbolt Store in
// an etcd cluster several tinderbox replicas share. Under its prefix
// (EtcdOptions.Prefix, "/tinderbox/" by default):
//
//	<prefix>secret          the token secret, hex; created once
//	<prefix>machines/<mac>  a Machine as JSON, its event log inside
//	<prefix>served/<mac>    a Served as JSON
//
// A machine's event log lives in its record, not under a key of its
// own: one compare on the record's ModRevision then covers the state and
// the log together, one watch event carries the whole change to every
// replica's cache, and the record stays bounded (Options.MaxEvents,
// clipped text fields: under 128 KiB, far below etcd's 1.5 MiB request
// limit). The served config is apart, as in bbolt, because it is the
// largest value and changes least often: a boot event does not rewrite it.
//
// Every replica keeps a cache of the prefix: one ranged Get at start,
// then a Watch from the revision after it. Reads answer from the cache;
// writes are transactions with a compare on the record's ModRevision
// (CreateRevision 0 for a new one) and are applied to the cache as soon
// as etcd has committed them, so a replica reads its own writes at once
// and another replica's as soon as its watch delivers them.

const (
	// DefaultEtcdPrefix is where the records live when
	// EtcdOptions.Prefix is empty.
	DefaultEtcdPrefix = "/tinderbox/"
	// DefaultEtcdDialTimeout bounds the first connection to etcd.
	DefaultEtcdDialTimeout = 5 * time.Second
	// DefaultEtcdRequestTimeout bounds a write (its retries included),
	// and the probe: a healthy cluster commits in milliseconds, so five
	// seconds means no quorum (an election takes about one).
	DefaultEtcdRequestTimeout = 5 * time.Second
	// DefaultEtcdProbeInterval is how often the store checks that etcd
	// answers with a linearizable read, so Health clears by itself.
	DefaultEtcdProbeInterval = 2 * time.Second
	// etcdMaxAttempts bounds a write's retries on a record another
	// replica changed between the read and the commit: each retry
	// follows a commit of someone else's, so sixteen in a row means a
	// storm of writes to one machine, which no boot flow makes.
	etcdMaxAttempts = 16
	// etcdBatch is how many machines' changes of one Apply share a
	// transaction: two puts each (record, served config) stay within
	// etcd's default --max-txn-ops of 128.
	etcdBatch = 64
	// etcdBatchBytes bounds a batch's values: one larger (records near
	// their bounds, large served configs) is made change by change, each
	// far below etcd's 1.5 MiB request limit.
	etcdBatchBytes = 1 << 20
	// etcdApplyParallel is how many batches of one Apply are in flight at
	// once: etcd commits concurrent transactions together.
	etcdApplyParallel = 4
	// etcdLockStripes is the number of per-machine write locks: writes
	// to one machine from one replica queue on its lock instead of
	// failing each other's compares. A write-behind drain holds the
	// stripes of up to etcdApplyParallel × etcdBatch machines until etcd
	// commits; with 64 stripes that was nearly all of them, and the
	// storm's script and config writes of other machines queued behind
	// the drain (p99 0.4 s, docs/scale.md "Figures"). With 4096, such a
	// write meets a held stripe about 6 % of the time.
	etcdLockStripes = 4096
)

// EtcdOptions says where the etcd store's cluster is and how to reach it.
type EtcdOptions struct {
	// Endpoints are the cluster's client URLs (https://10.0.0.1:2379).
	Endpoints []string
	// Prefix is the key prefix of every record; "" means DefaultEtcdPrefix.
	// Replicas sharing one prefix share the machines and the token secret.
	Prefix string
	// DialTimeout bounds the first connection; 0 means DefaultEtcdDialTimeout.
	DialTimeout time.Duration
	// RequestTimeout bounds each write and probe; 0 means
	// DefaultEtcdRequestTimeout.
	RequestTimeout time.Duration
	// ProbeInterval is how often Health's probe reads; 0 means
	// DefaultEtcdProbeInterval.
	ProbeInterval time.Duration
	// TLS, when set, is the client's TLS configuration (CA, client cert).
	TLS *tls.Config
	// Username and Password, when set, authenticate to etcd.
	Username, Password string
}

// EtcdStore is the machine-state store on etcd, shared by every replica
// on the same prefix. It implements Backend; it is safe for concurrent
// use. Close it when done.
type EtcdStore struct {
	cli           *clientv3.Client
	prefix        string
	endpoints     string
	secret        []byte
	maxEvents     int
	discoveredMax int
	discoveredTTL time.Duration
	now           func() time.Time
	log           *slog.Logger
	onChange      func(Machine)
	reqTimeout    time.Duration
	probeEvery    time.Duration
	conflicts     prometheus.Counter

	// The cache, under mu: each readable record and served config with
	// the revision it was stored at; gone holds the revision of keys
	// deleted (by this replica or the watch) until the watch has passed
	// it, so that an older put the watch delivers late does not bring a
	// record back.
	mu         sync.RWMutex
	recs       map[machine.MAC]etcdRecord
	served     map[machine.MAC]etcdServed
	gone       map[string]int64
	unreadable map[string]struct{}
	discovered int

	seed  maphash.Seed
	locks [etcdLockStripes]chan struct{}

	// Health: when etcd stopped answering (zero while it answers) and
	// the last error.
	hmu       sync.Mutex
	downSince time.Time
	downErr   error

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// etcdRecord is a cached machine record: the whole record, its summary,
// and the ModRevision it was stored at.
type etcdRecord struct {
	m   Machine
	sum Summary
	rev int64
}

type etcdServed struct {
	sv  Served
	rev int64
}

var (
	_ Backend = (*EtcdStore)(nil)
)

// OpenEtcd connects to the cluster in eo, creates the token secret under
// the prefix unless a replica already has (then it uses that one, so
// every replica issues the same tokens), fills the cache with one ranged
// read and starts watching. Of opts it uses MaxEvents, DiscoveredMax,
// DiscoveredTTL, Now, Logger, OnChange and Registerer; the rest concern
// bbolt's file. It fails, naming the endpoints, when etcd does not answer
// within DialTimeout plus RequestTimeout.
func OpenEtcd(opts Options, eo EtcdOptions) (*EtcdStore, error) {
	if len(eo.Endpoints) == 0 {
		return nil, errors.New("state: etcd: no endpoints")
	}
	opts = opts.withDefaults()
	s := &EtcdStore{
		prefix: eo.Prefix, endpoints: strings.Join(eo.Endpoints, ","),
		maxEvents: opts.MaxEvents, discoveredMax: opts.DiscoveredMax, discoveredTTL: opts.DiscoveredTTL,
		now: opts.Now, log: opts.Logger, onChange: opts.OnChange,
		reqTimeout: eo.RequestTimeout, probeEvery: eo.ProbeInterval,
		recs: map[machine.MAC]etcdRecord{}, served: map[machine.MAC]etcdServed{},
		gone: map[string]int64{}, unreadable: map[string]struct{}{}, seed: maphash.MakeSeed(),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "state", Name: "etcd_conflicts_total",
			Help: "Writes to etcd whose compare failed because the record changed since it was read (another replica's write, mostly); each was retried on the record as stored.",
		}),
	}
	if s.prefix == "" {
		s.prefix = DefaultEtcdPrefix
	}
	if s.reqTimeout <= 0 {
		s.reqTimeout = DefaultEtcdRequestTimeout
	}
	if s.probeEvery <= 0 {
		s.probeEvery = DefaultEtcdProbeInterval
	}
	dial := eo.DialTimeout
	if dial <= 0 {
		dial = DefaultEtcdDialTimeout
	}
	for i := range s.locks {
		s.locks[i] = make(chan struct{}, 1)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: eo.Endpoints, DialTimeout: dial, TLS: eo.TLS,
		Username: eo.Username, Password: eo.Password,
		// The client's own logging is zap; what matters of it reaches
		// tinderbox's log as this store's errors and Health.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("state: etcd %s: %w", s.endpoints, err)
	}
	s.cli = cli
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if opts.Registerer != nil {
		if err := s.register(opts.Registerer); err != nil {
			s.Close()
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, dial+s.reqTimeout)
	defer cancel()
	if err := s.ensureSecret(ctx); err != nil {
		s.Close()
		return nil, err
	}
	rev, err := s.load(ctx)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("state: etcd %s: read %s: %w", s.endpoints, s.prefix, err)
	}
	s.wg.Add(2)
	go s.watch(rev)
	go s.probe()
	if _, err := s.Sweep(); err != nil {
		s.log.Warn("state: sweep discovered machines at start", "err", err)
	}
	return s, nil
}

func (s *EtcdStore) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		s.conflicts,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "state", Name: "healthy",
			Help: "1 when the state store serves reads and writes, 0 when it is degraded (etcd: no quorum or unreachable).",
		}, func() float64 {
			if s.Health() != nil {
				return 0
			}
			return 1
		}),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("state: metrics: %w", err)
		}
	}
	return nil
}

func (s *EtcdStore) secretKey() string               { return s.prefix + "secret" }
func (s *EtcdStore) machineKey(m machine.MAC) string { return s.prefix + "machines/" + m.String() }
func (s *EtcdStore) servedKey(m machine.MAC) string  { return s.prefix + "served/" + m.String() }

// ensureSecret creates the token secret in one transaction that puts it
// only where none exists, and otherwise reads the one there: every
// replica, however they race at first start, ends up with the same.
func (s *EtcdStore) ensureSecret(ctx context.Context) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("state: token key: %w", err)
	}
	k := s.secretKey()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, hex.EncodeToString(key))).
		Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return fmt.Errorf("state: etcd %s: token secret %s: %w", s.endpoints, k, err)
	}
	if resp.Succeeded {
		s.secret = key
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return fmt.Errorf("state: etcd: token secret %s: deleted while read; start again", k)
	}
	got, err := hex.DecodeString(string(bytes.TrimSpace(kvs[0].Value)))
	if err != nil || len(got) < 32 {
		return fmt.Errorf("state: etcd: %s: not a hex key of at least 32 bytes; delete it to make a new one (issued config tokens change)", k)
	}
	s.secret = got
	return nil
}

// load reads the whole prefix and replaces the cache with it, keeping
// what this replica wrote after the read's revision; it tells OnChange
// of every record that changed. It returns the read's revision.
func (s *EtcdStore) load(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	rev := resp.Header.Revision
	recs := map[machine.MAC]etcdRecord{}
	served := map[machine.MAC]etcdServed{}
	bad := map[string]struct{}{}
	for _, kv := range resp.Kvs {
		kind, mac, ok := s.parseKey(string(kv.Key))
		if !ok {
			continue
		}
		switch kind {
		case "machines":
			if r, err := decodeRecord(mac, kv.Value, kv.ModRevision); err != nil {
				bad[mac.String()] = struct{}{}
				s.log.Error("state: record does not decode: it is left out of lists; forget the machine to drop it", "mac", mac, "err", err)
			} else {
				recs[mac] = r
			}
		case "served":
			var sv Served
			if err := json.Unmarshal(kv.Value, &sv); err == nil {
				served[mac] = etcdServed{sv: sv, rev: kv.ModRevision}
			}
		}
	}
	var notes []Machine
	s.mu.Lock()
	for mac, old := range s.recs {
		if old.rev > rev {
			recs[mac] = old
			continue
		}
		if _, ok := recs[mac]; !ok {
			notes = append(notes, Machine{MAC: mac})
		}
	}
	for mac, r := range recs {
		if old, ok := s.recs[mac]; !ok || old.rev != r.rev {
			notes = append(notes, r.m)
		}
	}
	for mac, old := range s.served {
		if old.rev > rev {
			served[mac] = old
		}
	}
	for k, grev := range s.gone {
		if grev <= rev {
			delete(s.gone, k)
			continue
		}
		if kind, mac, ok := s.parseKey(k); ok {
			if kind == "machines" {
				delete(recs, mac)
			} else {
				delete(served, mac)
			}
		}
	}
	s.recs, s.served, s.unreadable = recs, served, bad
	s.discovered = 0
	for _, r := range recs {
		if r.sum.State == machine.Discovered {
			s.discovered++
		}
	}
	s.mu.Unlock()
	for _, m := range notes {
		s.notify(m)
	}
	return rev, nil
}

// parseKey splits a key under the prefix into its kind ("machines",
// "served") and MAC; ok is false for any other key.
func (s *EtcdStore) parseKey(k string) (kind string, mac machine.MAC, ok bool) {
	rest, found := strings.CutPrefix(k, s.prefix)
	if !found {
		return "", mac, false
	}
	kind, m, found := strings.Cut(rest, "/")
	if !found || (kind != "machines" && kind != "served") {
		return "", mac, false
	}
	mac, err := machine.ParseMAC(m)
	return kind, mac, err == nil
}

func decodeRecord(mac machine.MAC, v []byte, rev int64) (etcdRecord, error) {
	var m Machine
	if err := json.Unmarshal(v, &m); err != nil {
		return etcdRecord{}, err
	}
	m.MAC = mac
	return etcdRecord{m: m, sum: m.Summary(), rev: rev}, nil
}

// watch keeps the cache current from rev on, until Close. A watch that
// ends (compacted past its revision, its member lost its leader, the
// connection broke) is replaced: the prefix is read again and a new
// watch starts after that read.
func (s *EtcdStore) watch(rev int64) {
	defer s.wg.Done()
	for {
		// WithRequireLeader ends the watch when its member loses the
		// leader, instead of leaving it silent on a partitioned member.
		ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(s.ctx))
		for resp := range s.cli.Watch(ctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
			if resp.CompactRevision != 0 || resp.Err() != nil || resp.Canceled {
				if s.ctx.Err() == nil {
					s.log.Warn("state: etcd watch ended; reading the records again", "revision", rev, "compacted", resp.CompactRevision, "err", resp.Err())
				}
				break
			}
			for _, ev := range resp.Events {
				s.applyKV(string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision, ev.Type == clientv3.EventTypeDelete)
				rev = max(rev, ev.Kv.ModRevision)
			}
			s.pruneGone(rev)
		}
		cancel()
		for {
			if s.ctx.Err() != nil {
				return
			}
			lctx, lcancel := context.WithTimeout(s.ctx, s.reqTimeout)
			r, err := s.load(lctx)
			lcancel()
			if err == nil {
				rev = r
				break
			}
			s.markDown(err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(s.probeEvery):
			}
		}
	}
}

// probe reads the secret key, linearizably (which needs the quorum),
// every probeEvery, marking the store down or up.
func (s *EtcdStore) probe() {
	defer s.wg.Done()
	t := time.NewTicker(s.probeEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.reqTimeout)
		_, err := s.cli.Get(ctx, s.secretKey())
		cancel()
		switch {
		case s.ctx.Err() != nil:
			return
		case err != nil:
			s.markDown(err)
		default:
			s.markUp()
		}
	}
}

func (s *EtcdStore) markDown(err error) {
	s.hmu.Lock()
	first := s.downSince.IsZero()
	if first {
		s.downSince = s.now()
	}
	s.downErr = err
	s.hmu.Unlock()
	if first {
		s.log.Error("state: etcd does not answer: writes fail, reads answer from this replica's cache", "endpoints", s.endpoints, "err", err)
	}
}

func (s *EtcdStore) markUp() {
	s.hmu.Lock()
	was := s.downSince
	s.downSince, s.downErr = time.Time{}, nil
	s.hmu.Unlock()
	if !was.IsZero() {
		s.log.Info("state: etcd answers again", "endpoints", s.endpoints, "down_for", s.now().Sub(was).Round(time.Second))
	}
}

// Health returns nil while etcd answers. Once a write or the probe (a
// linearizable read every EtcdOptions.ProbeInterval) failed, it returns
// an error wrapping ErrUnavailable that says since when, until the next
// probe or write succeeds. It never blocks.
func (s *EtcdStore) Health() error {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	if s.downSince.IsZero() {
		return nil
	}
	return fmt.Errorf("state: etcd: %w: no quorum or unreachable since %s (%s): %v",
		ErrUnavailable, s.downSince.UTC().Format(time.RFC3339), s.endpoints, s.downErr)
}

// applyKV applies a put (or a delete) of key stored at rev to the cache,
// unless the cache holds that key at rev or later, and tells OnChange
// of a machine's change.
func (s *EtcdStore) applyKV(key string, val []byte, rev int64, del bool) {
	kind, mac, ok := s.parseKey(key)
	if !ok {
		return
	}
	s.mu.Lock()
	note, changed := s.applyLocked(kind, mac, val, rev, del)
	s.mu.Unlock()
	if changed && kind == "machines" {
		s.notify(note)
	}
}

// applyLocked is applyKV under mu; it returns the machine to tell
// OnChange of and whether the cache changed.
func (s *EtcdStore) applyLocked(kind string, mac machine.MAC, val []byte, rev int64, del bool) (Machine, bool) {
	key := s.prefix + kind + "/" + mac.String()
	if g, ok := s.gone[key]; ok && g >= rev {
		return Machine{}, false
	}
	if kind == "served" {
		if old, ok := s.served[mac]; ok && old.rev >= rev {
			return Machine{}, false
		}
		if del {
			delete(s.served, mac)
			s.gone[key] = rev
			return Machine{}, true
		}
		var sv Served
		if err := json.Unmarshal(val, &sv); err != nil {
			return Machine{}, false
		}
		s.served[mac] = etcdServed{sv: sv, rev: rev}
		delete(s.gone, key)
		return Machine{}, true
	}
	old, had := s.recs[mac]
	if had && old.rev >= rev {
		return Machine{}, false
	}
	if had && old.sum.State == machine.Discovered {
		s.discovered--
	}
	if del {
		delete(s.recs, mac)
		delete(s.unreadable, mac.String())
		s.gone[key] = rev
		return Machine{MAC: mac}, had
	}
	r, err := decodeRecord(mac, val, rev)
	if err != nil {
		delete(s.recs, mac)
		s.unreadable[mac.String()] = struct{}{}
		s.log.Error("state: record does not decode: it is left out of lists; forget the machine to drop it", "mac", mac, "err", err)
		return Machine{}, false
	}
	delete(s.unreadable, mac.String())
	delete(s.gone, key)
	s.recs[mac] = r
	if r.sum.State == machine.Discovered {
		s.discovered++
	}
	return r.m, true
}

// pruneGone forgets the deletes the watch has passed.
func (s *EtcdStore) pruneGone(rev int64) {
	s.mu.Lock()
	for k, g := range s.gone {
		if g <= rev {
			delete(s.gone, k)
		}
	}
	s.mu.Unlock()
}

func (s *EtcdStore) notify(m Machine) {
	if s.onChange != nil {
		s.onChange(m)
	}
}

// cached returns mac's record from the cache, with its revision (0 for
// none); an unreadable record is an error.
func (s *EtcdStore) cached(mac machine.MAC) (etcdRecord, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.recs[mac]
	if !ok {
		if _, bad := s.unreadable[mac.String()]; bad {
			return etcdRecord{}, false, fmt.Errorf("record %s does not decode", mac)
		}
	}
	return r, ok, nil
}

// Get returns the machine recorded under mac, with its event log, from
// the cache; ok is false when there is none.
func (s *EtcdStore) Get(mac machine.MAC) (Machine, bool, error) {
	r, ok, err := s.cached(mac)
	if err != nil {
		return Machine{}, false, fmt.Errorf("state: get %s: %w", mac, err)
	}
	m := r.m
	m.Events = slices.Clone(m.Events)
	return m, ok, nil
}

// Peek returns mac's summary as a Machine without events, from the cache.
func (s *EtcdStore) Peek(mac machine.MAC) (Machine, bool, error) {
	r, ok, err := s.cached(mac)
	if err != nil {
		return Machine{}, false, fmt.Errorf("state: get %s: %w", mac, err)
	}
	return r.sum.machine(), ok, nil
}

// List returns every cached machine's summary, ordered by MAC.
func (s *EtcdStore) List() ([]Summary, error) {
	s.mu.RLock()
	out := make([]Summary, 0, len(s.recs))
	for _, r := range s.recs {
		out = append(out, r.sum)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Summary) int { return bytes.Compare(a.MAC[:], b.MAC[:]) })
	return out, nil
}

// CountByState returns how many cached machines are in each state.
func (s *EtcdStore) CountByState() map[machine.State]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[machine.State]int{}
	for _, r := range s.recs {
		out[r.sum.State]++
	}
	return out
}

// Served returns what was kept of the config last served to mac, from
// the cache.
func (s *EtcdStore) Served(mac machine.MAC) (Served, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sv, ok := s.served[mac]
	return sv.sv, ok, nil
}

// Event returns an event of kind k stamped with the store's clock.
func (s *EtcdStore) Event(k machine.EventKind, detail string, bytes int64) machine.Event {
	return machine.Event{Time: s.now(), Kind: k, Detail: detail, Bytes: bytes}
}

// Token returns the machine's config token under the secret every
// replica on the prefix shares.
func (s *EtcdStore) Token(m Machine) string { return token(s.secret, m) }

// CheckToken reports, in constant time, whether tok is the machine's.
func (s *EtcdStore) CheckToken(m Machine, tok string) bool {
	return hmac.Equal([]byte(s.Token(m)), []byte(tok))
}

// MaskTag returns a short tag of a secret value (Store.MaskTag), under
// the shared secret.
func (s *EtcdStore) MaskTag(value string) string { return maskTag(s.secret, value) }

func (s *EtcdStore) stripe(mac machine.MAC) int {
	return int(maphash.Bytes(s.seed, mac[:]) % etcdLockStripes)
}

// lock takes mac's write lock, waiting no longer than ctx.
func (s *EtcdStore) lock(ctx context.Context, mac machine.MAC) (func(), error) {
	l := s.locks[s.stripe(mac)]
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// writeCtx is the context of one write: RequestTimeout, ended by Close.
func (s *EtcdStore) writeCtx() (context.Context, context.CancelFunc, error) {
	if s.ctx.Err() != nil {
		return nil, nil, errClosed
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.reqTimeout)
	return ctx, cancel, nil
}

// failed wraps a write's error from etcd: a closed store's; one wrapping
// ErrUnavailable that marks the store down when etcd did not answer in
// time or has no leader; else etcd's refusal (authentication, a request
// too large), which says nothing of its quorum.
func (s *EtcdStore) failed(err error) error {
	if s.ctx.Err() != nil {
		return errClosed
	}
	if !unanswered(err) {
		return fmt.Errorf("etcd %s: %w", s.endpoints, err)
	}
	s.markDown(err)
	return fmt.Errorf("%w: etcd %s did not confirm the write within %s (no quorum or unreachable?; it may still commit once etcd recovers): %w", ErrUnavailable, s.endpoints, s.reqTimeout, err)
}

// unanswered reports whether err means etcd did not answer: a deadline
// passed, or gRPC's or etcd's Unavailable (no connection, no leader, a
// proposal timed out).
func unanswered(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var code codes.Code
	var ee rpctypes.EtcdError
	if errors.As(rpctypes.Error(err), &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	}
	return code == codes.Unavailable || code == codes.DeadlineExceeded
}

// lockFailed is the error of a write that waited for another write of
// the same machine (itself waiting for etcd) until its time ran out.
func (s *EtcdStore) lockFailed(err error) error {
	if s.ctx.Err() != nil {
		return errClosed
	}
	return fmt.Errorf("etcd: another write of this machine did not finish within %s: %w", s.reqTimeout, err)
}

// plan decides a write from the record as stored (exists false for
// none): the record to store (nil: store nothing) and what the write
// returns.
type plan func(cur Machine, exists bool) (next *Machine, out Machine, err error)

// modify stores what p makes of mac's record, with served when set, in
// one transaction that commits only if the record is still at the
// revision p saw; when another replica changed it meanwhile, it runs p
// again on the record as now stored, up to etcdMaxAttempts times. p's
// refusal of the cached record is confirmed on the record as etcd holds
// it (read), unless etcd does not answer.
func (s *EtcdStore) modify(ctx context.Context, mac machine.MAC, p plan, served *Served) (Machine, error) {
	unlock, err := s.lock(ctx, mac)
	if err != nil {
		return Machine{}, s.lockFailed(err)
	}
	defer unlock()
	r, exists, err := s.cached(mac)
	if err != nil {
		return Machine{}, err
	}
	key := s.machineKey(mac)
	// confirmed is set once r was read from etcd rather than the cache.
	confirmed := false
	for range etcdMaxAttempts {
		next, out, err := p(r.m, exists)
		if err != nil && !confirmed {
			// The cache may not hold another replica's latest write
			// yet (its watch delivers it a moment later): a refusal
			// stands only on the record as etcd holds it now. When
			// etcd does not answer, it stands on the cache.
			confirmed = true
			if cur, ok, rerr := s.read(ctx, mac); rerr == nil && (ok != exists || cur.rev != r.rev) {
				r, exists = cur, ok
				continue
			}
		}
		if err != nil || next == nil {
			return out, err
		}
		val, err := json.Marshal(next)
		if err != nil {
			return Machine{}, err
		}
		cmp := clientv3.Compare(clientv3.ModRevision(key), "=", r.rev)
		if !exists {
			cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		}
		ops := []clientv3.Op{clientv3.OpPut(key, string(val))}
		var sv []byte
		if served != nil {
			if sv, err = json.Marshal(served); err != nil {
				return Machine{}, err
			}
			ops = append(ops, clientv3.OpPut(s.servedKey(mac), string(sv)))
		}
		resp, err := s.cli.Txn(ctx).If(cmp).Then(ops...).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return Machine{}, s.failed(err)
		}
		s.markUp()
		if resp.Succeeded {
			rev := resp.Header.Revision
			s.applyKV(key, val, rev, false)
			if served != nil {
				s.applyKV(s.servedKey(mac), sv, rev, false)
			}
			if next.State == machine.Discovered {
				s.overflow(ctx, mac)
			}
			return out, nil
		}
		s.conflicts.Inc()
		confirmed = true
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			r, exists = etcdRecord{}, false
			continue
		}
		if r, err = decodeRecord(mac, kvs[0].Value, kvs[0].ModRevision); err != nil {
			return Machine{}, fmt.Errorf("record %s: %w", mac, err)
		}
		exists = true
	}
	return Machine{}, fmt.Errorf("etcd: the record changed under %d attempts in a row", etcdMaxAttempts)
}

// read returns mac's record as etcd holds it now (a linearizable read,
// which needs the quorum), and brings the cache up to it; ok is false
// when there is none.
func (s *EtcdStore) read(ctx context.Context, mac machine.MAC) (r etcdRecord, ok bool, err error) {
	key := s.machineKey(mac)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return etcdRecord{}, false, s.failed(err)
	}
	s.markUp()
	if len(resp.Kvs) == 0 {
		// No record at the read's revision: whatever the watch brings of
		// it from before that revision was deleted since.
		s.applyKV(key, nil, resp.Header.Revision, true)
		return etcdRecord{}, false, nil
	}
	kv := resp.Kvs[0]
	if r, err = decodeRecord(mac, kv.Value, kv.ModRevision); err != nil {
		return etcdRecord{}, false, fmt.Errorf("record %s: %w", mac, err)
	}
	s.applyKV(key, kv.Value, kv.ModRevision, false)
	return r, true, nil
}

// Latest returns mac's summary as a Machine without events, as Peek
// does, but as etcd holds it now rather than as the cache does: a
// linearizable read, one round trip to the cluster's leader, which
// also brings the cache up to it. It fails wrapping ErrUnavailable when
// etcd does not answer within EtcdOptions.RequestTimeout.
func (s *EtcdStore) Latest(mac machine.MAC) (Machine, bool, error) {
	ctx, cancel, err := s.writeCtx()
	if err != nil {
		return Machine{}, false, err
	}
	defer cancel()
	r, ok, err := s.read(ctx, mac)
	if err != nil {
		return Machine{}, false, fmt.Errorf("state: get %s: %w", mac, err)
	}
	return r.sum.machine(), ok, nil
}

// Update runs fn on the machine's record and stores the result in an
// etcd transaction (Backend.Update), as the bbolt Store does: a new
// record's FirstSeen is set, LastSeen is set when fn adds events, the
// log is trimmed and text fields clipped. When another replica changed
// the record since it was read, fn runs again on the record as stored
// (so two replicas racing one transition cannot both make it: the second
// fn sees the first's result). fn first runs on the cached record; when
// it refuses that (returns an error), the record is read from etcd and,
// if the cache had not caught up with it, fn runs again on it, so a
// replica whose watch lags refuses nothing another replica's write
// allowed. It fails wrapping ErrUnavailable when etcd
// did not confirm the commit within EtcdOptions.RequestTimeout. Such a
// write's outcome is unknown, as with any etcd client: a leader that
// took it into its log before losing its quorum commits it once its
// peers are back, and the watch then brings it to every cache. The
// caller must treat it as not made (and refuse what depended on it),
// never as made.
func (s *EtcdStore) Update(mac machine.MAC, fn func(m *Machine, exists bool) error) (Machine, error) {
	ctx, cancel, err := s.writeCtx()
	if err != nil {
		return Machine{}, err
	}
	defer cancel()
	m, err := s.modify(ctx, mac, s.updatePlan(mac, fn), nil)
	if err != nil {
		return Machine{}, fmt.Errorf("state: update %s: %w", mac, err)
	}
	return m, nil
}

func (s *EtcdStore) updatePlan(mac machine.MAC, fn func(*Machine, bool) error) plan {
	return func(cur Machine, exists bool) (*Machine, Machine, error) {
		m := cur
		m.Events = slices.Clone(cur.Events)
		grew, err := s.edit(mac, fn, &m, exists)
		if err != nil {
			return nil, Machine{}, err
		}
		if grew && len(m.Events) > 0 {
			m.LastSeen = m.Events[len(m.Events)-1].Time
		}
		return &m, m, nil
	}
}

// edit runs fn on m, mac's record (a new one when exists is false,
// whose FirstSeen and LastSeen it sets to now), then folds the runs of
// repeated events in its log (machine.CoalesceLog), trims the log to
// Options.MaxEvents and clips its text fields; grew says whether fn
// changed the log's length. fn's error, or its recovered panic, is
// returned and m is then not to be stored.
func (s *EtcdStore) edit(mac machine.MAC, fn func(*Machine, bool) error, m *Machine, exists bool) (grew bool, err error) {
	m.MAC = mac
	before := len(m.Events)
	if err := callFn(fn, m, exists); err != nil {
		return false, err
	}
	grew = len(m.Events) != before
	if !exists {
		now := s.now()
		m.FirstSeen, m.LastSeen = now, now
	}
	m.bound() // details clipped as the stored ones were, then compared
	m.Events = machine.CoalesceLog(m.Events)
	trimTo(m, s.maxEvents)
	return grew, nil
}

// applyPlan is a Change's plan: Fn sees the record without its log, the
// events it appends are added to the stored log (merged in time order,
// and the runs of repeats folded, when older than its newest), and the
// result carries only them; the first of them, when it repeats the
// stored newest (machine.Coalesce), replaces it with the run of both,
// which the result then carries, with its count.
func (s *EtcdStore) applyPlan(mac machine.MAC, fn func(*Machine, bool) error) plan {
	return func(cur Machine, exists bool) (*Machine, Machine, error) {
		stored := cur.Events
		m := cur
		m.Events = nil
		if _, err := s.edit(mac, fn, &m, exists); err != nil {
			return nil, Machine{}, err
		}
		added := m.Events
		full := m
		full.Events = append(slices.Clone(stored), added...)
		if n := len(stored); n > 0 && len(added) > 0 {
			if !slices.IsSortedFunc(added, byTime) || added[0].Time.Before(stored[n-1].Time) {
				full.Events = machine.CoalesceLog(slices.SortedStableFunc(slices.Values(full.Events), byTime))
			} else if run, ok := machine.Coalesce(stored[n-1], added[0]); ok {
				added[0] = run
				full.Events = append(full.Events[:n-1], added...)
			}
		}
		trimTo(&full, s.maxEvents)
		if len(added) > 0 {
			full.LastSeen = full.Events[len(full.Events)-1].Time
			m.LastSeen = full.LastSeen
		}
		return &full, m, nil
	}
}

// Apply stores changes (Backend.Apply). The changes are taken in rounds
// (the first change of each machine, then the second, …, so that changes
// to one machine are made in order, each Fn seeing what the one before
// stored), and each round in batches of up to etcdBatch machines, each
// batch one transaction comparing every record's revision: a drain of
// the write queue costs a few commits, not one per machine. A batch whose
// compare fails (another replica changed one of its records) is made
// change by change instead, each retried as Update's are. A change whose
// Fn refuses the cached record is made alone, as Update's are (its
// refusal confirmed on the record as etcd holds it). A change whose Fn
// fails stores nothing; the others are stored. Once etcd does not
// answer, the changes not yet made fail at once, each with an error
// wrapping ErrUnavailable.
func (s *EtcdStore) Apply(changes ...Change) []Result {
	out := make([]Result, len(changes))
	if s.ctx.Err() != nil {
		for i := range out {
			out[i].Err = errClosed
		}
		return out
	}
	nth := map[machine.MAC]int{}
	var rounds [][]int
	for i, c := range changes {
		k := nth[c.MAC]
		nth[c.MAC] = k + 1
		if k == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[k] = append(rounds[k], i)
	}
	abort, stop := context.WithCancel(s.ctx)
	defer stop()
	for _, round := range rounds {
		sem := make(chan struct{}, etcdApplyParallel)
		var wg sync.WaitGroup
		for batch := range slices.Chunk(round, etcdBatch) {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				s.applyBatch(abort, stop, changes, batch, out)
			})
		}
		wg.Wait()
	}
	return out
}

// applyBatch makes the changes of idx, one per machine, in one
// transaction, setting their results in out; see Apply. stop aborts the
// rest of the Apply when etcd does not answer.
func (s *EtcdStore) applyBatch(parent context.Context, stop func(), changes []Change, idx []int, out []Result) {
	if parent.Err() != nil {
		for _, i := range idx {
			out[i].Err = fmt.Errorf("state: update %s: %w: an earlier change of the same Apply found etcd %s unavailable", changes[i].MAC, ErrUnavailable, s.endpoints)
		}
		return
	}
	ctx, cancel := context.WithTimeout(parent, s.reqTimeout)
	defer cancel()
	macs := make([]machine.MAC, len(idx))
	for j, i := range idx {
		macs[j] = changes[i].MAC
	}
	unlock, err := s.lockAll(ctx, macs)
	if err != nil {
		for _, i := range idx {
			out[i].Err = fmt.Errorf("state: update %s: %w", changes[i].MAC, s.lockFailed(err))
		}
		return
	}
	var (
		puts  []batchPut
		cmps  []clientv3.Cmp
		ops   []clientv3.Op
		alone []int
	)
	defer func() {
		for _, i := range alone {
			if parent.Err() == nil {
				out[i] = s.applyOne(parent, changes[i])
			}
		}
	}()
	for _, i := range idx {
		c := changes[i]
		fail := func(err error) { out[i].Err = fmt.Errorf("state: update %s: %w", c.MAC, err) }
		r, exists, err := s.cached(c.MAC)
		if err != nil {
			fail(err)
			continue
		}
		mk := s.machineKey(c.MAC)
		p := batchPut{i: i, key: mk}
		if c.Fn == nil {
			out[i].Machine = r.sum.machine()
			if !exists || c.Served == nil {
				continue
			}
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(mk), ">", 0))
		} else {
			next, o, err := s.applyPlan(c.MAC, c.Fn)(r.m, exists)
			if err != nil {
				// Refused on the cached record: made alone, where the
				// refusal is confirmed on the record as etcd holds it.
				fail(err)
				alone = append(alone, i)
				continue
			}
			if p.val, err = json.Marshal(next); err != nil {
				fail(err)
				continue
			}
			p.out, p.record, p.discover = o, true, next.State == machine.Discovered
			if exists {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(mk), "=", r.rev))
			} else {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(mk), "=", 0))
			}
			ops = append(ops, clientv3.OpPut(mk, string(p.val)))
		}
		if c.Served != nil {
			if p.sv, err = json.Marshal(c.Served); err != nil {
				fail(err)
				continue
			}
			ops = append(ops, clientv3.OpPut(s.servedKey(c.MAC), string(p.sv)))
		}
		puts = append(puts, p)
	}
	if len(puts) == 0 {
		unlock()
		return
	}
	size := 0
	for _, p := range puts {
		size += len(p.val) + len(p.sv)
	}
	if size > etcdBatchBytes {
		unlock()
		s.applyEach(parent, stop, changes, puts, out)
		return
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		unlock()
		err = s.failed(err)
		stop()
		for _, p := range puts {
			out[p.i] = Result{Err: fmt.Errorf("state: update %s: %w", changes[p.i].MAC, err)}
		}
		return
	}
	s.markUp()
	if resp.Succeeded {
		rev := resp.Header.Revision
		discovered := false
		for _, p := range puts {
			mac := changes[p.i].MAC
			if p.record {
				s.applyKV(p.key, p.val, rev, false)
				out[p.i].Machine = p.out
			}
			if p.sv != nil {
				s.applyKV(s.servedKey(mac), p.sv, rev, false)
			}
			discovered = discovered || p.discover
		}
		if discovered {
			s.overflow(ctx, machine.MAC{})
		}
		unlock()
		return
	}
	// Another replica changed one of the records since it was read: make
	// each change alone, on its record as stored.
	s.conflicts.Inc()
	unlock()
	s.applyEach(parent, stop, changes, puts, out)
}

// applyEach makes the changes of a batch that cannot be one transaction
// one by one.
func (s *EtcdStore) applyEach(parent context.Context, stop func(), changes []Change, puts []batchPut, out []Result) {
	for _, p := range puts {
		if parent.Err() != nil {
			out[p.i] = Result{Err: fmt.Errorf("state: update %s: %w: an earlier change of the same Apply found etcd %s unavailable", changes[p.i].MAC, ErrUnavailable, s.endpoints)}
			continue
		}
		out[p.i] = s.applyOne(parent, changes[p.i])
		if errors.Is(out[p.i].Err, ErrUnavailable) {
			stop()
		}
	}
}

// batchPut is one change of a batch, as staged for its transaction.
type batchPut struct {
	i   int    // its index in Apply's changes
	key string // its record's key
	// val is the record to put (nil for a change of the served config
	// only), sv the served config (nil for none).
	val, sv []byte
	out     Machine
	// record says val is put; discover that it is a discovered record.
	record, discover bool
}

// lockAll takes the write locks of macs, in stripe order (so that two
// batches never wait for each other's), waiting no longer than ctx.
func (s *EtcdStore) lockAll(ctx context.Context, macs []machine.MAC) (func(), error) {
	var stripes []int
	for _, mac := range macs {
		stripes = append(stripes, s.stripe(mac))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	held := 0
	release := func() {
		for _, st := range stripes[:held] {
			<-s.locks[st]
		}
	}
	for _, st := range stripes {
		select {
		case s.locks[st] <- struct{}{}:
			held++
		case <-ctx.Done():
			release()
			return nil, ctx.Err()
		}
	}
	return release, nil
}

func (s *EtcdStore) applyOne(parent context.Context, c Change) Result {
	ctx, cancel := context.WithTimeout(parent, s.reqTimeout)
	defer cancel()
	if c.Fn == nil {
		r, exists, err := s.cached(c.MAC)
		if err != nil {
			return Result{Err: fmt.Errorf("state: update %s: %w", c.MAC, err)}
		}
		if exists && c.Served != nil {
			if _, err := s.putServed(ctx, c.MAC, *c.Served); err != nil {
				return Result{Err: fmt.Errorf("state: update %s: %w", c.MAC, err)}
			}
		}
		return Result{Machine: r.sum.machine()}
	}
	m, err := s.modify(ctx, c.MAC, s.applyPlan(c.MAC, c.Fn), c.Served)
	if err != nil {
		return Result{Err: fmt.Errorf("state: update %s: %w", c.MAC, err)}
	}
	return Result{Machine: m}
}

// PutServed keeps what was served to mac, in a transaction that stores
// it only while mac has a record; ok is false when it has none.
func (s *EtcdStore) PutServed(mac machine.MAC, sv Served) (bool, error) {
	ctx, cancel, err := s.writeCtx()
	if err != nil {
		return false, err
	}
	defer cancel()
	ok, err := s.putServed(ctx, mac, sv)
	if err != nil {
		return false, fmt.Errorf("state: keep served config of %s: %w", mac, err)
	}
	return ok, nil
}

func (s *EtcdStore) putServed(ctx context.Context, mac machine.MAC, sv Served) (bool, error) {
	v, err := json.Marshal(sv)
	if err != nil {
		return false, err
	}
	key := s.servedKey(mac)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.machineKey(mac)), ">", 0)).
		Then(clientv3.OpPut(key, string(v))).Commit()
	if err != nil {
		return false, s.failed(err)
	}
	s.markUp()
	if resp.Succeeded {
		s.applyKV(key, v, resp.Header.Revision, false)
	}
	return resp.Succeeded, nil
}

// Forget deletes the machine's record and its served config in one
// transaction, an unreadable record included; ok is false when there
// was none.
func (s *EtcdStore) Forget(mac machine.MAC) (bool, error) {
	ctx, cancel, err := s.writeCtx()
	if err != nil {
		return false, err
	}
	defer cancel()
	unlock, err := s.lock(ctx, mac)
	if err != nil {
		return false, fmt.Errorf("state: forget %s: %w", mac, s.lockFailed(err))
	}
	defer unlock()
	mk, sk := s.machineKey(mac), s.servedKey(mac)
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpDelete(mk), clientv3.OpDelete(sk)).Commit()
	if err != nil {
		return false, fmt.Errorf("state: forget %s: %w", mac, s.failed(err))
	}
	s.markUp()
	rev := resp.Header.Revision
	s.applyKV(sk, nil, rev, true)
	s.applyKV(mk, nil, rev, true)
	return resp.Responses[0].GetResponseDeleteRange().Deleted > 0, nil
}

// deleteIfUnchanged deletes mac's record (and served config) only if it
// is still at rev: a replica sweeping a record another replica has just
// seen again leaves it. ok is false when it was not deleted.
func (s *EtcdStore) deleteIfUnchanged(ctx context.Context, mac machine.MAC, rev int64) (bool, error) {
	mk, sk := s.machineKey(mac), s.servedKey(mac)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(mk), "=", rev)).
		Then(clientv3.OpDelete(mk), clientv3.OpDelete(sk)).Commit()
	if err != nil {
		return false, s.failed(err)
	}
	if !resp.Succeeded {
		return false, nil
	}
	s.applyKV(sk, nil, resp.Header.Revision, true)
	s.applyKV(mk, nil, resp.Header.Revision, true)
	return true, nil
}

// oldestDiscovered returns up to n cached discovered records, least
// recently seen first (ties by MAC), with their revisions, passing over
// those skip names.
func (s *EtcdStore) oldestDiscovered(n int, skip func(machine.MAC) bool) []etcdRecord {
	s.mu.RLock()
	var rs []etcdRecord
	for mac, r := range s.recs {
		if r.sum.State == machine.Discovered && !skip(mac) {
			rs = append(rs, r)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(rs, func(a, b etcdRecord) int {
		if c := a.sum.LastSeen.Compare(b.sum.LastSeen); c != 0 {
			return c
		}
		return bytes.Compare(a.sum.MAC[:], b.sum.MAC[:])
	})
	return rs[:min(n, len(rs))]
}

// overflow forgets the least recently seen discovered records other than
// mac beyond Options.DiscoveredMax, after mac was stored as discovered.
// Unlike bbolt's, it is not in the write's transaction: each delete
// compares the record's revision, so what another replica has just
// changed stays; a failed delete is logged and left to the next write or
// Sweep.
func (s *EtcdStore) overflow(ctx context.Context, mac machine.MAC) {
	s.mu.RLock()
	over := s.discovered - s.discoveredMax
	s.mu.RUnlock()
	if over <= 0 {
		return
	}
	for _, r := range s.oldestDiscovered(over, func(k machine.MAC) bool { return k == mac }) {
		if _, err := s.deleteIfUnchanged(ctx, r.sum.MAC, r.rev); err != nil {
			s.log.Warn("state: forget a discovered machine over state.discovered.max", "mac", r.sum.MAC, "err", err)
			return
		}
		s.log.Debug("discovered machine forgotten: over state.discovered.max", "mac", r.sum.MAC, "max", s.discoveredMax)
	}
}

// Sweep forgets the cached discovered records last seen longer ago than
// Options.DiscoveredTTL, then the least recently seen beyond
// Options.DiscoveredMax, each in a transaction that deletes it only if
// it is unchanged: several replicas may sweep at once, and a record one
// of them has just seen again is left. It returns how many it forgot.
func (s *EtcdStore) Sweep() (int, error) {
	ctx, cancel, err := s.writeCtx()
	if err != nil {
		return 0, err
	}
	defer cancel()
	var doomed []etcdRecord
	expired := map[machine.MAC]bool{}
	s.mu.RLock()
	if s.discoveredTTL > 0 {
		cutoff := s.now().Add(-s.discoveredTTL)
		for mac, r := range s.recs {
			if r.sum.State == machine.Discovered && r.sum.LastSeen.Before(cutoff) {
				expired[mac] = true
				doomed = append(doomed, r)
			}
		}
	}
	over := s.discovered - len(expired) - s.discoveredMax
	s.mu.RUnlock()
	if over > 0 {
		doomed = append(doomed, s.oldestDiscovered(over, func(k machine.MAC) bool { return expired[k] })...)
	}
	n := 0
	for _, r := range doomed {
		ok, err := s.deleteIfUnchanged(ctx, r.sum.MAC, r.rev)
		if err != nil {
			return n, fmt.Errorf("state: sweep: %w", err)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// Expire calls Sweep each time tick delivers, until ctx is cancelled.
func (s *EtcdStore) Expire(ctx context.Context, tick <-chan time.Time) error {
	return expire(ctx, tick, s.Sweep, s.log, s.discoveredTTL, s.discoveredMax)
}

// Close stops the watch and the probe and closes the client; writes in
// flight fail. Later calls return the first call's result.
func (s *EtcdStore) Close() error {
	s.closeOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
			s.closeErr = fmt.Errorf("state: etcd: close: %w", err)
		}
	})
	return s.closeErr
}
