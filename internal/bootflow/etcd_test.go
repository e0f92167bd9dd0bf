package bootflow

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/internal/state/etcdtest"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// TestConfigRefusedWithoutQuorum runs the boot flow on the etcd state
// store and takes etcd's quorum away: a pending machine's script is
// still answered from the cache, but its config, whose pending →
// installing must be committed first, is refused rather than served;
// once the quorum is back the same store serves it and records the move.
func TestConfigRefusedWithoutQuorum(t *testing.T) {
	cluster := etcdtest.New(t, 3)
	store, err := state.OpenEtcd(state.Options{}, state.EtcdOptions{
		Endpoints: cluster.Endpoints(), RequestTimeout: 2 * time.Second, ProbeInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := newEnvOn(t, "exit", machine.UnknownMaintenance, nil, true, store)

	code, s := e.script(t, macOnce.Dashed(), "x86_64")
	if code != http.StatusOK {
		t.Fatalf("first script: %d\n%s", code, s)
	}
	cfg := configPath(t, e, s)
	if st := e.machine(t, macOnce).State; st != machine.Pending {
		t.Fatalf("after the first script: %s, want pending", st)
	}

	cluster.Stop(1)
	cluster.Stop(2)
	if code, s := e.script(t, macOnce.Dashed(), "x86_64"); code != http.StatusOK || !strings.Contains(s, "talos.config=") {
		t.Errorf("script without quorum: %d\n%s\nwant the install script, from the cache", code, s)
	}
	code, body := e.get(t, cfg)
	if code != http.StatusInternalServerError || strings.Contains(body, "# "+macOnce.String()) {
		t.Fatalf("config without quorum: %d %q, want 500 and no config", code, body)
	}
	if m, _, _ := store.Peek(macOnce); m.State != machine.Pending {
		t.Errorf("without quorum: %s, want still pending", m.State)
	}

	cluster.Start(1, 2)
	deadline := time.Now().Add(20 * time.Second)
	for store.Health() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("store still unhealthy 20s after the quorum is back: %v", store.Health())
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, body = e.get(t, cfg)
	if code != http.StatusOK || !strings.Contains(body, "# "+macOnce.String()) {
		t.Fatalf("config once the quorum is back: %d %q, want the config", code, body)
	}
	if m, _, _ := store.Peek(macOnce); m.State != machine.Installing {
		t.Errorf("after the config: %s, want installing", m.State)
	}
}
