package bootflow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tinderbox-boot/tinderbox/internal/proxydhcp"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// frozenStore is a real state store whose writes can be made to hang, as
// on a frozen disk: once frozen, the next write commits and then blocks
// (holding the store's write lock, so every write after it waits too)
// until thaw.
type frozenStore struct {
	*state.Store
	frozen  atomic.Bool
	stuck   chan struct{} // closed when a write is stuck
	release chan struct{}
	once    sync.Once
}

func newFrozenStore(t *testing.T) *frozenStore {
	t.Helper()
	fs := &frozenStore{stuck: make(chan struct{}), release: make(chan struct{})}
	store, err := state.Open(t.TempDir(), state.Options{
		// Long enough that a write waiting behind the stuck one never
		// gives up during the test: the old synchronous recording held
		// its DHCP handler for this long.
		WriteTimeout: time.Hour,
		// Room for every machine TestQueueBounds queues.
		DiscoveredMax: 2 * maxQueued,
		OnChange: func(state.Machine) {
			if fs.frozen.Load() {
				fs.once.Do(func() { close(fs.stuck) })
				<-fs.release
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	fs.Store = store
	t.Cleanup(func() {
		fs.thaw()
		store.Close()
	})
	return fs
}

func (fs *frozenStore) thaw() {
	if fs.frozen.CompareAndSwap(true, false) {
		close(fs.release)
	}
}

// thawed thaws fs, waits until f has written what it queued, and returns
// mac's record.
func (fs *frozenStore) thawed(t *testing.T, f *Flow, mac machine.MAC) state.Machine {
	t.Helper()
	fs.thaw()
	if err := f.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	m, _, err := fs.Get(mac)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// stormMAC is the i-th MAC of a boot storm.
func stormMAC(i int) machine.MAC {
	return machine.MAC{0x02, 0x5b, 0, 0, byte(i >> 8), byte(i)}
}

// frozenFlow is a boot flow on a frozenStore, answering unknown machines
// for maintenance, and offered, which records that the proxyDHCP server
// offered file to mac.
func frozenFlow(t *testing.T) (fs *frozenStore, f *Flow, offered func(mac machine.MAC, file string)) {
	t.Helper()
	fs = newFrozenStore(t)
	f = New(Options{BaseURL: "http://127.0.0.1:8080", Store: fs.Store, Profiles: &fakeProfiles{policy: machine.UnknownMaintenance}, Cmdlines: fakeCmdlines{}})
	offered = func(mac machine.MAC, file string) {
		f.DHCPSent(t.Context(), proxydhcp.Sent{Client: proxydhcp.Client{MAC: mac}, Type: dhcpv4.MessageTypeOffer, File: file})
	}
	return fs, f, offered
}

// TestStuckStateDoesNotBlockDHCP: with the state disk frozen, a proxy
// DHCP server recording into the boot flow still answers every one of
// 200 PXE DISCOVERs (the old synchronous recording stopped after 64, one
// per handler slot); once the disk thaws, every machine's record arrives.
func TestStuckStateDoesNotBlockDHCP(t *testing.T) {
	const n = 200
	fs := newFrozenStore(t)
	reg := prometheus.NewRegistry()
	f := New(Options{
		BaseURL: "http://127.0.0.1:8080", LocalBoot: "exit", Store: fs.Store,
		Profiles: &fakeProfiles{policy: machine.UnknownMaintenance}, Cmdlines: fakeCmdlines{}, Registerer: reg,
	})
	conn, err := proxydhcp.Listen(t.Context(), "proxyDHCP", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := proxydhcp.New(proxydhcp.Options{
		Config: proxydhcp.Config{Advertise: netip.MustParseAddr("127.0.0.1"), HTTPPort: 8080},
		Policy: f, Recorder: f, Observer: f,
	})
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		fs.thaw()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		conn.Close()
	})
	server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: conn.LocalAddr().(*net.UDPAddr).Port}

	fs.frozen.Store(true)
	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	want, got := map[dhcpv4.TransactionID]machine.MAC{}, map[dhcpv4.TransactionID]bool{}
	for i := range n {
		mac := stormMAC(i)
		d, err := dhcpv4.NewDiscovery(net.HardwareAddr(mac[:]),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
			dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7}))
		if err != nil {
			t.Fatal(err)
		}
		want[d.TransactionID] = mac
		// A few at a time, so the loopback socket buffers never overflow:
		// what is tested is the server, not the kernel's queue.
		if _, err := client.WriteTo(d.ToBytes(), server); err != nil {
			t.Fatal(err)
		}
		if i%16 == 15 {
			waitAnswered(t, client, want, got, i+1)
		}
	}
	waitAnswered(t, client, want, got, n)
	select {
	case <-fs.stuck:
	default:
		t.Fatal("the state store was never stuck: the test tested nothing")
	}
	if got := testutil.ToFloat64(f.q.dropped.WithLabelValues("dhcp", reasonFull)); got != 0 {
		t.Errorf("dhcp records dropped while stuck: got %v, want 0 (%d fit the queue)", got, n)
	}

	fs.thaw()
	if err := f.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m, ok, err := fs.Get(stormMAC(i))
		if err != nil || !ok {
			t.Fatalf("machine %d (%s) not recorded after the thaw: ok=%v err=%v", i, stormMAC(i), ok, err)
		}
		if ev, ok := m.LastEvent(machine.EventDHCPOffer); !ok || ev.Detail != "offer snponly.efi" || m.State != machine.Discovered || m.Arch != machine.ArchAMD64 {
			t.Errorf("machine %s: got state %s, arch %s, event %+v %v; want discovered, amd64, offer snponly.efi", m.MAC, m.State, m.Arch, ev, ok)
		}
	}
}

