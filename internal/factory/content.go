package factory

import (
	"bytes"
	"fmt"
)

// SniffLen is how many leading bytes CheckContent needs to judge a file
// (fewer when the whole file is shorter).
const SniffLen = 4096

// Magic numbers of the files the factory serves. A captive portal, a proxy
// error page or a misconfigured CDN answers 200 with HTML; these checks keep
// such a body out of the cache, where it would be served to every node.
var (
	// The x86 boot protocol header signature "HdrS" at offset 0x202
	// (Linux Documentation/arch/x86/boot.rst).
	bzImageMagic  = []byte("HdrS")
	bzImageOffset = 0x202
	// The arm64 Image header magic "ARM\x64" at offset 0x38
	// (Linux Documentation/arch/arm64/booting.rst).
	arm64Magic  = []byte("ARM\x64")
	arm64Offset = 0x38
	// Talos ships its initramfs xz-compressed; zstd and gzip are accepted too
	// since the kernel takes them and the file name does not change with them.
	compressedMagics = [][]byte{
		{0xfd, '7', 'z', 'X', 'Z', 0x00}, // xz
		{0x28, 0xb5, 0x2f, 0xfd},         // zstd
		{0x1f, 0x8b},                     // gzip
	}
	// Every Talos metal command line names its platform.
	cmdlineMarker = []byte("talos.platform=")
)

// CheckContent returns an error when head, the first SniffLen bytes of a
// file (or all of it when shorter), cannot be the named file: a kernel
// without its boot header, an initramfs that is not compressed, a command
// line that is not one line of printable text.
func CheckContent(file string, head []byte) error {
	kind, arch, ok := FileKind(file)
	if !ok {
		return CheckFile(file)
	}
	switch kind {
	case KindKernel:
		off, magic := bzImageOffset, bzImageMagic
		if arch == "arm64" {
			off, magic = arm64Offset, arm64Magic
		}
		if len(head) < off+len(magic) || !bytes.Equal(head[off:off+len(magic)], magic) {
			return fmt.Errorf("%s is not a Linux %s kernel: no %q at offset %#x (%s)", file, arch, magic, off, describe(head))
		}
	case KindInitramfs:
		for _, m := range compressedMagics {
			if bytes.HasPrefix(head, m) {
				return nil
			}
		}
		return fmt.Errorf("%s is not a compressed initramfs: no xz, zstd or gzip header (%s)", file, describe(head))
	case KindCmdline:
		line := bytes.TrimRight(head, "\r\n")
		for _, c := range line {
			if c < ' ' || c > '~' {
				return fmt.Errorf("%s is not a kernel command line: byte %#02x is not printable text (%s)", file, c, describe(head))
			}
		}
		if !bytes.Contains(line, cmdlineMarker) {
			return fmt.Errorf("%s is not a Talos kernel command line: no %q in it (%s)", file, cmdlineMarker, describe(head))
		}
	}
	return nil
}

// describe shows the start of a rejected body, so the operator sees the
// HTML error page or whatever else came back.
func describe(head []byte) string {
	const max = 48
	if len(head) > max {
		return fmt.Sprintf("starts with %q…", head[:max])
	}
	return fmt.Sprintf("body %q", head)
}
