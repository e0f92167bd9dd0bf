package httpserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// mountAsset serves a file of size bytes at /asset with http.ServeContent
// over an *os.File (sendfile, as the asset cache serves), and returns its
// size.
func mountAsset(t *testing.T, size int64) func(*Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "asset")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Not sparse: a pattern the client can check byte by byte.
	w := bufio.NewWriter(f)
	for i := range size {
		_ = w.WriteByte(byte(i % 251))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return func(s *Server) {
		s.Router().Get("/asset", func(w http.ResponseWriter, r *http.Request) {
			f, err := os.Open(path)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer f.Close()
			fi, _ := f.Stat()
			http.ServeContent(w, r, "asset", fi.ModTime(), f)
		})
	}
}

// smallBuffer sets the socket buffer opt (SO_RCVBUF, SO_SNDBUF) to 16 KiB.
func smallBuffer(opt int) func(_, _ string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 16<<10)
		}); err != nil {
			return err
		}
		return serr
	}
}

// dialSmallWindow connects with a small receive buffer, so that a client
// that does not read stalls the server's writes after a few hundred KiB
// rather than after the kernel's megabytes.
func dialSmallWindow(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: smallBuffer(syscall.SO_RCVBUF)}
	c, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestWriteTimeoutCutsStalledClient: a client that asks for a large asset
// and never reads is disconnected once the server's writes have made no
// progress for the write timeout, and counted; a client that reads slowly,
// taking in all several times the write timeout, gets the whole asset.
func TestWriteTimeoutCutsStalledClient(t *testing.T) {
	const (
		size    = 4 << 20
		timeout = time.Second
	)
	rg := newRigWith(t, false, timeout, mountAsset(t, size))
	addr := rg.ln.Addr().String()

	stalled := dialSmallWindow(t, addr)
	if _, err := fmt.Fprintf(stalled, "GET /asset HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}

	// The slow reader: 32 KiB every 30 ms, so 2 MiB take 1.9 s or more,
	// and the server, whose socket buffers hold some KiB of it, writes for
	// longer than the write timeout.
	slow := dialSmallWindow(t, addr)
	if _, err := fmt.Fprintf(slow, "GET /asset HTTP/1.1\r\nHost: x\r\nRange: bytes=0-2097151\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32<<10)
	var got int64
	for {
		n, err := io.ReadFull(resp.Body, buf)
		for i := range n {
			if want := byte((got + int64(i)) % 251); buf[i] != want {
				t.Fatalf("slow reader: byte %d is %d, want %d", got+int64(i), buf[i], want)
			}
		}
		got += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatalf("slow reader after %d bytes: %v", got, err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	if resp.StatusCode != http.StatusPartialContent || got != 2<<20 {
		t.Errorf("slow reader: got %d and %d bytes, want 206 and %d", resp.StatusCode, got, 2<<20)
	}

	// The stalled client's connection is cut: counted, then its reads
	// end before the whole asset.
	deadline := time.Now().Add(30 * time.Second)
	for rg.counter(t, "tinderbox_http_write_timeouts_total", "server", "test") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stalled client was not cut within 30 s")
		}
		time.Sleep(30 * time.Millisecond)
	}
	n, err := io.Copy(io.Discard, stalled)
	if err != nil && !isReset(err) {
		t.Errorf("stalled client: read after the cut: %v", err)
	}
	if n >= size {
		t.Errorf("stalled client: read %d bytes, want fewer than the %d of the asset", n, size)
	}
	if got := rg.counter(t, "tinderbox_http_write_timeouts_total", "server", "test"); got != 1 {
		t.Errorf("write timeouts: got %v, want 1 (the slow reader is not cut)", got)
	}
}

func isReset(err error) bool {
	return err != nil && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}
