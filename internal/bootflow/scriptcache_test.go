package bootflow

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/boot"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// swapCmdlines is an Image Factory whose kernel command line can change.
type swapCmdlines struct{ v atomic.Value }

func (c *swapCmdlines) Cmdline(context.Context, string, string, machine.Arch) (string, error) {
	return c.v.Load().(string), nil
}

// cacheHarness is a Flow with binding off, not pinned, serving on a
// loopback listener, whose profiles, factory and records a test changes
// between script requests.
type cacheHarness struct {
	flow  *Flow
	store *state.Store
	profs *fakeProfiles
	cmd   *swapCmdlines
	base  string // the listener's http://127.0.0.1:PORT
	hc    *http.Client
}

func newCacheHarness(t *testing.T) *cacheHarness {
	t.Helper()
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h := &cacheHarness{
		store: store,
		profs: &fakeProfiles{policy: machine.UnknownMaintenance, machines: map[machine.MAC]profiles.Profile{
			macOnce: {Hostname: "cp-01", Install: machine.InstallOnce, Talos: profiles.Talos{Version: "v1.12.7", SchematicID: schematic},
				KernelArgs: []string{"tinderbox.host=${hostname}", "tinderbox.uuid=${uuid}"}},
		}},
		cmd: &swapCmdlines{},
		hc:  &http.Client{},
	}
	h.cmd.v.Store(cmdline)
	h.flow = New(Options{
		BaseURL: "http://" + advertised + ":8080", Own: ownAt(netip.MustParseAddr(advertised)), OwnAt: ownAt,
		LocalBoot: "exit", Store: store, Profiles: h.profs, Cmdlines: h.cmd,
	})
	base, ok := serveOn(t, h.flow, "127.0.0.1:0")
	if !ok {
		t.Fatal("cannot listen on 127.0.0.1")
	}
	h.base = base
	t.Cleanup(h.hc.CloseIdleConnections)
	return h
}

// script GETs mac's script from base with uuid and returns the 200 body.
func (h *cacheHarness) script(t *testing.T, base string, mac machine.MAC, uuid string) string {
	t.Helper()
	body, err := h.fetch(base, mac, uuid)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// fetch is script for any goroutine: it returns an error unless the
// answer is a 200 whose Content-Length is its body's length.
func (h *cacheHarness) fetch(base string, mac machine.MAC, uuid string) (string, error) {
	u := base + "/ipxe?" + url.Values{"mac": {mac.Dashed()}, "uuid": {uuid}, "arch": {"x86_64"}}.Encode()
	resp, err := h.hc.Get(u)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: got %d %q, want 200", u, resp.StatusCode, b)
	}
	if resp.ContentLength != int64(len(b)) {
		return "", fmt.Errorf("GET %s: Content-Length %d, body %d bytes", u, resp.ContentLength, len(b))
	}
	return string(b), nil
}

// setProfile changes mac's profile, as a reload does.
func (h *cacheHarness) setProfile(mac machine.MAC, fn func(p *profiles.Profile)) {
	h.profs.mu.Lock()
	defer h.profs.mu.Unlock()
	p := h.profs.machines[mac]
	p.KernelArgs = append([]string(nil), p.KernelArgs...) // a reload makes new slices
	fn(&p)
	h.profs.machines[mac] = p
}

const otherUUID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"

