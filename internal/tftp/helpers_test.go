package tftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"pack.ag/tftp"

	"github.com/tinderbox-boot/tinderbox/internal/ipxe"
)

// testFiles are the files every fixture serves, by name.
var testFiles = map[string][]byte{
	"empty":         {},
	"one":           {'x'},
	"exact.bin":     randomBytes(4 * 512), // a multiple of the default blksize: ends with an empty block
	ipxe.BIOS:       randomBytes(74213),   // the size of Debian's undionly.kpxe
	"big.bin":       randomBytes(1 << 20),
	"sub/nested.bf": randomBytes(3000),
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// fixture is a running server on 127.0.0.1 with its metrics, log and
// recorded transfers.
type fixture struct {
	addr   string
	dir    string
	reg    *prometheus.Registry
	m      *Metrics
	rec    *recorder
	log    string // path of the server's log, a file the test reads while the server writes
	cancel context.CancelFunc
	done   chan error
}

// start serves testFiles on 127.0.0.1 from a fresh ipxe.dir, with a
// secret file and a symlink out of it beside them.
func start(t testing.TB, configure func(*Options)) *fixture {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startOn(t, pc, configure)
}

// startOn is start serving on pc, which Serve closes.
func startOn(t testing.TB, pc net.PacketConn, configure func(*Options)) *fixture {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "ipxe")
	for name, b := range testFiles {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret", filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	root := ipxe.NewRoot(dir)
	t.Cleanup(func() { _ = root.Close() })

	f := &fixture{dir: dir, reg: prometheus.NewRegistry(), rec: &recorder{}, log: filepath.Join(t.TempDir(), "server.log"), done: make(chan error, 1)}
	f.m = NewMetrics(f.reg)
	// The log goes to a file the test can read while the server writes it,
	// not to the test's output: a benchmark prints its output always.
	logFile, err := os.Create(f.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	opts := Options{
		Files:    root,
		Logger:   slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:  f.m,
		Recorder: f.rec,
		Timeout:  200 * time.Millisecond,
		Retries:  3,
	}
	if configure != nil {
		configure(&opts)
	}
	f.addr = pc.LocalAddr().String()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	srv := New(opts)
	// As Listen does: requests sent before Serve's goroutine runs must
	// carry their destination too.
	newRequestConn(pc)
	go func() { f.done <- srv.Serve(ctx, pc) }()
	t.Cleanup(func() {
		if err := f.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", f.logged(t))
		}
	})
	return f
}

// logged returns what the server has logged so far.
func (f *fixture) logged(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(f.log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stop cancels Serve and returns its error; later calls return nil.
func (f *fixture) stop() error {
	f.cancel()
	select {
	case err, ok := <-f.done:
		if ok {
			close(f.done)
		}
		return err
	case <-time.After(10 * time.Second):
		return errors.New("Serve did not return within 10s of cancel")
	}
}

// count returns tinderbox_tftp_transfers_total{result}.
func (f *fixture) count(r Result) int {
	return int(testutil.ToFloat64(f.m.transfers.WithLabelValues(string(r))))
}

// waitCount waits until the result's counter reaches want.
func (f *fixture) waitCount(t *testing.T, r Result, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.count(r) < want {
		if time.Now().After(deadline) {
			t.Fatalf("transfers_total{result=%q}: got %d, want %d", r, f.count(r), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// get downloads name with the library's client.
func (f *fixture) get(name string, opts ...tftp.ClientOpt) ([]byte, error) {
	c, err := tftp.NewClient(append([]tftp.ClientOpt{tftp.ClientRetransmit(5)}, opts...)...)
	if err != nil {
		return nil, err
	}
	resp, err := c.Get("tftp://" + f.addr + "/" + name)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(resp)
}

// recorder is a Recorder that keeps what it is told.
type recorder struct {
	mu sync.Mutex
	ts []Transfer
}

func (r *recorder) TFTPSent(_ context.Context, t Transfer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ts = append(r.ts, t)
}

func (r *recorder) transfers() []Transfer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Transfer(nil), r.ts...)
}

// rawClient speaks TFTP packet by packet, to play firmware quirks and
// misbehaving clients.
type rawClient struct {
	t      *testing.T
	conn   *net.UDPConn
	server *net.UDPAddr
	peer   *net.UDPAddr // the transfer's port, once the server answered
	// from is the source of every packet received, in order.
	from []netip.AddrPort
	// oack is the OACK download got, nil before one.
	oack map[string]string
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	return dialRawFrom(t, addr, net.IPv4(127, 0, 0, 1))
}

// dialRawFrom is dialRaw from a client address of its own (any of
// 127.0.0.0/8 is on the loopback interface).
func dialRawFrom(t *testing.T, addr string, from net.IP) *rawClient {
	t.Helper()
	server, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: from})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawClient{t: t, conn: conn, server: server}
}

// rrq builds a read request; opts are name, value pairs.
func rrq(name, mode string, opts ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, opRRQ)
	for _, s := range append([]string{name, mode}, opts...) {
		b = append(append(b, s...), 0)
	}
	return b
}

func ack(block uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, opACK), block)
}

