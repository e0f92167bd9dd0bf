package profiles

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/profiles/fleettree"
	"github.com/tinderbox-boot/tinderbox/internal/render"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// fleetDir writes a tree of n machines (fleettree) and returns its path.
func fleetDir(t *testing.T, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "profiles")
	if err := fleettree.Write(filepath.Join("..", "..", "profiles"), dir, n); err != nil {
		t.Fatal(err)
	}
	return dir
}

// macs are the fleet's machines i for which keep(i) holds, by MAC.
func macs(t *testing.T, n int, keep func(i int) bool) []machine.MAC {
	t.Helper()
	var out []machine.MAC
	for i := range n {
		if keep(i) {
			mac, err := machine.ParseMAC(fleettree.MAC(i))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, mac)
		}
	}
	slices.SortFunc(out, compareMAC)
	return out
}

// sameAsScratch checks that got, a store's set after a reload, is what a
// load from scratch of the same directory gives, byte for byte.
func sameAsScratch(t *testing.T, opts Options, got *Set) {
	t.Helper()
	want, err := Load(t.Context(), opts)
	if err != nil {
		t.Fatalf("load from scratch: %v", err)
	}
	if !reflect.DeepEqual(got.Machines(), want.Machines()) {
		t.Errorf("profiles differ from a load from scratch")
	}
	if g, w := fmt.Sprint(got.Warnings()), fmt.Sprint(want.Warnings()); g != w {
		t.Errorf("got warnings %s, want %s", g, w)
	}
	for _, p := range want.Machines() {
		g, err := got.Render(t.Context(), p.MAC)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := want.Render(t.Context(), p.MAC)
		if string(g) != string(w) {
			t.Errorf("machine %s: config differs from a load from scratch:\n%s\nwant:\n%s", p.MAC, g, w)
		}
	}
}

// TestReloadRendersOnlyWhatChanged edits one machine's file, a group that
// a fifth of the machines list, then defaults.yaml, and checks that each
// reload renders exactly the machines the edit touches (none when nothing
// changed), and serves what a load from scratch serves.
func TestReloadRendersOnlyWhatChanged(t *testing.T) {
	const n = 40
	dir := fleetDir(t, n)
	opts := Options{Dir: dir, BaseURL: "http://192.168.1.5:8080", FactoryURL: "https://factory.talos.dev"}
	s, err := NewStore(t.Context(), opts, StoreOptions{LastGood: filepath.Join(t.TempDir(), "last-good")})
	if err != nil {
		t.Fatal(err)
	}
	all := macs(t, n, func(int) bool { return true })
	if got := s.Set().rendered; !slices.Equal(got, all) {
		t.Fatalf("first load rendered %d machines, want all %d", len(got), n)
	}
	appendTo := func(path, text string) {
		t.Helper()
		old, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, string(old)+text)
	}
	const edited = 7
	steps := []struct {
		name string
		edit func()
		want []machine.MAC
	}{
		{"no change", func() {}, nil},
		{"one machine", func() {
			writeFile(t, fleettree.MachineFile(dir, edited), string(fleettree.Machine(edited, "moved to rack 2")))
		}, macs(t, n, func(i int) bool { return i == edited })},
		{"a group", func() {
			appendTo(filepath.Join(dir, "groups", "longhorn.yaml"), "values:\n  longhornReplicas: 3\n")
		}, macs(t, n, func(i int) bool { return i >= 3 && i%fleettree.LonghornEvery == 0 })},
		{"a patch", func() {
			appendTo(filepath.Join(dir, "patches", "longhorn.yaml"), "# reviewed\n")
		}, macs(t, n, func(i int) bool { return i >= 3 && i%fleettree.LonghornEvery == 0 })},
		{"defaults", func() {
			appendTo(filepath.Join(dir, "defaults.yaml"), "  ntp: pool.ntp.org\n")
		}, all},
		{"no change again", func() {}, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.edit()
			if err := s.Reload(t.Context()); err != nil {
				t.Fatal(err)
			}
			got := s.Set().rendered
			if !slices.Equal(got, st.want) {
				t.Errorf("rendered %v, want %v", got, st.want)
			}
			sameAsScratch(t, opts, s.Set())
		})
	}
}

