//go:build linux

// Command faketalos stands in for Talos Linux in the end-to-end tests
// (scripts/e2e/boot.sh). The e2e initramfs's init (scripts/e2e/assets.sh)
// brings the network up with busybox, then runs it as root. On the wire it
// does what Talos does: it reads its kernel command line, streams the
// kernel log (its own "[talos] …" lines included, written to /dev/kmsg as
// machined does) as JSON lines to talos.logging.kernel=tcp://HOST:PORT/
// (or udp://), and publishes its runtime events to the gRPC sink named by
// talos.events.sink=HOST:PORT, each with a unique xid-style id.
//
// What it does depends on the command line:
//
//   - talos.config=URL: the installer. Sequence initialize (it fetches the
//     config and prints its sha256 and contents on the console), then
//     sequence install: it writes the disk image /disk.img (a bootable
//     image built by assets.sh) to the config's machine.install.disk (else
//     /dev/vda or /dev/sda), reports the install done, starts the reboot
//     sequence and reboots.
//   - no talos.config: maintenance mode. It reports stage MAINTENANCE and
//     powers off.
//   - e2e.disk=1: the system installed on the disk (the image's grub.cfg
//     sets it). It reports the boot sequence and RUNNING and ready, then
//     powers off.
//   - e2e.fail-install=1: the install sequence stops with an error.
//   - e2e.install-seconds=N: the install takes N seconds more before it
//     writes the disk, as a real one spends pulling its installer image
//     (make demo, so that installing stays on screen).
//   - e2e.stall=1: it does nothing at all (never fetches its config) and
//     waits to be killed, as a node stuck after its kernel.
//
// Lines for the test script go to stdout (the serial console), each
// starting with "TINDERBOX-E2E: ". Failures to reach the sink or the log
// receiver are printed there too and do not stop the sequence: the test
// sees them as missing reports.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tinderbox-boot/tinderbox/internal/talosevents"
)

// diskImage is where assets.sh puts the bootable image in the installer's
// initramfs.
const diskImage = "/disk.img"

