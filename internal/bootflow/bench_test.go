package bootflow

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// benchMachines is how many machines BenchmarkBootHTTP rotates through,
// as scripts/bench-http.sh does.
const benchMachines = 1000

// BenchmarkBootHTTP is the boot HTTP hot path as a storm sees it: GET
// /ipxe and GET /config?token= for 1000 machines with install-once
// profiles, rotating, on one goroutine and on 32 (b.SetParallelism),
// against a state database on the real disk (fsync included). Binding is
// off, as in the throughput rows of scripts/bench-http.sh. The config
// rows fetch the configs of machines already installing (their first
// fetch, the pending → installing transition, is made before the timer).
func BenchmarkBootHTTP(b *testing.B) {
	for _, endpoint := range []string{"ipxe", "config"} {
		for _, conns := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/c=%d", endpoint, conns), func(b *testing.B) {
				store, err := state.Open(b.TempDir(), state.Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { store.Close() })
				profs := &fakeProfiles{policy: machine.UnknownMaintenance, machines: map[machine.MAC]profiles.Profile{}}
				macs := make([]machine.MAC, benchMachines)
				for i := range macs {
					macs[i] = machine.MAC{0x02, 0, 0, 0, byte(i >> 8), byte(i)}
					profs.machines[macs[i]] = profiles.Profile{Hostname: fmt.Sprintf("n-%d", i), Install: machine.InstallOnce, Talos: profiles.Talos{Version: "v1.12.7", SchematicID: schematic}}
				}
				f := New(Options{BaseURL: "http://192.0.2.1:8080", LocalBoot: "exit", Store: store, Profiles: profs, Cmdlines: fakeCmdlines{}})
				r := chi.NewRouter()
				f.Mount(r)
				get := func(target string) {
					req := httptest.NewRequest(http.MethodGet, target, nil)
					req.RemoteAddr = "192.0.2.50:40000"
					w := httptest.NewRecorder()
					r.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Errorf("GET %s: %d %s", target, w.Code, w.Body)
					}
				}
				targets := make([]string, len(macs))
				for i, mac := range macs {
					targets[i] = scriptPath(mac)
					get(targets[i])
				}
				if endpoint == "config" {
					for i, mac := range macs {
						m, _, err := store.Get(mac)
						if err != nil {
							b.Fatal(err)
						}
						targets[i] = strings.TrimPrefix(f.ConfigURL(m), "http://192.0.2.1:8080")
						get(targets[i])
					}
				}
				if err := f.Flush(b.Context()); err != nil {
					b.Fatal(err)
				}
				var next atomic.Uint64
				b.ReportAllocs()
				b.ResetTimer()
				if conns == 1 {
					for b.Loop() {
						get(targets[next.Add(1)%benchMachines])
					}
				} else {
					b.SetParallelism(conns)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							get(targets[next.Add(1)%benchMachines])
						}
					})
				}
				b.StopTimer()
				if err := f.Flush(b.Context()); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
