//go:build linux

// Command chaos is the kill -9 chaos run (docs/testing.md, "Chaos run"):
// it runs the tinderbox binary against the fake Image Factory on
// loopback, drives a boot storm of simulated nodes over real sockets
// (proxy DHCP, TFTP, boot HTTP, the admin API), kills tinderbox with
// SIGKILL at a random point of each round, and after each restart checks
// that the daemon starts, that state.db was clean or was moved aside and
// restored from a backup, that no acknowledged state change was lost,
// and that nothing partial was served. It prints a summary table and
// exits 1 on any failed check. scripts/chaos.sh builds and runs it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	bolt "go.etcd.io/bbolt"
	"go.yaml.in/yaml/v3"
	"pack.ag/tftp"

	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

func main() {
	var o options
	flag.StringVar(&o.bin, "tinderbox", "bin/tinderbox", "the tinderbox binary")
	flag.StringVar(&o.profiles, "profiles", "profiles", "the example profiles directory (defaults, groups, patches, secrets) the machines are added to")
	flag.StringVar(&o.dir, "dir", "", "work directory (state, cache, profiles, logs); a new temporary one when empty")
	flag.IntVar(&o.rounds, "rounds", 20, "kill -9 rounds")
	flag.Uint64Var(&o.seed, "seed", 0, "random seed; 0 picks one from the clock (it is printed either way)")
	flag.IntVar(&o.known, "nodes", 24, "simulated nodes with a profile (install once)")
	flag.IntVar(&o.unknown, "unknown", 8, "simulated nodes without a profile (maintenance)")
	flag.IntVar(&o.corruptEvery, "corrupt-every", 5, "truncate state.db after every Nth kill, so the restart must restore a backup; 0 never")
	flag.Parse()
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	fmt.Printf("chaos: seed %d (rerun with -seed %d)\n", o.seed, o.seed)
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("chaos: PASS")
}

type options struct {
	bin, profiles, dir    string
	rounds, known         int
	unknown, corruptEvery int
	seed                  uint64
}

// rig is one chaos run's fixed parts.
type rig struct {
	o        options
	rng      *rand.Rand
	ff       *fakefactory.Server
	cfgPath  string
	stateDir string
	ports    struct{ http, admin, dhcp, pxe, tftp int }
	ipxe     []byte            // snponly.efi as on disk
	rendered map[string][]byte // each known MAC's config, as `tinderbox render` prints it
	nodes    []*node
	proc     *exec.Cmd
	exited   <-chan error
	logPath  string
	// killedAt is when the last kill happened; corruptedLast says state.db
	// was truncated after it.
	killedAt      time.Time
	corruptedLast bool
}

func run(o options) (err error) {
	if o.dir == "" {
		if o.dir, err = os.MkdirTemp("", "tinderbox-chaos-"); err != nil {
			return err
		}
		defer os.RemoveAll(o.dir)
	}
	r := &rig{o: o, rng: rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15))}
	// A slow factory, so that kills land in the middle of cache fills.
	if r.ff, err = fakefactory.Start(fakefactory.Options{Redirect: true, Rate: 2 << 20}); err != nil {
		return err
	}
	defer r.ff.Close()
	defer r.stop()
	if err := r.setup(); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	var rows []row
	var failed []string
	for round := 1; round <= o.rounds+1; round++ {
		res := r.round(round)
		rows = append(rows, res)
		for _, p := range res.problems {
			failed = append(failed, fmt.Sprintf("round %d: %s", round, p))
		}
		if res.start != "ok" {
			break
		}
	}
	printTable(rows)
	if err := r.stopGracefully(); err != nil {
		failed = append(failed, "final stop: "+err.Error())
	}
	if len(failed) > 0 {
		for _, f := range failed {
			fmt.Println("  FAILED", f)
		}
		return fmt.Errorf("%d checks failed (seed %d; round logs in %s)", len(failed), o.seed, o.dir)
	}
	return nil
}

