package evidence

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// usableStates are the neighbour states (NUD_*, linux/neighbour.h) whose
// link-layer address the kernel sends to: an incomplete or failed entry
// has none that was confirmed.
const usableStates = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE | unix.NUD_PERMANENT

// notifyWait is how long a lookup that misses waits for the kernel's
// notification about its address while notifications flow: the kernel
// makes the entry before it completes the request's TCP handshake, so its
// notification is on its way and only needs applying.
const notifyWait = 25 * time.Millisecond

// minDumpGap bounds how often lookups for addresses off every local network
// dump the table while the notifications flow: such addresses are not
// neighbours at all (routed clients, or someone probing), and a dump of a
// large table costs milliseconds.
const minDumpGap = 100 * time.Millisecond

// rcvbuf is the notification socket's receive buffer: room for tens of
// thousands of neighbour messages.
const rcvbuf = 8 << 20

// Kernel is the Linux kernel's neighbour table of the network namespace
// it was opened in, kept in memory: a dump at open, then the kernel's
// RTM_NEWNEIGH/RTM_DELNEIGH notifications (rtnetlink group RTNLGRP_NEIGH).
// A lookup that misses, or any lookup while the notifications are down,
// dumps the table again (RTM_GETNEIGH), so a positive answer is never older
// than the kernel's own view. Close stops it.
type Kernel struct {
	log *slog.Logger
	// ns is the namespace followed when it is not the process's own (in
	// tests); nil otherwise.
	ns   *netns.NsHandle
	h    *netlink.Handle
	done chan struct{}
	wg   sync.WaitGroup

	mu    sync.RWMutex
	table map[netip.Addr]machine.MAC
	// waiting are lookups that missed, waiting for a notification about
	// their address; guarded by mu.
	waiting map[netip.Addr][]chan struct{}
	// onLink are the networks of this host's own addresses, as of the last
	// dump; guarded by mu. Only an address in one of them can become a
	// neighbour, so only a miss there waits for a notification.
	onLink []netip.Prefix
	// own are this host's addresses, as of the last dump; guarded by mu.
	// The kernel reaches them over lo and never makes a neighbour entry for
	// them, so a miss for one waits for no notification.
	own map[netip.Addr]bool

	live atomic.Bool // the notifications are being applied

	dumpMu   sync.Mutex
	dumpedAt time.Time // when the last completed dump started
}

// OpenKernel opens the neighbour table of the network namespace named
// nsName (as `ip netns` names them, for tests), or of the process's own
// when nsName is "". It fails when netlink cannot be opened or the first
// dump fails. With nsName "" no thread ever enters a namespace: that needs
// CAP_SYS_ADMIN, which a sandboxed service does not have.
func OpenKernel(log *slog.Logger, nsName string) (*Kernel, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		ns  *netns.NsHandle
		h   *netlink.Handle
		err error
	)
	if nsName != "" {
		handle, nerr := netns.GetFromName(nsName)
		if nerr != nil {
			return nil, fmt.Errorf("evidence: network namespace %s: %w", nsName, nerr)
		}
		ns = &handle
		h, err = netlink.NewHandleAt(handle, unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		closeNs(ns)
		return nil, fmt.Errorf("evidence: netlink: %w", err)
	}
	k := &Kernel{log: log, ns: ns, h: h, done: make(chan struct{}), table: map[netip.Addr]machine.MAC{}, waiting: map[netip.Addr][]chan struct{}{}}
	if err := k.dump(time.Now()); err != nil {
		h.Close()
		closeNs(ns)
		return nil, err
	}
	k.wg.Add(1)
	go k.follow()
	return k, nil
}

func closeNs(ns *netns.NsHandle) {
	if ns != nil {
		ns.Close()
	}
}

// Close stops following the table.
func (k *Kernel) Close() error {
	close(k.done)
	k.wg.Wait()
	k.h.Close()
	closeNs(k.ns)
	return nil
}

// Following reports whether the kernel's notifications are being applied;
// while they are not, every lookup dumps the table.
func (k *Kernel) Following() bool { return k.live.Load() }

// Lookup implements Neighbours.
func (k *Kernel) Lookup(ip netip.Addr) (machine.MAC, bool, error) {
	ip = ip.Unmap()
	k.mu.RLock()
	mac, ok := k.table[ip]
	k.mu.RUnlock()
	live := k.live.Load()
	if ok && live {
		return mac, true, nil
	}
	onLink := live && k.isOnLink(ip)
	if onLink {
		if mac, ok := k.await(ip); ok {
			return mac, true, nil
		}
	}
	// A miss on a local network whose notification is late (a busy host)
	// reads the table afresh; one off every local network, or of this
	// host, at most every minDumpGap.
	missed := time.Now()
	if live && !onLink {
		missed = missed.Add(-minDumpGap)
	}
	if err := k.dump(missed); err != nil {
		return machine.MAC{}, false, err
	}
	k.mu.RLock()
	mac, ok = k.table[ip]
	k.mu.RUnlock()
	return mac, ok, nil
}

