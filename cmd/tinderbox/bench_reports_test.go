//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tinderbox-boot/tinderbox/internal/talosevents"
	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// BenchmarkReports500 is issue 16's storm: 500 nodes, each from a loopback
// address of its own, ask for their script, then at once publish a whole
// install (10 events) to the event sink over gRPC and stream 200 kernel
// log lines over TCP, while a UI-like client follows GET /api/v1/events.
// It fails if any event or line is lost (every machine must end ready,
// with all its lines kept) and reports the daemon process's peak RSS and
// the longest gap between two machine events on the stream.
func BenchmarkReports500(b *testing.B) {
	const nodes, lines = 500, 200
	ff, err := fakefactory.Start(fakefactory.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ff.Close)
	for b.Loop() {
		b.StopTimer()
		cfg := testConfig(b)
		copyTree(b, filepath.Join("..", "..", "profiles"), cfg.Profiles.Dir)
		macs := make([]machine.MAC, nodes)
		for i := range macs {
			macs[i] = machine.MAC{0x02, 0xbe, 0x0c, 0, byte(i >> 8), byte(i)}
			body := fmt.Sprintf("hostname: n-%03d\ngroups: [worker, vm]\nvalues:\n  address: 192.168.1.21/24\n", i)
			if err := os.WriteFile(filepath.Join(cfg.Profiles.Dir, "machines", macs[i].Dashed()+".yaml"), []byte(body), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		cfg.Factory.URL = ff.URL
		cfg.Reports.Enabled, cfg.Reports.EventsListen, cfg.Reports.LogsListen = true, "127.0.0.1:0", "127.0.0.1:0"
		d, stop := startDaemon(b, cfg)

		// The UI's view: every machine change, timed.
		ctx, cancel := context.WithCancel(b.Context())
		var maxGap atomic.Int64
		streamed := make(chan struct{})
		go func() {
			defer close(streamed)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.adminAddr.String()+"/api/v1/events", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			last := time.Now()
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "event: machine") {
					if gap := time.Since(last); gap > time.Duration(maxGap.Load()) {
						maxGap.Store(int64(gap))
					}
					last = time.Now()
				}
			}
		}()
		for i := 0; d.hub.Subscribers() == 0; i++ {
			if i == 500 {
				b.Fatal("the event stream never opened")
			}
			time.Sleep(10 * time.Millisecond)
		}

		b.StartTimer()
		var wg sync.WaitGroup
		errs := make(chan error, nodes)
		for i, mac := range macs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- node500(ctx, d, mac, netAddr(i), lines)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		// Every event applied and every line kept (lines arrive a little
		// after their writes return).
		for _, mac := range macs {
			m, _, err := d.state.Get(mac)
			if err != nil || m.State != machine.Ready {
				b.Fatalf("%s: state %s (%v), want ready: an event was lost", mac, m.State, err)
			}
		}
		for i := 0; ; i++ {
			short := 0
			for _, mac := range macs {
				if len(d.logs.Lines(mac, lines)) < lines {
					short++
				}
			}
			if short == 0 {
				break
			}
			if i == 1000 {
				b.Fatalf("%d machines are missing log lines", short)
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.StopTimer()
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
		b.ReportMetric(float64(time.Duration(maxGap.Load()).Milliseconds()), "max-stream-gap-ms")
		cancel()
		<-streamed
		if err := stop(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// netAddr is node i's own loopback address.
func netAddr(i int) net.IP { return net.IPv4(127, 2, byte(i/250), byte(1+i%250)) }

// node500 is one node of the storm: its script request from its own
// address, then its install's events and its log lines, both from there.
func node500(ctx context.Context, d *daemon, mac machine.MAC, ip net.IP, lines int) error {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}, Timeout: 60 * time.Second}
	resp, err := hc.Get("http://" + d.httpAddr.String() + "/ipxe?arch=x86_64&mac=" + mac.Dashed())
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: script: %d", mac, resp.StatusCode)
	}

	conn, err := grpc.NewClient(d.eventsAddr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return dialer.DialContext(ctx, "tcp", addr) }))
	if err != nil {
		return err
	}
	defer conn.Close()
	logs, err := dialer.DialContext(ctx, "tcp", d.logsAddr.String())
	if err != nil {
		return err
	}
	defer logs.Close()
	w := bufio.NewWriter(logs)
	events := []any{
		talosevents.SequenceEvent{Sequence: "initialize", Action: talosevents.SequenceStart},
		talosevents.SequenceEvent{Sequence: "initialize", Action: talosevents.SequenceStop},
		talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStart},
		talosevents.PhaseEvent{Phase: "validateConfig", Action: talosevents.StepStart},
		talosevents.PhaseEvent{Phase: "validateConfig", Action: talosevents.StepStop},
		talosevents.PhaseEvent{Phase: "install", Action: talosevents.StepStart},
		talosevents.PhaseEvent{Phase: "install", Action: talosevents.StepStop},
		talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStop},
		talosevents.SequenceEvent{Sequence: "reboot", Action: talosevents.SequenceStart},
		talosevents.MachineStatusEvent{Stage: talosevents.StageRunning, Ready: true},
	}
	per := lines / len(events)
	for j, ev := range events {
		for k := range per {
			fmt.Fprintf(w, `{"facility":"kern","msg":"[talos] %s step %d line %d","priority":"info","talos-level":"info"}`+"\n", mac, j, k)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if err := talosevents.Publish(ctx, conn, fmt.Sprintf("%s-%d", mac, j), ev); err != nil {
			return fmt.Errorf("%s: publish %T: %w", mac, ev, err)
		}
	}
	return nil
}

// peakRSS is this process's peak resident set (VmHWM), in bytes; the
// daemon runs in it.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb << 10
		}
	}
	return 0
}