// freePort returns a port free on 127.0.0.1 for network ("tcp" or "udp").
func freePort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// setup writes the profiles (the example set plus one machine file per
// known node), iPXE binaries and the config, and renders every known
// machine's config with the binary.
func (r *rig) setup() error {
	var err error
	p := &r.ports
	for _, f := range []struct {
		port *int
		net  string
	}{{&p.http, "tcp"}, {&p.admin, "tcp"}, {&p.dhcp, "udp"}, {&p.pxe, "udp"}, {&p.tftp, "udp"}} {
		if *f.port, err = freePort(f.net); err != nil {
			return err
		}
	}
	profiles := filepath.Join(r.o.dir, "profiles")
	if err := os.CopyFS(profiles, os.DirFS(r.o.profiles)); err != nil {
		return err
	}
	for i := range r.o.known + r.o.unknown {
		n := &node{r: r, mac: net.HardwareAddr{0x02, 0xc4, 0xa0, 0x5, byte(i >> 8), byte(i)}, known: i < r.o.known, p: -1}
		r.nodes = append(r.nodes, n)
		if !n.known {
			continue
		}
		body := fmt.Sprintf("hostname: chaos-%03d\ngroups: [worker, vm]\nvalues:\n  address: 192.168.7.%d/24\n", i, 10+i)
		if err := os.WriteFile(filepath.Join(profiles, "machines", strings.ReplaceAll(n.mac.String(), ":", "-")+".yaml"), []byte(body), 0o644); err != nil {
			return err
		}
	}
	ipxeDir := filepath.Join(r.o.dir, "ipxe")
	if err := os.MkdirAll(ipxeDir, 0o755); err != nil {
		return err
	}
	r.ipxe = bytes.Repeat([]byte("chaos iPXE "), 7000)
	for _, f := range []string{"snponly.efi", "ipxe.efi", "undionly.kpxe", "ipxe-arm64.efi"} {
		if err := os.WriteFile(filepath.Join(ipxeDir, f), r.ipxe, 0o644); err != nil {
			return err
		}
	}
	r.stateDir = filepath.Join(r.o.dir, "state")
	cfg := fmt.Sprintf(`advertise: 127.0.0.1
http: {listen: "127.0.0.1:%d"}
admin: {listen: "127.0.0.1:%d"}
dhcp: {enabled: true, port: %d, pxePort: %d}
tftp: {enabled: true, listen: "127.0.0.1:%d", maxPerClient: 64}
ipxe: {dir: %q, localBoot: exit}
factory: {url: %q}
cache: {dir: %q, maxSize: 1GiB}
state: {dir: %q, backup: {interval: 1s, keep: 5}}
profiles: {dir: %q}
binding: {enabled: false}
reports: {enabled: false}
log: {level: info, format: text}
`, p.http, p.admin, p.dhcp, p.pxe, p.tftp, ipxeDir, r.ff.URL, filepath.Join(r.o.dir, "cache"), r.stateDir, profiles)
	r.cfgPath = filepath.Join(r.o.dir, "tinderbox.yaml")
	if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	r.rendered = map[string][]byte{}
	for _, n := range r.nodes {
		if !n.known {
			continue
		}
		out, err := exec.Command(r.o.bin, "render", n.mac.String(), "--config", r.cfgPath).Output()
		if err != nil {
			return fmt.Errorf("tinderbox render %s: %w", n.mac, err)
		}
		r.rendered[n.mac.String()] = out
	}
	return nil
}

// row is one round's line of the summary table.
type row struct {
	round    int
	killAt   time.Duration
	disk     string // what was done to state.db after the kill
	cache    string // what was done to the asset cache after the kill
	start    string // ok, or why the daemon did not start
	db       string // clean, or restored (from which backup)
	machines int
	acked    int // state changes acknowledged to nodes this round
	lost     int // acknowledged changes missing after the restart
	partial  int // bodies served complete-looking but wrong
	counts   map[string]int
	problems []string
}

func (w *row) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	w.problems = append(w.problems, strings.ReplaceAll(msg, "\n", " | "))
}

