package kmsglog

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks Parse and the salvage of cut lines against properties:
//   - a line Parse takes is valid JSON, its strings are valid UTF-8 and
//     within their bounds, and written again the way Talos writes it, it
//     parses to the same Line;
//   - a JSON object whose msg (under that exact name) is a string is
//     always taken, with that message;
//   - every prefix of a line that parseCut salvages ends, as a message,
//     at a UTF-8 boundary with the marker or whole.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"clock":5123456,"facility":"kern","msg":"[talos] task installTask (1/1): done","priority":"info","seq":1742,"talos-level":"info","talos-time":"2021-11-10T10:48:49.294858021Z"}`))
	f.Add([]byte(`{"msg":"[talos] apply config request","talos-level":"info","talos-service":"machined","talos-time":"2021-11-10T10:48:49.294858021Z","node":"n1"}`))
	f.Add([]byte(`{"msg":"x\ud83d\ude00 \u00e9\t\"q\"","seq":0,"clock":0}`))
	f.Add([]byte(`{"msg":42}`))
	f.Add([]byte(`{"MSG":"a","msg":"b"}`))
	f.Add([]byte("not json"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse(b)
		if err == nil {
			if !json.Valid(b) {
				t.Fatalf("Parse took invalid JSON %q", b)
			}
			for _, s := range []string{l.Msg, l.Level, l.Facility, l.Priority, l.Service} {
				if !utf8.ValidString(s) {
					t.Fatalf("field %q is not valid UTF-8", s)
				}
			}
			if len(l.Level) > maxShortField || len(l.Facility) > maxShortField || len(l.Priority) > maxShortField || len(l.Service) > maxService {
				t.Fatalf("fields beyond their bounds: %+v", l)
			}
			again, err := Parse(encode(l))
			if err != nil {
				t.Fatalf("Parse(encode(%+v)): %v", l, err)
			}
			if !again.Time.Equal(l.Time) {
				t.Fatalf("time: got %v again, first %v", again.Time, l.Time)
			}
			again.Time = l.Time
			if again != l {
				t.Fatalf("round trip: got %+v\nfirst %+v", again, l)
			}
		}
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			msg, isString := m["msg"].(string)
			exact := true
			for k := range m {
				if k != "msg" && strings.EqualFold(k, "msg") {
					exact = false // Go's decoder matches field names ignoring case
				}
			}
			if isString && exact && (err != nil || l.Msg != msg) {
				t.Fatalf("Parse(%q) = %q, %v; want msg %q", b, l.Msg, err, msg)
			}
		}
		for _, n := range []int{len(b) / 2, len(b) - 1} {
			if n < 0 {
				continue
			}
			c, err := parseCut(b[:n])
			if err != nil {
				continue
			}
			if !c.Truncated || !utf8.ValidString(c.Msg) {
				t.Fatalf("parseCut(%q) = %+v", b[:n], c)
			}
		}
	})
}
