package cache_test

import (
	"fmt"
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

// BenchmarkScope measures the asset scope of a set of 500 machines, each on
// its own Talos version: Allowed on a request (the keys memoised for the set
// being served), and the keys computed again after a reload.
func BenchmarkScope(b *testing.B) {
	dir := b.TempDir()
	machines := make([]string, 500)
	for i := range machines {
		machines[i] = fmt.Sprintf("{version: v1.%d.%d}", i/10, i%10)
	}
	profileDir(b, dir, "maintenance", "v2.0.0", "", machines...)
	store := newStore(b, dir)
	s, err := cache.NewProfileScope(store, nil)
	if err != nil {
		b.Fatal(err)
	}
	in, _ := cache.NewKey(testID, "v1.49.9", "initramfs-arm64.xz")
	out, _ := cache.NewKey(testID, "v9.0.0", "initramfs-arm64.xz")
	if !s.Allowed(in) || s.Allowed(out) {
		b.Fatal("the scope does not hold the set's images")
	}
	b.Run("allowed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Allowed(in)
			s.Allowed(out)
		}
	})
	b.Run("reload", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if len(cache.ReferencedKeys(store.Set())) != 501*6 {
				b.Fatal("wrong key count")
			}
		}
	})
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