// TestScriptCacheNeverStale changes one input of a machine's script at a
// time, after the script was cached, and checks that the next answer is
// the script of the new inputs.
func TestScriptCacheNeverStale(t *testing.T) {
	tests := []struct {
		name string
		// change changes one input; it returns the base URL to ask next.
		change func(t *testing.T, h *cacheHarness) string
		// uuid is the uuid the request after the change sends.
		uuid string
		// want and notWant must and must not be in the new script.
		want, notWant []string
		// same is true when the change leaves the script as it was.
		same bool
	}{{
		name: "profile reload changes kernel args",
		change: func(t *testing.T, h *cacheHarness) string {
			h.setProfile(macOnce, func(p *profiles.Profile) { p.KernelArgs = append(p.KernelArgs, "tinderbox.added=1") })
			return h.base
		},
		want: []string{" tinderbox.added=1"},
	}, {
		// In the slice served before, as a Profiles that reuses its
		// arrays would: the cache keeps a copy.
		name: "profile changes a kernel arg in place",
		change: func(t *testing.T, h *cacheHarness) string {
			h.profs.mu.Lock()
			h.profs.machines[macOnce].KernelArgs[0] = "tinderbox.host=changed-${hostname}"
			h.profs.mu.Unlock()
			return h.base
		},
		want: []string{" tinderbox.host=changed-cp-01 "}, notWant: []string{" tinderbox.host=cp-01 "},
	}, {
		name: "profile reload changes hostname",
		change: func(t *testing.T, h *cacheHarness) string {
			h.setProfile(macOnce, func(p *profiles.Profile) { p.Hostname = "cp-02" })
			return h.base
		},
		want: []string{" tinderbox.host=cp-02 "}, notWant: []string{"cp-01"},
	}, {
		name: "profile reload changes Talos version",
		change: func(t *testing.T, h *cacheHarness) string {
			h.setProfile(macOnce, func(p *profiles.Profile) { p.Talos.Version = "v1.12.8" })
			return h.base
		},
		want: []string{"/v1.12.8/kernel-amd64 "}, notWant: []string{"v1.12.7"},
	}, {
		name: "profile reload changes schematic",
		change: func(t *testing.T, h *cacheHarness) string {
			h.setProfile(macOnce, func(p *profiles.Profile) { p.Talos.SchematicID = strings.Repeat("cd", 32) })
			return h.base
		},
		want: []string{"/assets/" + strings.Repeat("cd", 32) + "/"}, notWant: []string{schematic},
	}, {
		// The firmware's arch was amd64 already, and the script shows
		// the schematic's ID, not its name.
		name: "profile reload changes what the script does not show",
		change: func(t *testing.T, h *cacheHarness) string {
			h.setProfile(macOnce, func(p *profiles.Profile) { p.Talos.Arch = machine.ArchAMD64; p.Talos.Schematic = "named" })
			return h.base
		},
		want: []string{"/kernel-amd64 "}, same: true,
	}, {
		name: "machine reports another UUID",
		change: func(t *testing.T, h *cacheHarness) string {
			return h.base
		},
		uuid: strings.ToUpper(otherUUID),
		want: []string{" tinderbox.uuid=" + otherUUID + " "}, notWant: []string{strings.ToLower(testUUID)},
	}, {
		name: "factory cmdline changes",
		change: func(t *testing.T, h *cacheHarness) string {
			h.cmd.v.Store("talos.platform=metal console=ttyS0")
			// The flow asks the factory once per image; forget its answer
			// as it does past maxCmdlines images.
			h.flow.cmdMu.Lock()
			clear(h.flow.cmdlines)
			h.flow.cmdMu.Unlock()
			return h.base
		},
		want: []string{" console=ttyS0 "}, notWant: []string{"console=tty0"},
	}, {
		name: "request arrives on another local address",
		change: func(t *testing.T, h *cacheHarness) string {
			base, ok := serveOn(t, h.flow, "127.0.0.2:0")
			if !ok {
				t.Skip("cannot listen on 127.0.0.2")
			}
			return base
		},
		want: []string{"http://127.0.0.2:", "talos.events.sink=127.0.0.2:8091"}, notWant: []string{"127.0.0.1"},
	}, {
		name: "token rotated by a reinstall",
		change: func(t *testing.T, h *cacheHarness) string {
			if _, err := h.store.Update(macOnce, func(m *state.Machine, _ bool) error { m.Reinstall(); return nil }); err != nil {
				t.Fatal(err)
			}
			return h.base
		},
	}, {
		name: "installed machine boots its disk",
		change: func(t *testing.T, h *cacheHarness) string {
			if _, err := h.store.Update(macOnce, func(m *state.Machine, _ bool) error { m.State = machine.Installed; return nil }); err != nil {
				t.Fatal(err)
			}
			return h.base
		},
		want: []string{"\nexit 1\n"}, notWant: []string{"talos.config="},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newCacheHarness(t)
			first := h.script(t, h.base, macOnce, testUUID)
			if again := h.script(t, h.base, macOnce, testUUID); again != first {
				t.Fatalf("unchanged inputs: got\n%s\nwant the first script\n%s", again, first)
			}
			if n := h.flow.scripts.size(); n != 1 {
				t.Fatalf("scripts cached: got %d, want 1", n)
			}
			base := tt.change(t, h)
			uuid := testUUID
			if tt.uuid != "" {
				uuid = tt.uuid
			}
			if err := h.flow.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			got := h.script(t, base, macOnce, uuid)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("new script lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("new script still has %q:\n%s", w, got)
				}
			}
			if tt.same != (got == first) {
				t.Errorf("script after the change: got\n%s\nbefore\n%s\nwant them equal: %v", got, first, tt.same)
			}
			if m, ok := configURLRe.FindStringSubmatch(got), strings.Contains(got, "talos.config="); ok {
				rec, _, err := h.store.Get(macOnce)
				if err != nil {
					t.Fatal(err)
				}
				if want := h.store.Token(rec); !strings.HasSuffix(m[1], "?token="+want) {
					t.Errorf("talos.config %s: want the record's token %s (generation %d)", m[1], want, rec.Generation)
				}
			}
		})
	}
}

