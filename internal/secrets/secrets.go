// Package secrets reads, writes and generates a Talos cluster's secrets
// bundle (docs/profiles.md, "Secrets bundle"): the file `talosctl gen
// secrets` writes and `talosctl gen config --with-secrets` reads, holding
// the cluster's identity, join tokens, encryption secret and the five CAs
// (etcd, Kubernetes, Kubernetes aggregator, service-account key, Talos
// API). Fills says which of them go where in a machine config of each
// type, so base configs need not carry any.
//
// The format and the key kinds follow siderolabs/talos
// pkg/machinery/config/generate/secrets (secrets.go, bundle.go, ca.go,
// utils.go), which uses the helpers of siderolabs/crypto x509/x509.go and
// x509/options.go; the mapping into configs follows
// pkg/machinery/config/generate/init.go, controlplane.go and worker.go.
// Only Go's standard library is used here.
package secrets

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tinderbox-boot/tinderbox/internal/problem"
)

// Bundle is a cluster's secrets bundle. Every field is required except
// the two encryption secrets, of which exactly one is set.
type Bundle struct {
	Cluster    Cluster
	Secrets    Secrets
	TrustdInfo TrustdInfo
	Certs      Certs
}

// Cluster is the cluster's identity for member discovery: cluster.id and
// cluster.secret, base64 of 32 random bytes each.
type Cluster struct {
	ID, Secret string
}

// Secrets are Kubernetes' shared secrets. BootstrapToken is the kubelet
// bootstrap token, [a-z0-9]{6}.[a-z0-9]{16}. SecretboxEncryptionSecret
// (Talos v1.3 and later) or AESCBCEncryptionSecret (earlier) is the key
// kube-apiserver encrypts Secrets at rest with: base64 of 32 random bytes.
type Secrets struct {
	BootstrapToken            string
	AESCBCEncryptionSecret    string
	SecretboxEncryptionSecret string
}

// TrustdInfo holds the token machines use to ask trustd for certificates
// (machine.token), of the bootstrap token's form when Talos generates it.
type TrustdInfo struct {
	Token string
}

// Certs are the cluster's CAs and the service-account signing key.
type Certs struct {
	// Etcd is etcd's CA (cluster.etcd.ca).
	Etcd CertAndKey
	// K8s is the Kubernetes CA (cluster.ca).
	K8s CertAndKey
	// K8sAggregator is the front-proxy CA (cluster.aggregatorCA).
	K8sAggregator CertAndKey
	// K8sServiceAccount is the key service-account tokens are signed with
	// (cluster.serviceAccount).
	K8sServiceAccount Key
	// OS is the Talos API CA (machine.ca).
	OS CertAndKey
}

// CertAndKey is a CA: its certificate and private key, each PEM. In the
// file they are base64 of the PEM text.
type CertAndKey struct {
	Crt, Key []byte
}

// Key is a PEM private key, base64 of the PEM text in the file.
type Key struct {
	Key []byte
}

// Error is one problem with a bundle: the line of the file (0 when not
// known), the field at fault in the file's spelling (certs.k8s.key) and
// what is wrong. Parse returns these, joined.
type Error struct {
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	s := e.Msg
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Line > 0 {
		s = "line " + strconv.Itoa(e.Line) + ": " + s
	}
	return s
}

// The bundle's keys, as talosctl writes them: lower case, no separators.
const (
	fClusterID      = "cluster.id"
	fClusterSecret  = "cluster.secret"
	fBootstrapToken = "secrets.bootstraptoken"
	fAESCBC         = "secrets.aescbcencryptionsecret"
	fSecretbox      = "secrets.secretboxencryptionsecret"
	fTrustdToken    = "trustdinfo.token"
	fEtcd           = "certs.etcd"
	fK8s            = "certs.k8s"
	fAggregator     = "certs.k8saggregator"
	fServiceAccount = "certs.k8sserviceaccount"
	fOS             = "certs.os"
)

// sections are the maps of the file, in talosctl's order, with their keys.
var sections = []struct {
	name string
	keys []string
}{
	{"cluster", []string{"id", "secret"}},
	{"secrets", []string{"bootstraptoken", "aescbcencryptionsecret", "secretboxencryptionsecret"}},
	{"trustdinfo", []string{"token"}},
	{"certs", []string{"etcd", "k8s", "k8saggregator", "k8sserviceaccount", "os"}},
}

