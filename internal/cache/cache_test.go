package cache_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/factory"
	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
)

const testID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"

// env is a fake factory, a cache fetching from it, and the asset handler on
// a loopback HTTP server.
type env struct {
	fake  *fakefactory.Server
	cache *cache.Cache
	reg   *prometheus.Registry
	url   string // boot HTTP base URL
	rec   *recorder
	dir   string
}

type envOpts struct {
	fake    fakefactory.Options
	maxSize int64
	dir     string
	url     string // factory URL; default the fake's
	timeout time.Duration
	logTo   io.Writer // handler and cache log; default the test log
	scope   cache.Scope
	now     func() time.Time
}

func newEnv(t *testing.T, o envOpts) *env { return newEnvTB(t, o) }

func newEnvTB(t testing.TB, o envOpts) *env {
	t.Helper()
	e := &env{reg: prometheus.NewRegistry(), rec: &recorder{}, dir: o.dir}
	if e.dir == "" {
		e.dir = t.TempDir()
	}
	f, err := fakefactory.Start(o.fake)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	e.fake = f
	url := o.url
	if url == "" {
		url = f.URL
	}
	if o.timeout == 0 {
		o.timeout = 2 * time.Second
	}
	fc, err := factory.New(factory.Options{URL: url, Timeout: o.timeout, Backoff: time.Millisecond, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.logTo != nil {
		log = slog.New(slog.NewTextHandler(o.logTo, nil))
	}
	c, err := cache.Open(cache.Options{
		Dir: e.dir, MaxSize: o.maxSize, Upstream: cache.FromFactory(fc), Scope: o.scope, Now: o.now,
		Logger: log, Registerer: e.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	e.cache = c
	r := chi.NewRouter()
	cache.NewHandler(c, log, e.rec).Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

type recorder struct {
	mu   sync.Mutex
	sent []cache.Sent
}

func (r *recorder) AssetSent(_ context.Context, s cache.Sent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, s)
}

func (r *recorder) all() []cache.Sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

func assetPath(file string) string    { return "/assets/" + testID + "/v1.12.7/" + file }
func upstreamPath(file string) string { return "/image/" + testID + "/v1.12.7/" + file }

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				ok := false
				for _, lp := range m.GetLabel() {
					ok = ok || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !ok {
					continue metric
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// dataFiles lists the files under dir outside .tmp, relative to it.
func dataFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func TestServeAndCache(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, file := range factory.Files("amd64") {
		want := e.fake.Asset(file)
		for i, wantCache := range []string{"miss", "hit"} {
			resp, body, err := get(t, e.url+assetPath(file))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || !bytes.Equal(body, want) {
				t.Fatalf("%s #%d: got %d, %d bytes; want 200, the fake's %d bytes", file, i, resp.StatusCode, len(body), len(want))
			}
			if got := resp.Header.Get("X-Tinderbox-Cache"); got != wantCache {
				t.Errorf("%s #%d: got X-Tinderbox-Cache %q, want %q", file, i, got, wantCache)
			}
		}
		if got := e.fake.Count(upstreamPath(file)); got != 1 {
			t.Errorf("%s: got %d upstream requests, want 1", file, got)
		}
	}
	entries := e.cache.List()
	if len(entries) != 3 {
		t.Fatalf("got %d entries, want 3", len(entries))
	}
	for _, en := range entries {
		if want := e.fake.Asset(en.File); en.SHA256 != sum(want) || en.Size != int64(len(want)) {
			t.Errorf("%s: got size %d sha256 %s, want %d %s", en.File, en.Size, en.SHA256, len(want), sum(want))
		}
	}
	if got, want := counter(t, e.reg, "tinderbox_cache_lookups_total", "result", "hit"), 3.0; got != want {
		t.Errorf("got %v hits, want %v", got, want)
	}
	if got, want := counter(t, e.reg, "tinderbox_factory_fetches_total", "result", "ok"), 3.0; got != want {
		t.Errorf("got %v ok fetches, want %v", got, want)
	}
	var total int64
	for _, en := range entries {
		total += en.Size
	}
	if got := counter(t, e.reg, "tinderbox_cache_size_bytes"); got != float64(total) {
		t.Errorf("got cache size %v, want %d", got, total)
	}
	if got := counter(t, e.reg, "tinderbox_cache_served_bytes_total"); got != float64(2*total) {
		t.Errorf("got %v bytes served, want %d", got, 2*total)
	}
}

// TestSingleFlight: N concurrent cold requests cause one upstream fetch and
// get identical bodies matching the upstream's sha256.
func TestSingleFlight(t *testing.T) {
	const n = 16
	e := newEnv(t, envOpts{fake: fakefactory.Options{InitramfsSize: 4 << 20}})
	const file = "initramfs-amd64.xz"
	release := e.fake.HoldTail(1 << 20)
	defer release()
	var wg sync.WaitGroup
	sums := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body, err := get(t, e.url+assetPath(file))
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			sums[i], errs[i] = sum(body), err
		}()
	}
	// Every request has joined the fetch (and is streaming) before the
	// upstream sends its tail.
	waitFor(t, func() bool { return counter(t, e.reg, "tinderbox_cache_lookups_total", "result", "miss") == n })
	release()
	wg.Wait()
	want := sum(e.fake.Asset(file))
	for i := range n {
		if errs[i] != nil || sums[i] != want {
			t.Errorf("client %d: got sha256 %s, %v; want %s", i, sums[i], errs[i], want)
		}
	}
	if got := e.fake.Count(upstreamPath(file)); got != 1 {
		t.Errorf("got %d upstream fetches, want 1", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStreaming: a cold client gets its first bytes while the upstream
// still holds back the tail; a client that goes away does not cancel the
// fetch for another.
func TestStreaming(t *testing.T) {
	e := newEnv(t, envOpts{fake: fakefactory.Options{InitramfsSize: 2 << 20}})
	const file = "initramfs-amd64.xz"
	want := e.fake.Asset(file)
	release := e.fake.HoldTail(512 << 10)
	defer release()

	quitter, err := http.Get(e.url + assetPath(file))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(e.url + assetPath(file))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != int64(len(want)) {
		t.Errorf("got Content-Length %d, want %d", resp.ContentLength, len(want))
	}
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(head, want[:len(head)]) {
		t.Error("first bytes differ from the upstream's")
	}
	if e.fake.Count(upstreamPath(file)) != 1 || len(e.cache.List()) != 0 {
		t.Fatal("the fetch completed before the tail was released")
	}
	quitter.Body.Close() // goes away mid-transfer
	release()
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(head, rest...); !bytes.Equal(got, want) {
		t.Errorf("got %d bytes, want the upstream's %d", len(got), len(want))
	}
	waitFor(t, func() bool { return len(e.cache.List()) == 1 })
	if got := e.fake.Count(upstreamPath(file)); got != 1 {
		t.Errorf("got %d upstream fetches, want 1", got)
	}
}

// TestFaults: each upstream fault leaves no cache entry, gives a clear
// error, and the next request fetches again.
func TestFaults(t *testing.T) {
	tests := []struct {
		name       string
		fault      fakefactory.Fault
		wantStatus int // 0: the 200 transfer is cut
		wantErr    string
		wantResult string
		// noURL: the error is about the content, not the factory's answer.
		noURL bool
	}{
		{name: "5xx", fault: fakefactory.ServerError, wantStatus: 502, wantErr: "503 Service Unavailable: upstream registry unavailable", wantResult: "http_error"},
		{name: "garbage", fault: fakefactory.Garbage, wantStatus: 502, wantErr: "not a compressed initramfs", wantResult: "invalid", noURL: true},
		{name: "truncated", fault: fakefactory.Truncate, wantErr: "body cut off after", wantResult: "network"},
		{name: "wrong content-length", fault: fakefactory.WrongLength, wantErr: "body cut off after", wantResult: "network"},
		{name: "stall", fault: fakefactory.Stall, wantErr: "no data within the timeout", wantResult: "timeout"},
	}
	const file = "initramfs-amd64.xz"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpts{timeout: 300 * time.Millisecond})
			e.fake.SetFault(tt.fault)
			resp, body, err := get(t, e.url+assetPath(file))
			switch {
			case tt.wantStatus != 0 && (err != nil || resp.StatusCode != tt.wantStatus):
				t.Errorf("got %v, %v; want status %d", resp, err, tt.wantStatus)
			case tt.wantStatus != 0 && !strings.Contains(string(body), tt.wantErr):
				t.Errorf("got body %q, want it to contain %q", body, tt.wantErr)
			case tt.wantStatus == 0 && err == nil && (resp.StatusCode < 502 || !strings.Contains(string(body), tt.wantErr)):
				// The failure may come before the first bytes were streamed
				// (a 502/504 with the error) or after (a cut transfer).
				t.Errorf("got a complete %d transfer %.80q, want it cut or a 502/504 with %q", resp.StatusCode, body, tt.wantErr)
			}
			k, _ := cache.NewKey(testID, "v1.12.7", file)
			_, err = e.cache.Ensure(t.Context(), k, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || (!tt.noURL && !strings.Contains(err.Error(), e.fake.URL)) {
				t.Errorf("Ensure: got %v, want an error with %q (naming %s: %v)", err, tt.wantErr, e.fake.URL, !tt.noURL)
			}
			if got := counter(t, e.reg, "tinderbox_factory_fetches_total", "result", tt.wantResult); got != 2 {
				t.Errorf("got %v fetches with result %s, want 2", got, tt.wantResult)
			}
			if got := dataFiles(t, e.dir); len(got) != 0 || len(e.cache.List()) != 0 {
				t.Fatalf("got files %q and entries %v after a fault, want none", got, e.cache.List())
			}
			e.fake.SetFault(fakefactory.None)
			resp, body, err = get(t, e.url+assetPath(file))
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, e.fake.Asset(file)) {
				t.Fatalf("after the fault: got %v, %v, %d bytes; want the asset", resp, err, len(body))
			}
			waitFor(t, func() bool { return len(e.cache.List()) == 1 })
		})
	}
}

// TestRangeHeadETag: a cached asset answers HEAD, Range (206), ETag and
// If-None-Match, and the recorder hears of each body sent.
func TestRangeHeadETag(t *testing.T) {
	e := newEnv(t, envOpts{})
	const file = "kernel-amd64"
	want := e.fake.Asset(file)
	if _, _, err := get(t, e.url+assetPath(file)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(e.cache.List()) == 1 })
	etag := `"` + sum(want) + `"`
	tests := []struct {
		name       string
		method     string
		hdr        []string
		wantStatus int
		wantBody   []byte
		wantLen    string
	}{
		{name: "GET", method: "GET", wantStatus: 200, wantBody: want, wantLen: fmt.Sprint(len(want))},
		{name: "HEAD", method: "HEAD", wantStatus: 200, wantBody: []byte{}, wantLen: fmt.Sprint(len(want))},
		{name: "range", method: "GET", hdr: []string{"Range", "bytes=100-199"}, wantStatus: 206, wantBody: want[100:200], wantLen: "100"},
		{name: "suffix range", method: "GET", hdr: []string{"Range", "bytes=-10"}, wantStatus: 206, wantBody: want[len(want)-10:], wantLen: "10"},
		{name: "unsatisfiable range", method: "GET", hdr: []string{"Range", fmt.Sprintf("bytes=%d-", len(want)+5)}, wantStatus: 416},
		{name: "if-none-match", method: "GET", hdr: []string{"If-None-Match", etag}, wantStatus: 304, wantBody: []byte{}},
		{name: "if-range stale", method: "GET", hdr: []string{"Range", "bytes=0-9", "If-Range", `"stale"`}, wantStatus: 200, wantBody: want},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, e.url+assetPath(file), nil)
			for i := 0; i+1 < len(tt.hdr); i += 2 {
				req.Header.Set(tt.hdr[i], tt.hdr[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("got status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantBody != nil && !bytes.Equal(body, tt.wantBody) {
				t.Errorf("got %d body bytes, want %d", len(body), len(tt.wantBody))
			}
			if tt.wantLen != "" && resp.Header.Get("Content-Length") != tt.wantLen {
				t.Errorf("got Content-Length %q, want %s", resp.Header.Get("Content-Length"), tt.wantLen)
			}
			if tt.wantStatus < 300 && resp.Header.Get("ETag") != etag {
				t.Errorf("got ETag %q, want %s", resp.Header.Get("ETag"), etag)
			}
		})
	}
	if got := e.fake.Count(upstreamPath(file)); got != 1 {
		t.Errorf("got %d upstream fetches, want 1", got)
	}
	sent := e.rec.all()
	if len(sent) == 0 {
		t.Fatal("recorder heard of nothing")
	}
	first := sent[0]
	if first.Remote.String() != "127.0.0.1" || first.Key.File != file || first.Bytes != int64(len(want)) || !first.Complete {
		t.Errorf("first send recorded as %+v; want 127.0.0.1, %s, %d bytes, complete", first, file, len(want))
	}
	for _, s := range sent {
		if s.Complete && s.Bytes != int64(len(want)) {
			t.Errorf("recorded %+v as complete", s)
		}
	}
}

// TestBadPaths: malformed path components are refused with 400 before any
// disk or network access.
func TestBadPaths(t *testing.T) {
	e := newEnv(t, envOpts{})
	tests := []struct{ name, path, want string }{
		{name: "short schematic", path: "/assets/abc/v1.12.7/kernel-amd64", want: "schematic ID"},
		{name: "upper-case schematic", path: "/assets/" + strings.ToUpper(testID) + "/v1.12.7/kernel-amd64", want: "schematic ID"},
		{name: "bad version", path: "/assets/" + testID + "/latest/kernel-amd64", want: "version"},
		{name: "escaped traversal in version", path: "/assets/" + testID + "/..%2f..%2fetc/kernel-amd64", want: "version"},
		{name: "unknown file", path: "/assets/" + testID + "/v1.12.7/metal-amd64.iso", want: "file"},
		{name: "dot file", path: "/assets/" + testID + "/v1.12.7/.tmp", want: "file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, err := get(t, e.url+tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 400 || !strings.Contains(string(body), tt.want) {
				t.Errorf("got %d %q, want 400 naming the %s", resp.StatusCode, body, tt.want)
			}
		})
	}
	if got := e.fake.Counts(); len(got) != 0 {
		t.Errorf("upstream got %v, want no request", got)
	}
	if got := dataFiles(t, e.dir); len(got) != 0 {
		t.Errorf("cache dir holds %q, want nothing", got)
	}
}

