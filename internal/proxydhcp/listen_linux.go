//go:build linux

package proxydhcp

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tinderbox-boot/tinderbox/internal/bind"
)

// Listen binds the responder's UDP socket on 0.0.0.0:port (a socket bound
// to one address receives no broadcasts), tied to iface with SO_BINDTODEVICE
// when iface is not empty, with IP_PKTINFO on. It sets the options the DHCP
// library's own server socket sets (SO_BROADCAST, SO_REUSEADDR,
// SO_REUSEPORT) but keeps
// the operating system's error, so that a bind failure is reported by
// bind.Error with the port named and a hint. what names the listener in
// errors ("proxyDHCP", "proxyDHCP PXE").
func Listen(ctx context.Context, what, iface string, port int) (*net.UDPConn, error) {
	addr := net.JoinHostPort("0.0.0.0", strconv.Itoa(port))
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			for _, o := range []int{unix.SO_BROADCAST, unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o, 1); serr != nil {
					return
				}
			}
			setReceiveBuffer(int(fd))
			// Packets queued before Serve starts must carry their
			// interface too, so IP_PKTINFO is on from the bind.
			if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1); serr != nil {
				return
			}
			if iface != "" {
				if serr = unix.BindToDevice(int(fd), iface); serr != nil {
					serr = fmt.Errorf("bind to interface %s: %w", iface, serr)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", addr)
	if err != nil {
		return nil, bind.Error(what, "udp", addr, err)
	}
	return pc.(*net.UDPConn), nil
}

// receiveBuffer is the socket receive buffer Listen asks for, in bytes:
// a DISCOVER takes about 2 KiB of it (the packet in a kernel buffer sized
// for the link's MTU), so 4 MiB holds some 2000 packets, 0.4 s of a
// 5000-node storm at 5000/s, while the reading goroutine is descheduled
// (the default, net.core.rmem_default, is 208 KiB: 0.02 s).
const receiveBuffer = 4 << 20

// setReceiveBuffer raises fd's receive buffer to receiveBuffer: with
// SO_RCVBUFFORCE when the process may (CAP_NET_ADMIN), which passes the
// net.core.rmem_max limit, else with SO_RCVBUF, which the kernel caps at
// it. Neither is fatal: the default buffer still works, it only drops
// sooner in a burst (counted in /proc/net/snmp's Udp RcvbufErrors).
func setReceiveBuffer(fd int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer)
	}
}

