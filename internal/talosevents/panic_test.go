package talosevents

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// panicRecorder panics on the event with ID "boom" and keeps the others.
type panicRecorder struct{ *recorder }

func (p panicRecorder) TalosEvent(ctx context.Context, from netip.AddrPort, ev Event) error {
	if ev.ID == "boom" {
		panic("recorder bug")
	}
	return p.recorder.TalosEvent(ctx, from, ev)
}

// TestRecorderPanic: a Recorder that panics gets its Publish answered
// Internal and counted in tinderbox_panics_total; the next event on the
// same connection is recorded.
func TestRecorderPanic(t *testing.T) {
	rec := &recorder{}
	s := startSink(t, Options{Recorder: panicRecorder{rec}})
	conn, _ := dial(t, s.addr)
	ctx := ctxFor(t)
	err := Publish(ctx, conn, "boom", SequenceEvent{Sequence: "boot", Action: SequenceStart})
	if status.Code(err) != codes.Internal {
		t.Fatalf("Publish to a panicking recorder: got %v, want Internal", err)
	}
	if err := Publish(ctx, conn, "next", SequenceEvent{Sequence: "boot", Action: SequenceStop}); err != nil {
		t.Fatalf("Publish after a panic: %v", err)
	}
	if got := rec.events(); len(got) != 1 || got[0].ev.ID != "next" {
		t.Errorf("recorded %+v, want the one event after the panic", got)
	}
	n, err := testutil.GatherAndCount(s.reg, "tinderbox_panics_total")
	if err != nil || n != 1 {
		t.Fatalf("tinderbox_panics_total series: got %d (%v), want 1", n, err)
	}
	if err := testutil.GatherAndCompare(s.reg, strings.NewReader(`# HELP tinderbox_panics_total Panics recovered in a packet, request or transfer handler, by where (dhcp, tftp, talos_events, talos_logs, http_boot, http_admin); the handler's answer was lost, the server kept serving.
# TYPE tinderbox_panics_total counter
tinderbox_panics_total{where="talos_events"} 1
`), "tinderbox_panics_total"); err != nil {
		t.Error(err)
	}
}
