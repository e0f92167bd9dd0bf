// Package tftp is tinderbox's read-only TFTP server for the iPXE chain-load:
// RFC 1350 with option negotiation (RFC 2347), blksize (RFC 2348), tsize and
// timeout (RFC 2349) and windowsize (RFC 7440). It serves the files of an
// fs.FS (the daemon gives it ipxe.Root, which refuses any name that would
// leave ipxe.dir), refuses writes and non-octet modes with an error packet,
// answers a missing file with "file not found", and counts EDK2's tsize
// probe as a probe rather than a failed transfer.
//
// Each transfer runs on its own UDP socket (a new transfer ID, RFC 1350 §4),
// connected to the client so that the kernel drops other peers' packets
// and bound to the address the request was sent to, so that every reply
// comes from the address the client asked even when that is a secondary
// address of the interface (a keepalived VIP). The listening socket learns
// that address per packet (IP_PKTINFO, IPV6_PKTINFO), and with it the
// receiving interface, whose MTU caps the granted blksize so that DATA
// packets are never IP-fragmented.
//
// # Server contract
//
// Server keeps the contract all of tinderbox's servers (proxydhcp, tftp,
// httpserver) share:
//
//   - Serve(ctx, conn) blocks until ctx is cancelled, stops and waits for
//     the transfers in flight, and returns nil; it returns an error only
//     when the socket fails.
//   - Serve owns the socket it is given and closes it before returning,
//     whatever the outcome, as net/http's Server.Serve does with its
//     listener. The caller closes a socket only if it never calls Serve.
//   - A nil Options.Logger discards logs; nil Options.Metrics counts
//     nothing.
//   - Optional behaviour is an explicit Options field, nil when unused:
//     Recorder (TFTPSent). Hooks are named after the protocol and what
//     happened, take the server's context first, and are called from the
//     transfer's goroutine.
package tftp

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/ifaddr"
)

// Defaults for Options.
const (
	// DefaultTimeout is the retransmission timeout when the client asks
	// none (RFC 2349 lets it): one second, as tftp-hpa and dnsmasq use.
	DefaultTimeout = time.Second
	// DefaultRetries is how many times a packet is sent again before the
	// client is given up on: six seconds of silence at the default timeout.
	DefaultRetries = 5
	// DefaultMaxTransfers bounds concurrent transfers: a rack booting at
	// once is a few hundred clients; each transfer holds a socket and a file.
	DefaultMaxTransfers = 512
	// DefaultMaxPerClient bounds concurrent transfers from one address:
	// firmware fetches one file at a time (EDK2's size probe and download
	// follow each other), so a few cover retries and NAT, and one host
	// cannot take the slots every other client needs.
	DefaultMaxPerClient = 8
	// DefaultMaxTimeout caps the retransmission timeout a client may ask
	// (RFC 2349 allows up to 255 s): a larger ask is declined (left out
	// of the OACK) and DefaultTimeout used, as RFC 2347 §2 lets a server.
	// Firmware asks a few seconds.
	DefaultMaxTimeout = 10 * time.Second
	// DefaultFirstAckWait is how long a client that has acknowledged
	// nothing is waited for, over all retries: a request that is never
	// followed by an ACK frees its slot after this.
	DefaultFirstAckWait = 15 * time.Second
)

// Transfer is one completed download, as handed to a Recorder.
type Transfer struct {
	// Remote is the client's address and port (IPv4 unmapped).
	Remote netip.AddrPort
	// File is the name the client asked for.
	File     string
	Bytes    int64
	Duration time.Duration
	// Blksize and Windowsize are the negotiated values.
	Blksize, Windowsize int
}

// Recorder learns of every completed download (the machine-state layer
// records "TFTP file sent" events with it). TFTPSent is called from the
// transfer's goroutine once the client has acknowledged the last block,
// with the context Serve was given: it must be safe for concurrent use and
// should not block.
type Recorder interface {
	TFTPSent(ctx context.Context, t Transfer)
}

// NopRecorder records nothing.
type NopRecorder struct{}

// TFTPSent does nothing.
func (NopRecorder) TFTPSent(context.Context, Transfer) {}

