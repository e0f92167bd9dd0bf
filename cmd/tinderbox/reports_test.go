//go:build linux

package main

import (
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tinderbox-boot/tinderbox/internal/talosevents"
	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

var sinkRe = regexp.MustCompile(`talos\.events\.sink=(\S+)`)

// TestTalosReportsThroughTheSink: the daemon names its event sink on the
// netboot command line, and what a node's Talos publishes there over real
// gRPC drives the node's state: install started, done, running and ready.
func TestTalosReportsThroughTheSink(t *testing.T) {
	ff, err := fakefactory.Start(fakefactory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ff.Close)
	cfg := testConfig(t)
	cfg.Profiles.Dir = filepath.Join("..", "..", "profiles")
	cfg.Factory.URL = ff.URL
	cfg.Reports.Enabled, cfg.Reports.EventsListen = true, "127.0.0.1:0"
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