// waitAnswered reads replies on client until count distinct DISCOVERs of
// want are answered (got holds those answered so far, by transaction id), failing after a generous deadline (the outcome is
// what is asserted; the deadline only ends a test that would hang).
func waitAnswered(t *testing.T, client *net.UDPConn, want map[dhcpv4.TransactionID]machine.MAC, got map[dhcpv4.TransactionID]bool, count int) {
	t.Helper()
	buf := make([]byte, 1500)
	if err := client.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for len(got) < count {
		n, _, err := client.ReadFrom(buf)
		if err != nil {
			t.Fatalf("%d of %d DISCOVERs answered, then: %v", len(got), count, err)
		}
		p, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			t.Fatalf("reply: %v", err)
		}
		mac, ok := want[p.TransactionID]
		if !ok || p.MessageType() != dhcpv4.MessageTypeOffer || p.ClientHWAddr.String() != mac.String() {
			t.Fatalf("unexpected reply %s to %s", p.MessageType(), p.ClientHWAddr)
		}
		got[p.TransactionID] = true
	}
}

// TestQueueBounds: with the disk stuck, records beyond the queue's
// bounds are dropped and counted, one chatty machine cannot take the
// queue from the others, and what was kept is written once the disk
// thaws.
func TestQueueBounds(t *testing.T) {
	fs, f, sent := frozenFlow(t)
	fs.frozen.Store(true)
	sent(stormMAC(0), "first")
	<-fs.stuck
	chatty := stormMAC(1)
	for i := range maxQueuedPerMachine + 10 {
		sent(chatty, fmt.Sprint("old ", i)) // not repeats, which fold
	}
	sent(chatty, "newest")
	if got := testutil.ToFloat64(f.q.dropped.WithLabelValues("dhcp", reasonFull)); got != 11 {
		t.Errorf("one machine's records dropped over its bound: got %v, want 11", got)
	}
	room := maxQueued - maxQueuedPerMachine
	for i := range room + 5 {
		sent(stormMAC(2+i), "other")
	}
	if got := testutil.ToFloat64(f.q.dropped.WithLabelValues("dhcp", reasonFull)); got != 11+5 {
		t.Errorf("records dropped with the queue full: got %v, want %d", got, 11+5)
	}
	m := fs.thawed(t, f, chatty)
	if ev, _ := m.LastEvent(machine.EventDHCPOffer); len(m.Events) != maxQueuedPerMachine || ev.Detail != "offer newest" {
		t.Errorf("chatty machine: got %d events, newest %q; want %d, newest \"offer newest\"", len(m.Events), ev.Detail, maxQueuedPerMachine)
	}
	if _, ok, _ := fs.Get(stormMAC(2 + room - 1)); !ok {
		t.Error("the last machine that fit the queue was not recorded")
	}
	if _, ok, _ := fs.Get(stormMAC(2 + room)); ok {
		t.Error("a machine dropped from the full queue was recorded")
	}
}

