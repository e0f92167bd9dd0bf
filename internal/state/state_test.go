package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

func TestReconcile(t *testing.T) {
	tests := []struct {
		name    string
		cur     machine.State
		known   bool
		install machine.Install
		want    machine.State
	}{
		{name: "new unknown", cur: "", known: false, install: machine.InstallOnce, want: machine.Discovered},
		{name: "profile removed", cur: machine.Installed, known: false, install: machine.InstallOnce, want: machine.Discovered},
		{name: "new once", cur: "", known: true, install: machine.InstallOnce, want: machine.Pending},
		{name: "discovered gets profile", cur: machine.Discovered, known: true, install: machine.InstallOnce, want: machine.Pending},
		{name: "once keeps pending", cur: machine.Pending, known: true, install: machine.InstallOnce, want: machine.Pending},
		{name: "once keeps installing", cur: machine.Installing, known: true, install: machine.InstallOnce, want: machine.Installing},
		{name: "once keeps installed", cur: machine.Installed, known: true, install: machine.InstallOnce, want: machine.Installed},
		{name: "always from netboot to once", cur: machine.Netboot, known: true, install: machine.InstallOnce, want: machine.Pending},
		{name: "never to once", cur: machine.Local, known: true, install: machine.InstallOnce, want: machine.Pending},
		{name: "always", cur: machine.Installed, known: true, install: machine.InstallAlways, want: machine.Netboot},
		{name: "never", cur: machine.Pending, known: true, install: machine.InstallNever, want: machine.Local},
		{name: "unknown never", cur: "", known: false, install: machine.InstallNever, want: machine.Discovered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Reconcile(tt.cur, tt.known, tt.install); got != tt.want {
				t.Errorf("Reconcile(%q, %v, %q) = %q, want %q", tt.cur, tt.known, tt.install, got, tt.want)
			}
		})
	}
}

// TestInstallOnceCycle walks the install-once cycle (docs/protocol.md,
// "Machine states"): pending → (config served) installing → (next network
// boot) installed → (reinstall) pending.
func TestInstallOnceCycle(t *testing.T) {
	m := Machine{State: Reconcile("", true, machine.InstallOnce)}
	// The generation (and so the config token) changes when the install
	// completes and when the machine is re-armed, and only then.
	steps := []struct {
		name       string
		do         func()
		want       machine.State
		wantConfig bool
		generation uint64
	}{
		{"first script", func() { m.ScriptServed() }, machine.Pending, true, 0},
		{"config served", m.ConfigServed, machine.Installing, true, 0},
		{"config served again", m.ConfigServed, machine.Installing, true, 0},
		{"next network boot", func() { m.ScriptServed() }, machine.Installed, false, 1},
		{"later boots", func() { m.ScriptServed() }, machine.Installed, false, 1},
		{"reinstall", m.Reinstall, machine.Pending, true, 2},
	}
	for _, s := range steps {
		s.do()
		if m.State != s.want || m.ConfigAllowed() != s.wantConfig || m.Generation != s.generation {
			t.Fatalf("after %s: state %q config allowed %v generation %d, want %q %v %d",
				s.name, m.State, m.ConfigAllowed(), m.Generation, s.want, s.wantConfig, s.generation)
		}
	}
}

func TestConfigAllowed(t *testing.T) {
	want := map[machine.State]bool{machine.Pending: true, machine.Installing: true, machine.Failed: true, machine.Netboot: true}
	for _, s := range machine.States {
		m := Machine{State: s}
		if got := m.ConfigAllowed(); got != want[s] {
			t.Errorf("ConfigAllowed in %q: got %v, want %v", s, got, want[s])
		}
	}
}

