// Package served keeps what tinderbox last served each machine at
// /config/{mac} in a form safe to store, and tells how the config the
// machine would get now differs from it (`tinderbox diff`, GET
// /api/v1/machines/{mac}/config/diff).
//
// What is kept is the served config with its secrets masked: each secret
// value is replaced by a marker holding a short keyed hash of the value,
// so a changed secret still shows as a changed line, while the stored
// bytes carry no key material. The fields that hold secrets are those of
// Talos' machine config documents (Talos' published config schemas,
// v1.10 to v1.13); see secretFields.
package served

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"

	udiff "github.com/aymanbagabas/go-udiff"
	"go.yaml.in/yaml/v3"
)

// MaxBytes bounds the config kept per machine: a Talos config is a few
// tens of kilobytes, so a larger one (inline manifests, say) keeps only
// its hash, and a note says so.
const MaxBytes = 1 << 20

// secretFields are the machine-config fields whose scalar values are
// secrets, by the name Talos gives them in its config schemas:
//   - key: private keys of the CAs and the service account
//     (machine.ca.key, cluster.ca.key, cluster.aggregatorCA.key,
//     cluster.etcd.ca.key, cluster.serviceAccount.key, a registry's
//     tls.clientIdentity.key);
//   - token: machine.token (trustd join) and cluster.token (bootstrap);
//   - secret, secretboxEncryptionSecret, aescbcEncryptionSecret: the
//     cluster's discovery and at-rest encryption secrets;
//   - privateKey, presharedKey: WireGuard;
//   - password, auth, identityToken: a registry's credentials;
//   - passphrase: a static disk-encryption key;
//   - apiToken, uniqueToken: tokens of other documents.
//
// Certificates (crt) and public keys are kept as they are: they are
// public, and a changed certificate is worth seeing whole.
var secretFields = map[string]bool{
	"key": true, "token": true, "secret": true,
	"secretboxEncryptionSecret": true, "aescbcEncryptionSecret": true,
	"privateKey": true, "presharedKey": true,
	"password": true, "auth": true, "identityToken": true,
	"passphrase": true, "apiToken": true, "uniqueToken": true,
}

// SecretField says whether a machine-config field of this name holds a
// secret (secretFields), for callers that show single values.
func SecretField(name string) bool { return secretFields[name] }

// joinToken is a SideroLink join token inside a URL
// (siderolink.api=https://…?jointoken=…), in a value of any field.
var joinToken = regexp.MustCompile(`(?i)(jointoken=)[^&\s"']+`)

// Tag returns a short keyed hash of a secret value; Mask puts it in the
// marker. *state.Store's MaskTag is one.
type Tag func(value string) string

// Marker is what a masked value is replaced by: "<masked:TAG>", or
// "<masked>" for an empty tag.
func Marker(tag string) string {
	if tag == "" {
		return "<masked>"
	}
	return "<masked:" + tag + ">"
}

// NoTag is the Tag for showing a config, not comparing it: every secret
// becomes "<masked>".
func NoTag(string) string { return "" }

// Mask returns cfg, a rendered machine config, with every secret value
// replaced by its Marker. The documents are written back as render
// writes them (four-space indent, comments kept), so two configs masked
// by the same Tag compare line by line. A config that is not YAML is an
// error.
func Mask(cfg []byte, tag Tag) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(cfg))
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(4)
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("served: mask: %w", err)
		}
		maskNode(&doc, tag)
		if err := enc.Encode(&doc); err != nil {
			return nil, fmt.Errorf("served: mask: %w", err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("served: mask: %w", err)
	}
	return out.Bytes(), nil
}

func maskNode(n *yaml.Node, tag Tag) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if secretFields[k.Value] {
				maskValue(v, tag)
				continue
			}
			maskNode(v, tag)
		}
	case yaml.ScalarNode:
		if joinToken.MatchString(n.Value) {
			n.Value = joinToken.ReplaceAllStringFunc(n.Value, func(m string) string {
				name, val := m[:len("jointoken=")], m[len("jointoken="):]
				return name + Marker(tag(val))
			})
		}
	default:
		for _, c := range n.Content {
			maskNode(c, tag)
		}
	}
}

// maskValue masks the value of a secret field: a scalar, or each scalar
// of a list; a map (a registry's auth: {username, password}) is searched
// for secret fields like any other.
func maskValue(v *yaml.Node, tag Tag) {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Value == "" || v.Tag == "!!null" {
			return
		}
		v.Value, v.Style, v.Tag = Marker(tag(v.Value)), 0, "!!str"
	case yaml.SequenceNode:
		for _, c := range v.Content {
			maskValue(c, tag)
		}
	default:
		maskNode(v, tag)
	}
}

// Hash is the hex SHA-256 of a config's bytes as served.
func Hash(cfg []byte) string {
	sum := sha256.Sum256(cfg)
	return hex.EncodeToString(sum[:])
}

// Snapshot is what is kept of a config: its hash, and its masked bytes,
// or a note saying why they are not kept.
type Snapshot struct {
	Hash   string
	Size   int
	Masked []byte
	Note   string
}

// Take returns the snapshot of cfg: a config over MaxBytes (before or
// after masking) keeps only its hash, and so does one Mask refuses.
func Take(cfg []byte, tag Tag) Snapshot {
	s := Snapshot{Hash: Hash(cfg), Size: len(cfg)}
	if len(cfg) > MaxBytes {
		s.Note = fmt.Sprintf("the config is %d bytes, over the %d kept: only its hash is kept", len(cfg), MaxBytes)
		return s
	}
	m, err := Mask(cfg, tag)
	switch {
	case err != nil:
		s.Note = "the config does not read as YAML, so it cannot be masked: only its hash is kept"
	case len(m) > MaxBytes:
		s.Note = fmt.Sprintf("the masked config is %d bytes, over the %d kept: only its hash is kept", len(m), MaxBytes)
	default:
		s.Masked = m
	}
	return s
}

// Diff returns the unified diff (three lines of context) from old to new,
// labelled oldLabel and newLabel; "" when they are equal.
func Diff(oldLabel, newLabel string, old, new []byte) string {
	return udiff.Unified(oldLabel, newLabel, string(old), string(new))
}
