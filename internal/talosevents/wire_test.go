package talosevents

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

var update = flag.Bool("update", false, "rewrite testdata/*.bin from the encoder")

// The wire types, spelled out for the hand-built messages below.
const (
	wtVarint = protowire.VarintType
	wtBytes  = protowire.BytesType
)

// Hand-built wire data, independent of encode.go: each helper writes one
// field from its number and wire type as the proto files declare them.
func tagOf(num protowire.Number, typ protowire.Type) []byte {
	return protowire.AppendVarint(nil, uint64(num)<<3|uint64(typ))
}

func vField(num protowire.Number, v uint64) []byte {
	return append(tagOf(num, wtVarint), protowire.AppendVarint(nil, v)...)
}

func bField(num protowire.Number, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	return append(append(tagOf(num, wtBytes), protowire.AppendVarint(nil, uint64(len(body)))...), body...)
}

func sField(num protowire.Number, s string) []byte { return bField(num, []byte(s)) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// handRequest builds an EventRequest: data = 1 { type_url = 1, value = 2 },
// id = 2.
func handRequest(id, typeURL string, value []byte) []byte {
	return cat(bField(1, sField(1, typeURL), bField(2, value)), sField(2, id))
}

var lastChange = time.Date(2026, 11, 3, 14, 5, 6, 789000000, time.UTC)

// goldenCases are the events of the golden files: one per type Talos
// sends during an install, with its expected value and its payload built
// by hand from api/machine/machine.proto's field numbers.
var goldenCases = []struct {
	name string
	id   string
	msg  any
	hand []byte // the payload (the Any's value)
}{
	{
		name: "sequence-install-start", id: "d4ii1v0b8a2s73b0q2n0",
		msg:  SequenceEvent{Sequence: "install", Action: SequenceStart},
		hand: cat(sField(1, "install"), vField(2, 1)),
	},
	{
		name: "sequence-install-stop-error", id: "d4ii1v0b8a2s73b0q2ng",
		msg: SequenceEvent{Sequence: "install", Action: SequenceStop, Error: &Error{
			Code: CodeFatal, Message: `failed to install: disk "/dev/sda" not found`,
		}},
		// code FATAL is 0, so proto3 leaves it out.
		hand: cat(sField(1, "install"), vField(2, 2), bField(3, sField(2, `failed to install: disk "/dev/sda" not found`))),
	},
	{
		name: "sequence-boot-stop-locked", id: "d4ii1v0b8a2s73b0q2o0",
		msg:  SequenceEvent{Sequence: "boot", Action: SequenceStop, Error: &Error{Code: CodeLocked, Message: "locked"}},
		hand: cat(sField(1, "boot"), vField(2, 2), bField(3, vField(1, 1), sField(2, "locked"))),
	},
	{
		name: "phase-stop", id: "d4ii1v0b8a2s73b0q2og",
		msg:  PhaseEvent{Phase: "install", Action: StepStop},
		hand: cat(sField(1, "install"), vField(2, 1)),
	},
	{
		name: "task-start", id: "d4ii1v0b8a2s73b0q2p0",
		msg:  TaskEvent{Task: "install", Action: StepStart},
		hand: sField(1, "install"),
	},
	{
		name: "machine-status-running-ready", id: "d4ii1v0b8a2s73b0q2pg",
		msg:  MachineStatusEvent{Stage: StageRunning, Ready: true},
		hand: cat(vField(1, 4), bField(2, vField(1, 1))),
	},
	{
		name: "machine-status-booting-unmet", id: "d4ii1v0b8a2s73b0q2q0",
		msg: MachineStatusEvent{Stage: StageBooting, Unmet: []UnmetCondition{
			{Name: "time", Reason: "time is not synced"},
			{Name: "services", Reason: "some services are not healthy: etcd"},
		}},
		hand: cat(vField(1, 1), bField(2,
			bField(2, sField(1, "time"), sField(2, "time is not synced")),
			bField(2, sField(1, "services"), sField(2, "some services are not healthy: etcd")))),
	},
	{
		name: "service-state-failed", id: "d4ii1v0b8a2s73b0q2qg",
		msg: ServiceStateEvent{Service: "etcd", Action: ServiceFailed, Message: "Health check failed",
			Health: &ServiceHealth{Healthy: false, Unknown: true, LastMessage: "dial timeout", LastChange: lastChange}},
		hand: cat(sField(1, "etcd"), vField(2, 6), sField(3, "Health check failed"), bField(4,
			vField(1, 1), sField(3, "dial timeout"),
			bField(4, vField(1, uint64(lastChange.Unix())), vField(2, 789000000)))),
	},
	{
		name: "config-load-error", id: "d4ii1v0b8a2s73b0q2r0",
		msg:  ConfigLoadErrorEvent{Error: "unknown keys found during decoding: machine.foo"},
		hand: sField(1, "unknown keys found during decoding: machine.foo"),
	},
	{
		name: "config-validation-error", id: "d4ii1v0b8a2s73b0q2rg",
		msg:  ConfigValidationErrorEvent{Error: "1 error occurred: install disk not set"},
		hand: sField(1, "1 error occurred: install disk not set"),
	},
	{
		name: "address", id: "d4ii1v0b8a2s73b0q2s0",
		msg:  AddressEvent{Hostname: "talos-abc", Addresses: []string{"10.0.0.5", "fd00::5"}},
		hand: cat(sField(1, "talos-abc"), sField(2, "10.0.0.5"), sField(2, "fd00::5")),
	},
}

// TestGolden checks each testdata/<name>.bin, an EventRequest, three ways:
// it decodes to the expected event; it is what the encoder writes today;
// and it equals the request built by hand from the proto field numbers.
func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join("testdata", tc.name+".bin")
			enc, err := EncodeRequest(tc.id, tc.msg)
			if err != nil {
				t.Fatalf("EncodeRequest: %v", err)
			}
			if *update {
				if err := os.WriteFile(path, enc, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update once)", err)
			}

			req, err := DecodeRequest(golden)
			if err != nil {
				t.Fatalf("DecodeRequest: %v", err)
			}
			if req.ID != tc.id {
				t.Errorf("id: got %q, want %q", req.ID, tc.id)
			}
			// The Go type names match the proto message names.
			wantURL := "type.googleapis.com/machine." + reflect.TypeOf(tc.msg).Name()
			if req.TypeURL != wantURL {
				t.Errorf("type URL: got %q, want %q", req.TypeURL, wantURL)
			}
			got, err := Decode(req.TypeURL, req.Value)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.msg) {
				t.Errorf("decoded:\ngot  %#v\nwant %#v", got, tc.msg)
			}

			if !bytes.Equal(enc, golden) {
				t.Errorf("encoder drifted from the golden file:\ngot  %s\nwant %s", hex.EncodeToString(enc), hex.EncodeToString(golden))
			}
			hand := handRequest(tc.id, req.TypeURL, tc.hand)
			if !bytes.Equal(hand, golden) {
				t.Errorf("golden file differs from the hand-built request:\ngot  %s\nwant %s", hex.EncodeToString(golden), hex.EncodeToString(hand))
			}
		})
	}
}

