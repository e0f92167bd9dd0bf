package state

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/state/etcdtest"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// TestEtcdReplicas runs two etcd stores on one prefix, as two tinderbox
// replicas do.
func TestEtcdReplicas(t *testing.T) {
	cluster := etcdtest.New(t, 3)
	seenB := &changes{}
	a := openEtcd(t, cluster, "/replicas/", Options{})
	b := openEtcd(t, cluster, "/replicas/", Options{OnChange: seenB.add})

	t.Run("one token secret", func(t *testing.T) {
		m := Machine{MAC: machine.MustParseMAC("52:54:00:22:01:01"), Generation: 7}
		if a.Token(m) != b.Token(m) || a.MaskTag("v") != b.MaskTag("v") {
			t.Error("two replicas on one prefix issue different tokens")
		}
	})

	t.Run("a change through A reaches B", func(t *testing.T) {
		mac := machine.MustParseMAC("52:54:00:22:01:02")
		if _, err := a.Update(mac, func(m *Machine, _ bool) error {
			m.State = machine.Pending
			m.Events = append(m.Events, a.Event(machine.EventScript, "install", 0))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "B's cache holds A's record and B's OnChange was told", func() bool {
			m, ok, err := b.Get(mac)
			return err == nil && ok && m.State == machine.Pending && len(m.Events) == 1 && seenB.has(mac, machine.Pending)
		})
		if ok, err := a.Forget(mac); err != nil || !ok {
			t.Fatalf("Forget: %v %v", ok, err)
		}
		eventually(t, "B forgets what A forgot and tells OnChange", func() bool {
			_, ok, _ := b.Peek(mac)
			return !ok && seenB.has(mac, "")
		})
	})

	t.Run("a batch with a record changed meanwhile", func(t *testing.T) {
		var macs []machine.MAC
		for i := range 10 {
			mac := machine.MustParseMAC(fmt.Sprintf("52:54:00:22:01:%02x", 0x10+i))
			macs = append(macs, mac)
			if _, err := a.Update(mac, func(m *Machine, _ bool) error { m.State = machine.Pending; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "B holds A's ten records", func() bool {
			n := 0
			for _, mac := range macs {
				if _, ok, _ := b.Peek(mac); ok {
					n++
				}
			}
			return n == len(macs)
		})
		// B's cache as it would be had its watch not yet delivered A's
		// next change.
		b.mu.RLock()
		stale := b.recs[macs[3]]
		b.mu.RUnlock()
		if _, err := a.Update(macs[3], func(m *Machine, _ bool) error {
			m.Events = append(m.Events, a.Event(machine.EventScript, "from A", 0))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "B sees A's change", func() bool { m, _, _ := b.Get(macs[3]); return len(m.Events) == 1 })
		b.mu.Lock()
		b.recs[macs[3]] = stale
		b.mu.Unlock()

		var changes []Change
		for _, mac := range macs {
			changes = append(changes, Change{MAC: mac, Fn: func(m *Machine, _ bool) error {
				m.Events = append(m.Events, b.Event(machine.EventTFTP, "from B", 0))
				return nil
			}})
		}
		for i, r := range b.Apply(changes...) {
			if r.Err != nil {
				t.Fatalf("change %d: %v", i, r.Err)
			}
		}
		// B reads its own writes at once; A once its watch delivers them.
		m, _, _ := b.Get(macs[3])
		if len(m.Events) != 2 || m.Events[0].Detail != "from A" || m.Events[1].Detail != "from B" {
			t.Errorf("events of the record changed meanwhile: %+v, want A's then B's", m.Events)
		}
		eventually(t, "A sees both events", func() bool { m, _, _ := a.Get(macs[3]); return len(m.Events) == 2 })
		for _, mac := range macs {
			if m, _, _ := b.Get(mac); len(m.Events) == 0 || m.Events[len(m.Events)-1].Detail != "from B" {
				t.Errorf("%s: events %+v, want B's last", mac, m.Events)
			}
		}
	})

	// A replica's cache lags another replica's write by the time its
	// watch takes to deliver it. The tests below make B's cache hold what
	// it held before A's write (or nothing), as if its watch had not
	// delivered it yet: a refusal B's cache alone would justify is
	// judged again on the record as etcd holds it.
	lag := func(t *testing.T, mac machine.MAC, write func()) {
		t.Helper()
		b.mu.RLock()
		before, had := b.recs[mac]
		b.mu.RUnlock()
		write()
		m, ok, _ := a.Peek(mac)
		eventually(t, "B sees A's write", func() bool {
			got, gotOK, _ := b.Peek(mac)
			return gotOK == ok && got.State == m.State && got.Generation == m.Generation
		})
		b.mu.Lock()
		if had {
			b.recs[mac] = before
		} else {
			delete(b.recs, mac)
		}
		b.mu.Unlock()
	}
	reinstall := func(t *testing.T, s *EtcdStore, mac machine.MAC) func() {
		return func() {
			if _, err := s.Update(mac, func(m *Machine, _ bool) error { m.Reinstall(); return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("a refusal on a lagging cache", func(t *testing.T) {
		tests := []struct {
			name string
			// installed makes the record installed first, in both
			// caches; else B's cache lags A's reinstall from nothing.
			installed bool
			move      func(mac machine.MAC) error
		}{
			{name: "update of a record B has not seen made",
				move: func(mac machine.MAC) error { _, err := b.Update(mac, toInstalling); return err }},
			{name: "apply to a record B has not seen made",
				move: func(mac machine.MAC) error { return b.Apply(Change{MAC: mac, Fn: toInstalling})[0].Err }},
			{name: "update of a record B has not seen re-armed", installed: true,
				move: func(mac machine.MAC) error { _, err := b.Update(mac, toInstalling); return err }},
			{name: "apply, in a batch, to a record B has not seen re-armed", installed: true,
				move: func(mac machine.MAC) error {
					other := machine.MustParseMAC("52:54:00:22:04:ff")
					rs := b.Apply(Change{MAC: other, Fn: func(m *Machine, _ bool) error { m.State = machine.Discovered; return nil }}, Change{MAC: mac, Fn: toInstalling})
					return errors.Join(rs[0].Err, rs[1].Err)
				}},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				mac := machine.MustParseMAC(fmt.Sprintf("52:54:00:22:04:%02x", i))
				if tt.installed {
					if _, err := a.Update(mac, func(m *Machine, _ bool) error { m.State, m.Generation = machine.Installed, 1; return nil }); err != nil {
						t.Fatal(err)
					}
					eventually(t, "B holds the installed record", func() bool { m, _, _ := b.Peek(mac); return m.State == machine.Installed })
				}
				lag(t, mac, reinstall(t, a, mac))
				if err := tt.move(mac); err != nil {
					t.Fatalf("pending → installing through B, whose cache lags A's write: %v", err)
				}
				m, _, _ := b.Peek(mac)
				eventually(t, "A sees B's write", func() bool { got, _, _ := a.Peek(mac); return got.State == machine.Installing })
				if m.State != machine.Installing {
					t.Errorf("B's cache after the move: %s, want installing", m.State)
				}
			})
		}
	})

	t.Run("a refusal that stands", func(t *testing.T) {
		mac := machine.MustParseMAC("52:54:00:22:05:01")
		if _, err := a.Update(mac, func(m *Machine, _ bool) error { m.State = machine.Installed; return nil }); err != nil {
			t.Fatal(err)
		}
		eventually(t, "B holds the record", func() bool { _, ok, _ := b.Peek(mac); return ok })
		for _, err := range []error{
			func() error { _, err := b.Update(mac, toInstalling); return err }(),
			b.Apply(Change{MAC: mac, Fn: toInstalling})[0].Err,
		} {
			if !errors.Is(err, errNotPending) {
				t.Errorf("pending → installing of an installed machine: %v, want the fn's refusal", err)
			}
		}
	})

	t.Run("latest", func(t *testing.T) {
		mac := machine.MustParseMAC("52:54:00:22:05:02")
		if _, err := a.Update(mac, func(m *Machine, _ bool) error { m.State, m.Generation = machine.Installed, 1; return nil }); err != nil {
			t.Fatal(err)
		}
		eventually(t, "B holds the record", func() bool { _, ok, _ := b.Peek(mac); return ok })
		lag(t, mac, reinstall(t, a, mac))
		if m, _, _ := b.Peek(mac); m.State != machine.Installed {
			t.Fatalf("B's lagging cache: %s, want still installed", m.State)
		}
		m, ok, err := b.Latest(mac)
		if err != nil || !ok || m.State != machine.Pending || m.Generation != 2 {
			t.Errorf("Latest through B: %s generation %d, ok %v, err %v; want A's pending generation 2", m.State, m.Generation, ok, err)
		}
		if m, _, _ := b.Peek(mac); m.State != machine.Pending {
			t.Errorf("B's cache after Latest: %s, want pending", m.State)
		}
		gone := machine.MustParseMAC("52:54:00:22:05:03")
		if _, ok, err := b.Latest(gone); ok || err != nil {
			t.Errorf("Latest of no record: ok %v err %v", ok, err)
		}
	})

	t.Run("one pending to installing of two", func(t *testing.T) {
		const rounds = 200
		for i := range rounds {
			mac := machine.MustParseMAC(fmt.Sprintf("52:54:00:22:%02x:%02x", 2+i/256, i%256))
			if _, err := a.Update(mac, func(m *Machine, _ bool) error { m.State = machine.Pending; return nil }); err != nil {
				t.Fatal(err)
			}
			// Half the rounds race Update against Update, half Apply
			// against Apply (the boot flow's transition).
			move := func(s *EtcdStore) error {
				if i%2 == 0 {
					_, err := s.Update(mac, toInstalling)
					return err
				}
				return s.Apply(Change{MAC: mac, Fn: toInstalling})[0].Err
			}
			var errA, errB error
			var wg sync.WaitGroup
			wg.Go(func() { errA = move(a) })
			wg.Go(func() { errB = move(b) })
			wg.Wait()
			won := 0
			for _, err := range []error{errA, errB} {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, errNotPending):
					t.Fatalf("round %d: %v, want success or the fn's refusal", i, err)
				}
			}
			if won != 1 {
				t.Fatalf("round %d: %d replicas moved the machine to installing (A: %v, B: %v), want exactly one", i, won, errA, errB)
			}
		}
	})
}

// TestEtcdMemberAndQuorumLoss takes one member of three away (the
// quorum stays), then a second (it is lost), then gives both back, with
// one store open throughout.
func TestEtcdMemberAndQuorumLoss(t *testing.T) {
	cluster := etcdtest.New(t, 3)
	seen := &changes{}
	s := openEtcd(t, cluster, "/quorum/", Options{OnChange: seen.add})
	other := openEtcd(t, cluster, "/quorum/", Options{})
	mac := machine.MustParseMAC("52:54:00:22:02:01")
	if _, err := s.Update(mac, func(m *Machine, _ bool) error { m.State = machine.Pending; return nil }); err != nil {
		t.Fatal(err)
	}

	cluster.Stop(2)
	for i := range 5 {
		if r := s.Apply(Change{MAC: mac, Fn: func(m *Machine, _ bool) error {
			m.Events = append(m.Events, s.Event(machine.EventTFTP, fmt.Sprint(i), 0))
			return nil
		}})[0]; r.Err != nil {
			t.Fatalf("write %d with one member down: %v", i, r.Err)
		}
	}
	if m, ok, err := s.Get(mac); err != nil || !ok || len(m.Events) != 5 {
		t.Fatalf("read with one member down: %+v %v %v", m, ok, err)
	}
	if err := s.Health(); err != nil {
		t.Errorf("Health with one member down: %v, want ok", err)
	}

	cluster.Stop(1)
	_, err := s.Update(mac, toInstalling)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write without quorum: %v, want an error wrapping ErrUnavailable", err)
	}
	if r := s.Apply(Change{MAC: mac, Fn: toInstalling})[0]; !errors.Is(r.Err, ErrUnavailable) {
		t.Fatalf("Apply without quorum: %v, want an error wrapping ErrUnavailable", r.Err)
	}
	if m, ok, err := s.Peek(mac); err != nil || !ok || m.State != machine.Pending {
		t.Errorf("read from the cache without quorum: %+v %v %v, want the pending record", m, ok, err)
	}
	if l, err := s.List(); err != nil || len(l) != 1 {
		t.Errorf("List without quorum: %v %v", l, err)
	}
	if err := s.Health(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Health without quorum: %v, want degraded (ErrUnavailable)", err)
	}

	cluster.Start(1, 2)
	eventually(t, "Health ok again once the quorum is back", func() bool { return s.Health() == nil })
	// The writes that failed may yet commit: a member that was leader
	// when the quorum went may hold them in its log, and etcd commits
	// them once its peers are back. So the state is pending or
	// installing now; a write that does not depend on it must succeed.
	if _, err := s.Update(mac, func(m *Machine, _ bool) error {
		m.Events = append(m.Events, s.Event(machine.EventTFTP, "after", 0))
		return nil
	}); err != nil {
		t.Fatalf("write after the quorum is back: %v", err)
	}
	// The watch has been replaced: another replica's change reaches s.
	back := machine.MustParseMAC("52:54:00:22:02:02")
	if _, err := other.Update(back, func(m *Machine, _ bool) error { m.State = machine.Discovered; return nil }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "another replica's write after the outage reaches the cache and OnChange", func() bool {
		_, ok, _ := s.Peek(back)
		return ok && seen.has(back, machine.Discovered)
	})
}

// TestOpenEtcdUnreachable: with no etcd at its endpoint, OpenEtcd fails,
// naming the endpoint, instead of starting without machine state.
func TestOpenEtcdUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + ln.Addr().String()
	ln.Close()
	s, err := OpenEtcd(Options{}, EtcdOptions{Endpoints: []string{endpoint}, DialTimeout: 500 * time.Millisecond, RequestTimeout: 500 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("OpenEtcd with no etcd: no error")
	}
	if !strings.Contains(err.Error(), endpoint) {
		t.Errorf("OpenEtcd with no etcd: %v, want the endpoint named", err)
	}
}
