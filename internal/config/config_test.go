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
	"time"

	"github.com/spf13/pflag"

	"github.com/tinderbox-boot/tinderbox/internal/problem"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
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
		Advertise:       "192.0.2.10",
		AdvertisePinned: true,
		HTTP:            HTTP{Listen: ":18080", WriteTimeout: 45 * time.Second},
		Admin:           Admin{Listen: "127.0.0.1:18081", Hosts: []string{"tinderbox.example", "tinderbox.example:8443"}},
		DHCP:            DHCP{Enabled: true, Interfaces: []string{"lo"}, Port: 1067, PXEPort: 14011, ReplyDelay: 750 * time.Millisecond},
		TFTP:            TFTP{Enabled: true, Listen: "127.0.0.1:1069", MaxBlockSize: 1408, MaxPerClient: 4, MaxTimeout: 20 * time.Second, FirstAckWait: 30 * time.Second},
		IPXE:            IPXE{Dir: "/usr/lib/ipxe", EFIx64: "ipxe.efi", LocalBoot: LocalBootSanboot},
		Factory:         Factory{URL: "https://factory.example.org"},
		Cache: Cache{Dir: "testdata/config/scratch/cache", MaxSize: 512 << 20, Allow: []Image{
			{Schematic: testID, Version: "v1.12.7"},
			{Schematic: testID, Version: "v1.13.0-beta.1", Arch: machine.ArchARM64},
		}},
		State: State{Backend: "etcd", Dir: "testdata/config/scratch/state",
			Etcd: StateEtcd{
				Endpoints: []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}, Prefix: "/site-a/",
				DialTimeout: 3 * time.Second, RequestTimeout: 2 * time.Second,
				TLS:      EtcdTLS{CA: "testdata/config/etcd/ca.pem", Cert: "testdata/config/etcd/client.pem", Key: "testdata/config/etcd/client-key.pem"},
				Username: "tinderbox", Password: "not-a-real-password",
			},
			Discovered: Discovered{Max: 500, TTL: 150 * time.Minute},
			OnCorrupt:  "refuse", Backup: StateBackup{Interval: 30 * time.Minute, Keep: 48}},
		Profiles: Profiles{Dir: "testdata/config"},
		Log:      Log{Level: "debug", Format: "json"},
		Binding:  Binding{RoutedNetworks: []string{"10.20.0.0/24", "fd00:20::/64"}},
		Reports:  Reports{Enabled: true, EventsListen: "127.0.0.1:18091", LogsListen: "127.0.0.1:18092", StallAfter: 20 * time.Minute},
		File:     "testdata/config/valid.yaml",
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

