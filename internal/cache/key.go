package cache

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/factory"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Key names one cached asset: a factory file for a schematic and version.
type Key struct {
	Schematic string `json:"schematic"`
	// Version always has its leading v (NewKey adds it).
	Version string `json:"version"`
	File    string `json:"file"`
}

// NewKey validates the three parts of an asset's name — the schematic ID (64
// hex), the Talos version (v?MAJOR.MINOR.PATCH[-pre]) and the file (one of
// the fixed PXE files) — and returns the key, with the version normalised to
// its v form. Nothing else reaches the disk or the network.
func NewKey(schematic, version, file string) (Key, error) {
	if err := factory.CheckSchematicID(schematic); err != nil {
		return Key{}, err
	}
	v, err := factory.NormalizeVersion(version)
	if err != nil {
		return Key{}, err
	}
	if err := factory.CheckFile(file); err != nil {
		return Key{}, err
	}
	return Key{Schematic: schematic, Version: v, File: file}, nil
}

// String is the key as the asset URL spells it: schematic/version/file.
func (k Key) String() string { return k.Schematic + "/" + k.Version + "/" + k.File }

// rel is the data file's path under the cache directory.
func (k Key) rel() string { return filepath.Join(k.Schematic, k.Version, k.File) }

// Entry describes a cached asset. The sidecar record next to each data file
// holds it.
type Entry struct {
	Key
	Size int64 `json:"size"`
	// SHA256 is the hex digest of the file, computed while it was fetched;
	// it is the asset's ETag.
	SHA256   string    `json:"sha256"`
	Fetched  time.Time `json:"fetched"`
	LastUsed time.Time `json:"lastUsed"`
}

// Target is one (schematic, version, architecture) whose three PXE files
// Prefetch fetches.
type Target struct {
	Schematic, Version string
	Arch               machine.Arch
}

// Keys returns the target's kernel, initramfs and command-line keys.
func (t Target) Keys() ([]Key, error) {
	if err := factory.CheckArch(t.Arch); err != nil {
		return nil, err
	}
	var keys []Key
	for _, f := range factory.Files(t.Arch) {
		k, err := NewKey(t.Schematic, t.Version, f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func (t Target) String() string {
	return fmt.Sprintf("%s/%s/%s", t.Schematic, t.Version, t.Arch)
}
