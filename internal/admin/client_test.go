package admin

import (
	"strings"
	"testing"

	"github.com/tinderbox-boot/tinderbox/pkg/client"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// TestClient: pkg/client against this server: every call, and errors
// carrying the server's message.
func TestClient(t *testing.T) {
	srv, store := newServer(t, "tok")
	c := client.New(srv.URL+"/", "tok")

	list, err := c.Machines(t.Context())
	if err != nil || len(list) != 3 || list[0].MAC.String() != macBooted {
		t.Fatalf("Machines: got %+v, %v", list, err)
	}
	m, err := c.Machine(t.Context(), "52-54-00-00-00-01")
	if err != nil || m.Hostname != "cp-01" || len(m.Events) != 1 {
		t.Fatalf("Machine: got %+v, %v", m, err)
	}
	m, err = c.Reinstall(t.Context(), macBooted)
	if err != nil || m.State != machine.Pending {
		t.Fatalf("Reinstall: got %+v, %v", m, err)
	}
	s, err := c.Script(t.Context(), macBooted, "x86_64")
	if err != nil || !strings.HasPrefix(s, "#!ipxe\n") {
		t.Fatalf("Script: got %q, %v", s, err)
	}
	if err := c.Forget(t.Context(), macFound); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if _, ok, _ := store.Get(mustMAC(macFound)); ok {
		t.Error("Forget left the record")
	}

	// Errors carry the server's message.
	if _, err := c.Machine(t.Context(), "52:54:00:00:00:99"); err == nil || !strings.Contains(err.Error(), "no machine 52:54:00:00:00:99") || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("unknown machine: got %v", err)
	}
	if _, err := client.New(srv.URL, "bad").Machines(t.Context()); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("bad token: got %v", err)
	}
	srv.Close()
	if _, err := c.Machines(t.Context()); err == nil || !strings.Contains(err.Error(), "is tinderbox serving at") {
		t.Errorf("no server: got %v", err)
	}
}
