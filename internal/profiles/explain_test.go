package profiles

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// TestExplain: on testdata/explain, a value set in defaults.yaml, changed
// by a group and again by the machine file is the machine file's; the
// config's fields come from the base, a strategic-merge patch, a JSON
// patch, or tinderbox itself, each at its exact line.
func TestExplain(t *testing.T) {
	dir := filepath.Join("testdata", "explain")
	ex, err := Explain(t.Context(), testOptions(dir), machine.MustParseMAC("52:54:00:00:00:01"))
	if err != nil {
		t.Fatal(err)
	}
	defaults := filepath.Join(dir, "defaults.yaml")
	group := filepath.Join(dir, "groups", "prod.yaml")
	mine := filepath.Join(dir, "machines", "52-54-00-00-00-01.yaml")
	type at struct {
		value, file string
		line        int
	}
	wantKeys := map[string]at{
		"hostname":        {"w-01", mine, 1},
		"groups":          {"prod", mine, 2},
		"talos.version":   {"v1.11.6", mine, 4},
		"talos.schematic": {"376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba", defaults, 3},
		"talos.arch":      {"", "", 0},
		"install":         {"once", "", 0},
		"config":          {"node", defaults, 4},
		"patches[0]":      {"disk", group, 4},
		"patches[1]":      {"labels", mine, 6},
		"values.dns":      {"10.0.0.3", mine, 8},
		"values.region":   {"eu", defaults, 6},
	}
	if len(ex.Keys) != len(wantKeys) {
		t.Errorf("got %d profile keys, want %d: %+v", len(ex.Keys), len(wantKeys), ex.Keys)
	}
	for _, k := range ex.Keys {
		w, ok := wantKeys[k.Key]
		if !ok {
			t.Errorf("unexpected key %+v", k)
			continue
		}
		if got := (at{k.Value, k.File, k.Line}); got != w {
			t.Errorf("%s: got %+v, want %+v", k.Key, got, w)
		}
	}

	base := filepath.Join(dir, "configs", "node.yaml")
	disk := filepath.Join(dir, "patches", "disk.yaml")
	labels := filepath.Join(dir, "patches", "labels.yaml")
	const filled = "(filled)"
	image := "factory.example.test/installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.11.6"
	wantConfig := map[string]at{
		"version":                        {"v1alpha1", base, 1},
		"machine.type":                   {"worker", base, 3},
		"machine.install.disk":           {"/dev/nvme0n1", disk, 3},
		"machine.install.wipe":           {"false", base, 6},
		"machine.install.image":          {image, filled, 0},
		"machine.network.nameservers[0]": {"10.0.0.3", base, 9},
		"machine.network.hostname":       {"w-01", filled, 0},
		"machine.nodeLabels.zone":        {"a", labels, 1},
		"cluster.clusterName":            {"eu-cluster", base, 11},
		"cluster.controlPlane.endpoint":  {"https://10.0.0.10:6443", base, 13},
	}
	if len(ex.Config) != len(wantConfig) {
		t.Errorf("got %d config leaves, want %d: %+v", len(ex.Config), len(wantConfig), ex.Config)
	}
	for _, o := range ex.Config {
		w, ok := wantConfig[o.Path]
		if !ok {
			t.Errorf("unexpected leaf %+v", o)
			continue
		}
		file := o.File
		if o.Filled {
			file = filled
		}
		if got := (at{o.Value, file, o.Line}); got != w {
			t.Errorf("%s: got %+v, want %+v", o.Path, got, w)
		}
	}
}

func TestExplainUnknownMachine(t *testing.T) {
	_, err := Explain(t.Context(), testOptions(filepath.Join("testdata", "explain")), machine.MustParseMAC("52:54:00:00:00:09"))
	if !errors.Is(err, ErrUnknownMachine) {
		t.Errorf("got %v, want ErrUnknownMachine", err)
	}
}

// TestExplainSecretsBundle: values the secrets bundle fills are explained
// as coming from the bundle's file, other filled values as tinderbox's.
func TestExplainSecretsBundle(t *testing.T) {
	text, err := os.ReadFile("../../profiles/secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := secretsTree(t, map[string]string{"secrets.yaml": string(text)})
	ex, err := Explain(t.Context(), testOptions(dir), machine.MustParseMAC("52-54-00-00-00-01"))
	if err != nil {
		t.Fatal(err)
	}
	from := map[string]string{}
	for _, o := range ex.Config {
		if o.Filled {
			from[o.Path] = o.File
		}
	}
	bundle := filepath.Join(dir, "secrets.yaml")
	for path, want := range map[string]string{
		"machine.token": bundle, "cluster.ca.key": bundle, "cluster.etcd.ca.crt": bundle,
		"machine.install.image": "", "HostnameConfig.hostname": "",
	} {
		got, ok := from[path]
		if !ok || got != want {
			t.Errorf("%s: filled %v from %q, want filled from %q", path, ok, got, want)
		}
	}
}
