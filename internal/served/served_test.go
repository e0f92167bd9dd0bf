package served

import (
	"strings"
	"testing"
)

func tag(v string) string { return "T" + Hash([]byte(v))[:6] }

// TestMask: each secret field of a Talos config is masked, with a tag
// that follows the value; certificates, public keys, usernames and
// empty values stay; a join token inside a URL is masked.
func TestMask(t *testing.T) {
	cfg := `# tinderbox: machine config
version: v1alpha1
machine:
    token: abcdef.0123456789abcdef
    ca:
        crt: PUBLICCERT
        key: PRIVATEKEY
    registries:
        config:
            r.example:
                auth:
                    username: bob
                    password: hunter2
                    auth: Ym9iOmh1bnRlcjI=
    install:
        extraKernelArgs:
            - siderolink.api=https://omni.example/?jointoken=JOINME&x=1
cluster:
    secret: CLUSTERSECRET
    aescbcEncryptionSecret: AESCBC
    serviceAccount:
        key: PRIVATEKEY
    etcd:
        ca:
            crt: PUBLICCERT
            key: ""
---
apiVersion: v1alpha1
kind: WireguardConfig
name: wg0
privateKey: WGPRIVATE
peers:
    - publicKey: WGPUBLIC
      presharedKey: WGPSK
`
	out, err := Mask([]byte(cfg), tag)
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, secret := range []string{"abcdef.0123456789abcdef", "PRIVATEKEY", "hunter2", "Ym9iOmh1bnRlcjI=", "JOINME", "CLUSTERSECRET", "AESCBC", "WGPRIVATE", "WGPSK"} {
		if strings.Contains(got, secret) {
			t.Errorf("masked config holds %s:\n%s", secret, got)
		}
	}
	for _, kept := range []string{"# tinderbox: machine config", "crt: PUBLICCERT", "username: bob", "publicKey: WGPUBLIC", `key: ""`, "jointoken=" + Marker(tag("JOINME")) + "&x=1"} {
		if !strings.Contains(got, kept) {
			t.Errorf("masked config lacks %q:\n%s", kept, got)
		}
	}
	key := "key: " + Marker(tag("PRIVATEKEY"))
	if n := strings.Count(got, key); n != 2 {
		t.Errorf("got %d of %q, want 2 (one value, one tag):\n%s", n, key, got)
	}
}

func TestTakeBounds(t *testing.T) {
	big := []byte("version: v1alpha1\nmachine:\n    type: worker\n    note: " + strings.Repeat("x", MaxBytes) + "\n")
	s := Take(big, tag)
	if s.Masked != nil || !strings.Contains(s.Note, "only its hash is kept") || s.Hash != Hash(big) || s.Size != len(big) {
		t.Errorf("over MaxBytes: got note %q, %d masked bytes", s.Note, len(s.Masked))
	}
	s = Take([]byte("a: [unclosed\n"), tag)
	if s.Masked != nil || s.Note == "" {
		t.Errorf("not YAML: got note %q, %d masked bytes", s.Note, len(s.Masked))
	}
	s = Take([]byte("version: v1alpha1\n"), tag)
	if string(s.Masked) != "version: v1alpha1\n" || s.Note != "" {
		t.Errorf("small config: got %q, note %q", s.Masked, s.Note)
	}
}

func TestDiff(t *testing.T) {
	if d := Diff("served", "current", []byte("a: 1\n"), []byte("a: 1\n")); d != "" {
		t.Errorf("equal: got %q", d)
	}
	want := "--- served\n+++ current\n@@ -1,2 +1,2 @@\n a: 1\n-b: 2\n+b: 3\n"
	if d := Diff("served", "current", []byte("a: 1\nb: 2\n"), []byte("a: 1\nb: 3\n")); d != want {
		t.Errorf("got\n%s\nwant\n%s", d, want)
	}
}