// TestDecodeTypeURLPrefix checks that the message is chosen by the name
// after the last slash: Talos' sink sends type.googleapis.com/…, its
// Events API talos/runtime/….
func TestDecodeTypeURLPrefix(t *testing.T) {
	value := cat(sField(1, "install"), vField(2, 1))
	want := SequenceEvent{Sequence: "install", Action: SequenceStart}
	for _, url := range []string{
		"type.googleapis.com/machine.SequenceEvent",
		"talos/runtime/machine.SequenceEvent",
		"machine.SequenceEvent",
	} {
		got, err := Decode(url, value)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Decode(%q): got %#v, %v; want %#v", url, got, err, want)
		}
	}
	for _, url := range []string{
		"type.googleapis.com/machine.RestartEvent",
		"type.googleapis.com/machine.SequenceEventX",
		"type.googleapis.com/other.SequenceEvent",
		"machine.SequenceEvent/",
	} {
		got, err := Decode(url, value)
		if err != nil || got != (Unknown{TypeURL: url}) {
			t.Errorf("Decode(%q): got %#v, %v; want Unknown", url, got, err)
		}
	}
}

// TestDecodeLenient checks what a decoder must take in its stride: unknown
// fields of every wire type, a known field with an unexpected wire type,
// repeated scalars (the last wins), repeated messages (merged), enum
// values this package does not know.
func TestDecodeLenient(t *testing.T) {
	unknown := cat(
		vField(99, 7),
		sField(100, "future"),
		append(tagOf(101, protowire.Fixed32Type), 1, 2, 3, 4),
		append(tagOf(102, protowire.Fixed64Type), 1, 2, 3, 4, 5, 6, 7, 8),
		cat(tagOf(103, protowire.StartGroupType), vField(1, 1), tagOf(103, protowire.EndGroupType)),
	)
	tests := []struct {
		name    string
		typeURL string
		value   []byte
		want    any
	}{
		{
			name: "unknown fields", typeURL: NameSequenceEvent,
			value: cat(unknown, sField(1, "boot"), unknown, vField(2, 2), bField(3, unknown, sField(2, "x"), sField(3, "details skipped"))),
			want:  SequenceEvent{Sequence: "boot", Action: SequenceStop, Error: &Error{Message: "x"}},
		},
		{
			name: "wrong wire type skipped", typeURL: NamePhaseEvent,
			value: cat(vField(1, 5), sField(2, "START"), sField(1, "diskSize")),
			want:  PhaseEvent{Phase: "diskSize"},
		},
		{
			name: "last scalar wins", typeURL: NameTaskEvent,
			value: cat(sField(1, "a"), vField(2, 1), sField(1, "b"), vField(2, 0)),
			want:  TaskEvent{Task: "b", Action: StepStart},
		},
		{
			name: "messages merged", typeURL: NameMachineStatusEvent,
			value: cat(vField(1, 2), bField(2, vField(1, 1), bField(2, sField(1, "a"))), bField(2, bField(2, sField(1, "b")))),
			want:  MachineStatusEvent{Stage: StageInstalling, Ready: true, Unmet: []UnmetCondition{{Name: "a"}, {Name: "b"}}},
		},
		{
			name: "error merged", typeURL: NameSequenceEvent,
			value: cat(bField(3, vField(1, 1)), bField(3, sField(2, "m"))),
			want:  SequenceEvent{Error: &Error{Code: CodeLocked, Message: "m"}},
		},
		{
			name: "unknown enum values kept", typeURL: NameMachineStatusEvent,
			value: vField(1, 42),
			want:  MachineStatusEvent{Stage: 42},
		},
		{
			name: "negative enum", typeURL: NameServiceStateEvent,
			value: vField(2, uint64(0xffffffffffffffff)),
			want:  ServiceStateEvent{Action: -1},
		},
		{
			name: "empty payload", typeURL: NameMachineStatusEvent,
			value: nil,
			want:  MachineStatusEvent{},
		},
		{
			name: "empty health and timestamp", typeURL: NameServiceStateEvent,
			value: bField(4, bField(4)),
			want:  ServiceStateEvent{Health: &ServiceHealth{LastChange: time.Unix(0, 0).UTC()}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.typeURL, tc.value)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

// TestDecodeMalformed checks that broken payloads are errors wrapping
// ErrMalformed.
func TestDecodeMalformed(t *testing.T) {
	many := func(num protowire.Number, n int, part []byte) []byte {
		var b []byte
		for range n {
			b = append(b, bField(num, part)...)
		}
		return b
	}
	tests := []struct {
		name    string
		typeURL string
		value   []byte
	}{
		{"truncated tag", NameSequenceEvent, []byte{0x80}},
		{"truncated varint", NameSequenceEvent, []byte{0x10, 0x80}},
		{"length past end", NameSequenceEvent, []byte{0x0a, 0x05, 'a'}},
		{"field number zero", NameSequenceEvent, []byte{0x00, 0x01}},
		{"end group without start", NamePhaseEvent, tagOf(5, protowire.EndGroupType)},
		{"unterminated group", NamePhaseEvent, tagOf(5, protowire.StartGroupType)},
		{"truncated fixed32", NameTaskEvent, append(tagOf(9, protowire.Fixed32Type), 1, 2)},
		{"reserved wire type", NameTaskEvent, []byte{0x0e}},
		{"invalid UTF-8", NameSequenceEvent, sField(1, "\xff\xfe")},
		{"invalid UTF-8 in error", NameSequenceEvent, bField(3, sField(2, "\xc3"))},
		{"malformed nested", NameMachineStatusEvent, bField(2, []byte{0x12, 0x09})},
		{"too many unmet conditions", NameMachineStatusEvent, bField(2, many(2, maxUnmet+1, nil))},
		{"too many addresses", NameAddressEvent, many(2, maxAddresses+1, []byte("a"))},
		{"malformed timestamp", NameServiceStateEvent, bField(4, bField(4, []byte{0x08}))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.typeURL, tc.value)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode: got %#v, %v; want an error wrapping ErrMalformed", got, err)
			}
		})
	}
}