func openStore(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fakeClock advances one second per call, so event times are distinct and known.
func fakeClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

func TestStoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Now: fakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Update(machine.MustParseMAC("52-54-00-12-34-56"), func(m *Machine, exists bool) error {
		if exists {
			t.Error("new machine reported as existing")
		}
		m.State = machine.Pending
		m.Arch, m.UUID, m.IP = "amd64", "8d5ae0f7-0000-4000-8000-000000000001", "192.0.2.50"
		m.Events = append(m.Events, s.Event(machine.EventDHCPOffer, "ipxe.efi", 0))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.MAC.String() != "52:54:00:12:34:56" {
		t.Errorf("MAC: got %q, want normalised 52:54:00:12:34:56", m.MAC)
	}
	token := s.Token(m)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t, dir, Options{})
	got, ok, err := s2.Get(machine.MustParseMAC("52:54:00:12:34:56"))
	if err != nil || !ok {
		t.Fatalf("Get after restart: ok=%v err=%v", ok, err)
	}
	if got.State != machine.Pending || got.IP != "192.0.2.50" || len(got.Events) != 1 || got.Events[0].Detail != "ipxe.efi" {
		t.Errorf("after restart: got %+v", got)
	}
	if !got.FirstSeen.Equal(m.FirstSeen) || !got.LastSeen.Equal(m.Events[0].Time) {
		t.Errorf("seen times: got first %v last %v, want %v %v", got.FirstSeen, got.LastSeen, m.FirstSeen, m.Events[0].Time)
	}
	if s2.Token(got) != token {
		t.Error("token changed across a restart: the secret key was not kept")
	}
}

// TestRestartMidInstall stops the store between config served and the next
// boot: the machine must still go on to installed, not back to pending.
func TestRestartMidInstall(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mac = machine.MustParseMAC("52:54:00:00:00:01")
	for _, step := range []func(*Machine){
		func(m *Machine) { m.State = Reconcile(m.State, true, machine.InstallOnce); m.ScriptServed() },
		func(m *Machine) { m.ConfigServed() },
	} {
		if _, err := s.Update(mac, func(m *Machine, _ bool) error { step(m); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s2 := openStore(t, dir, Options{})
	m, err := s2.Update(mac, func(m *Machine, _ bool) error {
		m.State = Reconcile(m.State, true, machine.InstallOnce)
		m.ScriptServed()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.State != machine.Installed {
		t.Errorf("after restart and next boot: got %q, want installed", m.State)
	}
}

func TestTokens(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	a := Machine{MAC: machine.MustParseMAC("52:54:00:00:00:01")}
	b := Machine{MAC: machine.MustParseMAC("52:54:00:00:00:02")}
	ta := s.Token(a)
	if len(ta) != 32 {
		t.Errorf("token length: got %d, want 32 hex digits", len(ta))
	}
	if s.Token(b) == ta {
		t.Error("two machines share a token")
	}
	tests := []struct {
		name  string
		m     Machine
		token string
		want  bool
	}{
		{name: "right", m: a, token: ta, want: true},
		{name: "missing", m: a, token: "", want: false},
		{name: "wrong", m: a, token: strings.Repeat("0", 32), want: false},
		{name: "other machine's", m: b, token: ta, want: false},
		{name: "prefix", m: a, token: ta[:16], want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.CheckToken(tt.m, tt.token); got != tt.want {
				t.Errorf("CheckToken: got %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("rotated by reinstall", func(t *testing.T) {
		m := a
		m.Reinstall()
		if s.CheckToken(m, ta) {
			t.Error("old token still accepted after reinstall")
		}
		if !s.CheckToken(m, s.Token(m)) {
			t.Error("new token refused")
		}
	})
	t.Run("differs between installations", func(t *testing.T) {
		other := openStore(t, t.TempDir(), Options{})
		if other.Token(a) == ta {
			t.Error("two state dirs derive the same token: the key is not random")
		}
	})
}

func TestBadSecretFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SecretFile), []byte("not hex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), SecretFile) {
		t.Errorf("Open with a corrupt key: got %v, want an error naming %s", err, SecretFile)
	}
}

func TestEventsAreBounded(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{MaxEvents: 5, Now: fakeClock()})
	var mac = machine.MustParseMAC("52:54:00:00:00:01")
	var m Machine
	var err error
	for i := range 12 {
		m, err = s.Update(mac, func(m *Machine, _ bool) error {
			m.Events = append(m.Events, s.Event(machine.EventScript, fmt.Sprint(i), 0))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(m.Events) != 5 {
		t.Fatalf("events: got %d, want 5", len(m.Events))
	}
	if m.Events[0].Detail != "7" || m.Events[4].Detail != "11" {
		t.Errorf("kept events %q … %q, want the newest five (7 … 11)", m.Events[0].Detail, m.Events[4].Detail)
	}
	if e, ok := m.LastEvent(machine.EventScript); !ok || e.Detail != "11" {
		t.Errorf("LastEvent: got %+v %v", e, ok)
	}
	if _, ok := m.LastEvent(machine.EventConfig); ok {
		t.Error("LastEvent found an event kind never recorded")
	}
}

func TestUpdateErrorStoresNothing(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	_, err := s.Update(machine.MustParseMAC("52:54:00:00:00:01"), func(m *Machine, _ bool) error {
		m.State = machine.Pending
		return fmt.Errorf("refused")
	})
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("got %v, want the callback's error", err)
	}
	if _, ok, _ := s.Get(machine.MustParseMAC("52:54:00:00:00:01")); ok {
		t.Error("a failed update stored a record")
	}
}

func TestConcurrentUpdates(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{MaxEvents: 1000})
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Update(machine.MustParseMAC("52:54:00:00:00:01"), func(m *Machine, _ bool) error {
					m.Events = append(m.Events, machine.Event{Kind: machine.EventAsset, Detail: fmt.Sprint(w, "/", i)})
					return nil
				}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	m, _, err := s.Get(machine.MustParseMAC("52:54:00:00:00:01"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Events) != workers*each {
		t.Errorf("events after concurrent updates: got %d, want %d (an update was lost)", len(m.Events), workers*each)
	}
}

func TestListForgetAndOnChange(t *testing.T) {
	var mu sync.Mutex
	var changes []Machine
	s := openStore(t, t.TempDir(), Options{OnChange: func(m Machine) {
		mu.Lock()
		changes = append(changes, m)
		mu.Unlock()
	}})
	for _, mac := range []string{"52:54:00:00:00:02", "52:54:00:00:00:01"} {
		if _, err := s.Update(machine.MustParseMAC(mac), func(m *Machine, _ bool) error { m.State = machine.Discovered; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].MAC.String() != "52:54:00:00:00:01" {
		t.Errorf("List: got %+v, want two machines ordered by MAC", list)
	}
	ok, err := s.Forget(machine.MustParseMAC("52:54:00:00:00:02"))
	if err != nil || !ok {
		t.Fatalf("Forget: ok=%v err=%v", ok, err)
	}
	if ok, _ := s.Forget(machine.MustParseMAC("52:54:00:00:00:02")); ok {
		t.Error("Forget of a forgotten machine: got ok")
	}
	if _, ok, _ := s.Get(machine.MustParseMAC("52:54:00:00:00:02")); ok {
		t.Error("forgotten machine still there")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 3 || changes[2].MAC.String() != "52:54:00:00:00:02" || changes[2].State != "" {
		t.Errorf("OnChange calls: got %+v, want two updates then a forget", changes)
	}
}

func TestSecondOpenFailsClearly(t *testing.T) {
	dir := t.TempDir()
	openStore(t, dir, Options{})
	start := time.Now()
	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second Open: got %v, want an 'in use' error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("second Open took %v to fail", took)
	}
}

func TestCompactsSparseDatabase(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MaxEvents: 1000})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", MaxDetail)
	for i := range 400 {
		mac := machine.MustParseMAC(fmt.Sprintf("52:54:00:00:%02x:%02x", i/256, i%256))
		if _, err := s.Update(mac, func(m *Machine, _ bool) error {
			for range 40 {
				m.Events = append(m.Events, machine.Event{Kind: machine.EventScript, Detail: big})
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 390 {
		if _, err := s.Forget(machine.MustParseMAC(fmt.Sprintf("52:54:00:00:%02x:%02x", i/256, i%256))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	path := filepath.Join(dir, DBFile)
	before, _ := os.Stat(path)
	s2 := openStore(t, dir, Options{})
	after, _ := os.Stat(path)
	if before.Size() < compactMinSize {
		t.Fatalf("test database only %d bytes: too small to exercise compaction", before.Size())
	}
	if after.Size() >= before.Size()/2 {
		t.Errorf("database %d bytes before open, %d after: want it compacted", before.Size(), after.Size())
	}
	list, err := s2.List()
	if err != nil || len(list) != 10 {
		t.Errorf("after compaction: %d machines, err %v; want the 10 kept", len(list), err)
	}
}
