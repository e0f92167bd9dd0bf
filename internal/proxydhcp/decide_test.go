package proxydhcp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	testServer = net.IPv4(192, 0, 2, 10).To4()
	testRouter = net.IPv4(192, 0, 2, 1).To4()
	testMAC    = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	// testGUID is option 97 for SMBIOS UUID 8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b
	// as firmware sends it: type 0, first three fields little-endian.
	testGUID = []byte{0, 0x2c, 0x6b, 0x1b, 0x8f, 0x4d, 0x3a, 0x5f, 0x4e, 0x8a, 0x9b, 0x0c, 0x1d, 0x2e, 0x3f, 0x4a, 0x5b}
)

const testUUID = "8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b"

func testConfig(arm64 bool) Config {
	return Config{Advertise: netip.MustParseAddr("192.0.2.10"), HTTPPort: 8080, Arm64: arm64}
}

// packet builds a BOOTREQUEST from mac with a fixed xid and the given options.
func packet(t testing.TB, mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	base := []dhcpv4.Modifier{
		dhcpv4.WithHwAddr(testMAC),
		dhcpv4.WithTransactionID(dhcpv4.TransactionID{1, 2, 3, 4}),
	}
	if mt != dhcpv4.MessageTypeNone {
		base = append(base, dhcpv4.WithMessageType(mt))
	}
	p, err := dhcpv4.New(append(base, mods...)...)
	if err != nil {
		t.Fatalf("build packet: %v", err)
	}
	return p
}

func archOpt(a uint16) dhcpv4.Modifier {
	return dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{byte(a >> 8), byte(a)})
}

func vendorOpt(s string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptClassIdentifier(s))
}

// firmware is a PXE ROM's DISCOVER for arch a, as EDK2 and PXE ROMs send it.
func firmware(a uint16) []dhcpv4.Modifier {
	return []dhcpv4.Modifier{archOpt(a), vendorOpt(pxeVendor(a)), dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, testGUID)}
}

func pxeVendor(a uint16) string {
	prefix := "PXEClient"
	if isHTTPArch(iana.Arch(a)) {
		prefix = "HTTPClient"
	}
	return prefix + ":Arch:" + pad5(a) + ":UNDI:003016"
}

func pad5(a uint16) string {
	b := []byte("00000")
	for i := 4; a > 0; i-- {
		b[i] = byte('0' + a%10)
		a /= 10
	}
	return string(b)
}

// ipxeClient is iPXE's own DHCP: user class "iPXE" as raw bytes and option 175.
func ipxeClient(a uint16) []dhcpv4.Modifier {
	return append(firmware(a),
		dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE")),
		dhcpv4.WithGeneric(optionIPXEEncap, []byte{0xb1, 0x05, 0x01, 0x10, 0xec, 0x81, 0x39}))
}

type policyFunc func(Client) (Verdict, error)

func (f policyFunc) Answer(_ context.Context, c Client) (Verdict, error) { return f(c) }