// TestDecodeRequest checks the EventRequest envelope: actor_id, unknown
// fields, and the requests refused.
func TestDecodeRequest(t *testing.T) {
	value := sField(1, "install")
	good := cat(vField(9, 1), bField(1, sField(1, "type.googleapis.com/machine.PhaseEvent"), vField(7, 3), bField(2, value)), sField(2, "id1"), sField(3, "actor"))
	req, err := DecodeRequest(good)
	if err != nil {
		t.Fatalf("DecodeRequest: %v", err)
	}
	want := Request{ID: "id1", ActorID: "actor", TypeURL: "type.googleapis.com/machine.PhaseEvent", Value: value}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("got  %#v\nwant %#v", req, want)
	}
	good[len(good)-1] = 'X' // the request keeps no reference to its input
	if req.ActorID != "actor" || !bytes.Equal(req.Value, value) {
		t.Errorf("request changed with its input: %#v", req)
	}

	bad := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"no data", sField(2, "id")},
		{"data with wrong wire type", cat(vField(1, 1), sField(2, "id"))},
		{"empty type URL", cat(bField(1, bField(2, value)), sField(2, "id"))},
		{"long type URL", handRequest("id", string(bytes.Repeat([]byte("a"), maxTypeURL+1)), value)},
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\n")},
		{"truncated", handRequest("id", "type.googleapis.com/machine.PhaseEvent", value)[:10]},
		{"invalid UTF-8 id", cat(bField(1, sField(1, "x")), sField(2, "\xff"))},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeRequest(tc.b)
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("got %#v, %v; want an error wrapping ErrMalformed", got, err)
			}
		})
	}
}

