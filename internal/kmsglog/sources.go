package kmsglog

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// warnEvery spaces the warnings about one source's dropped lines: a node
// stuck in a crash loop would otherwise log a line per dropped line.
const warnEvery = time.Minute

// refusal is why a connection was not taken; it is the result label of
// the connection metric.
type refusal string

const (
	refusedTotal     refusal = "too_many"
	refusedPerSource refusal = "too_many_from_source"
)

// sources tracks, per sender address, the open TCP connections and the
// token bucket that limits its lines. At most max addresses are tracked:
// beyond that the least recently heard one without an open connection is
// forgotten (its bucket starts full again if it comes back), so spoofed
// UDP senders cannot grow the table. It is safe for concurrent use.
type sources struct {
	mu        sync.Mutex
	m         map[netip.Addr]*list.Element // of *source
	lru       *list.List                   // front: most recently heard
	max       int
	conns     int
	maxConns  int
	perSource int
	rate      float64
	burst     float64
}

// source is one sender address.
type source struct {
	addr  netip.Addr
	conns int // open TCP connections; guarded by sources.mu

	mu      sync.Mutex
	tokens  float64
	last    time.Time
	dropped int       // lines dropped since the last warning
	warned  time.Time // when the last warning was due
}

func newSources(max, maxConns, perSource int, rate float64, burst int) *sources {
	return &sources{
		m: map[netip.Addr]*list.Element{}, lru: list.New(), max: max,
		maxConns: maxConns, perSource: perSource, rate: rate, burst: float64(burst),
	}
}

// open takes a connection slot for addr, or says why there is none.
// Every successful open must be followed by one close.
func (ss *sources) open(addr netip.Addr) (*source, refusal) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.conns >= ss.maxConns {
		return nil, refusedTotal
	}
	s := ss.get(addr)
	if s.conns >= ss.perSource {
		return nil, refusedPerSource
	}
	s.conns++
	ss.conns++
	return s, ""
}

// close gives back the connection slot open took.
func (ss *sources) close(s *source) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s.conns--
	ss.conns--
}

// openConns reports the number of open connections.
func (ss *sources) openConns() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.conns
}

// lookup returns addr's source, tracking it if it is new.
func (ss *sources) lookup(addr netip.Addr) *source {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.get(addr)
}

// tracked reports how many addresses are tracked.
func (ss *sources) tracked() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.m)
}

// get returns addr's source and marks it most recently heard, making
// room for a new one if needed; ss.mu is held.
func (ss *sources) get(addr netip.Addr) *source {
	if e, ok := ss.m[addr]; ok {
		ss.lru.MoveToFront(e)
		return e.Value.(*source)
	}
	// Forget the least recently heard addresses without a connection.
	// One with a connection holds a pointer to its entry and stays; at
	// most maxConns do, fewer than max (New makes sure).
	for e := ss.lru.Back(); e != nil && len(ss.m) >= ss.max; {
		prev := e.Prev()
		if s := e.Value.(*source); s.conns == 0 {
			ss.lru.Remove(e)
			delete(ss.m, s.addr)
		}
		e = prev
	}
	s := &source{addr: addr, tokens: ss.burst}
	ss.m[addr] = ss.lru.PushFront(s)
	return s
}

// allow takes a token from s's bucket at time now. When there is none,
// the line is to be dropped; warn is then the number of lines dropped
// since the last warning when another warning is due, else 0.
func (ss *sources) allow(s *source, now time.Time) (ok bool, warn int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.last.IsZero() {
		if d := now.Sub(s.last); d > 0 {
			s.tokens = min(ss.burst, s.tokens+d.Seconds()*ss.rate)
		}
	}
	s.last = now
	if s.tokens >= 1 {
		s.tokens--
		return true, 0
	}
	s.dropped++
	if s.warned.IsZero() || now.Sub(s.warned) >= warnEvery {
		s.warned = now
		warn, s.dropped = s.dropped, 0
	}
	return false, warn
}