// TestQueueFoldsRepeats: with the disk stuck, a machine repeating one
// DHCP offer a thousand times waits as one record (none dropped, the
// queue's count one), a different offer in between starts a new one,
// and the record written once the disk thaws holds each run with its
// count, first and last time.
func TestQueueFoldsRepeats(t *testing.T) {
	fs, f, sent := frozenFlow(t)
	fs.frozen.Store(true)
	sent(stormMAC(0), "first")
	<-fs.stuck
	loop := stormMAC(1)
	start := time.Now()
	for range 1000 {
		sent(loop, "snponly.efi")
	}
	sent(loop, "ipxe.efi")
	sent(loop, "snponly.efi")
	sent(loop, "snponly.efi")
	f.q.mu.Lock()
	queued := f.q.n
	f.q.mu.Unlock()
	if queued != 3 {
		t.Errorf("records queued for the looping machine: got %d, want 3 (two runs and the offer between)", queued)
	}
	if got := testutil.ToFloat64(f.q.dropped.WithLabelValues("dhcp", reasonFull)); got != 0 {
		t.Errorf("records dropped: got %v, want 0", got)
	}
	m := fs.thawed(t, f, loop)
	var got []string
	for _, e := range m.Events {
		got = append(got, fmt.Sprintf("%s×%d", e.Detail, e.Times()))
	}
	if want := []string{"offer snponly.efi×1000", "offer ipxe.efi×1", "offer snponly.efi×2"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if run := m.Events[0]; run.Since.Before(start) || run.Time.Before(run.Since) || run.Time.After(m.Events[1].Time) {
		t.Errorf("the run of 1000: since %s, at %s; want since the first offer, at the last (before the next event at %s)", run.Since, run.Time, m.Events[1].Time)
	}
}

// TestFlushBounded: Flush returns when its context ends, even with the
// disk stuck, saying how many records were not written: the one whose
// drain is stuck and the two queued behind it.
func TestFlushBounded(t *testing.T) {
	fs, f, offered := frozenFlow(t)
	fs.frozen.Store(true)
	sent := func(i int) { offered(stormMAC(i), "x") }
	sent(0)
	<-fs.stuck
	sent(1)
	sent(2)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := f.Flush(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush on a stuck disk: got %v, want context.Canceled", err)
	}
	if want := "3 state records not written"; !strings.Contains(err.Error(), want) {
		t.Errorf("got %q, want it to say %q", err, want)
	}
}

// TestQueueDrainsSoonWhenFull: while records keep arriving the writer
// waits between drains (drainEvery, an hour here), but not once
// drainSoon records wait: a storm of distinct machines is written
// without a Flush, none dropped.
func TestQueueDrainsSoonWhenFull(t *testing.T) {
	fs, f, offered := frozenFlow(t)
	f.q.every = time.Hour
	sent := func(i int) { offered(stormMAC(i), "x") }
	fs.frozen.Store(true)
	sent(0)
	<-fs.stuck
	sent(1) // waits behind the stuck drain, then an hour
	fs.thaw()
	for i := 2; i < 1+drainSoon; i++ {
		sent(i)
	}
	deadline := time.Now().Add(time.Minute) // a hang guard: the writer would wait an hour
	for _, i := range []int{1, drainSoon} {
		for {
			if _, ok, err := fs.Get(stormMAC(i)); err != nil {
				t.Fatal(err)
			} else if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("machine %d of %d not written without a flush", i, drainSoon)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if got := testutil.ToFloat64(f.q.dropped.WithLabelValues("dhcp", reasonFull)); got != 0 {
		t.Errorf("records dropped: got %v, want 0", got)
	}
}
