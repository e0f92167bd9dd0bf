package profiles

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheck: Store.Check loads the directory as if one layer file held
// other bytes, reports that file's problems with their line, and neither
// writes the file nor changes the set being served.
func TestCheck(t *testing.T) {
	dir := copyDir(t, "testdata/golden/layers/profiles")
	s, err := NewStore(t.Context(), testOptions(dir), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "machines", "52-54-00-00-00-01.yaml")
	before, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rel  string
		data []byte
		// wantLine is the line of the problem in rel, 0 when it loads.
		wantLine int
		wantMsg  string
	}{
		{name: "valid edit", rel: "machines/52-54-00-00-00-01.yaml", data: []byte("hostname: other\ngroups: [fast]\nvalues: {host: 13}\n")},
		{name: "new machine", rel: "machines/52-54-00-00-00-09.yaml", data: []byte("hostname: new\nvalues: {host: 19}\n")},
		{name: "removed machine", rel: "machines/52-54-00-00-00-01.yaml"},
		{name: "unknown key", rel: "machines/52-54-00-00-00-01.yaml", data: []byte("hostname: x\nbogus: 1\n"), wantLine: 2, wantMsg: "bogus"},
		{name: "bad YAML", rel: "machines/52-54-00-00-00-01.yaml", data: []byte("hostname: x\ngroups: [\n"), wantLine: 2},
		{name: "missing group", rel: "machines/52-54-00-00-00-09.yaml", data: []byte("hostname: x\ngroups: [nope]\n"), wantLine: 2, wantMsg: "nope"},
		{name: "broken defaults", rel: "defaults.yaml", data: []byte("install: sometimes\n"), wantLine: 1, wantMsg: "sometimes"},
		{name: "empty install", rel: "defaults.yaml", data: []byte("install: \"\"\n"), wantLine: 1, wantMsg: "want once, always or never"},
		{name: "empty unknown", rel: "defaults.yaml", data: []byte("unknown: \"\"\n"), wantLine: 1, wantMsg: "want maintenance, local or ignore"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Check(t.Context(), tt.rel, tt.data)
			if tt.wantLine == 0 {
				if err != nil {
					t.Fatalf("got %v, want no problem", err)
				}
				return
			}
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("got %v, want a *Problem", err)
			}
			if got, want := p.File, filepath.Join(dir, filepath.FromSlash(tt.rel)); got != want {
				t.Errorf("got file %q, want %q", got, want)
			}
			if p.Line != tt.wantLine {
				t.Errorf("got line %d, want %d (%v)", p.Line, tt.wantLine, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
	after, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("Check changed %s", file)
	}
	if _, err := os.Stat(filepath.Join(dir, "machines", "52-54-00-00-00-09.yaml")); !os.IsNotExist(err) {
		t.Errorf("Check created a file: %v", err)
	}
	if got := s.Set().Len(); got != 2 {
		t.Errorf("got %d machines served, want 2", got)
	}
}

// TestOverlayPaths: only layer files can be overlaid.
func TestOverlayPaths(t *testing.T) {
	dir := copyDir(t, "testdata/golden/layers/profiles")
	for _, rel := range []string{"patches/common.yaml", "machines/../defaults.yaml", "machines/x.yml", "../x.yaml", "machines/.hidden.yaml"} {
		t.Run(rel, func(t *testing.T) {
			opts := testOptions(dir)
			opts.Overlay = map[string][]byte{rel: []byte("hostname: x\n")}
			if _, err := Load(t.Context(), opts); err == nil || !strings.Contains(err.Error(), "overlay") {
				t.Errorf("got %v, want an overlay error", err)
			}
		})
	}
}
