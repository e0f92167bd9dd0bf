package tftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"pack.ag/tftp"

	"github.com/tinderbox-boot/tinderbox/internal/ipxe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDownload fetches every file with the library's client, with each
// option alone and together, and compares bytes. Every transfer must
// complete, none time out, and the server must resend little: on
// loopback nothing is lost, so a resend only follows a client the
// scheduler kept from ACKing within the timeout, which on a loaded machine
// happens now and then (a fixed count, zero included, would be a timing
// assertion). A server that resent without cause (answering duplicate
// ACKs in lockstep, RFC 1123 §4.2.3.1, or resending a window per ACK)
// would resend about as many blocks as it sends; the bound allows a
// quarter of the blocks, plus Retries windows per file.
func TestDownload(t *testing.T) {
	const retries = 3
	f := start(t, func(o *Options) { o.Retries = retries })
	tests := []struct {
		name                string
		blksize, windowsize int // what the options negotiate
		opts                []tftp.ClientOpt
	}{
		{"tsize", 512, 1, []tftp.ClientOpt{tftp.ClientTransferSize(true)}},
		{"blksize 1468", 1468, 1, []tftp.ClientOpt{tftp.ClientTransferSize(false), tftp.ClientBlocksize(1468)}},
		{"blksize 8", 8, 16, []tftp.ClientOpt{tftp.ClientTransferSize(false), tftp.ClientBlocksize(8), tftp.ClientWindowsize(16)}},
		{"blksize 65464", 65464, 1, []tftp.ClientOpt{tftp.ClientBlocksize(65464)}},
		{"timeout 2", 512, 1, []tftp.ClientOpt{tftp.ClientTransferSize(false), tftp.ClientTimeout(2)}},
		{"windowsize 8", 512, 8, []tftp.ClientOpt{tftp.ClientTransferSize(false), tftp.ClientWindowsize(8)}},
		{"windowsize 64", 512, 64, []tftp.ClientOpt{tftp.ClientTransferSize(false), tftp.ClientWindowsize(64)}},
		{"all, as EDK2 asks", 1468, 4, []tftp.ClientOpt{tftp.ClientBlocksize(1468), tftp.ClientWindowsize(4), tftp.ClientTimeout(3)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := testutil.ToFloat64(f.m.retransmits)
			blocks := 0
			for name, want := range testFiles {
				got, err := f.get(name, tt.opts...)
				if err != nil {
					t.Fatalf("get %s: %v", name, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("get %s: got %d bytes, want %d identical bytes", name, len(got), len(want))
				}
				blocks += len(want)/tt.blksize + 1
			}
			limit := blocks/4 + len(testFiles)*retries*tt.windowsize
			if r := int(testutil.ToFloat64(f.m.retransmits) - before); r > limit {
				t.Errorf("retransmitted packets on loopback: got %d for %d blocks, want at most %d", r, blocks, limit)
			}
		})
	}
	f.waitCount(t, ResultOK, len(tests)*len(testFiles))
	for _, r := range []Result{ResultTimeout, ResultAborted, ResultError} {
		if n := f.count(r); n != 0 {
			t.Errorf("transfers_total{result=%q}: got %d, want 0", r, n)
		}
	}
}

// TestDownloadNoOptions fetches with a plain RFC 1350 request: no OACK, DATA
// straight away. (The library's client cannot: it panics parsing options
// out of the first DATA packet.)
func TestDownloadNoOptions(t *testing.T) {
	f := start(t, nil)
	for name, want := range testFiles {
		t.Run(name, func(t *testing.T) {
			got, _ := dialRaw(t, f.addr).download(name, 0, 0, nil)
			if !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d identical bytes", len(got), len(want))
			}
		})
	}
}

