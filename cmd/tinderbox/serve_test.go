package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// testConfig returns a valid config whose sockets bind 127.0.0.1:0 and
// whose directories are temporary, with DHCP and TFTP off (they need
// privileged ports; their own packages test them on loopback).
func testConfig(t testing.TB) *config.Config {
	t.Helper()
	dir := t.TempDir()
	profiles := filepath.Join(dir, "profiles")
	if err := os.Mkdir(profiles, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Advertise: "127.0.0.1",
		HTTP:      config.HTTP{Listen: "127.0.0.1:0", WriteTimeout: 30 * time.Second},
		Admin:     config.Admin{Listen: "127.0.0.1:0"},
		DHCP:      config.DHCP{Enabled: false, Port: 67, PXEPort: 4011},
		TFTP:      config.TFTP{Enabled: false, Listen: "127.0.0.1:0", MaxPerClient: 8, MaxTimeout: 10 * time.Second, FirstAckWait: 15 * time.Second},
		IPXE:      config.IPXE{Dir: filepath.Join(dir, "ipxe"), LocalBoot: config.LocalBootExit, EFIx64: "snponly.efi"},
		Factory:   config.Factory{URL: "http://127.0.0.1:1"},
		Cache:     config.Cache{Dir: filepath.Join(dir, "cache"), MaxSize: 1 << 30},
		State: config.State{Dir: filepath.Join(dir, "state"), Discovered: config.Discovered{Max: 1000, TTL: 24 * time.Hour},
			OnCorrupt: "restore", Backup: config.StateBackup{Interval: time.Hour, Keep: 24}},
		Profiles: config.Profiles{Dir: profiles},
		Log:      config.Log{Level: "debug", Format: "text"},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config does not validate: %v", err)
	}
	return cfg
}

// copyTree copies the example profiles so the test can edit them.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}

// testLogger writes the daemon's log, debug and up, into the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startDaemon builds and runs a daemon; it returns the daemon and a stop
// function that cancels it and returns Run's error.
// exampleConfig is testConfig with a copy of the example profiles and a
// fake Image Factory of its own, stopped when the test ends.
func exampleConfig(t testing.TB) *config.Config {
	t.Helper()
	ff, err := fakefactory.Start(fakefactory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ff.Close)
	cfg := testConfig(t)
	copyTree(t, filepath.Join("..", "..", "profiles"), cfg.Profiles.Dir)
	cfg.Factory.URL = ff.URL
	return cfg
}

