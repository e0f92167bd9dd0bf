package kmsglog

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkReceive500 streams b.N kernel lines over TCP from 500 nodes at
// once, each on its own loopback address (127.1.x.y), into one receiver
// whose sink keeps them in a Buffer, and checks that none was lost. Each
// node sends within its token bucket (Burst is set to what it sends), so
// the rate limiter is on every line's path but drops nothing. It reports
// lines/s and the heap in use once every line is stored (the Buffer then
// holds up to 1000 lines for each of the 500 nodes).
func BenchmarkReceive500(b *testing.B) {
	const nodes = 500
	perNode := max(1, (b.N+nodes-1)/nodes)
	total := int64(perNode * nodes)

	buf := NewBuffer[netip.Addr](BufferOptions{})
	var delivered atomic.Int64
	all := make(chan struct{})
	sink := SinkFunc(func(from netip.AddrPort, l Line) {
		buf.Add(from.Addr(), l)
		if delivered.Add(1) == total {
			close(all)
		}
	})
	reg := prometheus.NewRegistry()
	r := New(Options{Sink: sink, Registerer: reg, Burst: perNode})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	served := make(chan error, 1)
	go func() { served <- r.ServeTCP(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			b.Error(err)
		}
	}()

	conns := make([]net.Conn, nodes)
	for i := range conns {
		src := netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(i%250 + 1)})
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			b.Skipf("cannot connect from loopback address %v (needs Linux's 127.0.0.0/8 on lo, and 1100 file descriptors): %v", src, err)
		}
		defer c.Close()
		conns[i] = c
	}

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() { stream(b, c, i, perNode) })
	}
	wg.Wait()
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d lines arrived", delivered.Load(), total)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "tinderbox_kmsglog_lines_dropped_total" {
			for _, m := range mf.GetMetric() {
				if v := m.GetCounter().GetValue(); v != 0 {
					b.Fatalf("%v lines dropped (%v)", v, m.GetLabel())
				}
			}
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(total)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	runtime.KeepAlive(buf)
}

// stream writes n kernel lines of about 130 bytes on c, in writes of 64
// lines, as node i.
func stream(b *testing.B, c net.Conn, i, n int) {
	prefix := fmt.Appendf(nil, `{"clock":1,"facility":"kern","msg":"[talos] node %d: phase install (3/4): writing the partition table, line `, i)
	var w []byte
	for seq := range n {
		w = append(w, prefix...)
		w = strconv.AppendInt(w, int64(seq), 10)
		w = append(w, `","priority":"info","seq":`...)
		w = strconv.AppendInt(w, int64(seq), 10)
		w = append(w, `,"talos-level":"info","talos-time":"2026-05-01T10:48:49.294858021Z"}`+"\n"...)
		if (seq+1)%64 == 0 || seq == n-1 {
			if _, err := c.Write(w); err != nil {
				b.Error(err)
				return
			}
			w = w[:0]
		}
	}
}