// Refusal is an error from Files' Open that refuses a name (it leaves
// the served directory, has characters no file name has, is not a regular
// file), as opposed to failing to open a file. Its Reason, a few words,
// is the text of the error packet the client gets (code 2, access
// violation). ipxe.Root's *ipxe.NameError is one.
type Refusal interface {
	error
	Reason() string
}

// Options configures New. Files is required.
type Options struct {
	// Files is what the server serves; the files it opens must implement
	// io.ReaderAt (an *os.File does). Open's errors decide the answer: a
	// Refusal is refused with its Reason (error 2); another error matching
	// fs.ErrInvalid or fs.ErrPermission is refused as "access violation"
	// (error 2); fs.ErrNotExist is "file not found" (error 1).
	Files fs.FS
	// Logger gets one Info line per file sent, per-request detail at
	// Debug; nil discards.
	Logger *slog.Logger
	// Metrics counts requests and bytes; nil counts nothing.
	Metrics *Metrics
	// Recorder is told of every completed download; nil records nothing.
	Recorder Recorder
	// Timeout is the retransmission timeout when the client asks none;
	// 0 means DefaultTimeout.
	Timeout time.Duration
	// Retries is how many times a packet is sent again before giving up;
	// 0 means DefaultRetries.
	Retries int
	// MaxTransfers bounds concurrent transfers; requests beyond it get an
	// error packet. 0 means DefaultMaxTransfers.
	MaxTransfers int
	// MaxPerClient bounds concurrent transfers from one client address;
	// requests beyond it get an error packet ("too many transfers from
	// your address") and count as ResultClientBusy. 0 means
	// DefaultMaxPerClient.
	MaxPerClient int
	// MaxTimeout caps the timeout option a client may ask; a larger one
	// is declined. 0 means DefaultMaxTimeout.
	MaxTimeout time.Duration
	// FirstAckWait bounds the wait for a client's first ACK, over all
	// retries. 0 means DefaultFirstAckWait.
	FirstAckWait time.Duration
	// MaxBlksize caps the blksize granted, in bytes of file data per DATA
	// packet, below the cap the receiving interface's MTU sets (the MTU
	// minus 32 for IPv4, minus 52 for IPv6: the IP, UDP and TFTP headers):
	// for clients behind a link with a smaller MTU than the server's own.
	// 0 means no cap beyond the MTU's and RFC 2348's 65464; a value below
	// 8 counts as 8.
	MaxBlksize int
	// Interfaces tells the receiving interface's MTU and networks; share
	// one ifaddr.Table between servers. nil asks the kernel for every
	// request.
	Interfaces *ifaddr.Table
}

// Server is a read-only TFTP server. It is safe for concurrent use.
type Server struct {
	files   fs.FS
	log     *slog.Logger
	m       *Metrics
	rec     Recorder
	timeout time.Duration
	retries int
	max     int64

	perClient    int
	maxTimeout   time.Duration
	firstAckWait time.Duration
	clientsMu    sync.Mutex
	clients      map[netip.Addr]int // transfers in flight by client address
	maxBlk       int
	inFlight     atomic.Int64
	ifs          *ifaddr.Table
}