// TestScriptCacheMaintenance checks the cache for a machine with no
// profile: a change of the maintenance boot's kernel arguments, and a
// profile that makes it a netboot of the same image with the same
// arguments, each give the new script.
func TestScriptCacheMaintenance(t *testing.T) {
	h := newCacheHarness(t)
	first := h.script(t, h.base, macUnknown, testUUID)
	if !strings.Contains(first, "maintenance-mode boot") || !strings.Contains(first, " talos.dashboard.disabled=1") {
		t.Fatalf("not the maintenance script:\n%s", first)
	}
	if again := h.script(t, h.base, macUnknown, testUUID); again != first {
		t.Fatalf("unchanged inputs: got\n%s\nwant\n%s", again, first)
	}
	h.profs.mu.Lock()
	h.profs.maintArgs = []string{"talos.dashboard.disabled=0"}
	h.profs.mu.Unlock()
	if got := h.script(t, h.base, macUnknown, testUUID); !strings.Contains(got, " talos.dashboard.disabled=0") || strings.Contains(got, "disabled=1") {
		t.Errorf("maintenance args changed: got\n%s", got)
	}
	talos, args := h.profs.Maintenance(), h.profs.MaintenanceArgs()
	h.setProfile(macUnknown, func(p *profiles.Profile) {
		*p = profiles.Profile{Install: machine.InstallOnce, Talos: talos, KernelArgs: args}
	})
	if got := h.script(t, h.base, macUnknown, testUUID); !strings.Contains(got, "# tinderbox: netboot Talos") || !strings.Contains(got, "talos.config=") {
		t.Errorf("profile added: got\n%s", got)
	}
}

