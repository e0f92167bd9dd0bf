package bootflow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/metrics"
	"github.com/tinderbox-boot/tinderbox/internal/served"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Bounds on the records waiting for the background writer (docs/architecture.md,
// "State writes: what waits and what does not").
const (
	// maxQueued bounds the records (events and served configs) waiting
	// in all, a run of repeated events counting once: a boot storm of a
	// thousand machines queues a few thousand, and at a few hundred bytes
	// each the queue stays within a few MiB while the disk is stuck.
	maxQueued = 4096
	// maxQueuedPerMachine bounds one machine's waiting events (a run of
	// repeats counting once), the oldest dropped first: the store keeps
	// no more of a log than this (state.DefaultMaxEvents), and one chatty
	// host must not fill the queue for the others.
	maxQueuedPerMachine = state.DefaultMaxEvents
)

// What a queued record is, for tinderbox_state_records_dropped_total.
type what int

const (
	whatDHCP what = iota
	whatTransfer
	whatEvent
	whatConfig
	nWhat
)

var whatNames = [nWhat]string{"dhcp", "transfer", "event", "served_config"}

// Why a queued record was dropped.
const (
	reasonFull   = "queue_full"
	reasonFailed = "write_failed"
)

// queuedEvent is an event waiting to be appended to a machine's log.
type queuedEvent struct {
	ev   machine.Event
	what what
}

// pendingWrite is what waits to be written for one machine: its newest
// sighting (the newest wins) and its events (appended in order, a repeat
// of the one before folded into it: machine.Coalesce), then the config
// it was last served (the newest wins).
type pendingWrite struct {
	// create makes the record when there is none: a DHCP reply or a
	// transfer vouches for the machine. Without it the events are only
	// appended to an existing record.
	create bool
	// reconcile sets the state from the machine's profile as it was at
	// the newest sighting (state.Reconcile over known and install).
	reconcile bool
	known     bool
	install   machine.Install
	// seen holds the newest non-empty arch, UUID and address seen.
	seen   sighted
	events []queuedEvent
	served *pendingConfig
}

// sighted is what a sighting tells of a machine: the arch its firmware
// runs, its SMBIOS UUID and its address, each empty when not told.
type sighted struct {
	arch     machine.Arch
	uuid, ip string
}

// any reports whether s tells anything.
func (s sighted) any() bool { return s.arch != "" || s.uuid != "" || s.ip != "" }

// apply sets in m what s tells.
func (s sighted) apply(m *state.Machine) {
	if s.arch != "" {
		m.Arch = s.arch
	}
	if s.uuid != "" {
		m.UUID = s.uuid
	}
	if s.ip != "" {
		m.IP = s.ip
	}
}

// merge is s with what newer tells in place of what it tells too.
func (s sighted) merge(newer sighted) sighted {
	return sighted{arch: cmp.Or(newer.arch, s.arch), uuid: cmp.Or(newer.uuid, s.uuid), ip: cmp.Or(newer.ip, s.ip)}
}

// pendingConfig is a served config waiting to be kept.
type pendingConfig struct {
	ev   machine.Event
	body []byte
	set  string // the profile set's hash
}

// record reports whether p changes the machine record (as opposed to
// only keeping a served config).
func (p *pendingWrite) record() bool {
	return p.create || p.reconcile || p.seen.any() || len(p.events) > 0
}

// size is how many records p counts for against maxQueued.
func (p *pendingWrite) size() int {
	n := len(p.events)
	if p.served != nil {
		n++
	}
	return n
}

// apply writes p's sighting and events into m; it returns errNoRecord
// when there is no record and p may not make one. The events are
// appended to m.Events, which holds what the store hands over: none of
// the stored log with state.Backend.Apply (the store appends them to it,
// in time order even when a synchronous write committed later events
// between the writer taking these and storing them), the whole log with
// Update.
func (p *pendingWrite) apply(m *state.Machine, exists bool) error {
	if !exists && !p.create {
		return errNoRecord
	}
	if p.reconcile {
		m.State = state.Reconcile(m.State, p.known, p.install)
	}
	p.seen.apply(m)
	for _, q := range p.events {
		m.Events = machine.AppendEvent(m.Events, q.ev)
	}
	if !slices.IsSortedFunc(m.Events, byTime) {
		slices.SortStableFunc(m.Events, byTime)
	}
	return nil
}

func byTime(a, b machine.Event) int { return a.Time.Compare(b.Time) }

// merge folds newer, queued after p, into p.
func (p *pendingWrite) merge(newer *pendingWrite) {
	p.create = p.create || newer.create
	if newer.reconcile {
		p.reconcile, p.known, p.install = true, newer.known, newer.install
	}
	p.seen = p.seen.merge(newer.seen)
	for _, e := range newer.events {
		p.addEvent(e)
	}
	if newer.served != nil {
		p.served = newer.served
	}
}

// addEvent appends e to p's events, folded into the newest when it
// repeats it (machine.Coalesce): a machine fetching its script again and
// again between two drains waits as one event with its count, and
// counts as one against maxQueued and maxQueuedPerMachine.
func (p *pendingWrite) addEvent(e queuedEvent) {
	if n := len(p.events); n > 0 {
		if run, ok := machine.Coalesce(p.events[n-1].ev, e.ev); ok {
			p.events[n-1].ev = run
			return
		}
	}
	p.events = append(p.events, e)
}

// writeQueue holds the state writes that no answer waits for (DHCP
// replies, TFTP and asset transfers, refusals, events and served
// configs), coalesced per machine, and writes them from one background
// goroutine, started when there is something to write. It is safe for
// concurrent use.
type writeQueue struct {
	store   state.Backend
	log     logger
	dropped *prometheus.CounterVec

	mu      sync.Mutex
	pending map[machine.MAC]*pendingWrite
	// order lists machines in the order their writes were queued; a
	// machine whose pending write was taken is skipped.
	order []machine.MAC
	n     int // records waiting, against maxQueued
	// writing is how many records the drain in progress is writing.
	writing int
	running bool
	// idle is closed when the writer stops with nothing left.
	idle chan struct{}
	// hurry cuts the writer's wait between drains short, and while
	// flushing is above 0 it does not wait (flush).
	hurry    chan struct{}
	flushing int
	// every is drainEvery; tests lengthen it.
	every time.Duration
}

// logger is the part of *slog.Logger the queue uses.
type logger interface {
	Error(msg string, args ...any)
}

func newWriteQueue(store state.Backend, log logger) *writeQueue {
	q := &writeQueue{
		store: store, log: log,
		pending: map[machine.MAC]*pendingWrite{},
		hurry:   make(chan struct{}, 1),
		every:   drainEvery,
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "state", Name: "records_dropped_total",
			Help: "Machine records (DHCP sightings, transfers, events, served configs) never written to the state database, by what and reason: queue_full (the background writer was behind by " + fmt.Sprint(maxQueued) + " records, or one machine's by " + fmt.Sprint(maxQueuedPerMachine) + " events: a stuck disk) or write_failed.",
		}, []string{"what", "reason"}),
	}
	for _, w := range whatNames {
		for _, r := range []string{reasonFull, reasonFailed} {
			q.dropped.WithLabelValues(w, r)
		}
	}
	return q
}

