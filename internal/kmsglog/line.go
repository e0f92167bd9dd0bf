package kmsglog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Line is one log message as Talos sent it, with where and when it
// arrived. Its strings are valid UTF-8 (the JSON decoder replaces invalid
// bytes with U+FFFD) and bounded: Msg by the receiver's MaxLine (plus
// TruncatedMarker when cut), Service by 64 bytes, Level, Facility and
// Priority by 16.
type Line struct {
	// Time is when Talos logged the message (its talos-time field, RFC
	// 3339 with nanoseconds). Parse leaves it zero when the field is
	// missing or malformed; the receiver then sets it to Arrived.
	Time time.Time
	// Arrived is when the receiver read the line; zero from Parse.
	Arrived time.Time
	// From is the sender's address and port (IPv4 unmapped); zero from
	// Parse.
	From netip.AddrPort
	// Level is Talos' talos-level: zap's level names "debug", "info",
	// "warn", "error" (and "dpanic", "panic", "fatal"). Talos maps kernel
	// priorities emerg…err to "error", warning to "warn", notice and info
	// to "info", debug to "debug".
	Level string
	// Facility is the kernel's syslog facility name ("kern", "user",
	// "daemon", …, "local7"); empty on service logs.
	Facility string
	// Priority is the kernel's syslog priority name ("emerg", "alert",
	// "crit", "err", "warning", "notice", "info", "debug"); empty on
	// service logs.
	Priority string
	// Seq is the kernel's sequence number of the message, counted from 0
	// at each boot (so a smaller Seq than the last one means the node
	// rebooted); -1 when the line carries none (service logs).
	Seq int64
	// Clock is the kernel's monotonic time of the message since boot
	// (sent in microseconds); 0 when absent.
	Clock time.Duration
	// Service is the Talos service of a service log line (talos-service,
	// e.g. "machined"); empty on kernel lines.
	Service string
	// Msg is the message text. The kernel log carries machined's own
	// "[talos] …" lines.
	Msg string
	// Truncated reports that the line was longer than the receiver's
	// MaxLine and was cut there: the fields after the cut are lost (Talos
	// sends talos-time after msg, so Time is the arrival time), and a Msg
	// that was cut ends, at a UTF-8 boundary, in TruncatedMarker.
	Truncated bool
}

// Kernel reports whether l came from the kernel log (it has a facility)
// rather than from a service.
func (l Line) Kernel() bool { return l.Facility != "" }

// TruncatedMarker ends the Msg of a line that was cut.
const TruncatedMarker = " …[truncated]"

// jsonSpace is the white space JSON allows around values (RFC 8259 §2).
const jsonSpace = " \t\r\n"

// Bounds on the short fields of a Line, so that a sender cannot make the
// metadata of a stored line large; Talos' own values are a few bytes.
const (
	maxShortField = 16
	maxService    = 64
)

// Errors Parse returns (wrapped).
var (
	// ErrNotObject: the line is not a single JSON object.
	ErrNotObject = errors.New("not a JSON object")
	// ErrNoMsg: the object has no string "msg" field.
	ErrNoMsg = errors.New("no msg field")
)

// wireLine is the JSON object Talos sends; metadata fields are decoded
// leniently (see Parse).
type wireLine struct {
	Msg      json.RawMessage `json:"msg"`
	Time     string          `json:"talos-time"`
	Level    string          `json:"talos-level"`
	Service  string          `json:"talos-service"`
	Facility string          `json:"facility"`
	Priority string          `json:"priority"`
	Seq      json.RawMessage `json:"seq"`
	Clock    json.RawMessage `json:"clock"`
}

// Parse decodes one line of Talos' json_lines log format: a JSON object
// with a string msg field, optional talos-time, talos-level,
// talos-service, facility, priority, seq and clock, and any other fields
// (Talos' extraTags), which are ignored. JSON white space around the
// object is ignored. Metadata of the wrong type or out of range is left at its
// zero value (Seq at -1) rather than failing the line, since the message
// is what matters; a line that is not one JSON object, or has no string
// msg, is an error wrapping ErrNotObject or ErrNoMsg.
func Parse(b []byte) (Line, error) {
	b = bytes.Trim(b, jsonSpace)
	if len(b) == 0 || b[0] != '{' {
		return Line{}, fmt.Errorf("kmsglog: parse: %w", ErrNotObject)
	}
	var w wireLine
	if err := json.Unmarshal(b, &w); err != nil {
		// A field of the wrong type is skipped and decoding goes on;
		// only a syntax error means the line is not JSON.
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return Line{}, fmt.Errorf("kmsglog: parse: %w: %w", ErrNotObject, err)
		}
	}
	var msg string
	if len(w.Msg) == 0 || w.Msg[0] != '"' || json.Unmarshal(w.Msg, &msg) != nil {
		return Line{}, fmt.Errorf("kmsglog: parse: %w", ErrNoMsg)
	}
	l := Line{
		Msg:      msg,
		Level:    intern(w.Level, levels, maxShortField),
		Facility: intern(w.Facility, facilities, maxShortField),
		Priority: intern(w.Priority, priorities, maxShortField),
		Service:  clip(w.Service, maxService),
		Seq:      -1,
	}
	if t, err := time.Parse(time.RFC3339Nano, w.Time); err == nil {
		l.Time = t
	}
	if n, ok := integer(w.Seq); ok {
		l.Seq = n
	}
	// Clock is in microseconds; one beyond what a Duration holds is
	// treated as absent.
	if n, ok := integer(w.Clock); ok && n <= math.MaxInt64/int64(time.Microsecond) {
		l.Clock = time.Duration(n) * time.Microsecond
	}
	return l, nil
}

