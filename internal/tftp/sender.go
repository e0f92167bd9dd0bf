package tftp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

var errGaveUp = errors.New("client stopped acknowledging")

// clientError is an ERROR packet from the client.
type clientError struct {
	code uint16
	msg  string
}

func (e *clientError) Error() string { return fmt.Sprintf("client sent error %d: %q", e.code, e.msg) }

// sender sends one file to one client over a connected socket.
type sender struct {
	conn    *net.UDPConn
	file    io.ReaderAt
	size    int64
	req     request
	timeout time.Duration
	retries int
	m       *Metrics

	buf  []byte // one DATA packet
	rbuf []byte // one incoming packet

	// firstAckBy, when set, is when a client that has acknowledged
	// nothing yet (no ACK 0 of the OACK, no ACK of block 1) is given up
	// on, whatever the retries left: a client that asks for a file and
	// never answers holds a transfer slot this long at most.
	firstAckBy time.Time
	acked      bool // an ACK came: firstAckBy no longer applies

	retransmits int
}

// silentTooLong says whether the client has acknowledged nothing and
// its time for that (firstAckBy) is up.
func (s *sender) silentTooLong() bool {
	return !s.acked && !s.firstAckBy.IsZero() && !time.Now().Before(s.firstAckBy)
}

// run negotiates options and sends the file; it returns how the transfer
// ended. Cancelling ctx tells the client and ends the transfer.
func (s *sender) run(ctx context.Context) (Result, error) {
	stop := context.AfterFunc(ctx, func() {
		_, _ = s.conn.Write(appendError(nil, errNotDefined, "server shutting down"))
		_ = s.conn.Close()
	})
	defer stop()

	if len(s.req.opts) > 0 {
		if err := s.negotiate(ctx); err != nil {
			var ce *clientError
			// EDK2 asks tsize, reads the OACK and aborts with error 8
			// before sending the real request (docs/protocol.md, "TFTP");
			// a client that simply goes away after the size is the same
			// probe.
			if s.req.tsize && (errors.As(err, &ce) || errors.Is(err, syscall.ECONNREFUSED)) {
				return ResultProbe, err
			}
			return s.classify(ctx, err)
		}
	}
	if err := s.send(ctx); err != nil {
		return s.classify(ctx, err)
	}
	return ResultOK, nil
}

// classify maps a transfer's error to its result.
func (s *sender) classify(ctx context.Context, err error) (Result, error) {
	var ce *clientError
	switch {
	case ctx.Err() != nil:
		return ResultAborted, context.Cause(ctx)
	case errors.Is(err, errGaveUp):
		_, _ = s.conn.Write(appendError(nil, errNotDefined, "timed out waiting for ACK"))
		return ResultTimeout, err
	case errors.As(err, &ce), errors.Is(err, syscall.ECONNREFUSED):
		return ResultAborted, err
	}
	return ResultError, err
}

// negotiate sends the OACK until the client acknowledges it with ACK 0
// (RFC 2347).
func (s *sender) negotiate(ctx context.Context) error {
	oack := appendOACK(make([]byte, 0, 128), s.req.opts, s.size)
	for try := 0; ; try++ {
		if try > s.retries || s.silentTooLong() {
			return errGaveUp
		}
		if try > 0 {
			s.retransmits++
			s.m.retransmits.Inc()
		}
		if _, err := s.conn.Write(oack); err != nil {
			return err
		}
		acked, err := s.await(ctx, func(block uint16) bool { return block == 0 })
		if err != nil {
			return err
		}
		if acked {
			return nil
		}
	}
}

// send sends the file, windowsize blocks at a time, resending from the
// first unacknowledged block on a timeout or on an ACK that shows a gap
// (RFC 7440 §4). Block numbers roll over from 65535 to 0.
func (s *sender) send(ctx context.Context) error {
	bs := int64(s.req.blksize)
	win := int64(s.req.windowsize)
	last := s.size/bs + 1 // the last block is shorter than blksize, maybe empty
	var acked, sent int64
	// resentOnDup: the window was already resent for a duplicate ACK of
	// this block. In lockstep a duplicate ACK is never answered (RFC 1123
	// §4.2.3.1, the Sorcerer's Apprentice bug); with a window it means the
	// first block was lost, and one resend spares the client a timeout.
	resentOnDup := false
	tries := 0
	for acked < last {
		hi := min(acked+win, last)
		for b := acked + 1; b <= hi; b++ {
			if err := s.sendBlock(b, bs); err != nil {
				return err
			}
			if b <= sent {
				s.retransmits++
				s.m.retransmits.Inc()
			}
		}
		sent = max(sent, hi)
		progress := false
		for !progress {
			got, err := s.await(ctx, func(block uint16) bool {
				switch d := int64(block - uint16(acked)); {
				case d == 0 && win > 1 && !resentOnDup:
					resentOnDup = true
					return true
				case d > 0 && d <= hi-acked:
					acked += d
					resentOnDup, tries, progress = false, 0, true
					return true
				}
				return false
			})
			if err != nil {
				return err
			}
			if !got {
				if tries++; tries > s.retries || s.silentTooLong() {
					return errGaveUp
				}
				break
			}
			if !progress {
				break // duplicate ACK in a window: resend it now
			}
		}
	}
	return nil
}

// sendBlock sends DATA block b (1-based; the wire number is b mod 65536).
func (s *sender) sendBlock(b, bs int64) error {
	off := (b - 1) * bs
	n := min(bs, s.size-off)
	p := s.buf[:4+n]
	binary.BigEndian.PutUint16(p, opDATA)
	binary.BigEndian.PutUint16(p[2:], uint16(b))
	if got, err := s.file.ReadAt(p[4:], off); int64(got) != n {
		return fmt.Errorf("read file at %d: %w", off, errors.Join(err, io.ErrUnexpectedEOF))
	}
	if _, err := s.conn.Write(p); err != nil {
		return err
	}
	s.m.sent.Add(float64(n))
	return nil
}

// await reads packets for one timeout period until want accepts an ACK's
// block number (true), or the period ends (false). An ERROR packet ends the
// transfer with a *clientError; other packets are ignored.
func (s *sender) await(ctx context.Context, want func(block uint16) bool) (bool, error) {
	deadline := time.Now().Add(s.timeout)
	if !s.acked && !s.firstAckBy.IsZero() && s.firstAckBy.Before(deadline) {
		deadline = s.firstAckBy
	}
	if err := s.conn.SetReadDeadline(deadline); err != nil {
		return false, err
	}
	for {
		n, err := s.conn.Read(s.rbuf)
		switch {
		case ctx.Err() != nil:
			return false, ctx.Err()
		case errors.Is(err, os.ErrDeadlineExceeded):
			return false, nil
		case err != nil:
			return false, err
		case n < 4:
			continue
		}
		p := s.rbuf[:n]
		switch binary.BigEndian.Uint16(p) {
		case opACK:
			if want(binary.BigEndian.Uint16(p[2:])) {
				s.acked = true
				return true, nil
			}
		case opERROR:
			code, msg := parseError(p)
			return false, &clientError{code: code, msg: msg}
		}
	}
}
