//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tinderbox-boot/tinderbox/internal/talosevents"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

var (
	sinkRe = regexp.MustCompile(`talos\.events\.sink=(\S+)`)
	logRe  = regexp.MustCompile(`talos\.logging\.kernel=tcp://(\S+)/ `)
)

// TestTalosReportsThroughTheSink: the daemon names its event sink on the
// netboot command line, and what a node's Talos publishes there over real
// gRPC drives the node's state: install started, done, running and ready.
func TestTalosReportsThroughTheSink(t *testing.T) {
	cfg := exampleConfig(t)
	cfg.Reports.Enabled, cfg.Reports.EventsListen, cfg.Reports.LogsListen = true, "127.0.0.1:0", "127.0.0.1:0"
	d, _ := startDaemon(t, cfg)
	n := &node{t: t, d: d, mac: net.HardwareAddr{0x1c, 0x69, 0x7a, 0, 0, 0x11}, client: &http.Client{Timeout: 10 * time.Second}}
	base := "http://" + d.httpAddr.String()

	code, body := n.get(base + "/ipxe?mac=1c-69-7a-00-00-11&arch=x86_64")
	if code != http.StatusOK {
		t.Fatalf("/ipxe: %d %s", code, body)
	}
	sink := match(t, sinkRe, string(body))
	if sink != d.eventsAddr.String() {
		t.Errorf("talos.events.sink=%s, want the sink's own %s", sink, d.eventsAddr)
	}
	if code, _ := n.get(match(t, configRe, string(body))); code != http.StatusOK {
		t.Fatalf("config: %d", code)
	}

	// `machines watch` shows the changes as they happen.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	watched := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- execute(ctx, []string{"machines", "watch", "--server", "http://" + d.adminAddr.String()}, watched, io.Discard)
	}()
	defer func() {
		for i := 0; !strings.Contains(watched.String(), "ready"); i++ {
			if i == 500 {
				t.Errorf("machines watch never showed ready:\n%s", watched)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("machines watch after interrupt: %v", err)
		}
	}()
	// The stream must be open before the events it is to show.
	for i := 0; d.hub.Subscribers() == 0; i++ {
		if i == 500 {
			t.Fatal("machines watch never subscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}

	conn, err := grpc.NewClient(sink, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	steps := []struct {
		msg  any
		want machine.State
	}{
		{talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStart}, machine.Installing},
		{talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStop}, machine.Installed},
		{talosevents.MachineStatusEvent{Stage: talosevents.StageRunning, Ready: true}, machine.Ready},
	}
	for i, s := range steps {
		if err := talosevents.Publish(t.Context(), conn, string(rune('a'+i)), s.msg); err != nil {
			t.Fatalf("publish %T: %v", s.msg, err)
		}
		if m := n.machine(); m.State != s.want {
			t.Fatalf("after %+v: state %s, want %s", s.msg, m.State, s.want)
		}
	}
	if m := n.machine(); m.Stage != "running" || !m.Ready || m.Generation != 1 {
		t.Errorf("reported status: stage %q ready %v generation %d", m.Stage, m.Ready, m.Generation)
	}
}

// TestTalosLogsToTheConsole: the daemon names its log receiver on the
// netboot command line; lines a node's Talos sends there over TCP and UDP
// are kept per machine, listed and searched by the API, and streamed live.
func TestTalosLogsToTheConsole(t *testing.T) {
	cfg := exampleConfig(t)
	cfg.Reports.Enabled, cfg.Reports.EventsListen, cfg.Reports.LogsListen = true, "127.0.0.1:0", "127.0.0.1:0"
	d, _ := startDaemon(t, cfg)
	n := &node{t: t, d: d, mac: net.HardwareAddr{0x1c, 0x69, 0x7a, 0, 0, 0x11}, client: &http.Client{Timeout: 10 * time.Second}}
	base, admin := "http://"+d.httpAddr.String(), "http://"+d.adminAddr.String()

	_, body := n.get(base + "/ipxe?mac=1c-69-7a-00-00-11&arch=x86_64")
	logAddr := match(t, logRe, string(body))
	if logAddr != d.logsAddr.String() {
		t.Fatalf("talos.logging.kernel to %s, want the receiver's %s", logAddr, d.logsAddr)
	}

	// The live stream first, so it sees the lines sent after it.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, admin+"/api/v1/machines/1c:69:7a:00:00:11/logs/stream", nil)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	sc := bufio.NewScanner(stream.Body)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "retry:") {
		t.Fatalf("stream: %q", sc.Text())
	}

	line := func(msg string) string {
		return `{"clock":1000,"facility":"user","msg":"` + msg + `","priority":"info","seq":1,"talos-level":"info","talos-time":"2026-11-30T12:00:00.000000001Z"}` + "\n"
	}
	c, err := net.Dial("tcp", logAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, line("[talos] task installing (1/1): starting")+line("[talos] installing Talos to /dev/sda")); err != nil {
		t.Fatal(err)
	}
	u, err := net.Dial("udp", logAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := io.WriteString(u, line("[talos] install done over udp")); err != nil {
		t.Fatal(err)
	}

	// The stream shows the first line as it arrives.
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), "task installing") {
			break
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	// The listing holds all three; the two TCP lines in their order (the
	// UDP one may come first or last: two transports).
	var got api.LogLines
	for range 200 {
		got = api.LogLines{}
		n.getJSON(admin+"/api/v1/machines/1c:69:7a:00:00:11/logs", &got)
		if len(got.Lines) == 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var msgs []string
	for _, l := range got.Lines {
		if l.Facility != "user" || l.Time.Nanosecond() != 1 {
			t.Errorf("line fields: %+v", l)
		}
		if !strings.Contains(l.Msg, "udp") {
			msgs = append(msgs, l.Msg)
		}
	}
	if len(got.Lines) != 3 || strings.Join(msgs, "|") != "[talos] task installing (1/1): starting|[talos] installing Talos to /dev/sda" {
		t.Fatalf("logs: %+v", got)
	}
	var found api.LogLines
	n.getJSON(admin+"/api/v1/machines/1c:69:7a:00:00:11/logs?q=/DEV/SDA", &found)
	if len(found.Lines) != 1 || !strings.Contains(found.Lines[0].Msg, "/dev/sda") {
		t.Errorf("search: %+v", found)
	}

	// The CLI: the lines, searched, then followed until interrupted.
	var out bytes.Buffer
	if err := execute(t.Context(), []string{"machines", "logs", "1c-69-7a-00-00-11", "--grep", "/dev/sda", "--server", admin}, &out, io.Discard); err != nil {
		t.Fatalf("machines logs: %v", err)
	}
	if got := out.String(); !strings.Contains(got, "info   [talos] installing Talos to /dev/sda") || strings.Contains(got, "task installing") {
		t.Errorf("machines logs --grep:\n%s", got)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	followed := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- execute(ctx, []string{"machines", "logs", "1c:69:7a:00:00:11", "-f", "-n", "1", "--server", admin}, followed, io.Discard)
	}()
	for i := 0; !strings.Contains(followed.String(), "[talos]"); i++ {
		if i == 500 {
			t.Fatalf("machines logs -f printed no backlog: %q", followed.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; !strings.Contains(followed.String(), "rebooting"); i++ {
		// Sent until the follower, subscribing after its backlog, sees it.
		if i%50 == 0 {
			if _, err := io.WriteString(c, line("[talos] rebooting")); err != nil {
				t.Fatal(err)
			}
		}
		if i == 500 {
			t.Fatalf("machines logs -f did not follow: %q", followed.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("machines logs -f after interrupt: %v", err)
	}
}

func (n *node) getJSON(url string, out any) {
	n.t.Helper()
	code, b := n.get(url)
	if code != http.StatusOK {
		n.t.Fatalf("GET %s: %d %s", url, code, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		n.t.Fatalf("GET %s: %v", url, err)
	}
}
