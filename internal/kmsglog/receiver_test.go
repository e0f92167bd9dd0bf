package kmsglog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond until it holds, failing the test when it never
// does (the limit only keeps a broken test from hanging).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// write sends b on c, failing the test on error.
func write(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// closedByServer reports whether the server ended c: a read returns EOF
// or a reset rather than data or the test's own deadline.
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

func TestTCPDelivery(t *testing.T) {
	col := newCollector(1000)
	s := serve(t, Options{Sink: col})
	c := s.dial(t, "")
	var want []string
	var all bytes.Buffer
	for i := range 200 {
		msg := fmt.Sprintf("[talos] line %d", i)
		want = append(want, msg)
		all.Write(kernelLine(int64(i), msg))
		all.WriteByte('\n')
	}
	// Several lines in one write, and lines split across writes at every
	// kind of place.
	b := all.Bytes()
	for _, n := range []int{len(b) / 2, 7, 1, 1, 300} {
		write(t, c, b[:n])
		b = b[n:]
	}
	write(t, c, b)
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	for i, msg := range want {
		g := col.next(t)
		if g.l.Msg != msg {
			t.Fatalf("line %d: got %q, want %q", i, g.l.Msg, msg)
		}
		if g.from != local || g.l.From != local {
			t.Fatalf("line %d: from %v (Line.From %v), want %v", i, g.from, g.l.From, local)
		}
		if g.l.Seq != int64(i) || g.l.Facility != "kern" || g.l.Time.Nanosecond() != i || g.l.Arrived.IsZero() {
			t.Fatalf("line %d: fields not kept: %+v", i, g.l)
		}
	}
	if got := s.counter(t, "tinderbox_kmsglog_lines_received_total", "transport", "tcp"); got != 200 {
		t.Errorf("lines received: got %v, want 200", got)
	}
}

// TestTCPFraming: CRLF endings and blank lines are taken, and a last line
// without its newline is kept when the connection ends.
func TestTCPFraming(t *testing.T) {
	col := newCollector(10)
	s := serve(t, Options{Sink: col})
	c := s.dial(t, "")
	write(t, c, []byte(`{"msg":"crlf"}`+"\r\n\n  \n"+`{"msg":"last"}`))
	if got := col.next(t).l.Msg; got != "crlf" {
		t.Errorf("got %q, want crlf", got)
	}
	_ = c.Close()
	if got := col.next(t).l.Msg; got != "last" {
		t.Errorf("got %q, want last", got)
	}
	waitFor(t, "connection closed", func() bool {
		return s.counter(t, "tinderbox_kmsglog_connections_closed_total", "reason", "eof") == 1
	})
	if got := s.counter(t, "tinderbox_kmsglog_lines_received_total", "transport", "tcp"); got != 2 {
		t.Errorf("lines received: got %v, want 2 (blank lines are not lines)", got)
	}
}

func TestUDPDelivery(t *testing.T) {
	col := newCollector(100)
	s := serve(t, Options{Sink: col})
	c, err := net.Dial("udp", s.udp.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	// One at a time: UDP on loopback keeps order, but a burst could
	// overflow the socket buffer.
	for i := range 20 {
		write(t, c, kernelLine(int64(i), fmt.Sprint("udp ", i)))
		g := col.next(t)
		if want := fmt.Sprint("udp ", i); g.l.Msg != want || g.from != local || g.l.Seq != int64(i) {
			t.Fatalf("got %q from %v seq %d, want %q from %v seq %d", g.l.Msg, g.from, g.l.Seq, want, local, i)
		}
	}
	// Without talos-time, the line's time is its arrival.
	write(t, c, []byte(`{"msg":"no time"}`))
	if g := col.next(t); !g.l.Time.Equal(g.l.Arrived) || g.l.Time.IsZero() {
		t.Errorf("time %v, arrived %v: want both the arrival", g.l.Time, g.l.Arrived)
	}
	if got := s.counter(t, "tinderbox_kmsglog_lines_received_total", "transport", "udp"); got != 21 {
		t.Errorf("lines received: got %v, want 21", got)
	}
}

func TestOversized(t *testing.T) {
	const maxLine = 512
	col := newCollector(10)
	s := serve(t, Options{Sink: col, MaxLine: maxLine})
	long := strings.Repeat("é", 3*maxLine)
	check := func(t *testing.T, l Line) {
		t.Helper()
		if !l.Truncated || !strings.HasSuffix(l.Msg, TruncatedMarker) {
			t.Fatalf("got %+v, want a truncated line with the marker", l)
		}
		kept := strings.TrimSuffix(l.Msg, TruncatedMarker)
		if len(kept) >= maxLine || !strings.HasPrefix(long, kept) || len(kept) < maxLine/2 {
			t.Errorf("kept %d bytes of the message, want a prefix of it cut at a rune boundary, under %d", len(kept), maxLine)
		}
		if l.Facility != "kern" {
			t.Errorf("facility %q: want the fields before the cut kept", l.Facility)
		}
	}

	t.Run("tcp", func(t *testing.T) {
		c := s.dial(t, "")
		var b bytes.Buffer
		b.Write(kernelLine(1, long))
		b.WriteString("\n")
		// Cut before its message: nothing to keep.
		b.WriteString(`{"aaaa":"` + strings.Repeat("a", 2*maxLine) + `","msg":"lost"}` + "\n")
		b.Write(kernelLine(2, "after"))
		b.WriteString("\n")
		write(t, c, b.Bytes())
		check(t, col.next(t).l)
		if got := col.next(t).l.Msg; got != "after" {
			t.Errorf("got %q after the long lines, want after", got)
		}
	})
	t.Run("udp", func(t *testing.T) {
		c, err := net.Dial("udp", s.udp.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		write(t, c, kernelLine(1, long))
		check(t, col.next(t).l)
	})
	if got := s.counter(t, "tinderbox_kmsglog_lines_truncated_total"); got != 2 {
		t.Errorf("truncated: got %v, want 2", got)
	}
	if got := s.counter(t, "tinderbox_kmsglog_lines_dropped_total", "reason", "oversized"); got != 1 {
		t.Errorf("dropped as oversized: got %v, want 1", got)
	}
}

func TestGarbage(t *testing.T) {
	col := newCollector(10)
	s := serve(t, Options{Sink: col})
	c := s.dial(t, "")
	write(t, c, []byte("hello\n{\"msg\":1}\n\x00\xff\xfe\n[]\n{\"msg\":\"good\"}\n"))
	if got := col.next(t).l.Msg; got != "good" {
		t.Errorf("got %q, want good: the connection must survive garbage", got)
	}
	col.none(t)
	if got := s.counter(t, "tinderbox_kmsglog_lines_dropped_total", "reason", "garbage"); got != 4 {
		t.Errorf("garbage: got %v, want 4", got)
	}
}

// syncBuffer is a log destination safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFlood: one address sending far beyond its rate gets its burst
// through and the rest dropped and counted, with one warning; another
// address is not affected.
func TestFlood(t *testing.T) {
	const burst, flood = 50, 2000
	col := newCollector(flood + 100)
	var logs syncBuffer
	s := serve(t, Options{Sink: col, Burst: burst, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	a := s.dial(t, "127.0.0.1")
	b := s.dial(t, "127.0.0.2")

	var lines bytes.Buffer
	for i := range flood {
		lines.Write(kernelLine(int64(i), "flood"))
		lines.WriteByte('\n')
	}
	write(t, a, lines.Bytes())
	for i := range 10 {
		write(t, b, append(kernelLine(int64(i), "quiet"), '\n'))
	}
	_ = a.Close()
	_ = b.Close()
	waitFor(t, "both connections ended", func() bool {
		return s.counter(t, "tinderbox_kmsglog_connections_closed_total", "reason", "eof") == 2
	})
	n := map[string]int{}
	for len(col.c) > 0 {
		g := <-col.c
		n[g.from.Addr().String()+" "+g.l.Msg]++
	}
	if n["127.0.0.1 flood"] != burst || n["127.0.0.2 quiet"] != 10 || len(n) != 2 {
		t.Errorf("got %v, want %d flood lines from 127.0.0.1 and all 10 quiet ones from 127.0.0.2", n, burst)
	}
	if got := s.counter(t, "tinderbox_kmsglog_lines_dropped_total", "reason", "rate_limited"); got != flood-burst {
		t.Errorf("rate_limited: got %v, want %d", got, flood-burst)
	}
	if got := strings.Count(logs.String(), "over its line rate"); got != 1 {
		t.Errorf("got %d rate warnings, want 1:\n%s", got, logs.String())
	}
}

// TestUnboundedLine: a sender that never ends its line costs the
// receiver one line's buffer, not what it sends.
func TestUnboundedLine(t *testing.T) {
	const sent = 64 << 20
	col := newCollector(10)
	s := serve(t, Options{Sink: col, MaxLine: 1024})
	c := s.dial(t, "")
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	write(t, c, []byte(`{"msg":"`))
	for range sent / len(chunk) {
		write(t, c, chunk)
	}
	write(t, c, []byte("\"}\n{\"msg\":\"next\"}\n"))
	first := col.next(t).l
	if !first.Truncated || len(first.Msg) > 1024+len(TruncatedMarker) {
		t.Fatalf("got a line of %d bytes, truncated %v: want it cut to 1024 and the marker", len(first.Msg), first.Truncated)
	}
	if got := col.next(t).l.Msg; got != "next" {
		t.Fatalf("got %.40q after the long line, want next", got)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > sent/8 {
		t.Errorf("allocated %d MiB while %d MiB without a newline arrived: memory grows with the line", grew>>20, sent>>20)
	}
}

// TestConnectionLimits: beyond the limits per address and in total, a
// connection is closed at once and counted; the slot comes back when a
// connection ends.
func TestConnectionLimits(t *testing.T) {
	col := newCollector(10)
	s := serve(t, Options{Sink: col, MaxConns: 2, MaxConnsPerSource: 1})
	accepted := func(c net.Conn, msg string) {
		t.Helper()
		write(t, c, []byte(`{"msg":"`+msg+`"}`+"\n"))
		if got := col.next(t).l.Msg; got != msg {
			t.Fatalf("got %q, want %q", got, msg)
		}
	}
	a1 := s.dial(t, "127.0.0.1")
	accepted(a1, "a1")
	if a2 := s.dial(t, "127.0.0.1"); !closedByServer(t, a2) {
		t.Error("a second connection from 127.0.0.1 was kept open")
	}
	b := s.dial(t, "127.0.0.2")
	accepted(b, "b")
	if c := s.dial(t, "127.0.0.3"); !closedByServer(t, c) {
		t.Error("a third connection in total was kept open")
	}
	if got := s.counter(t, "tinderbox_kmsglog_connections_total", "result", "too_many_from_source"); got != 1 {
		t.Errorf("refused per source: got %v, want 1", got)
	}
	if got := s.counter(t, "tinderbox_kmsglog_connections_total", "result", "too_many"); got != 1 {
		t.Errorf("refused in total: got %v, want 1", got)
	}
	_ = a1.Close()
	waitFor(t, "the slot to come back", func() bool {
		return s.counter(t, "tinderbox_kmsglog_connections_open") == 1
	})
	accepted(s.dial(t, "127.0.0.1"), "a3")
	col.none(t)
}

func TestIdleTimeout(t *testing.T) {
	s := serve(t, Options{IdleTimeout: 50 * time.Millisecond})
	c := s.dial(t, "")
	if !closedByServer(t, c) {
		t.Fatal("an idle connection was kept open")
	}
	waitFor(t, "idle close counted", func() bool {
		return s.counter(t, "tinderbox_kmsglog_connections_closed_total", "reason", "idle") == 1
	})
}

// TestContract: with no options the receiver runs; on cancel both Serve
// methods return nil, having closed their sockets and every connection;
// a socket closed under them is an error.
func TestContract(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		s := serve(t, Options{})
		r := New(Options{}) // nil Sink, Logger and Registerer
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.ServeTCP(ctx, ln) }()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		write(t, c, []byte(`{"msg":"discarded"}`+"\n"))
		open := s.dial(t, "")
		write(t, open, []byte(`{"msg":"x"}`+"\n"))
		waitFor(t, "the connection to be open", func() bool {
			return s.counter(t, "tinderbox_kmsglog_connections_open") == 1
		})
		tcpErr, udpErr := s.stop()
		if tcpErr != nil || udpErr != nil {
			t.Errorf("ServeTCP, ServeUDP returned %v, %v on cancel, want nil", tcpErr, udpErr)
		}
		if _, err := s.tcp.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("listener after ServeTCP: got %v, want net.ErrClosed", err)
		}
		if _, _, err := s.udp.ReadFrom(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("packet conn after ServeUDP: got %v, want net.ErrClosed", err)
		}
		if !closedByServer(t, open) {
			t.Error("a connection outlived ServeTCP")
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeTCP with no options returned %v on cancel, want nil", err)
		}
	})
	t.Run("socket closed", func(t *testing.T) {
		r := New(Options{})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tcpDone, udpDone := make(chan error, 1), make(chan error, 1)
		go func() { tcpDone <- r.ServeTCP(t.Context(), ln) }()
		go func() { udpDone <- r.ServeUDP(t.Context(), pc) }()
		_ = ln.Close()
		_ = pc.Close()
		if err := <-tcpDone; !errors.Is(err, net.ErrClosed) {
			t.Errorf("ServeTCP: got %v, want net.ErrClosed", err)
		}
		if err := <-udpDone; !errors.Is(err, net.ErrClosed) {
			t.Errorf("ServeUDP: got %v, want net.ErrClosed", err)
		}
	})
}
