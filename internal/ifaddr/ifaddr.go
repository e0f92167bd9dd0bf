// Package ifaddr keeps the host's network interfaces (index, name, MTU and
// addresses) in memory for the UDP servers, which need the receiving
// interface of every packet (IP_PKTINFO) to choose a reply's source: asking
// the kernel each time costs two netlink dumps per packet. On Linux a Table
// follows the kernel's rtnetlink notifications (RTM_NEWLINK, RTM_DELLINK,
// RTM_NEWADDR, RTM_DELADDR) and re-reads every interface when one arrives,
// so an address added or removed is seen without a restart.
package ifaddr

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Interface is one network interface as the kernel reports it.
type Interface struct {
	Index int
	Name  string
	// MTU is in bytes.
	MTU int
	// Addrs are the interface's addresses with their prefix lengths, in
	// the kernel's order (the primary IPv4 address first); IPv4 addresses
	// are 4-byte (never IPv4-mapped).
	Addrs []netip.Prefix
}

// IPv4 returns the interface's IPv4 addresses, in the kernel's order.
func (i Interface) IPv4() []netip.Addr {
	var out []netip.Addr
	for _, p := range i.Addrs {
		if p.Addr().Is4() {
			out = append(out, p.Addr())
		}
	}
	return out
}

// Table answers "which interface has this index" from memory. Its methods
// are safe for concurrent use. A nil *Table asks the kernel on every call
// (net.InterfaceByIndex), which is always current but costs two netlink
// dumps per call. A Table from New must be closed.
type Table struct {
	snap atomic.Pointer[map[int]Interface]
	// mu serialises refreshes; gen counts the completed ones, so that a
	// lookup that missed while another refresh ran does not redo it.
	mu  sync.Mutex
	gen atomic.Uint64
	// load reads every interface from the kernel.
	load func() (map[int]Interface, error)
	// stop ends the watcher; done is closed when it has ended.
	stop func() error
	done chan struct{}
}

// ByIndex returns the interface with index i, and false when there is none
// (or the kernel cannot be asked). An index the table does not hold makes
// it re-read the kernel first: a packet can arrive on an interface created
// a moment before its notification is read.
func (t *Table) ByIndex(i int) (Interface, bool) {
	if t == nil {
		return direct(i)
	}
	if m := t.snap.Load(); m != nil {
		if ifc, ok := (*m)[i]; ok {
			return ifc, true
		}
	}
	t.refresh(t.gen.Load())
	m := t.snap.Load()
	if m == nil { // the kernel could not be read: ask it directly
		return direct(i)
	}
	ifc, ok := (*m)[i]
	return ifc, ok
}

// refresh re-reads every interface, unless a refresh completed since the
// caller read gen seen. On error the snapshot is dropped, so that lookups
// ask the kernel directly rather than trust what may be stale.
func (t *Table) refresh(seen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen.Load() != seen {
		return
	}
	m, err := t.load()
	if err != nil {
		t.snap.Store(nil)
	} else {
		t.snap.Store(&m)
	}
	t.gen.Add(1)
}

// Close stops following the kernel and waits for the watcher to end; the
// table then asks the kernel on every call, as a nil one does, rather than
// answer from a snapshot nothing updates. It is safe to call on a nil
// Table.
func (t *Table) Close() error {
	if t == nil || t.stop == nil {
		return nil
	}
	t.mu.Lock()
	err := t.stop()
	t.mu.Unlock()
	<-t.done
	t.mu.Lock()
	t.snap.Store(nil)
	t.load = func() (map[int]Interface, error) { return nil, errClosed }
	t.mu.Unlock()
	return err
}

// errClosed is what a closed table's load returns.
var errClosed = errors.New("ifaddr: table closed")

// direct asks the kernel for one interface.
func direct(i int) (Interface, bool) {
	ifi, err := net.InterfaceByIndex(i)
	if err != nil {
		return Interface{}, false
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return Interface{}, false
	}
	ifc := Interface{Index: ifi.Index, Name: ifi.Name, MTU: ifi.MTU}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if p, ok := Prefix(ipn); ok {
				ifc.Addrs = append(ifc.Addrs, p)
			}
		}
	}
	return ifc, true
}

// Prefix converts an address with its mask to a netip.Prefix, an IPv4
// address to its 4-byte form, also when it comes with a 16-byte mask (the
// form net.IPv4 and the netlink library can produce). It returns false for
// a malformed address or a non-contiguous mask.
func Prefix(ipn *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(ipn.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := ipn.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	if a.Is4In6() {
		a = a.Unmap()
		if bits == 128 {
			ones -= 96
		}
	} else if a.Is4() && bits == 128 {
		ones -= 96
	}
	if a.Is4() && (ones < 0 || ones > 32) {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}
