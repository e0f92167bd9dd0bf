package state

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/state/etcdtest"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// backendKind opens stores of one Backend kind. open returns a store on
// the same place (directory, or etcd prefix) each time it is called for
// one test; the caller closes the store before it opens the next.
type backendKind struct {
	name string
	open func(t *testing.T) func(t *testing.T, opts Options) Backend
}

// backendKinds are bolt, and etcd on a three-member cluster shared by the
// subtests (each on its own prefix).
func backendKinds(t *testing.T) []backendKind {
	t.Helper()
	cluster := etcdtest.New(t, 3)
	return []backendKind{
		{name: "bolt", open: func(t *testing.T) func(*testing.T, Options) Backend {
			dir := t.TempDir()
			return func(t *testing.T, opts Options) Backend {
				t.Helper()
				s, err := Open(dir, opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
		}},
		{name: "etcd", open: func(t *testing.T) func(*testing.T, Options) Backend {
			prefix := "/test/" + t.Name() + "/"
			return func(t *testing.T, opts Options) Backend {
				t.Helper()
				return openEtcd(t, cluster, prefix, opts)
			}
		}},
	}
}

// openEtcd opens an etcd store on c under prefix, closed when the test ends.
func openEtcd(t testing.TB, c *etcdtest.Cluster, prefix string, opts Options) *EtcdStore {
	t.Helper()
	s, err := OpenEtcd(opts, EtcdOptions{
		Endpoints: c.Endpoints(), Prefix: prefix,
		RequestTimeout: 3 * time.Second, ProbeInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// has reports whether OnChange was told of mac in state st ("" for
// forgotten).
func (c *changes) has(mac machine.MAC, st machine.State) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.seen, func(m Machine) bool { return m.MAC == mac && m.State == st })
}

// eventually polls cond every 20 ms until it holds, failing the test
// with what after 20 s: the bound is for a busy machine, not a goal.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not so after 20s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var errNotPending = errors.New("not pending")

// toInstalling is /config's transition as a fn: only a pending machine
// becomes installing.
func toInstalling(m *Machine, exists bool) error {
	if !exists || m.State != machine.Pending {
		return errNotPending
	}
	m.State = machine.Installing
	return nil
}

// TestBackendConformance checks, on bolt and on etcd, the behaviours of
// a Backend the rest of the daemon relies on.
func TestBackendConformance(t *testing.T) {
	mac := machine.MustParseMAC("52:54:00:22:00:01")
	other := machine.MustParseMAC("52:54:00:22:00:02")
	for _, kind := range backendKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			t.Run("create and update", func(t *testing.T) {
				rec := &changes{}
				s := kind.open(t)(t, Options{Now: fakeClock(), OnChange: rec.add})
				m, err := s.Update(mac, func(m *Machine, exists bool) error {
					if exists {
						return errors.New("exists before it was made")
					}
					m.State, m.Arch = machine.Pending, machine.ArchAMD64
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if m.FirstSeen.IsZero() || m.State != machine.Pending {
					t.Fatalf("created %+v: want pending with FirstSeen set", m)
				}
				m, err = s.Update(mac, func(m *Machine, exists bool) error {
					if !exists || m.State != machine.Pending {
						return errors.New("the record made before is not there")
					}
					m.Events = append(m.Events, s.Event(machine.EventScript, "install", 0))
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if !m.LastSeen.Equal(m.Events[0].Time) {
					t.Errorf("LastSeen %s, want the event's time %s", m.LastSeen, m.Events[0].Time)
				}
				got, ok, err := s.Get(mac)
				if err != nil || !ok || len(got.Events) != 1 || got.State != machine.Pending || got.Arch != machine.ArchAMD64 {
					t.Fatalf("Get: %+v %v %v; want pending amd64 with one event", got, ok, err)
				}
				if p, ok, err := s.Peek(mac); err != nil || !ok || p.State != machine.Pending || len(p.Events) != 0 {
					t.Errorf("Peek: %+v %v %v; want pending without events", p, ok, err)
				}
				if l, err := s.List(); err != nil || len(l) != 1 || l[0].MAC != mac || l[0].Last == nil {
					t.Errorf("List: %+v %v; want the one machine with its last event", l, err)
				}
				if c := s.CountByState(); c[machine.Pending] != 1 || len(c) != 1 {
					t.Errorf("CountByState: %v, want one pending", c)
				}
				if _, ok, _ := s.Get(other); ok {
					t.Error("Get of a MAC never stored: found")
				}
				if !rec.has(mac, machine.Pending) {
					t.Error("OnChange was not told of the new record")
				}
			})
			t.Run("fn error stores nothing", func(t *testing.T) {
				s := kind.open(t)(t, Options{})
				boom := errors.New("boom")
				if _, err := s.Update(mac, func(m *Machine, _ bool) error { m.State = machine.Pending; return boom }); !errors.Is(err, boom) {
					t.Fatalf("Update: got %v, want it to wrap fn's error", err)
				}
				if _, ok, _ := s.Get(mac); ok {
					t.Error("a failed fn stored a record")
				}
			})
			t.Run("events bounded", func(t *testing.T) {
				s := kind.open(t)(t, Options{MaxEvents: 4, Now: fakeClock()})
				for i := range 10 {
					if _, err := s.Update(mac, func(m *Machine, _ bool) error {
						m.State = machine.Pending
						m.Events = append(m.Events, s.Event(machine.EventTFTP, string(rune('a'+i)), 0))
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				}
				for i := range 3 {
					r := s.Apply(Change{MAC: mac, Fn: func(m *Machine, _ bool) error {
						if len(m.Events) != 0 {
							return errors.New("Apply's fn was handed the stored log")
						}
						m.Events = append(m.Events, s.Event(machine.EventKernel, string(rune('x'+i)), 0))
						return nil
					}})[0]
					if r.Err != nil || len(r.Machine.Events) != 1 {
						t.Fatalf("Apply: %+v; want only its own event", r)
					}
				}
				m, _, _ := s.Get(mac)
				var details []string
				for _, e := range m.Events {
					details = append(details, e.Detail)
				}
				if !slices.Equal(details, []string{"j", "x", "y", "z"}) {
					t.Errorf("events %v, want [j x y z]", details)
				}
			})
			t.Run("apply partial failure", func(t *testing.T) {
				s := kind.open(t)(t, Options{})
				boom := errors.New("boom")
				rs := s.Apply(
					Change{MAC: mac, Fn: func(m *Machine, _ bool) error { m.State = machine.Pending; return nil }},
					Change{MAC: other, Fn: func(m *Machine, _ bool) error { m.State = machine.Pending; return boom }},
					Change{MAC: mac, Fn: toInstalling},
				)
				if rs[0].Err != nil || rs[2].Err != nil || !errors.Is(rs[1].Err, boom) {
					t.Fatalf("results %+v: want the first and third stored, the second's error", rs)
				}
				if m, _, _ := s.Peek(mac); m.State != machine.Installing {
					t.Errorf("state %q: want installing (the changes to one machine in order)", m.State)
				}
				if _, ok, _ := s.Peek(other); ok {
					t.Error("the failed change stored a record")
				}
			})
			t.Run("served and forget", func(t *testing.T) {
				rec := &changes{}
				s := kind.open(t)(t, Options{OnChange: rec.add})
				sv := Served{At: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Hash: "abc", Size: 3, Config: "x: 1"}
				if ok, err := s.PutServed(mac, sv); err != nil || ok {
					t.Fatalf("PutServed without a record: %v %v, want nothing kept", ok, err)
				}
				if _, err := s.Update(mac, func(m *Machine, _ bool) error { m.State = machine.Pending; return nil }); err != nil {
					t.Fatal(err)
				}
				if ok, err := s.PutServed(mac, sv); err != nil || !ok {
					t.Fatalf("PutServed: %v %v", ok, err)
				}
				if got, ok, err := s.Served(mac); err != nil || !ok || got != sv {
					t.Fatalf("Served: %+v %v %v, want %+v", got, ok, err, sv)
				}
				sv2 := sv
				sv2.Hash = "def"
				if r := s.Apply(Change{MAC: mac, Fn: toInstalling, Served: &sv2})[0]; r.Err != nil {
					t.Fatal(r.Err)
				}
				if got, _, _ := s.Served(mac); got.Hash != "def" {
					t.Errorf("served hash %q after Apply with Served, want def", got.Hash)
				}
				if ok, err := s.Forget(mac); err != nil || !ok {
					t.Fatalf("Forget: %v %v", ok, err)
				}
				if ok, err := s.Forget(mac); err != nil || ok {
					t.Errorf("second Forget: %v %v, want nothing there", ok, err)
				}
				if _, ok, _ := s.Get(mac); ok {
					t.Error("Get after Forget: found")
				}
				if _, ok, _ := s.Served(mac); ok {
					t.Error("Served after Forget: found")
				}
				if !rec.has(mac, "") {
					t.Error("OnChange was not told of the forgotten record")
				}
			})
			t.Run("discovered max", func(t *testing.T) {
				clock := newClock()
				s := kind.open(t)(t, Options{DiscoveredMax: 2, Now: clock.Now})
				for i := range 3 {
					clock.Advance(time.Minute)
					if _, err := s.Update(macN(i), func(m *Machine, _ bool) error { m.State = machine.Discovered; return nil }); err != nil {
						t.Fatal(err)
					}
				}
				if _, ok, _ := s.Peek(macN(0)); ok {
					t.Error("the least recently seen discovered record is still there beyond the max")
				}
				if c := s.CountByState(); c[machine.Discovered] != 2 {
					t.Errorf("discovered %d, want 2", c[machine.Discovered])
				}
			})
			t.Run("sweep", func(t *testing.T) {
				clock := newClock()
				s := kind.open(t)(t, Options{DiscoveredTTL: time.Hour, Now: clock.Now})
				if _, err := s.Update(macN(1), func(m *Machine, _ bool) error { m.State = machine.Discovered; return nil }); err != nil {
					t.Fatal(err)
				}
				clock.Advance(2 * time.Hour)
				if _, err := s.Update(macN(2), func(m *Machine, _ bool) error { m.State = machine.Discovered; return nil }); err != nil {
					t.Fatal(err)
				}
				if n, err := s.Sweep(); err != nil || n != 1 {
					t.Fatalf("Sweep: %d %v, want 1 forgotten", n, err)
				}
				if _, ok, _ := s.Peek(macN(1)); ok {
					t.Error("the expired record is still there")
				}
				if _, ok, _ := s.Peek(macN(2)); !ok {
					t.Error("the fresh record was swept")
				}
			})
			t.Run("repeats folded", func(t *testing.T) {
				open := kind.open(t)
				clock := fakeClock()
				s := open(t, Options{Now: clock})
				add := func(full bool, evs ...machine.Event) Machine {
					t.Helper()
					fn := func(m *Machine, _ bool) error {
						m.State = machine.Pending
						m.Events = append(m.Events, evs...)
						return nil
					}
					if full {
						m, err := s.Update(mac, fn)
						if err != nil {
							t.Fatal(err)
						}
						return m
					}
					r := s.Apply(Change{MAC: mac, Fn: fn})[0]
					if r.Err != nil {
						t.Fatal(r.Err)
					}
					return r.Machine
				}
				script := func() machine.Event { return s.Event(machine.EventScript, "netboot", 0) }
				add(true, s.Event(machine.EventTransition, "discovered → pending", 0))
				first := script()
				add(false, first)
				add(false, script())
				// What Apply returns (and OnChange is told) is the run so far.
				r := add(false, script())
				if len(r.Events) != 1 || r.Events[0].Count != 3 || !r.Events[0].Since.Equal(first.Time) {
					t.Errorf("Apply returned %+v, want the run of 3 since %s", r.Events, first.Time)
				}
				add(true, script())            // Update's whole-log path
				add(false, script(), script()) // two repeats in one change
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = open(t, Options{Now: clock})
				last := script()
				add(false, last) // after a reopen
				add(false, s.Event(machine.EventKernel, "kernel-amd64", 10), s.Event(machine.EventKernel, "kernel-amd64", 11))
				add(false, s.Event(machine.EventTransition, "pending → installing", 0))
				add(true, s.Event(machine.EventTransition, "pending → installing", 0))
				after := script()
				add(false, after)
				add(false, s.Event(machine.EventScript, "local", 0))
				m, _, err := s.Get(mac)
				if err != nil {
					t.Fatal(err)
				}
				type entry struct {
					kind   machine.EventKind
					detail string
					count  int
				}
				var got []entry
				for _, e := range m.Events {
					got = append(got, entry{e.Kind, e.Detail, e.Times()})
				}
				want := []entry{
					{machine.EventTransition, "discovered → pending", 1},
					{machine.EventScript, "netboot", 7},
					{machine.EventKernel, "kernel-amd64", 1}, {machine.EventKernel, "kernel-amd64", 1},
					{machine.EventTransition, "pending → installing", 1}, {machine.EventTransition, "pending → installing", 1},
					{machine.EventScript, "netboot", 1},
					{machine.EventScript, "local", 1},
				}
				if !slices.Equal(got, want) {
					t.Fatalf("events %+v\nwant %+v", got, want)
				}
				run := m.Events[1]
				if !run.Since.Equal(first.Time) || !run.Time.Equal(last.Time) {
					t.Errorf("the run: since %s at %s, want since %s at %s", run.Since, run.Time, first.Time, last.Time)
				}
				if e := m.Events[6]; e.Count != 0 || !e.Since.IsZero() || !e.Time.Equal(after.Time) {
					t.Errorf("a lone event: %+v, want no count or since, at %s", e, after.Time)
				}
				if l, err := s.List(); err != nil || len(l) != 1 || l[0].Last == nil || l[0].Last.Detail != "local" {
					t.Errorf("List: %+v %v; want the newest event as the machine's last", l, err)
				}
			})
			t.Run("clipped repeats fold", func(t *testing.T) {
				s := kind.open(t)(t, Options{Now: fakeClock()})
				long := strings.Repeat("refused: ", MaxDetail/4)
				for i := range 3 {
					fn := func(m *Machine, _ bool) error {
						m.State = machine.Discovered
						m.Events = append(m.Events, s.Event(machine.EventRefused, long, 0))
						return nil
					}
					if i == 1 {
						if r := s.Apply(Change{MAC: mac, Fn: fn})[0]; r.Err != nil {
							t.Fatal(r.Err)
						}
					} else if _, err := s.Update(mac, fn); err != nil {
						t.Fatal(err)
					}
				}
				m, _, err := s.Get(mac)
				if err != nil || len(m.Events) != 1 || m.Events[0].Count != 3 || len(m.Events[0].Detail) > MaxDetail {
					t.Fatalf("events %+v, %v; want one run of 3, its detail clipped", m.Events, err)
				}
			})
			t.Run("a loop keeps the history", func(t *testing.T) {
				s := kind.open(t)(t, Options{Now: fakeClock()})
				failed := s.Event(machine.EventTalos, "install sequence failed: no disk", 0)
				if _, err := s.Update(mac, func(m *Machine, _ bool) error {
					m.State = machine.Failed
					m.Events = append(m.Events, failed, s.Event(machine.EventTransition, "installing → failed", 0))
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				// 1000 script requests of a machine in a boot loop, as the
				// write queue's drains and a few synchronous writes store them.
				for i := range 100 {
					fn := func(m *Machine, _ bool) error {
						for range 10 {
							m.Events = append(m.Events, s.Event(machine.EventScript, "netboot", 0))
						}
						return nil
					}
					if i%10 == 9 {
						if _, err := s.Update(mac, fn); err != nil {
							t.Fatal(err)
						}
					} else if r := s.Apply(Change{MAC: mac, Fn: fn})[0]; r.Err != nil {
						t.Fatal(r.Err)
					}
				}
				m, _, err := s.Get(mac)
				if err != nil {
					t.Fatal(err)
				}
				if len(m.Events) != 3 || m.Events[0] != failed || m.Events[2].Kind != machine.EventScript || m.Events[2].Count != 1000 {
					t.Fatalf("events %+v; want the failure, its transition and one run of 1000 scripts", m.Events)
				}
			})
			t.Run("tokens stable across reopen", func(t *testing.T) {
				open := kind.open(t)
				s := open(t, Options{})
				m := Machine{MAC: mac, Generation: 3}
				tok, tag := s.Token(m), s.MaskTag("secret")
				if !s.CheckToken(m, tok) || s.CheckToken(Machine{MAC: mac, Generation: 4}, tok) {
					t.Error("CheckToken does not tell the generation's token")
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s2 := open(t, Options{})
				if s2.Token(m) != tok || s2.MaskTag("secret") != tag {
					t.Error("the token or mask tag changed across a reopen")
				}
			})
		})
	}
}