// TestNegotiation checks the OACK: values echoed, lowered or left out.
func TestNegotiation(t *testing.T) {
	f := start(t, nil)
	size := strconv.Itoa(len(testFiles[ipxe.BIOS]))
	tests := []struct {
		name string
		opts []string
		want map[string]string // nil: no OACK, DATA 1 straight away
	}{
		{"EDK2 probe options", []string{"tsize", "0", "blksize", "1468", "windowsize", "4"}, map[string]string{"tsize": size, "blksize": "1468", "windowsize": "4"}},
		{"upper case names", []string{"BLKSIZE", "1432", "TSize", "0"}, map[string]string{"blksize": "1432", "tsize": size}},
		{"blksize above the maximum is lowered", []string{"blksize", "70000"}, map[string]string{"blksize": "65464"}},
		{"windowsize above the maximum is lowered", []string{"windowsize", "65535"}, map[string]string{"windowsize": strconv.Itoa(MaxWindowsize)}},
		{"timeout", []string{"timeout", "5"}, map[string]string{"timeout": "5"}},
		{"first duplicate wins", []string{"blksize", "1024", "blksize", "2048"}, map[string]string{"blksize": "1024"}},
		{"unknown option ignored", []string{"multicast", "", "blksize", "600"}, map[string]string{"blksize": "600"}},
		{"windowsize 0 ignored", []string{"windowsize", "0"}, nil},
		{"blksize 0 ignored", []string{"blksize", "0"}, nil},
		{"blksize 7 ignored", []string{"blksize", "7"}, nil},
		{"timeout 0 ignored", []string{"timeout", "0"}, nil},
		{"timeout 256 ignored", []string{"timeout", "256"}, nil},
		{"non-numeric ignored", []string{"blksize", "big", "tsize", "-1"}, nil},
		{"option without value ignored", []string{"blksize"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, f.addr)
			c.request(rrq(ipxe.BIOS, "octet", tt.opts...))
			p := c.mustRecv()
			if tt.want == nil {
				if binary.BigEndian.Uint16(p) != opDATA || binary.BigEndian.Uint16(p[2:]) != 1 || len(p) != 4+defaultBlksize {
					t.Fatalf("got %s, want DATA 1 with 512 bytes", describe(p))
				}
				c.send(appendError(nil, errNotDefined, "enough"))
				return
			}
			got := parseOACK(t, p)
			if len(got) != len(tt.want) {
				t.Fatalf("OACK: got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("OACK %s: got %q, want %q (OACK %v)", k, got[k], v, got)
				}
			}
			c.send(appendError(nil, errNotDefined, "done"))
		})
	}
}

// TestRefused sends requests that must be answered with an error packet
// at once, never with a file or silence.
func TestRefused(t *testing.T) {
	f := start(t, nil)
	tests := []struct {
		name     string
		pkt      []byte
		wantCode uint16
		result   Result
	}{
		{"traversal", rrq("../secret", "octet"), errAccessViolation, ResultRefused},
		{"traversal inside", rrq("sub/../../secret", "octet"), errAccessViolation, ResultRefused},
		{"absolute", rrq("/etc/passwd", "octet"), errAccessViolation, ResultRefused},
		{"symlink out", rrq("escape", "octet"), errAccessViolation, ResultRefused},
		{"backslashes", rrq(`..\secret`, "octet"), errAccessViolation, ResultRefused},
		{"control character", rrq("undionly\r.kpxe", "octet"), errAccessViolation, ResultRefused},
		{"over-long name", rrq(strings.Repeat("a", 300), "octet"), errAccessViolation, ResultRefused},
		{"directory", rrq("sub", "octet"), errAccessViolation, ResultRefused},
		{"dot", rrq(".", "octet"), errAccessViolation, ResultRefused},
		{"empty name", rrq("", "octet"), errAccessViolation, ResultRefused},
		{"netascii", rrq(ipxe.BIOS, "netascii"), errIllegalOperation, ResultRefused},
		{"mail", rrq(ipxe.BIOS, "mail"), errIllegalOperation, ResultRefused},
		{"write", append([]byte{0, opWRQ}, "upload\x00octet\x00"...), errAccessViolation, ResultRefused},
		{"missing file", rrq("nothing.efi", "octet"), errFileNotFound, ResultNotFound},
		{"no mode", append([]byte{0, opRRQ}, "undionly.kpxe\x00"...), errIllegalOperation, ResultBadRequest},
		{"no terminator", append([]byte{0, opRRQ}, "undionly.kpxe"...), errIllegalOperation, ResultBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.count(tt.result)
			c := dialRaw(t, f.addr)
			c.request(tt.pkt)
			p := c.mustRecv()
			if binary.BigEndian.Uint16(p) != opERROR {
				t.Fatalf("got %s, want ERROR %d", describe(p), tt.wantCode)
			}
			if code, msg := parseError(p); code != tt.wantCode || msg == "" {
				t.Fatalf("got ERROR %d %q, want code %d with a message", code, msg, tt.wantCode)
			}
			f.waitCount(t, tt.result, before+1)
		})
	}
	// Still serving.
	if got, err := f.get(ipxe.BIOS); err != nil || !bytes.Equal(got, testFiles[ipxe.BIOS]) {
		t.Fatalf("download after refusals: %d bytes, %v", len(got), err)
	}
}

