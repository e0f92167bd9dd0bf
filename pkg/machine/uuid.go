package machine

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// UUID is a machine's SMBIOS System UUID (SMBIOS type 1, "UUID" field), in
// the byte order of its printed form: the order RFC 9562 calls network
// order, in which dmidecode, QEMU's -uuid and iPXE's ${uuid} write it.
//
// The zero value stands for "no UUID known" and prints as ""; ParseUUID
// and UUIDFromSMBIOS never return it. UUID is comparable, so it can key a
// map.
type UUID [16]byte

// uuidLen is the length of the only accepted spelling, 8-4-4-4-12 hex
// digits with hyphens.
const uuidLen = 36

// ErrUUIDNotSet is wrapped by the errors of ParseUUID and UUIDFromSMBIOS
// for the two values the SMBIOS specification (DSP0134, System Information
// structure, UUID field) reserves for a machine without a UUID: all bytes
// 00h ("not present") and all bytes FFh ("not currently present, but can
// be set"). Such a value names no machine: every board shipped unset
// shares it.
var ErrUUIDNotSet = errors.New("the SMBIOS \"no UUID\" value")

// ParseUUID reads a UUID in its canonical spelling, 8-4-4-4-12 hex digits
// in either case (3ad4b2c0-5c1e-4f4e-9a7b-0c1d2e3f4a5b), as iPXE's ${uuid}
// and dmidecode print it. Any other input is an error naming it (at most
// its first 32 bytes): braces, a "urn:uuid:" prefix, missing or moved
// hyphens, surrounding space. The length is checked before anything else,
// so a long input costs nothing. The all-00h and all-FFh values are an
// error wrapping ErrUUIDNotSet.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	if len(s) != uuidLen {
		return UUID{}, fmt.Errorf("%s is not a UUID (want 8-4-4-4-12 hex digits)", quoteInput(s))
	}
	// Offsets of the five groups in the text and in the bytes.
	for _, g := range [...]struct{ text, end, byte int }{{0, 8, 0}, {9, 13, 4}, {14, 18, 6}, {19, 23, 8}, {24, 36, 10}} {
		if g.text > 0 && s[g.text-1] != '-' {
			return UUID{}, fmt.Errorf("%s is not a UUID (want 8-4-4-4-12 hex digits)", quoteInput(s))
		}
		if _, err := hex.Decode(u[g.byte:], []byte(s[g.text:g.end])); err != nil {
			return UUID{}, fmt.Errorf("%s is not a UUID (want 8-4-4-4-12 hex digits)", quoteInput(s))
		}
	}
	if err := u.checkSet(); err != nil {
		return UUID{}, fmt.Errorf("%s: %w", quoteInput(s), err)
	}
	return u, nil
}

// UUIDFromSMBIOS converts the 16 bytes of a System UUID as SMBIOS 2.6 and
// later stores them, and as PXE clients send them in DHCP option 97 (RFC
// 4578 §2.3): the first three fields (4, 2 and 2 bytes) little-endian, the
// last 8 bytes in order, the layout of an EFI GUID. It swaps those fields
// to the printed order, so the result prints as iPXE's ${uuid} and
// dmidecode do. A length other than 16 is an error, and so are the
// all-00h and all-FFh values (wrapping ErrUUIDNotSet).
func UUIDFromSMBIOS(b []byte) (UUID, error) {
	var u UUID
	if len(b) != len(u) {
		return UUID{}, fmt.Errorf("SMBIOS UUID of %d bytes, want %d", len(b), len(u))
	}
	u = UUID{b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]}
	copy(u[8:], b[8:])
	if err := u.checkSet(); err != nil {
		return UUID{}, fmt.Errorf("SMBIOS UUID: %w", err)
	}
	return u, nil
}

// checkSet returns an error wrapping ErrUUIDNotSet for the all-00h and
// all-FFh values.
func (u UUID) checkSet() error {
	if u == (UUID{}) || u == (UUID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
		return ErrUUIDNotSet
	}
	return nil
}

// String returns the canonical form: lower case, 8-4-4-4-12 hex digits
// (3ad4b2c0-5c1e-4f4e-9a7b-0c1d2e3f4a5b), or "" for the zero UUID.
func (u UUID) String() string {
	if u.IsZero() {
		return ""
	}
	var b [uuidLen]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}

// IsZero reports whether u is the zero UUID, "no UUID known".
func (u UUID) IsZero() bool { return u == UUID{} }

// MarshalText implements encoding.TextMarshaler with String, so JSON and
// YAML carry the canonical form, and "" for the zero UUID.
func (u UUID) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler: "" is the zero UUID
// (the form MarshalText gives it), anything else goes through ParseUUID.
func (u *UUID) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*u = UUID{}
		return nil
	}
	v, err := ParseUUID(string(b))
	if err != nil {
		return err
	}
	*u = v
	return nil
}

// quoteInput quotes s for an error message, cut to its first 32 bytes so
// that a hostile input does not travel on in full into logs.
func quoteInput(s string) string {
	const limit = 32
	if len(s) <= limit {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:limit], len(s))
}