// TestEviction: beyond MaxSize the least recently used entry goes, never
// one being served, never the one just fetched.
func TestEviction(t *testing.T) {
	// Kernels are 64 KiB, initramfs 256 KiB: room for the two kernels and one initramfs.
	e := newEnv(t, envOpts{maxSize: 2*(64<<10) + (256 << 10) + 1000})
	ensure := func(file string) {
		t.Helper()
		k, _ := cache.NewKey(testID, "v1.12.7", file)
		if _, err := e.cache.Ensure(t.Context(), k, nil); err != nil {
			t.Fatal(err)
		}
	}
	files := func() []string {
		var out []string
		for _, en := range e.cache.List() {
			out = append(out, en.File)
		}
		return out
	}
	ensure("kernel-amd64")
	time.Sleep(2 * time.Millisecond)
	ensure("initramfs-amd64.xz")
	time.Sleep(2 * time.Millisecond)
	ensure("kernel-arm64")
	time.Sleep(2 * time.Millisecond)
	ensure("kernel-amd64") // used again: now the initramfs is the oldest
	time.Sleep(2 * time.Millisecond)
	ensure("initramfs-arm64.xz")
	if got, want := strings.Join(files(), ","), "initramfs-arm64.xz,kernel-amd64,kernel-arm64"; got != want {
		t.Errorf("after the first eviction: got %s, want %s", got, want)
	}

	// Held open (being served): kept even by a prune to zero.
	k, _ := cache.NewKey(testID, "v1.12.7", "kernel-arm64")
	a, err := e.cache.Open(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	gone := e.cache.Prune(0)
	if got, want := strings.Join(files(), ","), "kernel-arm64"; got != want || len(gone) != 2 {
		t.Errorf("prune while serving: kept %s (evicted %d), want %s (2)", got, len(gone), want)
	}
	a.Close()
	e.cache.Prune(0)
	if got := dataFiles(t, e.dir); len(got) != 0 || e.cache.Size() != 0 {
		t.Errorf("after prune to 0: files %q, size %d; want none", got, e.cache.Size())
	}
	if got := counter(t, e.reg, "tinderbox_cache_evictions_total"); got != 4 {
		t.Errorf("got %v evictions, want 4", got)
	}
}

// TestRestartAndOffline: a new Cache on the same directory serves what was
// cached without asking the factory, also when the factory is gone; a
// missing asset then answers 502, or 504 when the factory does not answer
// in time.
func TestRestartAndOffline(t *testing.T) {
	dir := t.TempDir()
	first := newEnv(t, envOpts{dir: dir})
	for _, f := range factory.Files("amd64") {
		k, _ := cache.NewKey(testID, "1.12.7", f) // without v: same entry
		if _, err := first.cache.Ensure(t.Context(), k, nil); err != nil {
			t.Fatal(err)
		}
	}
	want := first.fake.Asset("initramfs-amd64.xz")
	first.cache.Close()
	first.fake.Close()

	// A factory that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	for _, tt := range []struct {
		name, url  string
		wantStatus int
		wantText   string
	}{
		{name: "factory refuses", url: deadURL(t), wantStatus: 502, wantText: "connection refused"},
		{name: "factory silent", url: "http://" + ln.Addr().String(), wantStatus: 504, wantText: "timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpts{dir: dir, url: tt.url, timeout: 200 * time.Millisecond})
			if got := len(e.cache.List()); got != 3 {
				t.Fatalf("after restart: got %d entries, want 3", got)
			}
			resp, body, err := get(t, e.url+"/assets/"+testID+"/1.12.7/initramfs-amd64.xz")
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, want) {
				t.Fatalf("cached asset offline: got %v, %v, %d bytes", resp, err, len(body))
			}
			cmdline, err := e.cache.Cmdline(t.Context(), testID, "v1.12.7", "amd64")
			if err != nil || !strings.HasPrefix(cmdline, "talos.platform=metal ") || strings.HasSuffix(cmdline, "\n") {
				t.Errorf("Cmdline offline: got %q, %v; want the trimmed factory line", cmdline, err)
			}
			resp, body, err = get(t, e.url+assetPath("kernel-arm64"))
			if err != nil || resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantText) {
				t.Errorf("missing asset offline: got %v, %v, %q; want %d with %q", resp, err, body, tt.wantStatus, tt.wantText)
			}
		})
	}
}

