package factory

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Arches are the architectures tinderbox netboots.
var Arches = []machine.Arch{machine.ArchAMD64, machine.ArchARM64}

// The kinds of PXE file the factory serves for one architecture
// (GET /image/{id}/{version}/{path} in siderolabs/image-factory's
// docs/api.md).
const (
	KindKernel    = "kernel"
	KindInitramfs = "initramfs"
	KindCmdline   = "cmdline"
)

// Kernel, Initramfs and Cmdline name the factory's PXE files for arch.
func Kernel(arch machine.Arch) string    { return "kernel-" + string(arch) }
func Initramfs(arch machine.Arch) string { return "initramfs-" + string(arch) + ".xz" }
func Cmdline(arch machine.Arch) string   { return "cmdline-metal-" + string(arch) }

// Files returns the three PXE files for arch: kernel, initramfs, cmdline.
func Files(arch machine.Arch) []string {
	return []string{Kernel(arch), Initramfs(arch), Cmdline(arch)}
}

// FileKind says which kind of file name is (KindKernel, KindInitramfs or
// KindCmdline) and for which architecture; ok is false for any name outside
// the fixed set.
func FileKind(name string) (kind string, arch machine.Arch, ok bool) {
	for _, a := range Arches {
		switch name {
		case Kernel(a):
			return KindKernel, a, true
		case Initramfs(a):
			return KindInitramfs, a, true
		case Cmdline(a):
			return KindCmdline, a, true
		}
	}
	return "", "", false
}

var (
	schematicRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// versionRE is a Talos release: MAJOR.MINOR.PATCH with an optional
	// leading v and an optional pre-release (v1.13.0-beta.1).
	versionRE = regexp.MustCompile(`^v?(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})(-[0-9A-Za-z]+(\.[0-9A-Za-z]+)*)?$`)
)

// maxVersionLen bounds a version string before the regexp sees it.
const maxVersionLen = 64

// CheckSchematicID returns an error unless id is 64 lower-case hex digits.
func CheckSchematicID(id string) error {
	if !schematicRE.MatchString(id) {
		return fmt.Errorf("schematic ID %q is not 64 lower-case hex digits", clip(id))
	}
	return nil
}

// NormalizeVersion checks a Talos version and returns it with the leading
// v that the factory's installer tags and tinderbox's cache use: the factory
// accepts both spellings, so "1.12.7" and "v1.12.7" name the same release.
func NormalizeVersion(v string) (string, error) {
	if len(v) > maxVersionLen || !versionRE.MatchString(v) {
		return "", fmt.Errorf("version %q is not a Talos version such as v1.12.7", clip(v))
	}
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	return v, nil
}

// CheckFile returns an error unless name is one of the PXE files the cache
// serves.
func CheckFile(name string) error {
	if _, _, ok := FileKind(name); !ok {
		var all []string
		for _, a := range Arches {
			all = append(all, Files(a)...)
		}
		return fmt.Errorf("file %q is not one of %s", clip(name), strings.Join(all, ", "))
	}
	return nil
}

// CheckArch returns an error unless arch is one tinderbox netboots.
func CheckArch(arch machine.Arch) error {
	if !slices.Contains(Arches, arch) {
		return fmt.Errorf("architecture %q is not one of amd64, arm64", clip(string(arch)))
	}
	return nil
}

// clip shortens a bad value for an error message.
func clip(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
