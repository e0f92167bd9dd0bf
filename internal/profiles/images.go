package profiles

import (
	"slices"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Image is a Talos image a set names: what a cache prefetch fetches.
type Image struct {
	// SchematicID is the resolved 64-hex schematic ID.
	SchematicID string
	// Version is the Talos version, with its leading "v".
	Version string
	// Arch is never empty: amd64 stands in for a profile that names none
	// (a machine's own architecture is only known when it boots).
	Arch machine.Arch
}

// Images returns every Talos image the set names, each once: each
// machine's, by MAC, then the maintenance image of defaults.yaml. A Talos
// image without a version or a schematic names nothing.
func (s *Set) Images() []Image {
	var out []Image
	add := func(t Talos) {
		if t.Version == "" || t.SchematicID == "" {
			return
		}
		im := Image{SchematicID: t.SchematicID, Version: t.Version, Arch: t.Arch}
		if im.Arch == "" {
			im.Arch = machine.ArchAMD64
		}
		if !slices.Contains(out, im) {
			out = append(out, im)
		}
	}
	for _, p := range s.Machines() {
		add(p.Talos)
	}
	add(s.maintenance)
	return out
}
