package machineview

import "github.com/tinderbox-boot/tinderbox/internal/served"

// Masked stands in for a config that cannot be shown: one that is not YAML.
const Masked = "••••••••"

// MaskSecrets returns a rendered config for display, every secret value
// replaced by "<masked>": the fields served.Mask masks (private keys,
// tokens, encryption secrets, credentials), the same rule the stored
// configs and their diff follow. Certificates and certSANs are shown. A
// config that is not YAML is shown as Masked.
func MaskSecrets(cfg []byte) string {
	out, err := served.Mask(cfg, served.NoTag)
	if err != nil {
		return Masked
	}
	return string(out)
}
