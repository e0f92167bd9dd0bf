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
	// EFIx64 is iPXE for UEFI x86-64 (native PXE and UEFI HTTP boot).
	EFIx64 = "ipxe.efi"
	// EFIArm64 is iPXE for UEFI arm64. Debian's package does not ship it; an
	// operator who builds or downloads one puts it in ipxe.dir under this name.
	EFIArm64 = "ipxe-arm64.efi"
)

// Required lists the binaries every x86 boot needs; EFIArm64 is optional.
var Required = []string{BIOS, EFIx64}

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
