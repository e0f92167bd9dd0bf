package kmsglog

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	ts := time.Date(2021, 11, 10, 10, 48, 49, 294858021, time.UTC)
	tests := []struct {
		name string
		in   string
		want Line
	}{
		{
			name: "kernel line",
			in:   `{"clock":5123456,"facility":"kern","msg":"[talos] task installTask (1/1): done","priority":"info","seq":1742,"talos-level":"info","talos-time":"2021-11-10T10:48:49.294858021Z"}`,
			want: Line{Time: ts, Level: "info", Facility: "kern", Priority: "info", Seq: 1742,
				Clock: 5123456 * time.Microsecond, Msg: "[talos] task installTask (1/1): done"},
		},
		{
			name: "service line with extra tags",
			in:   `{"msg":"[talos] apply config request: immediate true, on reboot false","talos-level":"info","talos-service":"machined","talos-time":"2021-11-10T10:48:49.294858021Z","node":"10.0.0.5","nested":{"a":[1,2]}}`,
			want: Line{Time: ts, Level: "info", Service: "machined", Seq: -1,
				Msg: "[talos] apply config request: immediate true, on reboot false"},
		},
		{
			name: "first kernel record, seq 0, surrounding white space",
			in:   " \t{\"facility\":\"kern\",\"msg\":\"Linux version 6.12\",\"priority\":\"notice\",\"seq\":0,\"clock\":0}\r\n",
			want: Line{Facility: "kern", Priority: "notice", Msg: "Linux version 6.12"},
		},
		{
			name: "only msg",
			in:   `{"msg":""}`,
			want: Line{Seq: -1},
		},
		{
			name: "metadata of the wrong type is left out",
			in:   `{"msg":"m","talos-time":12,"talos-level":["info"],"facility":{},"priority":7,"seq":"12","clock":1.5}`,
			want: Line{Msg: "m", Seq: -1},
		},
		{
			name: "malformed time, negative seq, clock beyond a Duration",
			in:   `{"msg":"m","talos-time":"yesterday","seq":-3,"clock":9223372036854775807}`,
			want: Line{Msg: "m", Seq: -1},
		},
		{
			name: "time with an offset",
			in:   `{"msg":"m","talos-time":"2021-11-10T12:48:49.294858021+02:00"}`,
			want: Line{Msg: "m", Seq: -1, Time: ts},
		},
		{
			name: "unknown level clipped, service clipped",
			in:   `{"msg":"m","talos-level":"` + strings.Repeat("é", 20) + `","talos-service":"` + strings.Repeat("s", 100) + `"}`,
			want: Line{Msg: "m", Seq: -1, Level: strings.Repeat("é", 8), Service: strings.Repeat("s", 64)},
		},
		{
			name: "invalid UTF-8 in msg becomes U+FFFD",
			in:   "{\"msg\":\"a\xffb\"}",
			want: Line{Msg: "a\uFFFDb", Seq: -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !got.Time.Equal(tt.want.Time) {
				t.Errorf("time: got %v, want %v", got.Time, tt.want.Time)
			}
			got.Time, tt.want.Time = time.Time{}, time.Time{}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseGarbage(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrNotObject},
		{"blank", " \n", ErrNotObject},
		{"text", "hello world", ErrNotObject},
		{"array", `[{"msg":"m"}]`, ErrNotObject},
		{"string", `"msg"`, ErrNotObject},
		{"cut object", `{"msg":"m"`, ErrNotObject},
		{"two objects", `{"msg":"a"}{"msg":"b"}`, ErrNotObject},
		{"no msg", `{"talos-level":"info"}`, ErrNoMsg},
		{"msg not a string", `{"msg":42}`, ErrNoMsg},
		{"msg null", `{"msg":null}`, ErrNoMsg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %+v, %v, want error %v", l, err, tt.want)
			}
		})
	}
}

func TestParseCut(t *testing.T) {
	tests := []struct {
		name string
		in   string // the first bytes of a longer line
		msg  string // want; "" wants an error
		seq  int64
	}{
		{"inside msg", `{"clock":1,"facility":"kern","msg":"hello wor`, "hello wor" + TruncatedMarker, -1},
		{"fields before msg kept", `{"facility":"kern","msg":"abc","priority":"info","seq":7,"talos-le`, "abc", 7},
		{"inside an escape", `{"msg":"tab\t then \u00`, "tab\t then " + TruncatedMarker, -1},
		{"after a backslash", `{"msg":"a\`, "a" + TruncatedMarker, -1},
		{"after an escaped backslash", `{"msg":"a\\`, `a\` + TruncatedMarker, -1},
		{"inside a surrogate pair", `{"msg":"x\ud83d\ude0`, "x" + TruncatedMarker, -1},
		{"inside a UTF-8 sequence", "{\"msg\":\"caf\xc3", "caf" + TruncatedMarker, -1},
		{"inside a 4-byte sequence", "{\"msg\":\"\xf0\x9f\x98", TruncatedMarker, -1},
		{"right after the key", `{"msg":`, "", -1},
		{"before msg", `{"clock":1,"facility":"kern","ms`, "", -1},
		{"not an object", `hello`, "", -1},
		{"msg not a string", `{"msg":12345`, "", -1},
		{"a lone surrogate inside is kept as U+FFFD", `{"msg":"x\ud83dy`, "x\uFFFDy" + TruncatedMarker, -1},
		{"control character in msg", "{\"msg\":\"a\x01b", "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := parseCut([]byte(tt.in))
			if tt.msg == "" {
				if err == nil {
					t.Fatalf("got %+v, want an error", l)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseCut: %v", err)
			}
			if l.Msg != tt.msg || !l.Truncated || l.Seq != tt.seq {
				t.Errorf("got msg %q truncated %v seq %d, want %q true %d", l.Msg, l.Truncated, l.Seq, tt.msg, tt.seq)
			}
			if !utf8.ValidString(l.Msg) {
				t.Errorf("msg %q is not valid UTF-8", l.Msg)
			}
		})
	}
}

func TestKernel(t *testing.T) {
	k, _ := Parse(kernelLine(1, "x"))
	s, _ := Parse([]byte(`{"msg":"x","talos-service":"machined"}`))
	if !k.Kernel() || s.Kernel() {
		t.Errorf("Kernel(): got %v for a kernel line and %v for a service line, want true and false", k.Kernel(), s.Kernel())
	}
}
