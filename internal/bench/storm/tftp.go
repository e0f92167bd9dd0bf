package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// A TFTP read client (RFC 1350, with the blksize and tsize options of RFC
// 2347-2349), written here because a node must send from its own address:
// pack.ag/tftp's client always listens on 0.0.0.0, so every transfer would
// leave from the relay's address and land in no machine's log.

const (
	opRRQ   = 1
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
	// blksize is the largest block a 1500-byte Ethernet frame carries
	// after the IP, UDP and TFTP headers (1500 - 20 - 8 - 4), the size
	// PXE firmware asks for.
	blksize = 1468
)

// tftp fetches the boot file from the node's address, from the server
// the 4011 ACK named.
func (n *node) tftp(ctx context.Context, b *bootState) (int, int64, error) {
	ip := nodeAddr(n.o.nodes, n.i)
	got, retries, err := tftpGet(ctx, ip, netip.AddrPortFrom(b.tftpServer, 69), b.bootFile, n.o.timeout, n.o.retries)
	return retries, got, err
}

// tftpGet reads file from server, from local address ip (any port), and
// returns the bytes received and how many packets were sent again.
func tftpGet(ctx context.Context, ip netip.Addr, server netip.AddrPort, file string, timeout time.Duration, retries int) (int64, int, error) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return 0, 0, fmt.Errorf("tftp: bind %s: %w", ip, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()

	var rrq bytes.Buffer
	rrq.Write([]byte{0, opRRQ})
	for _, s := range []string{file, "octet", "blksize", strconv.Itoa(blksize), "tsize", "0"} {
		rrq.WriteString(s)
		rrq.WriteByte(0)
	}
	last := rrq.Bytes()
	to := net.UDPAddrFromAddrPort(server)
	var (
		peer     *net.UDPAddr // the server's transfer port (its TID)
		bs       = 512        // RFC 1350's block size until an OACK says otherwise
		want     = uint16(1)
		received int64
		resent   int
		buf      = make([]byte, 65536)
		tries    int
	)
	send := func() error {
		dst := to
		if peer != nil {
			dst = peer
		}
		_, err := c.WriteToUDP(last, dst)
		return err
	}
	if err := send(); err != nil {
		return 0, 0, fmt.Errorf("tftp: RRQ: %w", err)
	}
	for {
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		m, from, err := c.ReadFromUDP(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil && tries < retries {
				tries++
				resent++
				if err := send(); err != nil {
					return received, resent, err
				}
				continue
			}
			return received, resent, fmt.Errorf("tftp: %s block %d: %w", file, want, errNoAnswerOr(err))
		}
		if peer == nil {
			peer = from
		} else if !from.IP.Equal(peer.IP) || from.Port != peer.Port {
			continue // another TID (RFC 1350 §4): not ours
		}
		if m < 4 {
			continue
		}
		op := binary.BigEndian.Uint16(buf)
		switch op {
		case opERROR:
			return received, resent, fmt.Errorf("tftp: %s: server error %d: %s", file, binary.BigEndian.Uint16(buf[2:]), bytes.TrimRight(buf[4:m], "\x00"))
		case opOACK:
			if want != 1 {
				continue
			}
			if v, ok := oackOption(buf[2:m], "blksize"); ok {
				if bs, err = strconv.Atoi(v); err != nil || bs < 8 || bs > blksize {
					return received, resent, fmt.Errorf("tftp: OACK blksize %q", v)
				}
			}
			last = []byte{0, opACK, 0, 0}
		case opDATA:
			block := binary.BigEndian.Uint16(buf[2:])
			if block != want {
				continue // a duplicate: our ACK crossed it
			}
			received += int64(m - 4)
			last = []byte{0, opACK, byte(block >> 8), byte(block)}
			want++
			if m-4 < bs {
				_ = send()
				return received, resent, nil
			}
		default:
			continue
		}
		tries = 0
		if err := send(); err != nil {
			return received, resent, err
		}
	}
}

func errNoAnswerOr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errNoAnswer
	}
	return err
}

// oackOption returns the value of name in an OACK's option list.
func oackOption(b []byte, name string) (string, bool) {
	parts := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
	for i := 0; i+1 < len(parts); i += 2 {
		if string(bytes.ToLower(parts[i])) == name {
			return string(parts[i+1]), true
		}
	}
	return "", false
}
