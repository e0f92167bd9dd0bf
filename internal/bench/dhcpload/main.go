//go:build linux

// Command dhcpload is the load generator of scripts/bench-dhcp.sh: it
// sends PXE DHCPDISCOVERs (option 60 "PXEClient:Arch:00007:...", option 93
// EFI x86-64, option 97 a client UUID) from many client MACs at a fixed
// rate for a while, matches the replies to what it sent by transaction ID,
// and prints one line of key=value figures: packets sent, answered,
// dropped (in percent), the rate it managed to send at, and the p50 and
// p99 reply latency in milliseconds: from just before a DISCOVER is sent to
// the kernel's receive timestamp of its reply (SO_TIMESTAMPNS), so that
// the generator's own scheduling after the reply arrived is not counted;
// p99_read_ms is the p99 to when the generator read the reply, for
// comparison.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/sys/unix"
)

func main() {
	var c config
	flag.StringVar(&c.iface, "iface", "", "send out of this interface (SO_BINDTODEVICE), so the limited broadcast has a way out")
	flag.StringVar(&c.to, "to", "255.255.255.255:67", "where DISCOVERs go")
	flag.StringVar(&c.listen, "listen", "0.0.0.0:68", "where replies are read (a broadcast reply goes to port 68)")
	flag.Float64Var(&c.rate, "rate", 1000, "DISCOVERs per second")
	flag.DurationVar(&c.duration, "duration", 3*time.Second, "how long to send")
	flag.DurationVar(&c.wait, "wait", time.Second, "how long to wait for replies after the last DISCOVER; a later reply counts as dropped")
	flag.IntVar(&c.macs, "macs", 1000, "distinct client MACs, used in turn")
	flag.Parse()
	r, err := run(context.Background(), c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dhcpload:", err)
		os.Exit(1)
	}
	fmt.Println(r)
}

// config is one load run.
type config struct {
	iface, to, listen string
	rate              float64 // per second
	duration, wait    time.Duration
	macs              int
}

// result is what a run measured.
type result struct {
	sent, answered int
	elapsed        time.Duration // from the first DISCOVER to the last
	p50, p99       time.Duration // of the answered, to the kernel's receive timestamp
	p99Read        time.Duration // of the answered, to the generator's read
}