// collectors are the queue's metrics.
func (q *writeQueue) collectors() []prometheus.Collector {
	return []prometheus.Collector{q.dropped, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metrics.Namespace, Subsystem: "state", Name: "records_queued",
		Help: "Machine records waiting for the background writer; near " + fmt.Sprint(maxQueued) + " means the state disk is stuck and records are being dropped.",
	}, func() float64 {
		q.mu.Lock()
		defer q.mu.Unlock()
		return float64(q.n)
	})}
}

// add queues p for mac, merged after what already waits for it, then
// evs as boot-flow events (whatEvent), and starts the writer. A record
// beyond the bounds is dropped and counted. It never blocks on the
// store. It keeps neither p nor evs, only their contents: a caller's
// evs on its stack stay there (p's fields are one to the compiler's
// escape analysis, so events in p would go to the heap).
func (q *writeQueue) add(mac machine.MAC, p *pendingWrite, evs ...machine.Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if room := maxQueued - q.n; p.size()+len(evs) > room {
		q.drop(p, reasonFull)
		q.dropped.WithLabelValues(whatNames[whatEvent], reasonFull).Add(float64(len(evs)))
		return
	}
	cur := q.pending[mac]
	if cur == nil {
		cur = &pendingWrite{}
		q.pending[mac] = cur
		q.order = append(q.order, mac)
	}
	q.n -= cur.size()
	cur.merge(p)
	for _, ev := range evs {
		cur.addEvent(queuedEvent{ev: ev, what: whatEvent})
	}
	if over := len(cur.events) - maxQueuedPerMachine; over > 0 {
		for _, e := range cur.events[:over] {
			q.dropped.WithLabelValues(whatNames[e.what], reasonFull).Add(float64(e.ev.Times()))
		}
		cur.events = slices.Delete(cur.events, 0, over)
	}
	q.n += cur.size()
	if q.n >= drainSoon {
		q.poke()
	}
	if !q.running {
		q.running = true
		q.idle = make(chan struct{})
		go q.run()
	}
}

