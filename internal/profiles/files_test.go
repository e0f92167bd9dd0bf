package profiles

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// TestMachineFiles: writes and deletes check their precondition, then the
// whole directory with the change, write atomically and serve at once;
// each refusal is a typed error and leaves the file as it was.
func TestMachineFiles(t *testing.T) {
	dir := copyDir(t, "testdata/golden/layers/profiles")
	s, err := NewStore(t.Context(), testOptions(dir), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mac := machine.MustParseMAC("52:54:00:00:00:01")
	fresh := machine.MustParseMAC("52:54:00:00:00:09")
	orig, err := s.MachineFile(mac)
	if err != nil || !orig.Exists() || orig.Rel != "machines/52-54-00-00-00-01.yaml" || orig.ETag != ETag(orig.Data) {
		t.Fatalf("MachineFile: got %+v, %v", orig, err)
	}
	if f, err := s.MachineFile(fresh); err != nil || f.Exists() || f.ETag != "" {
		t.Fatalf("MachineFile of a machine without a file: got %+v, %v", f, err)
	}

	const renamed = "hostname: renamed\ngroups: [fast]\nvalues: {host: 13}\n"
	tests := []struct {
		name   string
		delete bool
		mac    machine.MAC
		data   string
		pre    Precondition
		// want is the error the call returns (errors.Is), nil for none.
		want error
		// wantInvalid says the call returns an *InvalidError.
		wantInvalid bool
		// wantHost is mac's hostname in the set served after the call, ""
		// when it has no profile.
		wantHost string
	}{
		{name: "stale If-Match", mac: mac, data: renamed, pre: Precondition{IfMatch: `"0000"`}, want: ErrConflict, wantHost: "fast-arm"},
		{name: "If-None-Match on an existing file", mac: mac, data: renamed, pre: Precondition{IfNoneMatch: "*"}, want: ErrConflict, wantHost: "fast-arm"},
		{name: "If-Match * without a file", mac: fresh, data: renamed, pre: Precondition{IfMatch: "*"}, want: ErrConflict},
		{name: "does not load", mac: mac, data: "hostname: x\nbogus: 1\n", wantInvalid: true, wantHost: "fast-arm"},
		{name: "write with the read ETag", mac: mac, data: renamed, pre: Precondition{IfMatch: "W/" + orig.ETag}, wantHost: "renamed"},
		{name: "new file", mac: fresh, data: "hostname: nine\nvalues: {host: 19}\n", pre: Precondition{IfNoneMatch: "*"}, wantHost: "nine"},
		{name: "delete", delete: true, mac: fresh, wantHost: ""},
		{name: "delete again", delete: true, mac: fresh, want: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := s.MachineFile(tt.mac)
			if err != nil {
				t.Fatal(err)
			}
			var w Written
			if tt.delete {
				w, err = s.DeleteMachine(t.Context(), tt.mac, tt.pre)
			} else {
				w, err = s.WriteMachine(t.Context(), tt.mac, []byte(tt.data), tt.pre)
			}
			if w.File != before.Rel {
				t.Errorf("got file %q, want %q", w.File, before.Rel)
			}
			var inv *InvalidError
			switch {
			case tt.wantInvalid:
				var p *Problem
				if !errors.As(err, &inv) || !errors.As(err, &p) || p.Line != 2 || !strings.Contains(p.Msg, "bogus") {
					t.Fatalf("got %v, want an *InvalidError with the problem at line 2", err)
				}
			case !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil):
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			after, _ := s.MachineFile(tt.mac)
			if err != nil {
				if string(after.Data) != string(before.Data) {
					t.Errorf("a refused call changed the file: %q", after.Data)
				}
				var ce *ConflictError
				if errors.As(err, &ce) && ce.ETag != before.ETag {
					t.Errorf("conflict: got ETag %q, want the current %q", ce.ETag, before.ETag)
				}
			} else if !tt.delete && (w.ETag != ETag([]byte(tt.data)) || after.ETag != w.ETag || w.Created == before.Exists()) {
				t.Errorf("write: got %+v, file ETag %s", w, after.ETag)
			}
			p, ok := s.Machine(tt.mac)
			if got := map[bool]string{true: p.Hostname}[ok]; got != tt.wantHost {
				t.Errorf("served hostname: got %q, want %q", got, tt.wantHost)
			}
		})
	}
	// A new file is readable by other tools whatever the umask; no
	// temporary file stays behind.
	if _, err := s.WriteMachine(t.Context(), fresh, []byte("hostname: nine\nvalues: {host: 19}\n"), Precondition{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "machines", "52-54-00-00-00-09.yaml"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("new file: got %v, %v, want mode 0644", fi, err)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "machines"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

// TestImages: every machine's image and the maintenance image, once each,
// amd64 standing in for an unset arch.
func TestImages(t *testing.T) {
	dir := copyDir(t, "testdata/golden/layers/profiles")
	set, err := Load(t.Context(), testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	got := set.Images()
	seen := map[Image]bool{}
	for _, im := range got {
		if seen[im] || im.Arch == "" || im.Version == "" || len(im.SchematicID) != 64 {
			t.Errorf("image %+v: repeated or incomplete", im)
		}
		seen[im] = true
	}
	m := set.Maintenance()
	if !seen[Image{SchematicID: m.SchematicID, Version: m.Version, Arch: machine.ArchAMD64}] {
		t.Errorf("got %+v, want the maintenance image %+v (as amd64) among them", got, m)
	}
	for _, p := range set.Machines() {
		if p.Talos.Arch != "" && !seen[Image{SchematicID: p.Talos.SchematicID, Version: p.Talos.Version, Arch: p.Talos.Arch}] {
			t.Errorf("got %+v, want %s's image among them", got, p.MAC)
		}
	}
}

// TestCheckMachine: a check names the file, refuses what does not load
// with an *InvalidError, and writes nothing.
func TestCheckMachine(t *testing.T) {
	dir := copyDir(t, "testdata/golden/layers/profiles")
	s, err := NewStore(t.Context(), testOptions(dir), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mac := machine.MustParseMAC("52:54:00:00:00:09")
	tests := []struct {
		name, data  string
		wantInvalid bool
	}{
		{name: "loads", data: "hostname: nine\nvalues: {host: 19}\n"},
		// An empty body is an empty file (a machine with no values, which
		// the patches need), not the file deleted (which would load).
		{name: "empty file", data: "", wantInvalid: true},
		{name: "does not load", data: "hostname: x\nbogus: 1\n", wantInvalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := s.CheckMachine(t.Context(), mac, []byte(tt.data))
			var inv *InvalidError
			if w.File != "machines/52-54-00-00-00-09.yaml" || errors.As(err, &inv) != tt.wantInvalid || (err != nil) != tt.wantInvalid {
				t.Errorf("got %+v, %v, want invalid=%v", w, err, tt.wantInvalid)
			}
			if f, _ := s.MachineFile(mac); f.Exists() {
				t.Error("a check wrote the file")
			}
		})
	}
}
