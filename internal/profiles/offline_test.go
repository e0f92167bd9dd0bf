package profiles

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/factory"
	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
)

// exampleSchematicID is the ID defaults.yaml of the example profiles gives
// for schematics/homelab.yaml.
const exampleSchematicID = "d4cf8602b9d285ede53209d5e8c482372d61d3b9aa850736c2dc65bd8d091cba"

// TestOfflineWithRememberedIDs: with the example naming its schematic
// (schematic: homelab), the factory client registers it once, gets the
// ID the example hard-codes, and later loads work with the factory gone;
// a client that never reached the factory fails, saying so.
func TestOfflineWithRememberedIDs(t *testing.T) {
	dir := copyDir(t, "../../profiles")
	defaults := filepath.Join(dir, "defaults.yaml")
	b, err := os.ReadFile(defaults)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, defaults, strings.Replace(string(b), "schematic: "+exampleSchematicID, "schematic: homelab", 1))

	fake, err := fakefactory.Start(fakefactory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	load := func(url, state string) (*Set, error) {
		t.Helper()
		c, err := factory.New(factory.Options{URL: url, StateDir: state, Timeout: time.Second, Attempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		opts := testOptions(dir)
		opts.Schematics = c
		return Load(t.Context(), opts)
	}
	online, err := load(fake.URL, stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range online.Machines() {
		if p.Talos.Schematic != "homelab" || p.Talos.SchematicID != exampleSchematicID {
			t.Errorf("%s: got schematic %q ID %q, want homelab %s", p.MAC, p.Talos.Schematic, p.Talos.SchematicID, exampleSchematicID)
		}
	}
	fake.Close()

	offline, err := load(fake.URL, stateDir)
	if err != nil {
		t.Fatalf("factory gone, ID remembered: %v", err)
	}
	for _, p := range online.Machines() {
		a, _ := online.Render(t.Context(), p.MAC)
		b, _ := offline.Render(t.Context(), p.MAC)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: offline config differs:\n%s", p.MAC, b)
		}
	}

	_, err = load(fake.URL, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no ID is remembered") {
		t.Errorf("never registered, factory gone: got %v, want an error saying no ID is remembered", err)
	}
}
