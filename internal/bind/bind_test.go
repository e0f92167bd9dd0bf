package bind

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
)

func TestError(t *testing.T) {
	tests := []struct {
		name     string
		addr     string
		err      error
		want     string
		wantHint bool
	}{
		{name: "in use", addr: ":8080", err: syscall.EADDRINUSE, want: "boot HTTP: bind tcp port 8080 (:8080): address already in use"},
		{name: "privileged", addr: ":69", err: syscall.EACCES, want: "permission denied", wantHint: true},
		{name: "unprivileged denied", addr: ":8080", err: syscall.EACCES, want: "permission denied"},
		{name: "no such address", addr: "192.0.2.99:8080", err: syscall.EADDRNOTAVAIL, want: "no interface on this host has that address"},
		{name: "other", addr: ":8080", err: errors.New("boom"), want: ": boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Error("boot HTTP", "tcp", tt.addr, &net.OpError{Op: "listen", Err: tt.err})
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to contain %q", err, tt.want)
			}
			if got := strings.Contains(err.Error(), "CAP_NET_BIND_SERVICE"); got != tt.wantHint {
				t.Errorf("hint in %q: got %v, want %v", err, got, tt.wantHint)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("errors.Is(%v, %v) = false: the cause must stay reachable", err, tt.err)
			}
		})
	}
}

func TestTCPAndUDPNameTheBusyPort(t *testing.T) {
	ln, err := TCP(t.Context(), "admin", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := TCP(t.Context(), "admin", ln.Addr().String()); err == nil || !strings.Contains(err.Error(), "admin: bind tcp port") {
		t.Errorf("second TCP bind: got %v, want an error naming the server and port", err)
	}
	pc, err := UDP(t.Context(), "TFTP", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := UDP(t.Context(), "TFTP", pc.LocalAddr().String()); err == nil || !strings.Contains(err.Error(), "TFTP: bind udp port") {
		t.Errorf("second UDP bind: got %v, want an error naming the server and port", err)
	}
}