// Sharers describes the other sockets in this network namespace that can
// receive what is sent to conn's UDP port on conn's interface: bound to the
// same port, and to the same interface or to none (or conn is bound to
// none). Broadcasts reach every such socket, but a unicast packet (a
// REQUEST to port 4011, a relayed request) goes to one of them only: a
// socket tied to the interface wins over an unbound one, and sockets that
// share the port through SO_REUSEPORT (Listen sets it, as the DHCP library
// and dnsmasq do) get a share each. The sockets come from the kernel's
// sock_diag interface; the owning process is named when /proc shows it.
func Sharers(conn *net.UDPConn) ([]string, error) {
	port := conn.LocalAddr().(*net.UDPAddr).Port
	own, err := socketInode(conn)
	if err != nil {
		return nil, err
	}
	var socks []diagSocket
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		s, err := udpSockets(family)
		if err != nil {
			return nil, err
		}
		socks = append(socks, s...)
	}
	ownIf := -1
	for _, s := range socks {
		if s.inode == own {
			ownIf = s.ifIndex
		}
	}
	if ownIf < 0 {
		return nil, fmt.Errorf("proxydhcp: socket diagnostics do not list tinderbox's own socket on port %d", port)
	}
	var found []diagSocket
	for _, s := range socks {
		if s.port == port && s.inode != own && (s.ifIndex == 0 || ownIf == 0 || s.ifIndex == ownIf) {
			found = append(found, s)
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	owners := socketOwners()
	out := make([]string, 0, len(found))
	for _, s := range found {
		who := fmt.Sprintf("a process of uid %d", s.uid)
		if o, ok := owners[uint64(s.inode)]; ok {
			who = o
		}
		where := "any interface"
		if s.ifIndex != 0 {
			where = "interface " + strconv.Itoa(s.ifIndex)
			if ifi, err := net.InterfaceByIndex(s.ifIndex); err == nil {
				where = "interface " + ifi.Name
			}
		}
		out = append(out, fmt.Sprintf("%s on %s (%s)", who, net.JoinHostPort(s.ip.String(), strconv.Itoa(s.port)), where))
	}
	return out, nil
}

// diagSocket is one UDP socket as sock_diag reports it.
type diagSocket struct {
	ip      net.IP
	port    int
	ifIndex int // SO_BINDTODEVICE interface, 0 for none
	uid     uint32
	inode   uint32
}

// Sizes and offsets of struct inet_diag_req_v2 and struct inet_diag_msg
// (linux/inet_diag.h).
const (
	sizeofInetDiagReqV2 = 56
	sizeofInetDiagMsg   = 72
	diagMsgIDOffset     = 4  // id: sport, dport (big-endian), src[16], dst[16], if, cookie[2]
	diagMsgUIDOffset    = 64 // after id (48 bytes), expires, rqueue, wqueue
)

// udpSockets dumps the UDP sockets of one address family over
// NETLINK_SOCK_DIAG (the interface `ss` uses), which, unlike
// /proc/net/udp, tells the interface a socket is bound to.
func udpSockets(family uint8) ([]diagSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("proxydhcp: sock_diag socket: %w", err)
	}
	defer unix.Close(fd)

	req := make([]byte, unix.SizeofNlMsghdr+sizeofInetDiagReqV2)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], 1) // sequence number
	body := req[unix.SizeofNlMsghdr:]
	body[0] = family
	body[1] = unix.IPPROTO_UDP
	binary.NativeEndian.PutUint32(body[4:], 0xffffffff) // every state
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("proxydhcp: sock_diag request: %w", err)
	}

	var out []diagSocket
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("proxydhcp: sock_diag reply: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("proxydhcp: sock_diag reply: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
						return nil, fmt.Errorf("proxydhcp: sock_diag: %w", unix.Errno(-errno))
					}
				}
				return out, nil
			}
			if len(m.Data) < sizeofInetDiagMsg {
				continue
			}
			d := m.Data
			id := d[diagMsgIDOffset:]
			ipLen := net.IPv4len
			if d[0] == unix.AF_INET6 {
				ipLen = net.IPv6len
			}
			out = append(out, diagSocket{
				ip:      net.IP(append([]byte(nil), id[4:4+ipLen]...)),
				port:    int(binary.BigEndian.Uint16(id[0:])),
				ifIndex: int(binary.NativeEndian.Uint32(id[36:])),
				uid:     binary.NativeEndian.Uint32(d[diagMsgUIDOffset:]),
				inode:   binary.NativeEndian.Uint32(d[diagMsgUIDOffset+4:]),
			})
		}
	}
}

func socketInode(conn *net.UDPConn) (uint32, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("proxydhcp: socket of %s: %w", conn.LocalAddr(), err)
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		return 0, fmt.Errorf("proxydhcp: socket of %s: %w", conn.LocalAddr(), err)
	}
	if serr != nil {
		return 0, fmt.Errorf("proxydhcp: stat socket of %s: %w", conn.LocalAddr(), serr)
	}
	return uint32(st.Ino), nil
}

// socketOwners maps socket inodes to "name (pid N)" for the processes whose
// file descriptors this process may read.
func socketOwners() map[uint64]string {
	owners := make(map[uint64]string)
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		link, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		inode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
		if err != nil {
			continue
		}
		pidDir := filepath.Dir(filepath.Dir(fd))
		comm, _ := os.ReadFile(filepath.Join(pidDir, "comm"))
		owners[inode] = fmt.Sprintf("%s (pid %s)", strings.TrimSpace(string(comm)), filepath.Base(pidDir))
	}
	return owners
}