func main() {
	args := parseCmdline(readFile("/proc/cmdline"))
	t := &node{args: args}
	t.openLog()
	t.openSink()
	switch {
	case args["e2e.stall"] == "1":
		say("stalling after the kernel, as e2e.stall=1 asks: nothing more")
		for {
			time.Sleep(time.Hour) // select{} would end as a deadlock
		}
	case args["e2e.disk"] == "1":
		t.bootFromDisk()
		t.halt(unix.LINUX_REBOOT_CMD_POWER_OFF)
	case args["talos.config"] == "":
		t.maintenance()
		t.halt(unix.LINUX_REBOOT_CMD_POWER_OFF)
	default:
		if t.install() {
			t.halt(unix.LINUX_REBOOT_CMD_RESTART)
		}
		t.halt(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
}

// node is the running stand-in: its command line, its log stream and its
// event sink.
type node struct {
	args map[string]string
	log  *kmsgStream
	sink *grpc.ClientConn
}

func (t *node) maintenance() {
	t.event(talosevents.SequenceEvent{Sequence: "initialize", Action: talosevents.SequenceStart})
	t.talos("talos.config is not set: entering maintenance mode")
	say("maintenance mode: no talos.config")
	t.event(talosevents.SequenceEvent{Sequence: "initialize", Action: talosevents.SequenceStop})
	t.event(talosevents.MachineStatusEvent{Stage: talosevents.StageMaintenance,
		Unmet: []talosevents.UnmetCondition{{Name: "config", Reason: "waiting for a machine config"}}})
}

// install runs the initialize and install sequences and reports whether
// the install succeeded.
func (t *node) install() bool {
	t.event(talosevents.SequenceEvent{Sequence: "initialize", Action: talosevents.SequenceStart})
	t.event(talosevents.MachineStatusEvent{Stage: talosevents.StageBooting})
	t.phase("config", talosevents.StepStart)
	cfgURL := t.args["talos.config"]
	t.talos("fetching machine config from: " + cfgURL)
	say("fetching config: " + cfgURL)
	cfg, err := fetch(cfgURL)
	if err != nil {
		say("config fetch failed: " + err.Error())
		t.talos("loadConfig failed: " + err.Error())
		t.event(talosevents.SequenceEvent{Sequence: "initialize", Action: talosevents.SequenceStop,
			Error: &talosevents.Error{Message: "loadConfig: " + err.Error()}})
		return false
	}
	say(fmt.Sprintf("config sha256: %x", sha256.Sum256(cfg)))
	say("config begin")
	os.Stdout.Write(cfg)
	fmt.Println()
	say("config end")
	t.talos(fmt.Sprintf("machine config loaded (%d bytes)", len(cfg)))
	t.phase("config", talosevents.StepStop)
	t.event(talosevents.SequenceEvent{Sequence: "initialize", Action: talosevents.SequenceStop})

	t.event(talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStart})
	t.event(talosevents.MachineStatusEvent{Stage: talosevents.StageInstalling,
		Unmet: []talosevents.UnmetCondition{{Name: "install", Reason: "installing to disk"}}})
	t.phase("install", talosevents.StepStart)
	disk := installDisk(cfg)
	t.talos("installing Talos to " + disk)
	if n, err := strconv.Atoi(t.args["e2e.install-seconds"]); err == nil && n > 0 {
		t.talos(fmt.Sprintf("pulling the installer image (%d s, as e2e.install-seconds asks)", n))
		time.Sleep(time.Duration(n) * time.Second)
	}
	if t.args["e2e.fail-install"] == "1" {
		msg := "install to " + disk + " refused: e2e.fail-install=1 asks this install to fail"
		t.talos("install failed: " + msg)
		t.phase("install", talosevents.StepStop)
		t.event(talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStop,
			Error: &talosevents.Error{Message: msg}})
		say("install failed: " + msg)
		return false
	}
	n, err := writeImage(disk, diskImage)
	if err != nil {
		t.talos("install failed: " + err.Error())
		t.phase("install", talosevents.StepStop)
		t.event(talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStop,
			Error: &talosevents.Error{Message: err.Error()}})
		say("install failed: " + err.Error())
		return false
	}
	say(fmt.Sprintf("installed: %d bytes written to %s", n, disk))
	t.talos(fmt.Sprintf("installation of %d bytes to %s finished successfully", n, disk))
	t.phase("install", talosevents.StepStop)
	t.event(talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStop})

	t.event(talosevents.SequenceEvent{Sequence: "reboot", Action: talosevents.SequenceStart})
	t.event(talosevents.MachineStatusEvent{Stage: talosevents.StageRebooting})
	t.talos("rebooting into the installed system")
	return true
}

func (t *node) bootFromDisk() {
	say("booted from disk: " + strings.TrimSpace(readFile("/proc/cmdline")))
	t.event(talosevents.SequenceEvent{Sequence: "boot", Action: talosevents.SequenceStart})
	t.event(talosevents.MachineStatusEvent{Stage: talosevents.StageBooting})
	t.talos("booting the installed system")
	t.event(talosevents.SequenceEvent{Sequence: "boot", Action: talosevents.SequenceStop})
	t.event(talosevents.MachineStatusEvent{Stage: talosevents.StageRunning, Ready: true})
	t.talos("machine is running and ready")
	say("reported running and ready")
}

// halt flushes the log stream and the disks, then powers off or reboots.
func (t *node) halt(cmd int) {
	t.log.drain()
	if cmd == unix.LINUX_REBOOT_CMD_RESTART {
		say("rebooting")
	} else {
		say("powering off")
	}
	unix.Sync()
	if err := unix.Reboot(cmd); err != nil {
		say("reboot(2): " + err.Error())
		os.Exit(1)
	}
}

// talos logs one machined-style line: to /dev/kmsg, as machined does,
// then on to the log receiver with whatever else the kernel logged.
func (t *node) talos(msg string) {
	t.log.write("[talos] " + msg)
	t.log.drain()
}

