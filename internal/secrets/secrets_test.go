package secrets

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func readFixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/talosctl.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseFixture(t testing.TB) *Bundle {
	t.Helper()
	b, err := Parse(readFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cert(t *testing.T, c CertAndKey) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(c.Crt)
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	crt, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return crt
}

func privateKey(t *testing.T, b []byte) any {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatal("no PEM key")
	}
	k, err := parsePrivateKey(block)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestParseTalosctl reads a bundle in talosctl's format made by openssl,
// not by this package.
func TestParseTalosctl(t *testing.T) {
	b := parseFixture(t)
	if got, want := b.Secrets.BootstrapToken, "k3x9q2.0a1b2c3d4e5f6g7h"; got != want {
		t.Errorf("bootstrap token: got %q, want %q", got, want)
	}
	if got, want := b.TrustdInfo.Token, "zq81mt.r2d2c3pobb8ygwde"; got != want {
		t.Errorf("trustd token: got %q, want %q", got, want)
	}
	if b.Secrets.SecretboxEncryptionSecret == "" || b.Secrets.AESCBCEncryptionSecret != "" {
		t.Errorf("encryption secrets: got secretbox %q, aescbc %q", b.Secrets.SecretboxEncryptionSecret, b.Secrets.AESCBCEncryptionSecret)
	}
	for _, c := range []struct {
		name string
		ca   CertAndKey
		org  string
	}{{"etcd", b.Certs.Etcd, "etcd"}, {"k8s", b.Certs.K8s, "kubernetes"}, {"os", b.Certs.OS, "talos"}} {
		if got := cert(t, c.ca).Subject.Organization; len(got) != 1 || got[0] != c.org {
			t.Errorf("%s: subject organization %v, want [%s]", c.name, got, c.org)
		}
	}
	if _, ok := privateKey(t, b.Certs.OS.Key).(ed25519.PrivateKey); !ok {
		t.Errorf("os key is not Ed25519")
	}
	if _, ok := privateKey(t, b.Certs.K8sServiceAccount.Key).(*rsa.PrivateKey); !ok {
		t.Errorf("service account key is not RSA")
	}
}

// TestMarshalRoundTrip: Marshal writes talosctl's layout, and Parse reads
// it back to the same bundle.
func TestMarshalRoundTrip(t *testing.T) {
	b := parseFixture(t)
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatalf("parse of marshalled bundle: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(again, b) {
		t.Errorf("round trip changed the bundle")
	}
	out2, err := again.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, out2) {
		t.Errorf("marshal is not stable:\n%s\n---\n%s", out, out2)
	}
	// The fixture without its comment is byte for byte what Marshal writes.
	var body []string
	for _, l := range strings.SplitAfter(string(readFixture(t)), "\n") {
		if !strings.HasPrefix(l, "#") {
			body = append(body, l)
		}
	}
	if got, want := string(out), strings.Join(body, ""); got != want {
		t.Errorf("marshal differs from talosctl's layout:\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// TestParseAESCBC: a bundle from a Talos before v1.3 holds an AES-CBC
// secret instead of secretbox.
func TestParseAESCBC(t *testing.T) {
	text := strings.Replace(string(readFixture(t)), "secretboxencryptionsecret:", "aescbcencryptionsecret:", 1)
	b, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if b.Secrets.AESCBCEncryptionSecret == "" || b.Secrets.SecretboxEncryptionSecret != "" {
		t.Errorf("got aescbc %q, secretbox %q", b.Secrets.AESCBCEncryptionSecret, b.Secrets.SecretboxEncryptionSecret)
	}
	fills, err := b.Fills("controlplane")
	if err != nil {
		t.Fatal(err)
	}
	if !hasPath(fills, "cluster.aescbcEncryptionSecret") || hasPath(fills, "cluster.secretboxEncryptionSecret") {
		t.Errorf("fills: want cluster.aescbcEncryptionSecret and no secretbox secret, got %v", paths(fills))
	}
}

// setLine replaces the line of text that starts (after its indent) with
// prefix by that indent and repl; it fails when there is none.
func setLine(t *testing.T, text, prefix, repl string) string {
	t.Helper()
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		trimmed := strings.TrimLeft(l, " ")
		if strings.HasPrefix(trimmed, prefix) {
			lines[i] = l[:len(l)-len(trimmed)] + repl
			return strings.Join(lines, "\n")
		}
	}
	t.Fatalf("no line starting with %q", prefix)
	return ""
}

// valueOf returns the value of the n-th (from 0) line starting with key.
func valueOf(t *testing.T, text, key string, n int) string {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimLeft(l, " "), key+": "); ok {
			if n == 0 {
				return v
			}
			n--
		}
	}
	t.Fatalf("no %s line", key)
	return ""
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseErrors(t *testing.T) {
	fixture := string(readFixture(t))
	etcdKey := valueOf(t, fixture, "key", 0)
	etcdCrt := valueOf(t, fixture, "crt", 0)
	osKey := valueOf(t, fixture, "key", 4)
	tests := []struct {
		name string
		edit func(string) string
		want string // a substring of the error, with its line
	}{
		{"unknown top-level key", func(s string) string { return s + "extra: 1\n" }, "line 29: extra: unknown key (the file has cluster, secrets, trustdinfo or certs)"},
		{"unknown nested key", func(s string) string { return setLine(t, s, "token: zq81", "tokn: zq81mt.r2d2c3pobb8ygwde") }, "line 13: trustdinfo.tokn: unknown key (trustdinfo has token)"},
		{"missing field", func(s string) string { return setLine(t, s, "key: "+osKey, "") }, "line 26: certs.os.key: missing"},
		{"missing section", func(s string) string { return setLine(t, s, "token: zq81", "") }, "line 12: trustdinfo: want a map with token"},
		{"key set twice", func(s string) string { return setLine(t, s, "id:", "id: AAAA\n    id: AAAA") }, "line 8: cluster.id: set twice"},
		{"not base64", func(s string) string { return setLine(t, s, "secret:", "secret: not*base64") }, "line 8: cluster.secret: not base64"},
		{"bad bootstrap token", func(s string) string {
			return setLine(t, s, "bootstraptoken:", "bootstraptoken: ABCDEF.0123456789abcdef")
		}, "line 10: secrets.bootstraptoken: not a bootstrap token"},
		{"short secretbox key", func(s string) string {
			return setLine(t, s, "secretboxencryptionsecret:", "secretboxencryptionsecret: "+b64("sixteen bytes!!!"))
		}, "line 11: secrets.secretboxencryptionsecret: decodes to 16 bytes, want 32"},
		{"both encryption secrets", func(s string) string {
			return setLine(t, s, "secretboxencryptionsecret:", "secretboxencryptionsecret: "+b64(strings.Repeat("k", 32))+"\n    aescbcencryptionsecret: "+b64(strings.Repeat("k", 32)))
		}, "line 12: secrets.aescbcencryptionsecret: set beside secretboxencryptionsecret"},
		{"no encryption secret", func(s string) string { return setLine(t, s, "secretboxencryptionsecret:", "") }, "line 9: secrets: want secretboxencryptionsecret"},
		{"crt is not PEM", func(s string) string { return strings.Replace(s, etcdCrt, b64("hello"), 1) }, "line 16: certs.etcd.crt: the base64 does not hold a PEM block"},
		{"key of a type Talos refuses", func(s string) string {
			return strings.Replace(s, osKey, b64(strings.ReplaceAll(mustDecode(t, osKey), "ED25519 PRIVATE KEY", "PRIVATE KEY")), 1)
		}, `line 28: certs.os.key: PEM block "PRIVATE KEY", want EC PRIVATE KEY, ED25519 PRIVATE KEY or RSA PRIVATE KEY`},
		{"key of another CA", func(s string) string { return setLine(t, s, "key: "+valueOf(t, s, "key", 1), "key: "+etcdKey) }, "line 20: certs.k8s.key: does not belong to certs.k8s.crt"},
		{"corrupt key", func(s string) string {
			return strings.Replace(s, etcdKey, b64(string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("junk")}))), 1)
		}, "line 17: certs.etcd.key: EC PRIVATE KEY:"},
		{"not a map", func(string) string { return "- a\n- b\n" }, "line 1: want a map with cluster, secrets, trustdinfo and certs"},
		{"bad YAML", func(string) string { return "cluster: [\n" }, "YAML:"},
		{"empty", func(string) string { return "" }, "empty file"},
		{"value is a map", func(s string) string { return setLine(t, s, "token: zq81", "token: {a: b}") }, "line 13: trustdinfo.token: want a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.edit(fixture)))
			if err == nil {
				t.Fatal("got no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to contain %q", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("got %T, want *Error", err)
			}
		})
	}
}

