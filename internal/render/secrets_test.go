package render

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/problem"
	"github.com/tinderbox-boot/tinderbox/internal/secrets"
)

func testBundle(t *testing.T) *secrets.Bundle {
	t.Helper()
	data, err := os.ReadFile("../secrets/testdata/talosctl.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := secrets.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const secretsBase = `version: v1alpha1
machine:
    type: %TYPE%
    install:
        disk: /dev/sda
cluster:
    clusterName: homelab
    controlPlane:
        endpoint: https://192.168.1.10:6443
`

// TestFillSecrets: a config without keys gets exactly the bundle's values
// for its machine type, and no others.
func TestFillSecrets(t *testing.T) {
	b := testBundle(t)
	for _, typ := range []string{"controlplane", "worker"} {
		t.Run(typ, func(t *testing.T) {
			out, warns, err := Check(Input{
				Base:    File{Name: "configs/node.yaml", Text: []byte(strings.Replace(secretsBase, "%TYPE%", typ, 1))},
				Secrets: b, SecretsFile: "secrets.yaml",
			})
			if err != nil || len(warns) > 0 {
				t.Fatalf("got %v, warnings %v", err, warns)
			}
			docs, _, err := parseDocs(out)
			if err != nil {
				t.Fatal(err)
			}
			doc := docs[mainDoc(docs)]
			fills, err := b.Fills(typ)
			if err != nil {
				t.Fatal(err)
			}
			filled := map[string]bool{}
			for _, f := range fills {
				filled[strings.Join(f.Path, ".")] = true
				if got := lookup(doc, f.Path...); got != f.Value {
					t.Errorf("%s: got %.40v, want the bundle's %s", strings.Join(f.Path, "."), got, f.Field)
				}
			}
			for _, p := range secrets.Paths() {
				if !filled[strings.Join(p, ".")] && lookup(doc, p...) != nil {
					t.Errorf("%s is set, and a %s does not get it", strings.Join(p, "."), typ)
				}
			}
			if got := lookup(doc, "cluster", "clusterName"); got != "homelab" {
				t.Errorf("cluster.clusterName: got %v: the rest of the config must stay", got)
			}
		})
	}
}

// TestFillSecretsConflicts: a secret the config carries itself while a
// bundle is present is reported where it was set.
func TestFillSecretsConflicts(t *testing.T) {
	b := testBundle(t)
	cp, err := b.Fills("controlplane")
	if err != nil {
		t.Fatal(err)
	}
	value := func(path string) string {
		for _, f := range cp {
			if strings.Join(f.Path, ".") == path {
				return f.Value
			}
		}
		t.Fatalf("no fill for %s", path)
		return ""
	}
	tests := []struct {
		name    string
		typ     string
		base    string // appended to the cluster map of the base
		patch   string
		want    string // the error, or "" for none
		warning string // the warning, or ""
	}{
		{
			name:    "same value is a warning",
			typ:     "controlplane",
			base:    "    ca:\n        crt: " + value("cluster.ca.crt") + "\n",
			warning: "configs/node.yaml:11: cluster.ca.crt: warning: the config carries this secret although secrets.yaml is present (same value as its certs.k8s.crt): remove it from the config, the bundle fills it in",
		},
		{
			name: "another key is an error",
			typ:  "controlplane",
			base: "    ca:\n        key: " + value("cluster.etcd.ca.key") + "\n",
			want: "configs/node.yaml:11: cluster.ca.key: differs from certs.k8s.key of secrets.yaml: a config must not carry its own PKI when a secrets bundle is present; remove it, the bundle fills it in",
		},
		{
			name:  "a patch's token is an error at the patch",
			typ:   "controlplane",
			patch: "machine:\n    token: abcdef.0123456789abcdef\n",
			want:  "patches/p.yaml:2: machine.token: differs from trustdinfo.token of secrets.yaml",
		},
		{
			name: "a worker with the etcd CA",
			typ:  "worker",
			base: "    etcd:\n        ca:\n            crt: " + value("cluster.etcd.ca.crt") + "\n",
			want: "configs/node.yaml:12: cluster.etcd.ca.crt: a worker config does not get this secret from secrets.yaml",
		},
		{
			name:  "a worker with the Talos API CA key",
			typ:   "worker",
			patch: "machine:\n    ca:\n        key: " + value("machine.ca.key") + "\n",
			want:  "patches/p.yaml:3: machine.ca.key: a worker config holds no private key here (talosctl leaves it empty), and secrets.yaml is present: remove it",
		},
		{
			name: "the other encryption secret",
			typ:  "controlplane",
			base: "    aescbcEncryptionSecret: " + value("cluster.secretboxEncryptionSecret") + "\n",
			want: "configs/node.yaml:10: cluster.aescbcEncryptionSecret: a controlplane config does not get this secret",
		},
		{
			name: "empty values are not carried secrets",
			typ:  "worker",
			base: "    ca:\n        crt: \"\"\n        key: \"\"\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{
				Base:    File{Name: "configs/node.yaml", Text: []byte(strings.Replace(secretsBase, "%TYPE%", tt.typ, 1) + tt.base)},
				Secrets: b, SecretsFile: "secrets.yaml",
			}
			if tt.patch != "" {
				in.Patches = []File{{Name: "patches/p.yaml", Text: []byte(tt.patch)}}
			}
			_, warns, err := Check(in)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got error %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("got no error, want %q", tt.want)
			case tt.want != "":
				leaves := problem.Leaves(err)
				if len(leaves) != 1 || !strings.HasPrefix(leaves[0].Error(), tt.want) {
					t.Errorf("got %q, want one problem starting %q", err, tt.want)
				}
				var p *Problem
				if !errors.As(leaves[0], &p) {
					t.Errorf("got %T, want *Problem", leaves[0])
				}
				for _, f := range cp {
					if len(f.Value) > 8 && strings.Contains(err.Error(), f.Value) {
						t.Errorf("the error shows the value of %s", f.Field)
					}
				}
			}
			var gotWarn string
			if len(warns) == 1 {
				gotWarn = warns[0].Error()
			}
			if len(warns) > 1 || gotWarn != tt.warning {
				t.Errorf("got warnings %v, want %q", warns, tt.warning)
			}
		})
	}
}

// TestFillSecretsNone: without a bundle, and without a machine type,
// nothing is filled.
func TestFillSecretsNone(t *testing.T) {
	base := strings.Replace(secretsBase, "%TYPE%", "worker", 1)
	out, err := Render(Input{Base: File{Name: "configs/node.yaml", Text: []byte(base)}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "token") || strings.Contains(string(out), "ca:") {
		t.Errorf("no bundle, yet secrets were filled:\n%s", out)
	}
	docs := []any{Map{{"version", "v1alpha1"}, {"machine", Map{}}}}
	if probs := fillSecrets(docs, Input{Secrets: testBundle(t)}); len(probs) != 0 || len(docs[0].(Map)) != 2 || len(lookup(docs[0], "machine").(Map)) != 0 {
		t.Errorf("no machine.type, yet got %v and %v", probs, docs[0])
	}
}