// integer reads a non-negative JSON integer literal.
func integer(raw json.RawMessage) (int64, bool) {
	n, err := strconv.ParseInt(string(raw), 10, 64)
	return n, err == nil && n >= 0
}

// The values Talos sends for talos-level (zap's level names), facility and
// priority (the syslog names of siderolabs/go-kmsg). Interning them keeps
// stored lines from holding a copy each.
var (
	levels     = internTable("debug", "info", "warn", "error", "dpanic", "panic", "fatal")
	facilities = internTable("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp",
		"cron", "authpriv", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7")
	priorities = internTable("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
)

func internTable(names ...string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = n
	}
	return m
}

// intern returns the table's copy of s, or s clipped to max bytes.
func intern(s string, table map[string]string, max int) string {
	if v, ok := table[s]; ok {
		return v
	}
	return clip(s, max)
}

// clip cuts s to at most max bytes at a UTF-8 boundary.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return strings.Clone(s[:utf8Boundary([]byte(s[:max+1]), max)])
}

// utf8Boundary returns the largest n <= max such that b[:n] does not end
// in the middle of a UTF-8 sequence. b must hold more than max bytes or
// exactly max; b[max], when present, tells whether b[:max] cuts a rune.
func utf8Boundary(b []byte, max int) int {
	if max >= len(b) {
		return len(b)
	}
	n := max
	// A rune is at most utf8.UTFMax bytes: step back to where the rune
	// that b[max] belongs to starts, at most that far.
	for i := 0; i < utf8.UTFMax && n > 0 && !utf8.RuneStart(b[n]); i++ {
		n--
	}
	return n
}

// ErrCut: a line longer than MaxLine was cut before its msg field began,
// so nothing of the message survived.
var ErrCut = errors.New("line cut before its message")

// parseCut salvages the first bytes of a line that was longer than the
// receiver keeps. Talos encodes its fields in key order (Go's encoding of
// a map), so msg comes before the talos-* fields: the fields complete in
// b are kept, and a msg cut short is ended at the last complete character
// (never inside an escape or a UTF-8 sequence) followed by
// TruncatedMarker. Truncated is set either way. When b holds no msg at
// all, or is not the start of a JSON object, parseCut fails.
func parseCut(b []byte) (Line, error) {
	b = bytes.TrimLeft(b, jsonSpace)
	if len(b) == 0 || b[0] != '{' {
		return Line{}, fmt.Errorf("kmsglog: parse: %w", ErrNotObject)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return Line{}, fmt.Errorf("kmsglog: parse: %w", ErrNotObject)
	}
	// Rebuild an object of the complete fields, then parse it as usual.
	obj := []byte{'{'}
	field := func(key string, raw []byte) {
		if len(obj) > 1 {
			obj = append(obj, ',')
		}
		k, _ := json.Marshal(key)
		obj = append(append(append(obj, k...), ':'), raw...)
	}
	msgCut := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		key, _ := tok.(string)
		start := int(dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if strings.EqualFold(key, "msg") {
				if s, ok := partialString(b[start:]); ok {
					v, _ := json.Marshal(s)
					field(key, v)
					msgCut = true
				}
			}
			break
		}
		field(key, raw)
	}
	obj = append(obj, '}')
	l, err := Parse(obj)
	if err != nil {
		if errors.Is(err, ErrNoMsg) {
			return Line{}, fmt.Errorf("kmsglog: parse: %w", ErrCut)
		}
		return Line{}, err
	}
	if msgCut {
		l.Msg += TruncatedMarker
	}
	l.Truncated = true
	return l, nil
}

// partialString decodes the JSON string that starts (after white space
// and the colon) at the beginning of b and was cut before its closing
// quote. It drops an incomplete UTF-8 sequence or escape at the end.
func partialString(b []byte) (string, bool) {
	b = bytes.TrimLeft(b, jsonSpace)
	b, ok := bytes.CutPrefix(b, []byte{':'})
	if !ok {
		return "", false
	}
	b = bytes.TrimLeft(b, jsonSpace)
	if len(b) == 0 || b[0] != '"' {
		return "", false
	}
	// A string that closes within b was not cut: its value was malformed.
	body := b[1:]
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '\\':
			i++
		case '"':
			return "", false
		}
	}
	body = body[:len(body)-incompleteRune(body)]
	body = body[:completeEscapes(body)]
	var str string
	if json.Unmarshal(append(append([]byte{'"'}, body...), '"'), &str) != nil {
		return "", false
	}
	return str, true
}

// completeEscapes returns the length of the longest prefix of the JSON
// string body b that does not end inside an escape, nor after the first
// half of a UTF-16 surrogate pair (\uD800 to \uDBFF) whose second half
// was cut.
func completeEscapes(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		switch {
		case i+1 >= len(b), b[i+1] == 'u' && i+6 > len(b):
			// Cut inside this escape: what comes before may in turn end
			// in the first half of a pair.
			return completeEscapes(b[:i])
		case b[i+1] != 'u':
			i++
		default:
			hex := string(b[i+2 : i+6])
			if i+6 == len(b) && (hex[0] == 'd' || hex[0] == 'D') && strings.ContainsRune("89abAB", rune(hex[1])) {
				return i
			}
			i += 5
		}
	}
	return len(b)
}

// incompleteRune returns how many bytes at the end of b are the start of
// a UTF-8 sequence that b cuts short (0 when b ends on a whole rune).
func incompleteRune(b []byte) int {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		c := b[len(b)-i]
		if !utf8.RuneStart(c) {
			continue
		}
		if utf8.FullRune(b[len(b)-i:]) {
			return 0
		}
		return i
	}
	return 0
}
