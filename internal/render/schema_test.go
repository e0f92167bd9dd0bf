package render

import (
	"strings"
	"testing"
)

// TestSchemaProblems: the schema check's issues become problems of the
// rendered config, errors refusing it and warnings served with it, each
// located on the layer that set the value.
func TestSchemaProblems(t *testing.T) {
	base := File{Name: "base.yaml", Text: []byte("version: v1alpha1\nmachine:\n  type: worker\n  install:\n    disk: /dev/sda\n")}
	tests := []struct {
		name, version, patch string
		errs, warnings       []string
	}{
		{
			name:    "deprecated v1.12 field",
			version: "v1.12.7",
			patch:   "machine:\n  network:\n    nameservers: [192.168.1.1]\n",
			warnings: []string{
				"patch.yaml:3: machine.network.nameservers: warning: deprecated in Talos v1.12, which still reads it: use the ResolverConfig document instead",
			},
		},
		{
			name:    "same field before v1.12",
			version: "v1.11.5",
			patch:   "machine:\n  network:\n    nameservers: [192.168.1.1]\n",
		},
		{
			name:    "kinded document",
			version: "v1.12.7",
			patch:   "apiVersion: v1alpha1\nkind: LinkConfig\nname: eth0\nmtu: 1500\nadresses:\n  - address: 192.168.1.21/24\n",
			errs: []string{
				"patch.yaml:6: LinkConfig[eth0].adresses: unknown key `adresses`: Talos v1.12 would refuse the config (did you mean `addresses`?)",
			},
		},
		{
			name:    "missing required key",
			version: "v1.12.7",
			patch:   "apiVersion: v1alpha1\nkind: VLANConfig\nname: eth0.20\nparent: eth0\n",
			errs: []string{
				"patch.yaml:1: VLANConfig[eth0.20]: missing `vlanID`, which Talos requires",
			},
		},
		{
			name:    "kind of a later release",
			version: "v1.11.5",
			patch:   "apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: w-01\n",
			errs: []string{
				"patch.yaml:2: HostnameConfig.kind: Talos v1.11 reads no HostnameConfig document (Talos v1.12 and later do)",
			},
		},
		{
			name:    "newer release",
			version: "v1.99.0",
			patch:   "machine:\n  kubelet:\n    extraArgs:\n      max-pods: \"250\"\n",
			warnings: []string{
				"base.yaml: warning: Talos v1.99.0 is newer than the newest interface tinderbox knows (v1.13): the config is checked against v1.13's",
			},
		},
		{
			name:    "numbers as the file wrote them",
			version: "v1.12.7",
			patch:   "machine:\n  kubelet:\n    extraArgs:\n      max-pods: 250\n  sysctls:\n    vm.max_map_count: 0x40000\n  features:\n    kubePrism:\n      port: 7_445\n      enabled: 1\n",
			errs: []string{
				"patch.yaml:10: machine.features.kubePrism.enabled: want true or false, have 1",
			},
		},
		{
			name:    "no repeat of the checker's own problem",
			version: "v1.12.7",
			patch:   "machine:\n  type: wroker\n",
			errs: []string{
				`patch.yaml:2: machine.type: "wroker": want controlplane, worker or init`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{Base: base, Patches: []File{{Name: "patch.yaml", Text: []byte(tt.patch)}}, Data: Data{Talos: TalosData{Version: tt.version}}}
			_, warnings, err := Check(in)
			var errs []string
			if err != nil {
				errs = strings.Split(err.Error(), "\n")
			}
			var warns []string
			for _, w := range warnings {
				warns = append(warns, w.Error())
			}
			if strings.Join(errs, "\n") != strings.Join(tt.errs, "\n") {
				t.Errorf("errors: got\n%s\nwant\n%s", strings.Join(errs, "\n"), strings.Join(tt.errs, "\n"))
			}
			if strings.Join(warns, "\n") != strings.Join(tt.warnings, "\n") {
				t.Errorf("warnings: got\n%s\nwant\n%s", strings.Join(warns, "\n"), strings.Join(tt.warnings, "\n"))
			}
		})
	}
}