// round starts the daemon (after the previous round's kill), checks what
// it serves against what the previous round acknowledged, runs a boot
// storm, and kills the daemon at a random point. The last round only
// starts and checks.
func (r *rig) round(round int) row {
	w := row{round: round, counts: map[string]int{}, disk: "-", cache: "-"}
	before, _ := filepath.Glob(filepath.Join(r.stateDir, "state.db.corrupt-*"))
	expect, snapErr := r.snapshot(round)
	if err := r.start(round); err != nil {
		w.start = err.Error()
		w.fail("daemon did not start: %v", err)
		return w
	}
	w.start = "ok"
	after, _ := filepath.Glob(filepath.Join(r.stateDir, "state.db.corrupt-*"))
	corrupted := r.corruptedLast
	switch {
	case len(after) > len(before):
		w.db = "restored " + expect.from
		if !corrupted {
			w.fail("state.db was moved aside though nothing damaged it: %v", after)
		}
	case corrupted:
		w.db = "not restored"
		w.fail("state.db was truncated, but the daemon did not move it aside")
	default:
		w.db = "clean"
	}
	// Temporary files of a backup or restore the kill cut short must not
	// pile up: the restart removes them.
	tmps, _ := filepath.Glob(filepath.Join(r.stateDir, "backups", ".*.tmp"))
	more, _ := filepath.Glob(filepath.Join(r.stateDir, ".*.tmp"))
	if tmps = append(tmps, more...); len(tmps) > 0 {
		w.fail("temporary files left after the restart: %v", tmps)
	}
	if snapErr != nil {
		w.fail("reading what the daemon should serve: %v", snapErr)
	} else {
		r.check(&w, expect)
	}
	if round > r.o.rounds {
		return w
	}

	// The storm, and the kill at a random point of it.
	lo := 200 * time.Millisecond
	if r.o.corruptEvery > 0 && round%r.o.corruptEvery == 0 {
		lo = 1500 * time.Millisecond // a backup is taken every second
	}
	w.killAt = lo + time.Duration(r.rng.Int64N(int64(3*time.Second-lo)))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stats := make([]map[string]int, len(r.nodes))
	for i, n := range r.nodes {
		stats[i] = map[string]int{}
		n.acks = nil
		wg.Go(func() { n.storm(ctx, stats[i]) })
	}
	time.Sleep(w.killAt)
	r.kill()
	r.killedAt = time.Now()
	cancel()
	wg.Wait()
	for _, s := range stats {
		for k, v := range s {
			w.counts[k] += v
		}
	}
	for _, n := range r.nodes {
		w.acked += len(n.acks)
		for _, bad := range n.bad {
			w.partial++
			w.fail("%s: %s", n.mac, bad)
		}
		n.bad = nil
	}
	// Half the rounds start with an empty asset cache, so the next
	// round's kill can land in a cache fill too.
	w.cache = "kept"
	if r.rng.IntN(2) == 0 {
		w.cache = "emptied"
		if err := os.RemoveAll(filepath.Join(r.o.dir, "cache")); err != nil {
			w.fail("empty the cache: %v", err)
		}
	}
	if b, err := os.ReadFile(r.logPath); err == nil && bytes.Contains(b, []byte("panic")) {
		w.fail("the daemon's log mentions a panic: %s", r.logPath)
	}
	r.corruptedLast = false
	if r.o.corruptEvery > 0 && round%r.o.corruptEvery == 0 {
		if err := os.Truncate(filepath.Join(r.stateDir, "state.db"), 8<<10); err != nil {
			w.fail("truncate state.db: %v", err)
		}
		r.corruptedLast = true
		w.disk = "truncated 8KiB"
	}
	return w
}

// expectation is what the daemon must serve after a restart: each MAC's
// state and generation as in the database it opens (the killed one's
// file, or the backup it restores), and from when.
type expectation struct {
	from     string
	at       time.Time // the backup's time; zero for the live file
	machines map[string]record
}

