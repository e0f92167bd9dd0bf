// Command storm simulates a power-restore storm against a running
// tinderbox (scripts/bench-storm.sh): N machines come up at once and each
// walks the whole network boot, at most C of them in flight, and it prints
// per-stage latency percentiles, failures and the wall time.
//
// A node is a MAC (02:00:00 followed by its number) and an IPv4 address
// of its own in -nodes (the script puts every address on an interface in
// the client's network namespace). The nodes sit behind a DHCP relay agent
// (RFC 2131 §4.1, giaddr): the storm is the relay, on -relay port 67, so
// the server learns each address from a relayed exchange, which is the
// binding evidence for a routed network (binding.routedNetworks).
//
// -server may name several tinderbox replicas on one segment: the relay
// forwards every DHCP packet to each of them (as a relay agent or router
// helper configured with several servers does), and a node takes the
// first offer that comes back, as firmware does, then follows that
// replica's boot path: its port 4011 and its TFTP. Each node, as UEFI
// firmware and then iPXE would:
//
//  1. dhcp: a relayed PXE DISCOVER (option 60 PXEClient, 93 = 7, 97) →
//     the first proxy OFFER, then the relayed REQUEST for the router's
//     lease (option 50, option 54 naming -router), which tinderbox only
//     observes.
//  2. pxe: a REQUEST from its address to port 4011 of the server the
//     OFFER names (option 54) → the ACK with the boot file.
//  3. tftp: that file by TFTP from its address, from the ACK's server
//     (siaddr), RFC 1350 with the blksize and tsize options (RFC
//     2347-2349) as EDK2 asks, no windowsize.
//  4. ipxe_dhcp: iPXE's relayed DISCOVER (user class "iPXE", option 175)
//     → the first OFFER, naming the boot script's URL (which may be
//     another replica's than the firmware's), and its REQUEST for the
//     router's lease.
//  5. script: GET /boot.ipxe, then GET /ipxe?mac=…&uuid=…&arch=x86_64 as
//     the generic script chains, on one keep-alive connection.
//  6. kernel, initramfs: the URLs of the machine's script, same connection.
//  7. config: GET the talos.config URL on a new connection (the Talos
//     kernel is a new HTTP client).
//
// A DHCP or TFTP exchange that gets no answer is retried after -timeout,
// -retries times (as firmware does); retries are counted apart from
// failures. A stage that fails ends that node's boot.
//
// With -profiles DIR it writes DIR/machines/<mac>.yaml for the N nodes and
// exits; with -addrs it prints the ip(8) -batch lines that add the nodes'
// addresses to -dev and exits.
//
// It is a benchmark tool, not part of tinderbox: it lives under internal/
// so the scripts build it from the module with `go build`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// opts are the command's flags.
type opts struct {
	servers  []netip.Addr // tinderbox replicas' addresses: DHCP 67, relayed to each
	httpPort int
	relay    netip.Addr // giaddr; the storm listens on its port 67
	router   netip.Addr // option 54 of the router the nodes take a lease from
	nodes    netip.Prefix
	n, c     int
	timeout  time.Duration
	retries  int
}

