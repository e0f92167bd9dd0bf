package bootflow

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tinderbox-boot/tinderbox/pkg/boot"
	"github.com/tinderbox-boot/tinderbox/pkg/state"
	"github.com/tinderbox-boot/tinderbox/pkg/tftp"
)

func TestRecordTransfer(t *testing.T) {
	e := newEnv(t, "exit", boot.UnknownMaintenance, nil)
	tr := tftp.Transfer{Remote: netip.MustParseAddrPort("[::ffff:192.0.2.80]:2070"), File: "ipxe.efi", Bytes: 1024, Duration: time.Second}
	e.flow.RecordTransfer(tr)
	if _, ok, _ := e.store.Get(macOnce); ok {
		t.Fatal("a transfer from an unknown address created a record")
	}
	if got := testutil.ToFloat64(e.flow.steps.WithLabelValues("tftp", "unattributed")); got != 1 {
		t.Errorf("unattributed transfers: got %v, want 1", got)
	}
	e.flow.learnIP("192.0.2.80", macOnce)
	e.flow.RecordTransfer(tr)
	m := e.machine(t, macOnce)
	if ev, ok := m.LastEvent(state.EventTFTP); !ok || ev.Detail != "ipxe.efi" || ev.Bytes != 1024 {
		t.Errorf("tftp event: got %+v %v", ev, ok)
	}
}
