package kmsglog

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

// panicSink panics on lines whose message is "boom" and passes the others
// on.
type panicSink struct{ *collector }

func (p panicSink) KernelLog(from netip.AddrPort, l Line) {
	if l.Msg == "boom" {
		panic("sink bug")
	}
	p.collector.KernelLog(from, l)
}

// TestSinkPanic: a Sink that panics loses that line only, counted in
// tinderbox_panics_total; the TCP connection and the UDP socket go on
// delivering.
func TestSinkPanic(t *testing.T) {
	col := newCollector(10)
	s := serve(t, Options{Sink: panicSink{col}})
	c := s.dial(t, "")
	write(t, c, []byte(strings.Join([]string{string(kernelLine(1, "boom")), string(kernelLine(2, "after")), ""}, "\n")))
	if g := col.next(t); g.l.Msg != "after" {
		t.Errorf("TCP after a panic: got %q, want %q", g.l.Msg, "after")
	}

	u, err := net.Dial("udp", s.udp.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	write(t, u, kernelLine(3, "boom"))
	write(t, u, kernelLine(4, "udp after"))
	if g := col.next(t); g.l.Msg != "udp after" {
		t.Errorf("UDP after a panic: got %q, want %q", g.l.Msg, "udp after")
	}
	if got := s.counter(t, "tinderbox_panics_total", "where", "talos_logs"); got != 2 {
		t.Errorf("tinderbox_panics_total: got %v, want 2", got)
	}
}
