package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
)

const cacheTestID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"

func startFakeFactory(t *testing.T) *fakefactory.Server {
	t.Helper()
	f, err := fakefactory.Start(fakefactory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// TestServeAssets: the daemon serves /assets from the factory through the
// cache for an image cache.allow names (the profiles name none), refuses
// every other image without asking the factory, and exports the cache's
// metrics.
func TestServeAssets(t *testing.T) {
	f := startFakeFactory(t)
	cfg := testConfig(t)
	cfg.Factory.URL = f.URL
	cfg.Cache.Allow = []config.Image{{Schematic: cacheTestID, Version: "v1.12.7", Arch: "amd64"}}
	d, stop := startDaemon(t, cfg)
	base := "http://" + d.httpAddr.String()
	for range 2 {
		code, body := get(t, http.DefaultClient, base+"/assets/"+cacheTestID+"/1.12.7/initramfs-amd64.xz")
		if code != 200 || body != string(f.Asset("initramfs-amd64.xz")) {
			t.Fatalf("got %d, %d bytes; want 200 and the factory's file", code, len(body))
		}
	}
	if code, body := get(t, http.DefaultClient, base+"/assets/"+cacheTestID+"/latest/kernel-amd64"); code != 400 || !strings.Contains(body, "version") {
		t.Errorf("bad version: got %d %q, want 400", code, body)
	}
	for _, path := range []string{"1.13.0/initramfs-amd64.xz", "1.12.7/initramfs-arm64.xz"} {
		if code, body := get(t, http.DefaultClient, base+"/assets/"+cacheTestID+"/"+path); code != 404 || !strings.Contains(body, "cache.allow") {
			t.Errorf("%s, not allowed: got %d %q, want 404 naming cache.allow", path, code, body)
		}
	}
	if got := f.Counts(); len(got) != 1 {
		t.Errorf("factory requests: got %v, want only the allowed initramfs", got)
	}
	_, metrics := get(t, http.DefaultClient, base+"/metrics")
	for _, want := range []string{
		`tinderbox_cache_lookups_total{result="refused"} 2`,
		`tinderbox_cache_lookups_total{result="hit"} 1`,
		`tinderbox_factory_fetches_total{result="ok"} 1`,
		`tinderbox_factory_requests_total{op="image",result="2xx"} 1`,
		"tinderbox_cache_size_bytes 262144",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// TestCacheCLI runs tinderbox cache prefetch, list and prune as a user would.
func TestCacheCLI(t *testing.T) {
	f := startFakeFactory(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "tinderbox.yaml")
	writeFile(t, conf, fmt.Sprintf(`factory: {url: %q}
cache: {dir: %[2]s/cache, maxSize: 1MiB}
state: {dir: %[2]s/state}
profiles: {dir: %[2]s}
`, f.URL, dir))
	run := func(args ...string) (string, string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := execute(t.Context(), append([]string{"--config", conf, "cache"}, args...), &out, &errOut)
		return out.String(), errOut.String(), err
	}

	out, errOut, err := run("prefetch", "--schematic", cacheTestID, "--version", "1.12.7", "--arch", "amd64")
	if err != nil {
		t.Fatalf("prefetch: %v\n%s", err, errOut)
	}
	if n := strings.Count(out, "cached "+cacheTestID+"/v1.12.7/"); n != 3 {
		t.Errorf("prefetch printed %d cached lines, want 3:\n%s", n, out)
	}
	if strings.Contains(out, "\r") {
		t.Errorf("prefetch drew a progress bar into a buffer:\n%q", out)
	}

	out, _, err = run("list")
	if err != nil || !strings.Contains(out, "initramfs-amd64.xz") || !strings.Contains(out, "3 assets, 320 KiB") {
		t.Errorf("list: got %v\n%s", err, out)
	}
	out, _, err = run("list", "-o", "json")
	var entries []cache.Entry
	if err != nil || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 3 || len(entries[0].SHA256) != 64 {
		t.Errorf("list -o json: got %v, %d entries\n%s", err, len(entries), out)
	}

	// 320 KiB cached, 300 KiB allowed: the oldest (the kernel) goes.
	t.Setenv("TINDERBOX_CACHE_MAXSIZE", "300KiB")
	out, _, err = run("prune")
	if err != nil || !strings.Contains(out, "evicted 1 assets") || !strings.Contains(out, "kernel-amd64") {
		t.Errorf("prune: got %v\n%s", err, out)
	}
	out, _, err = run("prune", "--all")
	if err != nil || !strings.Contains(out, "evicted 2 assets") || !strings.Contains(out, "0 B left") {
		t.Errorf("prune --all: got %v\n%s", err, out)
	}
	if out, _, err := run("list", "-o", "yaml"); err != nil || out != "[]\n" {
		t.Errorf("list -o yaml of an empty cache: got %v %q, want []", err, out)
	}
	if _, _, err := run("list", "-o", "xml"); exitCode(err, io.Discard) != 2 {
		t.Errorf("list -o xml: got %v, want a usage error (exit 2)", err)
	}
}

func TestPrefetchTargets(t *testing.T) {
	tests := []struct {
		name                        string
		schematics, versions, archs []string
		want                        string
		wantErr                     string
	}{
		{name: "one set", schematics: []string{cacheTestID}, versions: []string{"v1.12.7"}, archs: []string{"amd64"}, want: cacheTestID + "/v1.12.7/amd64"},
		{name: "one version, two arches", schematics: []string{cacheTestID}, versions: []string{"v1.12.7"}, archs: []string{"amd64", "arm64"},
			want: cacheTestID + "/v1.12.7/amd64," + cacheTestID + "/v1.12.7/arm64"},
		{name: "paired", schematics: []string{cacheTestID}, versions: []string{"v1.12.7", "v1.13.0"}, archs: []string{"amd64", "arm64"},
			want: cacheTestID + "/v1.12.7/amd64," + cacheTestID + "/v1.13.0/arm64"},
		{name: "no version", schematics: []string{cacheTestID}, archs: []string{"amd64"}, wantErr: "give --schematic and --version"},
		{name: "uneven", schematics: []string{cacheTestID}, versions: []string{"v1.12.7", "v1.13.0"}, archs: []string{"amd64", "arm64", "amd64"}, wantErr: "--version given 2 times"},
		{name: "bad arch", schematics: []string{cacheTestID}, versions: []string{"v1.12.7"}, archs: []string{"x86"}, wantErr: `architecture "x86"`},
		{name: "bad schematic", schematics: []string{"default"}, versions: []string{"v1.12.7"}, archs: []string{"amd64"}, wantErr: "64 lower-case hex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := prefetchTargets(tt.schematics, tt.versions, tt.archs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			var s []string
			for _, tg := range got {
				s = append(s, tg.String())
			}
			if err != nil || strings.Join(s, ",") != tt.want {
				t.Errorf("got %v, %v; want %s", s, err, tt.want)
			}
		})
	}
}

// TestPrefetchFromProfiles runs `cache prefetch` with no flags on the
// repository's example profiles: it fetches what they reference, once.
func TestPrefetchFromProfiles(t *testing.T) {
	ff := startFakeFactory(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tinderbox.yaml")
	writeFile(t, cfgPath, "advertise: 127.0.0.1\n"+
		"factory: {url: \""+ff.URL+"\"}\n"+
		"cache: {dir: "+dir+"/cache}\nstate: {dir: "+dir+"/state}\n"+
		"profiles: {dir: ../../profiles}\n")
	for range 2 {
		var out bytes.Buffer
		if err := execute(t.Context(), []string{"cache", "prefetch", "--config", cfgPath}, &out, io.Discard); err != nil {
			t.Fatalf("cache prefetch: %v", err)
		}
		if got := strings.Count(out.String(), "cached "); got != 3 {
			t.Errorf("cache prefetch: %d assets reported, want kernel, initramfs and cmdline of the one image:\n%s", got, out.String())
		}
	}
	for path, n := range ff.Counts() {
		if strings.HasPrefix(path, "/image/") && n != 1 {
			t.Errorf("factory fetches of %s: got %d, want 1 (the second prefetch must hit the cache)", path, n)
		}
	}
}