func TestDecide(t *testing.T) {
	ignoreUnknown := policyFunc(func(c Client) (Verdict, error) {
		return Verdict{Reason: "unknown machine " + c.MAC.String() + ", profiles say ignore"}, nil
	})
	broken := policyFunc(func(Client) (Verdict, error) { return Verdict{}, errors.New("state store closed") })
	relay := net.IPv4(10, 9, 8, 1).To4()

	type want struct {
		reason Reason
		err    bool
		typ    dhcpv4.MessageType
		file   string
		vendor string
		opt43  bool
		class  string
		uuid   string
		ipxe   bool
	}
	tests := []struct {
		name    string
		mt      dhcpv4.MessageType
		mods    []dhcpv4.Modifier
		cfg     Config
		server  net.IP
		pxePort bool
		policy  Policy
		want    want
	}{
		{name: "BIOS firmware", mt: dhcpv4.MessageTypeDiscover, mods: firmware(0),
			want: want{typ: dhcpv4.MessageTypeOffer, file: "undionly.kpxe", vendor: "PXEClient", opt43: true, class: "bios", uuid: testUUID}},
		{name: "EFI x86-64 firmware", mt: dhcpv4.MessageTypeDiscover, mods: firmware(7),
			want: want{typ: dhcpv4.MessageTypeOffer, file: "snponly.efi", vendor: "PXEClient", class: "efi-x64", uuid: testUUID}},
		{name: "EFI BC firmware", mt: dhcpv4.MessageTypeDiscover, mods: firmware(9),
			want: want{typ: dhcpv4.MessageTypeOffer, file: "snponly.efi", vendor: "PXEClient", class: "efi-x64", uuid: testUUID}},
		{name: "EFI arm64 with binary", mt: dhcpv4.MessageTypeDiscover, mods: firmware(11), cfg: testConfig(true),
			want: want{typ: dhcpv4.MessageTypeOffer, file: "ipxe-arm64.efi", vendor: "PXEClient", class: "efi-arm64", uuid: testUUID}},
		{name: "EFI arm64 without binary", mt: dhcpv4.MessageTypeDiscover, mods: firmware(11),
			want: want{reason: ReasonNoBinary}},
		{name: "EFI IA32", mt: dhcpv4.MessageTypeDiscover, mods: firmware(6), want: want{reason: ReasonNoBinary}},
		{name: "EFI ARM32", mt: dhcpv4.MessageTypeDiscover, mods: firmware(10), cfg: testConfig(true), want: want{reason: ReasonNoBinary}},
		{name: "EFI Itanium", mt: dhcpv4.MessageTypeDiscover, mods: firmware(2), want: want{reason: ReasonNoBinary}},
		{name: "HTTP boot x86-64", mt: dhcpv4.MessageTypeDiscover, mods: firmware(16),
			want: want{typ: dhcpv4.MessageTypeOffer, file: "http://192.0.2.10:8080/boot/snponly.efi", vendor: "HTTPClient", class: "efi-x64-http", uuid: testUUID}},
		{name: "HTTP boot EFI BC", mt: dhcpv4.MessageTypeDiscover, mods: firmware(17),
			want: want{typ: dhcpv4.MessageTypeOffer, file: "http://192.0.2.10:8080/boot/snponly.efi", vendor: "HTTPClient", class: "efi-x64-http", uuid: testUUID}},
		{name: "HTTP boot arm64", mt: dhcpv4.MessageTypeDiscover, mods: firmware(19), cfg: testConfig(true),
			want: want{typ: dhcpv4.MessageTypeOffer, file: "http://192.0.2.10:8080/boot/ipxe-arm64.efi", vendor: "HTTPClient", class: "efi-arm64-http", uuid: testUUID}},
		{name: "HTTP boot arm64 without binary", mt: dhcpv4.MessageTypeDiscover, mods: firmware(19), want: want{reason: ReasonNoBinary}},
		{name: "HTTP boot IA32", mt: dhcpv4.MessageTypeDiscover, mods: firmware(15), want: want{reason: ReasonNoBinary}},
		{name: "HTTP boot ARM32", mt: dhcpv4.MessageTypeDiscover, mods: firmware(18), cfg: testConfig(true), want: want{reason: ReasonNoBinary}},
		{name: "HTTPClient vendor class with a PXE arch", mt: dhcpv4.MessageTypeDiscover,
			mods: []dhcpv4.Modifier{archOpt(7), vendorOpt("HTTPClient:Arch:00007:UNDI:003000")},
			want: want{typ: dhcpv4.MessageTypeOffer, file: "http://192.0.2.10:8080/boot/snponly.efi", vendor: "HTTPClient", class: "efi-x64-http"}},
		{name: "HTTPClient vendor class on BIOS", mt: dhcpv4.MessageTypeDiscover,
			mods: []dhcpv4.Modifier{archOpt(0), vendorOpt("HTTPClient")}, want: want{reason: ReasonNoBinary}},
		{name: "iPXE on BIOS", mt: dhcpv4.MessageTypeDiscover, mods: ipxeClient(0),
			want: want{typ: dhcpv4.MessageTypeOffer, file: "http://192.0.2.10:8080/boot.ipxe", vendor: "PXEClient", class: "bios", uuid: testUUID, ipxe: true}},
		{name: "iPXE on EFI x86-64", mt: dhcpv4.MessageTypeDiscover, mods: ipxeClient(7),
			want: want{typ: dhcpv4.MessageTypeOffer, file: "http://192.0.2.10:8080/boot.ipxe", vendor: "PXEClient", class: "efi-x64", uuid: testUUID, ipxe: true}},
		{name: "iPXE on arm64 without a binary still gets the script", mt: dhcpv4.MessageTypeDiscover, mods: ipxeClient(11),
			want: want{typ: dhcpv4.MessageTypeOffer, file: "http://192.0.2.10:8080/boot.ipxe", vendor: "PXEClient", class: "efi-arm64", uuid: testUUID, ipxe: true}},
		{name: "iPXE by option 175 alone, no vendor class", mt: dhcpv4.MessageTypeDiscover,
			mods: []dhcpv4.Modifier{dhcpv4.WithGeneric(optionIPXEEncap, []byte{0x13, 0x01, 0x01})},
			want: want{typ: dhcpv4.MessageTypeOffer, file: "http://192.0.2.10:8080/boot.ipxe", vendor: "PXEClient", class: "bios", ipxe: true}},
		{name: "iPXE by RFC 3004 user class", mt: dhcpv4.MessageTypeDiscover,
			mods: []dhcpv4.Modifier{dhcpv4.WithUserClass("iPXE", true), archOpt(7)},
			want: want{typ: dhcpv4.MessageTypeOffer, file: "http://192.0.2.10:8080/boot.ipxe", vendor: "PXEClient", class: "efi-x64", ipxe: true}},
		{name: "iPXE ACK on the PXE port", mt: dhcpv4.MessageTypeRequest, pxePort: true,
			mods: append(ipxeClient(7), dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 50))),
			want: want{typ: dhcpv4.MessageTypeAck, file: "http://192.0.2.10:8080/boot.ipxe", vendor: "PXEClient", class: "efi-x64", uuid: testUUID, ipxe: true}},
		{name: "no option 93: arch from option 60", mt: dhcpv4.MessageTypeDiscover,
			mods: []dhcpv4.Modifier{vendorOpt("PXEClient:Arch:00007:UNDI:003016")},
			want: want{typ: dhcpv4.MessageTypeOffer, file: "snponly.efi", vendor: "PXEClient", class: "efi-x64"}},
		{name: "no option 93 and no arch in 60: BIOS", mt: dhcpv4.MessageTypeDiscover,
			mods: []dhcpv4.Modifier{vendorOpt("PXEClient")},
			want: want{typ: dhcpv4.MessageTypeOffer, file: "undionly.kpxe", vendor: "PXEClient", opt43: true, class: "bios"}},
		{name: "option 93 one byte long: arch from option 60", mt: dhcpv4.MessageTypeDiscover,
			mods: []dhcpv4.Modifier{dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{7}), vendorOpt("PXEClient:Arch:00009")},
			want: want{typ: dhcpv4.MessageTypeOffer, file: "snponly.efi", vendor: "PXEClient", class: "efi-x64"}},
		{name: "option 93 empty, garbage arch in 60: BIOS", mt: dhcpv4.MessageTypeDiscover,
			mods: []dhcpv4.Modifier{dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, nil), vendorOpt("PXEClient:Arch:x7")},
			want: want{typ: dhcpv4.MessageTypeOffer, file: "undionly.kpxe", vendor: "PXEClient", opt43: true, class: "bios"}},
		{name: "option 93 with two archs: the first", mt: dhcpv4.MessageTypeDiscover,
			mods: []dhcpv4.Modifier{dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7, 0, 0}), vendorOpt("PXEClient")},
			want: want{typ: dhcpv4.MessageTypeOffer, file: "snponly.efi", vendor: "PXEClient", class: "efi-x64"}},
		{name: "option 97 too short: echoed, no UUID", mt: dhcpv4.MessageTypeDiscover,
			mods: []dhcpv4.Modifier{archOpt(7), vendorOpt("PXEClient"), dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, []byte{0, 1, 2, 3})},
			want: want{typ: dhcpv4.MessageTypeOffer, file: "snponly.efi", vendor: "PXEClient", class: "efi-x64"}},
		{name: "option 97 with non-zero type: echoed, no UUID", mt: dhcpv4.MessageTypeDiscover,
			mods: []dhcpv4.Modifier{archOpt(0), vendorOpt("PXEClient"), dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{1}, testGUID[1:]...))},
			want: want{typ: dhcpv4.MessageTypeOffer, file: "undionly.kpxe", vendor: "PXEClient", opt43: true, class: "bios"}},
		{name: "option 97 all FFh (SMBIOS: no UUID): echoed, no UUID", mt: dhcpv4.MessageTypeDiscover,
			mods: []dhcpv4.Modifier{archOpt(7), vendorOpt("PXEClient"), dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, bytes.Repeat([]byte{0xff}, 16)...))},
			want: want{typ: dhcpv4.MessageTypeOffer, file: "snponly.efi", vendor: "PXEClient", class: "efi-x64"}},
		{name: "truncated option 60", mt: dhcpv4.MessageTypeDiscover,
			mods: []dhcpv4.Modifier{archOpt(7), vendorOpt("PXECli")}, want: want{reason: ReasonNotPXE}},
		{name: "truncated HTTPClient", mt: dhcpv4.MessageTypeDiscover,
			mods: []dhcpv4.Modifier{archOpt(16), vendorOpt("HTTPCl")}, want: want{reason: ReasonNotPXE}},
		{name: "plain DHCP, no option 60", mt: dhcpv4.MessageTypeDiscover, want: want{reason: ReasonNotPXE}},
		{name: "another vendor class", mt: dhcpv4.MessageTypeDiscover, mods: []dhcpv4.Modifier{vendorOpt("MSFT 5.0")}, want: want{reason: ReasonNotPXE}},
		{name: "relayed DISCOVER", mt: dhcpv4.MessageTypeDiscover,
			mods: append(firmware(7), dhcpv4.WithGatewayIP(relay), dhcpv4.WithGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 3, 'e', 't', '0'})),
			want: want{typ: dhcpv4.MessageTypeOffer, file: "snponly.efi", vendor: "PXEClient", class: "efi-x64", uuid: testUUID}},
		{name: "REQUEST on the PXE port without option 54 (EDK2)", mt: dhcpv4.MessageTypeRequest, pxePort: true,
			mods: append(firmware(7), dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 50))),
			want: want{typ: dhcpv4.MessageTypeAck, file: "snponly.efi", vendor: "PXEClient", class: "efi-x64", uuid: testUUID}},
		{name: "REQUEST naming us on the DHCP port", mt: dhcpv4.MessageTypeRequest,
			mods: append(firmware(0), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(testServer))),
			want: want{typ: dhcpv4.MessageTypeAck, file: "undionly.kpxe", vendor: "PXEClient", opt43: true, class: "bios", uuid: testUUID}},
		{name: "REQUEST naming the router", mt: dhcpv4.MessageTypeRequest,
			mods: append(firmware(7), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(testRouter))), want: want{reason: ReasonOtherServer}},
		{name: "REQUEST naming the router on the PXE port", mt: dhcpv4.MessageTypeRequest, pxePort: true,
			mods: append(firmware(7), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(testRouter))), want: want{reason: ReasonOtherServer}},
		{name: "REQUEST without option 54 on the DHCP port", mt: dhcpv4.MessageTypeRequest,
			mods: firmware(7), want: want{reason: ReasonOtherServer}},
		{name: "DISCOVER on the PXE port", mt: dhcpv4.MessageTypeDiscover, pxePort: true, mods: firmware(7),
			want: want{typ: dhcpv4.MessageTypeOffer, file: "snponly.efi", vendor: "PXEClient", class: "efi-x64", uuid: testUUID}},
		{name: "INFORM", mt: dhcpv4.MessageTypeInform, mods: firmware(7), want: want{reason: ReasonMessageType}},
		{name: "RELEASE", mt: dhcpv4.MessageTypeRelease, mods: firmware(7), want: want{reason: ReasonMessageType}},
		{name: "BOOTP, no option 53", mt: dhcpv4.MessageTypeNone, mods: firmware(0), want: want{reason: ReasonMessageType}},
		{name: "a BOOTREPLY", mt: dhcpv4.MessageTypeOffer, mods: append(firmware(7), dhcpv4.WithReply(packet(t, dhcpv4.MessageTypeDiscover))),
			want: want{reason: ReasonNotRequest}},
		{name: "empty chaddr", mt: dhcpv4.MessageTypeDiscover, mods: append(firmware(7), dhcpv4.WithHwAddr(net.HardwareAddr{})),
			want: want{reason: ReasonNoMAC}},
		{name: "policy ignores the machine", mt: dhcpv4.MessageTypeDiscover, mods: firmware(7), policy: ignoreUnknown,
			want: want{reason: ReasonPolicy}},
		{name: "policy ignores iPXE too", mt: dhcpv4.MessageTypeDiscover, mods: ipxeClient(7), policy: ignoreUnknown,
			want: want{reason: ReasonPolicy}},
		{name: "policy fails", mt: dhcpv4.MessageTypeDiscover, mods: firmware(7), policy: broken,
			want: want{reason: ReasonPolicyError, err: true}},
		{name: "no server address on the interface", mt: dhcpv4.MessageTypeDiscover, mods: firmware(7), server: net.IPv4zero,
			want: want{reason: ReasonNoAddress, err: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := packet(t, tt.mt, tt.mods...)
			cfg := tt.cfg
			if !cfg.Advertise.IsValid() {
				cfg = testConfig(false)
			}
			server := testServer
			if tt.server != nil {
				server = tt.server
			}
			d := Decide(t.Context(), Request{Packet: req, ServerIP: server, PXEPort: tt.pxePort}, cfg, tt.policy)
			if got := d.Err != nil; got != tt.want.err {
				t.Fatalf("got error %v, want error %v", d.Err, tt.want.err)
			}
			if d.Reason != tt.want.reason {
				t.Fatalf("got reason %q (%s), want %q", d.Reason, d.Detail, tt.want.reason)
			}
			if tt.want.reason != "" {
				if d.Reply != nil {
					t.Fatalf("got a reply with reason %q:\n%s", d.Reason, d.Reply.Summary())
				}
				if d.Err == nil && d.Detail == "" && tt.want.reason != ReasonNotPXE {
					t.Errorf("got no detail for reason %q", d.Reason)
				}
				return
			}
			r := d.Reply
			if r == nil {
				t.Fatal("got no reply, want one")
			}
			checkReply(t, req, r, server)
			if got := r.MessageType(); got != tt.want.typ {
				t.Errorf("got message type %s, want %s", got, tt.want.typ)
			}
			if r.BootFileName != tt.want.file || d.File != tt.want.file {
				t.Errorf("got file %q (decision %q), want %q", r.BootFileName, d.File, tt.want.file)
			}
			if got := r.ClassIdentifier(); got != tt.want.vendor {
				t.Errorf("got option 60 %q, want %q", got, tt.want.vendor)
			}
			if got := r.Options.Get(dhcpv4.OptionVendorSpecificInformation); tt.want.opt43 != (got != nil) || (got != nil && !bytes.Equal(got, []byte{6, 1, 8, 0xff})) {
				t.Errorf("got option 43 % x, want present=%v (06 01 08 ff)", got, tt.want.opt43)
			}
			if class := d.Client.Firmware.Label(d.Client.HTTPBoot); class != tt.want.class || d.Client.UUID != tt.want.uuid || d.Client.IPXE != tt.want.ipxe {
				t.Errorf("got client class %q uuid %q ipxe %v, want %q %q %v", class, d.Client.UUID, d.Client.IPXE, tt.want.class, tt.want.uuid, tt.want.ipxe)
			}
			if !r.GatewayIPAddr.Equal(req.GatewayIPAddr) {
				t.Errorf("got giaddr %v, want the request's %v", r.GatewayIPAddr, req.GatewayIPAddr)
			}
			if got, want := r.Options.Get(dhcpv4.OptionRelayAgentInformation), req.Options.Get(dhcpv4.OptionRelayAgentInformation); !bytes.Equal(got, want) {
				t.Errorf("got option 82 % x, want % x", got, want)
			}
			wantCiaddr := net.IPv4zero
			if tt.want.typ == dhcpv4.MessageTypeAck {
				wantCiaddr = req.ClientIPAddr
			}
			if !r.ClientIPAddr.Equal(wantCiaddr) {
				t.Errorf("got ciaddr %v, want %v", r.ClientIPAddr, wantCiaddr)
			}
		})
	}
}