// TestStrayPackets: packets that are not requests get no answer and do
// not disturb the server.
func TestStrayPackets(t *testing.T) {
	f := start(t, nil)
	c := dialRaw(t, f.addr)
	for _, p := range [][]byte{{}, {0}, ack(1), {0, opDATA, 0, 1, 'x'}, {0, opERROR, 0, 0, 0}, {0, 99, 1, 2}, {0, opOACK, 0}} {
		c.request(p)
	}
	if p := c.recv(300 * time.Millisecond); p != nil {
		t.Fatalf("got %s, want no answer to stray packets", describe(p))
	}
	f.waitCount(t, ResultBadRequest, 7)
	if got, err := f.get("one"); err != nil || !bytes.Equal(got, testFiles["one"]) {
		t.Fatalf("download after stray packets: %q, %v", got, err)
	}
}

// TestEDK2Probe plays EDK2's size probe: tsize, then error 8 after the
// OACK, then the real download. It is one probe and one transfer.
func TestEDK2Probe(t *testing.T) {
	f := start(t, nil)
	c := dialRaw(t, f.addr)
	c.request(rrq(ipxe.BIOS, "octet", "tsize", "0", "blksize", "1468", "windowsize", "4"))
	oack := parseOACK(t, c.mustRecv())
	if got, want := oack["tsize"], strconv.Itoa(len(testFiles[ipxe.BIOS])); got != want {
		t.Fatalf("tsize: got %q, want %q", got, want)
	}
	c.send(appendError(nil, errOptionRefused, "User aborted the transfer"))
	f.waitCount(t, ResultProbe, 1)

	got, _ := dialRaw(t, f.addr).download(ipxe.BIOS, 1468, 4, nil)
	if !bytes.Equal(got, testFiles[ipxe.BIOS]) {
		t.Fatalf("download after probe: got %d bytes, want %d identical", len(got), len(testFiles[ipxe.BIOS]))
	}
	f.waitCount(t, ResultOK, 1)
	for _, r := range []Result{ResultAborted, ResultError, ResultTimeout} {
		if n := f.count(r); n != 0 {
			t.Errorf("transfers_total{result=%q}: got %d, want 0", r, n)
		}
	}
	ts := f.rec.transfers()
	if len(ts) != 1 {
		t.Fatalf("recorded transfers: got %d, want 1 (the probe is not one)", len(ts))
	}
	want := Transfer{Remote: ts[0].Remote, File: ipxe.BIOS, Bytes: int64(len(testFiles[ipxe.BIOS])), Duration: ts[0].Duration, Blksize: 1468, Windowsize: 4}
	if ts[0] != want || !ts[0].Remote.Addr().Is4() || ts[0].Duration <= 0 {
		t.Errorf("recorded: got %+v, want %+v from an IPv4 address", ts[0], want)
	}
	if n := strings.Count(f.logged(t), `level=INFO msg="tftp: file sent"`); n != 1 {
		t.Errorf("Info lines for completed transfers: got %d, want 1", n)
	}
}

// TestLoss drops DATA packets on the client side: the server must resend
// after a timeout (lockstep) or from the gap the client ACKs (window).
// The timeout is short so that the losses cost little time; the retries
// are many so that a client the scheduler stalls is not given up on (two
// seconds of silence).
func TestLoss(t *testing.T) {
	f := start(t, func(o *Options) { o.Timeout = 50 * time.Millisecond; o.Retries = 40 })
	tests := []struct {
		name       string
		blksize    int
		windowsize int
		drop       func(block uint16, attempt int) bool
	}{
		{"lockstep, every 7th block lost once", 512, 0, func(b uint16, a int) bool { return b%7 == 0 && a == 1 }},
		{"window 8, first of a window lost once", 1468, 8, func(b uint16, a int) bool { return b%8 == 1 && a == 1 }},
		{"window 8, middle of a window lost once", 1468, 8, func(b uint16, a int) bool { return b%8 == 4 && a == 1 }},
		{"window 8, last block lost twice", 1468, 8, func(b uint16, a int) bool { return b == 51 && a <= 2 }},
		{"window 4, every 3rd lost once", 1024, 4, func(b uint16, a int) bool { return b%3 == 0 && a == 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := testutil.ToFloat64(f.m.retransmits)
			got, dropped := dialRaw(t, f.addr).download(ipxe.BIOS, tt.blksize, tt.windowsize, tt.drop)
			if !bytes.Equal(got, testFiles[ipxe.BIOS]) {
				t.Fatalf("got %d bytes, want %d identical", len(got), len(testFiles[ipxe.BIOS]))
			}
			if dropped == 0 {
				t.Fatal("the test dropped nothing")
			}
			if r := testutil.ToFloat64(f.m.retransmits) - before; r < float64(dropped) {
				t.Errorf("retransmitted packets: got %v, want at least the %d dropped", r, dropped)
			}
		})
	}
}

