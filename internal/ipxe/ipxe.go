// Package ipxe knows the iPXE binaries tinderbox hands to PXE firmware and
// serves from ipxe.dir (Debian/Ubuntu package "ipxe" installs them in
// /usr/lib/ipxe).
//
// Root is the one place a client's file name meets the disk: it opens only
// regular files inside ipxe.dir, for the TFTP server and for Handler, which
// serves them over HTTP at /boot/{file} to UEFI HTTP boot clients.
package ipxe

import (
	"os"
	"path/filepath"
)

// The boot files handed out by architecture (docs/protocol.md, "Client
// architecture (option 93)").
const (
	// BIOS is iPXE's UNDI loader for legacy BIOS PXE ROMs.
	BIOS = "undionly.kpxe"
	// EFIx64 is iPXE for UEFI x86-64 with iPXE's own NIC drivers.
	EFIx64 = "ipxe.efi"
	// SNPOnly is iPXE for UEFI x86-64 that drives the NIC through the
	// firmware's Simple Network Protocol instead of its own drivers: the
	// UEFI counterpart of undionly.kpxe, and what x86-64 UEFI firmware is
	// handed by default (ipxe.efiX64; docs/protocol.md, "Which iPXE for
	// UEFI").
	SNPOnly = "snponly.efi"
	// EFIArm64 is iPXE for UEFI arm64. Debian 12's ipxe package does not
	// ship it; Debian 13's does, and tinderbox's .deb and image carry that
	// build (docs/packaging.md). Elsewhere an operator puts one in ipxe.dir
	// under this name.
	EFIArm64 = "ipxe-arm64.efi"
)

// Required lists the binaries every x86 boot needs when x86-64 UEFI
// firmware is handed efiX64 (SNPOnly or EFIx64); EFIArm64 is optional.
func Required(efiX64 string) []string { return []string{BIOS, efiX64} }

// PickEFIx64 returns the x86-64 UEFI build to hand out: want (SNPOnly or
// EFIx64) when it is a regular file in dir, else the other build when that
// one is, with fellBack set; else want, which is then missing.
func PickEFIx64(dir, want string) (file string, fellBack bool) {
	other := EFIx64
	if want == EFIx64 {
		other = SNPOnly
	}
	if len(Missing(dir, want)) == 0 || len(Missing(dir, other)) > 0 {
		return want, false
	}
	return other, true
}

// Missing returns the names in want that are not regular files in dir.
func Missing(dir string, want ...string) []string {
	var missing []string
	for _, name := range want {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() {
			missing = append(missing, name)
		}
	}
	return missing
}

// InstallHint tells an operator how to get the binaries.
const InstallHint = "install them with `apt-get install ipxe`, or set ipxe.dir to a directory that holds them"
