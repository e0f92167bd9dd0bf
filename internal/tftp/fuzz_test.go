package tftp

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/ipxe"
)

// FuzzRequest feeds arbitrary request bodies, with the receiving link's
// MTU, the client's address family and the configured blksize cap, through
// the request path the server runs (blksizeCap, parseRequest, then openFile
// on an ipxe.Root) and asserts that negotiated values stay in range, that
// a granted blksize is the client's ask lowered to the cap and no further
// (so DATA fits the link whenever the link can carry RFC 2348's smallest
// block), and that nothing outside the served directory is ever opened:
// every file opened is one of the regular files inside it, or the target
// of a boot file's symlink (Debian's ipxe.efi).
func FuzzRequest(f *testing.F) {
	base := f.TempDir()
	srv := filepath.Join(base, "srv")
	for _, p := range []string{"srv/undionly.kpxe", "srv/sub/a.efi", "secret", "boot/ipxe.efi", "srv2/other"} {
		full := filepath.Join(base, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"srv/up": "../secret", "srv/abs": filepath.Join(base, "secret"), "srv/sub/up": "../../secret",
		"srv/parent": "..", "srv/sibling": "../srv2", "srv/in": "sub/a.efi",
		"srv/" + ipxe.EFIx64: filepath.Join(base, "boot", "ipxe.efi"),
	} {
		if err := os.Symlink(target, filepath.Join(base, link)); err != nil {
			f.Fatal(err)
		}
	}
	var allowed []os.FileInfo
	for _, p := range []string{"srv/undionly.kpxe", "srv/sub/a.efi", "boot/ipxe.efi"} {
		fi, err := os.Stat(filepath.Join(base, p))
		if err != nil {
			f.Fatal(err)
		}
		allowed = append(allowed, fi)
	}
	root := ipxe.NewRoot(srv)
	f.Cleanup(func() { _ = root.Close() })

	for _, seed := range []struct {
		body   string
		mtu    uint16
		ipv4   bool
		maxBlk uint16
	}{
		{"undionly.kpxe\x00octet\x00", 1500, true, 0},
		{"ipxe.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00windowsize\x004\x00", 1400, true, 0},
		{"ipxe.efi\x00octet\x00blksize\x0065464\x00", 1400, false, 0},
		{"ipxe.efi\x00octet\x00blksize\x001468\x00", 0, true, 1024},
		{"../secret\x00octet\x00", 65535, true, 0},
		{"sub/up\x00OCTET\x00blksize\x0065535\x00", 9000, false, 0},
		{"parent/secret\x00octet\x00timeout\x00256\x00", 1500, true, 512},
		{"in\x00octet\x00windowsize\x000\x00blksize\x007\x00", 68, true, 0},
	} {
		f.Add([]byte(seed.body), seed.mtu, seed.ipv4, seed.maxBlk)
	}
	f.Fuzz(func(t *testing.T, body []byte, mtu uint16, ipv4 bool, maxBlk uint16) {
		limit := blksizeCap(int(mtu), ipv4, int(maxBlk))
		overhead := dataOverhead6
		if ipv4 {
			overhead = dataOverhead4
		}
		if limit < minBlksize || limit > maxBlksize || (mtu > 0 && int(mtu)-overhead >= minBlksize && limit+overhead > int(mtu)) {
			t.Fatalf("blksizeCap(%d, %v, %d) = %d: out of range or larger than the link carries", mtu, ipv4, maxBlk, limit)
		}
		req, err := parseRequest(body, limit)
		if err == nil {
			// A client that negotiates no blksize gets RFC 1350's 512,
			// whatever the link; a negotiated one is capped.
			negotiated := false
			for _, o := range req.opts {
				if o.name == optBlksize {
					negotiated = true
					if o.value != strconv.Itoa(req.blksize) {
						t.Fatalf("OACK blksize %q, negotiated %d", o.value, req.blksize)
					}
				}
			}
			if !negotiated && req.blksize != defaultBlksize {
				t.Fatalf("blksize %d without a blksize option, want %d", req.blksize, defaultBlksize)
			}
			if negotiated && (req.blksize < minBlksize || req.blksize > limit) {
				t.Fatalf("blksize %d out of range (cap %d)", req.blksize, limit)
			}
			// Capping only lowers: the grant is the uncapped grant, or the
			// cap when that is smaller.
			if uncapped, _ := parseRequest(body, maxBlksize); negotiated && req.blksize != min(uncapped.blksize, limit) {
				t.Fatalf("blksize %d with cap %d, %d without: want %d", req.blksize, limit, uncapped.blksize, min(uncapped.blksize, limit))
			}
			if req.windowsize < 1 || req.windowsize > MaxWindowsize {
				t.Fatalf("windowsize %d out of range", req.windowsize)
			}
			if req.timeout < 0 || req.timeout > maxTimeout {
				t.Fatalf("timeout %d out of range", req.timeout)
			}
			seen := map[string]bool{}
			for _, o := range req.opts {
				if seen[o.name] || o.name != strings.ToLower(o.name) {
					t.Fatalf("OACK option %q repeated or not lower case: %v", o.name, req.opts)
				}
				seen[o.name] = true
			}
		}
		file, _, _, ref := openFile(root, req.name)
		if ref != nil {
			if ref.result != ResultRefused && ref.result != ResultNotFound {
				t.Fatalf("open %q: got result %s (%v), want refused or not_found", req.name, ref.result, ref.err)
			}
			return
		}
		defer func() { _ = file.Close() }()
		fi, err := file.Stat()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range allowed {
			if os.SameFile(fi, a) {
				return
			}
		}
		t.Fatalf("open %q opened %v, which is not a file served from %s", req.name, fi.Name(), srv)
	})
}
