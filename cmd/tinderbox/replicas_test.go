//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tinderbox-boot/tinderbox/internal/state/etcdtest"
	"github.com/tinderbox-boot/tinderbox/internal/talosevents"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// replicaWait bounds every poll for another replica's write to reach a
// replica (its watch) or for etcd to recover; a healthy loopback cluster
// takes milliseconds, a busy two-core machine under the race detector
// seconds.
const replicaWait = 30 * time.Second

// replica is one tinderbox daemon of a multi-replica test.
type replica struct {
	name string
	d    *daemon
	stop func() error
	dhcp int // its proxyDHCP port
}

func (r *replica) base() string  { return "http://" + r.d.httpAddr.String() }
func (r *replica) admin() string { return "http://" + r.d.adminAddr.String() }

// startReplicas starts n daemons sharing the profiles tree under dir, the
// factory at factory and the etcd prefix on cluster; each has its own
// ports, state, cache and iPXE directories.
func startReplicas(t *testing.T, n int, cluster *etcdtest.Cluster, prefix, dir, factory string) []*replica {
	t.Helper()
	var reps []*replica
	for i := range n {
		cfg := testConfig(t)
		writeIPXE(t, cfg)
		cfg.Profiles.Dir = dir
		cfg.Factory.URL = factory
		cfg.DHCP.Enabled, cfg.DHCP.Port, cfg.DHCP.PXEPort = true, freeUDPPort(t), freeUDPPort(t)
		cfg.Reports.Enabled, cfg.Reports.EventsListen, cfg.Reports.LogsListen = true, "127.0.0.1:0", "127.0.0.1:0"
		cfg.State.Backend = "etcd"
		cfg.State.Etcd.Endpoints = cluster.Endpoints()
		cfg.State.Etcd.Prefix = prefix
		cfg.State.Etcd.DialTimeout, cfg.State.Etcd.RequestTimeout = 5*time.Second, 2*time.Second
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		d, stop := startDaemon(t, cfg)
		reps = append(reps, &replica{name: string(rune('A' + i)), d: d, stop: stop, dhcp: cfg.DHCP.Port})
	}
	return reps
}

// host is a machine on the replicas' segment, at its own loopback
// address, so that each replica tells its requests and reports apart
// from the other machines'.
type host struct {
	t      *testing.T
	mac    machine.MAC
	ip     net.IP
	client *http.Client
	dial   *net.Dialer
}

func newHost(t *testing.T, mac string, ip net.IP) *host {
	dial := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
	return &host{
		t: t, mac: machine.MustParseMAC(mac), ip: ip, dial: dial,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dial.DialContext}},
	}
}

// lease plays the machine's broadcast DHCPREQUEST for its router's lease,
// which every replica on the segment hears (replicas run with binding
// off here, as the neighbour table knows no loopback host): each learns
// the machine's address from it, to attribute its transfers and its
// Talos' reports.
func (h *host) lease(reps ...*replica) {
	h.t.Helper()
	hw := net.HardwareAddr(h.mac[:])
	req, err := dhcpv4.New(dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7}),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(h.ip)))
	if err != nil {
		h.t.Fatal(err)
	}
	for _, r := range reps {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: r.dhcp})
		if err != nil {
			h.t.Fatal(err)
		}
		if _, err := c.Write(req.ToBytes()); err != nil {
			h.t.Fatal(err)
		}
		c.Close()
		poll(h.t, fmt.Sprintf("replica %s learning %s at %s", r.name, h.mac, h.ip), func() bool {
			got, ok := r.d.flow.MACOf(h.ip.String())
			return ok && got == h.mac
		})
	}
}

// get fetches url from the machine's address.
func (h *host) get(url string) (int, string) {
	h.t.Helper()
	return get(h.t, h.client, url)
}

