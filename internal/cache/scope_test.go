package cache_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// clock is a test clock: Now returns a fixed time that only Add moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// profileDir writes a profiles directory: defaults.yaml with unknown and
// the maintenance image (version and arch may be ""), a base config, and
// one machine file per talos block given (its "talos:" mapping, in flow
// style), MACs 52:54:00:00:00:01 and on.
func profileDir(t testing.TB, dir, unknown, version, arch string, machines ...string) {
	t.Helper()
	defaults := "unknown: " + unknown + "\nconfig: node\ntalos:\n  schematic: " + testID + "\n"
	if version != "" {
		defaults += "  version: " + version + "\n"
	}
	if arch != "" {
		defaults += "  arch: " + arch + "\n"
	}
	files := map[string]string{
		"defaults.yaml":     defaults,
		"configs/node.yaml": "version: v1alpha1\nmachine:\n  type: worker\n  install:\n    disk: /dev/sda\n",
	}
	old, _ := filepath.Glob(filepath.Join(dir, "machines", "*.yaml"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	for i, talos := range machines {
		files[fmt.Sprintf("machines/52-54-00-00-%02x-%02x.yaml", (i+1)>>8, (i+1)&0xff)] = fmt.Sprintf("hostname: n%d\ntalos: %s\n", i+1, talos)
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// newStore loads a profiles directory written by profileDir.
func newStore(t testing.TB, dir string) *profiles.Store {
	t.Helper()
	s, err := profiles.NewStore(t.Context(), profiles.Options{Dir: dir}, profiles.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// scopeOf is the daemon's scope over a profiles directory with one
// machine on testID/v1.12.7/amd64, unknown machines ignored, and allow.
func scopeOf(t *testing.T, allow ...cache.Target) (*cache.ProfileScope, *profiles.Store, string) {
	t.Helper()
	dir := t.TempDir()
	profileDir(t, dir, "ignore", "", "", "{version: v1.12.7, arch: amd64}")
	store := newStore(t, dir)
	s, err := cache.NewProfileScope(store, allow)
	if err != nil {
		t.Fatal(err)
	}
	return s, store, dir
}

func assetURL(e *env, version, file string) string {
	return e.url + "/assets/" + testID + "/" + version + "/" + file
}

// imageRequests counts the factory's image requests, whatever the path.
func imageRequests(e *env) int {
	n := 0
	for p, c := range e.fake.Counts() {
		if strings.HasPrefix(p, "/image/") {
			n += c
		}
	}
	return n
}

// TestRefusedAssetsKeepProfileAssets: with a cache.maxSize that only holds
// the profile's kernel and initramfs, 30 requests for made-up versions are
// refused with 404 before the cache or the factory sees them, and the
// profile's assets stay cached.
func TestRefusedAssetsKeepProfileAssets(t *testing.T) {
	scope, _, _ := scopeOf(t)
	e := newEnv(t, envOpts{scope: scope, maxSize: (64 << 10) + (256 << 10) + 1000})
	for _, f := range []string{"kernel-amd64", "initramfs-amd64.xz"} {
		resp, body, err := get(t, assetURL(e, "v1.12.7", f))
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, e.fake.Asset(f)) {
			t.Fatalf("profile asset %s: got %v, %v, %d bytes; want 200 and the asset", f, resp, err, len(body))
		}
	}
	before := e.fake.Counts()
	for i := range 30 {
		resp, body, err := get(t, assetURL(e, fmt.Sprintf("v1.%d.0", 50+i), "initramfs-amd64.xz"))
		if err != nil || resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "not an asset of an image the profiles or cache.allow name") {
			t.Fatalf("made-up version %d: got %v, %v, %q; want 404 with the reason", i, resp, err, body)
		}
	}
	if got := e.fake.Counts(); !equalCounts(got, before) {
		t.Errorf("factory requests: got %v after the made-up versions, want %v as before", got, before)
	}
	var files []string
	for _, en := range e.cache.List() {
		files = append(files, en.Version+"/"+en.File)
	}
	if want := []string{"v1.12.7/initramfs-amd64.xz", "v1.12.7/kernel-amd64"}; !slices.Equal(files, want) {
		t.Errorf("cached: got %v, want %v", files, want)
	}
	if got := counter(t, e.reg, "tinderbox_cache_lookups_total", "result", "refused"); got != 30 {
		t.Errorf("got %v refused lookups, want 30", got)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestMadeUpVersionsNeverReachTheFactory: 200 made-up versions, and a
// file of another architecture than the profile's, cause no factory
// request, and the refusals are logged at most logAssets times a minute.
func TestMadeUpVersionsNeverReachTheFactory(t *testing.T) {
	scope, _, _ := scopeOf(t)
	var log syncBuffer
	e := newEnv(t, envOpts{scope: scope, now: newClock().Now, logTo: &log})
	for i := range 200 {
		resp, _, err := get(t, assetURL(e, fmt.Sprintf("v9.%d.%d", i/10, i%10), "kernel-amd64"))
		if err != nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("made-up version %d: got %v, %v; want 404", i, resp, err)
		}
	}
	if resp, _, err := get(t, assetURL(e, "v1.12.7", "kernel-arm64")); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("arm64 kernel of an amd64 profile: got %v, %v; want 404", resp, err)
	}
	if n := imageRequests(e); n != 0 {
		t.Errorf("got %d factory image requests, want 0: %v", n, e.fake.Counts())
	}
	if got := strings.Count(log.String(), "asset refused"); got != 32 {
		t.Errorf("got %d refusal log lines within a minute, want 32 (then a count of the rest)", got)
	}
}

// syncBuffer is a bytes.Buffer safe for the handler's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNegativeCache: an asset the scope wants (allow-listed, or named by a
// profile) that the factory answers 404 for is asked for once within
// cache.DefaultNegativeTTL, and again after it; the kernel command line
// too. A 5xx is asked for every time.
func TestNegativeCache(t *testing.T) {
	tests := []struct {
		name    string
		version string
		allow   []cache.Target
		profile string // the machine's talos block
	}{
		{name: "allow-listed", version: "v1.98.0", allow: []cache.Target{{Schematic: testID, Version: "v1.98.0"}}, profile: "{version: v1.12.7}"},
		{name: "referenced", version: "v1.99.0", profile: "{version: v1.99.0, arch: amd64}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			profileDir(t, dir, "ignore", "", "", tt.profile)
			scope, err := cache.NewProfileScope(newStore(t, dir), tt.allow)
			if err != nil {
				t.Fatal(err)
			}
			clk := newClock()
			e := newEnv(t, envOpts{scope: scope, now: clk.Now})
			const file = "initramfs-amd64.xz"
			upstream := "/image/" + testID + "/" + tt.version + "/" + file
			ask := func(wantCount int) {
				t.Helper()
				resp, body, err := get(t, assetURL(e, tt.version, file))
				if err != nil || resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "404 Not Found") {
					t.Fatalf("got %v, %v, %q; want 502 naming the factory's 404", resp, err, body)
				}
				if got := e.fake.Count(upstream); got != wantCount {
					t.Fatalf("got %d factory requests for %s, want %d", got, upstream, wantCount)
				}
			}
			ask(1)
			ask(1)
			clk.Add(cache.DefaultNegativeTTL - time.Second)
			ask(1)
			clk.Add(2 * time.Second)
			ask(2)
			ask(2)
			if got := counter(t, e.reg, "tinderbox_cache_lookups_total", "result", "negative"); got != 3 {
				t.Errorf("got %v negative lookups, want 3", got)
			}

			cmdline := "/image/" + testID + "/" + tt.version + "/cmdline-metal-amd64"
			for range 3 {
				if _, err := e.cache.Cmdline(t.Context(), testID, tt.version, machine.ArchAMD64); err == nil || !strings.Contains(err.Error(), "404") {
					t.Fatalf("Cmdline: got %v, want the factory's 404", err)
				}
			}
			if got := e.fake.Count(cmdline); got != 1 {
				t.Errorf("got %d factory requests for the command line, want 1", got)
			}
		})
	}

	t.Run("5xx is not remembered", func(t *testing.T) {
		scope, _, _ := scopeOf(t)
		e := newEnv(t, envOpts{scope: scope, now: newClock().Now})
		e.fake.SetFault(fakefactory.ServerError)
		for range 2 {
			if resp, _, err := get(t, assetURL(e, "v1.12.7", "kernel-amd64")); err != nil || resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("got %v, %v; want 502", resp, err)
			}
		}
		if got := counter(t, e.reg, "tinderbox_factory_fetches_total", "result", "http_error"); got != 2 {
			t.Errorf("got %v failed fetches, want 2: a 5xx is asked again", got)
		}
	})
}

// TestEvictionPrefersUnreferenced: beyond MaxSize, assets the scope does
// not want go first, least recently used first; wanted ones go only when
// nothing else is left, with a warning.
func TestEvictionPrefersUnreferenced(t *testing.T) {
	scope, _, _ := scopeOf(t)
	clk := newClock()
	var log syncBuffer
	// Room for one initramfs, one kernel and a command line.
	e := newEnv(t, envOpts{scope: scope, now: clk.Now, logTo: &log, maxSize: (256 << 10) + (64 << 10) + 1000})
	ensure := func(file string) {
		t.Helper()
		clk.Add(time.Second)
		k, _ := cache.NewKey(testID, "v1.12.7", file)
		if _, err := e.cache.Ensure(t.Context(), k, nil); err != nil {
			t.Fatal(err)
		}
	}
	files := func() string {
		var out []string
		for _, en := range e.cache.List() {
			out = append(out, en.File)
		}
		return strings.Join(out, ",")
	}
	ensure("kernel-amd64")        // wanted, least recently used
	ensure("kernel-arm64")        // not wanted
	ensure("cmdline-metal-arm64") // not wanted, newer
	ensure("initramfs-amd64.xz")  // wanted: the arm64 kernel makes room
	if got, want := files(), "cmdline-metal-arm64,initramfs-amd64.xz,kernel-amd64"; got != want {
		t.Errorf("after the wanted initramfs: got %s, want %s", got, want)
	}
	if strings.Contains(log.String(), "cache.maxSize is smaller") {
		t.Errorf("warned although only an unwanted asset was evicted:\n%s", log.String())
	}

	ensure("initramfs-arm64.xz") // not wanted, and needs every byte
	if got, want := files(), "initramfs-arm64.xz"; got != want {
		t.Errorf("after the unwanted initramfs: got %s, want %s", got, want)
	}
	if got := strings.Count(log.String(), "cache.maxSize is smaller than the images they need"); got != 2 {
		t.Errorf("got %d warnings, want 2 (one per wanted asset evicted):\n%s", got, log.String())
	}
}

// TestScopeFollowsReloads: an asset is served once a profile reload
// names its image, and refused, though cached, once a reload drops it;
// the maintenance image counts only while unknown machines boot it, and
// an image without an architecture is wanted for both.
func TestScopeFollowsReloads(t *testing.T) {
	scope, store, dir := scopeOf(t)
	e := newEnv(t, envOpts{scope: scope})
	status := func(version, file string) int {
		t.Helper()
		resp, _, err := get(t, assetURL(e, version, file))
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	reload := func(unknown, version, arch string, machines ...string) {
		t.Helper()
		profileDir(t, dir, unknown, version, arch, machines...)
		if err := store.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name   string
		reload func()
		want   map[string]int // "version/file" → status
	}{
		{name: "initial set", reload: func() {}, want: map[string]int{
			"v1.12.7/kernel-amd64": 200, "v1.13.0/kernel-amd64": 404,
		}},
		{name: "a machine moves to v1.13.0", reload: func() { reload("ignore", "", "", "{version: v1.13.0, arch: amd64}") }, want: map[string]int{
			"v1.13.0/kernel-amd64": 200, "v1.12.7/kernel-amd64": 404, "v1.13.0/kernel-arm64": 404,
		}},
		{name: "no arch: both", reload: func() { reload("ignore", "", "", "{version: v1.13.0}") }, want: map[string]int{
			"v1.13.0/kernel-amd64": 200, "v1.13.0/kernel-arm64": 200, "v1.12.7/kernel-amd64": 404,
		}},
		{name: "maintenance image under unknown: maintenance", reload: func() { reload("maintenance", "v1.11.6", "arm64") }, want: map[string]int{
			"v1.11.6/kernel-arm64": 200, "v1.11.6/kernel-amd64": 404, "v1.13.0/kernel-amd64": 404,
		}},
		{name: "maintenance image under unknown: local", reload: func() { reload("local", "v1.11.6", "arm64") }, want: map[string]int{
			"v1.11.6/kernel-arm64": 404,
		}},
	}
	for _, st := range steps {
		st.reload()
		for path, want := range st.want {
			version, file, _ := strings.Cut(path, "/")
			if got := status(version, file); got != want {
				t.Errorf("%s: GET %s: got %d, want %d", st.name, path, got, want)
			}
		}
	}
	if got := counter(t, e.reg, "tinderbox_factory_fetches_total", "result", "ok"); got != 4 {
		t.Errorf("got %v factory fetches, want 4 (each served asset once)", got)
	}
}

// TestNewProfileScopeRejectsBadTargets: an allow-list entry that is not an
// image name is an error, not a silent refusal.
func TestNewProfileScopeRejectsBadTargets(t *testing.T) {
	_, store, _ := scopeOf(t)
	for _, bad := range []cache.Target{
		{Schematic: "abc", Version: "v1.12.7"},
		{Schematic: testID, Version: "latest"},
		{Schematic: testID, Version: "v1.12.7", Arch: "riscv64"},
	} {
		if _, err := cache.NewProfileScope(store, []cache.Target{bad}); err == nil {
			t.Errorf("NewProfileScope accepted %+v", bad)
		}
	}
	s, err := cache.NewProfileScope(store, []cache.Target{{Schematic: testID, Version: "1.13.0", Arch: machine.ArchARM64}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		version, file string
		want          bool
	}{
		{"v1.13.0", "initramfs-arm64.xz", true},
		{"v1.13.0", "cmdline-metal-arm64", true},
		{"v1.13.0", "kernel-amd64", false},
		{"v1.12.7", "kernel-amd64", true},
	} {
		k, err := cache.NewKey(testID, tt.version, tt.file)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Allowed(k); got != tt.want {
			t.Errorf("Allowed(%s) = %v, want %v", k, got, tt.want)
		}
	}
}
