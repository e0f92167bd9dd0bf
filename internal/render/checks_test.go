package render

import (
	"reflect"
	"strings"
	"testing"
)

const (
	testID    = "d4cf8602b9d285ede53209d5e8c482372d61d3b9aa850736c2dc65bd8d091cba"
	otherID   = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
	testImage = "factory.example.test/installer/" + testID + ":v1.12.7"
)

// checkInput is a config of the given base text, with one patch, for a
// machine of schematic testID at v1.12.7.
func checkInput(base, patch string) Input {
	in := Input{
		Base:           File{Name: "base.yaml", Text: []byte(base)},
		Data:           Data{Talos: TalosData{Version: "v1.12.7", SchematicID: testID, InstallerImage: testImage}},
		InstallerImage: testImage,
	}
	if patch != "" {
		in.Patches = []File{{Name: "patch.yaml", Text: []byte(patch)}}
	}
	return in
}

// problems renders in and returns its errors and warnings, one string each.
func problems(t *testing.T, in Input) (errs, warns []string) {
	t.Helper()
	_, ws, err := Check(in)
	for _, w := range ws {
		warns = append(warns, w.Error())
	}
	if err != nil {
		errs = strings.Split(err.Error(), "\n")
	}
	return errs, warns
}

// TestInstallerImage: machine.install.image must be the machine's
// schematic's installer; another version of it is only a warning.
func TestInstallerImage(t *testing.T) {
	base := "version: v1alpha1\nmachine:\n  type: worker\n"
	image := func(img string) string { return "machine:\n  install:\n    image: " + img + "\n" }
	tests := []struct {
		name      string
		patch     string
		wantErr   string
		wantWarn  string
		noProblem bool
	}{
		{name: "filled", noProblem: true},
		{name: "the same image", patch: image(testImage), noProblem: true},
		{name: "a mirror of the factory", patch: image("registry.lan:5000/siderolabs/installer/" + testID + ":v1.12.7"), noProblem: true},
		{name: "pinned by digest", patch: image("factory.example.test/installer/" + testID + "@sha256:" + strings.Repeat("0", 64)), noProblem: true},
		{name: "template", patch: image("{{ .Talos.InstallerImage }}"), noProblem: true},
		{
			name: "stock installer", patch: image("ghcr.io/siderolabs/installer:v1.12.7"),
			wantErr: "patch.yaml:3: machine.install.image: ghcr.io/siderolabs/installer:v1.12.7 is not an Image Factory installer: the installed system would lack the extensions and kernel arguments of schematic d4cf8602b9d2…; delete this line so that tinderbox fills " + testImage,
		},
		{
			name: "another schematic", patch: image("factory.example.test/installer/" + otherID + ":v1.12.7"),
			wantErr: "patch.yaml:3: machine.install.image: factory.example.test/installer/" + otherID + ":v1.12.7 installs schematic 376567988ad3…, not the machine's d4cf8602b9d2… (talos.schematic)",
		},
		{
			name: "another version", patch: image("factory.example.test/metal-installer/" + testID + ":1.12.6"),
			wantWarn: "patch.yaml:3: machine.install.image: warning: factory.example.test/metal-installer/" + testID + ":1.12.6 installs Talos 1.12.6, not the machine's v1.12.7 (talos.version)",
		},
		{name: "the version without its v", patch: image("factory.example.test/installer/" + testID + ":1.12.7"), noProblem: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs, warns := problems(t, checkInput(base, tt.patch))
			if tt.noProblem && (len(errs) > 0 || len(warns) > 0) {
				t.Fatalf("got errors %q, warnings %q, want none", errs, warns)
			}
			if tt.wantErr != "" && (len(errs) != 1 || !strings.HasPrefix(errs[0], tt.wantErr)) {
				t.Errorf("got errors %q, want one starting %q", errs, tt.wantErr)
			}
			if tt.wantWarn != "" && (len(errs) != 0 || len(warns) != 1 || !strings.HasPrefix(warns[0], tt.wantWarn)) {
				t.Errorf("got errors %q, warnings %q, want one warning starting %q", errs, warns, tt.wantWarn)
			}
		})
	}
}