func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestPrefetch(t *testing.T) {
	e := newEnv(t, envOpts{})
	var mu sync.Mutex
	last := map[string]int64{}
	entries, err := e.cache.Prefetch(t.Context(), []cache.Target{
		{Schematic: testID, Version: "v1.12.7", Arch: "amd64"},
		{Schematic: testID, Version: "v1.13.0", Arch: "arm64"},
	}, func(k cache.Key, done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if done > total {
			t.Errorf("%s: progress %d of %d", k, done, total)
		}
		last[k.String()] = done
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 6 || len(e.cache.List()) != 6 {
		t.Fatalf("got %d entries (%d listed), want 6", len(entries), len(e.cache.List()))
	}
	for _, en := range entries {
		if last[en.Key.String()] != en.Size {
			t.Errorf("%s: last progress %d, want %d", en.Key, last[en.Key.String()], en.Size)
		}
	}
	_, err = e.cache.Prefetch(t.Context(), []cache.Target{{Schematic: testID, Version: "v1.12.7", Arch: "riscv64"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "riscv64") {
		t.Errorf("bad arch: got %v", err)
	}
}

// crashChildEnv makes the test binary the child TestCrashMidFetch kills.
const crashChildEnv = "TINDERBOX_CACHE_CRASH_CHILD"

// crashChild fetches into the cache named by the environment and says
// "started" once bytes arrive; the parent kills it mid-fetch.
func crashChild() {
	fc, err := factory.New(factory.Options{URL: os.Getenv("FACTORY_URL")})
	if err != nil {
		panic(err)
	}
	c, err := cache.Open(cache.Options{Dir: os.Getenv("CACHE_DIR"), Upstream: cache.FromFactory(fc)})
	if err != nil {
		panic(err)
	}
	k, _ := cache.NewKey(testID, "v1.12.7", "initramfs-amd64.xz")
	var once sync.Once
	c.Ensure(context.Background(), k, func(done, total int64) {
		once.Do(func() { fmt.Println("started") })
	})
}

// TestCrashMidFetch: a process killed (SIGKILL) mid-fetch leaves a locked
// temporary file and no entry; the next Open removes the leftover, serves
// nothing partial, and fetches the asset afresh.
func TestCrashMidFetch(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild()
		return
	}
	dir := t.TempDir()
	fake, err := fakefactory.Start(fakefactory.Options{InitramfsSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	release := fake.HoldTail(100 << 10)
	defer release()

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashMidFetch$")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1", "FACTORY_URL="+fake.URL, "CACHE_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "started\n" {
		t.Fatalf("child said %q, %v; want started", line, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if got := dataFiles(t, dir); len(got) != 1 || !strings.HasPrefix(got[0], ".tmp"+string(filepath.Separator)) {
		t.Fatalf("after the kill: got files %q, want one partial download under .tmp", got)
	}
	// Leftovers of a crash between the steps of a commit.
	orphan := filepath.Join(dir, testID, "v1.12.7", "kernel-amd64")
	os.MkdirAll(filepath.Dir(orphan), 0o755)
	os.WriteFile(orphan, []byte("partial"), 0o644)
	short := filepath.Join(dir, testID, "v1.12.7", "kernel-arm64")
	os.WriteFile(short, []byte("short"), 0o644)
	os.WriteFile(filepath.Join(dir, testID, "v1.12.7", ".kernel-arm64.json.tmp-123"), []byte("{"), 0o644)
	os.WriteFile(short+".json", []byte(`{"schematic":"`+testID+`","version":"v1.12.7","file":"kernel-arm64","size":99,"sha256":"`+strings.Repeat("0", 64)+`"}`), 0o644)

	release()
	e := newEnv(t, envOpts{dir: dir})
	if got := dataFiles(t, dir); len(got) != 0 || len(e.cache.List()) != 0 {
		t.Fatalf("after restart: got files %q, entries %v; want none", got, e.cache.List())
	}
	for _, file := range []string{"initramfs-amd64.xz", "kernel-amd64", "kernel-arm64"} {
		resp, body, err := get(t, e.url+assetPath(file))
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, e.fake.Asset(file)) {
			t.Errorf("%s after restart: got %v, %v, %d bytes; want the full asset", file, resp, err, len(body))
		}
	}
}

// TestDiskFull: a fetch that runs out of disk leaves nothing behind and
// reports the disk. Needs root to mount a tiny tmpfs.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	if _, err := exec.LookPath("mount"); err != nil {
		t.Skip("needs mount(8)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=128k", "tinderbox-test", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	e := newEnv(t, envOpts{dir: dir})
	resp, _, err := get(t, e.url+assetPath("initramfs-amd64.xz"))
	if err == nil && resp.StatusCode == 200 {
		t.Fatal("got a complete transfer of a 256 KiB asset on a 128 KiB disk")
	}
	k, _ := cache.NewKey(testID, "v1.12.7", "initramfs-amd64.xz")
	_, err = e.cache.Ensure(t.Context(), k, nil)
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("got %v, want no space left on device", err)
	}
	if got := counter(t, e.reg, "tinderbox_factory_fetches_total", "result", "disk"); got != 2 {
		t.Errorf("got %v disk failures, want 2", got)
	}
	if got := dataFiles(t, dir); len(got) != 0 {
		t.Errorf("got files %q, want none", got)
	}
	// A smaller asset still fits, once the failed download's space is
	// freed: its unlinked file lives until the last request streaming it
	// has closed it.
	waitFor(t, func() bool {
		resp, body, err := get(t, e.url+assetPath("kernel-amd64"))
		return err == nil && resp.StatusCode == 200 && len(body) == 64<<10
	})
}
