//go:build !linux

package evidence

import (
	"errors"
	"log/slog"
	"net/netip"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Kernel is the kernel's neighbour table; tinderbox reads it through Linux
// netlink only.
type Kernel struct{}

// OpenKernel fails: on this system tinderbox cannot read the neighbour
// table, so binding must be turned off (binding.enabled: false).
func OpenKernel(*slog.Logger, string) (*Kernel, error) {
	return nil, errors.New("evidence: the neighbour table is read through Linux netlink; on this system set binding.enabled: false (docs/security.md)")
}

// Close does nothing.
func (*Kernel) Close() error { return nil }

// Following reports false: there is nothing to follow.
func (*Kernel) Following() bool { return false }

// Lookup implements Neighbours; it always fails.
func (*Kernel) Lookup(netip.Addr) (machine.MAC, bool, error) {
	return machine.MAC{}, false, errors.New("evidence: no neighbour table on this system")
}
