package bootflow

import (
	"context"
	"fmt"

	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/factory"
	"github.com/tinderbox-boot/tinderbox/internal/tftp"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// TFTPSent implements tftp.Recorder: the transfer lands in the log of the
// machine last seen at its address (from a DHCP ack or a script request).
// A transfer from an address not yet tied to a MAC, as with BIOS ROMs that
// skip the port-4011 request, is counted but not recorded.
func (f *Flow) TFTPSent(_ context.Context, t tftp.Transfer) {
	ip := t.Remote.Addr().Unmap().String()
	mac, ok := f.MACOf(ip)
	if !ok {
		f.steps.WithLabelValues("tftp", "unattributed").Inc()
		f.log.Debug("tftp transfer from an address with no known MAC", "remote", ip, "file", t.File)
		return
	}
	f.steps.WithLabelValues("tftp", "ok").Inc()
	f.transferred(mac, machine.EventTFTP, t.File, t.Bytes)
}

// AssetSent implements cache.Recorder: a whole kernel or initramfs sent
// lands in the log of the machine last seen at the address. Ranges and cut
// transfers are left out: they are retries, not boot steps.
func (f *Flow) AssetSent(_ context.Context, s cache.Sent) {
	if s.Failure != "" {
		if mac, ok := f.MACOf(s.Remote.Unmap().String()); ok {
			f.denied(mac, machine.EventRefused, fmt.Sprintf("asset %s: %d, %s", s.Key.File, s.Status, s.Failure))
		}
		return
	}
	if !s.Complete {
		return
	}
	mac, ok := f.MACOf(s.Remote.Unmap().String())
	if !ok {
		f.steps.WithLabelValues("asset", "unattributed").Inc()
		return
	}
	f.steps.WithLabelValues("asset", "ok").Inc()
	f.transferred(mac, assetEvent(s.Key.File), s.Key.File, s.Bytes)
}

// assetEvent is the event kind a whole asset sent marks: the Talos kernel
// and initramfs are boot stages of their own.
func assetEvent(file string) machine.EventKind {
	switch kind, _, _ := factory.FileKind(file); kind {
	case factory.KindKernel:
		return machine.EventKernel
	case factory.KindInitramfs:
		return machine.EventInitramfs
	}
	return machine.EventAsset
}