func (t *node) phase(name string, a talosevents.StepAction) {
	t.event(talosevents.PhaseEvent{Phase: name, Action: a})
	verb := "started"
	if a == talosevents.StepStop {
		verb = "done"
	}
	t.talos("phase " + name + ": " + verb)
}

// openSink connects to talos.events.sink; events are dropped (and said on
// the console) when it is not set.
func (t *node) openSink() {
	addr := t.args["talos.events.sink"]
	if addr == "" {
		say("no talos.events.sink: events are not sent")
		return
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		say("event sink " + addr + ": " + err.Error())
		return
	}
	t.sink = conn
}

// event publishes msg with a fresh id, retrying for a while as Talos
// does, since the sink may not be reachable the instant the network is.
func (t *node) event(msg any) {
	if t.sink == nil {
		return
	}
	id := newID()
	var err error
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = talosevents.Publish(ctx, t.sink, id, msg)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	say(fmt.Sprintf("event %T not delivered: %v", msg, err))
}

// openLog opens /dev/kmsg and connects to talos.logging.kernel. Without a
// destination the [talos] lines still go to /dev/kmsg (and so to the
// console).
func (t *node) openLog() {
	t.log = &kmsgStream{boot: bootTime(), kmsg: -1}
	// A raw descriptor, not an *os.File: Go's poller would park a read
	// of the pollable /dev/kmsg instead of returning EAGAIN.
	fd, err := unix.Open("/dev/kmsg", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		say("/dev/kmsg: " + err.Error())
	} else {
		t.log.kmsg = fd
	}
	dest := t.args["talos.logging.kernel"]
	if dest == "" {
		return
	}
	u, err := url.Parse(dest)
	if err != nil || (u.Scheme != "tcp" && u.Scheme != "udp") || u.Host == "" {
		say("talos.logging.kernel=" + dest + ": want tcp://HOST:PORT/ or udp://HOST:PORT/")
		return
	}
	conn, err := net.DialTimeout(u.Scheme, u.Host, 10*time.Second)
	if err != nil {
		say("log receiver " + dest + ": " + err.Error())
		return
	}
	t.log.conn, t.log.udp = conn, u.Scheme == "udp"
	t.log.drain()
}

// kmsgStream forwards kernel log records to a log receiver, one JSON
// object per record: newline-terminated over TCP, one per datagram over
// UDP.
type kmsgStream struct {
	kmsg int // /dev/kmsg, non-blocking; -1 when it could not be opened
	conn net.Conn
	udp  bool
	boot time.Time
	buf  [8192]byte
}

func (s *kmsgStream) write(line string) {
	if s.kmsg < 0 {
		return
	}
	// <14>: facility user, level info; the kernel would default to
	// warning without it.
	if _, err := unix.Write(s.kmsg, []byte("<14>"+line+"\n")); err != nil {
		say("/dev/kmsg: " + err.Error())
	}
}

// drain sends every record not sent yet; it never blocks on the kernel.
func (s *kmsgStream) drain() {
	if s.kmsg < 0 || s.conn == nil {
		return
	}
	for {
		n, err := unix.Read(s.kmsg, s.buf[:])
		if errors.Is(err, unix.EPIPE) {
			continue // records were overwritten before we read them
		}
		if err != nil || n <= 0 {
			return // EAGAIN: nothing more for now
		}
		rec, ok := parseKmsg(s.buf[:n])
		if !ok {
			continue
		}
		b, _ := json.Marshal(rec.json(s.boot))
		if !s.udp {
			b = append(b, '\n')
		}
		s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.conn.Write(b); err != nil {
			say("log receiver: " + err.Error())
			s.conn.Close()
			s.conn = nil
			return
		}
	}
}

// kmsgRecord is one /dev/kmsg record (the kernel's
// Documentation/ABI/testing/dev-kmsg): "PRI,SEQ,USEC,FLAGS;MESSAGE\n"
// followed by continuation lines, which are dropped here.
type kmsgRecord struct {
	facility, level int
	seq             uint64
	usec            int64
	msg             string
}

