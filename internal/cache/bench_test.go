package cache_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
)

// BenchmarkServeCached measures serving a cached 8 MiB initramfs over
// loopback, through ServeContent and sendfile.
func BenchmarkServeCached(b *testing.B) {
	e := newEnvB(b, 8<<20)
	url := e.url + assetPath("initramfs-amd64.xz")
	b.ReportAllocs()
	b.SetBytes(8 << 20)
	for b.Loop() {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != 8<<20 {
			b.Fatalf("got %d bytes", n)
		}
	}
}

// BenchmarkOpenHit measures a cache hit: index lookup and open.
func BenchmarkOpenHit(b *testing.B) {
	e := newEnvB(b, 64<<10)
	k, _ := cache.NewKey(testID, "v1.12.7", "initramfs-amd64.xz")
	b.ReportAllocs()
	for b.Loop() {
		a, err := e.cache.Open(b.Context(), k)
		if err != nil {
			b.Fatal(err)
		}
		a.Close()
	}
}

func newEnvB(b *testing.B, size int) *env {
	b.Helper()
	e := newEnvTB(b, envOpts{fake: fakefactory.Options{InitramfsSize: size}})
	k, _ := cache.NewKey(testID, "v1.12.7", "initramfs-amd64.xz")
	if _, err := e.cache.Ensure(b.Context(), k, nil); err != nil {
		b.Fatal(err)
	}
	return e
}
