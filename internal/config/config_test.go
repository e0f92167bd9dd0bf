package config

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/tinderbox-boot/tinderbox/internal/problem"
)

// chdirRoot makes the repository root the working directory, so the paths
// inside testdata/config/*.yaml read the same as in the file.
func chdirRoot(t *testing.T) {
	t.Helper()
	t.Chdir(filepath.Join("..", ".."))
}

// wants reads the "# want: …" lines of a testdata config: the problems
// Load must report, one substring each.
func wants(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			out = append(out, w)
		}
	}
	return out
}

// problems splits Load's joined error into its problems.
func problems(err error) []string {
	var out []string
	for _, e := range problem.Leaves(err) {
		out = append(out, e.Error())
	}
	return out
}

func TestLoadTestdata(t *testing.T) {
	chdirRoot(t)
	files, err := filepath.Glob("testdata/config/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata configs: %v", err)
	}
	for _, file := range files {
		if filepath.Base(file) == "empty.yaml" {
			continue // needs its dirs from the environment: TestDefaults
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			want := wants(t, file)
			_, err := Load(Options{Path: file, SearchPath: []string{}})
			got := problems(err)
			if len(got) != len(want) {
				t.Errorf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
			}
			for _, w := range want {
				if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, w) }) {
					t.Errorf("no problem contains %q; got:\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}
}

func TestLoadValidDecodesEveryKey(t *testing.T) {
	chdirRoot(t)
	cfg, err := Load(Options{Path: "testdata/config/valid.yaml", SearchPath: []string{}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &Config{
		Advertise: "192.0.2.10",
		HTTP:      HTTP{Listen: ":18080"},
		Admin:     Admin{Listen: "127.0.0.1:18081", Hosts: []string{"tinderbox.example", "tinderbox.example:8443"}},
		DHCP:      DHCP{Enabled: true, Port: 1067, PXEPort: 14011},
		TFTP:      TFTP{Enabled: true, Listen: "127.0.0.1:1069"},
		IPXE:      IPXE{Dir: "/usr/lib/ipxe", LocalBoot: LocalBootSanboot},
		Factory:   Factory{URL: "https://factory.example.org"},
		Cache:     Cache{Dir: "testdata/config/scratch/cache", MaxSize: 512 << 20},
		State:     State{Dir: "testdata/config/scratch/state"},
		Profiles:  Profiles{Dir: "testdata/config"},
		Log:       Log{Level: "debug", Format: "json"},
		File:      "testdata/config/valid.yaml",
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

// TestDefaults checks the built-in defaults are those docs/configuration.md
// lists.
func TestDefaults(t *testing.T) {
	chdirRoot(t)
	dir := t.TempDir()
	t.Setenv("TINDERBOX_ADVERTISE", "192.0.2.7")
	t.Setenv("TINDERBOX_CACHE_DIR", dir)
	t.Setenv("TINDERBOX_STATE_DIR", dir)
	t.Setenv("TINDERBOX_PROFILES_DIR", dir)
	cfg, err := Load(Options{Path: "testdata/config/empty.yaml"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"http.listen", cfg.HTTP.Listen, ":8080"},
		{"admin.listen", cfg.Admin.Listen, "127.0.0.1:8081"},
		{"tftp.listen", cfg.TFTP.Listen, ":69"},
		{"ipxe.dir", cfg.IPXE.Dir, "/usr/lib/ipxe"},
		{"ipxe.localBoot", cfg.IPXE.LocalBoot, "exit"},
		{"factory.url", cfg.Factory.URL, "https://factory.talos.dev"},
		{"cache.maxSize", cfg.Cache.MaxSize.String(), "20GiB"},
		{"log.level", cfg.Log.Level, "info"},
		{"log.format", cfg.Log.Format, "text"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if !cfg.DHCP.Enabled || cfg.DHCP.Port != 67 || cfg.DHCP.PXEPort != 4011 || !cfg.TFTP.Enabled {
		t.Errorf("dhcp/tftp defaults: got %+v %+v", cfg.DHCP, cfg.TFTP)
	}
}

// TestEveryKeyHasADefault keeps defaults() and the struct in step: a field
// without a default would be unknown to the key check and the environment.
func TestEveryKeyHasADefault(t *testing.T) {
	fields := fieldKeys(reflect.TypeFor[Config](), "")
	slices.Sort(fields)
	if got := Keys(); !slices.Equal(got, fields) {
		t.Errorf("default keys %v\nstruct keys  %v", got, fields)
	}
}

func fieldKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "-" || tag == "" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, fieldKeys(f.Type, key)...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

// TestPrecedence checks flag > environment > file > default, key by key.
func TestPrecedence(t *testing.T) {
	chdirRoot(t)
	tests := []struct {
		name  string
		env   map[string]string
		flags []string
		want  string
	}{
		{name: "file", want: ":18080"},
		{name: "env over file", env: map[string]string{"TINDERBOX_HTTP_LISTEN": ":2000"}, want: ":2000"},
		{name: "flag over env", env: map[string]string{"TINDERBOX_HTTP_LISTEN": ":2000"}, flags: []string{"--http-listen=:3000"}, want: ":3000"},
		{name: "flag over file", flags: []string{"--http-listen", ":3001"}, want: ":3001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			AddFlags(fs)
			if err := fs.Parse(append([]string{"--config", "testdata/config/valid.yaml"}, tt.flags...)); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(Options{Flags: fs})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if cfg.HTTP.Listen != tt.want {
				t.Errorf("http.listen: got %q, want %q", cfg.HTTP.Listen, tt.want)
			}
		})
	}
}

// TestEnvironmentSetsEveryKey checks that TINDERBOX_ + the upper-cased key
// path reaches every key, camel-cased ones included.
func TestEnvironmentSetsEveryKey(t *testing.T) {
	chdirRoot(t)
	t.Setenv("TINDERBOX_DHCP_PXEPORT", "0")
	t.Setenv("TINDERBOX_CACHE_MAXSIZE", "1GB")
	t.Setenv("TINDERBOX_IPXE_LOCALBOOT", "notfound")
	t.Setenv("TINDERBOX_DHCP_ENABLED", "false")
	t.Setenv("TINDERBOX_ADMIN_HOSTS", "a.example,b.example:8443")
	cfg, err := Load(Options{Path: "testdata/config/valid.yaml"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !slices.Equal(cfg.Admin.Hosts, []string{"a.example", "b.example:8443"}) {
		t.Errorf("admin.hosts: got %q", cfg.Admin.Hosts)
	}
	if cfg.DHCP.PXEPort != 0 || cfg.Cache.MaxSize != 1e9 || cfg.IPXE.LocalBoot != "notfound" || cfg.DHCP.Enabled {
		t.Errorf("got pxePort=%d maxSize=%d localBoot=%q dhcp.enabled=%v", cfg.DHCP.PXEPort, cfg.Cache.MaxSize, cfg.IPXE.LocalBoot, cfg.DHCP.Enabled)
	}
}

func TestSearchPath(t *testing.T) {
	chdirRoot(t)
	missing := filepath.Join(t.TempDir(), "none.yaml")
	t.Run("first existing file is read", func(t *testing.T) {
		cfg, err := Load(Options{SearchPath: []string{missing, "testdata/config/valid.yaml"}})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if cfg.File != "testdata/config/valid.yaml" {
			t.Errorf("got file %q, want testdata/config/valid.yaml", cfg.File)
		}
	})
	t.Run("none found means built-in defaults", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv("TINDERBOX_ADVERTISE", "192.0.2.7")
		t.Setenv("TINDERBOX_CACHE_DIR", dir)
		t.Setenv("TINDERBOX_STATE_DIR", dir)
		t.Setenv("TINDERBOX_PROFILES_DIR", dir)
		cfg, err := Load(Options{SearchPath: []string{missing}})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if cfg.File != "" || cfg.HTTP.Listen != ":8080" {
			t.Errorf("got file %q listen %q, want defaults", cfg.File, cfg.HTTP.Listen)
		}
	})
	t.Run("an explicit missing file is an error", func(t *testing.T) {
		_, err := Load(Options{Path: missing})
		if err == nil || !strings.Contains(err.Error(), missing+": file does not exist") {
			t.Errorf("got %v, want an error naming %s", err, missing)
		}
	})
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ByteSize
		err  bool
	}{
		{name: "GiB", in: "20GiB", want: 20 << 30},
		{name: "GB", in: "20GB", want: 20e9},
		{name: "MiB with space", in: "512 MiB", want: 512 << 20},
		{name: "short G", in: "2G", want: 2 << 30},
		{name: "bytes", in: "4096", want: 4096},
		{name: "B suffix", in: "10B", want: 10},
		{name: "fraction", in: "1.5KiB", want: 1536},
		{name: "word", in: "lots", err: true},
		{name: "unit only", in: "GiB", err: true},
		{name: "negative", in: "-1GiB", err: true},
		{name: "overflow", in: "99999999TiB", err: true},
		{name: "NaN", in: "NaN", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseByteSize(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("ParseByteSize(%q): err %v, want error %v", tt.in, err, tt.err)
			}
			if got != tt.want {
				t.Errorf("ParseByteSize(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"20GiB", "1.5 KB", "0", "-1", "1e300TiB", "B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseByteSize(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("ParseByteSize(%q) = %d: negative size accepted", s, v)
		}
		// A size printed by String parses back to itself.
		back, err := ParseByteSize(v.String())
		if err != nil || back != v {
			t.Fatalf("round trip of %q: %d → %q → %d, %v", s, v, v.String(), back, err)
		}
	})
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:8081", true}, {"[::1]:8081", true}, {"localhost:8081", true},
		{":8081", false}, {"0.0.0.0:8081", false}, {"192.0.2.1:8081", false}, {"bad", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := IsLoopback(tt.addr); got != tt.want {
				t.Errorf("IsLoopback(%q) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestCheckCreatableDir(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir string
		ok        bool
	}{
		{name: "existing", dir: tmp, ok: true},
		{name: "missing under existing", dir: filepath.Join(tmp, "a", "b"), ok: true},
		{name: "a file", dir: file, ok: false},
		{name: "under a file", dir: filepath.Join(file, "x"), ok: false},
		{name: "empty", dir: "", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkCreatableDir(tt.dir)
			if (err == nil) != tt.ok {
				t.Errorf("checkCreatableDir(%q) = %v, want ok=%v", tt.dir, err, tt.ok)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(tmp, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("checkCreatableDir created a directory: %v", err)
	}
}
