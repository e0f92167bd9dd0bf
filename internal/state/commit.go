package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Group commit (docs/performance.md, "Durability: what is on disk when
// tinderbox answers"): Update and Apply hand their changes to one
// committer goroutine, which takes every change waiting when it starts a
// transaction and commits them together. A lone change is committed at
// once; changes that arrive while a commit is syncing share the next
// one, so N concurrent writers cost one transaction (two fdatasyncs)
// rather than N. Each caller returns only once its transaction is on
// disk, so what it returns is as durable as before.
//
// bbolt's own DB.Batch coalesces too, but it waits MaxBatchDelay (10 ms
// by default) even for a lone caller, runs the functions on a goroutine
// of its own (outside the guard that turns a fault on a truncated file
// into an error), and gives no order in which to apply the in-memory
// index after the commit; the committer commits at once when idle and
// applies the index in commit order.

// maxBatch bounds the changes of one transaction: a storm's queue drain
// of a few thousand machines is split into transactions of at most this
// many, so none holds the write lock (and the changes behind it) for
// long.
const maxBatch = 1024

// commitQueue is how many submissions may wait for the committer before
// a submitter waits for room (bounded by Options.WriteTimeout).
const commitQueue = 4096

// Change is one machine's write for Apply.
type Change struct {
	MAC machine.MAC
	// Fn edits the record as Update's fn does (exists false for a new
	// record; an error stores nothing of this change), except that
	// m.Events starts empty: the stored log is neither read nor handed
	// over, and the events Fn appends are added to it, oldest dropped
	// beyond Options.MaxEvents. Nil stores the record unchanged (or
	// nothing, when there is none).
	Fn func(m *Machine, exists bool) error
	// Served, when set, replaces the config kept as last served to the
	// machine (PutServed), in the same transaction, when it has a record.
	Served *Served
}

// Result is what Apply did with one Change.
type Result struct {
	// Machine is the record as stored, its Events only those the change
	// added; zero when Err is set.
	Machine Machine
	// Err is Fn's error (wrapped, errors.Is finds it), or the
	// transaction's; nil when the change is on disk.
	Err error
}

// op is one change waiting for the committer.
type op struct {
	mac machine.MAC
	fn  func(*Machine, bool) error
	// full hands fn the whole stored log (Update) instead of none (Apply).
	full   bool
	served *Served

	out     Machine
	err     error
	dropped []machine.MAC
}

// Submission states: waiting for the committer, taken into a
// transaction, or given up by its submitter (Options.WriteTimeout).
const (
	subWaiting int32 = iota
	subTaken
	subAbandoned
)

// submission is one call's changes, committed in one transaction.
type submission struct {
	ops   []*op
	state atomic.Int32
	done  chan struct{}
}

// errClosed is returned by writes after Close.
var errClosed = errors.New("state: the store is closed")

// startCommitter starts the committer goroutine; Close stops it.
func (s *Store) startCommitter() {
	s.subs = make(chan *submission, commitQueue)
	s.quit = make(chan struct{})
	s.stopped = make(chan struct{})
	go s.commitLoop()
}

// stopCommitter stops the committer once the transaction it is in (if
// any) is done; submissions it has not taken fail with errClosed.
func (s *Store) stopCommitter() {
	s.stopOnce.Do(func() { close(s.quit) })
	<-s.stopped
}

// submit hands ops to the committer and waits for their transaction. It
// gives up with ErrStuck when the committer has not taken them within
// Options.WriteTimeout (a commit before them is stuck on a frozen disk):
// then nothing of them is stored. Once taken, it waits for the commit.
func (s *Store) submit(what string, ops ...*op) error {
	sub := &submission{ops: ops, done: make(chan struct{})}
	t := time.NewTimer(s.writeTimeout)
	defer t.Stop()
	stuck := func() error {
		return fmt.Errorf("state: %s: %w: another write has not finished in %s", what, ErrStuck, s.writeTimeout)
	}
	select {
	case s.subs <- sub:
	case <-s.quit:
		return errClosed
	case <-t.C:
		return stuck()
	}
	select {
	case <-sub.done:
		return nil
	case <-s.stopped:
	case <-t.C:
	}
	if sub.state.CompareAndSwap(subWaiting, subAbandoned) {
		select {
		case <-s.stopped:
			return errClosed
		default:
			return stuck()
		}
	}
	<-sub.done
	return nil
}

// commitLoop takes submissions, as many as wait (up to maxBatch
// changes), and commits each such group in one transaction.
func (s *Store) commitLoop() {
	defer close(s.stopped)
	for {
		var first *submission
		select {
		case first = <-s.subs:
		case <-s.quit:
			return
		}
		batch := []*submission{first}
		n := len(first.ops)
	more:
		for n < maxBatch {
			select {
			case sub := <-s.subs:
				batch = append(batch, sub)
				n += len(sub.ops)
			default:
				break more
			}
		}
		taken := batch[:0]
		for _, sub := range batch {
			if sub.state.CompareAndSwap(subWaiting, subTaken) {
				taken = append(taken, sub)
			}
		}
		s.commit(taken)
		for _, sub := range taken {
			close(sub.done)
		}
	}
}

// commit runs the submissions' changes in one transaction, in order;
// once it is on disk, it applies them to the index and tells OnChange.
func (s *Store) commit(subs []*submission) {
	var ops []*op
	for _, sub := range subs {
		ops = append(ops, sub.ops...)
	}
	if len(ops) == 0 {
		return
	}
	fail := func(err error) {
		for _, o := range ops {
			o.err, o.dropped = fmt.Errorf("state: update %s: %w", o.mac, err), nil
		}
	}
	if err := s.lock("commit"); err != nil {
		fail(err)
		return
	}
	defer s.unlock()
	var st *staged
	err := s.update("update", func(tx *bolt.Tx) error {
		st = s.newStaged()
		sb, eb, vb := tx.Bucket(machinesBucket), tx.Bucket(eventsBucket), tx.Bucket(servedBucket)
		for _, o := range ops {
			o.err, o.dropped = nil, nil
			if err := s.apply(sb, eb, vb, st, o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		fail(err)
		return
	}
	s.imu.Lock()
	for mac, sum := range st.sums {
		if sum == nil {
			s.dropIndex(mac)
		} else {
			s.setIndex(*sum)
		}
	}
	s.imu.Unlock()
	for mac, n := range st.counts {
		if n < 0 {
			delete(s.counts, mac)
		} else {
			s.counts[mac] = n
		}
	}
	for _, o := range ops {
		if o.err != nil {
			continue
		}
		for _, d := range o.dropped {
			s.log.Debug("discovered machine forgotten: over state.discovered.max", "mac", d, "max", s.discoveredMax)
		}
		s.notify(o.out)
		s.notifyForgotten(o.dropped)
	}
}

// apply runs one change in the transaction. A change whose fn fails
// stores nothing and keeps the error in o.err; an error returned fails
// the whole transaction.
func (s *Store) apply(sb, eb, vb *bolt.Bucket, st *staged, o *op) error {
	key := []byte(o.mac.String())
	var m Machine
	var exists bool
	var err error
	var stored *machine.Event // the stored log's newest event
	if o.full {
		exists, err = load(sb, eb, key, &m)
	} else {
		// The summary as committed (or staged by this transaction) is in
		// memory; the database is read only for a record the index does
		// not hold (none, or one that does not decode).
		sum, ok := st.get(o.mac)
		if !ok {
			ok, err = loadSummary(sb, key, &sum)
		}
		exists = ok
		m = sum.machine()
		stored = sum.Last
	}
	if err != nil {
		o.err = fmt.Errorf("state: update %s: %w", key, err)
		return nil
	}
	if o.fn == nil {
		if exists && o.served != nil {
			return putServed(vb, key, o.served)
		}
		o.out = m
		return nil
	}
	m.MAC = o.mac
	before := len(m.Events)
	if err := callFn(o.fn, &m, exists); err != nil {
		o.err = fmt.Errorf("state: update %s: %w", key, err)
		return nil
	}
	grew := len(m.Events) != before
	// Repeats fold before the log is bounded, so a run costs one entry,
	// and after the details are clipped, as the stored ones were.
	m.bound()
	m.Events = machine.CoalesceLog(m.Events)
	now := s.now()
	if !exists {
		m.FirstSeen, m.LastSeen = now, now
	}
	s.trim(&m)
	if o.full {
		if grew && len(m.Events) > 0 {
			m.LastSeen = m.Events[len(m.Events)-1].Time
		}
		if err := put(sb, eb, key, &m); err != nil {
			return err
		}
		st.counts[o.mac] = len(m.Events)
	} else if err := s.putAppend(sb, eb, st, key, &m, stored); errors.Is(err, errBadLog) {
		o.err = fmt.Errorf("state: update %s: %w", key, err)
		return nil
	} else if err != nil {
		return err
	}
	if o.served != nil {
		if err := putServed(vb, key, o.served); err != nil {
			return err
		}
	}
	sum := m.Summary()
	if !o.full {
		sum = m.summaryAfter(stored)
	}
	st.set(sum)
	if m.State == machine.Discovered {
		o.dropped = s.overflow(st, o.mac)
		for _, d := range o.dropped {
			st.drop(d)
		}
		if err := deleteAll(sb, eb, o.dropped); err != nil {
			return err
		}
	}
	o.out = m
	return nil
}

// errBadLog marks a stored event log that does not decode: the change
// to its record fails, not the transaction.
var errBadLog = errors.New("event log does not decode")

// putAppend stores m, whose Events are only those its change added, after
// the stored log (whose newest event is stored, nil when it is empty):
// the summary, and the log with the new events appended to it as JSON
// bytes (appendLog), with no decoding of the events already stored, when
// they are newer than it; else the log decoded, merged in time order,
// its runs folded (machine.CoalesceLog) and stored whole. An added event
// that repeats stored (machine.Coalesce, against the summary's copy of
// it) makes the run of both, which m.Events then holds, with its count:
// when it is the only event added, the summary alone is written, its
// Last the run, and the log keeps the run as it was (withLast reads it
// back); else the run replaces the log's last element, as stored does
// when it is a run and the added events follow it. It stores nothing
// when the stored log does not decode (errBadLog).
func (s *Store) putAppend(sb, eb *bolt.Bucket, st *staged, key []byte, m *Machine, stored *machine.Event) error {
	added := m.Events
	if len(added) > 0 {
		m.LastSeen = added[len(added)-1].Time
	}
	inOrder := slices.IsSortedFunc(added, byTime) && (stored == nil || len(added) == 0 || !added[0].Time.Before(stored.Time))
	if !inOrder {
		var log []machine.Event
		if v := eb.Get(key); v != nil {
			if err := json.Unmarshal(v, &log); err != nil {
				return fmt.Errorf("%w: %w", errBadLog, err)
			}
		}
		withLast(log, stored)
		full := *m
		full.Events = machine.CoalesceLog(slices.SortedStableFunc(slices.Values(append(log, added...)), byTime))
		s.trim(&full)
		full.LastSeen = full.Events[len(full.Events)-1].Time
		m.LastSeen = full.LastSeen
		st.counts[m.MAC] = len(full.Events)
		return put(sb, eb, key, &full)
	}
	var logv []byte
	if len(added) > 0 {
		replace := false
		if stored != nil {
			if merged, ok := machine.Coalesce(*stored, added[0]); ok {
				added[0], replace = merged, true
			}
		}
		// With only the run's count and time changed, the summary's Last
		// holds them, and the log (up to 64 events) is not rewritten.
		if old := eb.Get(key); !replace || len(added) > 1 || old == nil {
			var err error
			if logv, err = s.appendEvents(old, st, m.MAC, stored, added, replace); err != nil {
				return err
			}
		}
	}
	v, err := json.Marshal(m.summaryAfter(stored))
	if err != nil {
		return err
	}
	if err := sb.Put(key, v); err != nil {
		return err
	}
	if logv == nil {
		return nil
	}
	return eb.Put(key, logv)
}

// appendEvents returns the stored log old with added appended
// (appendLog), the first of them replacing its last element when replace
// is set, and records its length in st. When stored, the log's newest
// event as the summary holds it, is a run that added does not continue,
// the log's last element may be an earlier state of it (putAppend): it
// is written as stored is.
func (s *Store) appendEvents(old []byte, st *staged, mac machine.MAC, stored *machine.Event, added []machine.Event, replace bool) ([]byte, error) {
	enc := make([][]byte, 0, len(added)+1)
	if !replace && stored != nil && stored.Times() > 1 {
		v, err := json.Marshal(stored)
		if err != nil {
			return nil, err
		}
		enc, replace = append(enc, v), true
	}
	for i := range added {
		v, err := json.Marshal(added[i])
		if err != nil {
			return nil, err
		}
		enc = append(enc, v)
	}
	out, n, ok := appendLog(old, st.count(mac), enc, replace, s.maxEvents)
	if !ok {
		return nil, fmt.Errorf("%w: not a JSON array", errBadLog)
	}
	st.counts[mac] = n
	return out, nil
}

func byTime(a, b machine.Event) int { return a.Time.Compare(b.Time) }

// withLast brings log, a stored event log, up to date with last, the
// newest event its summary holds: a repeat folded into the newest event
// rewrites only the summary (putAppend), so the log's last element may
// be an earlier state of the run last is. It is when both have the same
// Kind, Detail, Bytes and first occurrence, and last is no older and
// counts no fewer: then log's last element is replaced by last. An event
// appended to the log is its last element and last both, so this changes
// nothing for it.
func withLast(log []machine.Event, last *machine.Event) {
	n := len(log)
	if last == nil || n == 0 {
		return
	}
	e := &log[n-1]
	if e.Kind == last.Kind && e.Detail == last.Detail && e.Bytes == last.Bytes && e.First().Equal(last.First()) &&
		!last.Time.Before(e.Time) && last.Times() >= e.Times() {
		*e = *last
	}
}

// summaryAfter is m's summary when m.Events are only the events added
// after a stored log whose newest event is stored.
func (m Machine) summaryAfter(stored *machine.Event) Summary {
	sum := m.Summary()
	if sum.Last == nil && stored != nil {
		last := *stored
		sum.Last = &last
	}
	return sum
}

// machine is the record s summarises, without its event log.
func (s Summary) machine() Machine {
	return Machine{
		MAC: s.MAC, State: s.State, Arch: s.Arch, UUID: s.UUID, IP: s.IP,
		FirstSeen: s.FirstSeen, LastSeen: s.LastSeen, Generation: s.Generation, Talos: s.Talos,
	}
}

// loadSummary reads the summary under key; ok is false when there is none.
func loadSummary(sb *bolt.Bucket, key []byte, sum *Summary) (ok bool, err error) {
	v := sb.Get(key)
	if v == nil {
		return false, nil
	}
	if err := json.Unmarshal(v, sum); err != nil {
		return false, fmt.Errorf("record %s: %w", key, err)
	}
	return true, nil
}

func putServed(vb *bolt.Bucket, key []byte, sv *Served) error {
	v, err := json.Marshal(sv)
	if err != nil {
		return err
	}
	return vb.Put(key, v)
}

// appendLog returns the JSON array log (nil: an empty one) with the
// encoded values add appended, keeping only the newest limit elements,
// and how many it holds; ok is false when log is not a JSON array. With
// replace (and something to add), the first of add replaces log's last
// element (a run it continues) instead of following it. n is how many elements log holds,
// or -1 when that is not known. The elements already in log are not
// decoded: with n known, only those dropped are scanned for their
// bounds, and the last element is found from the end (lastElement),
// else the whole array is scanned; so appending an event to a full log,
// or folding a repeat into its last, costs a copy of its bytes, not a
// decode and encode of every event in it. Each element it writes
// follows a '\n' (encodeLog's layout).
func appendLog(log []byte, n int, add [][]byte, replace bool, limit int) (out []byte, count int, ok bool) {
	var starts []int
	end := 0
	if n < 0 || log == nil {
		if starts, end, ok = arrayElements(log, -1); !ok {
			return nil, 0, false
		}
		n = len(starts)
	} else {
		// The log ends in ']': its content ends before it.
		end = len(log)
		for end > 0 && isSpace(log[end-1]) {
			end--
		}
		if end == 0 || log[end-1] != ']' {
			return appendLog(log, -1, add, replace, limit)
		}
		end--
		for end > 0 && isSpace(log[end-1]) {
			end--
		}
	}
	if replace && n > 0 && len(add) > 0 {
		var last int
		if starts != nil {
			last = starts[n-1]
			starts = starts[:n-1]
		} else if last = lastElement(log, end); last < 0 {
			return appendLog(log, -1, add, replace, limit)
		}
		n--
		// The content now ends before the separator ahead of last.
		end = last
		for end > 0 && isSpace(log[end-1]) {
			end--
		}
		if end > 0 && log[end-1] == ',' {
			end--
		}
	}
	drop := max(0, n+len(add)-limit)
	count = n + len(add) - drop
	out = append(make([]byte, 0, len(log)+len(add)*128), '[')
	switch {
	case drop >= n:
		add = add[drop-n:]
	case starts != nil:
		out = append(out, '\n')
		out = append(out, log[starts[drop]:end]...)
	default:
		s, _, _ := arrayElements(log, drop)
		if len(s) <= drop {
			// n was wrong: count them.
			return appendLog(log, -1, add, replace, limit)
		}
		out = append(out, '\n')
		out = append(out, log[s[drop]:end]...)
	}
	for _, v := range add {
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, '\n')
		out = append(out, v...)
	}
	return append(out, ']'), count, true
}

// lastElement returns the offset of the last element of the JSON array
// log whose content ends at end, found from the '\n' before it (the
// layout of encodeLog), or -1 when log does not have that layout there:
// no '\n' (a log written before the layout), or what follows the last
// one up to end is not one JSON object (a log an older tinderbox appended
// to without a '\n').
func lastElement(log []byte, end int) int {
	i := bytes.LastIndexByte(log[:end], '\n')
	if i < 0 {
		return -1
	}
	j := skipSpace(log, i+1)
	// json.Valid takes the whole of log[j:end] as one value or fails.
	if j >= end || log[j] != '{' || !json.Valid(log[j:end]) {
		return -1
	}
	return j
}

// encodeLog encodes events as a JSON array with a '\n' before each
// element ("[\n{…},\n{…}]"), the layout appendLog keeps. encoding/json
// never writes a raw newline inside a value (it escapes one in a string
// as \n), so in such a log the last '\n' is the one before the last
// element: lastElement finds it from the end, without scanning the
// array. Decoders take the '\n's as white space.
func encodeLog(events []machine.Event) ([]byte, error) {
	out := make([]byte, 0, len(events)*160)
	out = append(out, '[')
	for i, e := range events {
		v, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '\n')
		out = append(out, v...)
	}
	return append(out, ']'), nil
}

// arrayElements scans the JSON array a (nil: an empty one) and returns
// the offset of each of its elements and the end of the last (where the
// array's content ends, before trailing white space and ']'); ok is
// false when a is not one well-formed JSON array. With stop at 0 or
// more, it stops once it has the offset of element stop (ok false,
// starts holding stop+1 offsets). It tracks strings and nesting only: a
// value inside is not otherwise checked, as it was encoded by
// encoding/json.
func arrayElements(a []byte, stop int) (starts []int, end int, ok bool) {
	if a == nil {
		return nil, 0, true
	}
	i := skipSpace(a, 0)
	if i >= len(a) || a[i] != '[' {
		return nil, 0, false
	}
	i = skipSpace(a, i+1)
	if i < len(a) && a[i] == ']' {
		return nil, i, skipSpace(a, i+1) == len(a)
	}
	depth, inString, escaped := 0, false, false
	starts = append(starts, i)
	for ; i < len(a); i++ {
		if stop >= 0 && len(starts) > stop {
			return starts, 0, false
		}
		c := a[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case (c == '}' || c == ']') && depth > 0:
			depth--
		case c == ',' && depth == 0:
			end = i
			j := skipSpace(a, i+1)
			if j >= len(a) || a[j] == ']' || a[j] == ',' {
				return nil, 0, false
			}
			starts = append(starts, j)
		case c == ']' && depth == 0:
			end = i
			for end > 0 && isSpace(a[end-1]) {
				end--
			}
			return starts, end, skipSpace(a, i+1) == len(a)
		}
	}
	return nil, 0, false
}

func skipSpace(a []byte, i int) int {
	for i < len(a) && isSpace(a[i]) {
		i++
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// Apply stores changes, each in its way (Change), in one transaction
// shared with the writes submitted at the same time, and returns once it
// is on disk: one Result per change, in order. A change whose Fn fails
// stores nothing, the others are stored; a transaction that fails stores
// none. It gives up, storing nothing, when the write before it has not
// finished in Options.WriteTimeout (ErrStuck in every Result). Safe for
// concurrent use: changes to the same machine are applied one after the
// other, each Fn seeing what the one before stored.
func (s *Store) Apply(changes ...Change) []Result {
	ops := make([]*op, len(changes))
	for i, c := range changes {
		ops[i] = &op{mac: c.MAC, fn: c.Fn, served: c.Served}
	}
	err := s.submit(fmt.Sprintf("apply %d changes", len(ops)), ops...)
	out := make([]Result, len(ops))
	for i, o := range ops {
		switch {
		case err != nil:
			out[i].Err = err
		case o.err != nil:
			out[i].Err = o.err
		default:
			out[i].Machine = o.out
		}
	}
	return out
}

// Peek returns the summary of the machine recorded under mac as a
// Machine without events, from memory (the store keeps every readable
// record's summary, changed only after each commit, so Peek sees only
// what is on disk); ok is false when there is none. A record that does
// not decode is an error, as with Get.
func (s *Store) Peek(mac machine.MAC) (m Machine, ok bool, err error) {
	s.imu.RLock()
	sum, ok := s.index[mac]
	s.imu.RUnlock()
	if ok {
		return sum.machine(), true, nil
	}
	key := mac.String()
	s.umu.Lock()
	_, bad := s.unreadable[key]
	s.umu.Unlock()
	if bad {
		return Machine{}, false, fmt.Errorf("state: get %s: record does not decode", key)
	}
	return Machine{}, false, nil
}

// Latest is Peek: the bbolt Store has no other replica whose writes it
// could lag behind.
func (s *Store) Latest(mac machine.MAC) (Machine, bool, error) { return s.Peek(mac) }

// staged is the index as a transaction in progress changes it: the
// summaries it stored (nil for one it deleted) over the index, and the
// number of discovered records with its changes.
type staged struct {
	s          *Store
	sums       map[machine.MAC]*Summary
	discovered int
	// counts are the event logs' lengths the transaction stored; -1
	// for a record it deleted.
	counts map[machine.MAC]int
}

// newStaged returns a staged index with no changes; the caller holds
// wlock.
func (s *Store) newStaged() *staged {
	return &staged{s: s, sums: map[machine.MAC]*Summary{}, discovered: s.discovered, counts: map[machine.MAC]int{}}
}

// count is how many events mac's stored log holds as staged; -1 when
// that is not known.
func (st *staged) count(mac machine.MAC) int {
	if n, ok := st.counts[mac]; ok {
		return n
	}
	if n, ok := st.s.counts[mac]; ok {
		return n
	}
	return -1
}

func (st *staged) get(mac machine.MAC) (Summary, bool) {
	if sum, ok := st.sums[mac]; ok {
		if sum == nil {
			return Summary{}, false
		}
		return *sum, true
	}
	sum, ok := st.s.index[mac]
	return sum, ok
}

func (st *staged) set(sum Summary) {
	if old, ok := st.get(sum.MAC); ok && old.State == machine.Discovered {
		st.discovered--
	}
	if sum.State == machine.Discovered {
		st.discovered++
	}
	st.sums[sum.MAC] = &sum
}

func (st *staged) drop(mac machine.MAC) {
	if old, ok := st.get(mac); ok && old.State == machine.Discovered {
		st.discovered--
	}
	st.sums[mac] = nil
	st.counts[mac] = -1
}

// each calls fn for every summary as staged.
func (st *staged) each(fn func(Summary)) {
	for mac, sum := range st.s.index {
		if _, ok := st.sums[mac]; !ok {
			fn(sum)
		}
	}
	for _, sum := range st.sums {
		if sum != nil {
			fn(*sum)
		}
	}
}
