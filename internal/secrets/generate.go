package secrets

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"time"
)

// CAValidityTime is how long the CAs Generate makes are valid: ten years
// (87600 h), Talos' CAValidityTime.
const CAValidityTime = 87600 * time.Hour

// ServiceAccountKeyBits is the size of the RSA service-account key:
// Talos generates RSA 4096 for v1.7 and later (ECDSA P-256 before).
const ServiceAccountKeyBits = 4096

// Sizes of the random values, as Talos generates them: the cluster ID and
// secret (constants.DefaultClusterIDSize and DefaultClusterSecretSize) and
// the secretbox key are 32 bytes each.
const (
	clusterIDSize     = 32
	clusterSecretSize = 32
	secretboxKeySize  = 32
)

// Generate makes a new bundle with the key kinds and sizes `talosctl gen
// secrets` uses for Talos v1.7 and later:
//
//   - etcd, Kubernetes and aggregator CAs: ECDSA P-256, signed with
//     ECDSA-SHA256; subject O=etcd, O=kubernetes, and an empty subject for
//     the aggregator (Talos asks for CN=front-proxy, but its CA helper keeps
//     only organizations);
//   - Talos API (OS) CA: Ed25519, subject O=talos;
//   - service-account key: RSA 4096 (PKCS #1);
//   - every CA: self-signed, CA:TRUE, key usage cert sign and digital
//     signature, extended key usage server and client auth, a random
//     128-bit serial, valid from now for CAValidityTime;
//   - bootstrap and trustd tokens: [a-z0-9]{6}.[a-z0-9]{16};
//   - cluster ID and secret, secretbox key: base64 of 32 random bytes.
//
// rand supplies the tokens, secrets, serial numbers and the Ed25519 key;
// since Go 1.26 RSA and ECDSA key generation draw from Go's own secure
// source whatever reader is passed. Pass crypto/rand.Reader.
func Generate(rand io.Reader, now time.Time) (*Bundle, error) {
	b := &Bundle{}
	var err error
	if b.Cluster.ID, err = random64(rand, clusterIDSize); err != nil {
		return nil, err
	}
	if b.Cluster.Secret, err = random64(rand, clusterSecretSize); err != nil {
		return nil, err
	}
	if b.Secrets.BootstrapToken, err = newToken(rand); err != nil {
		return nil, err
	}
	if b.Secrets.SecretboxEncryptionSecret, err = random64(rand, secretboxKeySize); err != nil {
		return nil, err
	}
	if b.TrustdInfo.Token, err = newToken(rand); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		dst *CertAndKey
		org string
	}{{&b.Certs.Etcd, "etcd"}, {&b.Certs.K8s, "kubernetes"}, {&b.Certs.K8sAggregator, ""}} {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand)
		if err != nil {
			return nil, fmt.Errorf("secrets: generate ECDSA key: %w", err)
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("secrets: encode ECDSA key: %w", err)
		}
		if *c.dst, err = newCA(rand, now, c.org, k, pemEC, der); err != nil {
			return nil, err
		}
	}
	_, edKey, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("secrets: generate Ed25519 key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		return nil, fmt.Errorf("secrets: encode Ed25519 key: %w", err)
	}
	if b.Certs.OS, err = newCA(rand, now, "talos", edKey, pemEd25519, der); err != nil {
		return nil, err
	}
	sa, err := rsa.GenerateKey(rand, ServiceAccountKeyBits)
	if err != nil {
		return nil, fmt.Errorf("secrets: generate RSA key: %w", err)
	}
	b.Certs.K8sServiceAccount.Key = pem.EncodeToMemory(&pem.Block{Type: pemRSA, Bytes: x509.MarshalPKCS1PrivateKey(sa)})
	return b, nil
}

// newCA self-signs a CA certificate for key, whose DER form (of PEM type
// keyType) goes beside it.
func newCA(rand io.Reader, now time.Time, org string, key crypto.Signer, keyType string, keyDER []byte) (CertAndKey, error) {
	// A random serial below 2^128, as Talos' CAs have.
	serial, err := cryptorand.Int(rand, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return CertAndKey{}, fmt.Errorf("secrets: read random: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now,
		NotAfter:              now.Add(CAValidityTime),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if org != "" {
		tmpl.Subject = pkix.Name{Organization: []string{org}}
	}
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		tmpl.SignatureAlgorithm = x509.ECDSAWithSHA256
	}
	der, err := x509.CreateCertificate(rand, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return CertAndKey{}, fmt.Errorf("secrets: sign CA certificate: %w", err)
	}
	return CertAndKey{
		Crt: pem.EncodeToMemory(&pem.Block{Type: pemCert, Bytes: der}),
		Key: pem.EncodeToMemory(&pem.Block{Type: keyType, Bytes: keyDER}),
	}, nil
}

// tokenChars are a bootstrap token's characters.
const tokenChars = "0123456789abcdefghijklmnopqrstuvwxyz"

// newToken returns a bootstrap token, [a-z0-9]{6}.[a-z0-9]{16}, each
// character uniform over tokenChars.
func newToken(rand io.Reader) (string, error) {
	b := make([]byte, 0, 23)
	for len(b) < 23 {
		if len(b) == 6 {
			b = append(b, '.')
			continue
		}
		var c [1]byte
		if _, err := io.ReadFull(rand, c[:]); err != nil {
			return "", fmt.Errorf("secrets: read random: %w", err)
		}
		// 252 is the largest multiple of 36 below 256: bytes above it are
		// drawn again, so that every character is equally likely.
		if c[0] >= 252 {
			continue
		}
		b = append(b, tokenChars[int(c[0])%len(tokenChars)])
	}
	return string(b), nil
}

func random64(rand io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", fmt.Errorf("secrets: read random: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