// TestCertSANs: a control plane's certSANs, when set, must name the
// endpoint's host and every VIP, in machine.network or in a v1.12
// Layer2VIPConfig document.
func TestCertSANs(t *testing.T) {
	cp := func(typ, sans string) string {
		return "version: v1alpha1\nmachine:\n  type: " + typ + "\n  network:\n    interfaces:\n      - interface: eth0\n        vip:\n          ip: 192.168.1.50\n" +
			"cluster:\n  controlPlane:\n    endpoint: https://192.168.1.10:6443\n  apiServer:\n    certSANs: " + sans + "\n"
	}
	l2 := "apiVersion: v1alpha1\nkind: Layer2VIPConfig\nname: 192.168.1.60\nlink: eth0\n"
	tests := []struct {
		name, base, patch string
		want              []string
	}{
		{name: "all named", base: cp("controlplane", "[192.168.1.10, 192.168.1.50]")},
		{name: "no certSANs", base: cp("controlplane", "[]")},
		{name: "a worker is not checked", base: cp("worker", "[192.168.1.50]")},
		{name: "IPv6 and DNS compare canonically", base: strings.Replace(cp("controlplane", "[API.example.test, 192.168.1.50]"), "192.168.1.10", "api.example.test", 1)},
		{
			name: "endpoint moved", base: cp("controlplane", "[192.168.1.50]"),
			want: []string{"base.yaml:13: cluster.apiServer.certSANs: 192.168.1.10 (the host of cluster.controlPlane.endpoint) is not among them, so the API server's certificate may not cover it: add 192.168.1.10 to this list, or drop certSANs"},
		},
		{
			name: "VIP missing, list set by a patch", base: cp("init", "[192.168.1.10, 192.168.1.50]"), patch: "cluster:\n  apiServer:\n    certSANs: [192.168.1.10]\n---\n" + l2,
			want: []string{"patch.yaml:3: cluster.apiServer.certSANs: 192.168.1.60 (a VIP of this machine, Layer2VIPConfig[192.168.1.60].name) is not among them"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs, _ := problems(t, checkInput(tt.base, tt.patch))
			if len(errs) != len(tt.want) {
				t.Fatalf("got %q, want %q", errs, tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(errs[i], w) {
					t.Errorf("got %q, want it to start %q", errs[i], w)
				}
			}
		})
	}
}

// TestFacts: the facts the checks across machines compare, each located
// at the file and line that set it, for the v1alpha1 network fields and
// the v1.12 documents; the hostname tinderbox fills has no file.
func TestFacts(t *testing.T) {
	base := `version: v1alpha1
machine:
  type: controlplane
  network:
    interfaces:
      - interface: eth0
        addresses: [10.0.0.11/24]
        vlans:
          - vlanId: 7
            addresses: [10.7.0.11/24]
            vip:
              ip: 10.7.0.50
cluster:
  controlPlane:
    endpoint: https://10.0.0.50:6443
`
	patch := `apiVersion: v1alpha1
kind: LinkConfig
name: eth1
addresses:
  - address: 10.1.0.11/24
---
apiVersion: v1alpha1
kind: Layer2VIPConfig
name: 10.0.0.50
link: eth0
---
- op: add
  path: /machine/network/interfaces/0/addresses/-
  value: 10.0.0.12/24
`
	in := checkInput(base, patch)
	in.Hostname = "cp-01"
	var f Facts
	in.Facts = &f
	if _, _, err := Check(in); err == nil {
		t.Fatal("a JSON patch on a config of several documents: got no error")
	}
	// talosctl refuses a JSON patch on several documents: try without it.
	in.Patches[0].Text = []byte(patch[:strings.Index(patch, "---\n- op")])
	f = Facts{}
	if _, _, err := Check(in); err != nil {
		t.Fatal(err)
	}
	want := Facts{
		ControlPlane: true,
		Hostname:     Fact{Value: "cp-01", Path: "HostnameConfig.hostname"}, // no Talos version: a HostnameConfig document
		Addresses: []Fact{
			{Value: "10.0.0.11", Path: "machine.network.interfaces[0].addresses[0]", File: "base.yaml", Line: 7},
			{Value: "10.7.0.11", Path: "machine.network.interfaces[0].vlans[0].addresses[0]", File: "base.yaml", Line: 10},
			{Value: "10.1.0.11", Path: `LinkConfig[eth1].addresses[0].address`, File: "patch.yaml", Line: 5},
		},
		VIPs: []Fact{
			{Value: "10.7.0.50", Path: "machine.network.interfaces[0].vlans[0].vip.ip", File: "base.yaml", Line: 12},
			{Value: "10.0.0.50", Path: `Layer2VIPConfig[10.0.0.50].name`, File: "patch.yaml", Line: 9},
		},
		Endpoint: Fact{Value: "10.0.0.50", Path: "cluster.controlPlane.endpoint", File: "base.yaml", Line: 15},
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got  %+v\nwant %+v", f, want)
	}

	// A JSON patch on a single-document config is located too.
	in = checkInput(base, patch[strings.Index(patch, "- op"):])
	in.Facts = &f
	if _, _, err := Check(in); err != nil {
		t.Fatal(err)
	}
	if got := f.Addresses[1]; got != (Fact{Value: "10.0.0.12", Path: "machine.network.interfaces[0].addresses[1]", File: "patch.yaml", Line: 1}) {
		t.Errorf("address added by a JSON patch: got %+v", got)
	}
}
