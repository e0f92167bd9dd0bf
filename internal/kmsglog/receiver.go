package kmsglog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Options.
const (
	// DefaultMaxLine bounds one line: a kernel message is under 1 KiB
	// (printk's LOG_LINE_MAX is 1024 bytes less its prefix), a service
	// line rarely more; 8 KiB keeps long ones readable and bounds what
	// one connection holds.
	DefaultMaxLine = 8 << 10
	// minMaxLine is the smallest MaxLine: more than bufio's smallest
	// buffer (16 bytes), and less than any line Talos sends (its
	// talos-time field alone is over 40 bytes).
	minMaxLine = 64
	// DefaultMaxConns bounds open TCP connections: Talos keeps one per
	// node, so a rack of a few hundred nodes fits twice over.
	DefaultMaxConns = 1024
	// DefaultMaxConnsPerSource bounds open TCP connections from one
	// address: one per node, and room for a reconnect while the old
	// connection is still open on this side.
	DefaultMaxConnsPerSource = 4
	// DefaultIdleTimeout closes a TCP connection that sends nothing for
	// this long. Talos reconnects on its next line, but that line is
	// lost (its write succeeds before the reset arrives), so the timeout
	// is long: it only frees slots held by silent clients. Dead peers are
	// found sooner by TCP keep-alive, which Go enables on accepted
	// connections.
	DefaultIdleTimeout = 15 * time.Minute
	// DefaultRate is the lines per second one address may send on
	// average: a running node logs a few lines a second at most.
	DefaultRate = 100
	// DefaultBurst is how many lines one address may send at once: when
	// it first connects, Talos sends the whole kernel ring buffer
	// (every message since boot, one to a few thousand lines).
	DefaultBurst = 4096
	// DefaultMaxSources bounds the addresses whose rate is tracked.
	DefaultMaxSources = 4096
)

