package kmsglog

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// encode writes l the way Talos' json_lines sender does: a JSON object of
// the fields (keys sorted, as Go encodes a map), no newline.
func encode(l Line) []byte {
	m := map[string]any{"msg": l.Msg}
	if !l.Time.IsZero() {
		m["talos-time"] = l.Time.Format(time.RFC3339Nano)
	}
	if l.Level != "" {
		m["talos-level"] = l.Level
	}
	if l.Service != "" {
		m["talos-service"] = l.Service
	}
	if l.Facility != "" {
		m["facility"] = l.Facility
	}
	if l.Priority != "" {
		m["priority"] = l.Priority
	}
	if l.Seq >= 0 {
		m["seq"] = l.Seq
	}
	if l.Clock != 0 {
		m["clock"] = l.Clock.Microseconds()
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // only maps of strings and numbers: cannot fail
	}
	return b
}

// kernelLine is a kernel message as Talos sends it, numbered seq.
func kernelLine(seq int64, msg string) []byte {
	return encode(Line{
		Msg: msg, Level: "info", Facility: "kern", Priority: "info", Seq: seq,
		Clock: time.Duration(seq) * time.Millisecond,
		Time:  time.Date(2026, 5, 1, 10, 0, 0, int(seq), time.UTC),
	})
}

// got is one line a sink received.
type got struct {
	from netip.AddrPort
	l    Line
}

// collector is a Sink that queues what it gets.
type collector struct{ c chan got }

func newCollector(n int) *collector { return &collector{c: make(chan got, n)} }

func (c *collector) KernelLog(from netip.AddrPort, l Line) { c.c <- got{from, l} }

// next returns the next line, failing the test when none comes (the
// timeout only keeps a broken test from hanging).
func (c *collector) next(t *testing.T) got {
	t.Helper()
	select {
	case g := <-c.c:
		return g
	case <-time.After(10 * time.Second):
		t.Fatal("no line arrived")
		return got{}
	}
}

// none fails the test when a line is queued.
func (c *collector) none(t *testing.T) {
	t.Helper()
	select {
	case g := <-c.c:
		t.Fatalf("got an unexpected line %q from %v", g.l.Msg, g.from)
	default:
	}
}

// server is a receiver running on loopback sockets.
type server struct {
	r    *Receiver
	reg  *prometheus.Registry
	tcp  net.Listener
	udp  net.PacketConn
	stop func() (tcpErr, udpErr error)
}

// fakeClock is a rate-limiter clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// serve runs a receiver with o on 127.0.0.1, TCP and UDP, with a frozen
// rate-limiter clock (so a bucket never refills during a test), and
// stops it at cleanup.
func serve(t *testing.T, o Options) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		_ = ln.Close()
		t.Fatal(err)
	}
	s := &server{reg: prometheus.NewRegistry(), tcp: ln, udp: pc}
	o.Registerer = s.reg
	s.r = New(o)
	clock := &fakeClock{t: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
	s.r.now = clock.now
	ctx, cancel := context.WithCancel(t.Context())
	tcpDone, udpDone := make(chan error, 1), make(chan error, 1)
	go func() { tcpDone <- s.r.ServeTCP(ctx, ln) }()
	go func() { udpDone <- s.r.ServeUDP(ctx, pc) }()
	s.stop = sync.OnceValues(func() (error, error) {
		cancel()
		return <-tcpDone, <-udpDone
	})
	t.Cleanup(func() { _, _ = s.stop() })
	return s
}

// dial connects to the server's TCP port from the loopback address src
// ("" for the system's choice).
func (s *server) dial(t *testing.T, src string) net.Conn {
	t.Helper()
	d := net.Dialer{}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.DialContext(t.Context(), "tcp", s.tcp.Addr().String())
	if err != nil {
		if src != "" {
			t.Skipf("cannot use loopback source address %s: %v", src, err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// counter reads one counter of the server's registry.
func (s *server) counter(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}
