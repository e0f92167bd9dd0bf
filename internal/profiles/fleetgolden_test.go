package profiles

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/profiles/fleettree"
)

// fleetGoldenMachines is how many machines of a fleettree tree
// TestFleetGolden renders: the three control planes, then workers with
// and without the longhorn group, enough that every render path of the
// tree (each base config, each patch, a patch's output shared by many
// machines or each machine's own) is taken many times over.
const fleetGoldenMachines = 100

// fleetGoldenFull is how many of them have their whole config in the
// golden file (the others have its SHA-256): control planes, plain
// workers, longhorn workers.
const fleetGoldenFull = 6

// TestFleetGolden renders the first machines of the tree the scale
// benchmarks load and compares every config, byte for byte, with
// testdata/fleet-golden.txt: the renders must not change when the
// rendering is made cheaper. Run with -update to rewrite it.
func TestFleetGolden(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "profiles")
	if err := fleettree.Write(filepath.Join("..", "..", "profiles"), dir, fleetGoldenMachines); err != nil {
		t.Fatal(err)
	}
	set, err := Load(t.Context(), testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != fleetGoldenMachines {
		t.Fatalf("loaded %d machines, want %d", set.Len(), fleetGoldenMachines)
	}
	var b bytes.Buffer
	for i, p := range set.Machines() {
		cfg, err := set.Render(t.Context(), p.MAC)
		if err != nil {
			t.Fatal(err)
		}
		if i < fleetGoldenFull {
			fmt.Fprintf(&b, "=== %s config\n%s", p.MAC, cfg)
			continue
		}
		fmt.Fprintf(&b, "=== %s sha256 %x\n", p.MAC, sha256.Sum256(cfg))
	}
	want := filepath.Join("testdata", "fleet-golden.txt")
	if *update {
		if err := os.WriteFile(want, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(b.Bytes(), w) {
		t.Errorf("%s differs (run with -update only if the change of the renders is meant)\ngot:\n%s", want, b.Bytes())
	}
}