// Sink receives the lines. KernelLog is called from the goroutine that
// read the line: lines from one TCP connection, and all UDP lines of one
// ServeUDP, arrive in order. It must be safe for concurrent use and must
// not block (the receiver reads no more from that connection meanwhile).
type Sink interface {
	KernelLog(from netip.AddrPort, l Line)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(from netip.AddrPort, l Line)

// KernelLog calls f.
func (f SinkFunc) KernelLog(from netip.AddrPort, l Line) { f(from, l) }

// Options configures New; every field is optional.
type Options struct {
	// Sink gets every line kept; nil discards them (they are counted).
	Sink Sink
	// Logger gets connection and dropped-line detail at Debug and one
	// Warn a minute at most per over-rate source and for refused
	// connections; nil discards.
	Logger *slog.Logger
	// Registerer takes the receiver's metrics; nil counts nothing.
	Registerer prometheus.Registerer
	// MaxLine is the longest line in bytes kept whole; a longer one is
	// cut (Line.Truncated). 0 means DefaultMaxLine; values under 64 are
	// raised to 64.
	MaxLine int
	// MaxConns bounds open TCP connections; more are closed at once.
	// 0 means DefaultMaxConns.
	MaxConns int
	// MaxConnsPerSource bounds open TCP connections from one IP address.
	// 0 means DefaultMaxConnsPerSource.
	MaxConnsPerSource int
	// IdleTimeout closes a TCP connection silent for this long. 0 means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Rate is the lines per second one IP address may send on average,
	// over TCP and UDP together; Burst is how many at once. Lines beyond
	// are dropped and counted. 0 means DefaultRate, DefaultBurst.
	Rate  float64
	Burst int
	// MaxSources bounds the IP addresses whose rate is tracked; beyond
	// it, the least recently heard one without a connection is
	// forgotten. 0 means DefaultMaxSources; it is raised above MaxConns.
	MaxSources int
}

// Receiver receives Talos' log stream (the kernel log of
// talos.logging.kernel, or service logs in the json_lines format) over
// TCP and UDP and hands each line to its Sink. One Receiver can serve
// several sockets at once; the limits per source and in total apply
// across them. It is safe for concurrent use.
type Receiver struct {
	sink    Sink
	log     *slog.Logger
	m       *metricSet
	maxLine int
	idle    time.Duration
	sources *sources
	// now is the clock of the rate limiter, replaced in tests.
	now func() time.Time

	received      map[Transport]prometheus.Counter
	dropped       map[DropReason]prometheus.Counter
	refusedWarnMu sync.Mutex
	refusedWarned time.Time
}

// New returns a receiver; call ServeTCP or ServeUDP (or both) to run it.
func New(o Options) *Receiver {
	r := &Receiver{sink: o.Sink, log: o.Logger, maxLine: o.MaxLine, idle: o.IdleTimeout, now: time.Now}
	if r.sink == nil {
		r.sink = SinkFunc(func(netip.AddrPort, Line) {})
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.maxLine <= 0 {
		r.maxLine = DefaultMaxLine
	}
	r.maxLine = max(r.maxLine, minMaxLine)
	if r.idle <= 0 {
		r.idle = DefaultIdleTimeout
	}
	maxConns, perSource, maxSources := o.MaxConns, o.MaxConnsPerSource, o.MaxSources
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	if perSource <= 0 {
		perSource = DefaultMaxConnsPerSource
	}
	if maxSources <= 0 {
		maxSources = DefaultMaxSources
	}
	// Sources with an open connection are never forgotten; with more
	// room than connections, a new source always finds some.
	maxSources = max(maxSources, maxConns+1)
	rate, burst := o.Rate, o.Burst
	if rate <= 0 {
		rate = DefaultRate
	}
	if burst <= 0 {
		burst = DefaultBurst
	}
	r.sources = newSources(maxSources, maxConns, perSource, rate, burst)

	reg := o.Registerer
	if reg == nil {
		// Collectors on a registry nobody gathers: counting into them is
		// the no-op, and the code needs no nil checks.
		reg = prometheus.NewRegistry()
	}
	r.m = newMetrics(reg, func() float64 { return float64(r.sources.openConns()) })
	r.received = map[Transport]prometheus.Counter{}
	for _, t := range []Transport{TCP, UDP} {
		r.received[t] = r.m.received.WithLabelValues(string(t))
	}
	r.dropped = map[DropReason]prometheus.Counter{}
	for _, d := range []DropReason{DropRateLimited, DropGarbage, DropOversized} {
		r.dropped[d] = r.m.dropped.WithLabelValues(string(d))
	}
	return r
}

// ServeTCP accepts Talos' connections on ln and reads newline-separated
// lines from each until ctx is cancelled; then it closes ln and every
// connection, waits for their goroutines and returns nil. It blocks.
// ServeTCP owns ln and closes it before it returns, whatever the
// outcome; it returns an error only when ln fails. Connections beyond
// MaxConns in total or MaxConnsPerSource from one address are closed as
// soon as they are accepted.
func (r *Receiver) ServeTCP(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Ending the connections on every return, not only on ctx.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer func() { _ = ln.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()

	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("kmsglog: accept %s: %w", ln.Addr(), err)
			}
			// Out of file descriptors and the like: not ours to fix, and
			// it must not stop the receiver; pause so it does not spin.
			r.log.Warn("kmsglog: accept", "listen", ln.Addr().String(), "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		from := addrPort(c.RemoteAddr())
		src, refused := r.sources.open(from.Addr())
		if src == nil {
			// Counted before the close, so whoever sees the close sees
			// the count.
			r.m.connections.WithLabelValues(string(refused)).Inc()
			_ = c.Close()
			r.warnRefused(from, refused)
			continue
		}
		r.m.connections.WithLabelValues(connAccepted).Inc()
		r.log.Debug("kmsglog: connection", "remote", from.String())
		wg.Go(func() {
			defer r.sources.close(src)
			stop := context.AfterFunc(ctx, func() { _ = c.Close() })
			defer stop()
			why := r.serveConn(ctx, c, src, from)
			r.m.closed.WithLabelValues(why).Inc()
			_ = c.Close()
			r.log.Debug("kmsglog: connection closed", "remote", from.String(), "reason", why)
		})
	}
}

// serveConn reads lines from c until it ends, and says why it ended. Its
// memory is one buffer of MaxLine+1 bytes however long a line is.
func (r *Receiver) serveConn(ctx context.Context, c net.Conn, src *source, from netip.AddrPort) string {
	br := bufio.NewReaderSize(c, r.maxLine+1)
	skipping := false // discarding the rest of a line that was too long
	for {
		if err := c.SetReadDeadline(time.Now().Add(r.idle)); err != nil {
			return closeReason(ctx, err)
		}
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !skipping {
				r.line(TCP, src, from, b[:r.maxLine], true)
				skipping = true
			}
			continue
		}
		if skipping {
			skipping = false // b is the end of the long line
		} else if len(bytes.Trim(b, jsonSpace)) > 0 {
			// A last line without its newline (the node was cut off
			// mid-write) is kept when it is whole JSON.
			r.line(TCP, src, from, b, false)
		}
		if err != nil {
			return closeReason(ctx, err)
		}
	}
}

// closeReason names why reading a connection ended with err.
func closeReason(ctx context.Context, err error) string {
	switch {
	case ctx.Err() != nil:
		return closedShutdown
	case errors.Is(err, io.EOF):
		return closedEOF
	case errors.Is(err, os.ErrDeadlineExceeded):
		return closedIdle
	default:
		return closedError
	}
}

// ServeUDP reads one line per datagram from pc until ctx is cancelled,
// then returns nil. It blocks. ServeUDP owns pc and closes it before it
// returns, whatever the outcome; it returns an error only when pc fails.
// A datagram longer than MaxLine is cut (the kernel drops what does not
// fit the read buffer).
func (r *Receiver) ServeUDP(ctx context.Context, pc net.PacketConn) error {
	defer func() { _ = pc.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = pc.Close() })
	defer stop()

	buf := make([]byte, r.maxLine+1)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("kmsglog: read %s: %w", pc.LocalAddr(), err)
			}
			// ICMP errors reported on the socket and the like must not
			// stop the receiver; pause so a lasting one does not spin.
			r.log.Warn("kmsglog: read", "listen", pc.LocalAddr().String(), "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		b := buf[:n]
		if len(bytes.Trim(b, jsonSpace)) == 0 {
			continue
		}
		from := addrPort(addr)
		cut := n > r.maxLine
		if cut {
			b = b[:r.maxLine]
		}
		r.line(UDP, r.sources.lookup(from.Addr()), from, b, cut)
	}
}

