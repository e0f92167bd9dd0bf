package proxydhcp

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tinderbox-boot/tinderbox/pkg/bind"
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

// Sharers describes the other sockets in this network namespace bound to
// conn's UDP port. With SO_REUSEPORT on both sides (Listen sets it, as the
// DHCP library and dnsmasq do) the kernel splits unicast packets between
// them and tinderbox: a REQUEST to port 4011 or a relayed packet may then
// never reach tinderbox. It reads /proc/net/udp{,6}; the owning process is
// named when /proc shows it.
func Sharers(conn *net.UDPConn) ([]string, error) {
	port := conn.LocalAddr().(*net.UDPAddr).Port
	own, err := socketInode(conn)
	if err != nil {
		return nil, err
	}
	var found []procSocket
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		socks, err := readProcUDP(f)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, err
		}
		for _, s := range socks {
			if s.port == port && s.inode != own {
				found = append(found, s)
			}
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	owners := socketOwners()
	out := make([]string, 0, len(found))
	for _, s := range found {
		who := fmt.Sprintf("a process of uid %d", s.uid)
		if o, ok := owners[s.inode]; ok {
			who = o
		}
		out = append(out, fmt.Sprintf("%s on %s", who, net.JoinHostPort(s.ip.String(), strconv.Itoa(s.port))))
	}
	return out, nil
}

type procSocket struct {
	ip    net.IP
	port  int
	uid   int
	inode uint64
}

// readProcUDP parses /proc/net/udp or udp6: "sl local_address rem_address
// st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …", addresses
// as hex words in host byte order.
func readProcUDP(name string) ([]procSocket, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []procSocket
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		hexIP, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		raw, err := hex.DecodeString(hexIP)
		if err != nil || len(raw)%4 != 0 {
			continue
		}
		ip := make(net.IP, len(raw))
		for i := 0; i < len(raw); i += 4 {
			binary.BigEndian.PutUint32(ip[i:], binary.NativeEndian.Uint32(raw[i:]))
		}
		port, err1 := strconv.ParseUint(hexPort, 16, 16)
		uid, err2 := strconv.Atoi(fields[7])
		inode, err3 := strconv.ParseUint(fields[9], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out = append(out, procSocket{ip: ip, port: int(port), uid: uid, inode: inode})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("proxydhcp: read %s: %w", name, err)
	}
	return out, nil
}

func socketInode(conn *net.UDPConn) (uint64, error) {
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
	return st.Ino, nil
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