// isOnLink reports whether ip is in the network of one of this host's
// addresses and could be a neighbour: not loopback and not one of this
// host's own addresses (a client on this host, as in a benchmark over
// loopback).
func (k *Kernel) isOnLink(ip netip.Addr) bool {
	if ip.IsLoopback() {
		return false
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.own[ip] {
		return false
	}
	for _, p := range k.onLink {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// await waits up to notifyWait for a notification that gives ip an entry.
func (k *Kernel) await(ip netip.Addr) (machine.MAC, bool) {
	ch := make(chan struct{})
	k.mu.Lock()
	if mac, ok := k.table[ip]; ok {
		k.mu.Unlock()
		return mac, true
	}
	k.waiting[ip] = append(k.waiting[ip], ch)
	k.mu.Unlock()
	t := time.NewTimer(notifyWait)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-k.done:
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if w := k.waiting[ip]; len(w) > 0 {
		k.waiting[ip] = slices.DeleteFunc(w, func(c chan struct{}) bool { return c == ch })
		if len(k.waiting[ip]) == 0 {
			delete(k.waiting, ip)
		}
	}
	mac, ok := k.table[ip]
	return mac, ok
}

// dump replaces the table with a fresh dump, unless a dump that started
// at or after since has completed meanwhile. Concurrent callers share one
// dump.
func (k *Kernel) dump(since time.Time) error {
	k.dumpMu.Lock()
	defer k.dumpMu.Unlock()
	if !k.dumpedAt.Before(since) {
		return nil
	}
	start := time.Now()
	table := map[netip.Addr]machine.MAC{}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		list, err := k.h.NeighList(0, family)
		if err != nil {
			return fmt.Errorf("evidence: neighbour table: %w", err)
		}
		for _, n := range list {
			if ip, mac, ok := usable(n); ok {
				table[ip] = mac
			}
		}
	}
	var onLink []netip.Prefix
	own := map[netip.Addr]bool{}
	addrs, err := k.h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("evidence: addresses: %w", err)
	}
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		if ok {
			onLink = append(onLink, netip.PrefixFrom(ip.Unmap(), ones).Masked())
			own[ip.Unmap()] = true
		}
	}
	k.mu.Lock()
	k.table = table
	k.onLink = onLink
	k.own = own
	k.mu.Unlock()
	k.dumpedAt = start
	return nil
}

// usable returns the address and MAC of an entry the kernel sends to.
func usable(n netlink.Neigh) (netip.Addr, machine.MAC, bool) {
	if n.State&usableStates == 0 {
		return netip.Addr{}, machine.MAC{}, false
	}
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Addr{}, machine.MAC{}, false
	}
	mac, err := machine.MACFromHardwareAddr(n.HardwareAddr)
	if err != nil || mac.IsZero() {
		return netip.Addr{}, machine.MAC{}, false
	}
	return ip.Unmap(), mac, true
}

// follow applies the kernel's notifications until Close, subscribing again
// (after a pause) when the subscription fails; lookups dump the table
// while it is down.
func (k *Kernel) follow() {
	defer k.wg.Done()
	for {
		ch := make(chan netlink.NeighUpdate, 1024)
		stop := make(chan struct{})
		opts := netlink.NeighSubscribeOptions{
			Namespace: k.ns,
			ErrorCallback: func(err error) {
				select {
				case <-k.done:
					return // closing: the socket's end is no news
				default:
				}
				k.log.Warn("neighbour table: notification error; reading the table on each lookup until it recovers", "err", err)
			},
			// A storm of nodes (or a whole table flushed) notifies in
			// bursts; a socket buffer past net.core.rmem_max, which
			// needs CAP_NET_ADMIN, keeps them from overflowing it.
			ReceiveBufferSize: rcvbuf, ReceiveBufferForceSize: true,
		}
		err := netlink.NeighSubscribeWithOptions(ch, stop, opts)
		if err != nil {
			opts.ReceiveBufferForceSize = false
			err = netlink.NeighSubscribeWithOptions(ch, stop, opts)
		}
		if err == nil {
			// Updates between the last dump and the subscription are
			// caught by a dump now.
			k.live.Store(true)
			_ = k.dump(time.Now())
			k.apply(ch)
		} else {
			k.log.Warn("neighbour table: cannot subscribe to changes; reading the table on each lookup", "err", err)
		}
		k.live.Store(false)
		close(stop)
		select {
		case <-k.done:
			return
		case <-time.After(time.Second):
		}
	}
}

// apply applies notifications until the channel closes or Close.
func (k *Kernel) apply(ch <-chan netlink.NeighUpdate) {
	for {
		select {
		case <-k.done:
			return
		case u, ok := <-ch:
			if !ok {
				return
			}
			if u.Family != netlink.FAMILY_V4 && u.Family != netlink.FAMILY_V6 {
				continue
			}
			k.mu.Lock()
			ip, mac, ok := usable(u.Neigh)
			switch {
			case u.Type == unix.RTM_NEWNEIGH && ok:
				k.table[ip] = mac
				for _, c := range k.waiting[ip] {
					close(c)
				}
				delete(k.waiting, ip)
			case ok || u.IP != nil:
				if a, valid := netip.AddrFromSlice(u.IP); valid {
					delete(k.table, a.Unmap())
				}
			}
			k.mu.Unlock()
		}
	}
}