const testID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"

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
		{"http.writeTimeout", cfg.HTTP.WriteTimeout.String(), "30s"},
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
	if !cfg.DHCP.Enabled || cfg.DHCP.Port != 67 || cfg.DHCP.PXEPort != 4011 || !cfg.TFTP.Enabled || cfg.TFTP.MaxBlockSize != 0 {
		t.Errorf("dhcp/tftp defaults: got %+v %+v", cfg.DHCP, cfg.TFTP)
	}
	if len(cfg.Cache.Allow) != 0 {
		t.Errorf("cache.allow: got %v, want none", cfg.Cache.Allow)
	}
	if d := cfg.State.Discovered; d.Max != 1000 || d.TTL != 24*time.Hour {
		t.Errorf("state.discovered defaults: got %+v, want max 1000, ttl 24h", d)
	}
	if s := cfg.State; s.Backend != "bolt" || s.Etcd.Prefix != "/tinderbox/" || len(s.Etcd.Endpoints) != 0 ||
		s.Etcd.DialTimeout != 5*time.Second || s.Etcd.RequestTimeout != 5*time.Second {
		t.Errorf("state backend defaults: got %q %+v; want bolt, and for etcd no endpoints, /tinderbox/, 5s, 5s", s.Backend, s.Etcd)
	}
	if s := cfg.State; s.OnCorrupt != "restore" || s.Backup.Interval != time.Hour || s.Backup.Keep != 24 {
		t.Errorf("state defaults: got onCorrupt %q, backup %+v; want restore, 1h, 24", s.OnCorrupt, s.Backup)
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
	t.Setenv("TINDERBOX_CACHE_ALLOW", testID+"/v1.11.6/amd64, "+testID+"/1.12.7")
	t.Setenv("TINDERBOX_STATE_DISCOVERED_TTL", "0")
	t.Setenv("TINDERBOX_ADMIN_HOSTS", "a.example,b.example:8443")
	cfg, err := Load(Options{Path: "testdata/config/valid.yaml"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.State.Discovered.TTL != 0 {
		t.Errorf("state.discovered.ttl from the environment: got %v, want 0", cfg.State.Discovered.TTL)
	}
	if !slices.Equal(cfg.Admin.Hosts, []string{"a.example", "b.example:8443"}) {
		t.Errorf("admin.hosts: got %q", cfg.Admin.Hosts)
	}
	if cfg.DHCP.PXEPort != 0 || cfg.Cache.MaxSize != 1e9 || cfg.IPXE.LocalBoot != "notfound" || cfg.DHCP.Enabled {
		t.Errorf("got pxePort=%d maxSize=%d localBoot=%q dhcp.enabled=%v", cfg.DHCP.PXEPort, cfg.Cache.MaxSize, cfg.IPXE.LocalBoot, cfg.DHCP.Enabled)
	}
	wantAllow := []Image{{Schematic: testID, Version: "v1.11.6", Arch: machine.ArchAMD64}, {Schematic: testID, Version: "v1.12.7"}}
	if !slices.Equal(cfg.Cache.Allow, wantAllow) {
		t.Errorf("cache.allow from the environment: got %v, want %v", cfg.Cache.Allow, wantAllow)
	}
}

func TestParseImage(t *testing.T) {
	tests := []struct {
		name, in string
		want     Image
		err      string
	}{
		{name: "both arches", in: testID + "/1.12.7", want: Image{Schematic: testID, Version: "v1.12.7"}},
		{name: "one arch", in: testID + "/v1.12.7/arm64", want: Image{Schematic: testID, Version: "v1.12.7", Arch: machine.ArchARM64}},
		{name: "no version", in: testID, err: "want SCHEMATIC-ID/VERSION"},
		{name: "too many parts", in: testID + "/v1.12.7/amd64/kernel-amd64", err: "want SCHEMATIC-ID/VERSION"},
		{name: "upper-case schematic", in: strings.ToUpper(testID) + "/v1.12.7", err: "schematic ID"},
		{name: "bad version", in: testID + "/latest", err: "version"},
		{name: "bad arch", in: testID + "/v1.12.7/riscv64", err: "architecture"},
		{name: "empty", in: "", err: "want SCHEMATIC-ID/VERSION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseImage(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseImage(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseImage(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if back, err := ParseImage(got.String()); err != nil || back != got {
				t.Errorf("round trip of %q: %q → %v, %v", tt.in, got.String(), back, err)
			}
		})
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
	t.Run("TINDERBOX_CONFIG comes before the search path", func(t *testing.T) {
		t.Setenv(ConfigEnv, "testdata/config/valid.yaml")
		cfg, err := Load(Options{SearchPath: []string{missing}})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if cfg.File != "testdata/config/valid.yaml" {
			t.Errorf("got file %q, want testdata/config/valid.yaml", cfg.File)
		}
		t.Setenv(ConfigEnv, missing)
		if _, err := Load(Options{SearchPath: []string{"testdata/config/valid.yaml"}}); err == nil || !strings.Contains(err.Error(), missing+": file does not exist") {
			t.Errorf("TINDERBOX_CONFIG naming a missing file: got %v, want an error naming it", err)
		}
	})
	t.Run("--config comes before TINDERBOX_CONFIG", func(t *testing.T) {
		t.Setenv(ConfigEnv, missing)
		cfg, err := Load(Options{Path: "testdata/config/valid.yaml"})
		if err != nil || cfg.File != "testdata/config/valid.yaml" {
			t.Errorf("got %v, %v; want testdata/config/valid.yaml read", cfg, err)
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

func TestDurationHook(t *testing.T) {
	to := reflect.TypeFor[time.Duration]()
	tests := []struct {
		name    string
		in      any
		want    time.Duration
		wantErr string
	}{
		{name: "go duration", in: "1h30m", want: 90 * time.Minute},
		{name: "zero string", in: "0", want: 0},
		{name: "zero number", in: 0, want: 0},
		{name: "bare number", in: 3600, wantErr: "3600 has no unit"},
		{name: "words", in: "a day", wantErr: `"a day" is not a duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := durationHook(reflect.TypeOf(tt.in), to, tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got %v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if got, err := durationHook(reflect.TypeOf(""), reflect.TypeOf(""), "24h"); got != "24h" || err != nil {
		t.Errorf("a string key: got %v, %v; want it untouched", got, err)
	}
}

// TestAdvertisePinned checks that Load tells a configured advertise from
// the default it finds: only the first is pinned. The default is the first
// IPv4 address of the first interface the responder binds to.
func TestAdvertisePinned(t *testing.T) {
	chdirRoot(t)
	dir := t.TempDir()
	t.Setenv("TINDERBOX_CACHE_DIR", dir)
	t.Setenv("TINDERBOX_STATE_DIR", dir)
	t.Setenv("TINDERBOX_PROFILES_DIR", dir)
	for _, tt := range []struct {
		name          string
		env           map[string]string
		wantAdvertise string
		wantPinned    bool
		wantDevices   []string
	}{
		{"set", map[string]string{"TINDERBOX_ADVERTISE": "192.0.2.7"}, "192.0.2.7", true, nil},
		{"default of dhcp.interface", map[string]string{"TINDERBOX_DHCP_INTERFACE": "lo"}, "127.0.0.1", false, []string{"lo"}},
		{"default of dhcp.interfaces", map[string]string{"TINDERBOX_DHCP_INTERFACES": "lo"}, "127.0.0.1", false, []string{"lo"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := Load(Options{Path: "testdata/config/empty.yaml"})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if cfg.Advertise != tt.wantAdvertise || cfg.AdvertisePinned != tt.wantPinned {
				t.Errorf("got advertise %q pinned %v, want %q pinned %v", cfg.Advertise, cfg.AdvertisePinned, tt.wantAdvertise, tt.wantPinned)
			}
			if got := cfg.DHCP.Devices(); !slices.Equal(got, tt.wantDevices) {
				t.Errorf("dhcp devices: got %q, want %q", got, tt.wantDevices)
			}
		})
	}
}
