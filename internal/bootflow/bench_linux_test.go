package bootflow

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tinderbox-boot/tinderbox/internal/evidence"
	"github.com/tinderbox-boot/tinderbox/internal/netnstest"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// BenchmarkEvidence is the A/B of the evidence check (scripts/bench-binding.sh
// prints its medians): GET /ipxe and GET /config for a machine, with binding
// off and with binding on against the kernel's own neighbour table holding
// 5000 entries (in a namespace of the benchmark's own). The state database
// lives in /dev/shm when there is one, so fsync does not drown the
// difference.
func BenchmarkEvidence(b *testing.B) {
	ns := netnstest.New(b)
	netnstest.IP(b, "-n", ns, "link", "add", "dev0", "type", "veth", "peer", "name", "dev1")
	netnstest.IP(b, "-n", ns, "addr", "add", "10.78.0.1/16", "dev", "dev0")
	netnstest.IP(b, "-n", ns, "link", "set", "dev1", "up")
	netnstest.IP(b, "-n", ns, "link", "set", "dev0", "up")
	var batch strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&batch, "neigh add 10.78.%d.%d lladdr 02:00:00:00:%02x:%02x dev dev0 nud permanent\n", 1+i/250, 1+i%250, i>>8, i&0xff)
	}
	fmt.Fprintf(&batch, "neigh add 10.78.100.1 lladdr %s dev dev0 nud permanent\n", macOnce)
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("ip -batch: %v\n%s", err, out)
	}
	var (
		kernel *evidence.Kernel
		err    error
	)
	kernel, err = evidence.OpenKernel(nil, ns)
	if err != nil {
		b.Fatal(err)
	}
	defer kernel.Close()
	src := netip.MustParseAddr("10.78.100.1")
	for i := 0; ; i++ {
		if mac, ok, _ := kernel.Lookup(src); ok && mac == macOnce && kernel.Following() {
			break
		}
		if i == 500 {
			b.Fatal("the neighbour table never settled")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// flow returns a fresh boot flow, its machine already at its bound of
	// 64 events, and a GET that must answer 200.
	flow := func(b *testing.B, binding bool) (get func(string), script, cfg string) {
		dir := b.TempDir()
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			if dir, err = os.MkdirTemp("/dev/shm", "tbxbench"); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { os.RemoveAll(dir) })
		}
		store, err := state.Open(dir, state.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { store.Close() })
		opts := evidence.Options{Enabled: binding}
		if binding {
			opts.Neighbours = kernel
		}
		ev, err := evidence.New(opts)
		if err != nil {
			b.Fatal(err)
		}
		profs := &fakeProfiles{policy: machine.UnknownMaintenance, machines: map[machine.MAC]profiles.Profile{
			macOnce: {Hostname: "cp-01", Install: machine.InstallAlways, Talos: profiles.Talos{Version: "v1.12.7", SchematicID: schematic}},
		}}
		f := New(Options{BaseURL: "http://10.78.0.1:8080", LocalBoot: "exit", Store: store, Profiles: profs, Cmdlines: fakeCmdlines{}, Evidence: ev})
		r := chi.NewRouter()
		f.Mount(r)
		get = func(target string) {
			req := httptest.NewRequest(http.MethodGet, target, nil)
			req.RemoteAddr = src.String() + ":40000"
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
			}
		}
		script = scriptPath(macOnce)
		for range 64 {
			get(script)
		}
		m, _, _ := store.Get(macOnce)
		return get, script, strings.TrimPrefix(f.ConfigURL(m), "http://10.78.0.1:8080")
	}
	for _, endpoint := range []string{"ipxe", "config"} {
		for _, binding := range []string{"off", "on"} {
			b.Run(endpoint+"/binding="+binding, func(b *testing.B) {
				get, script, cfg := flow(b, binding == "on")
				target := script
				if endpoint == "config" {
					target = cfg
				}
				for b.Loop() {
					get(target)
				}
			})
		}
	}
}