func parseKmsg(b []byte) (kmsgRecord, bool) {
	head, rest, ok := bytes.Cut(b, []byte{';'})
	if !ok {
		return kmsgRecord{}, false
	}
	msg, _, _ := bytes.Cut(rest, []byte{'\n'})
	f := strings.Split(string(head), ",")
	if len(f) < 3 {
		return kmsgRecord{}, false
	}
	pri, err1 := strconv.Atoi(f[0])
	seq, err2 := strconv.ParseUint(f[1], 10, 64)
	usec, err3 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || pri < 0 {
		return kmsgRecord{}, false
	}
	return kmsgRecord{facility: pri >> 3, level: pri & 7, seq: seq, usec: usec, msg: string(msg)}, true
}

// The syslog names of facilities and levels (RFC 5424 §6.2.1).
var (
	facilityNames = []string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp"}
	levelNames    = []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}
)

// json is the record as Talos' JSON-lines sender encodes it; zap's level
// names stand for the kernel's: emerg to err are "error", warning "warn",
// notice and info "info".
func (r kmsgRecord) json(boot time.Time) map[string]any {
	facility := strconv.Itoa(r.facility)
	if r.facility < len(facilityNames) {
		facility = facilityNames[r.facility]
	}
	level := "info"
	switch {
	case r.level <= 3:
		level = "error"
	case r.level == 4:
		level = "warn"
	case r.level == 7:
		level = "debug"
	}
	return map[string]any{
		"msg":         r.msg,
		"talos-time":  boot.Add(time.Duration(r.usec) * time.Microsecond).UTC().Format(time.RFC3339Nano),
		"talos-level": level,
		"facility":    facility,
		"priority":    levelNames[r.level],
		"seq":         r.seq,
		"clock":       r.usec,
	}
}

// bootTime is when the kernel started, from /proc/uptime.
func bootTime() time.Time {
	f := strings.Fields(readFile("/proc/uptime"))
	if len(f) == 0 {
		return time.Now()
	}
	up, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return time.Now()
	}
	return time.Now().Add(-time.Duration(up * float64(time.Second)))
}

// parseCmdline splits a kernel command line into its arguments; an
// argument without "=" maps to "", and a later one wins.
func parseCmdline(s string) map[string]string {
	args := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		args[k] = v
	}
	return args
}

// installDisk is machine.install.disk from the config, else the first of
// /dev/vda and /dev/sda that exists.
func installDisk(cfg []byte) string {
	var c struct {
		Machine struct {
			Install struct {
				Disk string `yaml:"disk"`
			} `yaml:"install"`
		} `yaml:"machine"`
	}
	if yaml.Unmarshal(cfg, &c) == nil && c.Machine.Install.Disk != "" {
		return c.Machine.Install.Disk
	}
	for _, d := range []string{"/dev/vda", "/dev/sda"} {
		if _, err := os.Stat(d); err == nil {
			return d
		}
	}
	return "/dev/vda"
}

// writeImage copies the image at src onto the block device disk and
// flushes it; it returns the bytes written.
func writeImage(disk, src string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, fmt.Errorf("open image: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("open install disk: %w", err)
	}
	n, err := io.Copy(out, bufio.NewReaderSize(in, 1<<20))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("write %s: %w", disk, err)
	}
	return n, nil
}

func fetch(u string) ([]byte, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return body, nil
}

var idCounter atomic.Uint32

// newID returns an id shaped like the xids Talos gives its events: 12
// bytes (seconds since the epoch, 5 random bytes, a counter) in lower-case
// base32hex, 20 characters that sort by time.
func newID() string {
	var b [12]byte
	binary.BigEndian.PutUint32(b[0:4], uint32(time.Now().Unix()))
	rand.Read(b[4:9])
	c := idCounter.Add(1)
	b[9], b[10], b[11] = byte(c>>16), byte(c>>8), byte(c)
	return strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

func say(s string) { fmt.Println("TINDERBOX-E2E: " + s) }

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
