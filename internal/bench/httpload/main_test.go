package main

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunRotatesMACsAndCountsOutcomes(t *testing.T) {
	var (
		mu   sync.Mutex
		seen = map[string]int{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Query().Get("mac")]++
		mu.Unlock()
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("#!ipxe\n"))
	}))
	defer srv.Close()

	r := run(srv.URL+"/ipxe?mac={mac}", 3, 3, 0)
	if r.requests != 3 || r.errors != 0 || r.other != 0 || r.bytes != 3*7 || len(r.lat) != 3 {
		t.Fatalf("run = %+v, want 3 requests of 7 bytes", r)
	}
	for _, mac := range []string{"02:00:00:00:00:00", "02:00:00:00:00:01", "02:00:00:00:00:02"} {
		if seen[mac] != 1 {
			t.Errorf("%s asked %d times, want 1 (seen %v)", mac, seen[mac], seen)
		}
	}

	r = run(srv.URL+"/missing", 1, 2, 0)
	if r.requests != 0 || r.other != 2 || !strings.Contains(r.String(), `first_error="status 404"`) {
		t.Fatalf("404s counted as %+v / %s", r, r)
	}
}

func TestExpand(t *testing.T) {
	if got := expand("/a/{i}/{mac}", 258); got != "/a/258/02:00:00:00:01:02" {
		t.Fatalf("expand = %q", got)
	}
}

func TestRunReadsChunkedAndClosingAnswers(t *testing.T) {
	big := strings.Repeat("x", 5000) // past net/http's 2 KiB buffer: sent chunked
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		w.Write([]byte(big[:len(big)/2]))
		w.Write([]byte(big[len(big)/2:]))
	}))
	defer srv.Close()
	// Repeated for a while: a connection the server ends is dialled again.
	for _, path := range []string{"/chunked", "/close"} {
		r := run(srv.URL+path, 1000, 2, 100*time.Millisecond) // -n with no {i} or {mac}: one URL

		if r.requests < 3 || r.errors != 0 || r.other != 0 || r.bytes != int64(r.requests*len(big)) {
			t.Errorf("%s: run = %s, want at least 3 requests of %d bytes and no error", path, r, len(big))
		}
	}
}

func TestRunRefusesOtherSchemes(t *testing.T) {
	r := run("https://127.0.0.1:1/x", 1, 2, 0)
	if r.requests != 0 || r.errors != 2 || !strings.Contains(r.firstErr, "only http://") {
		t.Fatalf("run = %+v, want 2 errors naming the scheme", r)
	}
}

// stallingServer answers "ok" at once, except its stallAt-th request
// (counting from 1), which it answers after stall; it records each {i}
// asked for.
func stallingServer(t *testing.T, stallAt int64, stall time.Duration) (*httptest.Server, func() map[string]int) {
	t.Helper()
	var (
		n    atomic.Int64
		mu   sync.Mutex
		seen = map[string]int{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == stallAt {
			time.Sleep(stall)
		}
		mu.Lock()
		seen[r.URL.Query().Get("i")]++
		mu.Unlock()
		w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv, func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(seen)
	}
}

// atLeast returns how many of lat are at least min.
func atLeast(lat []time.Duration, min time.Duration) int {
	n := 0
	for _, l := range lat {
		if l >= min {
			n++
		}
	}
	return n
}

func TestRunOpenCountsAStallFromTheDueTimes(t *testing.T) {
	const stall = 50 * time.Millisecond
	// One connection, a request due every millisecond for 200 ms; the
	// 20th request stalls. The requests due during the stall cannot be
	// sent before it ends: request m after the stalled one (due m ms
	// after it) is sent late and its latency, from its due time, is at
	// least stall - m ms.
	srv, _ := stallingServer(t, 20, stall)
	r := runOpen(srv.URL+"/?i={i}", 1000, 1, 1000, 200*time.Millisecond)
	if r.requests != 200 || r.errors != 0 || r.other != 0 || r.bytes != 200*2 {
		t.Fatalf("runOpen = %s, want 200 requests of 2 bytes and no error", r)
	}
	if got := r.lat[len(r.lat)-1]; got < stall {
		t.Errorf("max latency %v, want at least the stall, %v", got, stall)
	}
	// Requests 0..24 after the stalled one have latencies of at least
	// 25 ms; with coordinated omission only the stalled one would.
	if got := atLeast(r.lat, stall/2); got < 25 {
		t.Errorf("%d latencies >= %v, want at least 25 (the requests due during the stall)", got, stall/2)
	}
	// Those due in its first 45 ms were sent more than 1 ms late, their
	// connection busy with the stalled request at their due time.
	if r.late < 45 || r.late-r.lateIdle < 45 {
		t.Errorf("late = %d of which %d on an idle connection, want at least 45 on a busy one", r.late, r.lateIdle)
	}
	if s := r.String(); !strings.Contains(s, " mode=open rate=1000 achieved=") || !strings.Contains(s, " late_idle=") {
		t.Errorf("line %q lacks the open loop's fields", s)
	}

	// The closed loop on the same kind of server still runs; it times
	// each request from its send, so the stall shows in the stalled
	// request (the ones due during it are not sent until it ends).
	srv, _ = stallingServer(t, 20, stall)
	c := run(srv.URL+"/?i={i}", 1000, 1, 200*time.Millisecond)
	if c.requests < 20 || c.errors != 0 || c.other != 0 || c.late != 0 {
		t.Fatalf("run = %s, want at least 20 requests and no error", c)
	}
	if got := c.lat[len(c.lat)-1]; got < stall {
		t.Errorf("closed loop: max latency %v, want at least the stall, %v", got, stall)
	}
	if strings.Contains(c.String(), "mode=") {
		t.Errorf("closed loop's line %q has the open loop's fields", c)
	}
}

func TestRunOpenSpreadsTheScheduleOverConnections(t *testing.T) {
	// 2000/s for 100 ms over 4 connections: 200 requests, each value of
	// {i} (request k asks for k mod n) asked for exactly once.
	srv, seen := stallingServer(t, 0, 0)
	r := runOpen(srv.URL+"/?i={i}", 1000, 4, 2000, 100*time.Millisecond)
	if r.requests != 200 || r.errors != 0 || r.other != 0 {
		t.Fatalf("runOpen = %s, want 200 requests and no error", r)
	}
	got := seen()
	for i := range 200 {
		if got[strconv.Itoa(i)] != 1 {
			t.Errorf("i=%d asked %d times, want 1", i, got[strconv.Itoa(i)])
		}
	}
	if len(got) != 200 {
		t.Errorf("%d values asked for, want 200", len(got))
	}
}

func TestRunOpenCountsRefusedConnections(t *testing.T) {
	srv, _ := stallingServer(t, 0, 0)
	addr := srv.Listener.Addr().String()
	srv.Close() // nothing listens there now
	r := runOpen("http://"+addr+"/", 1, 2, 1000, 20*time.Millisecond)
	if r.requests != 0 || r.errors != 20 || r.firstErr == "" {
		t.Fatalf("runOpen = %s, want 20 errors (every request due)", r)
	}
}
