package profiles

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/profiles/fleettree"
	"github.com/tinderbox-boot/tinderbox/internal/render"
)

// TestRenderCacheRestart: a restart takes every render from the cache
// file of the store before it (renders none), after an edit renders only
// the machine edited, and serves what a load from scratch serves; Load
// (validate) reads the file and never writes it; the file is 0600.
func TestRenderCacheRestart(t *testing.T) {
	const n = 30
	dir := fleetDir(t, n)
	scratch := Options{Dir: dir, BaseURL: "http://192.168.1.5:8080", FactoryURL: "https://factory.talos.dev"}
	opts := scratch
	opts.RenderCache = filepath.Join(t.TempDir(), "renders.db")

	if set, err := Load(t.Context(), opts); err != nil || len(set.rendered) != n {
		t.Fatalf("Load without a cache file: %v, rendered %d machines, want %d", err, len(set.rendered), n)
	}
	if _, err := os.Stat(opts.RenderCache); !os.IsNotExist(err) {
		t.Fatalf("Load wrote the cache file: %v", err)
	}

	s, err := NewStore(t.Context(), opts, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s.Set().rendered); got != n {
		t.Fatalf("first start rendered %d machines, want %d", got, n)
	}
	if fi, err := os.Stat(opts.RenderCache); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v %v, want mode 0600", fi, err)
	}

	restart := func(want []int) {
		t.Helper()
		s2, err := NewStore(t.Context(), opts, StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantMACs := macs(t, n, func(i int) bool { return slices.Contains(want, i) })
		if got := s2.Set().rendered; !slices.Equal(got, wantMACs) {
			t.Errorf("restart rendered %v, want %v", got, wantMACs)
		}
		sameAsScratch(t, scratch, s2.Set())
	}
	restart(nil)

	const edited = 7
	writeFile(t, fleettree.MachineFile(dir, edited), string(fleettree.Machine(edited, "moved to rack 2")))
	restart([]int{edited}) // this store does not write: it found the edit
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	restart(nil) // the reload wrote the edited machine's render

	set, err := Load(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.rendered) != 0 {
		t.Errorf("Load with the cache rendered %d machines, want none", len(set.rendered))
	}
	sameAsScratch(t, scratch, set)
}

// TestRenderCacheOtherBuild: renders written by another build are not
// used, and are replaced.
func TestRenderCacheOtherBuild(t *testing.T) {
	const n = 5
	opts := Options{Dir: fleetDir(t, n), RenderCache: filepath.Join(t.TempDir(), "renders.db")}
	if _, err := NewStore(t.Context(), opts, StoreOptions{}); err != nil {
		t.Fatal(err)
	}
	real := buildIdentity
	t.Cleanup(func() { buildIdentity = real })
	buildIdentity = func() string { return "another build" }
	startsRendering(t, opts, n, 0)
}

// startsRendering starts a Store on opts once per want and checks how
// many machines each start rendered (rather than took from the cache).
func startsRendering(t *testing.T, opts Options, want ...int) {
	t.Helper()
	for _, w := range want {
		s, err := NewStore(t.Context(), opts, StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(s.Set().rendered); got != w {
			t.Errorf("rendered %d machines, want %d", got, w)
		}
	}
}

// TestRenderCacheBroken: a cache file that is not one (torn, overwritten)
// costs a full render, not the start, and is rewritten.
func TestRenderCacheBroken(t *testing.T) {
	const n = 5
	opts := Options{Dir: fleetDir(t, n), RenderCache: filepath.Join(t.TempDir(), "renders.db")}
	if err := os.WriteFile(opts.RenderCache, []byte("not a bbolt file, and longer than its header would be"), 0o600); err != nil {
		t.Fatal(err)
	}
	startsRendering(t, opts, n, 0)
}

// TestRenderedCodec: an entry decodes to the render it was made from,
// warnings and facts included, and a change of any one byte of it is
// caught.
func TestRenderedCodec(t *testing.T) {
	r := &rendered{
		config:   []byte("version: v1alpha1\nmachine:\n  type: controlplane\n"),
		warnings: []error{&Problem{Machine: "52-54-00-00-00-01", File: "patches/old.yaml", Line: 3, Msg: "warning: machine.network: deprecated"}},
		facts: render.Facts{
			ControlPlane: true,
			Hostname:     render.Fact{Value: "cp-1", Path: "machine.network.hostname"},
			Addresses:    []render.Fact{{Value: "10.0.0.2", Path: "machine.network.interfaces[0].addresses[0]", File: "machines/x.yaml", Line: 4}},
			Endpoint:     render.Fact{Value: "10.0.0.1", Path: "cluster.controlPlane.endpoint"},
		},
	}
	v, ok := encodeRendered(r)
	if !ok {
		t.Fatal("encodeRendered refused a render without errors")
	}
	got, err := decodeRendered(v)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("got %+v, want %+v", got, r)
	}
	for i := range v {
		bad := slices.Clone(v)
		bad[i] ^= 0x20
		if _, err := decodeRendered(bad); err == nil {
			t.Errorf("byte %d changed: decoded without an error", i)
		}
	}
	if _, ok := encodeRendered(&rendered{err: &Problem{Msg: "broken"}}); ok {
		t.Error("a render with an error was encoded")
	}
}
