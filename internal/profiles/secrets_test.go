package profiles

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tinderbox-boot/tinderbox/internal/problem"
	"github.com/tinderbox-boot/tinderbox/internal/secrets"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// bundleText is the secrets package's talosctl-format fixture.
func bundleText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../secrets/testdata/talosctl.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// secretsTree writes a profiles directory with a control plane
// (52-54-00-00-00-01) and a worker (…-02) whose base configs hold no
// keys, and the files given (path under the directory → text).
func secretsTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	base := "version: v1alpha1\nmachine:\n    type: %s\n    install:\n        disk: /dev/sda\ncluster:\n    clusterName: lab\n    controlPlane:\n        endpoint: https://cp.lab.example:6443\n"
	tree := map[string]string{
		"defaults.yaml":                   "talos:\n  version: v1.12.7\n  schematic: " + strings.Repeat("a", 64) + "\n",
		"configs/controlplane.yaml":       strings.Replace(base, "%s", "controlplane", 1),
		"configs/worker.yaml":             strings.Replace(base, "%s", "worker", 1),
		"machines/52-54-00-00-00-01.yaml": "hostname: cp-01\nconfig: controlplane\n",
		"machines/52-54-00-00-00-02.yaml": "hostname: w-01\nconfig: worker\n",
	}
	for k, v := range files {
		tree[k] = v
	}
	for name, text := range tree {
		writeFile(t, filepath.Join(dir, name), text)
	}
	return dir
}