// New returns a server; call Serve to run it.
func New(opts Options) *Server {
	s := &Server{
		files: opts.Files, log: opts.Logger, m: opts.Metrics, rec: opts.Recorder,
		timeout: opts.Timeout, retries: opts.Retries, max: int64(opts.MaxTransfers),
		maxBlk: opts.MaxBlksize, ifs: opts.Interfaces,
	}
	if s.rec == nil {
		s.rec = NopRecorder{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.m == nil {
		// Collectors on a registry nobody gathers: counting into them is
		// the no-op, and the transfer code needs no nil checks.
		s.m = NewMetrics(prometheus.NewRegistry())
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.retries <= 0 {
		s.retries = DefaultRetries
	}
	if s.max <= 0 {
		s.max = DefaultMaxTransfers
	}
	s.perClient = cmp.Or(opts.MaxPerClient, DefaultMaxPerClient)
	s.maxTimeout = cmp.Or(opts.MaxTimeout, DefaultMaxTimeout)
	s.firstAckWait = cmp.Or(opts.FirstAckWait, DefaultFirstAckWait)
	s.clients = map[netip.Addr]int{}
	return s
}

// claim counts a transfer for client, or says false when it already has
// perClient of them.
func (s *Server) claim(client netip.Addr) bool {
	s.clientsMu.Lock()
	defer s.clientsMu.Unlock()
	if s.clients[client] >= s.perClient {
		return false
	}
	s.clients[client]++
	return true
}

// release ends a transfer claim made for client.
func (s *Server) release(client netip.Addr) {
	s.clientsMu.Lock()
	defer s.clientsMu.Unlock()
	if s.clients[client]--; s.clients[client] <= 0 {
		delete(s.clients, client)
	}
}

// Serve answers requests arriving on conn until ctx is cancelled, then stops
// the transfers in flight (telling their clients), waits for them and
// returns nil. It blocks. Serve closes conn before it returns. A bad packet
// is answered and counted; only a failing socket ends Serve early, with an
// error.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	defer func() { _ = conn.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	rc := newRequestConn(conn)
	// RFC 2347 keeps requests within 512 bytes; read more so that a longer
	// one is parsed (and its over-long name refused) rather than truncated.
	buf := make([]byte, 64<<10)
	for {
		n, ua, arr, err := rc.readFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tftp: read: %w", err)
		}
		if ua == nil {
			continue
		}
		s.handleSafe(ctx, &wg, rc, ua, arr, buf[:n])
	}
}

// handleSafe is handle with a panic recovered, counted and logged: one bad
// request must not end Serve.
func (s *Server) handleSafe(ctx context.Context, wg *sync.WaitGroup, rc requestConn, remote *net.UDPAddr, arr arrival, p []byte) {
	defer s.m.panics.Recover(s.log, slog.String("remote", remote.String()))
	s.handle(ctx, wg, rc, remote, arr, p)
}

// local is this end of a request: the address replies leave from
// (invalid: the kernel's choice) and the interface it came in on (0 when
// unknown).
type local struct {
	addr    netip.Addr
	ifIndex int
}

// handle answers one packet that arrived on the server port.
func (s *Server) handle(ctx context.Context, wg *sync.WaitGroup, rc requestConn, remote *net.UDPAddr, arr arrival, p []byte) {
	rp := remote.AddrPort()
	rp = netip.AddrPortFrom(rp.Addr().Unmap(), rp.Port())
	if len(p) < 2 {
		s.done(ctx, outcome{remote: rp, result: ResultBadRequest, err: errShort})
		return
	}
	op := binary.BigEndian.Uint16(p)
	if op != opRRQ && op != opWRQ {
		// A stray DATA, ACK or ERROR on the server port is not answered:
		// answering could start an error ping-pong with another server.
		s.done(ctx, outcome{remote: rp, result: ResultBadRequest, err: fmt.Errorf("opcode %d on the server port", op)})
		return
	}
	// Only requests are answered, so only they need the interface.
	var ifc ifaddr.Interface // zero: unknown
	if arr.ifIndex > 0 {
		ifc, _ = s.ifs.ByIndex(arr.ifIndex)
	}
	me := local{addr: replySource(arr.dst, ifc.Addrs), ifIndex: arr.ifIndex}
	switch op {
	case opRRQ:
		req, err := parseRequest(p[2:], blksizeCap(ifc.MTU, rp.Addr().Is4(), s.maxBlk))
		if err != nil {
			res, code := ResultBadRequest, uint16(errIllegalOperation)
			if errors.Is(err, errNotOctet) {
				res = ResultRefused
			}
			s.reply(rc, remote, me, code, err.Error())
			s.done(ctx, outcome{remote: rp, local: me.addr, file: req.name, result: res, err: err})
			return
		}
		if req.timeout > 0 && time.Duration(req.timeout)*time.Second > s.maxTimeout {
			req = req.without(optTimeout)
		}
		if !s.claim(rp.Addr()) {
			s.reply(rc, remote, me, errNotDefined, "too many transfers from your address, try again")
			s.done(ctx, outcome{remote: rp, local: me.addr, file: req.name, result: ResultClientBusy})
			return
		}
		if s.inFlight.Add(1) > s.max {
			s.inFlight.Add(-1)
			s.release(rp.Addr())
			s.reply(rc, remote, me, errNotDefined, "server busy, try again")
			s.done(ctx, outcome{remote: rp, local: me.addr, file: req.name, result: ResultBusy})
			return
		}
		s.m.inFlight.Inc()
		wg.Go(func() {
			// A panic in the Recorder, called by done.
			defer s.m.panics.Recover(s.log, slog.String("remote", rp.String()), slog.String("file", req.name))
			o := s.serveReadSafe(ctx, rc, remote, rp, me, req)
			s.inFlight.Add(-1)
			s.release(rp.Addr())
			s.m.inFlight.Dec()
			s.done(ctx, o)
		})
	case opWRQ:
		req, _ := parseRequest(p[2:], maxBlksize)
		s.reply(rc, remote, me, errAccessViolation, "read-only server: writes are refused")
		s.done(ctx, outcome{remote: rp, local: me.addr, file: req.name, result: ResultRefused, err: errors.New("write request")})
	}
}

// reply sends an error packet from the server port, from the address the
// request was sent to.
func (s *Server) reply(rc requestConn, to *net.UDPAddr, from local, code uint16, msg string) {
	if err := rc.writeTo(appendError(nil, code, msg), to, from.addr, from.ifIndex); err != nil {
		s.log.Debug("tftp: send error packet", "remote", to.String(), "err", err)
	}
}

// outcome is how one request ended.
type outcome struct {
	remote              netip.AddrPort
	local               netip.Addr // the address replies left from; invalid: the kernel's choice
	file                string
	result              Result
	err                 error
	bytes               int64
	duration            time.Duration
	blksize, windowsize int
	retransmits         int
}

// serveRead opens the file and sends it.
func (s *Server) serveRead(ctx context.Context, rc requestConn, remote *net.UDPAddr, rp netip.AddrPort, me local, req request) outcome {
	start := time.Now()
	o := outcome{remote: rp, local: me.addr, file: req.name, blksize: req.blksize, windowsize: req.windowsize}
	fail := func(res Result, code uint16, msg string, err error) outcome {
		s.reply(rc, remote, me, code, msg)
		o.result, o.err, o.duration = res, err, time.Since(start)
		return o
	}
	f, ra, size, ref := openFile(s.files, req.name)
	if ref != nil {
		return fail(ref.result, ref.code, ref.msg, ref.err)
	}
	defer func() { _ = f.Close() }()
	// Bound to the address the client asked, with a port of its own: the
	// OACK, DATA and error packets of the transfer all leave from there.
	c, err := net.DialUDP("udp", transferAddr(me.addr, me.ifIndex), remote)
	if err != nil {
		return fail(ResultError, errNotDefined, "server error", fmt.Errorf("open transfer socket: %w", err))
	}
	defer func() { _ = c.Close() }()

	timeout := s.timeout
	if req.timeout > 0 {
		timeout = time.Duration(req.timeout) * time.Second
	}
	snd := &sender{
		conn: c, file: ra, size: size, req: req, timeout: timeout, retries: s.retries, m: s.m,
		firstAckBy: time.Now().Add(s.firstAckWait),
		buf:        make([]byte, 4+req.blksize), rbuf: make([]byte, 1024),
	}
	o.result, o.err = snd.run(ctx)
	o.duration = time.Since(start)
	o.bytes = size
	o.retransmits = snd.retransmits
	return o
}

// serveReadSafe is serveRead with a panic (in the file system, say) turned
// into a failed outcome, so that the transfer's slot is released and its
// end counted.
func (s *Server) serveReadSafe(ctx context.Context, rc requestConn, remote *net.UDPAddr, rp netip.AddrPort, me local, req request) (o outcome) {
	defer func() {
		if v := recover(); v != nil {
			err := s.m.panics.Caught(v, s.log, slog.String("remote", rp.String()), slog.String("file", req.name))
			o = outcome{remote: rp, local: me.addr, file: req.name, blksize: req.blksize, windowsize: req.windowsize, result: ResultError, err: err}
		}
	}()
	return s.serveRead(ctx, rc, remote, rp, me, req)
}

// refusal is why a request gets an error packet instead of a file.
type refusal struct {
	result Result
	code   uint16
	msg    string
	err    error
}

// openFile opens name in files for sending. This is the only place a
// client's name reaches the file system.
func openFile(files fs.FS, name string) (fs.File, io.ReaderAt, int64, *refusal) {
	f, err := files.Open(name)
	if err != nil {
		var r Refusal
		switch {
		case errors.As(err, &r):
			return nil, nil, 0, &refusal{ResultRefused, errAccessViolation, r.Reason(), err}
		case errors.Is(err, fs.ErrInvalid) || errors.Is(err, fs.ErrPermission):
			return nil, nil, 0, &refusal{ResultRefused, errAccessViolation, "access violation", err}
		case errors.Is(err, fs.ErrNotExist):
			return nil, nil, 0, &refusal{ResultNotFound, errFileNotFound, "file not found", err}
		}
		return nil, nil, 0, &refusal{ResultError, errNotDefined, "cannot open file", err}
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, 0, &refusal{ResultError, errNotDefined, "cannot open file", err}
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		_ = f.Close()
		return nil, nil, 0, &refusal{ResultError, errNotDefined, "cannot open file", fmt.Errorf("%T has no ReadAt", f)}
	}
	return f, ra, fi.Size(), nil
}

// done logs, records and counts the end of a request, counting last: a
// count seen means the log line and the record are done too.
func (s *Server) done(ctx context.Context, o outcome) {
	defer func() {
		s.m.transfers.WithLabelValues(string(o.result)).Inc()
		if o.duration > 0 { // requests refused on sight are not transfers: no time to record
			s.m.duration.WithLabelValues(string(o.result)).Observe(o.duration.Seconds())
		}
	}()
	attrs := []slog.Attr{slog.String("remote", o.remote.String()), slog.String("file", o.file)}
	if o.local.IsValid() {
		attrs = append(attrs, slog.String("local", o.local.String()))
	}
	switch o.result {
	case ResultOK:
		s.log.LogAttrs(ctx, slog.LevelInfo, "tftp: file sent", append(attrs,
			slog.Int64("bytes", o.bytes), slog.Duration("duration", o.duration),
			slog.Int("blksize", o.blksize), slog.Int("windowsize", o.windowsize),
			slog.Int("retransmits", o.retransmits))...)
		s.rec.TFTPSent(ctx, Transfer{
			Remote: o.remote, File: o.file, Bytes: o.bytes, Duration: o.duration,
			Blksize: o.blksize, Windowsize: o.windowsize,
		})
	case ResultProbe:
		s.log.LogAttrs(ctx, slog.LevelDebug, "tftp: size probe", attrs...)
	case ResultBadRequest:
		s.log.LogAttrs(ctx, slog.LevelDebug, "tftp: bad packet", append(attrs, slog.Any("err", o.err))...)
	case ResultNotFound:
		s.log.LogAttrs(ctx, slog.LevelWarn, "tftp: file not found in ipxe.dir", attrs...)
	case ResultAborted:
		s.log.LogAttrs(ctx, slog.LevelInfo, "tftp: transfer aborted", append(attrs,
			slog.Int64("size", o.bytes), slog.Duration("duration", o.duration), slog.Any("err", o.err))...)
	case ResultError:
		s.log.LogAttrs(ctx, slog.LevelError, "tftp: transfer failed", append(attrs, slog.Any("err", o.err))...)
	case ResultTimeout:
		s.log.LogAttrs(ctx, slog.LevelWarn, "tftp: client stopped acknowledging", append(attrs,
			slog.Int64("size", o.bytes), slog.Duration("duration", o.duration),
			slog.Int("blksize", o.blksize), slog.Int("windowsize", o.windowsize))...)
	default:
		s.log.LogAttrs(ctx, slog.LevelWarn, "tftp: request "+string(o.result), append(attrs, slog.Any("err", o.err))...)
	}
}
