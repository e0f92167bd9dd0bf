// Command scale is the driver of scripts/bench-scale.sh: it writes a
// profiles tree of many machines (package fleettree) and a state
// database of many machine records, and times a tinderbox binary on
// them: start-up until the boot HTTP server answers, `validate`, the
// reload after an edit of one machine's file, of a group and of
// defaults.yaml, and /metrics scrapes with the process's RSS. Each
// measurement prints one line of "KEY VALUE" pairs, for the script to
// record. Everything it talks to is on loopback.
//
//	scale tree -src profiles -n 5000 DIR
//	scale port
//	scale records -n 20000 STATEDIR
//	scale ready -tinderbox BIN -config CFG -boot 127.0.0.1:PORT
//	scale validate -tinderbox BIN -config CFG
//	scale reload -tinderbox BIN -config CFG -boot ADDR -profiles DIR
//	scale scrape -tinderbox BIN -config CFG -boot ADDR -n 20
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/profiles/fleettree"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: scale tree|port|records|ready|validate|reload|scrape [flags]"))
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	src := fs.String("src", "profiles", "the example profiles directory (tree)")
	n := fs.Int("n", 5000, "machines (tree), records (records) or scrapes (scrape)")
	bin := fs.String("tinderbox", "", "the tinderbox binary")
	cfg := fs.String("config", "", "its config file")
	boot := fs.String("boot", "", "its boot HTTP address (http.listen)")
	dir := fs.String("profiles", "", "its profiles directory (reload edits it)")
	_ = fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "tree":
		err = fleettree.Write(*src, fs.Arg(0), *n)
	case "port":
		err = port()
	case "records":
		err = records(fs.Arg(0), *n)
	case "ready":
		err = ready(*bin, *cfg, *boot)
	case "validate":
		err = validate(*bin, *cfg)
	case "reload":
		err = reload(*bin, *cfg, *boot, *dir)
	case "scrape":
		err = scrape(*bin, *cfg, *boot, *n)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "scale:", err)
	os.Exit(1)
}

// port prints a free TCP port of loopback.
func port() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer func() { _ = l.Close() }()
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	return nil
}

// records writes n installed machines, each with a full boot's events,
// into the state database under dir.
func records(dir string, n int) error {
	st, err := state.Open(dir, state.Options{BackupKeep: -1})
	if err != nil {
		return err
	}
	kinds := []machine.EventKind{machine.EventDHCPOffer, machine.EventTFTP, machine.EventDHCPOffer, machine.EventScript,
		machine.EventKernel, machine.EventInitramfs, machine.EventConfig, machine.EventLocalBoot}
	for i := range n {
		mac := machine.MAC{0x1c, 0x69, 0x7a, byte(i >> 16), byte(i >> 8), byte(i)}
		_, err := st.Update(mac, func(m *state.Machine, _ bool) error {
			m.State, m.Arch, m.IP, m.Generation = machine.Installed, machine.ArchAMD64, fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&0xff, i&0xff), 1
			for _, k := range kinds {
				m.Events = append(m.Events, st.Event(k, "bench record", 1<<20))
			}
			return nil
		})
		if err != nil {
			_ = st.Close()
			return err
		}
	}
	return st.Close()
}

// daemon is a tinderbox serve process.
type daemon struct {
	cmd   *exec.Cmd
	start time.Time
	log   *bytes.Buffer
}

func serve(bin, cfg string) (*daemon, error) {
	d := &daemon{cmd: exec.Command(bin, "serve", "--config", cfg), log: &bytes.Buffer{}}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.start = time.Now()
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	return d, nil
}

// waitReady polls GET /readyz until the server answers at all (it
// answers once the daemon has started: profiles loaded, every server
// up), for up to two minutes.
func (d *daemon) waitReady(boot string) (time.Duration, error) {
	c := &http.Client{Timeout: time.Second}
	for time.Since(d.start) < 2*time.Minute {
		resp, err := c.Get("http://" + boot + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			return time.Since(d.start), nil
		}
		if d.cmd.ProcessState != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("tinderbox did not answer on %s:\n%s", boot, d.log)
}

func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
}

// usage is what /proc says of a process: its CPU time so far (user +
// system), and its resident set (VmRSS), peak resident set (VmHWM) and
// the anonymous and file-backed parts of the resident set (RssAnon,
// RssFile: the state database's memory map is file-backed), in KiB.
type usage struct {
	cpu                         time.Duration
	rss, peak, anon, fileBacked int
}

func (d *daemon) proc() (u usage, err error) {
	pid := strconv.Itoa(d.cmd.Process.Pid)
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return u, err
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	u.cpu = time.Duration(utime+stime) * time.Second / 100 // USER_HZ
	st, err := os.Open(filepath.Join("/proc", pid, "status"))
	if err != nil {
		return u, err
	}
	defer func() { _ = st.Close() }()
	sc := bufio.NewScanner(st)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		kib, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			u.rss = kib
		case "VmHWM":
			u.peak = kib
		case "RssAnon":
			u.anon = kib
		case "RssFile":
			u.fileBacked = kib
		}
	}
	return u, sc.Err()
}

// runQueue is how long the threads of process pid have waited, runnable,
// for a CPU so far: the second field of each /proc/PID/task/TID/schedstat
// (nanoseconds; threads that have exited are not counted). On a busy
// machine it is the part of the wall clock the process spent ready to
// run but not running.
func runQueue(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "schedstat"))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("schedstat of %d: %v", pid, err)
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread has exited
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		sum += time.Duration(ns)
	}
	return sum, nil
}