func main() {
	var (
		o                         opts
		server, relay, router     string
		nodes, profiles, addrsDev string
		addrs                     bool
	)
	flag.StringVar(&server, "server", "10.1.0.1", "tinderbox's address, or several replicas' comma-separated: the relay forwards DHCP to each")
	flag.IntVar(&o.httpPort, "http-port", 8080, "tinderbox's boot HTTP port")
	flag.StringVar(&relay, "relay", "10.1.0.2", "the relay agent's address (giaddr), on this host; the storm binds its port 67")
	flag.StringVar(&router, "router", "10.1.0.254", "the router's DHCP server identifier the nodes take their lease from")
	flag.StringVar(&nodes, "nodes", "10.2.0.0/16", "the network the nodes' addresses come from")
	flag.IntVar(&o.n, "n", 5000, "nodes")
	flag.IntVar(&o.c, "c", 256, "nodes booting at once")
	flag.DurationVar(&o.timeout, "timeout", 4*time.Second, "how long a DHCP or TFTP packet waits for its answer before it is sent again")
	flag.IntVar(&o.retries, "retries", 3, "how often a DHCP or TFTP packet is sent again")
	flag.StringVar(&profiles, "profiles", "", "write the nodes' machine profiles under DIR/machines and exit")
	flag.BoolVar(&addrs, "addrs", false, "print the ip -batch lines that add the nodes' addresses to -dev and exit")
	flag.StringVar(&addrsDev, "dev", "lo", "the interface -addrs puts the addresses on")
	flag.Parse()

	var err error
	for _, p := range []struct {
		s   string
		dst *netip.Addr
	}{{relay, &o.relay}, {router, &o.router}} {
		if *p.dst, err = netip.ParseAddr(p.s); err != nil || !p.dst.Is4() {
			fail(fmt.Errorf("%q is not an IPv4 address", p.s))
		}
	}
	for s := range strings.SplitSeq(server, ",") {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			fail(fmt.Errorf("-server %q is not an IPv4 address", s))
		}
		o.servers = append(o.servers, a)
	}
	if o.nodes, err = netip.ParsePrefix(nodes); err != nil || !o.nodes.Addr().Is4() {
		fail(fmt.Errorf("-nodes %q is not an IPv4 network", nodes))
	}
	o.nodes = o.nodes.Masked()
	if o.n < 1 || o.c < 1 || o.n > maxNodes(o.nodes) {
		fail(fmt.Errorf("-n must be between 1 and %d for %s, -c at least 1", maxNodes(o.nodes), o.nodes))
	}
	switch {
	case profiles != "":
		if err := writeProfiles(profiles, o.nodes, o.n); err != nil {
			fail(err)
		}
	case addrs:
		for i := range o.n {
			fmt.Printf("address add %s/32 dev %s\n", nodeAddr(o.nodes, i), addrsDev)
		}
	default:
		r, err := run(context.Background(), o)
		if err != nil {
			fail(err)
		}
		r.print(os.Stdout)
		if r.failed() > 0 {
			os.Exit(1)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "storm:", err)
	os.Exit(2)
}

// firstHost is the offset of node 0 in -nodes: .0 to .255 of the first
// /24 are left to the router and the relay.
const firstHost = 256

func maxNodes(p netip.Prefix) int {
	return 1<<(32-p.Bits()) - firstHost - 1
}

