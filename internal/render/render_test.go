package render

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenCase is testdata/golden/<name>/case.yaml: what to render, beside
// base.yaml and the patch files.
type goldenCase struct {
	// Patches lists the patch files in order; default: every patch*.yaml,
	// sorted.
	Patches        []string `yaml:"patches"`
	Data           Data     `yaml:"data"`
	InstallerImage string   `yaml:"installerImage"`
	Hostname       string   `yaml:"hostname"`
	RequireDisk    bool     `yaml:"requireDisk"`
}

// TestGolden renders each testdata/golden/<name> case: base.yaml and its
// patches in, want.yaml (the config) or want.err (the problems, one a
// line) out. Run with -update to rewrite them.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/golden/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no golden cases")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			in := loadCase(t, dir)
			out, err := Render(in)
			got, file := out, "want.yaml"
			if err != nil {
				got, file = []byte(err.Error()+"\n"), "want.err"
			}
			checkGolden(t, dir, file, got)
		})
	}
}

func loadCase(t testing.TB, dir string) Input {
	t.Helper()
	var c goldenCase
	if b, err := os.ReadFile(filepath.Join(dir, "case.yaml")); err == nil {
		if err := yaml.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s/case.yaml: %v", dir, err)
		}
	}
	if c.Patches == nil {
		m, _ := filepath.Glob(filepath.Join(dir, "patch*.yaml"))
		for _, p := range m {
			c.Patches = append(c.Patches, filepath.Base(p))
		}
		slices.Sort(c.Patches)
	}
	read := func(name string) File {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return File{Name: name, Text: b}
	}
	in := Input{Base: read("base.yaml"), Data: c.Data, InstallerImage: c.InstallerImage, Hostname: c.Hostname, RequireDisk: c.RequireDisk}
	for _, p := range c.Patches {
		in.Patches = append(in.Patches, read(p))
	}
	return in
}

// checkGolden compares got with dir/file, or rewrites it under -update;
// the other outcome's file must not exist.
func checkGolden(t *testing.T, dir, file string, got []byte) {
	t.Helper()
	path := filepath.Join(dir, file)
	other := filepath.Join(dir, map[string]string{"want.yaml": "want.err", "want.err": "want.yaml"}[file])
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(other)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		if _, err2 := os.Stat(other); err2 == nil {
			t.Fatalf("got %s:\n%s\nwant %s (run with -update if the change is right)", file, got, filepath.Base(other))
		}
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update if the change is right)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestDocExamplesAgree: each example of Talos' patching documentation is
// written both as a strategic merge patch and as a JSON patch; both must
// give the same config.
func TestDocExamplesAgree(t *testing.T) {
	for _, name := range []string{"machine-network", "cluster-network", "kubelet", "admission-control", "hostname"} {
		t.Run(name, func(t *testing.T) {
			smp, err1 := Render(loadCase(t, "testdata/golden/doc-"+name+"-smp"))
			jp, err2 := Render(loadCase(t, "testdata/golden/doc-"+name+"-json"))
			if err := errors.Join(err1, err2); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(smp, jp) {
				t.Errorf("strategic merge gives\n%s\nJSON patch gives\n%s", smp, jp)
			}
		})
	}
}

// TestDeterministic: the same input renders to the same bytes, and the
// inputs are left as they were.
func TestDeterministic(t *testing.T) {
	in := loadCase(t, "testdata/golden/templates")
	first, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		got, err := Render(in)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, first) {
			t.Fatalf("got\n%s\nwant\n%s", got, first)
		}
	}
}

