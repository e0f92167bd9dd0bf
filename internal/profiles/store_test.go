package profiles

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// copyDir copies a profiles directory into a temporary one.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// eventually polls cond until it holds or five seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeFile replaces path atomically (a hidden temporary file renamed
// over it), as editors save: the watcher must never see half a file, or a
// test could read the problems of a load that raced the write.
func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// watch runs s.Watch until the test ends, and checks it then returns nil.
func watch(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
}

// TestHotReload: a broken file leaves the last good set serving, with the
// error visible in Status and the metrics; fixing it serves the new set;
// a machine added in a new file appears.
func TestHotReload(t *testing.T) {
	dir := copyDir(t, "testdata/golden/layers/profiles")
	reg := prometheus.NewRegistry()
	s, err := NewStore(t.Context(), testOptions(dir), StoreOptions{Registerer: reg, Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	watch(t, s)

	var mac = machine.MustParseMAC("52-54-00-00-00-01")
	old, err := s.Render(t.Context(), mac)
	if err != nil {
		t.Fatal(err)
	}
	machineFile := filepath.Join(dir, "machines", mac.Dashed()+".yaml")
	writeFile(t, machineFile, "hostname: [broken\n")
	eventually(t, "the broken file to be reported", func() bool { return s.Status().Err != nil })
	st := s.Status()
	if len(st.Problems) != 1 || !strings.Contains(st.Problems[0], machineFile+":1: YAML") {
		t.Errorf("got problems %q, want one naming %s:1", st.Problems, machineFile)
	}
	if got, _ := s.Render(t.Context(), mac); !bytes.Equal(got, old) {
		t.Errorf("a broken directory changed the config served:\n%s", got)
	}
	if got := testutil.ToFloat64(s.reloads.WithLabelValues("error")); got != 1 {
		t.Errorf("got %v error reloads, want 1", got)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP tinderbox_profiles_last_load_ok 1 when the last load of the directory succeeded, 0 when the files on disk have problems and an older set is served.
# TYPE tinderbox_profiles_last_load_ok gauge
tinderbox_profiles_last_load_ok 0
# HELP tinderbox_profiles_machines Machines with a profile in the set being served.
# TYPE tinderbox_profiles_machines gauge
tinderbox_profiles_machines 2
`), "tinderbox_profiles_last_load_ok", "tinderbox_profiles_machines"); err != nil {
		t.Error(err)
	}

	writeFile(t, machineFile, "hostname: renamed\ngroups: [fast, arm]\nvalues: {host: 11}\n")
	eventually(t, "the fixed file to be served", func() bool {
		got, _ := s.Render(t.Context(), mac)
		return bytes.Contains(got, []byte("hostname: renamed"))
	})
	if st := s.Status(); st.Err != nil || st.Problems != nil {
		t.Errorf("after the fix: got %v %q, want no error", st.Err, st.Problems)
	}

	writeFile(t, filepath.Join(dir, "machines", "52-54-00-00-00-03.yaml"), "hostname: third\nvalues: {host: 13}\n")
	eventually(t, "the new machine", func() bool { _, ok := s.Machine(machine.MustParseMAC("52:54:00:00:00:03")); return ok })
	if got := testutil.ToFloat64(s.reloads.WithLabelValues("ok")); got != 2 {
		t.Errorf("got %v good reloads, want 2", got)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP tinderbox_profiles_last_load_ok 1 when the last load of the directory succeeded, 0 when the files on disk have problems and an older set is served.
# TYPE tinderbox_profiles_last_load_ok gauge
tinderbox_profiles_last_load_ok 1
# HELP tinderbox_profiles_machines Machines with a profile in the set being served.
# TYPE tinderbox_profiles_machines gauge
tinderbox_profiles_machines 3
`), "tinderbox_profiles_last_load_ok", "tinderbox_profiles_machines"); err != nil {
		t.Error(err)
	}
}

// TestWatchSeesEarlyChange: a change made after NewStore loaded but before
// Watch began watching is loaded when Watch starts.
func TestWatchSeesEarlyChange(t *testing.T) {
	dir := copyDir(t, "testdata/golden/layers/profiles")
	s, err := NewStore(t.Context(), testOptions(dir), StoreOptions{Debounce: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "machines", "52-54-00-00-00-03.yaml"), "values: {host: 13}\n")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx) }()
	eventually(t, "the new machine", func() bool { _, ok := s.Machine(machine.MustParseMAC("52-54-00-00-00-03")); return ok })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch: %v", err)
	}
}