// request sends p to the server port.
func (c *rawClient) request(p []byte) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDP(p, c.server); err != nil {
		c.t.Fatal(err)
	}
}

// send sends p to the transfer's port.
func (c *rawClient) send(p []byte) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDP(p, c.peer); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next packet, or nil after timeout.
func (c *rawClient) recv(timeout time.Duration) []byte {
	c.t.Helper()
	buf := make([]byte, 70000)
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	n, from, err := c.conn.ReadFromUDP(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if c.peer == nil {
		c.peer = from
	}
	ap := from.AddrPort()
	c.from = append(c.from, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	return buf[:n]
}

// mustRecv is recv that fails the test on timeout.
func (c *rawClient) mustRecv() []byte {
	c.t.Helper()
	p := c.recv(5 * time.Second)
	if p == nil {
		c.t.Fatal("no packet from the server within 5s")
	}
	return p
}

// parseOACK returns an OACK's options.
func parseOACK(t *testing.T, p []byte) map[string]string {
	t.Helper()
	if len(p) < 2 || binary.BigEndian.Uint16(p) != opOACK {
		t.Fatalf("got %s, want OACK", describe(p))
	}
	opts := map[string]string{}
	fields := bytes.Split(bytes.TrimSuffix(p[2:], []byte{0}), []byte{0})
	for i := 0; i+1 < len(fields); i += 2 {
		opts[string(fields[i])] = string(fields[i+1])
	}
	return opts
}

// describe names a packet for failure messages.
func describe(p []byte) string {
	if len(p) < 4 {
		return fmt.Sprintf("%d-byte packet %q", len(p), p)
	}
	switch op := binary.BigEndian.Uint16(p); op {
	case opDATA:
		return fmt.Sprintf("DATA %d (%d bytes)", binary.BigEndian.Uint16(p[2:]), len(p)-4)
	case opERROR:
		code, msg := parseError(p)
		return fmt.Sprintf("ERROR %d %q", code, msg)
	case opOACK:
		return fmt.Sprintf("OACK %q", p[2:])
	default:
		return fmt.Sprintf("opcode %d %q", op, p[2:])
	}
}

// download fetches name with RFC 7440 receiver rules, dropping the DATA
// packets drop says to (each block and attempt), and returns the file and
// how many packets it dropped.
func (c *rawClient) download(name string, blksize, windowsize int, drop func(block uint16, attempt int) bool) ([]byte, int) {
	c.t.Helper()
	var opts []string
	if blksize > 0 {
		opts = append(opts, optBlksize, strconv.Itoa(blksize))
	} else {
		blksize = defaultBlksize
	}
	if windowsize > 0 {
		opts = append(opts, optWindowsize, strconv.Itoa(windowsize))
	} else {
		windowsize = 1
	}
	c.request(rrq(name, "octet", opts...))
	if len(opts) > 0 {
		o := parseOACK(c.t, c.mustRecv())
		c.oack = o
		if o[optBlksize] != "" {
			blksize, _ = strconv.Atoi(o[optBlksize])
		}
		if o[optWindowsize] != "" {
			windowsize, _ = strconv.Atoi(o[optWindowsize])
		}
		c.send(ack(0))
	}
	var got []byte
	var last uint16 // last block received in order
	attempts := map[uint16]int{}
	dropped, inWindow := 0, 0
	for {
		p := c.recv(2 * time.Second)
		if p == nil {
			c.send(ack(last)) // our ACK or their DATA was lost
			inWindow = 0
			continue
		}
		if binary.BigEndian.Uint16(p) == opOACK && last == 0 {
			c.send(ack(0)) // our ACK 0 came after the server resent the OACK
			continue
		}
		if binary.BigEndian.Uint16(p) != opDATA {
			c.t.Fatalf("got %s, want DATA %d", describe(p), last+1)
		}
		block := binary.BigEndian.Uint16(p[2:])
		attempts[block]++
		if drop != nil && drop(block, attempts[block]) {
			dropped++
			continue
		}
		if block != last+1 {
			if block != last { // a gap: ask for the rest from last+1
				c.send(ack(last))
				inWindow = 0
			}
			continue
		}
		last = block
		got = append(got, p[4:]...)
		inWindow++
		final := len(p)-4 < blksize
		if inWindow == windowsize || final {
			c.send(ack(last))
			inWindow = 0
		}
		if final {
			return got, dropped
		}
	}
}
