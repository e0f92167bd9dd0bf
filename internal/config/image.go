package config

import (
	"fmt"
	"strings"

	"github.com/tinderbox-boot/tinderbox/internal/factory"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Image is one cache.allow entry: a Talos image the boot HTTP server may
// serve and fetch although no profile names it. It is written
// "SCHEMATIC-ID/VERSION" (both architectures) or
// "SCHEMATIC-ID/VERSION/ARCH".
type Image struct {
	// Schematic is the 64 lower-case hex digits of an Image Factory
	// schematic ID.
	Schematic string
	// Version is the Talos version, always with its leading v.
	Version string
	// Arch is amd64 or arm64, or empty for both.
	Arch machine.Arch
}

// ParseImage reads an Image, checking each part as the asset route does
// (the schematic ID, the version, the architecture); the version is
// returned with its leading v.
func ParseImage(s string) (Image, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return Image{}, fmt.Errorf("%q: want SCHEMATIC-ID/VERSION or SCHEMATIC-ID/VERSION/ARCH", s)
	}
	if err := factory.CheckSchematicID(parts[0]); err != nil {
		return Image{}, fmt.Errorf("%q: %w", s, err)
	}
	v, err := factory.NormalizeVersion(parts[1])
	if err != nil {
		return Image{}, fmt.Errorf("%q: %w", s, err)
	}
	im := Image{Schematic: parts[0], Version: v}
	if len(parts) == 3 {
		im.Arch = machine.Arch(parts[2])
		if err := factory.CheckArch(im.Arch); err != nil {
			return Image{}, fmt.Errorf("%q: %w", s, err)
		}
	}
	return im, nil
}

// UnmarshalText reads the image from the config (ParseImage).
func (im *Image) UnmarshalText(b []byte) error {
	v, err := ParseImage(string(b))
	if err != nil {
		return err
	}
	*im = v
	return nil
}

// MarshalText writes the image as the config spells it.
func (im Image) MarshalText() ([]byte, error) { return []byte(im.String()), nil }

func (im Image) String() string {
	s := im.Schematic + "/" + im.Version
	if im.Arch != "" {
		s += "/" + string(im.Arch)
	}
	return s
}