// tokenRE is a Kubernetes bootstrap token, the form kubelet and
// kube-apiserver accept (and Talos generates for both tokens).
var tokenRE = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)

// Parse reads a bundle in the format `talosctl gen secrets` writes. It is
// strict: an unknown or repeated key, a missing field, a value that is
// not base64, a PEM block that does not parse, a private key that does not
// belong to its certificate or a certificate that is not a CA is an error.
// The error joins every *Error found; no Bundle comes with it.
func Parse(data []byte) (*Bundle, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := problem.YAML(err)
		return nil, &Error{Line: line, Msg: "YAML: " + msg}
	}
	if len(doc.Content) == 0 {
		return nil, &Error{Msg: "empty file: want the output of `tinderbox secrets gen` or `talosctl gen secrets`"}
	}
	p := &parser{values: map[string]string{}, lines: map[string]int{}}
	p.walk(doc.Content[0])
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	b := &Bundle{}
	b.Cluster.ID = p.base64(fClusterID, 1)
	b.Cluster.Secret = p.base64(fClusterSecret, 1)
	b.Secrets.BootstrapToken = p.token(fBootstrapToken)
	b.TrustdInfo.Token = p.required(fTrustdToken)
	b.Secrets.AESCBCEncryptionSecret, b.Secrets.SecretboxEncryptionSecret = p.encryption()
	b.Certs.Etcd = p.ca(fEtcd)
	b.Certs.K8s = p.ca(fK8s)
	b.Certs.K8sAggregator = p.ca(fAggregator)
	b.Certs.K8sServiceAccount = Key{Key: p.key(fServiceAccount + ".key")}
	b.Certs.OS = p.ca(fOS)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return b, nil
}

// parser gathers a bundle's scalar values by field, with their lines, and
// the problems found.
type parser struct {
	values map[string]string
	lines  map[string]int
	errs   []error
}