// TestReloadProblemsAsScratch breaks several machines at once and checks
// that a reload reports the same problems, in the same (MAC) order, as a
// load from scratch, and as often as it is asked.
func TestReloadProblemsAsScratch(t *testing.T) {
	const n = 30
	dir := fleetDir(t, n)
	opts := Options{Dir: dir}
	s, err := NewStore(t.Context(), opts, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	broken := []int{21, 4, 13}
	for _, i := range broken {
		body := strings.Replace(string(fleettree.Machine(i, "")), "worker, vm", "worker", 1) // no install disk
		writeFile(t, fleettree.MachineFile(dir, i), body)
	}
	_, want := Load(t.Context(), opts)
	if want == nil {
		t.Fatal("load from scratch of the broken tree: no error")
	}
	for range 3 {
		if err := s.Reload(t.Context()); err == nil || err.Error() != want.Error() {
			t.Fatalf("reload: got %v\nwant %v", err, want)
		}
	}
	var order []string
	for _, line := range s.Status().Problems {
		for _, i := range broken {
			if strings.Contains(line, fleettree.MAC(i)) && !slices.Contains(order, fleettree.MAC(i)) {
				order = append(order, fleettree.MAC(i))
			}
		}
	}
	if !slices.IsSorted(order) || len(order) != len(broken) {
		t.Errorf("problems name the machines in the order %v, want every broken one in MAC order", order)
	}
}

// TestRenderKeyCoversInput guards renderKey: a field added to
// render.Input must be added to the key (or the memo would serve a config
// rendered from other inputs), then to this list.
func TestRenderKeyCoversInput(t *testing.T) {
	want := []string{"Base", "Patches", "Data", "InstallerImage", "Hostname", "RequireDisk", "Secrets", "SecretsFile", "Facts", "Templates"}
	var got []string
	for f := range reflect.TypeFor[render.Input]().Fields() {
		got = append(got, f.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("render.Input has fields %v; renderKey covers %v", got, want)
	}
}

// TestHashValue: values that differ in content, type or shape hash
// apart; equal values hash alike whatever order their maps were built in.
func TestHashValue(t *testing.T) {
	sum := func(v any) string {
		h := sha256.New()
		hashValue(h, v)
		return string(h.Sum(nil))
	}
	apart := []struct {
		name string
		a, b any
	}{
		{"int and string", map[string]any{"a": 1}, map[string]any{"a": "1"}},
		{"int and float", 1, 1.0},
		{"int and bool", 1, true},
		{"nil and empty string", nil, ""},
		{"list and scalar", map[string]any{"a": []any{"b"}}, map[string]any{"a": "b"}},
		{"one string and two", []any{"ab"}, []any{"a", "b"}},
		{"nested and dotted key", map[string]any{"a": map[string]any{"b": 1}}, map[string]any{"a.b": 1}},
		{"key and value swapped", map[string]any{"a": "b"}, map[string]any{"b": "a"}},
		{"empty map and empty list", map[string]any{}, []any{}},
		{"other type", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range apart {
		t.Run(tt.name, func(t *testing.T) {
			if sum(tt.a) == sum(tt.b) {
				t.Errorf("%#v and %#v hash alike", tt.a, tt.b)
			}
		})
	}
	a := map[string]any{}
	b := map[string]any{}
	for i := range 50 {
		a[fmt.Sprint("k", i)] = []any{i, map[string]any{"x": float64(i)}}
		b[fmt.Sprint("k", 49-i)] = []any{49 - i, map[string]any{"x": float64(49 - i)}}
	}
	if sum(a) != sum(b) {
		t.Error("equal maps built in different orders hash apart")
	}
}
