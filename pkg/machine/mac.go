// Package machine is tinderbox's vocabulary: the names every other
// package uses for a network-booting machine. A MAC address and an SMBIOS
// System UUID each have one type with one canonical spelling; the Talos
// architecture, the firmware class a DHCP client announces, a profile's
// install mode, the policy for machines with no profile, a machine's state
// in the install cycle and the kinds of event in its log are typed values,
// not free strings.
//
// It is a leaf: it imports nothing of tinderbox, so every package,
// including the public admin API client, can speak it.
package machine

import (
	"encoding/hex"
	"fmt"
	"net"
	"strings"
)

// MAC is an Ethernet (EUI-48) hardware address. The zero value is
// 00:00:00:00:00:00, which no NIC sends; IsZero reports it. MAC is
// comparable, so it can key a map.
type MAC [6]byte

// maxMACLen is the longest spelling ParseMAC accepts: six hex pairs and
// five separators.
const maxMACLen = 17

// ParseMAC reads a MAC address in any spelling firmware, iPXE or a person
// uses: colon or dash separated (iPXE's ${net0/mac} and ${mac:hexhyp}),
// Cisco dotted (0123.4567.89ab), or 12 bare hex digits, in either case. It
// returns an error naming the input (at most its first 32 bytes) for
// anything else, including the 8- and 20-byte addresses net.ParseMAC also
// accepts. An input longer than the longest spelling (17 bytes) is refused
// before any other work.
func ParseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) > maxMACLen {
		return MAC{}, fmt.Errorf("%s is not a MAC address", quoteInput(s))
	}
	if len(s) == 12 {
		if _, err := hex.Decode(m[:], []byte(s)); err == nil {
			return m, nil
		}
		return MAC{}, fmt.Errorf("%s is not a MAC address", quoteInput(s))
	}
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != len(m) {
		return MAC{}, fmt.Errorf("%s is not a MAC address", quoteInput(s))
	}
	copy(m[:], hw)
	return m, nil
}

// MACFromHardwareAddr converts a 6-byte hardware address, as a DHCP
// packet's chaddr gives it; other lengths (InfiniBand's 20) are an error.
func MACFromHardwareAddr(hw net.HardwareAddr) (MAC, error) {
	var m MAC
	if len(hw) != len(m) {
		return MAC{}, fmt.Errorf("hardware address %v is not a 6-byte MAC", hw)
	}
	copy(m[:], hw)
	return m, nil
}

// String returns the canonical form: lower case, colon separated
// (52:54:00:12:34:56). State records, logs, the admin API and iPXE's
// ${net0/mac} all use it.
func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// Dashed returns the file-name form: lower case, dash separated
// (52-54-00-12-34-56), as profiles/machines/ names files and as config
// URLs carry it, since a colon is not safe in a file name on every system
// nor in every URL path.
func (m MAC) Dashed() string { return strings.ReplaceAll(m.String(), ":", "-") }

// HardwareAddr returns m as a net.HardwareAddr (a new slice).
func (m MAC) HardwareAddr() net.HardwareAddr { return net.HardwareAddr(append([]byte(nil), m[:]...)) }

// IsZero reports whether m is the zero address.
func (m MAC) IsZero() bool { return m == MAC{} }

// MarshalText implements encoding.TextMarshaler with the canonical form,
// so JSON and YAML carry "52:54:00:12:34:56".
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseMAC.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MustParseMAC is ParseMAC for constants in tests and examples; it panics
// when s is not a MAC address.
func MustParseMAC(s string) MAC {
	m, err := ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}