// TestStalledClient: a client that stops ACKing is timed out and counted,
// and others are served meanwhile. The others are given up on only after
// Retries timeouts in a row (over two seconds), which a loaded machine's
// scheduler does not cause.
func TestStalledClient(t *testing.T) {
	const retries = 10
	f := start(t, func(o *Options) { o.Timeout = 200 * time.Millisecond; o.Retries = retries })
	stalled := dialRaw(t, f.addr)
	stalled.request(rrq("big.bin", "octet", "windowsize", "4"))
	parseOACK(t, stalled.mustRecv())
	stalled.send(ack(0))
	for range 4 {
		stalled.mustRecv() // the first window; never ACKed
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if got, err := f.get("big.bin", tftp.ClientWindowsize(8)); err != nil || !bytes.Equal(got, testFiles["big.bin"]) {
				t.Errorf("download beside a stalled client: %d bytes, %v", len(got), err)
			}
		})
	}
	wg.Wait()
	f.waitCount(t, ResultTimeout, 1)
	// The server resent the window Retries times, then said why it stopped.
	var resent int
	p := stalled.mustRecv()
	for ; binary.BigEndian.Uint16(p) == opDATA; p = stalled.mustRecv() {
		resent++
	}
	if resent != retries*4 {
		t.Errorf("DATA resent to the stalled client: got %d, want %d", resent, retries*4)
	}
	if code, _ := parseError(p); binary.BigEndian.Uint16(p) != opERROR || code != errNotDefined {
		t.Errorf("last packet to the stalled client: got %s, want ERROR 0", describe(p))
	}
	if p := stalled.recv(300 * time.Millisecond); p != nil {
		t.Errorf("after the error: got %s, want nothing more", describe(p))
	}
	if got := f.count(ResultOK); got != 4 {
		t.Errorf("transfers_total{result=ok}: got %d, want 4", got)
	}
}

// TestStalledAfterOACK: a client that never ACKs the OACK is timed out too.
func TestStalledAfterOACK(t *testing.T) {
	f := start(t, func(o *Options) { o.Timeout = 50 * time.Millisecond; o.Retries = 2 })
	c := dialRaw(t, f.addr)
	c.request(rrq("one", "octet", "blksize", "1468"))
	for range 3 {
		parseOACK(t, c.mustRecv())
	}
	f.waitCount(t, ResultTimeout, 1)
}

// TestClientGone: a client that closes its port mid-transfer (ICMP port
// unreachable) ends the transfer as aborted.
func TestClientGone(t *testing.T) {
	f := start(t, nil)
	c := dialRaw(t, f.addr)
	c.request(rrq("big.bin", "octet"))
	c.mustRecv()
	c.send(ack(1))
	_ = c.conn.Close()
	f.waitCount(t, ResultAborted, 1)
}

// TestConcurrent runs many transfers at once.
func TestConcurrent(t *testing.T) {
	f := start(t, func(o *Options) { o.Timeout = time.Second; o.Retries = 10; o.MaxPerClient = 64 }) // every client is 127.0.0.1
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			opts := []tftp.ClientOpt{tftp.ClientBlocksize(512 + 64*i), tftp.ClientWindowsize(1 + i%8)}
			got, err := f.get(ipxe.BIOS, opts...)
			if err != nil || !bytes.Equal(got, testFiles[ipxe.BIOS]) {
				t.Errorf("client %d: %d bytes, %v", i, len(got), err)
			}
		})
	}
	wg.Wait()
	f.waitCount(t, ResultOK, n)
}

