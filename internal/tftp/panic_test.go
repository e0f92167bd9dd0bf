package tftp

import (
	"bytes"
	"context"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// panicFS panics when asked for "boom" and opens every other name in fs.
type panicFS struct{ fs.FS }

func (p panicFS) Open(name string) (fs.File, error) {
	if name == "boom" {
		panic("file system bug")
	}
	return p.FS.Open(name)
}

// panicRecorder panics when told of a transfer of exact.bin.
type panicRecorder struct{ *recorder }

func (p panicRecorder) TFTPSent(ctx context.Context, t Transfer) {
	if t.File == "exact.bin" {
		panic("recorder bug")
	}
	p.recorder.TFTPSent(ctx, t)
}

// TestServerRecoversPanic: a file system that panics, and a Recorder that
// panics, each cost one transfer (counted as an error, and in
// tinderbox_panics_total), free its slot (one transfer per client here, so
// a leaked claim would refuse the next), and the server keeps serving.
func TestServerRecoversPanic(t *testing.T) {
	f := start(t, func(o *Options) {
		o.Files = panicFS{o.Files}
		o.Recorder = panicRecorder{o.Recorder.(*recorder)}
		o.MaxPerClient = 1
	})
	dialRaw(t, f.addr).request(rrq("boom", "octet"))
	f.waitCount(t, ResultError, 1)
	if got, err := f.get("one"); err != nil || !bytes.Equal(got, testFiles["one"]) {
		t.Fatalf("after a panic in the file system: got %q, %v; want the file", got, err)
	}
	// Counted after its slot is released: the next transfer may start.
	f.waitCount(t, ResultOK, 1)
	if got, err := f.get("exact.bin"); err != nil || !bytes.Equal(got, testFiles["exact.bin"]) {
		t.Fatalf("a transfer whose recording panics: got %d bytes, %v; want the file", len(got), err)
	}
	f.waitCount(t, ResultOK, 2)
	waitPanics(t, f, 2)
	if got, err := f.get("one"); err != nil || !bytes.Equal(got, testFiles["one"]) {
		t.Fatalf("after a panic in the Recorder: got %q, %v; want the file", got, err)
	}
	f.waitCount(t, ResultOK, 3)
	if n := testutil.ToFloat64(f.m.inFlight); n != 0 {
		t.Errorf("transfers in flight at rest: got %v, want 0", n)
	}
	if n := panicsTotal(t, f); n != 2 {
		t.Errorf(`tinderbox_panics_total{where="tftp"}: got %v, want 2`, n)
	}
	logs := f.logged(t)
	for _, want := range []string{`where=tftp panic="file system bug" remote=`, `where=tftp panic="recorder bug" remote=`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// waitPanics waits until tinderbox_panics_total{where="tftp"} is want.
func waitPanics(t *testing.T, f *fixture, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for panicsTotal(t, f) < want {
		if time.Now().After(deadline) {
			t.Fatalf("tinderbox_panics_total: got %v, want %v", panicsTotal(t, f), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// panicsTotal is tinderbox_panics_total{where="tftp"} on the fixture's
// registry.
func panicsTotal(t *testing.T, f *fixture) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tinderbox_panics_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "tftp" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
