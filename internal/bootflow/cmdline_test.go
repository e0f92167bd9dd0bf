package bootflow

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// countingCmdlines counts its calls and fails while err is set.
type countingCmdlines struct {
	mu    sync.Mutex
	calls int
	err   error
}

func (c *countingCmdlines) Cmdline(context.Context, string, string, machine.Arch) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return cmdline, c.err
}

// TestCmdlineAskedOnce: scripts of one schematic, version and arch ask
// for its kernel command line once; a failure is not kept.
func TestCmdlineAskedOnce(t *testing.T) {
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	cl := &countingCmdlines{err: errors.New("factory down")}
	profs := &fakeProfiles{policy: machine.UnknownMaintenance, machines: map[machine.MAC]profiles.Profile{
		macOnce:   {Install: machine.InstallAlways, Talos: profiles.Talos{Version: "v1.12.7", SchematicID: schematic}},
		macAlways: {Install: machine.InstallAlways, Talos: profiles.Talos{Version: "v1.12.7", SchematicID: schematic}},
	}}
	f := New(Options{BaseURL: "http://192.0.2.1:8080", Store: store, Profiles: profs, Cmdlines: cl})
	if _, err := f.Script(t.Context(), macOnce, "", "x86_64", "", false); err == nil {
		t.Fatal("script with the factory down: no error")
	}
	cl.mu.Lock()
	cl.err = nil
	cl.mu.Unlock()
	for _, mac := range []machine.MAC{macOnce, macAlways, macOnce} {
		if _, err := f.Script(t.Context(), mac, "", "x86_64", "", false); err != nil {
			t.Fatal(err)
		}
	}
	if cl.calls != 2 {
		t.Errorf("Cmdline called %d times, want 2 (the failure, then once)", cl.calls)
	}
}
