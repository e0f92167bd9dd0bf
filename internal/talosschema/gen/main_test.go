package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCommittedData regenerates the data from the Talos interface files
// the generator reads by default and compares it with ../data: the
// committed files must be exactly what `go generate` writes.
func TestCommittedData(t *testing.T) {
	// go generate runs in the package directory, one above this one.
	dir := filepath.Join("..", defaultDir)
	if _, err := os.Stat(filepath.Join(dir, "schemas")); err != nil {
		t.Skipf("the Talos schema directory %s is absent, so the data cannot be regenerated here: %v", dir, err)
	}
	files, err := generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := filepath.Glob(filepath.Join("..", "data", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range committed {
		names = append(names, filepath.Base(f))
	}
	var want []string
	for name, b := range files {
		want = append(want, name)
		got, err := os.ReadFile(filepath.Join("..", "data", name))
		if err != nil {
			t.Errorf("%s: %v (run go generate ./internal/talosschema)", name, err)
			continue
		}
		if !bytes.Equal(got, b) {
			t.Errorf("data/%s differs from the generator's output (run go generate ./internal/talosschema)", name)
		}
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("data/ holds %v, the generator writes %v", names, want)
	}
}

// TestGenerate checks the generated data's shape on what it must carry:
// the v1alpha1 document, deprecated keys with their replacement, the
// decoder-only keys beside the schema's, and no prose.
func TestGenerate(t *testing.T) {
	dir := filepath.Join("..", defaultDir)
	if _, err := os.Stat(filepath.Join(dir, "schemas")); err != nil {
		t.Skipf("the Talos schema directory %s is absent: %v", dir, err)
	}
	files, err := generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	v12 := string(files["v1.12.json"])
	for _, want := range []string{`"version":"v1alpha1"`, `"kind":"HostnameConfig"`, `"hostname":"HostnameConfig"`, `"persist":`, `"rbac":""`} {
		if !bytes.Contains([]byte(v12), []byte(want)) {
			t.Errorf("v1.12.json lacks %s", want)
		}
	}
	for name, b := range files {
		for _, prose := range []string{"description", "markdown", "<p>", "examples"} {
			if bytes.Contains(b, []byte(prose)) {
				t.Errorf("%s holds %q", name, prose)
			}
		}
	}
}
