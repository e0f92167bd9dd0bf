package profiles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tinderbox-boot/tinderbox/internal/problem"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fakeFactory resolves schematics as the Image Factory does: the ID is the
// sha256 of the schematic (here of its bytes). A schematic holding "fail"
// cannot be resolved.
type fakeFactory struct{ calls int }

func (f *fakeFactory) SchematicID(_ context.Context, schematic []byte) (string, error) {
	f.calls++
	if bytes.Contains(schematic, []byte("fail")) {
		return "", errors.New("factory: register schematic: dial tcp: connection refused (and no ID is remembered for this schematic)")
	}
	sum := sha256.Sum256(schematic)
	return hex.EncodeToString(sum[:]), nil
}

func testOptions(dir string) Options {
	return Options{Dir: dir, Schematics: &fakeFactory{}, FactoryURL: "https://factory.example.test", BaseURL: "http://192.0.2.5:8080"}
}

// dump writes a loaded set as the golden files hold it: each machine's
// effective profile, then its config.
func dump(t *testing.T, set *Set) []byte {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "unknown: %s\n", set.Unknown())
	m, err := yaml.Marshal(set.Maintenance())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "=== maintenance\n%s", m)
	for _, p := range set.Machines() {
		cfg, err := set.Render(t.Context(), p.MAC)
		if err != nil {
			t.Fatal(err)
		}
		p.File = filepath.ToSlash(p.File)
		prof, err := yaml.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "=== %s profile\n%s=== %s config\n%s", p.MAC, prof, p.MAC, cfg)
	}
	return b.Bytes()
}

// TestGolden loads each testdata/golden/<name>/profiles directory (and the
// repository's example profiles) and compares every machine's effective
// profile and config, or the problems, one a line, with want.txt. Run
// with -update to rewrite them.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/golden/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no golden cases")
	}
	cases := map[string]string{"example": "../../profiles"}
	for _, d := range dirs {
		cases[filepath.Base(d)] = filepath.Join(d, "profiles")
	}
	for name, dir := range cases {
		t.Run(name, func(t *testing.T) {
			set, err := Load(t.Context(), testOptions(dir))
			var got []byte
			if err != nil {
				for _, e := range problem.Leaves(err) {
					got = append(got, e.Error()+"\n"...)
				}
			} else {
				got = dump(t, set)
			}
			want := filepath.Join("testdata/golden", name, "want.txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(want), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(want, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			w, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, w) {
				t.Errorf("%s differs (run with -update if the change is right)\ngot:\n%s\nwant:\n%s", want, got, w)
			}
		})
	}
}

// TestExampleControlPlanes: the example's three control-plane nodes get
// configs that differ only in hostname, address and MAC (in the leading
// comment and the NIC's selector).
func TestExampleControlPlanes(t *testing.T) {
	set, err := Load(t.Context(), testOptions("../../profiles"))
	if err != nil {
		t.Fatal(err)
	}
	var cps []Profile
	for _, p := range set.Machines() {
		if strings.HasPrefix(p.Hostname, "cp-") {
			cps = append(cps, p)
		}
	}
	if len(cps) != 3 {
		t.Fatalf("got %d control-plane nodes, want 3", len(cps))
	}
	first, _ := set.Render(t.Context(), cps[0].MAC)
	for _, p := range cps[1:] {
		cfg, _ := set.Render(t.Context(), p.MAC)
		a, b := strings.Split(string(first), "\n"), strings.Split(string(cfg), "\n")
		if len(a) != len(b) {
			t.Fatalf("%s: %d lines, %s: %d", cps[0].MAC, len(a), p.MAC, len(b))
		}
		for i := range a {
			if a[i] == b[i] {
				continue
			}
			ok := strings.HasPrefix(a[i], "# tinderbox:") ||
				strings.Contains(a[i], "hostname: "+cps[0].Hostname) ||
				strings.Contains(a[i], cps[0].MAC.String()) || // the NIC's selector
				strings.Contains(a[i], strings.TrimSuffix(fmt.Sprint(cps[0].Values["address"]), "/24"))
			if !ok {
				t.Errorf("line %d differs beyond hostname and address:\n%s\n%s", i+1, a[i], b[i])
			}
		}
	}
}

func TestLookupAnySpelling(t *testing.T) {
	set, err := Load(t.Context(), testOptions("../../profiles"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mac := range []string{"1c-69-7a-00-00-11", "1C:69:7A:00:00:11", "1c697a000011"} {
		p, ok := set.Machine(machine.MustParseMAC(mac))
		if !ok || p.Hostname != "cp-01" {
			t.Errorf("Machine(%q) = %q, %v; want cp-01", mac, p.Hostname, ok)
		}
	}
	if _, ok := set.Machine(machine.MustParseMAC("52:54:00:99:99:99")); ok {
		t.Error("an unknown MAC has a profile")
	}
	if _, err := set.Render(t.Context(), machine.MustParseMAC("52:54:00:99:99:99")); !errors.Is(err, ErrUnknownMachine) {
		t.Errorf("got %v, want ErrUnknownMachine", err)
	}
}

// TestSchematicNames: a name is resolved through the factory once per load,
// however many machines use it; an ID is never sent.
func TestSchematicNames(t *testing.T) {
	f := &fakeFactory{}
	opts := testOptions("testdata/golden/layers/profiles")
	opts.Schematics = f
	if _, err := Load(t.Context(), opts); err != nil {
		t.Fatal(err)
	}
	if f.calls != 1 {
		t.Errorf("got %d factory calls, want 1", f.calls)
	}
	opts.Schematics = nil
	_, err := Load(t.Context(), opts)
	if err == nil || !strings.Contains(err.Error(), "give the 64-hex ID instead") {
		t.Errorf("without a resolver: got %v", err)
	}
}

func BenchmarkLoad(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(b.Context(), testOptions("../../profiles")); err != nil {
			b.Fatal(err)
		}
	}
}
