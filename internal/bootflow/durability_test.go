package bootflow

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// crashCopy opens a copy of the state database under dir, made while the
// daemon's store is open: what a kill -9 at this instant leaves on disk
// (docs/performance.md, "Durability: what is on disk when tinderbox
// answers").
func crashCopy(t *testing.T, dir string) *state.Store {
	t.Helper()
	to := t.TempDir()
	for _, name := range []string{state.DBFile, state.SecretFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := state.Open(to, state.Options{BackupKeep: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// onDisk returns mac's record in a crash copy of dir.
func onDisk(t *testing.T, dir string, mac machine.MAC) state.Machine {
	t.Helper()
	m, ok, err := crashCopy(t, dir).Get(mac)
	if err != nil || !ok {
		t.Fatalf("crash copy: %s: ok=%v err=%v", mac, ok, err)
	}
	return m
}

// TestTransitionsOnDiskBeforeReply: each transition an answer depends on
// is in the database file by the time the answer arrives, with no Flush:
// the record a first script makes, pending → installing with the config,
// installing → installed and the token rotated with the next script. The
// events that only describe (the script served) are there after Flush.
func TestTransitionsOnDiskBeforeReply(t *testing.T) {
	dir := t.TempDir()
	e := newEnvStore(t, "exit", machine.UnknownMaintenance, nil, true, dir, state.Options{})

	code, s := e.script(t, macOnce.Dashed(), "x86_64")
	if code != http.StatusOK {
		t.Fatalf("script: %d %s", code, s)
	}
	if m := onDisk(t, dir, macOnce); m.State != machine.Pending {
		t.Errorf("after the first script, on disk: %s, want pending", m.State)
	}
	if code, body := e.get(t, configPath(t, e, s)); code != http.StatusOK {
		t.Fatalf("config: %d %s", code, body)
	}
	m := onDisk(t, dir, macOnce)
	if m.State != machine.Installing {
		t.Errorf("after the config, on disk: %s, want installing", m.State)
	}
	gen := m.Generation
	if code, s := e.script(t, macOnce.Dashed(), "x86_64"); code != http.StatusOK || !strings.Contains(s, "\nexit 1\n") {
		t.Fatalf("script after install: %d %s", code, s)
	}
	if m := onDisk(t, dir, macOnce); m.State != machine.Installed || m.Generation != gen+1 {
		t.Errorf("after the next script, on disk: %s generation %d, want installed, generation %d", m.State, m.Generation, gen+1)
	}
	if err := e.flow.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range onDisk(t, dir, macOnce).Events {
		kinds = append(kinds, string(ev.Kind)+":"+ev.Detail)
	}
	if got, want := strings.Join(kinds, " "), "script:netboot config: script:local local_boot:exit"; got != want {
		t.Errorf("events on disk after Flush:\n got %s\nwant %s", got, want)
	}
}

// getAll requests path n times at once from mac's own address, one
// connection each, and returns the answers' statuses and bodies.
func getAll(t *testing.T, e *env, mac machine.MAC, path string, n int) (codes []int, bodies []string) {
	t.Helper()
	src := hostOf(mac)
	e.neigh.set(src, mac)
	codes, bodies = make([]int, n), make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
			client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}}
			resp, err := client.Get(e.srv.URL + path)
			if err != nil {
				t.Errorf("GET %s: %v", path, err)
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Errorf("GET %s: %v", path, err)
			}
			codes[i], bodies[i] = resp.StatusCode, string(b)
		})
	}
	wg.Wait()
	return codes, bodies
}

// TestConcurrentScriptsRotateOnce: 32 network boots at once of a machine
// that was installing (its Talos never reported) install it once: the
// token is rotated once, and none of the 32 is sent a script with a
// config token.
func TestConcurrentScriptsRotateOnce(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
	_, s := e.script(t, macOnce.Dashed(), "x86_64")
	if code, body := e.get(t, configPath(t, e, s)); code != http.StatusOK {
		t.Fatalf("config: %d %s", code, body)
	}
	before := e.machine(t, macOnce)
	codes, bodies := getAll(t, e, macOnce, scriptPath(macOnce), 32)
	for i := range codes {
		if codes[i] != http.StatusOK || !strings.Contains(bodies[i], "\nexit 1\n") || strings.Contains(bodies[i], "token=") {
			t.Errorf("boot %d: got %d\n%s\nwant the local boot script", i, codes[i], bodies[i])
		}
	}
	after := e.machine(t, macOnce)
	if after.State != machine.Installed || after.Generation != before.Generation+1 {
		t.Errorf("after 32 boots: %s generation %d, want installed, generation %d", after.State, after.Generation, before.Generation+1)
	}
	// Each boot logs its script and its local boot: the 64 newest events
	// the log keeps are theirs.
	var local int
	for _, ev := range after.Events {
		if ev.Kind == machine.EventScript && ev.Detail == "local" {
			local += ev.Times()
		}
	}
	if local != 32 {
		t.Errorf("local boot script events: got %d, want 32", local)
	}
}

// TestConcurrentConfigsInstallOnce: 32 config fetches at once of a
// pending machine are all served; the machine is installing, with the
// generation (token) it had, and every fetch is in its log.
func TestConcurrentConfigsInstallOnce(t *testing.T) {
	var (
		mu     sync.Mutex
		states []machine.State
	)
	e := newEnvStore(t, "exit", machine.UnknownMaintenance, nil, true, t.TempDir(), state.Options{OnChange: func(m state.Machine) {
		if m.MAC == macOnce {
			mu.Lock()
			states = append(states, m.State)
			mu.Unlock()
		}
	}})
	_, s := e.script(t, macOnce.Dashed(), "x86_64")
	before := e.machine(t, macOnce)
	codes, bodies := getAll(t, e, macOnce, configPath(t, e, s), 32)
	for i := range codes {
		if codes[i] != http.StatusOK || !strings.Contains(bodies[i], "# "+macOnce.String()) {
			t.Errorf("fetch %d: got %d %q, want the config", i, codes[i], bodies[i])
		}
	}
	after := e.machine(t, macOnce)
	if after.State != machine.Installing || after.Generation != before.Generation {
		t.Errorf("after 32 fetches: %s generation %d, want installing, generation %d", after.State, after.Generation, before.Generation)
	}
	var configs int
	for _, ev := range after.Events {
		if ev.Kind == machine.EventConfig {
			configs += ev.Times() // repeats fold into one event with its count
		}
	}
	if configs != 32 {
		t.Errorf("config events: got %d, want 32", configs)
	}
	mu.Lock()
	defer mu.Unlock()
	var moves []string
	for i := 1; i < len(states); i++ {
		if states[i] != states[i-1] {
			moves = append(moves, fmt.Sprintf("%s → %s", states[i-1], states[i]))
		}
	}
	if len(moves) != 1 || moves[0] != "pending → installing" {
		t.Errorf("state changes: %v, want one, pending → installing", moves)
	}
}