// drop counts p's records as dropped for reason.
func (q *writeQueue) drop(p *pendingWrite, reason string) {
	for _, e := range p.events {
		q.dropped.WithLabelValues(whatNames[e.what], reason).Add(float64(e.ev.Times()))
	}
	if p.served != nil {
		q.dropped.WithLabelValues(whatNames[whatConfig], reason).Inc()
	}
}

// take removes and returns what waits to be written to mac's record (nil
// when nothing does), for a synchronous write to apply first; a served
// config waiting stays queued.
func (q *writeQueue) take(mac machine.MAC) *pendingWrite {
	q.mu.Lock()
	defer q.mu.Unlock()
	cur := q.pending[mac]
	if cur == nil || !cur.record() {
		return nil
	}
	q.n -= cur.size()
	if cur.served == nil {
		delete(q.pending, mac)
	} else {
		q.pending[mac] = &pendingWrite{served: cur.served}
		q.n++
	}
	cur.served = nil
	return cur
}

// putBack queues p again, before what was queued for mac since take: the
// synchronous write that took it failed.
func (q *writeQueue) putBack(mac machine.MAC, p *pendingWrite) {
	q.mu.Lock()
	cur := q.pending[mac]
	if cur != nil {
		q.n -= cur.size()
		delete(q.pending, mac)
	}
	q.mu.Unlock()
	if cur != nil {
		p.merge(cur)
	}
	q.add(mac, p)
}

// maxDrain bounds the machines one drain of the queue writes: their
// changes are one state transaction (state.Backend.Apply), so a drain
// costs one commit (two fdatasyncs) however many machines it covers.
const maxDrain = 1024

// drainEvery is the least time from one drain's start to the next's
// while records keep arriving and fewer than drainSoon wait: a machine's
// records of that time (its DHCP offer and ack, transfers, script, and
// in a load test its requests again and again, folded into one event
// with its count) are merged into one write of its record, whose event
// log is rewritten by each write unless all it adds is a repeat of its
// newest event (then only the record's summary is). A writer with
// nothing waiting stops at once, and one that starts drains at once, so
// a record waits at most drainEvery plus the commit in progress and its
// own.
//
// Each drain is a commit, and a commit's fdatasyncs stall the machine's
// other work for milliseconds (measured: the answers a drain overlaps
// make the p99 of /ipxe at a steady 10,000 requests/s, 2.9 ms with
// drains 100 ms apart against 1.2 ms 1 s apart; docs/performance.md,
// "Boot HTTP"). So drains under a steady load are a second apart, and
// what they hold may be a second old at a crash ("Durability"): these
// are sightings and events, never a state, a token or a failure, which
// are committed before their answer.
const drainEvery = time.Second

// drainSoon is the records waiting (against maxQueued) that cut the
// wait between drains short: a storm of distinct machines, each with
// records of its own, is written in drains of about this size as fast
// as the disk takes them, and never fills the queue while the writer
// waits out drainEvery.
const drainSoon = maxQueued / 4

// run writes what waits, oldest machine first, a drain of up to maxDrain
// machines per transaction, until nothing does; while records keep
// arriving, drains start drainEvery apart (flush, or drainSoon records
// waiting, cuts the wait short).
func (q *writeQueue) run() {
	var wait *time.Timer
	for {
		q.mu.Lock()
		var (
			macs []machine.MAC
			ps   []*pendingWrite
		)
		for len(q.order) > 0 && len(ps) < maxDrain {
			mac := q.order[0]
			q.order = q.order[1:]
			if p := q.pending[mac]; p != nil {
				delete(q.pending, mac)
				q.n -= p.size()
				macs, ps = append(macs, mac), append(ps, p)
			}
		}
		q.writing = 0
		if len(ps) == 0 {
			q.order = nil
			q.running = false
			close(q.idle)
			q.mu.Unlock()
			return
		}
		for _, p := range ps {
			q.writing += p.size()
		}
		q.mu.Unlock()
		start := time.Now()
		q.write(macs, ps)
		q.mu.Lock()
		// Wait out drainEvery only with a few records waiting and no flush.
		pause := q.n > 0 && q.n < drainSoon && q.flushing == 0
		q.mu.Unlock()
		if rest := q.every - time.Since(start); pause && rest > 0 {
			if wait == nil {
				wait = time.NewTimer(rest)
			} else {
				wait.Reset(rest)
			}
			select {
			case <-wait.C:
			case <-q.hurry:
			}
		}
	}
}