type record struct {
	State      machine.State `json:"state"`
	Generation uint64        `json:"generation"`
}

// snapshot reads, before the restart, what the daemon will serve: a copy
// of state.db as the kill left it, or, when it was damaged, the newest
// backup (the one a restore picks). Round 1 expects nothing.
func (r *rig) snapshot(round int) (expectation, error) {
	e := expectation{from: "state.db", machines: map[string]record{}}
	if round == 1 {
		return e, nil
	}
	src := filepath.Join(r.stateDir, "state.db")
	if r.corruptedLast {
		backups, _ := filepath.Glob(filepath.Join(r.stateDir, "backups", "state-*.db"))
		if len(backups) == 0 {
			return e, errors.New("no backup to restore")
		}
		slices.Sort(backups)
		src = backups[len(backups)-1]
		e.from = filepath.Base(src)
		stamp := strings.TrimSuffix(strings.TrimPrefix(e.from, "state-"), ".db")
		t, err := time.Parse("20060102T150405.000Z", stamp)
		if err != nil {
			return e, fmt.Errorf("backup name %s: %w", e.from, err)
		}
		e.at = t
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return e, err
	}
	cp := filepath.Join(r.o.dir, "snapshot.db")
	if err := os.WriteFile(cp, b, 0o600); err != nil {
		return e, err
	}
	defer os.Remove(cp)
	db, err := bolt.Open(cp, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return e, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("machines"))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var m record
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			e.machines[string(k)] = m
			return nil
		})
	})
	return e, err
}

// progress places a known machine's state and generation on its install
// cycle: pending 3k, installing 3k+1, installed 3k+2 in its k-th cycle
// (generation 2k, 2k, 2k+1: installed and reinstall each rotate the
// token). -1 is no record.
func progress(m record, ok bool) (int, error) {
	if !ok {
		return -1, nil
	}
	g := int(m.Generation)
	switch {
	case m.State == machine.Pending && g%2 == 0:
		return 3 * (g / 2), nil
	case m.State == machine.Installing && g%2 == 0:
		return 3*(g/2) + 1, nil
	case m.State == machine.Installed && g%2 == 1:
		return 3*(g/2) + 2, nil
	}
	return 0, fmt.Errorf("state %s at generation %d is off the install-once cycle", m.State, g)
}

// check compares what the restarted daemon serves with the expectation,
// and the expectation with what the nodes were told before the kill.
func (r *rig) check(w *row, e expectation) {
	served, err := r.listMachines()
	if err != nil {
		w.fail("GET /api/v1/machines: %v", err)
		return
	}
	w.machines = len(served)
	for mac, want := range e.machines {
		if got, ok := served[mac]; !ok || got != want.State {
			w.fail("%s: served as %q, but the database it opened says %q", mac, got, want.State)
		}
	}
	for mac := range served {
		if _, ok := e.machines[mac]; !ok {
			w.fail("%s: served, but not in the database it opened", mac)
		}
	}
	for _, n := range r.nodes {
		m, ok := e.machines[n.mac.String()]
		if !n.known {
			// DHCP sightings are written in the background: one answered
			// more than a second before the kill (or before the backup)
			// must be recorded.
			cut := r.killedAt.Add(-time.Second)
			if !e.at.IsZero() {
				cut = e.at.Add(-time.Second)
			}
			if !n.sighted.IsZero() && n.sighted.Before(cut) && !ok {
				w.lost++
				w.fail("%s: DHCP answered at %s, over a second before the kill, but no record", n.mac, n.sighted.Format(time.StampMilli))
			}
			if ok && m.State != machine.Discovered {
				w.fail("%s: unknown machine in state %s", n.mac, m.State)
			}
			continue
		}
		got, err := progress(m, ok)
		if err != nil {
			w.fail("%s: %v", n.mac, err)
			continue
		}
		// Every change acknowledged before the database's point in time
		// (the kill, or the backup's time) is in it; one more, in flight
		// at the kill, may be too.
		need, last := n.p, n.p
		if !e.at.IsZero() {
			need = n.base
			for _, a := range n.acks {
				if a.at.Before(e.at) {
					need = a.p
				}
			}
		}
		if got < need {
			w.lost += need - got
			w.fail("%s: acknowledged up to step %d, but the database holds step %d (%s, generation %d)", n.mac, need, got, m.State, m.Generation)
		}
		if got > last+1 {
			w.fail("%s: database at step %d, beyond the %d acknowledged plus one in flight", n.mac, got, last)
		}
		n.p, n.base = got, got
	}
	if !e.at.IsZero() {
		// A restore forgets sightings after the backup: count afresh.
		for _, n := range r.nodes {
			n.sighted = time.Time{}
		}
	}
}