func (r result) String() string {
	drop := 0.0
	if r.sent > 0 {
		drop = 100 * float64(r.sent-r.answered) / float64(r.sent)
	}
	rate := 0.0
	if r.elapsed > 0 && r.sent > 1 {
		rate = float64(r.sent-1) / r.elapsed.Seconds()
	}
	return fmt.Sprintf("sent=%d answered=%d drop_pct=%.3f send_rate=%.0f p50_ms=%.3f p99_ms=%.3f p99_read_ms=%.3f",
		r.sent, r.answered, drop, rate, ms(r.p50), ms(r.p99), ms(r.p99Read))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// run sends c.rate*c.duration DISCOVERs, paced to c.rate, each with a
// transaction ID of its own (its sequence number), and counts the first
// BOOTREPLY to each.
func run(ctx context.Context, c config) (result, error) {
	if c.rate <= 0 || c.macs <= 0 {
		return result{}, errors.New("rate and macs must be positive")
	}
	to, err := net.ResolveUDPAddr("udp4", c.to)
	if err != nil {
		return result{}, err
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			for _, o := range []int{unix.SO_BROADCAST, unix.SO_REUSEADDR} {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o, 1); serr != nil {
					return
				}
			}
			// The kernel stamps each reply as it arrives (CLOCK_REALTIME).
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); serr != nil {
				return
			}
			// Replies must not be lost here, or they count against the server.
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<20)
			}
			if c.iface != "" {
				serr = unix.BindToDevice(int(fd), c.iface)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", c.listen)
	if err != nil {
		return result{}, err
	}
	conn := pc.(*net.UDPConn)
	defer conn.Close()

	templates, err := discovers(c.macs)
	if err != nil {
		return result{}, err
	}
	total := int(c.rate * c.duration.Seconds())
	if total < 1 {
		total = 1
	}
	// Times are Unix nanoseconds, as the kernel's receive timestamps are.
	sentAt := make([]atomic.Int64, total)   // 0: not sent
	gotAfter := make([]atomic.Int64, total) // reply latency to the kernel's stamp; 0: none
	readAfter := make([]int64, total)       // reply latency to the read; the receiver's only

	start := time.Now()
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		buf := make([]byte, 2048)
		oob := make([]byte, unix.CmsgSpace(sizeofTimespec))
		for {
			n, oobn, _, _, err := conn.ReadMsgUDPAddrPort(buf, oob)
			if err != nil {
				return // closed at the end of the wait
			}
			read := time.Now().UnixNano()
			if n < 240 || buf[0] != byte(dhcpv4.OpcodeBootReply) {
				continue
			}
			seq := int(binary.BigEndian.Uint32(buf[4:8]))
			if seq >= total {
				continue
			}
			at := sentAt[seq].Load()
			if at == 0 {
				continue
			}
			arrived, ok := receiveStamp(oob[:oobn])
			if !ok {
				arrived = read
			}
			if gotAfter[seq].CompareAndSwap(0, max(arrived-at, 1)) {
				readAfter[seq] = max(read-at, 1)
			}
		}
	}()

	var r result
	interval := float64(time.Second) / c.rate
	pkt := make([]byte, len(templates[0]))
	for seq := 0; seq < total; seq++ {
		due := start.Add(time.Duration(float64(seq) * interval))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		tmpl := templates[seq%len(templates)]
		pkt = append(pkt[:0], tmpl...)
		binary.BigEndian.PutUint32(pkt[4:8], uint32(seq))
		sentAt[seq].Store(time.Now().UnixNano())
		if _, err := conn.WriteTo(pkt, to); err != nil {
			return result{}, fmt.Errorf("send DISCOVER %d: %w", seq, err)
		}
		r.sent++
	}
	r.elapsed = time.Since(start)
	time.Sleep(c.wait)
	conn.Close()
	<-recvDone

	var lat, latRead []time.Duration
	for i := range gotAfter {
		if v := gotAfter[i].Load(); v > 0 {
			lat = append(lat, time.Duration(v))
			latRead = append(latRead, time.Duration(readAfter[i]))
		}
	}
	r.answered = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		slices.Sort(latRead)
		r.p50 = lat[(len(lat)-1)*50/100]
		r.p99 = lat[(len(lat)-1)*99/100]
		r.p99Read = latRead[(len(latRead)-1)*99/100]
	}
	return r, nil
}

// sizeofTimespec is the size of struct timespec, the payload of
// SCM_TIMESTAMPNS.
const sizeofTimespec = int(unsafe.Sizeof(unix.Timespec{}))

// receiveStamp is the kernel's receive timestamp (SCM_TIMESTAMPNS) among
// a packet's control messages, in Unix nanoseconds.
func receiveStamp(oob []byte) (int64, bool) {
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return 0, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= sizeofTimespec {
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			return ts.Nano(), true
		}
		oob = rest
	}
	return 0, false
}

// discovers builds one PXE DISCOVER per client MAC, as EDK2's UEFI PXE
// sends it; the transaction ID is set per packet.
func discovers(n int) ([][]byte, error) {
	out := make([][]byte, n)
	for i := range out {
		mac := net.HardwareAddr{0x02, 0x42, 0xbe, byte(i >> 16), byte(i >> 8), byte(i)}
		uuid := make([]byte, 17) // option 97: type 0, then the 16-byte GUID
		copy(uuid[11:], mac)
		p, err := dhcpv4.NewDiscovery(mac,
			dhcpv4.WithBroadcast(true),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)),
			dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 3, 16}),
			dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, uuid),
			dhcpv4.WithOption(dhcpv4.OptParameterRequestList(
				dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer, dhcpv4.OptionHostName,
				dhcpv4.OptionVendorSpecificInformation, dhcpv4.OptionClassIdentifier, dhcpv4.OptionTFTPServerName,
				dhcpv4.OptionBootfileName, dhcpv4.OptionClientMachineIdentifier)),
		)
		if err != nil {
			return nil, err
		}
		out[i] = p.ToBytes()
	}
	return out, nil
}
