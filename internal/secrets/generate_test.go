package secrets

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"reflect"
	"slices"
	"testing"
	"time"
)

// now is a fixed instant for generated certificates (whole seconds: a
// certificate keeps no less).
func now() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

func TestGenerate(t *testing.T) {
	b, err := Generate(rand.Reader, now())
	if err != nil {
		t.Fatal(err)
	}
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatalf("parse of a generated bundle: %v", err)
	}
	if !reflect.DeepEqual(again, b) {
		t.Error("a generated bundle does not survive Marshal and Parse")
	}
	for name, tok := range map[string]string{"bootstrap": b.Secrets.BootstrapToken, "trustd": b.TrustdInfo.Token} {
		if !tokenPattern.MatchString(tok) {
			t.Errorf("%s token %q: want [a-z0-9]{6}.[a-z0-9]{16}", name, tok)
		}
	}
	for name, s := range map[string]string{"cluster.id": b.Cluster.ID, "cluster.secret": b.Cluster.Secret, "secretbox": b.Secrets.SecretboxEncryptionSecret} {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != 32 {
			t.Errorf("%s: %d bytes (%v), want base64 of 32", name, len(raw), err)
		}
	}
	if b.Secrets.AESCBCEncryptionSecret != "" {
		t.Error("aescbc secret set: Talos v1.3 and later use secretbox only")
	}
	tests := []struct {
		name    string
		ca      CertAndKey
		org     []string
		ecdsa   bool
		sigAlgo x509.SignatureAlgorithm
	}{
		{"etcd", b.Certs.Etcd, []string{"etcd"}, true, x509.ECDSAWithSHA256},
		{"k8s", b.Certs.K8s, []string{"kubernetes"}, true, x509.ECDSAWithSHA256},
		{"k8saggregator", b.Certs.K8sAggregator, nil, true, x509.ECDSAWithSHA256},
		{"os", b.Certs.OS, []string{"talos"}, false, x509.PureEd25519},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			crt := cert(t, tt.ca)
			key := privateKey(t, tt.ca.Key)
			if tt.ecdsa {
				k, ok := key.(*ecdsa.PrivateKey)
				if !ok || k.Curve != elliptic.P256() {
					t.Errorf("key %T, want ECDSA P-256", key)
				}
			} else if _, ok := key.(ed25519.PrivateKey); !ok {
				t.Errorf("key %T, want Ed25519", key)
			}
			if crt.SignatureAlgorithm != tt.sigAlgo {
				t.Errorf("signature algorithm %v, want %v", crt.SignatureAlgorithm, tt.sigAlgo)
			}
			if !crt.IsCA || !crt.BasicConstraintsValid {
				t.Error("not a CA certificate")
			}
			if want := x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature; crt.KeyUsage != want {
				t.Errorf("key usage %v, want %v", crt.KeyUsage, want)
			}
			if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}; !slices.Equal(crt.ExtKeyUsage, want) {
				t.Errorf("extended key usage %v, want %v", crt.ExtKeyUsage, want)
			}
			if !slices.Equal(crt.Subject.Organization, tt.org) {
				t.Errorf("subject organization %v, want %v", crt.Subject.Organization, tt.org)
			}
			if err := crt.CheckSignatureFrom(crt); err != nil {
				t.Errorf("not self-signed: %v", err)
			}
			pool := x509.NewCertPool()
			pool.AddCert(crt)
			if _, err := crt.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now().Add(time.Hour)}); err != nil {
				t.Errorf("does not verify as its own root: %v", err)
			}
			if !crt.NotBefore.Equal(now()) || !crt.NotAfter.Equal(now().Add(87600*time.Hour)) {
				t.Errorf("valid %v to %v, want %v for ten years", crt.NotBefore, crt.NotAfter, now())
			}
			if crt.SerialNumber.Sign() <= 0 || crt.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %v: want a positive 128-bit number", crt.SerialNumber)
			}
		})
	}
	sa, ok := privateKey(t, b.Certs.K8sServiceAccount.Key).(*rsa.PrivateKey)
	if !ok || sa.N.BitLen() != 4096 {
		t.Errorf("service account key: want RSA 4096, got %T", sa)
	}
	other, err := Generate(rand.Reader, now())
	if err != nil {
		t.Fatal(err)
	}
	if other.Cluster.Secret == b.Cluster.Secret || other.Secrets.BootstrapToken == b.Secrets.BootstrapToken || string(other.Certs.OS.Key) == string(b.Certs.OS.Key) {
		t.Error("two bundles share secrets")
	}
}

// TestNewTokenUniform: every character of a token is drawn from
// [a-z0-9], and bytes of 252 and above are skipped rather than folded in.
func TestNewTokenUniform(t *testing.T) {
	src := make([]byte, 0, 64)
	for i := range 22 {
		src = append(src, 255, byte(i)) // each 255 must be skipped
	}
	tok, err := newToken(&sliceReader{src})
	if err != nil {
		t.Fatal(err)
	}
	if want := "012345.6789abcdefghijkl"; tok != want {
		t.Errorf("got %q, want %q", tok, want)
	}
}

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