// load1 is the machine's load average over the last minute
// (/proc/loadavg), to print beside the figures of a busy machine.
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func ready(bin, cfg, boot string) error {
	d, err := serve(bin, cfg)
	if err != nil {
		return err
	}
	defer d.stop()
	took, err := d.waitReady(boot)
	if err != nil {
		return err
	}
	u, err := d.proc()
	if err != nil {
		return err
	}
	rq, err := runQueue(d.cmd.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("ready_s %.4f ready_cpu_s %.2f ready_runq_s %.2f ready_rss_mib %.1f load1 %.1f\n",
		took.Seconds(), u.cpu.Seconds(), rq.Seconds(), mib(u.rss), load1())
	return nil
}

// validate times `tinderbox validate`; its run-queue wait is sampled
// every 2 ms while it runs (the last sample before it exits).
func validate(bin, cfg string) error {
	cmd := exec.Command(bin, "validate", "--config", cfg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	var rq time.Duration
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	for wait := true; wait; {
		select {
		case err = <-done:
			wait = false
		case <-time.After(2 * time.Millisecond):
			if v, err := runQueue(cmd.Process.Pid); err == nil {
				rq = max(rq, v)
			}
		}
	}
	took := time.Since(t0)
	if err != nil {
		return fmt.Errorf("validate: %w\n%s", err, out.String())
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	fmt.Printf("validate_s %.4f validate_cpu_s %.2f validate_runq_s %.2f\n", took.Seconds(), cpu.Seconds(), rq.Seconds())
	return nil
}

// reload starts the daemon, then edits one machine's file, the longhorn
// group (about a fifth of the machines) and defaults.yaml, one after
// the other, and times each from the write to /metrics showing a set
// loaded after it (which includes the watcher's debounce). An edit that
// does not load is never served: it times out.
func reload(bin, cfg, boot, dir string) error {
	d, err := serve(bin, cfg)
	if err != nil {
		return err
	}
	defer d.stop()
	if _, err := d.waitReady(boot); err != nil {
		return err
	}
	// Each edit changes a value, so that every machine the file applies
	// to has a render input changed.
	note := strconv.FormatInt(time.Now().UnixNano(), 10)
	appendTo := func(path, text string) func() ([]byte, error) {
		return func() ([]byte, error) {
			old, err := os.ReadFile(path)
			return append(old, text...), err
		}
	}
	edits := []struct {
		key, path string
		text      func() ([]byte, error)
	}{
		{"reload_machine_s", fleettree.MachineFile(dir, 7), func() ([]byte, error) { return fleettree.Machine(7, note), nil }},
		{"reload_group_s", filepath.Join(dir, "groups", "longhorn.yaml"),
			appendTo(filepath.Join(dir, "groups", "longhorn.yaml"), "\nvalues:\n  benchNote: \""+note+"\"\n")},
		// defaults.yaml ends in its values map.
		{"reload_defaults_s", filepath.Join(dir, "defaults.yaml"),
			appendTo(filepath.Join(dir, "defaults.yaml"), "  benchNote: \""+note+"\"\n")},
	}
	var line []string
	for _, e := range edits {
		before, err := loadedAt(boot)
		if err != nil {
			return err
		}
		text, err := e.text()
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := writeAtomic(e.path, text); err != nil {
			return err
		}
		for {
			at, err := loadedAt(boot)
			if err != nil {
				return err
			}
			if at > before {
				break
			}
			if time.Since(t0) > 2*time.Minute {
				return fmt.Errorf("%s: no reload after two minutes:\n%s", e.path, d.log)
			}
			time.Sleep(5 * time.Millisecond)
		}
		line = append(line, fmt.Sprintf("%s %.4f", e.key, time.Since(t0).Seconds()))
	}
	fmt.Println(strings.Join(line, " "))
	return nil
}

// loadedAt is when the profile set being served was loaded, as the
// boot server's /metrics says (tinderbox_profiles_last_load_success_timestamp_seconds).
func loadedAt(boot string) (float64, error) {
	resp, err := http.Get("http://" + boot + "/metrics")
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "tinderbox_profiles_last_load_success_timestamp_seconds "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s/metrics: no tinderbox_profiles_last_load_success_timestamp_seconds", boot)
}

// writeAtomic replaces path as an editor saves: a temporary file renamed
// over it.
func writeAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// scrape starts the daemon and times n scrapes of /metrics, printing
// the median, then the process's RSS after them and its peak.
func scrape(bin, cfg, boot string, n int) error {
	d, err := serve(bin, cfg)
	if err != nil {
		return err
	}
	defer d.stop()
	if _, err := d.waitReady(boot); err != nil {
		return err
	}
	var took []time.Duration
	for range n {
		t0 := time.Now()
		resp, err := http.Get("http://" + boot + "/metrics")
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return err
		}
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	u, err := d.proc()
	if err != nil {
		return err
	}
	fmt.Printf("scrape_ms %.3f rss_mib %.1f peak_rss_mib %.1f anon_mib %.1f file_mib %.1f\n",
		float64(took[len(took)/2].Microseconds())/1000, mib(u.rss), mib(u.peak), mib(u.anon), mib(u.fileBacked))
	return nil
}

func mib(kib int) float64 { return float64(kib) / 1024 }