func (p *parser) add(line int, field, format string, args ...any) {
	p.errs = append(p.errs, &Error{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// walk checks the file's shape and records its values.
func (p *parser) walk(root *yaml.Node) {
	if root.Kind != yaml.MappingNode {
		p.add(root.Line, "", "want a map with cluster, secrets, trustdinfo and certs")
		return
	}
	names := make([]string, len(sections))
	for i, s := range sections {
		names[i] = s.name
	}
	p.mapping(root, "", names, func(name string, n *yaml.Node) {
		for _, s := range sections {
			if s.name != name {
				continue
			}
			if name != "certs" {
				p.scalars(n, name, s.keys)
				continue
			}
			p.mapping(n, name, s.keys, func(ca string, cn *yaml.Node) {
				keys := []string{"crt", "key"}
				if ca == "k8sserviceaccount" {
					keys = []string{"key"}
				}
				p.scalars(cn, name+"."+ca, keys)
			})
		}
	})
}

// mapping calls each for every key of n, which must be a map holding only
// the keys allowed, each once.
func (p *parser) mapping(n *yaml.Node, field string, allowed []string, each func(string, *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, field, "want a map with %s", list(allowed))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := k.Value
		if field != "" {
			f = field + "." + k.Value
		}
		switch {
		case k.Kind != yaml.ScalarNode || !slices.Contains(allowed, k.Value):
			where := "the file"
			if field != "" {
				where = field
			}
			p.add(k.Line, f, "unknown key (%s has %s)", where, list(allowed))
		case seen[k.Value]:
			p.add(k.Line, f, "set twice")
		default:
			seen[k.Value] = true
			p.lines[f] = k.Line
			each(k.Value, v)
		}
	}
}

// scalars records the string values of a map of strings.
func (p *parser) scalars(n *yaml.Node, field string, allowed []string) {
	p.mapping(n, field, allowed, func(key string, v *yaml.Node) {
		f := field + "." + key
		if v.Kind != yaml.ScalarNode || (v.ShortTag() != "!!str" && v.ShortTag() != "!!null") {
			p.add(v.Line, f, "want a string")
			return
		}
		p.values[f] = v.Value
	})
}

// line is the line of field, or of the nearest section holding it.
func (p *parser) line(field string) int {
	for f := field; f != ""; {
		if l, ok := p.lines[f]; ok {
			return l
		}
		i := strings.LastIndexByte(f, '.')
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 0
}

func (p *parser) required(field string) string {
	v := p.values[field]
	if v == "" {
		p.add(p.line(field), field, "missing")
	}
	return v
}

// base64 returns the value of field, which must be base64 of at least
// minLen bytes. cluster.id may also be URL-safe base64: Talos wrote it so
// before v1.7.
func (p *parser) base64(field string, minLen int) string {
	v := p.required(field)
	if v == "" {
		return ""
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil && field == fClusterID {
		b, err = base64.URLEncoding.DecodeString(v)
	}
	switch {
	case err != nil:
		p.add(p.line(field), field, "not base64: %v", err)
	case len(b) < minLen:
		p.add(p.line(field), field, "decodes to %d bytes, want at least %d", len(b), minLen)
	}
	return v
}

func (p *parser) token(field string) string {
	v := p.required(field)
	if v != "" && !tokenRE.MatchString(v) {
		p.add(p.line(field), field, "not a bootstrap token: want 6 and 16 characters of [a-z0-9] joined by a dot (abcdef.0123456789abcdef)")
	}
	return v
}

// encryption returns the AES-CBC and secretbox secrets, exactly one of
// which must be set: secretbox takes a 32-byte key, AES-CBC one of 16, 24
// or 32 bytes (kube-apiserver's EncryptionConfiguration).
func (p *parser) encryption() (aescbc, secretbox string) {
	aescbc, secretbox = p.values[fAESCBC], p.values[fSecretbox]
	switch {
	case aescbc == "" && secretbox == "":
		p.add(p.line("secrets"), "secrets", "want secretboxencryptionsecret (or, for Talos before v1.3, aescbcencryptionsecret)")
	case aescbc != "" && secretbox != "":
		p.add(p.line(fAESCBC), fAESCBC, "set beside secretboxencryptionsecret: a bundle holds one of the two")
	case secretbox != "":
		p.keyBytes(fSecretbox, secretbox, 32)
	default:
		p.keyBytes(fAESCBC, aescbc, 16, 24, 32)
	}
	return aescbc, secretbox
}

func (p *parser) keyBytes(field, v string, sizes ...int) {
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		p.add(p.line(field), field, "not base64: %v", err)
		return
	}
	if !slices.Contains(sizes, len(b)) {
		p.add(p.line(field), field, "decodes to %d bytes, want %s", len(b), list(sizes))
	}
}

// pemBlock decodes field's base64 into one PEM block of one of types.
func (p *parser) pemBlock(field string, types ...string) ([]byte, *pem.Block) {
	v := p.required(field)
	if v == "" {
		return nil, nil
	}
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		p.add(p.line(field), field, "not base64 (of PEM text): %v", err)
		return nil, nil
	}
	block, rest := pem.Decode(raw)
	if block == nil {
		p.add(p.line(field), field, "the base64 does not hold a PEM block")
		return nil, nil
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		p.add(p.line(field), field, "text after the PEM block")
		return nil, nil
	}
	if !slices.Contains(types, block.Type) {
		p.add(p.line(field), field, "PEM block %q, want %s", block.Type, list(types))
		return nil, nil
	}
	return raw, block
}

// The PEM types Talos writes and reads for private keys (siderolabs/crypto
// x509: SEC 1 for ECDSA, PKCS #8 for Ed25519, PKCS #1 for RSA). Talos
// refuses any other type, so Parse does too.
const (
	pemEC      = "EC PRIVATE KEY"
	pemEd25519 = "ED25519 PRIVATE KEY"
	pemRSA     = "RSA PRIVATE KEY"
	pemCert    = "CERTIFICATE"
)

// key returns field's private key PEM, checked.
func (p *parser) key(field string) []byte {
	raw, _ := p.parseKey(field)
	return raw
}

func (p *parser) parseKey(field string) ([]byte, crypto.Signer) {
	raw, block := p.pemBlock(field, pemEC, pemEd25519, pemRSA)
	if block == nil {
		return nil, nil
	}
	k, err := parsePrivateKey(block)
	if err != nil {
		p.add(p.line(field), field, "%s: %v", block.Type, err)
		return nil, nil
	}
	return raw, k
}

func parsePrivateKey(block *pem.Block) (crypto.Signer, error) {
	switch block.Type {
	case pemEC:
		return x509.ParseECPrivateKey(block.Bytes)
	case pemRSA:
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		ed, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("holds a %T, not an Ed25519 key", k)
		}
		return ed, nil
	}
}

// ca returns the CA under field: a CA certificate and its private key.
func (p *parser) ca(field string) CertAndKey {
	crtRaw, block := p.pemBlock(field+".crt", pemCert)
	keyRaw, key := p.parseKey(field + ".key")
	var crt *x509.Certificate
	if block != nil {
		var err error
		if crt, err = x509.ParseCertificate(block.Bytes); err != nil {
			p.add(p.line(field+".crt"), field+".crt", "%v", err)
		} else if !crt.IsCA {
			p.add(p.line(field+".crt"), field+".crt", "not a CA certificate (no basic constraints CA:TRUE)")
		}
	}
	if crt != nil && key != nil && !samePublic(crt.PublicKey, key.Public()) {
		p.add(p.line(field+".key"), field+".key", "does not belong to %s.crt (their public keys differ)", field)
	}
	return CertAndKey{Crt: crtRaw, Key: keyRaw}
}

func samePublic(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	switch a.(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
		return a.(equaler).Equal(b)
	}
	return false
}

// Marshal writes the bundle as `talosctl gen secrets` does: the same keys
// in the same order, four-space indents, certificates and keys as base64
// of their PEM text. Parse reads it back to an equal Bundle.
func (b *Bundle) Marshal() ([]byte, error) {
	enc64 := base64.StdEncoding.EncodeToString
	pair := func(c CertAndKey) file64 { return file64{Crt: enc64(c.Crt), Key: enc64(c.Key)} }
	f := file{
		Cluster: fileCluster{ID: b.Cluster.ID, Secret: b.Cluster.Secret},
		Secrets: fileSecrets{
			BootstrapToken:            b.Secrets.BootstrapToken,
			AESCBCEncryptionSecret:    b.Secrets.AESCBCEncryptionSecret,
			SecretboxEncryptionSecret: b.Secrets.SecretboxEncryptionSecret,
		},
		TrustdInfo: fileTrustd{Token: b.TrustdInfo.Token},
		Certs: fileCerts{
			Etcd:              pair(b.Certs.Etcd),
			K8s:               pair(b.Certs.K8s),
			K8sAggregator:     pair(b.Certs.K8sAggregator),
			K8sServiceAccount: fileKey{Key: enc64(b.Certs.K8sServiceAccount.Key)},
			OS:                pair(b.Certs.OS),
		},
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(4)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("secrets: marshal: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("secrets: marshal: %w", err)
	}
	return out.Bytes(), nil
}

// file is the bundle's YAML shape, for Marshal.
type file struct {
	Cluster    fileCluster `yaml:"cluster"`
	Secrets    fileSecrets `yaml:"secrets"`
	TrustdInfo fileTrustd  `yaml:"trustdinfo"`
	Certs      fileCerts   `yaml:"certs"`
}

type fileCluster struct {
	ID     string `yaml:"id"`
	Secret string `yaml:"secret"`
}

type fileSecrets struct {
	BootstrapToken            string `yaml:"bootstraptoken"`
	AESCBCEncryptionSecret    string `yaml:"aescbcencryptionsecret,omitempty"`
	SecretboxEncryptionSecret string `yaml:"secretboxencryptionsecret,omitempty"`
}

type fileTrustd struct {
	Token string `yaml:"token"`
}

type fileCerts struct {
	Etcd              file64  `yaml:"etcd"`
	K8s               file64  `yaml:"k8s"`
	K8sAggregator     file64  `yaml:"k8saggregator"`
	K8sServiceAccount fileKey `yaml:"k8sserviceaccount"`
	OS                file64  `yaml:"os"`
}

type file64 struct {
	Crt string `yaml:"crt"`
	Key string `yaml:"key"`
}

type fileKey struct {
	Key string `yaml:"key"`
}

// list spells values as "a, b or c".
func list[T any](values []T) string {
	var b bytes.Buffer
	for i, v := range values {
		switch {
		case i == 0:
		case i == len(values)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		fmt.Fprint(&b, v)
	}
	return b.String()
}