// checkReply asserts what every proxy reply must carry (docs/protocol.md,
// "What a reply carries").
func checkReply(t testing.TB, req, r *dhcpv4.DHCPv4, server net.IP) {
	t.Helper()
	if r.OpCode != dhcpv4.OpcodeBootReply {
		t.Errorf("got op %v, want BootReply", r.OpCode)
	}
	if r.TransactionID != req.TransactionID || !bytes.Equal(r.ClientHWAddr, req.ClientHWAddr) {
		t.Errorf("got xid %s chaddr %s, want %s %s", r.TransactionID, r.ClientHWAddr, req.TransactionID, req.ClientHWAddr)
	}
	if !r.YourIPAddr.IsUnspecified() {
		t.Errorf("got yiaddr %v, want 0.0.0.0", r.YourIPAddr)
	}
	if !r.ServerIPAddr.Equal(server) {
		t.Errorf("got siaddr %v, want %v", r.ServerIPAddr, server)
	}
	if !r.Options.Has(dhcpv4.OptionDHCPMessageType) {
		t.Error("got no option 53")
	}
	if got := r.ServerIdentifier(); !got.Equal(server) {
		t.Errorf("got option 54 %v, want %v", got, server)
	}
	if r.ClassIdentifier() == "" {
		t.Error("got no option 60")
	}
	// The name in the NUL-padded file field only: option 67 is read past
	// its end by some ROMs (bootFileOption).
	if opt := r.Options.Get(dhcpv4.OptionBootfileName); opt != nil || r.BootFileName == "" {
		t.Errorf("got option 67 %q, header file %q; want the file field alone", opt, r.BootFileName)
	}
	if guid := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); guid != nil {
		if got := r.Options.Get(dhcpv4.OptionClientMachineIdentifier); !bytes.Equal(got, guid) {
			t.Errorf("got option 97 % x, want the request's % x", got, guid)
		}
	}
}