func startDaemon(t testing.TB, cfg *config.Config) (*daemon, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	d, err := newDaemon(ctx, cfg, testLogger(t))
	if err != nil {
		cancel()
		t.Fatalf("newDaemon: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var stopped bool
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("daemon did not stop within 10s of cancel")
			}
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return d, stop
}

func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func TestServeLifecycle(t *testing.T) {
	// Goroutines alive before the daemon starts are not its own: earlier
	// tests' embedded etcd members close their peers' keep-alive
	// connections a moment after they stop.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := testConfig(t)
	writeIPXE(t, cfg)
	d, stop := startDaemon(t, cfg)
	transport := &http.Transport{}
	client := &http.Client{Transport: transport, Timeout: 5 * time.Second}
	base := "http://" + d.httpAddr.String()

	code, body := get(t, client, base+"/healthz")
	if code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("GET /healthz: got %d %q, want 200 \"ok\"", code, body)
	}
	if code, _ := get(t, client, base+"/no-such-path"); code != http.StatusNotFound {
		t.Errorf("GET /no-such-path: got %d, want 404", code)
	}
	code, body = get(t, client, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: got %d", code)
	}
	for _, want := range []string{
		`tinderbox_http_requests_total{code="2xx",route="/healthz",server="boot"} 1`,
		`tinderbox_http_requests_total{code="4xx",route="unmatched",server="boot"} 1`,
		`tinderbox_http_request_duration_seconds_bucket{route="/healthz",server="boot",le="0.001"}`,
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	problems, err := testutil.GatherAndLint(d.registry)
	if err != nil {
		t.Fatalf("GatherAndLint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("metrics lint: %s: %s", p.Metric, p.Text)
	}

	start := time.Now()
	if err := stop(); err != nil {
		t.Errorf("Run after cancel: got %v, want nil", err)
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("shutdown took %v, want well under the %v grace", took, 6*time.Second)
	}
	transport.CloseIdleConnections()
	if _, err := client.Get(base + "/healthz"); err == nil {
		t.Error("GET /healthz after shutdown: got an answer, want the listener closed")
	}
}

// writeIPXE puts the boot binaries the health's ipxe check wants into
// ipxe.dir.
func writeIPXE(t testing.TB, cfg *config.Config) {
	t.Helper()
	if err := os.MkdirAll(cfg.IPXE.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"undionly.kpxe", cfg.IPXE.EFIx64} {
		writeFile(t, filepath.Join(cfg.IPXE.Dir, f), "iPXE")
	}
}

// TestServeBoundsDiscovered: state.discovered.max and .ttl reach the
// store (a database over them is brought within them at start), and the
// sweeper runs only when a TTL is set.
func TestServeBoundsDiscovered(t *testing.T) {
	cfg := testConfig(t)
	long := time.Now().Add(-48 * time.Hour)
	old, err := state.Open(cfg.State.Dir, state.Options{Now: func() time.Time { return long }})
	if err != nil {
		t.Fatal(err)
	}
	seen := func(i int, st machine.State, at time.Time) {
		t.Helper()
		if _, err := old.Update(machine.MustParseMAC(fmt.Sprintf("52:54:00:00:00:%02x", i)), func(m *state.Machine, _ bool) error {
			m.State = st
			m.Events = append(m.Events, machine.Event{Time: at, Kind: machine.EventDHCPOffer})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	seen(1, machine.Discovered, long) // past the TTL
	seen(2, machine.Installed, long)  // as old, but not discovered
	for i := 3; i < 6; i++ {
		seen(i, machine.Discovered, time.Now().Add(time.Duration(i)*time.Minute-time.Hour))
	}
	old.Close()

	cfg.State.Discovered = config.Discovered{Max: 2, TTL: 24 * time.Hour}
	d, stop := startDaemon(t, cfg)
	list, err := d.state.List()
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, m := range list {
		kept = append(kept, m.MAC.String())
	}
	if want := []string{"52:54:00:00:00:02", "52:54:00:00:00:04", "52:54:00:00:00:05"}; !slices.Equal(kept, want) {
		t.Errorf("records at start: got %v, want %v", kept, want)
	}
	if !slices.ContainsFunc(d.servers, func(s server) bool { return s.name == "state sweeper" }) {
		t.Error("with state.discovered.ttl set, no state sweeper runs")
	}
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}

	cfg.State.Discovered.TTL = 0
	d, _ = startDaemon(t, cfg)
	if slices.ContainsFunc(d.servers, func(s server) bool { return s.name == "state sweeper" }) {
		t.Error("with state.discovered.ttl 0, a state sweeper runs")
	}
}

// TestShutdownWithOpenRequest checks a request in flight at shutdown does
// not hold the daemon past the grace period.
func TestShutdownWithOpenRequest(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent()) // as in TestServeLifecycle
	d, stop := startDaemon(t, testConfig(t))
	conn, err := net.Dial("tcp", d.httpAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half a request: the server waits for the rest of the headers.
	if _, err := fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := stop(); err != nil {
		t.Errorf("Run after cancel: got %v, want nil", err)
	}
	if took := time.Since(start); took > 7*time.Second {
		t.Errorf("shutdown with an open request took %v", took)
	}
}

func TestBusyPortFailsAtStart(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, port, _ := net.SplitHostPort(taken.Addr().String())
	cfg := testConfig(t)
	cfg.HTTP.Listen = taken.Addr().String()
	_, err = newDaemon(t.Context(), cfg, testLogger(t))
	if err == nil {
		t.Fatal("newDaemon on a taken port: got nil error")
	}
	msg := err.Error()
	for _, want := range []string{"boot HTTP", "port " + port, "address already in use"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error %q is not one line", msg)
	}
}

// TestSocketsBoundFirst: every socket is bound before the profiles load
// (which may call the Image Factory) or the state is opened. With the
// profiles broken and the admin port (bound last of the TCP sockets)
// taken, the error is the port's, and nothing was created under
// state.dir; with the port free, the profiles' error comes back and every
// socket bound before it is released.
func TestSocketsBoundFirst(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := testConfig(t)
	cfg.HTTP.Listen = freeTCPAddr(t)
	cfg.Admin.Listen = taken.Addr().String()
	if err := os.WriteFile(filepath.Join(cfg.Profiles.Dir, "defaults.yaml"), []byte("talos: [broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = newDaemon(t.Context(), cfg, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "admin") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("newDaemon with the admin port taken and broken profiles: got %v, want the admin port's error", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.State.Dir, "state.db")); err == nil {
		t.Errorf("state.db was created before every socket was bound")
	}
	taken.Close()
	_, err = newDaemon(t.Context(), cfg, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "profiles") {
		t.Fatalf("newDaemon with broken profiles: got %v, want the profiles' error", err)
	}
	for _, addr := range []string{cfg.HTTP.Listen, cfg.Admin.Listen} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still held after newDaemon failed: %v", addr, err)
			continue
		}
		ln.Close()
	}
}

// freeTCPAddr returns a loopback address with a port that was free a
// moment ago.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestCLI runs the command line as a user would, through execute.
func TestCLI(t *testing.T) {
	root := filepath.Join("..", "..")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	good := cliConfig(t, "127.0.0.1:0", "")
	busy := cliConfig(t, taken.Addr().String(), "")
	_, busyPort, _ := net.SplitHostPort(taken.Addr().String())

	tests := []cliCase{
		{name: "version", args: []string{"version"}, wantStdout: []string{"tinderbox dev", "go1."}},
		{name: "help lists commands", args: []string{"--help"}, wantStdout: []string{"serve", "validate", "version"}},
		{name: "validate good config", args: []string{"validate", "--config", good}, wantStdout: []string{"config " + good + ": ok"}},
		{
			name: "validate broken config prints every problem", args: []string{"validate", "--config", filepath.Join(root, "testdata/config/many-problems.yaml")},
			wantCode: 1, wantStderr: []string{"advertise:", "http.listen:", "log.format:", "cache.maxSize:", "profiles.dir:", "problem(s) found"},
		},
		{
			name: "validate unknown key", args: []string{"validate", "--config", filepath.Join(root, "testdata/config/unknown-key.yaml")},
			wantCode: 1, wantStderr: []string{`unknown-key.yaml:7: unknown key "dhcp.pxeport2"`, `log.level: "loud" is not one of`, "4 problem(s) found"},
		},
		{
			name: "serve on a taken port", args: []string{"serve", "--config", busy},
			wantCode: 1, wantStderr: []string{"tinderbox: boot HTTP: bind tcp port " + busyPort, "address already in use"},
		},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: []string{`unknown command "frobnicate"`, "(see 'tinderbox --help')"}},
		{name: "no command prints help", args: nil, wantStdout: []string{"Available Commands:"}},
		{name: "bad -o", args: []string{"machines", "-o", "xml"}, wantCode: 2, wantStderr: []string{`invalid argument "xml" for "-o, --output" flag: this command prints table, wide, json, yaml`}},
	}
	runCLICases(t, tests)
}

// cliCase is one command line run in-process, with the exit code and the
// text its outputs must and must not hold.
type cliCase struct {
	name       string
	args       []string
	wantCode   int
	wantStdout []string
	wantStderr []string
	// notStdout must not appear on stdout.
	notStdout []string
}

// runCLICases runs each case as a subtest.
func runCLICases(t *testing.T, tests []cliCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := execute(t.Context(), tt.args, &stdout, &stderr)
			code := exitCode(err, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code: got %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tt.notStdout {
				if strings.Contains(stdout.String(), w) {
					t.Errorf("stdout holds %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

func TestServeCommandStopsOnCancel(t *testing.T) {
	cfgPath := cliConfig(t, "127.0.0.1:0", "log: {format: json}\n")
	ctx, cancel := context.WithCancel(t.Context())
	// The test reads serve's log while serve writes it: a file needs no
	// lock for that, where a bytes.Buffer would race.
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stderr.Close() })
	logged := func() string {
		b, err := os.ReadFile(stderr.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	done := make(chan error, 1)
	go func() { done <- execute(ctx, []string{"serve", "--config", cfgPath}, io.Discard, stderr) }()
	// The deadline only keeps a hung start from hanging the test: on a
	// busy machine (the race detector, other builds) a start can take
	// seconds, so it is not a speed check.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(logged(), "tinderbox starting") {
		select {
		case err := <-done:
			t.Fatalf("serve returned %v before it started; stderr:\n%s", err, logged())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start within 60s; stderr:\n%s", logged())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after cancel: got %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return within 10s of cancel")
	}
	if out := logged(); !strings.Contains(out, `"msg":"tinderbox stopped"`) {
		t.Errorf("log lacks a JSON \"tinderbox stopped\" line:\n%s", out)
	}
}

// cliConfig writes a config file for the command line tests: boot HTTP on
// listen, DHCP and TFTP off, directories in a temporary one; extra is
// appended. It returns the file's path.
func cliConfig(t *testing.T, listen, extra string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "tinderbox.yaml")
	writeFile(t, path, fmt.Sprintf(`advertise: 127.0.0.1
http: {listen: %q}
dhcp: {enabled: false}
tftp: {enabled: false}
cache: {dir: %[2]s/cache}
state: {dir: %[2]s/state}
profiles: {dir: %[2]s}
`, listen, dir)+extra)
	return path
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBindingStatus: with binding on, the daemon follows the kernel's
// neighbour table and says so in the status; off, it says that too.
func TestBindingStatus(t *testing.T) {
	for _, on := range []bool{true, false} {
		cfg := testConfig(t)
		cfg.Binding = config.Binding{Enabled: on, RoutedNetworks: []string{"10.20.0.0/24"}}
		d, _ := startDaemon(t, cfg)
		var st api.Status
		for range 200 {
			resp, err := http.Get("http://" + d.adminAddr.String() + "/api/v1/status")
			if err != nil {
				t.Fatal(err)
			}
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if st.Binding.Following == on {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if st.Binding.Enabled != on || st.Binding.Following != on || !slices.Equal(st.Binding.RoutedNetworks, []string{"10.20.0.0/24"}) {
			t.Errorf("binding %v: status %+v", on, st.Binding)
		}
	}
}

// TestValidateKernelCmdline: validate builds each machine's kernel
// command line as a netboot would: a kernel argument that would change
// the script is a problem, and a line that leaves too little room for the
// Image Factory's own arguments gets a warning.
func TestValidateKernelCmdline(t *testing.T) {
	write := func(t *testing.T, kernelArgs string) string {
		t.Helper()
		cfgPath := cliConfig(t, "127.0.0.1:0", "")
		dir := filepath.Dir(cfgPath)
		copyTree(t, filepath.Join("..", "..", "profiles"), dir)
		f := filepath.Join(dir, "machines", "1c-69-7a-00-00-11.yaml")
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, f, string(b)+"kernelArgs: "+kernelArgs+"\n")
		return cfgPath
	}
	run := func(t *testing.T, cfg string) (stdout, stderr string, err error) {
		var out, errOut bytes.Buffer
		err = execute(t.Context(), []string{"validate", "--config", cfg}, &out, &errOut)
		return out.String(), errOut.String(), err
	}

	_, stderr, err := run(t, write(t, `["#x", "console=ttyS0"]`))
	if err == nil || !strings.Contains(stderr, `machine 1c:69:7a:00:00:11: kernel argument "#x"`) {
		t.Errorf("a #word kernel argument: err %v, stderr:\n%s", err, stderr)
	}

	stdout, stderr, err := run(t, write(t, `["a=`+strings.Repeat("x", 1700)+`"]`))
	if err != nil || !strings.Contains(stdout, "profiles ") || !strings.Contains(stderr, "warning: machine 1c:69:7a:00:00:11 (cp-01): its kernel command line is") {
		t.Errorf("a long kernel argument: err %v, stdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}

	_, stderr, err = run(t, write(t, `["console=ttyS0"]`))
	if err != nil || strings.Contains(stderr, "kernel command line") {
		t.Errorf("a short command line: err %v, stderr:\n%s", err, stderr)
	}
}

// TestServeStartsOnLastGoodProfiles: a daemon that once loaded its
// profiles starts again with broken files, serving the copy it kept under
// state.dir, and says so in its status; a state.dir without a copy still
// refuses broken files.
func TestServeStartsOnLastGoodProfiles(t *testing.T) {
	cfg := testConfig(t)
	copyTree(t, filepath.Join("..", "..", "profiles"), cfg.Profiles.Dir)
	_, stop := startDaemon(t, cfg)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(cfg.Profiles.Dir, "defaults.yaml"), "install: sometimes\n")
	d, stop := startDaemon(t, cfg)
	defer func() { _ = stop() }()
	st := d.profiles.Status()
	if st.Err == nil || d.profiles.Set().Len() != 4 {
		t.Errorf("restart on broken files: status err %v, %d machines; want the problem and the 4 machines of the last good set", st.Err, d.profiles.Set().Len())
	}

	fresh := testConfig(t)
	copyTree(t, filepath.Join("..", "..", "profiles"), fresh.Profiles.Dir)
	writeFile(t, filepath.Join(fresh.Profiles.Dir, "defaults.yaml"), "install: sometimes\n")
	if _, err := newDaemon(t.Context(), fresh, testLogger(t)); err == nil || !strings.Contains(err.Error(), "no last good set") {
		t.Errorf("broken files, no copy: got %v, want a refusal", err)
	}
}

// lockedBuffer is an output a command writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