func mustDecode(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestParseNotCA: a certificate without CA:TRUE is refused.
func TestParseNotCA(t *testing.T) {
	fixture := string(readFixture(t))
	k, err := ecdsa.GenerateKey(elliptic.P256(), nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := newCA(strings.NewReader(strings.Repeat("x", 64)), now(), "leaf", k, pemEC, nil)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := pem.Decode(leaf.Crt)
	crt, _ := x509.ParseCertificate(der.Bytes)
	tmpl := *crt
	tmpl.IsCA, tmpl.BasicConstraintsValid = false, true
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	leafDER, err := x509.CreateCertificate(nil, &tmpl, &tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(fixture, valueOf(t, fixture, "crt", 0), b64(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}))), 1)
	text = strings.Replace(text, valueOf(t, fixture, "key", 0), b64(string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))), 1)
	_, err = Parse([]byte(text))
	if err == nil || !strings.Contains(err.Error(), "certs.etcd.crt: not a CA certificate") {
		t.Errorf("got %v, want certs.etcd.crt: not a CA certificate", err)
	}
}

func hasPath(fills []Fill, path string) bool {
	for _, f := range fills {
		if strings.Join(f.Path, ".") == path {
			return true
		}
	}
	return false
}

func paths(fills []Fill) []string {
	var out []string
	for _, f := range fills {
		out = append(out, strings.Join(f.Path, "."))
	}
	return out
}