// renderedDoc returns mac's served config, parsed.
func renderedDoc(t *testing.T, set *Set, mac string) map[string]any {
	t.Helper()
	m, err := machine.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	out, err := set.Render(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func at(doc map[string]any, path []string) any {
	var v any = doc
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// checkFilled says whether every value of b for typ is in doc.
func checkFilled(t *testing.T, doc map[string]any, b *secrets.Bundle, typ string) {
	t.Helper()
	fills, err := b.Fills(typ)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fills {
		if got := at(doc, f.Path); got != f.Value {
			t.Errorf("%s %s: got %.30v…, want the bundle's %s", typ, strings.Join(f.Path, "."), got, f.Field)
		}
	}
}

func TestSecretsBundle(t *testing.T) {
	text := bundleText(t)
	b, err := secrets.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Load(t.Context(), testOptions(secretsTree(t, map[string]string{"secrets.yaml": text})))
	if err != nil {
		t.Fatal(err)
	}
	checkFilled(t, renderedDoc(t, set, "52-54-00-00-00-01"), b, "controlplane")
	w := renderedDoc(t, set, "52-54-00-00-00-02")
	checkFilled(t, w, b, "worker")
	if at(w, []string{"cluster", "etcd"}) != nil {
		t.Error("the worker got the etcd CA")
	}
	if len(set.Warnings()) != 0 {
		t.Errorf("warnings: %v", set.Warnings())
	}
}

// TestSecretsPerCluster: a layer's `secrets: NAME` picks
// secrets/NAME.yaml over the default secrets.yaml.
func TestSecretsPerCluster(t *testing.T) {
	text := bundleText(t)
	other := strings.Replace(text, "k3x9q2.0a1b2c3d4e5f6g7h", "other0.0a1b2c3d4e5f6g7h", 1)
	ob, err := secrets.Parse([]byte(other))
	if err != nil {
		t.Fatal(err)
	}
	dir := secretsTree(t, map[string]string{
		"secrets.yaml":                    text,
		"secrets/lab2.yaml":               other,
		"groups/lab2.yaml":                "secrets: lab2\n",
		"machines/52-54-00-00-00-02.yaml": "hostname: w-01\nconfig: worker\ngroups: [lab2]\n",
	})
	set, err := Load(t.Context(), testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	checkFilled(t, renderedDoc(t, set, "52-54-00-00-00-02"), ob, "worker")
	if got := at(renderedDoc(t, set, "52-54-00-00-00-01"), []string{"cluster", "token"}); got != "k3x9q2.0a1b2c3d4e5f6g7h" {
		t.Errorf("the control plane's bootstrap token: got %v, want the default bundle's", got)
	}
	p, _ := set.Machine(machine.MAC{0x52, 0x54, 0, 0, 0, 2})
	if p.Secrets != "lab2" {
		t.Errorf("profile secrets: got %q, want lab2", p.Secrets)
	}
}

func TestSecretsProblems(t *testing.T) {
	text := bundleText(t)
	tests := []struct {
		name  string
		files map[string]string
		want  []string // each problem, by its start, in order
	}{
		{
			name:  "bad bundle",
			files: map[string]string{"secrets.yaml": strings.Replace(text, "bootstraptoken: k3x9q2", "bootstraptoken: K3X9Q2", 1)},
			want:  []string{"secrets.yaml:10: secrets bundle: secrets.bootstraptoken: not a bootstrap token"},
		},
		{
			name:  "no such bundle",
			files: map[string]string{"groups/x.yaml": "secrets: nope\n", "machines/52-54-00-00-00-02.yaml": "hostname: w-01\nconfig: worker\ngroups: [x]\n"},
			want:  []string{"groups/x.yaml:1: machine 52-54-00-00-00-02: secrets: no file secrets/nope.yaml"},
		},
		{
			name: "base config carries a key",
			files: map[string]string{
				"secrets.yaml":        text,
				"configs/worker.yaml": "version: v1alpha1\nmachine:\n    type: worker\n    token: abcdef.0123456789abcdef\n    install:\n        disk: /dev/sda\n",
			},
			want: []string{"configs/worker.yaml:4: machine 52-54-00-00-00-02: machine.token: differs from trustdinfo.token of "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := secretsTree(t, tt.files)
			_, err := Load(t.Context(), testOptions(dir))
			leaves := problem.Leaves(err)
			if len(leaves) != len(tt.want) {
				t.Fatalf("got %d problems (%v), want %d", len(leaves), err, len(tt.want))
			}
			for i, e := range leaves {
				got := strings.TrimPrefix(filepath.ToSlash(e.Error()), filepath.ToSlash(dir)+"/")
				if !strings.HasPrefix(got, tt.want[i]) {
					t.Errorf("got %q, want it to start %q", got, tt.want[i])
				}
			}
		})
	}
}

// TestExampleSecrets: the example's base configs hold no keys, and every
// machine's rendered config holds exactly the values of its secrets.yaml
// for its type.
func TestExampleSecrets(t *testing.T) {
	for _, name := range []string{"controlplane", "worker"} {
		text, err := os.ReadFile(filepath.Join("../../profiles/configs", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		// The base configs are templates: their actions stand for values.
		text = regexp.MustCompile(`\{\{[^}]*\}\}`).ReplaceAll(text, []byte("x"))
		var doc map[string]any
		if err := yaml.Unmarshal(text, &doc); err != nil {
			t.Fatal(err)
		}
		for _, p := range secrets.Paths() {
			if v := at(doc, p); v != nil {
				t.Errorf("configs/%s.yaml carries %s", name, strings.Join(p, "."))
			}
		}
	}
	data, err := os.ReadFile("../../profiles/secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := secrets.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	set, err := Load(t.Context(), testOptions("../../profiles"))
	if err != nil {
		t.Fatal(err)
	}
	if w := set.Warnings(); len(w) != 0 {
		t.Errorf("warnings: %v", w)
	}
	types := map[string]int{}
	for _, p := range set.Machines() {
		doc := renderedDoc(t, set, p.MAC.Dashed())
		typ, _ := at(doc, []string{"machine", "type"}).(string)
		types[typ]++
		checkFilled(t, doc, b, typ)
	}
	if types["controlplane"] != 3 || types["worker"] != 1 {
		t.Errorf("machine types %v, want 3 control planes and a worker", types)
	}
}

// TestSecretsEmptyDirIsNoBundle: Kubernetes mounts an empty directory for a
// subPath whose key is missing; at secrets.yaml that means no bundle, not
// a problem. A directory with something in it is a problem.
func TestSecretsEmptyDirIsNoBundle(t *testing.T) {
	dir := secretsTree(t, nil)
	if err := os.Mkdir(filepath.Join(dir, "secrets.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(t.Context(), testOptions(dir)); err != nil {
		t.Fatalf("an empty secrets.yaml directory: %v", err)
	}
	writeFile(t, filepath.Join(dir, "secrets.yaml", "x"), "y")
	if _, err := Load(t.Context(), testOptions(dir)); err == nil || !strings.Contains(err.Error(), "secrets.yaml") {
		t.Fatalf("a directory with a file at secrets.yaml: got %v, want a problem naming it", err)
	}
}
