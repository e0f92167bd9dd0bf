package cache

import "github.com/tinderbox-boot/tinderbox/internal/profiles"

// TargetsOf returns the target of each image the profiles name
// (profiles.Set.Images), in order: what a prefetch "of everything the
// profiles reference" fetches.
func TargetsOf(images []profiles.Image) []Target {
	out := make([]Target, 0, len(images))
	for _, im := range images {
		out = append(out, Target{Schematic: im.SchematicID, Version: im.Version, Arch: im.Arch})
	}
	return out
}
