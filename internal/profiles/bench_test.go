package profiles

import (
	"path/filepath"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/profiles/fleettree"
)

// BenchmarkLoad5000 loads a tree of 5000 machines from scratch (every
// machine rendered and checked, the checks across machines).
func BenchmarkLoad5000(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "profiles")
	if err := fleettree.Write(filepath.Join("..", "..", "profiles"), dir, 5000); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		set, err := Load(b.Context(), Options{Dir: dir, BaseURL: "http://192.168.1.5:8080"})
		if err != nil {
			b.Fatal(err)
		}
		if set.Len() != 5000 {
			b.Fatalf("got %d machines, want 5000", set.Len())
		}
	}
}