// TestScriptCacheConcurrent serves scripts of several machines to many
// goroutines while a writer changes every machine's kernel arguments
// (a revision number): no answer may name another machine, or a revision
// older than the one in place when its request was sent.
func TestScriptCacheConcurrent(t *testing.T) {
	h := newCacheHarness(t)
	macs := make([]machine.MAC, 8)
	for i := range macs {
		macs[i] = machine.MAC{0x02, 0, 0, 0, 0x10, byte(i)}
		h.setProfile(macs[i], func(p *profiles.Profile) {
			*p = profiles.Profile{Hostname: fmt.Sprintf("n-%d", i), Install: machine.InstallOnce,
				Talos: profiles.Talos{Version: "v1.12.7", SchematicID: schematic}, KernelArgs: []string{"tinderbox.host=${hostname}", "tinderbox.rev=0"}}
		})
	}
	h.hc.Transport = &http.Transport{MaxIdleConnsPerHost: 16}
	var rev atomic.Int64
	stop := make(chan struct{})
	var writer sync.WaitGroup
	writer.Go(func() {
		for r := int64(1); ; r++ {
			select {
			case <-stop:
				return
			default:
			}
			for _, mac := range macs {
				h.setProfile(mac, func(p *profiles.Profile) { p.KernelArgs[1] = "tinderbox.rev=" + strconv.FormatInt(r, 10) })
			}
			rev.Store(r)
		}
	})
	revRe := regexp.MustCompile(` tinderbox\.rev=(\d+) `)
	var readers sync.WaitGroup
	for g := range 16 {
		readers.Go(func() {
			for i := range 40 {
				n := (g + i) % len(macs)
				before := rev.Load()
				got, err := h.fetch(h.base, macs[n], testUUID)
				if err != nil {
					t.Error(err)
					return
				}
				m := revRe.FindStringSubmatch(got)
				if m == nil {
					t.Errorf("script of %s has no revision:\n%s", macs[n], got)
					return
				}
				if r, _ := strconv.ParseInt(m[1], 10, 64); r < before {
					t.Errorf("script of %s: revision %d, older than %d in place before the request", macs[n], r, before)
				}
				if !strings.Contains(got, fmt.Sprintf(" tinderbox.host=n-%d ", n)) || !strings.Contains(got, "for "+macs[n].String()+"\n") {
					t.Errorf("script of %s names another machine:\n%s", macs[n], got)
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	writer.Wait()
	if n, bound := h.flow.scripts.size(), len(macs)*maxScriptsPerMachine; n > bound {
		t.Errorf("scripts cached: got %d, want at most %d", n, bound)
	}
}

// TestScriptCacheBounds fills the cache past its bounds: per machine and
// per shard (so in all), the newest script is kept.
func TestScriptCacheBounds(t *testing.T) {
	var c scriptCache
	mac := machine.MAC{0x02, 0, 0, 0, 0, 1}
	pages := make([]*scriptPage, maxScriptsPerMachine+1)
	for i := range pages {
		pages[i] = newPage(http.StatusOK, fmt.Sprintf("script %d", i))
		c.put(mac, scriptKey{action: boot.Netboot, generation: uint64(i)}, nil, pages[i])
	}
	if n := c.size(); n != maxScriptsPerMachine {
		t.Errorf("one machine's scripts: got %d, want %d", n, maxScriptsPerMachine)
	}
	if got := c.get(mac, scriptKey{action: boot.Netboot, generation: 0}, nil); got != nil {
		t.Errorf("oldest script: got %q, want it dropped", got.body)
	}
	for i := 1; i < len(pages); i++ {
		if got := c.get(mac, scriptKey{action: boot.Netboot, generation: uint64(i)}, nil); got != pages[i] {
			t.Errorf("script %d: got %v, want it kept", i, got)
		}
	}
	// Machines whose MACs fall in one shard.
	var last machine.MAC
	for i := range maxScriptsPerShard + 10 {
		last = machine.MAC{0x02, 0, byte(i >> 8), byte(i), 0, 1}
		c.put(last, scriptKey{action: boot.LocalBoot}, nil, pages[0])
	}
	if s := c.shard(mac); s.n != maxScriptsPerShard || len(s.m) > maxScriptsPerShard {
		t.Errorf("full shard: %d scripts of %d machines, want %d at most", s.n, len(s.m), maxScriptsPerShard)
	}
	if got := c.get(last, scriptKey{action: boot.LocalBoot}, nil); got != pages[0] {
		t.Error("newest machine's script dropped from a full shard")
	}
	if n := c.size(); n > scriptShards*maxScriptsPerShard {
		t.Errorf("cache: %d scripts, want at most %d", n, scriptShards*maxScriptsPerShard)
	}
}

// TestScriptCacheHitAllocatesNothing checks what a cached script costs a
// request of its own: no allocation to find it, whatever the arguments'
// backing arrays.
func TestScriptCacheHitAllocatesNothing(t *testing.T) {
	var c scriptCache
	k := scriptKey{action: boot.Netboot, uuid: strings.ToLower(testUUID), hostname: "cp-01", cmdline: cmdline, generation: 3,
		local: netip.MustParseAddrPort("127.0.0.1:8080"), talos: profiles.Talos{Version: "v1.12.7", SchematicID: schematic}}
	args := []string{"a=1", "b=2"}
	p := newPage(http.StatusOK, "script")
	c.put(machine.MAC{2, 0, 0, 0, 0, 1}, k, args, p)
	other := []string{"a=1", "b=2"}
	if n := testing.AllocsPerRun(100, func() {
		if c.get(machine.MAC{2, 0, 0, 0, 0, 1}, k, other) != p {
			t.Fatal("miss")
		}
	}); n != 0 {
		t.Errorf("cache hit: %v allocations, want 0", n)
	}
}