// TestMarshalRefuses checks that Marshal refuses what it cannot encode.
func TestMarshalRefuses(t *testing.T) {
	for _, msg := range []any{nil, Unknown{TypeURL: "x"}, &SequenceEvent{}, "install"} {
		if _, _, err := Marshal(msg); err == nil {
			t.Errorf("Marshal(%#v): got no error", msg)
		}
		if _, err := EncodeRequest("id", msg); err == nil {
			t.Errorf("EncodeRequest(%#v): got no error", msg)
		}
	}
}

// TestEnumStrings checks the proto names and the fallback to the number.
func TestEnumStrings(t *testing.T) {
	tests := []struct {
		got  interface{ String() string }
		want string
	}{
		{SequenceNoop, "NOOP"}, {SequenceStop, "STOP"}, {SequenceAction(7), "7"},
		{StepStart, "START"}, {StepStop, "STOP"}, {StepAction(-1), "-1"},
		{StageUnknown, "UNKNOWN"}, {StageInstalling, "INSTALLING"}, {StageShuttingDown, "SHUTTING_DOWN"}, {StageUpgrading, "UPGRADING"}, {MachineStage(9), "9"},
		{ServiceSkipped, "SKIPPED"}, {ServiceStarting, "STARTING"}, {ServiceAction(9), "9"},
		{CodeFatal, "FATAL"}, {CodeCanceled, "CANCELED"}, {ErrorCode(3), "3"},
	}
	for _, tc := range tests {
		if got := tc.got.String(); got != tc.want {
			t.Errorf("%#v.String(): got %q, want %q", tc.got, got, tc.want)
		}
	}
}