func TestNewStoreFailsOnBadDirectory(t *testing.T) {
	tests := []struct{ name, dir, want string }{
		{"missing", "testdata/does-not-exist", "profiles directory"},
		{"broken", "testdata/golden/err-files/profiles", "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewStore(t.Context(), testOptions(tt.dir), StoreOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestHotReloadKubeletVolume: kubelet updates a ConfigMap or Secret volume
// by writing a new timestamped directory and swapping the "..data" link
// that every file links through. The swap must reload the profiles.
func TestHotReloadKubeletVolume(t *testing.T) {
	dir := copyDir(t, "testdata/golden/layers/profiles")
	machines := filepath.Join(dir, "machines")
	orig := t.TempDir()
	files, err := os.ReadDir(machines)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.Rename(filepath.Join(machines, f.Name()), filepath.Join(orig, f.Name())); err != nil {
			t.Fatal(err)
		}
	}
	// version writes the files, edited, into machines/NAME and points
	// machines/..data at it atomically, as kubelet does.
	version := func(name string, edit func(string) string) {
		t.Helper()
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(orig, f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(machines, name, f.Name()), edit(string(b)))
		}
		tmp := filepath.Join(machines, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(machines, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_11_24_01", func(s string) string { return s })
	for _, f := range files {
		if err := os.Symlink(filepath.Join("..data", f.Name()), filepath.Join(machines, f.Name())); err != nil {
			t.Fatal(err)
		}
	}

	s, err := NewStore(t.Context(), testOptions(dir), StoreOptions{Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	watch(t, s)
	var mac = machine.MustParseMAC("52-54-00-00-00-01")
	if p, ok := s.Machine(mac); !ok || p.Hostname != "fast-arm" {
		t.Fatalf("through kubelet's links: got %+v %v, want hostname fast-arm", p, ok)
	}
	version("..2026_11_24_02", func(s string) string { return strings.Replace(s, "hostname: fast-arm", "hostname: swapped", 1) })
	eventually(t, "the swapped volume to be served", func() bool {
		p, _ := s.Machine(mac)
		return p.Hostname == "swapped"
	})
}

// TestWatchDirectoryReplaced: a profiles directory moved into place, and
// one removed and created again, is loaded, and edits to it afterwards are
// seen (the watch follows the path, not the first directory's inode).
func TestWatchDirectoryReplaced(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "profiles")
	if err := os.Rename(copyDir(t, "testdata/golden/layers/profiles"), dir); err != nil {
		t.Fatal(err)
	}
	s, err := NewStore(t.Context(), testOptions(dir), StoreOptions{Debounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	has := func(mac string) func() bool {
		return func() bool { _, ok := s.Machine(machine.MustParseMAC(mac)); return ok }
	}
	// A directory is inotify-watched once Watch has added it; a write
	// before that would be found by Watch's first fingerprint anyway.
	writeFile(t, filepath.Join(dir, "machines", "52-54-00-00-00-03.yaml"), "values: {host: 13}\n")
	eventually(t, "an edit before the swap", has("52-54-00-00-00-03"))

	// mv profiles profiles.old; mv new profiles
	next := copyDir(t, "testdata/golden/layers/profiles")
	writeFile(t, filepath.Join(next, "machines", "52-54-00-00-00-04.yaml"), "values: {host: 14}\n")
	if err := os.Rename(dir, filepath.Join(root, "profiles.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, dir); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the swapped-in directory", has("52-54-00-00-00-04"))
	writeFile(t, filepath.Join(dir, "machines", "52-54-00-00-00-05.yaml"), "values: {host: 15}\n")
	eventually(t, "an edit after the swap", has("52-54-00-00-00-05"))

	// rm -rf profiles; then create it again, file by file.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(copyDir(t, "testdata/golden/layers/profiles"), dir); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the re-created directory", func() bool { return !has("52-54-00-00-00-05")() })
	writeFile(t, filepath.Join(dir, "machines", "52-54-00-00-00-06.yaml"), "values: {host: 16}\n")
	eventually(t, "an edit after re-creating", has("52-54-00-00-00-06"))
}

// TestLastGoodSurvivesRestart: a store keeps a copy of each set that
// loads; a restart while the files are broken serves that copy, says why
// in Status, and loads the directory again once it is fixed.
func TestLastGoodSurvivesRestart(t *testing.T) {
	dir := copyDir(t, "testdata/golden/layers/profiles")
	lastGood := filepath.Join(t.TempDir(), "state", "profiles-last-good")
	sopts := StoreOptions{LastGood: lastGood}
	s, err := NewStore(t.Context(), testOptions(dir), sopts)
	if err != nil {
		t.Fatal(err)
	}
	want := len(s.Machines())
	writeFile(t, filepath.Join(dir, "machines", "52-54-00-00-00-03.yaml"), "values: {host: 13}\n")
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(lastGood, "machines", "52-54-00-00-00-03.yaml")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the copy after a reload: %v %v", fi, err)
	}

	// A bad edit, then a restart.
	broken := filepath.Join(dir, "machines", "52-54-00-00-00-03.yaml")
	writeFile(t, broken, "install: sometimes\n")
	if err := s.Reload(t.Context()); err == nil {
		t.Fatal("the broken directory loaded")
	}
	s2, err := NewStore(t.Context(), testOptions(dir), sopts)
	if err != nil {
		t.Fatalf("restart with broken files and a last good set: %v", err)
	}
	st := s2.Status()
	if st.Err == nil || len(st.Problems) == 0 || !strings.Contains(strings.Join(st.Problems, "\n"), "52-54-00-00-00-03.yaml") {
		t.Errorf("status: %+v, want the problem", st)
	}
	if _, ok := s2.Machine(machine.MustParseMAC("52-54-00-00-00-03")); !ok || len(s2.Machines()) != want+1 {
		t.Errorf("serving %d machines, want the last good set's %d", len(s2.Machines()), want+1)
	}

	// Fixed: the directory loads again, and a restart needs no fallback.
	writeFile(t, broken, "values: {host: 23}\n")
	if err := s2.Reload(t.Context()); err != nil || s2.Status().Err != nil {
		t.Fatalf("after the fix: %v %v", err, s2.Status().Err)
	}
	// Without a last good set, a broken directory still refuses to start.
	writeFile(t, broken, "install: sometimes\n")
	if _, err := NewStore(t.Context(), testOptions(dir), StoreOptions{}); err == nil {
		t.Error("no last good set: a broken directory started")
	}
}

// TestWatchBurstLoadsOnce: a burst of saves, as a `git checkout` or an
// editor makes (each a temporary file renamed into place), is loaded
// once, with the default debounce, and the load has every file of it.
func TestWatchBurstLoadsOnce(t *testing.T) {
	dir := copyDir(t, "testdata/golden/layers/profiles")
	s, err := NewStore(t.Context(), testOptions(dir), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	watch(t, s)
	// Once a change is loaded, the watcher is watching (it adds the
	// directory before its first look).
	writeFile(t, filepath.Join(dir, "machines", "52-54-00-00-01-00.yaml"), "values: {host: 100}\n")
	eventually(t, "the first machine", func() bool { _, ok := s.Machine(machine.MustParseMAC("52-54-00-00-01-00")); return ok })
	before := testutil.ToFloat64(s.reloads.WithLabelValues("ok"))

	const burst = 50
	var gap time.Duration
	last := time.Now()
	for i := range burst {
		writeFile(t, filepath.Join(dir, "machines", fmt.Sprintf("52-54-00-00-02-%02x.yaml", i)), fmt.Sprintf("values: {host: %d}\n", 200+i))
		gap = max(gap, time.Since(last))
		last = time.Now()
	}
	if gap >= DefaultDebounce {
		t.Skipf("the machine paused %v between two saves, longer than the debounce: the burst was not one", gap)
	}
	eventually(t, "the whole burst", func() bool { return s.Set().Len() == 3+burst })
	if got := testutil.ToFloat64(s.reloads.WithLabelValues("ok")) - before; got != 1 {
		t.Errorf("the burst of %d saves was loaded %v times, want once", burst, got)
	}
}