// TestFills is the mapping of talosctl gen config: which value each
// machine type gets where.
func TestFills(t *testing.T) {
	b := parseFixture(t)
	e := base64.StdEncoding.EncodeToString
	common := map[string]string{
		"machine.token":  b.TrustdInfo.Token,
		"machine.ca.crt": e(b.Certs.OS.Crt),
		"cluster.id":     b.Cluster.ID,
		"cluster.secret": b.Cluster.Secret,
		"cluster.token":  b.Secrets.BootstrapToken,
		"cluster.ca.crt": e(b.Certs.K8s.Crt),
	}
	cp := map[string]string{
		"machine.ca.key":                    e(b.Certs.OS.Key),
		"cluster.ca.key":                    e(b.Certs.K8s.Key),
		"cluster.secretboxEncryptionSecret": b.Secrets.SecretboxEncryptionSecret,
		"cluster.aggregatorCA.crt":          e(b.Certs.K8sAggregator.Crt),
		"cluster.aggregatorCA.key":          e(b.Certs.K8sAggregator.Key),
		"cluster.serviceAccount.key":        e(b.Certs.K8sServiceAccount.Key),
		"cluster.etcd.ca.crt":               e(b.Certs.Etcd.Crt),
		"cluster.etcd.ca.key":               e(b.Certs.Etcd.Key),
	}
	worker := map[string]string{"machine.ca.key": "", "cluster.ca.key": ""}
	merge := func(a, b map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range a {
			out[k] = v
		}
		for k, v := range b {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		typ  string
		want map[string]string
	}{
		{"controlplane", merge(common, cp)},
		{"init", merge(common, cp)},
		{"worker", merge(common, worker)},
	}
	all := map[string]bool{}
	for _, p := range Paths() {
		all[strings.Join(p, ".")] = true
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			fills, err := b.Fills(tt.typ)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, f := range fills {
				p := strings.Join(f.Path, ".")
				if _, dup := got[p]; dup {
					t.Errorf("%s filled twice", p)
				}
				if !all[p] {
					t.Errorf("%s is not in Paths", p)
				}
				if (f.Field == "") != (f.Value == "") {
					t.Errorf("%s: field %q for value %q", p, f.Field, f.Value)
				}
				got[p] = f.Value
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
		})
	}
	if _, err := b.Fills("master"); err == nil {
		t.Error("Fills(master): got no error")
	}
}

var tokenPattern = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)