// fetch is get for another goroutine than the test's: a failed request
// is an error, which it reports as status 0.
func (h *host) fetch(url string) (int, string) {
	resp, err := h.client.Get(url)
	if err != nil {
		h.t.Errorf("GET %s: %v", url, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Errorf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// scriptURL is the machine's iPXE script URL on r.
func (h *host) scriptURL(r *replica) string {
	return r.base() + "/ipxe?mac=" + h.mac.Dashed() + "&uuid=11111111-1111-1111-1111-111111111111&arch=x86_64"
}

// script is the machine's iPXE script from r.
func (h *host) script(r *replica) (int, string) {
	h.t.Helper()
	return h.get(h.scriptURL(r))
}

// publish sends msg, as event id, to the event sink at sink from the
// machine's address, as its Talos does, and returns the sink's answer.
func (h *host) publish(sink, id string, msg any) error {
	h.t.Helper()
	conn, err := grpc.NewClient(sink, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return h.dial.DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close()
	return talosevents.Publish(h.t.Context(), conn, id, msg)
}

// talos publishes msgs to the event sink at sink, each under an id of
// its own.
func (h *host) talos(sink string, msgs ...any) {
	h.t.Helper()
	for _, m := range msgs {
		if err := h.publish(sink, fmt.Sprintf("%s-%T-%p", h.mac, m, &m), m); err != nil {
			h.t.Fatalf("publish %T to %s: %v", m, sink, err)
		}
	}
}

// onto rewrites the URL u (from a script one replica served) to name r's
// boot HTTP server: the test plays the shared address (a VIP, a Service)
// that takes a machine to whichever replica is alive.
func onto(t *testing.T, u string, r *replica) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	p.Host = r.d.httpAddr.String()
	return p.String()
}

// poll calls ok until it holds, failing the test after replicaWait.
func poll(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(replicaWait); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, replicaWait)
		}
	}
}

