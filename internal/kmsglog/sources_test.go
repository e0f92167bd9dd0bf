package kmsglog

import (
	"net/netip"
	"testing"
	"time"
)

// TestBucket: a source gets its burst at once, then Rate lines a second;
// a long pause refills it to the burst and no further; warnings about
// drops come once a minute with the count since the last.
func TestBucket(t *testing.T) {
	ss := newSources(10, 10, 10, 2, 3) // 2 lines/s, 3 at once
	s := ss.lookup(netip.MustParseAddr("192.0.2.1"))
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		at   time.Duration
		ok   bool
		warn int
	}
	steps := []step{
		{0, true, 0}, {0, true, 0}, {0, true, 0}, // the burst
		{0, false, 1},                     // empty: first drop warns
		{0, false, 0},                     // further drops are quiet
		{500 * time.Millisecond, true, 0}, // one token back after 0.5 s
		{500 * time.Millisecond, false, 0},
		{time.Hour, true, 0}, {time.Hour, true, 0}, {time.Hour, true, 0}, // refilled to 3, not more
		{time.Hour, false, 3}, // a minute since the last warning: 3 dropped since, this one included
	}
	for i, st := range steps {
		ok, warn := ss.allow(s, t0.Add(st.at))
		if ok != st.ok || warn != st.warn {
			t.Fatalf("step %d at %v: got %v, %d, want %v, %d", i, st.at, ok, warn, st.ok, st.warn)
		}
	}
}

// TestSourcesBounded: the table tracks at most max addresses, forgetting
// the least recently heard, but never one with an open connection.
func TestSourcesBounded(t *testing.T) {
	ss := newSources(3, 10, 10, 1, 1)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }
	pinned, refused := ss.open(addr(0))
	if pinned == nil {
		t.Fatalf("open refused: %s", refused)
	}
	for i := 1; i <= 20; i++ {
		ss.lookup(addr(i))
	}
	if got := ss.tracked(); got != 3 {
		t.Errorf("tracking %d addresses, want 3", got)
	}
	if got := ss.lookup(addr(0)); got != pinned {
		t.Error("the address with an open connection was forgotten")
	}
	if got := ss.lookup(addr(20)); got == nil || ss.tracked() != 3 {
		t.Error("the most recent address was forgotten")
	}
	ss.close(pinned)
	if got := ss.openConns(); got != 0 {
		t.Errorf("open connections after close: got %d, want 0", got)
	}
}
