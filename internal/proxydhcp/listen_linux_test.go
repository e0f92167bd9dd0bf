package proxydhcp

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestListenReceiveBuffer: the socket's receive buffer is raised to
// receiveBuffer when the process may pass net.core.rmem_max (root), and
// never left below the kernel's default.
func TestListenReceiveBuffer(t *testing.T) {
	conn, err := Listen(t.Context(), "proxyDHCP", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := rc.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }); err != nil || gerr != nil {
		t.Fatalf("SO_RCVBUF: %v %v", err, gerr)
	}
	// The kernel reports twice what was set (it counts its bookkeeping).
	want := 2 * receiveBuffer
	if os.Geteuid() != 0 {
		def, err := os.ReadFile("/proc/sys/net/core/rmem_default")
		if err != nil {
			t.Skipf("not root, and no rmem_default to compare with: %v", err)
		}
		want = 0
		for _, c := range def {
			if c >= '0' && c <= '9' {
				want = want*10 + int(c-'0')
			}
		}
	}
	if got < want {
		t.Errorf("got a receive buffer of %d bytes, want at least %d", got, want)
	}
}
