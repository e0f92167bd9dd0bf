//go:build linux

package ifaddr

import (
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// notifyBuffer is the receive buffer of the notification socket, in bytes:
// room for a few thousand notifications (one is under 200 bytes), so that a
// burst of changes (a VPN bringing up hundreds of addresses) seldom
// overflows it. An overflow loses nothing that matters: it is read as one
// more change, and every interface is re-read.
const notifyBuffer = 1 << 20

// New reads every interface of the calling thread's network namespace and
// follows the kernel's notifications from then on, in a goroutine of its
// own, until Close. Both netlink sockets are opened here, so the table
// keeps describing this namespace whichever goroutine asks it. The snapshot
// is replaced once a notification has been read, so a change is seen a
// moment (one read and one dump) after the kernel made it.
func New() (*Table, error) {
	// Subscribe before the first dump, so that no change falls between.
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("ifaddr: netlink socket: %w", err)
	}
	groups := uint32(unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("ifaddr: subscribe to interface changes: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, notifyBuffer)
	// A non-blocking descriptor in an os.File uses the runtime's poller,
	// so Close wakes the watcher's read.
	f := os.NewFile(uintptr(fd), "rtnetlink")
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("ifaddr: netlink handle: %w", err)
	}
	m, err := dump(h)
	if err != nil {
		h.Close()
		_ = f.Close()
		return nil, err
	}
	t := &Table{
		load: func() (map[int]Interface, error) { return dump(h) },
		done: make(chan struct{}),
	}
	t.snap.Store(&m)
	t.stop = func() error {
		err := f.Close()
		h.Close()
		return err
	}
	go t.watch(f)
	return t, nil
}

// watch re-reads every interface after each batch of notifications (and
// after an overflow of the socket, which lost some) until f is closed.
func (t *Table) watch(f *os.File) {
	defer close(t.done)
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 1<<16)
	for {
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			// Drain what is queued, so that a burst costs one refresh.
			got := false
			for {
				_, _, rerr = unix.Recvfrom(int(fd), buf, 0)
				switch {
				case rerr == nil, errors.Is(rerr, unix.ENOBUFS):
					got = true
					continue
				case errors.Is(rerr, unix.EAGAIN) && got:
					rerr = nil
					return true
				}
				return !errors.Is(rerr, unix.EAGAIN)
			}
		})
		if err != nil || (rerr != nil && !errors.Is(rerr, unix.EINTR)) {
			return // closed
		}
		t.refresh(t.gen.Load())
	}
}

// dump reads every link and every address.
func dump(h *netlink.Handle) (map[int]Interface, error) {
	var (
		links []netlink.Link
		addrs []netlink.Addr
		err   error
	)
	// A dump the kernel interrupted (a change while it ran) is retried: its
	// notification is queued too, but an incomplete snapshot must not stand
	// until it is read.
	for range 5 {
		if links, err = h.LinkList(); err != nil {
			continue
		}
		if addrs, err = h.AddrList(nil, netlink.FAMILY_ALL); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ifaddr: read interfaces: %w", err)
	}
	m := make(map[int]Interface, len(links))
	for _, l := range links {
		a := l.Attrs()
		m[a.Index] = Interface{Index: a.Index, Name: a.Name, MTU: a.MTU}
	}
	for _, a := range addrs {
		ifc, ok := m[a.LinkIndex]
		if !ok || a.IPNet == nil {
			continue
		}
		if p, ok := Prefix(a.IPNet); ok {
			ifc.Addrs = append(ifc.Addrs, p)
			m[a.LinkIndex] = ifc
		}
	}
	return m, nil
}
