package tftp

import (
	"strconv"
	"testing"

	"pack.ag/tftp"
)

// BenchmarkTransfer downloads 1 MiB over loopback with the library's client
// at EDK2's blksize, in lockstep and with a window.
func BenchmarkTransfer(b *testing.B) {
	for _, ws := range []int{1, 8} {
		b.Run("windowsize="+strconv.Itoa(ws), func(b *testing.B) {
			f := start(b, func(o *Options) { o.Timeout = DefaultTimeout })
			b.ReportAllocs()
			b.SetBytes(int64(len(testFiles["big.bin"])))
			for b.Loop() {
				got, err := f.get("big.bin", tftp.ClientBlocksize(1468), tftp.ClientWindowsize(ws))
				if err != nil || len(got) != len(testFiles["big.bin"]) {
					b.Fatalf("got %d bytes, %v", len(got), err)
				}
			}
		})
	}
}

// BenchmarkParseRequest parses EDK2's request.
func BenchmarkParseRequest(b *testing.B) {
	body := []byte("ipxe.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00windowsize\x004\x00")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseRequest(body, blksizeCap(1500, true, 0)); err != nil {
			b.Fatal(err)
		}
	}
}
