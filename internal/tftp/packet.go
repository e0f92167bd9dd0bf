package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// Opcodes (RFC 1350 §5, RFC 2347 for OACK).
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// Error codes (RFC 1350 appendix, RFC 2347 for 8).
const (
	errNotDefined       = 0
	errFileNotFound     = 1
	errAccessViolation  = 2
	errIllegalOperation = 4
	errOptionRefused    = 8
)

// Option limits.
const (
	// minBlksize and maxBlksize bound blksize (RFC 2348 §2).
	minBlksize = 8
	maxBlksize = 65464
	// defaultBlksize is RFC 1350's fixed block size.
	defaultBlksize = 512
	// dataOverhead4 and dataOverhead6 are the bytes a DATA packet adds to
	// its block on the wire: TFTP's opcode and block number (4, RFC 1350
	// §5), the UDP header (8) and the IPv4 header without options (20) or
	// the IPv6 header without extension headers (40). A blksize of the
	// MTU minus these fills one packet exactly: 1500 - 32 = 1468 is what
	// EDK2 asks on Ethernet. (dnsmasq subtracts the same 32 and 52.)
	dataOverhead4 = 4 + 8 + 20
	dataOverhead6 = 4 + 8 + 40
	// maxTimeout is the largest timeout in seconds (RFC 2349 §2).
	maxTimeout = 255
	// MaxWindowsize caps windowsize (RFC 7440 allows 1–65535 and lets the
	// server answer a smaller value). EDK2 asks 4; beyond a few dozen
	// blocks in flight a lost packet costs more than the round trips saved.
	MaxWindowsize = 64
)

// Option names (case-insensitive on the wire, RFC 2347).
const (
	optBlksize    = "blksize"
	optTimeout    = "timeout"
	optTsize      = "tsize"
	optWindowsize = "windowsize"
)

var (
	errShort    = errors.New("packet shorter than a request")
	errNoName   = errors.New("request has no NUL-terminated file name")
	errNoMode   = errors.New("request has no NUL-terminated transfer mode")
	errNotOctet = errors.New(`only "octet" (binary) transfer mode is served`)
)

// request is a parsed read request (RFC 1350 §5 with RFC 2347 options).
type request struct {
	name string
	mode string
	// opts are the options the server accepted, in the client's order and
	// with values as they go in the OACK (tsize is filled in later).
	opts []option
	// blksize, windowsize and timeout are the negotiated values (defaults
	// when not asked); timeout is 0 when the client did not ask.
	blksize, windowsize, timeout int
	tsize                        bool
}

// without returns r with option name declined: left out of the OACK, and
// its value back to the default (only timeout is declined this way).
func (r request) without(name string) request {
	r.opts = slices.DeleteFunc(slices.Clone(r.opts), func(o option) bool { return o.name == name })
	if name == optTimeout {
		r.timeout = 0
	}
	return r
}

// option is one accepted option: lower-case name and the value to send back.
type option struct{ name, value string }

// blksizeCap is the largest blksize granted to a client of the given
// address family whose request came in on an interface of the given MTU
// (bytes; 0 when unknown), given the configured cap (Options.MaxBlksize;
// 0 for none). It is the most that fits one IP packet on that link, so
// that DATA is never IP-fragmented (firmware, switches and firewalls that
// drop fragments would lose every packet), and at least RFC 2348's
// minimum of 8 and at most its maximum of 65464.
func blksizeCap(mtu int, ipv4 bool, configured int) int {
	c := maxBlksize
	if configured > 0 {
		c = min(c, configured)
	}
	if mtu > 0 {
		overhead := dataOverhead6
		if ipv4 {
			overhead = dataOverhead4
		}
		c = min(c, mtu-overhead)
	}
	return max(c, minBlksize)
}

// parseRequest parses an RRQ or WRQ body (without its opcode). Unknown
// options and options with values out of range are ignored (left out of the
// OACK), as RFC 2347 allows; out-of-range blksize and windowsize are lowered
// to what the server offers (RFC 2348 §2, RFC 7440 §3): a blksize above
// blksizeLimit (minBlksize–maxBlksize, the path's cap) is lowered to it. A
// mode other than octet is refused: iPXE binaries mangled by netascii
// conversion boot nothing.
func parseRequest(body []byte, blksizeLimit int) (request, error) {
	r := request{blksize: defaultBlksize, windowsize: 1}
	name, rest, ok := bytes.Cut(body, []byte{0})
	if !ok {
		return r, errNoName
	}
	mode, rest, ok := bytes.Cut(rest, []byte{0})
	if !ok {
		return r, errNoMode
	}
	r.name, r.mode = string(name), strings.ToLower(string(mode))
	seen := map[string]bool{}
	for len(rest) > 0 {
		var k, v []byte
		k, rest, _ = bytes.Cut(rest, []byte{0})
		if v, rest, ok = bytes.Cut(rest, []byte{0}); !ok {
			break // trailing name without a value: padding or garbage
		}
		key := strings.ToLower(string(k))
		if key == "" || seen[key] {
			continue // the first of duplicate options wins
		}
		seen[key] = true
		if o, ok := r.accept(key, string(v), blksizeLimit); ok {
			r.opts = append(r.opts, o)
		}
	}
	if r.mode != "octet" {
		return r, errNotOctet
	}
	return r, nil
}

// accept applies one option and returns what goes in the OACK; blksize is
// lowered to blksizeLimit.
func (r *request) accept(key, val string, blksizeLimit int) (option, bool) {
	n, err := strconv.Atoi(val)
	if err != nil {
		return option{}, false
	}
	switch key {
	case optBlksize:
		if n < minBlksize {
			return option{}, false
		}
		r.blksize = min(n, blksizeLimit, maxBlksize)
		return option{key, strconv.Itoa(r.blksize)}, true
	case optWindowsize:
		if n < 1 {
			return option{}, false
		}
		r.windowsize = min(n, MaxWindowsize)
		return option{key, strconv.Itoa(r.windowsize)}, true
	case optTimeout:
		if n < 1 || n > maxTimeout {
			return option{}, false
		}
		r.timeout = n
		return option{key, val}, true
	case optTsize:
		if n < 0 {
			return option{}, false
		}
		r.tsize = true
		return option{key, ""}, true // the size goes in once the file is open
	}
	return option{}, false
}

// appendOACK appends an OACK carrying opts, with tsize set to size.
func appendOACK(b []byte, opts []option, size int64) []byte {
	b = binary.BigEndian.AppendUint16(b, opOACK)
	for _, o := range opts {
		v := o.value
		if o.name == optTsize {
			v = strconv.FormatInt(size, 10)
		}
		b = append(b, o.name...)
		b = append(b, 0)
		b = append(b, v...)
		b = append(b, 0)
	}
	return b
}

// appendError appends an ERROR packet. msg is cut to fit a 512-byte packet,
// the one size every client can receive.
func appendError(b []byte, code uint16, msg string) []byte {
	const maxMsg = 512 - 5
	if len(msg) > maxMsg {
		msg = msg[:maxMsg]
	}
	b = binary.BigEndian.AppendUint16(b, opERROR)
	b = binary.BigEndian.AppendUint16(b, code)
	b = append(b, msg...)
	return append(b, 0)
}

// parseError returns an ERROR packet's code and message.
func parseError(p []byte) (uint16, string) {
	if len(p) < 4 {
		return errNotDefined, ""
	}
	msg, _, _ := bytes.Cut(p[4:], []byte{0})
	return binary.BigEndian.Uint16(p[2:]), string(msg)
}