// TestBusy: beyond MaxTransfers a request gets an error at once. The
// holder's transfer has a long timeout so that it holds the slot until it
// says bye, however slowly the test runs.
func TestBusy(t *testing.T) {
	f := start(t, func(o *Options) { o.MaxTransfers = 1; o.Timeout = time.Minute })
	holder := dialRaw(t, f.addr)
	holder.request(rrq("big.bin", "octet"))
	holder.mustRecv()
	c := dialRaw(t, f.addr)
	c.request(rrq("one", "octet"))
	p := c.mustRecv()
	if code, _ := parseError(p); binary.BigEndian.Uint16(p) != opERROR || code != errNotDefined {
		t.Fatalf("got %s, want ERROR 0 (busy)", describe(p))
	}
	f.waitCount(t, ResultBusy, 1)
	holder.send(appendError(nil, errNotDefined, "bye"))
	f.waitCount(t, ResultAborted, 1)
	if got, err := f.get("one"); err != nil || !bytes.Equal(got, testFiles["one"]) {
		t.Fatalf("download once the slot is free: %q, %v", got, err)
	}
}

// TestShutdown: cancelling Serve stops transfers in flight, tells their
// clients, and returns nil, without waiting for the transfer's timeout
// (an hour here: stop gives Serve ten seconds).
func TestShutdown(t *testing.T) {
	f := start(t, func(o *Options) { o.Timeout = time.Hour })
	c := dialRaw(t, f.addr)
	c.request(rrq("big.bin", "octet"))
	c.mustRecv() // DATA 1; not ACKed
	if err := f.stop(); err != nil {
		t.Fatalf("Serve: got %v, want nil", err)
	}
	p := c.mustRecv()
	if binary.BigEndian.Uint16(p) != opERROR {
		t.Errorf("client told: got %s, want ERROR", describe(p))
	}
	if got := f.count(ResultAborted); got != 1 {
		t.Errorf("transfers_total{result=aborted}: got %d, want 1", got)
	}
}

// TestMetrics checks the exposed names and labels.
func TestMetrics(t *testing.T) {
	f := start(t, nil)
	if _, err := f.get("one"); err != nil {
		t.Fatal(err)
	}
	f.waitCount(t, ResultOK, 1)
	want := map[string]bool{
		"tinderbox_tftp_transfers_total": true, "tinderbox_tftp_sent_bytes_total": true,
		"tinderbox_tftp_retransmitted_packets_total": true, "tinderbox_tftp_transfers_in_flight": true,
		"tinderbox_tftp_transfer_duration_seconds": true, "tinderbox_panics_total": true,
	}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !want[mf.GetName()] {
			t.Errorf("unexpected metric %s", mf.GetName())
		}
		delete(want, mf.GetName())
	}
	for name := range want {
		t.Errorf("metric %s missing", name)
	}
	if got := testutil.ToFloat64(f.m.sent); got != 1 {
		t.Errorf("sent_bytes_total: got %v, want 1", got)
	}
	if n := testutil.CollectAndCount(f.m.transfers); n != len(allResults) {
		t.Errorf("transfers_total series: got %d, want one per result (%d)", n, len(allResults))
	}
}

// TestCurl downloads with curl, a real TFTP client, where installed.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	f := start(t, nil)
	tests := []struct {
		name string
		args []string
	}{
		{"default", nil},
		{"no options", []string{"--tftp-no-options"}},
		{"blksize 1468", []string{"--tftp-blksize", "1468"}},
		{"blksize 8", []string{"--tftp-blksize", "8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, name := range []string{ipxe.BIOS, "exact.bin", "sub/nested.bf"} {
				out := filepath.Join(t.TempDir(), "out")
				args := append([]string{"-sS", "--max-time", "20", "-o", out}, tt.args...)
				cmd := exec.CommandContext(t.Context(), curl, append(args, "tftp://"+f.addr+"/"+name)...)
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("curl %s: %v: %s", name, err, b)
				}
				assertFile(t, out, testFiles[name])
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		cmd := exec.CommandContext(t.Context(), curl, "-sS", "--max-time", "20", "-o", os.DevNull, "tftp://"+f.addr+"/nothing.efi")
		b, err := cmd.CombinedOutput()
		// 68 is CURLE_TFTP_NOTFOUND: curl got error 1, not a timeout.
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 68 {
			t.Fatalf("curl for a missing file: got %v %q, want exit status 68 (TFTP file not found)", err, b)
		}
	})
}

// TestTFTPHPA downloads with tftp-hpa's client, where installed.
func TestTFTPHPA(t *testing.T) {
	bin, err := exec.LookPath("tftp")
	if err != nil {
		t.Skip("tftp (tftp-hpa) not installed")
	}
	f := start(t, nil)
	host, port, _ := net.SplitHostPort(f.addr)
	for _, name := range []string{ipxe.BIOS, "exact.bin", "empty"} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-m", "binary", host, port, "-c", "get", name, out)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("tftp get %s: %v: %s", name, err, b)
			}
			assertFile(t, out, testFiles[name])
		})
	}
}

func assertFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes, want %d identical bytes", path, len(got), len(want))
	}
}

// TestRollover sends more than 65535 blocks: block numbers wrap to 0.
func TestRollover(t *testing.T) {
	f := start(t, nil)
	got, err := f.get("big.bin", tftp.ClientBlocksize(8), tftp.ClientWindowsize(MaxWindowsize))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, testFiles["big.bin"]) {
		t.Fatalf("got %d bytes, want %d identical (131073 blocks)", len(got), len(testFiles["big.bin"]))
	}
}

// TestServeSocketError: Serve returns the socket's error, not nil, when
// the socket fails for a reason other than shutdown.
func TestServeSocketError(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_ = pc.Close()
	err = New(Options{Files: ipxe.NewRoot(t.TempDir()), Metrics: NewMetrics(prometheus.NewRegistry()), Logger: slog.New(slog.DiscardHandler)}).Serve(t.Context(), pc)
	if err == nil || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve on a closed socket: got %v, want net.ErrClosed", err)
	}
}

// TestPerClientLimit: one address that asks for files and never
// acknowledges can hold MaxPerClient transfers, no more; another address
// is served meanwhile, its file intact.
func TestPerClientLimit(t *testing.T) {
	f := start(t, func(o *Options) { o.MaxPerClient = 3; o.Timeout = time.Minute; o.FirstAckWait = time.Minute })
	for range 3 {
		c := dialRaw(t, f.addr)
		c.request(rrq("big.bin", "octet", "timeout", "255"))
		if p := c.mustRecv(); binary.BigEndian.Uint16(p) == opERROR {
			t.Fatalf("a request within the limit: got %s", describe(p))
		}
	}
	c := dialRaw(t, f.addr)
	c.request(rrq("one", "octet"))
	p := c.mustRecv()
	if code, msg := parseError(p); binary.BigEndian.Uint16(p) != opERROR || code != errNotDefined || !strings.Contains(msg, "your address") {
		t.Fatalf("a fourth request from the same address: got %s, want ERROR 0 naming the address", describe(p))
	}
	f.waitCount(t, ResultClientBusy, 1)
	other := dialRawFrom(t, f.addr, net.IPv4(127, 0, 0, 2))
	got, _ := other.download("one", 512, 1, nil)
	if !bytes.Equal(got, testFiles["one"]) {
		t.Fatalf("another address: got %d bytes, want the file intact", len(got))
	}
}

// TestTimeoutCapped: a timeout above MaxTimeout is declined (left out of
// the OACK) and the server's own used; one within it is granted.
func TestTimeoutCapped(t *testing.T) {
	f := start(t, func(o *Options) { o.MaxTimeout = 10 * time.Second })
	for _, tc := range []struct {
		ask     string
		granted bool
	}{{"255", false}, {"11", false}, {"10", true}, {"3", true}} {
		c := dialRaw(t, f.addr)
		c.request(rrq("one", "octet", "timeout", tc.ask, "tsize", "0"))
		opts := parseOACK(t, c.mustRecv())
		if _, ok := opts["timeout"]; ok != tc.granted || opts["tsize"] == "" {
			t.Errorf("timeout %s: OACK %v, want timeout granted %v and tsize", tc.ask, opts, tc.granted)
		}
		c.send(appendError(nil, errNotDefined, "done"))
	}
}

// TestFirstAckWait: a client that never acknowledges frees its transfer
// slot after FirstAckWait, long before its retries would run out (a
// minute each here), and the transfer counts as a timeout.
func TestFirstAckWait(t *testing.T) {
	f := start(t, func(o *Options) {
		o.MaxTransfers, o.Timeout, o.FirstAckWait = 1, time.Minute, 200*time.Millisecond
	})
	for i, opts := range [][]string{{"blksize", "1024"}, nil} { // an OACK, then plain DATA 1
		c := dialRaw(t, f.addr)
		c.request(rrq("big.bin", "octet", opts...))
		c.mustRecv()
		f.waitCount(t, ResultTimeout, i+1)
	}
	if got, err := f.get("one"); err != nil || !bytes.Equal(got, testFiles["one"]) {
		t.Fatalf("the slot after the silent clients: %q, %v", got, err)
	}
}