func TestProblemError(t *testing.T) {
	tests := []struct {
		name string
		p    Problem
		want string
	}{
		{"everything", Problem{File: "patches/a.yaml", Line: 3, Path: "machine.type", Msg: "bad"}, "patches/a.yaml:3: machine.type: bad"},
		{"no line", Problem{File: "configs/cp.yaml", Msg: "bad"}, "configs/cp.yaml: bad"},
		{"message only", Problem{Msg: "bad"}, "bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTemplateFuncs(t *testing.T) {
	tests := []struct {
		name, text, want, err string
	}{
		{name: "cidrhost first", text: `{{ cidrhost "192.168.1.0/24" 1 }}`, want: "192.168.1.1"},
		{name: "cidrhost of an address", text: `{{ cidrhost "192.168.1.11/24" 50 }}`, want: "192.168.1.50"},
		{name: "cidrhost from the end", text: `{{ cidrhost "10.0.0.0/8" -2 }}`, want: "10.255.255.254"},
		{name: "cidrhost IPv6", text: `{{ cidrhost "fd00::/64" 16 }}`, want: "fd00::10"},
		{name: "cidrhost out of range", text: `{{ cidrhost "192.168.1.0/30" 4 }}`, err: "has no host number 4"},
		{name: "cidrhost bad prefix", text: `{{ cidrhost "192.168.1.0" 4 }}`, err: "not an address/bits prefix"},
		{name: "cidrnetmask", text: `{{ cidrnetmask "192.168.1.0/23" }}`, want: "255.255.254.0"},
		{name: "cidrnetmask zero", text: `{{ cidrnetmask "0.0.0.0/0" }}`, want: "0.0.0.0"},
		{name: "cidrnetmask IPv6", text: `{{ cidrnetmask "fd00::/64" }}`, err: "not IPv4"},
		{name: "cidrprefix", text: `{{ cidrprefix "192.168.1.11/24" }}`, want: "192.168.1.0/24"},
		{name: "cidrip", text: `{{ cidrip "192.168.1.11/24" }}`, want: "192.168.1.11"},
		{name: "cidrbits", text: `{{ cidrbits "192.168.1.11/24" }}`, want: "24"},
		{name: "required set", text: `{{ required "need x" "x" }}`, want: "x"},
		{name: "required empty", text: `{{ required "values.vip is required" "" }}`, err: "values.vip is required"},
		{name: "toYaml", text: `{{ toYaml (dict "b" 1 "a" (list "x" "z")) }}`, want: "a:\n  - x\n  - z\nb: 1"},
		{name: "default", text: `{{ "" | default "d" }}`, want: "d"},
		{name: "quote", text: `{{ quote "a b" }}`, want: `"a b"`},
		{name: "nindent", text: `x:{{ "a: 1" | nindent 2 }}`, want: "x:\n  a: 1"},
		{name: "no env", text: `{{ env "HOME" }}`, err: `function "env" not defined`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := execute("t.yaml", []byte(tt.text), Data{})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %q, %v; want error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCheckWarnings: a host named both in machine.network.hostname and in a
// HostnameConfig document renders, with one warning located in the patch
// that added the second name.
func TestCheckWarnings(t *testing.T) {
	in := Input{
		Base:    File{Name: "base.yaml", Text: []byte("version: v1alpha1\nmachine:\n  type: worker\n  network:\n    hostname: legacy\n")},
		Patches: []File{{Name: "p.yaml", Text: []byte("apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: modern\n")}},
		Data:    Data{Talos: TalosData{Version: "v1.12.7"}},
	}
	out, warns, err := Check(in)
	if err != nil || len(out) == 0 {
		t.Fatalf("Check: %v", err)
	}
	if len(warns) != 1 {
		t.Fatalf("got %d warnings %v, want 1", len(warns), warns)
	}
	w := warns[0]
	if !w.Warning || w.File != "base.yaml" || w.Line != 5 || w.Path != "machine.network.hostname" ||
		!strings.HasPrefix(w.Error(), "base.yaml:5: machine.network.hostname: warning: the host is also named") {
		t.Errorf("got %+v (%q)", w, w.Error())
	}
	if _, err := Render(in); err != nil {
		t.Errorf("Render: a warning must not fail it: %v", err)
	}
}

func TestTalosMinor(t *testing.T) {
	for v, want := range map[string]int{"v1.12.7": 12, "1.10.0": 10, "v1.13": 13, "v1.9.5-beta.0": 9} {
		if got, ok := talosMinor(v); !ok || got != want {
			t.Errorf("talosMinor(%q) = %d, %v; want %d", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "latest", "v2.0.0", "v1.x", "v1.-1"} {
		if got, ok := talosMinor(v); ok {
			t.Errorf("talosMinor(%q) = %d, true; want not ok", v, got)
		}
	}
}

// execute parses and runs a template file over data, as a render does.
func execute(name string, text []byte, data Data) ([]byte, error) {
	t, err := parseTemplate(name, text)
	if err != nil {
		return nil, err
	}
	return run(t, data)
}
