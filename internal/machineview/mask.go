package machineview

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// secretWords mark a machine-config key whose value is a secret: Talos
// keeps its CA keys, certificates, join tokens and encryption secrets
// under keys such as key, crt, token, secret, aescbcEncryptionSecret.
var secretWords = []string{"key", "crt", "cert", "token", "secret", "password"}

// Masked stands in for a secret value.
const Masked = "••••••••"

// MaskSecrets returns a rendered config with every secret value replaced
// by Masked; text that is not YAML is masked whole.
func MaskSecrets(cfg []byte) string {
	dec := yaml.NewDecoder(bytes.NewReader(cfg))
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return Masked
		}
		maskNode(&doc, false)
		if err := enc.Encode(&doc); err != nil {
			return Masked
		}
	}
	_ = enc.Close()
	return out.String()
}

func maskNode(n *yaml.Node, secret bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		if secret && n.Value != "" {
			n.Value, n.Style, n.Tag = Masked, 0, "!!str"
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			maskNode(n.Content[i+1], secret || isSecretKey(n.Content[i].Value))
		}
	default:
		for _, c := range n.Content {
			maskNode(c, secret)
		}
	}
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}