// listMachines returns every recorded machine's state as the admin API
// lists it.
func (r *rig) listMachines() (map[string]machine.State, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/machines", r.ports.admin))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	var list []struct {
		MAC       string        `json:"mac"`
		State     machine.State `json:"state"`
		FirstSeen *time.Time    `json:"firstSeen"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, err
	}
	out := map[string]machine.State{}
	for _, m := range list {
		if m.FirstSeen == nil {
			continue // a profile that never booted: no record
		}
		out[m.MAC] = m.State
	}
	return out, nil
}

// start runs the daemon and waits until its admin API and boot HTTP
// answer.
func (r *rig) start(round int) error {
	r.logPath = filepath.Join(r.o.dir, fmt.Sprintf("round-%02d.log", round))
	logf, err := os.Create(r.logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(r.o.bin, "serve", "--config", r.cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, killed with the driver if the driver dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	r.proc = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	r.exited = exited
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			r.proc = nil
			return fmt.Errorf("exited (%v): %s", err, lastLines(r.logPath, 5))
		default:
		}
		if ok(fmt.Sprintf("http://127.0.0.1:%d/api/v1/status", r.ports.admin)) && ok(fmt.Sprintf("http://127.0.0.1:%d/boot.ipxe", r.ports.http)) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering after 60s: %s", lastLines(r.logPath, 5))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ok(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func lastLines(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// kill sends SIGKILL to the daemon and waits for it to be gone.
func (r *rig) kill() {
	if r.proc == nil {
		return
	}
	_ = syscall.Kill(r.proc.Process.Pid, syscall.SIGKILL)
	<-r.exited
	r.proc = nil
}

// stop kills a daemon left running (on an early return).
func (r *rig) stop() { r.kill() }

// stopGracefully ends the last daemon with SIGTERM, as systemd does, and
// wants it gone within 30 s with exit status 0.
func (r *rig) stopGracefully() error {
	if r.proc == nil {
		return nil
	}
	_ = r.proc.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.exited:
		r.proc = nil
		return err
	case <-time.After(30 * time.Second):
		return errors.New("SIGTERM: still running after 30s")
	}
}

func printTable(rows []row) {
	fmt.Println()
	fmt.Println("Each round: start (state.db as the last kill left it), check, boot storm, kill -9 at \"kill at\";")
	fmt.Println("\"state.db/cache after\" is what was then done to the files before the next round's start.")
	fmt.Printf("%5s %-6s %-36s %8s %8s %4s %7s %5s %5s %6s %7s %6s %4s %8s %-14s %-7s\n",
		"round", "start", "state.db at start", "machines", "acked", "lost", "partial",
		"dhcp", "tftp", "script", "configs", "assets", "cut", "kill at", "state.db after", "cache after")
	for _, w := range rows {
		kill := "-"
		if w.killAt > 0 {
			kill = w.killAt.Round(time.Millisecond).String()
		}
		start := w.start
		if len(start) > 6 {
			start = "FAIL"
		}
		fmt.Printf("%5d %-6s %-36s %8d %8d %4d %7d %5d %5d %6d %7d %6d %4d %8s %-14s %-7s\n",
			w.round, start, w.db, w.machines, w.acked, w.lost, w.partial,
			w.counts["dhcp"], w.counts["tftp"], w.counts["script"], w.counts["config"], w.counts["asset"], w.counts["cut"]+w.counts["tftp_cut"],
			kill, w.disk, w.cache)
	}
	fmt.Println()
}

// node is one simulated machine. p is where the chaos driver knows its
// install cycle stands (progress); acks are the steps acknowledged this
// round, with when.
type node struct {
	r       *rig
	mac     net.HardwareAddr
	known   bool
	p, base int
	acks    []ack
	sighted time.Time // an unknown node's first DHCP answer since the last restore
	bad     []string  // bodies that were complete but wrong
}

type ack struct {
	p  int
	at time.Time
}

func (n *node) acked(p int) {
	n.p = p
	n.acks = append(n.acks, ack{p: p, at: time.Now()})
}

var (
	kernelRe = regexp.MustCompile(`(?m)^kernel (\S+) `)
	initrdRe = regexp.MustCompile(`(?m)^initrd (\S+)`)
	configRe = regexp.MustCompile(`talos\.config=(\S+)`)
)

var firmware = []dhcpv4.Modifier{
	dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
	dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7}),
}

// storm walks the node through boots until ctx ends: firmware DHCP, TFTP,
// iPXE DHCP, /boot.ipxe, then the step its install cycle is at: a
// netboot (kernel, initramfs, config), the boot after the install (told
// to boot its disk), or a reinstall through the admin API. Any error
// (the daemon was killed) ends the boot; the next one starts over.
func (n *node) storm(ctx context.Context, stats map[string]int) {
	for ctx.Err() == nil {
		if err := n.boot(ctx, stats); err != nil && ctx.Err() == nil {
			stats["cut"]++
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (n *node) boot(ctx context.Context, stats map[string]int) error {
	r := n.r
	offer, err := n.dhcp(ctx, firmware...)
	if err != nil {
		return err
	}
	stats["dhcp"]++
	if !n.known && n.sighted.IsZero() {
		n.sighted = time.Now()
	}
	file := offer.BootFileName
	got, err := n.tftp(ctx, file)
	if err != nil {
		stats["tftp_cut"]++
	} else if !bytes.Equal(got, r.ipxe) {
		n.bad = append(n.bad, fmt.Sprintf("TFTP %s: %d bytes that differ from the %d on disk", file, len(got), len(r.ipxe)))
	} else {
		stats["tftp"]++
	}
	if _, err := n.dhcp(ctx, append(firmware, dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE")))...); err != nil {
		return err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", r.ports.http)
	if _, _, err := n.get(ctx, base+"/boot.ipxe"); err != nil {
		return err
	}
	dashed := strings.ReplaceAll(n.mac.String(), ":", "-")
	scriptURL := base + "/ipxe?mac=" + dashed + "&arch=x86_64"
	if n.known && n.p >= 0 && n.p%3 == 2 {
		// Installed: an operator re-arms it.
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/api/v1/machines/%s/reinstall", r.ports.admin, n.mac), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			n.bad = append(n.bad, fmt.Sprintf("reinstall: %d", resp.StatusCode))
			return nil
		}
		n.acked(n.p + 1)
		return nil
	}
	code, body, err := n.get(ctx, scriptURL)
	if err != nil {
		return err
	}
	stats["script"]++
	script := string(body)
	netboot := configRe.MatchString(script)
	switch {
	case code != http.StatusOK:
		n.bad = append(n.bad, fmt.Sprintf("/ipxe: %d %s", code, body))
		return nil
	case !n.known:
		if netboot || !kernelRe.MatchString(script) {
			n.bad = append(n.bad, "/ipxe for an unknown machine is not a maintenance boot:\n"+script)
		}
	case n.p%3 == 1: // installing: this boot follows the install
		if netboot || !strings.Contains(script, "boots its local disk") {
			n.bad = append(n.bad, "/ipxe after the install is not a local boot:\n"+script)
			return nil
		}
		n.acked(n.p + 1)
		return nil
	default: // no record yet, or pending
		if !netboot {
			n.bad = append(n.bad, fmt.Sprintf("/ipxe at step %d is not a netboot:\n%s", n.p, script))
			return nil
		}
		n.acked(max(n.p, 0))
	}
	for _, re := range []*regexp.Regexp{kernelRe, initrdRe} {
		m := re.FindStringSubmatch(script)
		if m == nil {
			n.bad = append(n.bad, "script without "+re.String())
			return nil
		}
		code, b, err := n.get(ctx, m[1])
		if err != nil {
			return err
		}
		name := m[1][strings.LastIndex(m[1], "/")+1:]
		if code != http.StatusOK || !bytes.Equal(b, r.ff.Asset(name)) {
			n.bad = append(n.bad, fmt.Sprintf("asset %s: %d, %d bytes that differ from the factory's %d", name, code, len(b), len(r.ff.Asset(name))))
			return nil
		}
		stats["asset"]++
	}
	if !n.known {
		return nil
	}
	code, b, err := n.get(ctx, configRe.FindStringSubmatch(script)[1])
	if err != nil {
		return err
	}
	if want := r.rendered[n.mac.String()]; code != http.StatusOK || !bytes.Equal(b, want) {
		n.bad = append(n.bad, fmt.Sprintf("config: %d, %d bytes that differ from `tinderbox render`'s %d", code, len(b), len(want)))
		return nil
	}
	if err := parsesAsYAML(b); err != nil {
		n.bad = append(n.bad, "config: "+err.Error())
		return nil
	}
	stats["config"]++
	n.acked(n.p + 1)
	return nil
}

// dhcp sends a DISCOVER to the proxy's DHCP port and returns its offer,
// then REQUESTs it on the PXE port, as UEFI firmware does.
func (n *node) dhcp(ctx context.Context, mods ...dhcpv4.Modifier) (*dhcpv4.DHCPv4, error) {
	ask := func(port int, f func(*nclient4.Client, *net.UDPAddr) (*dhcpv4.DHCPv4, error)) (*dhcpv4.DHCPv4, error) {
		server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
		c, err := nclient4.New("", nclient4.WithUnicast(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}),
			nclient4.WithHWAddr(n.mac), nclient4.WithServerAddr(server), nclient4.WithTimeout(time.Second), nclient4.WithRetry(2))
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return f(c, server)
	}
	offer, err := ask(n.r.ports.dhcp, func(c *nclient4.Client, _ *net.UDPAddr) (*dhcpv4.DHCPv4, error) {
		return c.DiscoverOffer(ctx, mods...)
	})
	if err != nil {
		return nil, err
	}
	_, err = ask(n.r.ports.pxe, func(c *nclient4.Client, server *net.UDPAddr) (*dhcpv4.DHCPv4, error) {
		req, err := dhcpv4.NewRequestFromOffer(offer, append(mods, dhcpv4.WithClientIP(net.IPv4(127, 0, 0, 1)))...)
		if err != nil {
			return nil, err
		}
		req.Options.Del(dhcpv4.OptionServerIdentifier)
		return c.SendAndRead(ctx, server, req, nclient4.IsMessageType(dhcpv4.MessageTypeAck))
	})
	return offer, err
}

// tftp fetches file from the daemon's TFTP server.
func (n *node) tftp(ctx context.Context, file string) ([]byte, error) {
	c, err := tftp.NewClient(tftp.ClientBlocksize(1468), tftp.ClientTimeout(1), tftp.ClientRetransmit(2))
	if err != nil {
		return nil, err
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := c.Get(fmt.Sprintf("tftp://127.0.0.1:%d/%s", n.r.ports.tftp, file))
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp)
		done <- result{b, err}
	}()
	select {
	case res := <-done:
		return res.b, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// parsesAsYAML checks that every document of b is YAML.
func parsesAsYAML(b []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not YAML: %w", err)
		}
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

func (n *node) get(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}