// write stores ps, one per machine of macs, in one transaction: each
// machine's record and the config it was served (masked here, before
// the transaction). Failures are logged and counted: the answers they
// describe were sent already.
func (q *writeQueue) write(macs []machine.MAC, ps []*pendingWrite) {
	changes := make([]state.Change, len(ps))
	for i, p := range ps {
		changes[i].MAC = macs[i]
		if p.record() {
			changes[i].Fn = p.apply
		}
		if c := p.served; c != nil {
			snap := served.Take(c.body, q.store.MaskTag)
			changes[i].Served = &state.Served{At: c.ev.Time, Hash: snap.Hash, Size: snap.Size, Config: string(snap.Masked), Note: snap.Note, ProfileSet: c.set}
		}
	}
	for i, r := range q.store.Apply(changes...) {
		if r.Err == nil || errors.Is(r.Err, errNoRecord) {
			continue
		}
		q.log.Error("state: record", "mac", macs[i], "events", len(ps[i].events), "served_config", ps[i].served != nil, "err", r.Err)
		q.drop(ps[i], reasonFailed)
	}
}

// flush waits until every record queued before the call is written (or
// its write failed), or ctx is done; then the error counts the records
// waiting and those in the drain in progress.
func (q *writeQueue) flush(ctx context.Context) error {
	q.mu.Lock()
	if !q.running {
		q.mu.Unlock()
		return nil
	}
	idle, n := q.idle, q.n+q.writing
	q.flushing++
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		q.flushing--
		q.mu.Unlock()
	}()
	q.poke()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bootflow: %d state records not written: %w", n, ctx.Err())
	}
}

// update is a write an answer depends on, whose fn reads the machine's
// event log (a Talos report): it is stored before update returns, in one
// transaction with what waits in the queue for mac, applied first so the
// machine's log stays in order and a record the queue would make exists
// for fn. On failure what was taken is queued again.
func (f *Flow) update(mac machine.MAC, fn func(m *state.Machine, exists bool) error) (state.Machine, error) {
	p := f.q.take(mac)
	if p == nil {
		return f.opts.Store.Update(mac, fn)
	}
	m, err := f.opts.Store.Update(mac, withQueued(p, fn))
	if err != nil {
		f.q.putBack(mac, p)
	}
	return m, err
}

// transition is update for a write whose fn only appends to the event
// log (a script's state change and token rotation, a served config's
// pending → installing): stored with state.Backend.Apply, in a transaction
// shared with the writes made at the same time, before transition
// returns. The machine returned has only the events fn and the queue
// added.
func (f *Flow) transition(mac machine.MAC, fn func(m *state.Machine, exists bool) error) (state.Machine, error) {
	p := f.q.take(mac)
	if p != nil {
		fn = withQueued(p, fn)
	}
	r := f.opts.Store.Apply(state.Change{MAC: mac, Fn: fn})[0]
	if r.Err != nil && p != nil {
		f.q.putBack(mac, p)
	}
	return r.Machine, r.Err
}

// withQueued is fn after what waits in the queue for the machine.
func withQueued(p *pendingWrite, fn func(m *state.Machine, exists bool) error) func(m *state.Machine, exists bool) error {
	return func(m *state.Machine, exists bool) error {
		if p.apply(m, exists) == nil {
			exists = true
		}
		return fn(m, exists)
	}
}

// keepServed queues a config just served to mac, at the time of its
// config event, from the profile set of hash set, for the background
// writer, which masks it and stores it (state.Backend.PutServed) after the
// answer is written.
func (f *Flow) keepServed(mac machine.MAC, ev machine.Event, body []byte, set string) {
	f.q.add(mac, &pendingWrite{served: &pendingConfig{ev: ev, body: body, set: set}})
}

// Flush blocks until every state record queued so far (DHCP sightings,
// transfers, events, served configs) is written or its write failed, or
// ctx is done; then it returns an error naming how many were waiting.
// The daemon calls it, bounded, before closing the state store; tests
// call it before reading what was recorded.
func (f *Flow) Flush(ctx context.Context) error { return f.q.flush(ctx) }

// poke cuts the writer's wait between drains short, if it is waiting.
func (q *writeQueue) poke() {
	select {
	case q.hurry <- struct{}{}:
	default:
	}
}
