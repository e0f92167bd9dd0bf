package bootflow

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/internal/state/etcdtest"
	"github.com/tinderbox-boot/tinderbox/internal/talosevents"
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

// lagging is a store whose Peek answers with an older record than the
// store holds (stale, or nothing when hidden), as a replica's cache does
// until its watch delivers another replica's write; Latest answers with
// the record as stored.
type lagging struct {
	state.Backend
	mu     sync.Mutex
	stale  map[machine.MAC]state.Machine
	hidden map[machine.MAC]bool
}

func (l *lagging) Peek(mac machine.MAC) (state.Machine, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if m, ok := l.stale[mac]; ok {
		return m, true, nil
	}
	if l.hidden[mac] {
		return state.Machine{}, false, nil
	}
	return l.Backend.Peek(mac)
}

// TestConfigOnLaggingCache: a config request whose checks fail on the
// record as a lagging cache holds it, but pass on the record as the
// store holds it, is served: the machine was re-armed, or first booted,
// through another replica a moment ago, and fetched its script there.
func TestConfigOnLaggingCache(t *testing.T) {
	tests := []struct {
		name string
		// lag makes the store's Peek of the machine lag the record.
		lag func(l *lagging, m state.Machine)
	}{
		{name: "installed in the cache, re-armed in the store", lag: func(l *lagging, m state.Machine) {
			m.State, m.Generation = machine.Installed, m.Generation-1
			l.stale[m.MAC] = m
		}},
		{name: "no record in the cache", lag: func(l *lagging, m state.Machine) { l.hidden[m.MAC] = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, err := state.Open(t.TempDir(), state.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			l := &lagging{Backend: store, stale: map[machine.MAC]state.Machine{}, hidden: map[machine.MAC]bool{}}
			e := newEnvOn(t, "exit", machine.UnknownMaintenance, nil, true, l)
			e.neigh.set(hostOf(macOnce), macOnce)
			m, err := store.Update(macOnce, func(m *state.Machine, _ bool) error {
				m.State, m.Generation = machine.Installed, 1
				m.Reinstall()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			tt.lag(l, m)
			code, body := e.get(t, "/config/"+macOnce.Dashed()+"?token="+store.Token(m))
			if code != http.StatusOK || !strings.Contains(body, "# "+macOnce.String()) {
				t.Fatalf("config with the store's token, the cache lagging: %d %q, want the config", code, body)
			}
			if got, _, _ := store.Peek(macOnce); got.State != machine.Installing {
				t.Errorf("after the config: %s, want installing", got.State)
			}
			if code, _ := e.get(t, "/config/"+macOnce.Dashed()+"?token=0123456789abcdef0123456789abcdef"); code != http.StatusForbidden {
				t.Errorf("config with a wrong token: %d, want 403", code)
			}
		})
	}
}

// unwritable is a store whose Updates fail, wrapping
// state.ErrUnavailable, while down is set: etcd without its quorum.
type unwritable struct {
	state.Backend
	down atomic.Bool
}

func (u *unwritable) Update(mac machine.MAC, fn func(m *state.Machine, exists bool) error) (state.Machine, error) {
	if u.down.Load() {
		return state.Machine{}, fmt.Errorf("state: update %s: %w", mac, state.ErrUnavailable)
	}
	return u.Backend.Update(mac, fn)
}

// TestTalosReportNotWritten: a Talos report the store cannot write is an
// error, for the sink to refuse it, and is not taken for seen: sent
// again (same id) once the store writes, it moves the machine.
func TestTalosReportNotWritten(t *testing.T) {
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	u := &unwritable{Backend: store}
	e := newEnvOn(t, "exit", machine.UnknownMaintenance, nil, true, u)
	from := netip.AddrPortFrom(hostOf(macOnce), 50000)
	e.neigh.set(from.Addr(), macOnce)
	_, body := e.get(t, scriptPath(macOnce))
	if code, _ := e.get(t, configPath(t, e, body)); code != http.StatusOK {
		t.Fatalf("config: %d", code)
	}
	e.machine(t, macOnce)

	done := talosEvent("01", talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStop})
	u.down.Store(true)
	if err := e.flow.TalosEvent(t.Context(), from, done); !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("report with the store down: %v, want an error wrapping ErrUnavailable", err)
	}
	if m, _, _ := store.Peek(macOnce); m.State != machine.Installing {
		t.Fatalf("after the unwritten report: %s, want still installing", m.State)
	}
	u.down.Store(false)
	if err := e.flow.TalosEvent(t.Context(), from, done); err != nil {
		t.Fatalf("the same report sent again: %v", err)
	}
	if m := e.machine(t, macOnce); m.State != machine.Installed {
		t.Errorf("after the report sent again: %s, want installed", m.State)
	}
}