// line takes one line from src: rate limit, parse, hand to the sink.
// cut says b is the first MaxLine bytes of a longer line. A panic (in the
// Sink, say) is recovered, counted and logged: that line is lost, the
// connection and the receiver go on.
func (r *Receiver) line(t Transport, src *source, from netip.AddrPort, b []byte, cut bool) {
	defer r.m.panics.Recover(r.log, slog.String("remote", from.String()), slog.String("transport", string(t)))
	r.received[t].Inc()
	now := r.now()
	if ok, warn := r.sources.allow(src, now); !ok {
		r.dropped[DropRateLimited].Inc()
		if warn > 0 {
			r.log.Warn("kmsglog: sender over its line rate, dropping lines",
				"remote", from.Addr().String(), "dropped", warn)
		}
		return
	}
	var (
		l   Line
		err error
	)
	if cut {
		l, err = parseCut(b)
	} else {
		l, err = Parse(b)
	}
	if err != nil {
		reason := DropGarbage
		if errors.Is(err, ErrCut) {
			reason = DropOversized
		}
		r.dropped[reason].Inc()
		r.log.Debug("kmsglog: line dropped", "remote", from.String(), "reason", string(reason), "err", err)
		return
	}
	if cut {
		r.m.truncated.Inc()
	}
	l.From, l.Arrived = from, now
	if l.Time.IsZero() {
		l.Time = now
	}
	r.sink.KernelLog(from, l)
}

// warnRefused logs a refused connection at Warn once a minute at most
// (the first of a burst), and at Debug otherwise.
func (r *Receiver) warnRefused(from netip.AddrPort, why refusal) {
	now := time.Now()
	r.refusedWarnMu.Lock()
	due := r.refusedWarned.IsZero() || now.Sub(r.refusedWarned) >= warnEvery
	if due {
		r.refusedWarned = now
	}
	r.refusedWarnMu.Unlock()
	level := slog.LevelDebug
	if due {
		level = slog.LevelWarn
	}
	r.log.Log(context.Background(), level, "kmsglog: connection refused", "remote", from.String(), "reason", string(why))
}

// addrPort is a socket address as a netip.AddrPort, IPv4 unmapped.
func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