// nodeAddr is node i's address: -nodes plus firstHost plus i.
func nodeAddr(p netip.Prefix, i int) netip.Addr {
	b := p.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(firstHost + i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// nodeMAC is node i's MAC, 02:00:00 (locally administered) and i.
func nodeMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
}

// nodeUUID is node i's SMBIOS UUID, in option 97's 16 bytes.
func nodeUUID(i int) [16]byte {
	return [16]byte{0x5e, 0x1f, 0x57, 0x04, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
}

// writeProfiles writes one machine profile per node: a worker VM with its
// own hostname and address (the example profiles' groups).
func writeProfiles(dir string, nodes netip.Prefix, n int) error {
	md := filepath.Join(dir, "machines")
	if err := os.MkdirAll(md, 0o755); err != nil {
		return err
	}
	for i := range n {
		name := strings.ReplaceAll(nodeMAC(i).String(), ":", "-") + ".yaml"
		body := fmt.Sprintf("hostname: storm-%05d\ngroups: [worker, vm]\nvalues:\n  address: %s/%d\n", i, nodeAddr(nodes, i), nodes.Bits())
		if err := os.WriteFile(filepath.Join(md, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// The stages of one boot, in order.
var stages = []string{"dhcp", "pxe", "tftp", "ipxe_dhcp", "script", "kernel", "initramfs", "config"}

// stageResult is what one node's stage did.
type stageResult struct {
	d       time.Duration
	retries int
	err     error
}

// report is the whole storm's figures.
type report struct {
	n, c    int
	wall    time.Duration
	mu      sync.Mutex
	lat     map[string][]time.Duration
	fails   map[string]int
	retries map[string]int
	first   map[string]string // the first error of each stage
	total   []time.Duration   // whole boots, of the nodes that finished
	bytes   map[string]int64  // bytes fetched per stage
	// follow counts, per DHCP client ("firmware", "iPXE") and server, the
	// offers the nodes took.
	follow map[string]map[netip.Addr]int
}

func newReport(n, c int) *report {
	return &report{n: n, c: c, lat: map[string][]time.Duration{}, fails: map[string]int{},
		retries: map[string]int{}, first: map[string]string{}, bytes: map[string]int64{},
		follow: map[string]map[netip.Addr]int{}}
}

// followed counts an offer from server that a node's client took.
func (r *report) followed(client string, server netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.follow[client] == nil {
		r.follow[client] = map[netip.Addr]int{}
	}
	r.follow[client][server]++
}

func (r *report) add(stage string, s stageResult, nbytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retries[stage] += s.retries
	if s.err != nil {
		r.fails[stage]++
		if r.first[stage] == "" {
			r.first[stage] = s.err.Error()
		}
		return
	}
	r.lat[stage] = append(r.lat[stage], s.d)
	r.bytes[stage] += nbytes
}

func (r *report) done(d time.Duration) {
	r.mu.Lock()
	r.total = append(r.total, d)
	r.mu.Unlock()
}

func (r *report) failed() int {
	n := 0
	for _, f := range r.fails {
		n += f
	}
	return n
}

// quantile returns the p-quantile (nearest rank) of sorted d, in ms.
func quantile(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	i := int(p*float64(len(d))+0.999999) - 1
	i = max(0, min(i, len(d)-1))
	return float64(d[i].Microseconds()) / 1000
}

// print writes the table: one row per stage and one for the whole boot.
func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "storm: %d nodes, %d at once; wall time %.1f s; %d of %d booted to the config\n",
		r.n, r.c, r.wall.Seconds(), len(r.total), r.n)
	fmt.Fprintf(w, "| stage | ok | failed | retries | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|\n")
	row := func(name string, d []time.Duration, fails, retries int) {
		slices.Sort(d)
		fmt.Fprintf(w, "| %s | %d | %d | %d | %.1f | %.1f | %.1f |\n", name, len(d), fails, retries,
			quantile(d, 0.50), quantile(d, 0.99), quantile(d, 1))
	}
	for _, s := range stages {
		row(s, r.lat[s], r.fails[s], r.retries[s])
	}
	row("whole boot", r.total, r.failed(), 0)
	for _, s := range stages {
		if e := r.first[s]; e != "" {
			fmt.Fprintf(w, "first %s failure: %s\n", s, e)
		}
	}
	for _, client := range []string{"firmware", "iPXE"} {
		if len(r.follow[client]) < 2 {
			continue
		}
		servers := slices.SortedFunc(maps.Keys(r.follow[client]), netip.Addr.Compare)
		var parts []string
		for _, s := range servers {
			parts = append(parts, fmt.Sprintf("%s %d", s, r.follow[client][s]))
		}
		fmt.Fprintf(w, "%s offers taken, by server: %s\n", client, strings.Join(parts, ", "))
	}
}

// run boots o.n nodes, o.c at a time, and returns the report.
func run(ctx context.Context, o opts) (*report, error) {
	relay, err := listenRelay(o.relay)
	if err != nil {
		return nil, err
	}
	defer relay.close()
	r := newReport(o.n, o.c)
	sem := make(chan struct{}, o.c)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range o.n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			n := &node{i: i, o: o, relay: relay, r: r}
			t0 := time.Now()
			if n.boot(ctx) {
				r.done(time.Since(t0))
			}
		}()
	}
	wg.Wait()
	r.wall = time.Since(start)
	return r, nil
}

// node is one simulated machine.
type node struct {
	i     int
	o     opts
	relay *relay
	r     *report
}

// boot walks the stages; it returns true when the config was fetched.
func (n *node) boot(ctx context.Context) bool {
	b := bootState{}
	steps := []func(context.Context, *bootState) (int, int64, error){
		n.dhcp, n.pxe, n.tftp, n.ipxeDHCP, n.script, n.kernel, n.initramfs, n.config,
	}
	defer b.close()
	for k, step := range steps {
		t0 := time.Now()
		retries, nbytes, err := step(ctx, &b)
		s := stageResult{d: time.Since(t0), retries: retries, err: err}
		n.r.add(stages[k], s, nbytes)
		if err != nil {
			return false
		}
	}
	return true
}

// bootState carries what one stage hands the next.
type bootState struct {
	server, tftpServer    netip.Addr // the replica the firmware follows, its TFTP
	bootFile              string
	scriptURL             string
	kernel, initrd, confU string
	web                   *webClient
}

func (b *bootState) close() {
	if b.web != nil {
		b.web.close()
	}
}

var errNoAnswer = errors.New("no answer")