// TestDecideEveryArch runs firmware of every architecture value IANA has
// assigned (and one past it) through Decide.
func TestDecideEveryArch(t *testing.T) {
	answered := map[uint16]string{
		0: "undionly.kpxe", 7: "snponly.efi", 9: "snponly.efi", 11: "ipxe-arm64.efi",
		16: "http://192.0.2.10:8080/boot/snponly.efi", 17: "http://192.0.2.10:8080/boot/snponly.efi",
		19: "http://192.0.2.10:8080/boot/ipxe-arm64.efi",
		// U-Boot: its UEFI loader runs the arm64 UEFI build.
		22: "ipxe-arm64.efi", 24: "http://192.0.2.10:8080/boot/ipxe-arm64.efi",
	}
	for a := uint16(0); a <= uint16(iana.EFI_SUNWAY64)+1; a++ {
		t.Run(iana.Arch(a).String(), func(t *testing.T) {
			req := packet(t, dhcpv4.MessageTypeDiscover, firmware(a)...)
			d := Decide(t.Context(), Request{Packet: req, ServerIP: testServer}, testConfig(true), nil)
			want, ok := answered[a]
			if !ok {
				if d.Reply != nil || d.Reason != ReasonNoBinary {
					t.Errorf("got file %q reason %q, want no reply for %s (no_binary)", d.File, d.Reason, iana.Arch(a))
				}
				return
			}
			if d.Reply == nil {
				t.Fatalf("got no reply (%s: %s), want %q", d.Reason, d.Detail, want)
			}
			checkReply(t, req, d.Reply, testServer)
			if d.File != want {
				t.Errorf("got %q, want %q", d.File, want)
			}
		})
	}
}