// view is the machine as r's admin API shows it.
func view(t *testing.T, r *replica, mac machine.MAC) api.Machine {
	t.Helper()
	code, body := get(t, http.DefaultClient, r.admin()+"/api/v1/machines/"+mac.String())
	if code != http.StatusOK {
		t.Fatalf("replica %s: GET /api/v1/machines/%s: %d %s", r.name, mac, code, body)
	}
	var m api.Machine
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// settled waits until every replica's queued writes are in etcd and
// every replica's cache holds the same record of mac, and returns it.
func settled(t *testing.T, mac machine.MAC, reps ...*replica) machineRecord {
	t.Helper()
	for _, r := range reps {
		if err := r.d.flow.Flush(t.Context()); err != nil {
			t.Fatalf("replica %s: flush: %v", r.name, err)
		}
	}
	var rec machineRecord
	poll(t, "replicas agreeing on "+mac.String(), func() bool {
		var first []byte
		for i, r := range reps {
			m, ok, err := r.d.state.Get(mac)
			if err != nil || !ok {
				return false
			}
			b, _ := json.Marshal(m)
			if i == 0 {
				first, rec = b, machineRecord{State: m.State, Generation: m.Generation, Events: m.Events}
			} else if !bytes.Equal(b, first) {
				return false
			}
		}
		return true
	})
	return rec
}

// machineRecord is what the replica tests compare of a record.
type machineRecord struct {
	State      machine.State
	Generation uint64
	Events     []machine.Event
}

func (m machineRecord) count(k machine.EventKind) int {
	n := 0
	for _, e := range m.Events {
		if e.Kind == k {
			n += e.Times()
		}
	}
	return n
}

// writeMachine adds a profile for mac to the profiles tree under dir.
func writeMachine(t *testing.T, dir, mac string, i int) {
	t.Helper()
	m := machine.MustParseMAC(mac)
	writeFile(t, filepath.Join(dir, "machines", m.Dashed()+".yaml"),
		fmt.Sprintf("hostname: rep-%02d\ngroups: [worker, vm]\nvalues:\n  address: 192.168.1.%d/24\n", i, 100+i))
}

// TestReplicas runs three tinderbox replicas, A, B and C, on one embedded
// three-member etcd cluster under one prefix, with one copy of the
// example profiles and one fake Image Factory, and checks what
// docs/scale.md promises of them: a boot begun through one replica ends
// through another, two replicas never both make one transition, events
// reach every replica's stream, quorum loss degrades and recovers without
// a restart, and a replica killed mid-install leaves the session to the
// others. The subtests share the cluster and the replicas and run in
// order; the last one stops replica A.
func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member etcd cluster and three daemons")
	}
	ff, err := fakefactory.Start(fakefactory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ff.Close)
	dir := filepath.Join(t.TempDir(), "profiles")
	copyTree(t, filepath.Join("..", "..", "profiles"), dir)
	const many = 20
	for i := range many {
		writeMachine(t, dir, fmt.Sprintf("02:00:00:00:01:%02x", i), i)
	}
	writeMachine(t, dir, "02:00:00:00:02:01", 40)
	writeMachine(t, dir, "02:00:00:00:02:02", 41)
	writeMachine(t, dir, "02:00:00:00:02:03", 42)
	cluster := etcdtest.New(t, 3)
	reps := startReplicas(t, 3, cluster, "/replicas/", dir, ff.URL)
	a, b, c := reps[0], reps[1], reps[2]

	t.Run("boot through A, finish through B", func(t *testing.T) {
		h := newHost(t, "1c:69:7a:00:00:11", net.IPv4(127, 0, 1, 11)) // cp-01 of the example profiles
		h.lease(reps...)
		code, script := h.script(a)
		if code != http.StatusOK || !strings.Contains(script, "talos.config=") {
			t.Fatalf("/ipxe on A: %d\n%s", code, script)
		}
		for _, u := range []string{match(t, configRe, script), match(t, kernelRe, script)} {
			if !strings.Contains(u, a.d.httpAddr.String()) {
				t.Errorf("A's script names %s, want A's %s", u, a.d.httpAddr)
			}
		}

		// From here the machine follows its script's URLs as a machine
		// behind a shared address (advertise: a VIP, a Service) does,
		// and the shared address takes it to B: the test plays that
		// address by rewriting the URLs' host to B's (onto).
		for _, re := range []*regexp.Regexp{kernelRe, initrdRe} {
			u := onto(t, match(t, re, script), b)
			file := u[strings.LastIndex(u, "/")+1:]
			if code, body := h.get(u); code != http.StatusOK || body != string(ff.Asset(file)) {
				t.Fatalf("GET %s from B: %d, %d bytes; want the factory's %d", u, code, len(body), len(ff.Asset(file)))
			}
			// B fetched it into its own cache; A, never asked, did not.
			for path, n := range ff.Counts() {
				if strings.HasSuffix(path, "/"+file) && n != 1 {
					t.Errorf("factory fetches of %s: %d, want B's one", path, n)
				}
			}
		}

		// The token A put in the script is B's too.
		code, cfg := h.get(onto(t, match(t, configRe, script), b))
		if code != http.StatusOK || !strings.Contains(cfg, "hostname: cp-01") {
			t.Fatalf("config from B with A's token: %d\n%s", code, cfg)
		}
		if m, _, _ := b.d.state.Peek(h.mac); m.State != machine.Installing {
			t.Errorf("after B served the config: %s, want installing", m.State)
		}

		sink := match(t, sinkRe, script)
		if sink != a.d.eventsAddr.String() {
			t.Errorf("talos.events.sink=%s, want A's %s", sink, a.d.eventsAddr)
		}
		h.talos(b.d.eventsAddr.String(),
			talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStart},
			talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStop})

		rec := settled(t, h.mac, reps...)
		if rec.State != machine.Installed {
			t.Fatalf("after Talos reported its install to B: %s, want installed", rec.State)
		}
		var onA api.Machine
		poll(t, "A's admin API showing installed", func() bool {
			onA = view(t, a, h.mac)
			return onA.State == machine.Installed
		})
		if !slices.EqualFunc(onA.Events, rec.Events, func(x, y machine.Event) bool {
			return x.Kind == y.Kind && x.Time.Equal(y.Time) && x.Detail == y.Detail
		}) {
			t.Errorf("A's API shows events %v, want the record's %v", kinds(onA.Events), kinds(rec.Events))
		}
		// A served the script; B the assets, the config and the reports.
		for _, k := range []machine.EventKind{machine.EventScript, machine.EventKernel, machine.EventInitramfs, machine.EventConfig, machine.EventTalos, machine.EventTransition} {
			if !slices.ContainsFunc(onA.Events, func(e machine.Event) bool { return e.Kind == k }) {
				t.Errorf("A's view lacks a %s event: %v", k, kinds(onA.Events))
			}
		}

		code, script = h.script(a)
		if code != http.StatusOK || !strings.Contains(script, "\nexit 1\n") {
			t.Errorf("next /ipxe on A: %d\n%s\nwant boot from disk", code, script)
		}
	})

	t.Run("concurrent transitions", func(t *testing.T) {
		var (
			hosts   []*host
			configs []string
		)
		for i := range many {
			h := newHost(t, fmt.Sprintf("02:00:00:00:01:%02x", i), net.IPv4(127, 0, 2, byte(i+1)))
			code, s := h.script(a)
			if code != http.StatusOK || !strings.Contains(s, "talos.config=") {
				t.Fatalf("/ipxe on A for %s: %d\n%s", h.mac, code, s)
			}
			hosts, configs = append(hosts, h), append(configs, match(t, configRe, s))
		}
		// Every machine's config from A and B at the same moment.
		onB := make([]string, many)
		for i, u := range configs {
			onB[i] = onto(t, u, b)
		}
		type answer struct{ a, b int }
		answers := make([]answer, many)
		race(t, many, func(i int) {
			atOnce(
				func() { answers[i].a, _ = hosts[i].fetch(configs[i]) },
				func() { answers[i].b, _ = hosts[i].fetch(onB[i]) })
		})
		for i, h := range hosts {
			rec := settled(t, h.mac, reps...)
			served := 0
			for _, code := range []int{answers[i].a, answers[i].b} {
				if code == http.StatusOK {
					served++
				}
			}
			// Each config served appended its event in the transaction
			// that checked the state: had both replicas moved the
			// machine from pending on one read, one event would be lost.
			if rec.State != machine.Installing || rec.Generation != 0 || served == 0 || rec.count(machine.EventConfig) != served {
				t.Errorf("%s: answers A %d B %d; record %s generation %d with %d config events, want installing, generation 0, one config event per config served",
					h.mac, answers[i].a, answers[i].b, rec.State, rec.Generation, rec.count(machine.EventConfig))
			}
		}

		// The reboot after the install, to A and B at once: installing →
		// installed rotates the token once, however many replicas saw it.
		race(t, many, func(i int) {
			onEach(a, b, func(r *replica) {
				if code, s := hosts[i].fetch(hosts[i].scriptURL(r)); code != http.StatusOK || !strings.Contains(s, "\nexit 1\n") {
					t.Errorf("reboot of %s on %s: %d\n%s\nwant boot from disk", hosts[i].mac, r.name, code, s)
				}
			})
		})
		for _, h := range hosts {
			if rec := settled(t, h.mac, reps...); rec.State != machine.Installed || rec.Generation != 1 {
				t.Errorf("%s after two replicas saw its reboot: %s generation %d, want installed generation 1", h.mac, rec.State, rec.Generation)
			}
		}

		// `machines reinstall` through A and B at once: two operators'
		// requests are two reinstalls, as two requests to one replica
		// are (each rotates the token and is logged); neither is lost.
		race(t, many, func(i int) {
			onEach(a, b, func(r *replica) {
				var out bytes.Buffer
				if err := execute(t.Context(), []string{"machines", "reinstall", hosts[i].mac.String(), "--server", r.admin()}, &out, io.Discard); err != nil {
					t.Errorf("machines reinstall %s on %s: %v", hosts[i].mac, r.name, err)
				}
			})
		})
		for _, h := range hosts {
			if rec := settled(t, h.mac, reps...); rec.State != machine.Pending || rec.Generation != 3 || rec.count(machine.EventReinstall) != 2 {
				t.Errorf("%s after reinstalls through A and B: %s generation %d with %d reinstall events, want pending generation 3 with 2",
					h.mac, rec.State, rec.Generation, rec.count(machine.EventReinstall))
			}
		}
	})

	t.Run("events reach the other replica's stream", func(t *testing.T) {
		client := &http.Client{Timeout: replicaWait}
		resp, err := client.Get(b.admin() + "/api/v1/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		readUntil := streamReader(t, "B's stream", resp.Body)
		readUntil("event: hello")
		h := newHost(t, "02:00:00:00:02:01", net.IPv4(127, 0, 3, 1))
		if code, s := h.script(a); code != http.StatusOK {
			t.Fatalf("/ipxe on A: %d\n%s", code, s)
		}
		readUntil(`"mac":"` + h.mac.String() + `","hostname":"rep-40","state":"pending"`)
	})

	t.Run("member lost, then quorum lost under a running pair", func(t *testing.T) {
		done := newHost(t, "1c:69:7a:00:00:11", net.IPv4(127, 0, 1, 11)) // installed by the first subtest
		// Pending since the concurrent subtest's reinstalls; installing
		// once its config is served below.
		inst := newHost(t, "02:00:00:00:01:01", net.IPv4(127, 0, 2, 2))
		rearm := newHost(t, "02:00:00:00:01:02", net.IPv4(127, 0, 2, 3))
		h := newHost(t, "02:00:00:00:02:02", net.IPv4(127, 0, 3, 2))
		h.lease(a, b)
		inst.lease(a, b)
		healthz := func(r *replica) string {
			t.Helper()
			_, body := get(t, http.DefaultClient, r.base()+"/healthz")
			return body
		}
		installDone := talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStop}
		reinstall := func(r *replica, m *host) error {
			return execute(t.Context(), []string{"machines", "reinstall", m.mac.String(), "--server", r.admin()}, io.Discard, io.Discard)
		}

		// One member of three down: the quorum holds, writes commit.
		cluster.Stop(2)
		stopped := []int{2}
		t.Cleanup(func() {
			if len(stopped) > 0 {
				cluster.Start(stopped...)
			}
		})
		code, script := h.script(a) // a new record: a write
		if code != http.StatusOK {
			t.Fatalf("/ipxe on A, one member down: %d\n%s", code, script)
		}
		cfgURL := match(t, configRe, script)
		_, s := inst.script(a)
		if code, _ := inst.get(onto(t, match(t, configRe, s), b)); code != http.StatusOK {
			t.Fatalf("config of %s from B, one member down: %d", inst.mac, code)
		}
		if err := reinstall(b, rearm); err != nil {
			t.Errorf("machines reinstall through B, one member down: %v", err)
		}
		settled(t, h.mac, a, b)
		for _, r := range []*replica{a, b} {
			if body := healthz(r); body != "ok\n" {
				t.Errorf("GET /healthz on %s, one member down: %q, want ok", r.name, body)
			}
		}

		// Two down: no quorum.
		cluster.Stop(1)
		stopped = []int{1, 2}
		for _, r := range []*replica{a, b} {
			poll(t, "replica "+r.name+" degraded", func() bool { return strings.HasPrefix(healthz(r), "degraded: state: ") })
			if code, s := done.script(r); code != http.StatusOK || !strings.Contains(s, "\nexit 1\n") {
				t.Errorf("without quorum, /ipxe of installed %s on %s: %d\n%s\nwant boot from disk, from the cache", done.mac, r.name, code, s)
			}
			if code, s := h.script(r); code != http.StatusOK || !strings.Contains(s, "talos.config=") {
				t.Errorf("without quorum, /ipxe of pending %s on %s: %d\n%s\nwant the install script, from the cache", h.mac, r.name, code, s)
			}
			if code, body := h.get(onto(t, cfgURL, r)); code != http.StatusInternalServerError || strings.Contains(body, "machine:") {
				t.Errorf("without quorum, config of pending %s on %s: %d %q, want 500 and no config", h.mac, r.name, code, body)
			}
			// installing → installed on the reboot is a write too.
			if code, s := inst.script(r); code != http.StatusInternalServerError {
				t.Errorf("without quorum, /ipxe of installing %s on %s: %d\n%s\nwant 500", inst.mac, r.name, code, s)
			}
			if err := reinstall(r, rearm); err == nil {
				t.Errorf("without quorum, machines reinstall through %s succeeded", r.name)
			}
			// Talos' report of its install's end cannot be kept: the
			// sink refuses it, for Talos to send it again.
			if err := inst.publish(r.d.eventsAddr.String(), "install-done", installDone); status.Code(err) != codes.Unavailable {
				t.Errorf("without quorum, Talos' install end to %s's sink: %v, want Unavailable", r.name, err)
			}
			for m, want := range map[*host]machine.State{h: machine.Pending, inst: machine.Installing, rearm: machine.Pending} {
				if got, _, _ := r.d.state.Peek(m.mac); got.State != want {
					t.Errorf("without quorum, %s on %s: %s, want still %s", m.mac, r.name, got.State, want)
				}
			}
		}

		cluster.Start(1, 2)
		stopped = nil
		for _, r := range []*replica{a, b} {
			poll(t, "replica "+r.name+" healthy again", func() bool { return healthz(r) == "ok\n" })
		}
		if code, body := h.get(onto(t, cfgURL, b)); code != http.StatusOK || !strings.Contains(body, "hostname: rep-41") {
			t.Fatalf("config from B once the quorum is back: %d\n%s", code, body)
		}
		h.talos(a.d.eventsAddr.String(),
			talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStart},
			talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStop})
		if rec := settled(t, h.mac, a, b); rec.State != machine.Installed {
			t.Errorf("after the quorum came back and Talos reported to A: %s, want installed", rec.State)
		}
		// Talos sends its refused report again: B keeps it.
		if err := inst.publish(b.d.eventsAddr.String(), "install-done", installDone); err != nil {
			t.Fatalf("Talos' install end to B once the quorum is back: %v", err)
		}
		if rec := settled(t, inst.mac, a, b); rec.State != machine.Installed || rec.Generation != 4 || rec.count(machine.EventTalos) != 1 {
			t.Errorf("%s once the quorum is back and Talos reported again: %s generation %d, %d Talos events; want installed generation 4, 1 event",
				inst.mac, rec.State, rec.Generation, rec.count(machine.EventTalos))
		}
		if code, s := inst.script(a); code != http.StatusOK || !strings.Contains(s, "\nexit 1\n") {
			t.Errorf("/ipxe of installed %s on A: %d\n%s\nwant boot from disk", inst.mac, code, s)
		}
	})

	t.Run("replica killed mid-install", func(t *testing.T) {
		h := newHost(t, "02:00:00:00:02:03", net.IPv4(127, 0, 3, 3))
		h.lease(reps...)
		code, script := h.script(a)
		if code != http.StatusOK {
			t.Fatalf("/ipxe on A: %d\n%s", code, script)
		}
		if code, _ := h.get(match(t, configRe, script)); code != http.StatusOK {
			t.Fatalf("config from A: %d", code)
		}
		if err := a.d.flow.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := a.stop(); err != nil {
			t.Fatalf("stop A: %v", err)
		}
		h.talos(b.d.eventsAddr.String(),
			talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStart},
			talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStop})
		rec := settled(t, h.mac, b, c)
		if rec.State != machine.Installed || rec.count(machine.EventConfig) != 1 || rec.count(machine.EventTalos) != 2 {
			t.Errorf("after A died and Talos reported to B: %s with events %v, want installed with A's config and B's reports", rec.State, kinds(rec.Events))
		}
		if code, s := h.script(c); code != http.StatusOK || !strings.Contains(s, "\nexit 1\n") {
			t.Errorf("next /ipxe on C: %d\n%s\nwant boot from disk", code, s)
		}
	})
}

// atOnce runs fs on goroutines of their own, released together by one
// barrier, and waits for them.
func atOnce(fs ...func()) {
	barrier := make(chan struct{})
	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Go(func() { <-barrier; f() })
	}
	close(barrier)
	wg.Wait()
}

// onEach runs f on replicas a and b at once (atOnce).
func onEach(a, b *replica, f func(*replica)) {
	atOnce(func() { f(a) }, func() { f(b) })
}

// race runs f(0) … f(n-1) at once and waits for them.
func race(t *testing.T, n int, f func(i int)) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}

func kinds(evs []machine.Event) []machine.EventKind {
	out := make([]machine.EventKind, len(evs))
	for i, e := range evs {
		out[i] = e.Kind
	}
	return out
}
