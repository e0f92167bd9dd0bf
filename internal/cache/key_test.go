package cache_test

import (
	"bytes"
	"path"
	"strings"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/cache"
)

// FuzzNewKey: an accepted key is three safe path components, normalises to
// itself, and spells the version with its v.
func FuzzNewKey(f *testing.F) {
	f.Add(testID, "v1.12.7", "kernel-amd64")
	f.Add(testID, "1.12.7", "initramfs-arm64.xz")
	f.Add(testID, "..", "kernel-amd64")
	f.Add("../"+testID[3:], "v1.12.7", "cmdline-metal-amd64")
	f.Add(testID, "v1.12.7", "../../etc/passwd")
	f.Fuzz(func(t *testing.T, schematic, version, file string) {
		k, err := cache.NewKey(schematic, version, file)
		if err != nil {
			return
		}
		s := k.String()
		if path.Clean(s) != s || strings.Count(s, "/") != 2 || strings.Contains(s, "..") || strings.HasPrefix(s, "/") || strings.ContainsRune(s, 0) {
			t.Fatalf("NewKey(%q, %q, %q) = %q: not three safe path components", schematic, version, file, s)
		}
		if !strings.HasPrefix(k.Version, "v") {
			t.Fatalf("version %q lacks its v", k.Version)
		}
		again, err := cache.NewKey(k.Schematic, k.Version, k.File)
		if err != nil || again != k {
			t.Fatalf("NewKey of %v = %v, %v; want it unchanged", k, again, err)
		}
	})
}

// TestFailureLoggedOncePerMinute: a rack retrying a missing asset logs one
// line, not one per request.
func TestFailureLoggedOncePerMinute(t *testing.T) {
	// The handler logs before it answers, and the test reads only after the
	// last answer: a plain buffer is enough.
	var logs bytes.Buffer
	e := newEnv(t, envOpts{url: deadURL(t), logTo: &logs})
	for range 5 {
		resp, _, err := get(t, e.url+assetPath("kernel-amd64"))
		if err != nil || resp.StatusCode != 502 {
			t.Fatalf("got %v, %v; want 502", resp, err)
		}
	}
	resp, _, err := get(t, e.url+assetPath("kernel-arm64"))
	if err != nil || resp.StatusCode != 502 {
		t.Fatalf("got %v, %v; want 502", resp, err)
	}
	out := logs.String()
	if got := strings.Count(out, "asset unavailable"); got != 2 {
		t.Errorf("got %d log lines for 6 failures of 2 assets, want 2:\n%s", got, out)
	}
}