func TestMachineUUID(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		want string
	}{
		{"SMBIOS bytes", testGUID, testUUID},
		{"missing", nil, ""},
		{"no type byte", testGUID[1:], ""},
		{"type 1", append([]byte{1}, testGUID[1:]...), ""},
		{"too long", append(append([]byte{}, testGUID...), 0), ""},
		{"SMBIOS \"not present\": all 00h", make([]byte, 17), ""},
		{"SMBIOS \"not set\": all FFh", append([]byte{0}, bytes.Repeat([]byte{0xff}, 16)...), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := machineUUID(tt.raw); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReplyAddr(t *testing.T) {
	tests := []struct {
		name string
		mods []dhcpv4.Modifier
		peer netip.AddrPort
		want string
	}{
		{"broadcast from a client with no address", nil, netip.MustParseAddrPort("0.0.0.0:68"), "255.255.255.255:68"},
		{"client without peer port", nil, netip.MustParseAddrPort("0.0.0.0:0"), "255.255.255.255:68"},
		{"EDK2 on port 4011 with an address", nil, netip.MustParseAddrPort("192.0.2.50:4011"), "192.0.2.50:4011"},
		{"relayed", []dhcpv4.Modifier{dhcpv4.WithGatewayIP(net.IPv4(10, 9, 8, 1))}, netip.MustParseAddrPort("10.9.8.1:67"), "10.9.8.1:67"},
		{"IPv4-mapped client address", nil, netip.MustParseAddrPort("[::ffff:192.0.2.51]:68"), "192.0.2.51:68"},
		{"relayed, relay sends from another address", []dhcpv4.Modifier{dhcpv4.WithGatewayIP(net.IPv4(10, 9, 8, 1))}, netip.MustParseAddrPort("10.0.0.1:67"), "10.9.8.1:67"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := packet(t, dhcpv4.MessageTypeDiscover, tt.mods...)
			if got := replyAddr(p, tt.peer).String(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestDecideEFIx64Build: ipxe.efiX64 chooses what x86-64 UEFI firmware is
// handed, over TFTP and over HTTP boot alike; other firmware is unaffected.
func TestDecideEFIx64Build(t *testing.T) {
	for _, tc := range []struct {
		build string
		arch  uint16
		want  string
	}{
		{"", 7, "snponly.efi"},
		{"snponly.efi", 9, "snponly.efi"},
		{"ipxe.efi", 7, "ipxe.efi"},
		{"ipxe.efi", 9, "ipxe.efi"},
		{"ipxe.efi", 16, "http://192.0.2.10:8080/boot/ipxe.efi"},
		{"snponly.efi", 16, "http://192.0.2.10:8080/boot/snponly.efi"},
		{"ipxe.efi", 0, "undionly.kpxe"},
		{"ipxe.efi", 11, "ipxe-arm64.efi"},
	} {
		cfg := testConfig(true)
		cfg.EFIx64 = tc.build
		req := packet(t, dhcpv4.MessageTypeDiscover, firmware(tc.arch)...)
		d := Decide(t.Context(), Request{Packet: req, ServerIP: testServer}, cfg, nil)
		if d.Reply == nil || d.File != tc.want {
			t.Errorf("efiX64 %q, arch %d: got file %q (%s), want %q", tc.build, tc.arch, d.File, d.Reason, tc.want)
		}
	}
}

// TestBootFileField: every boot file name the proxy can hand out goes in
// the file field alone, NUL-padded on the wire, with no option 67 for a ROM
// to read past; a name too long for the field (127 bytes and more; only a
// long HTTP boot URL could be) goes in option 67 with a NUL, RFC 2132 §2.
func TestBootFileField(t *testing.T) {
	for _, arch := range []uint16{0, 7, 9, 11, 16, 17, 19} {
		for _, ipxeClient := range []bool{false, true} {
			mods := firmware(arch)
			if ipxeClient {
				mods = append(mods, dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")))
			}
			req := packet(t, dhcpv4.MessageTypeDiscover, mods...)
			d := Decide(t.Context(), Request{Packet: req, ServerIP: testServer}, testConfig(true), nil)
			if d.Reply == nil {
				t.Fatalf("arch %d ipxe %v: no reply (%s)", arch, ipxeClient, d.Reason)
			}
			wire := d.Reply.ToBytes()
			// The file field: bytes 108..235 of the BOOTP header.
			field := wire[108:236]
			name, pad, _ := bytes.Cut(field, []byte{0})
			if string(name) != d.File || len(bytes.Trim(pad, "\x00")) != 0 {
				t.Errorf("arch %d ipxe %v: file field %q, want %q and NULs", arch, ipxeClient, field, d.File)
			}
			back, err := dhcpv4.FromBytes(wire)
			if err != nil {
				t.Fatal(err)
			}
			if opt := back.Options.Get(dhcpv4.OptionBootfileName); opt != nil {
				t.Errorf("arch %d ipxe %v: option 67 %q on the wire, want none", arch, ipxeClient, opt)
			}
		}
	}
	for _, n := range []int{126, 127, 128, 200} {
		name := "http://192.0.2.10:8080/" + strings.Repeat("x", n-len("http://192.0.2.10:8080/"))
		opt, ok := bootFileOption(name)
		switch {
		case n < 128 && ok:
			t.Errorf("%d bytes: got option 67, want the file field", n)
		case n >= 128 && (!ok || string(opt.Value.ToBytes()) != name+"\x00"):
			t.Errorf("%d bytes: got %v %q, want option 67 with a NUL", n, ok, opt.Value.ToBytes())
		}
	}
}

// TestDecideURLsNameTheReceivingInterface checks where the URLs in a reply
// point (issue 18, "one server, two LANs"): with advertise not pinned
// (Config.Advertise zero), at the address of the interface the request came
// in on, so a client on a second LAN is not sent to the first; with
// advertise pinned, at advertise whatever the interface.
func TestDecideURLsNameTheReceivingInterface(t *testing.T) {
	pinned := netip.MustParseAddr("192.0.2.10")
	clients := []struct {
		name, path string
		mods       []dhcpv4.Modifier
	}{
		{"iPXE", "/boot.ipxe", ipxeClient(7)},
		{"iPXE on BIOS", "/boot.ipxe", ipxeClient(0)},
		{"x86-64 UEFI HTTP boot", "/boot/snponly.efi", firmware(16)},
		{"arm64 UEFI HTTP boot", "/boot/ipxe-arm64.efi", firmware(19)},
	}
	for _, server := range []net.IP{net.IPv4(10, 98, 1, 1).To4(), net.IPv4(10, 98, 2, 1).To4()} {
		for _, c := range clients {
			for _, advertise := range []netip.Addr{{}, pinned} {
				want := "http://" + server.String() + ":8080" + c.path
				name := c.name + " on " + server.String() + ", not pinned"
				if advertise.IsValid() {
					want = "http://192.0.2.10:8080" + c.path
					name = c.name + " on " + server.String() + ", pinned"
				}
				t.Run(name, func(t *testing.T) {
					cfg := Config{Advertise: advertise, HTTPPort: 8080, Arm64: true}
					req := packet(t, dhcpv4.MessageTypeDiscover, c.mods...)
					d := Decide(t.Context(), Request{Packet: req, ServerIP: server}, cfg, nil)
					if d.Reply == nil {
						t.Fatalf("got no reply (%s: %s)", d.Reason, d.Detail)
					}
					if d.File != want || d.Reply.BootFileName != want {
						t.Errorf("got file %q (field %q), want %q", d.File, d.Reply.BootFileName, want)
					}
					if !d.Reply.ServerIPAddr.Equal(server) || !d.Reply.ServerIdentifier().Equal(server) {
						t.Errorf("got siaddr %s, option 54 %s, want %s for both", d.Reply.ServerIPAddr, d.Reply.ServerIdentifier(), server)
					}
				})
			}
		}
	}
}
