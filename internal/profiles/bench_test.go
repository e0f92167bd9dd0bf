package profiles

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/profiles/fleettree"
)

// BenchmarkLoad5000 loads a tree of 5000 machines from scratch (every
// machine rendered and checked, the checks across machines).
func BenchmarkLoad5000(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "profiles")
	if err := fleettree.Write(filepath.Join("..", "..", "profiles"), dir, 5000); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		set, err := Load(b.Context(), Options{Dir: dir, BaseURL: "http://192.168.1.5:8080"})
		if err != nil {
			b.Fatal(err)
		}
		if set.Len() != 5000 {
			b.Fatalf("got %d machines, want 5000", set.Len())
		}
	}
}

// BenchmarkReload5000 times a Store's reload after an edit of one
// machine's file in a tree of 5000 (the watcher's debounce aside), the
// last good copy included.
func BenchmarkReload5000(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "profiles")
	if err := fleettree.Write(filepath.Join("..", "..", "profiles"), dir, 5000); err != nil {
		b.Fatal(err)
	}
	s, err := NewStore(b.Context(), Options{Dir: dir, BaseURL: "http://192.168.1.5:8080"}, StoreOptions{LastGood: filepath.Join(b.TempDir(), "last-good")})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := os.WriteFile(fleettree.MachineFile(dir, 7), fleettree.Machine(7, strconv.Itoa(i)), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := s.Reload(b.Context()); err != nil {
			b.Fatal(err)
		}
		if n := len(s.Set().rendered); n != 1 {
			b.Fatalf("rendered %d machines, want 1", n)
		}
	}
}

// BenchmarkLoadUnchanged5000 is a load of a tree of 5000 machines with
// the memo of the load before and nothing changed: the fixed work of
// every reload (the fingerprint, reading every file, stacking every
// profile, every render key, the checks across machines), without the
// watcher's debounce or the last good copy.
func BenchmarkLoadUnchanged5000(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "profiles")
	if err := fleettree.Write(filepath.Join("..", "..", "profiles"), dir, 5000); err != nil {
		b.Fatal(err)
	}
	opts := Options{Dir: dir, BaseURL: "http://192.168.1.5:8080"}
	_, m, err := load(b.Context(), opts, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		set, next, err := load(b.Context(), opts, m)
		if err != nil {
			b.Fatal(err)
		}
		if len(set.rendered) != 0 {
			b.Fatalf("rendered %d machines, want none", len(set.rendered))
		}
		m = next
	}
}

// BenchmarkRestart5000 is a Store's start on a tree of 5000 machines
// that an earlier store loaded, with its last good copy and render cache
// (what `serve` does at a restart): nothing is rendered.
func BenchmarkRestart5000(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "profiles")
	if err := fleettree.Write(filepath.Join("..", "..", "profiles"), dir, 5000); err != nil {
		b.Fatal(err)
	}
	state := b.TempDir()
	opts := Options{Dir: dir, BaseURL: "http://192.168.1.5:8080", RenderCache: filepath.Join(state, "renders.db")}
	sopts := StoreOptions{LastGood: filepath.Join(state, "last-good")}
	if _, err := NewStore(b.Context(), opts, sopts); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := NewStore(b.Context(), opts, sopts)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(s.Set().rendered); n != 0 {
			b.Fatalf("rendered %d machines, want none", n)
		}
	}
}
