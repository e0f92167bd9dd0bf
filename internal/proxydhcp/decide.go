package proxydhcp

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/tinderbox-boot/tinderbox/internal/ipxe"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Config is what the responder needs to know of tinderbox's configuration.
type Config struct {
	// Advertise, when valid, is the IPv4 address every HTTP URL in a reply
	// names (config key advertise, set explicitly). The zero Addr makes
	// each reply name the address of the interface its request came in on
	// (Request.ServerIP), so a client on any of the server's LANs is sent
	// to an address on its own LAN.
	Advertise netip.Addr
	// HTTPPort is the boot HTTP server's port.
	HTTPPort int
	// Arm64 says whether ipxe.dir holds ipxe.EFIArm64; without it arm64
	// firmware gets no reply.
	Arm64 bool
	// EFIx64 is the build x86-64 UEFI firmware is handed (config key
	// ipxe.efiX64: ipxe.SNPOnly or ipxe.EFIx64); "" means ipxe.SNPOnly.
	EFIx64 string
}

// ScriptURL is where iPXE fetches its boot script: iPXE's own DHCP is
// answered with it, which breaks the chain-load loop (docs/protocol.md,
// "iPXE"). server is tinderbox's address on the request's interface; it
// is named unless Advertise is set.
func (c Config) ScriptURL(server netip.Addr) string {
	return c.httpBase(server) + "/boot.ipxe"
}

// fileURL is where UEFI HTTP-boot firmware fetches an iPXE binary; the boot
// HTTP server serves ipxe.dir under /boot/.
func (c Config) fileURL(server netip.Addr, name string) string {
	return c.httpBase(server) + "/boot/" + name
}

// httpBase is http://HOST:PORT of the boot HTTP server, HOST being
// Advertise when set, else server.
func (c Config) httpBase(server netip.Addr) string {
	host := server
	if c.Advertise.IsValid() {
		host = c.Advertise
	}
	return "http://" + netip.AddrPortFrom(host, uint16(c.HTTPPort)).String()
}

// Client is what a request says about the machine that sent it.
type Client struct {
	// MAC is the client hardware address (chaddr). It is zero when chaddr
	// is not 6 bytes long (hlen other than Ethernet's, as InfiniBand's 20):
	// such a client is still answered, since the reply echoes chaddr byte
	// for byte, but it has no MAC to be known by.
	MAC machine.MAC
	// ClientArch is the client system architecture type as the request
	// gives it (RFC 4578 §2.1): option 93, else the "Arch:" field of option
	// 60, else x86 BIOS (the value RFC 4578 clients omit least).
	ClientArch iana.Arch
	// Firmware is ClientArch's firmware class; Firmware.Label(HTTPBoot)
	// is the client's metric and log label (bios, efi-x64-http, …, other).
	Firmware machine.Firmware
	// UUID is the machine's SMBIOS UUID from option 97, in the canonical
	// form of machine.UUID.String (as dmidecode and iPXE's ${uuid} print
	// it): 36 lower-case characters, or empty when option 97 is missing,
	// malformed or the SMBIOS "no UUID" value. Nothing else is ever stored
	// here.
	UUID string
	// IP is the client's address when the request carries one (ciaddr).
	IP net.IP
	// RequestedIP is option 50: the address a REQUEST asks the router to
	// confirm, which the client will use; nil when absent.
	RequestedIP net.IP
	// IPXE is true for iPXE's own DHCP (user class "iPXE" or option 175).
	IPXE bool
	// HTTPBoot is true for UEFI HTTP-boot firmware.
	HTTPBoot bool
	// Relay is the relay agent that forwarded the request (giaddr, RFC
	// 2131 §4.1); nil for a request heard on the local segment.
	Relay net.IP
}

// Verdict is a Policy's answer for one client.
type Verdict struct {
	// Answer says whether the client gets a boot offer at all.
	Answer bool
	// Reason says why not, for the log; empty when Answer is true.
	Reason string
}

// Policy decides whether a PXE client is answered. The machine-state layer
// implements it from the profiles' `unknown` policy (`unknown: ignore` means
// no reply at all). Implementations must be safe for concurrent use; an
// error means no reply, counted and logged as an error.
type Policy interface {
	Answer(ctx context.Context, c Client) (Verdict, error)
}

// AnswerAll is the Policy that answers every PXE client.
type AnswerAll struct{}

// Answer answers c.
func (AnswerAll) Answer(context.Context, Client) (Verdict, error) { return Verdict{Answer: true}, nil }

// Reason says why a packet got no reply; it is the metric label `reason`.
type Reason string

// The reasons a packet gets no reply.
const (
	// ReasonNotRequest: the packet is a BOOTREPLY, not a client's request.
	ReasonNotRequest Reason = "not_request"
	// ReasonMessageType: neither DISCOVER nor REQUEST.
	ReasonMessageType Reason = "message_type"
	// ReasonNotPXE: no "PXEClient"/"HTTPClient" vendor class and no iPXE
	// user class: plain DHCP for the router.
	ReasonNotPXE Reason = "not_pxe"
	// ReasonNoMAC: the request carries no hardware address.
	ReasonNoMAC Reason = "no_mac"
	// ReasonOtherServer: a REQUEST meant for another server (the router).
	ReasonOtherServer Reason = "other_server"
	// ReasonPolicy: the Policy said not to answer this machine.
	ReasonPolicy Reason = "policy"
	// ReasonNoBinary: no iPXE binary exists for the client's architecture.
	ReasonNoBinary Reason = "no_binary"

	// The reasons that come with an error (result "error").

	// ReasonNoAddress: tinderbox has no IPv4 address on the interface the
	// request came in on, so it cannot name itself in the reply.
	ReasonNoAddress Reason = "no_address"
	// ReasonPolicyError: the Policy failed.
	ReasonPolicyError Reason = "policy_error"
	// ReasonMalformed: the packet does not parse as DHCP.
	ReasonMalformed Reason = "malformed"
	// ReasonSend: the reply could not be sent.
	ReasonSend Reason = "send"
)

// Request is one received packet and what the server knows of its arrival.
type Request struct {
	Packet *dhcpv4.DHCPv4
	// ServerIP is tinderbox's address on the interface the packet came in on:
	// it goes into siaddr and option 54.
	ServerIP net.IP
	// PXEPort is true on the port-4011 listener, where firmware sends its
	// boot-server REQUEST without option 54.
	PXEPort bool
}

// Decision is what Decide made of a request.
type Decision struct {
	// Reply is the packet to send, nil when the request gets none.
	Reply *dhcpv4.DHCPv4
	// Client is what the request said; nil when the packet is not a PXE
	// client's DISCOVER or REQUEST (reasons not_request, message_type,
	// not_pxe, no_mac).
	Client *Client
	// File is the boot file handed out (header field and option 67).
	File string
	// Reason says why there is no reply.
	Reason Reason
	// Detail explains Reason or Err for the log.
	Detail string
	// Err is set when the request could not be answered for a fault of
	// tinderbox's (policy lookup failed, no server address).
	Err error
}

// Markers the protocol uses (PXE spec 2.1 §2.2; iPXE's DHCP options).
const (
	vendorPXE  = "PXEClient"
	vendorHTTP = "HTTPClient"
	// optionIPXEEncap is option 175, iPXE's encapsulated options; every iPXE
	// build sends it.
	optionIPXEEncap = dhcpv4.GenericOptionCode(175)
)

// discoveryControl is option 43 with PXE sub-option 6
// (PXE_DISCOVERY_CONTROL) = 0x08: "skip discovery, use the boot file in this
// offer", then End. BIOS PXE ROMs boot straight from it; some UEFI firmware
// ignores offers that carry it, so only BIOS clients get it, as pixiecore
// (danderson/netboot) does.
var discoveryControl = []byte{6, 1, 8, 0xff}

// Decide returns the reply req gets, or why it gets none. It consults
// policy (nil: answer every PXE client) and is otherwise a pure function of
// its arguments, safe for concurrent use.
func Decide(ctx context.Context, req Request, cfg Config, policy Policy) Decision {
	p := req.Packet
	if p.OpCode != dhcpv4.OpcodeBootRequest {
		return Decision{Reason: ReasonNotRequest, Detail: "not a BOOTREQUEST"}
	}
	mt := p.MessageType()
	if mt != dhcpv4.MessageTypeDiscover && mt != dhcpv4.MessageTypeRequest {
		return Decision{Reason: ReasonMessageType, Detail: "message type " + mt.String()}
	}
	vendor := p.ClassIdentifier()
	ipxeClient := isIPXE(p)
	httpBoot := strings.HasPrefix(vendor, vendorHTTP)
	if !ipxeClient && !httpBoot && !strings.HasPrefix(vendor, vendorPXE) {
		return Decision{Reason: ReasonNotPXE, Detail: fmt.Sprintf("vendor class %q", vendor)}
	}
	if len(p.ClientHWAddr) == 0 {
		return Decision{Reason: ReasonNoMAC, Detail: "empty chaddr"}
	}
	c := parseClient(p, vendor, ipxeClient, httpBoot)
	if mt == dhcpv4.MessageTypeRequest {
		// A REQUEST naming another server, or one without option 54 on port
		// 67, selects the router's lease: an ACK from us would be taken for
		// the lease's (with no address in it).
		sid := p.ServerIdentifier()
		if sid != nil && !sid.Equal(req.ServerIP) {
			return Decision{Client: &c, Reason: ReasonOtherServer, Detail: "REQUEST for server " + sid.String()}
		}
		if sid == nil && !req.PXEPort {
			return Decision{Client: &c, Reason: ReasonOtherServer, Detail: "REQUEST without server identifier on the DHCP port"}
		}
	}
	server := req.ServerIP.To4()
	if server == nil || server.IsUnspecified() {
		return Decision{Client: &c, Reason: ReasonNoAddress, Err: fmt.Errorf("proxydhcp: no IPv4 server address for the interface (got %v)", req.ServerIP)}
	}
	if policy == nil {
		policy = AnswerAll{}
	}
	v, err := policy.Answer(ctx, c)
	if err != nil {
		return Decision{Client: &c, Reason: ReasonPolicyError, Err: fmt.Errorf("proxydhcp: policy for %s: %w", p.ClientHWAddr, err)}
	}
	if !v.Answer {
		return Decision{Client: &c, Reason: ReasonPolicy, Detail: v.Reason}
	}
	addr, _ := netip.AddrFromSlice(server)
	file, detail := bootFile(c, cfg, addr)
	if file == "" {
		return Decision{Client: &c, Reason: ReasonNoBinary, Detail: detail}
	}
	return Decision{Client: &c, File: file, Reply: reply(p, mt, c, server, file)}
}

// isIPXE recognises iPXE's DHCP: user class (77) "iPXE", sent as raw bytes
// or RFC 3004-framed, or option 175 (iPXE's src/include/ipxe/dhcp.h; both
// seen in testdata/capture/seabios-ipxe.pcap).
func isIPXE(p *dhcpv4.DHCPv4) bool {
	return p.Options.Has(optionIPXEEncap) ||
		bytes.Contains(p.Options.Get(dhcpv4.OptionUserClassInformation), []byte("iPXE"))
}

func parseClient(p *dhcpv4.DHCPv4, vendor string, ipxeClient, httpBoot bool) Client {
	arch := clientArch(p, vendor)
	// A chaddr that is not an Ethernet address leaves MAC zero (see Client).
	mac, _ := machine.MACFromHardwareAddr(p.ClientHWAddr)
	c := Client{
		MAC:        mac,
		ClientArch: arch,
		Firmware:   firmwareOf(arch),
		UUID:       machineUUID(p.Options.Get(dhcpv4.OptionClientMachineIdentifier)),
		IPXE:       ipxeClient,
		HTTPBoot:   httpBoot || isHTTPArch(arch),
	}
	if ip := p.ClientIPAddr.To4(); ip != nil && !ip.IsUnspecified() {
		c.IP = ip
	}
	if ip := p.RequestedIPAddress().To4(); ip != nil && !ip.IsUnspecified() {
		c.RequestedIP = ip
	}
	if ip := p.GatewayIPAddr.To4(); ip != nil && !ip.IsUnspecified() {
		c.Relay = ip
	}
	return c
}

// clientArch reads option 93 (RFC 4578 §2.1), falling back to the
// "PXEClient:Arch:xxxxx" field of option 60 for ROMs that omit or garble 93,
// and to x86 BIOS when neither says.
func clientArch(p *dhcpv4.DHCPv4, vendor string) iana.Arch {
	if raw := p.Options.Get(dhcpv4.OptionClientSystemArchitectureType); len(raw) >= 2 && len(raw)%2 == 0 {
		return iana.Arch(uint16(raw[0])<<8 | uint16(raw[1]))
	}
	if _, rest, ok := strings.Cut(vendor, ":Arch:"); ok {
		digits, _, _ := strings.Cut(rest, ":")
		if n, err := strconv.ParseUint(digits, 10, 16); err == nil {
			return iana.Arch(n)
		}
	}
	return iana.INTEL_X86PC
}

// machineUUID reads option 97 (RFC 4578 §2.3: type 0, then 16 bytes) as the
// machine's SMBIOS UUID in canonical form; "" when the option is missing,
// malformed or holds the SMBIOS "no UUID" value (all 00h or all FFh).
//
// Byte order: every client sends the first three fields little-endian,
// the layout of SMBIOS 2.6+ storage and of an EFI GUID. Firmware PXE
// stacks send the bytes as stored; iPXE prints ${uuid} in the canonical
// (big-endian) order and swaps back to the little-endian layout before
// writing option 97 (its DHCP request builder, following the EFI
// reading of RFC 4578). tinderbox does the swap on its side, in
// machine.UUIDFromSMBIOS: the captures in testdata/capture (QEMU -uuid
// given, SeaBIOS with its iPXE ROM, OVMF's PXE and ipxe.efi) all decode to
// the -uuid QEMU was started with.
func machineUUID(raw []byte) string {
	if len(raw) != 17 || raw[0] != 0 {
		return ""
	}
	u, err := machine.UUIDFromSMBIOS(raw[1:])
	if err != nil {
		return ""
	}
	return u.String()
}

func isHTTPArch(a iana.Arch) bool {
	switch a {
	case iana.EFI_X86_HTTP, iana.EFI_X86_64_HTTP, iana.EFI_BC_HTTP, iana.EFI_ARM32_HTTP, iana.EFI_ARM64_HTTP,
		iana.UBOOT_ARM32_HTTP, iana.UBOOT_ARM64_HTTP:
		return true
	}
	return false
}

// firmwareOf maps an option-93 code (the IANA "Processor Architecture
// Types" registry, RFC 4578 §2.1) to its firmware class. The HTTP-boot
// codes (15 to 19) map to the class of their PXE counterpart: HTTP boot is
// Client.HTTPBoot. U-Boot's codes (21 to 24) have classes of their own.
func firmwareOf(a iana.Arch) machine.Firmware {
	switch a {
	case iana.INTEL_X86PC:
		return machine.FirmwareBIOS
	case iana.EFI_IA32, iana.EFI_X86_HTTP:
		return machine.FirmwareEFIIA32
	case iana.EFI_X86_64, iana.EFI_BC, iana.EFI_X86_64_HTTP, iana.EFI_BC_HTTP:
		return machine.FirmwareEFIX64
	case iana.EFI_ARM32, iana.EFI_ARM32_HTTP:
		return machine.FirmwareEFIARM32
	case iana.EFI_ARM64, iana.EFI_ARM64_HTTP:
		return machine.FirmwareEFIARM64
	case iana.UBOOT_ARM32, iana.UBOOT_ARM32_HTTP:
		return machine.FirmwareUBootARM32
	case iana.UBOOT_ARM64, iana.UBOOT_ARM64_HTTP:
		return machine.FirmwareUBootARM64
	}
	return machine.FirmwareOther
}

// bootFile picks what c is told to boot (docs/protocol.md, "Client
// architecture (option 93)"), or "" and why nothing fits; a URL names
// server unless cfg.Advertise is set.
func bootFile(c Client, cfg Config, server netip.Addr) (file, why string) {
	if c.IPXE {
		return cfg.ScriptURL(server), ""
	}
	switch c.Firmware {
	case machine.FirmwareBIOS:
		if c.HTTPBoot {
			return "", "no HTTP boot for BIOS firmware"
		}
		file = ipxe.BIOS
	case machine.FirmwareEFIX64:
		file = cmp.Or(cfg.EFIx64, ipxe.SNPOnly)
	case machine.FirmwareEFIARM64, machine.FirmwareUBootARM64:
		// U-Boot runs a fetched boot file through its own UEFI loader
		// (bootefi, as its distro boot does for network boot), so arm64
		// U-Boot gets the arm64 UEFI build, as siderolabs/booter does.
		if !cfg.Arm64 {
			return "", fmt.Sprintf("no %s in ipxe.dir for %s firmware", ipxe.EFIArm64, c.ClientArch)
		}
		file = ipxe.EFIArm64
	case machine.FirmwareEFIIA32:
		return "", "no 32-bit x86 UEFI iPXE binary is handed out"
	case machine.FirmwareEFIARM32, machine.FirmwareUBootARM32:
		// The arm64 build cannot run on 32-bit ARM firmware, and Talos has no
		// 32-bit ARM image: no reply beats a binary that fails to start.
		return "", "no 32-bit ARM UEFI iPXE binary is handed out"
	default:
		return "", fmt.Sprintf("no iPXE binary for architecture %d (%s)", uint16(c.ClientArch), c.ClientArch)
	}
	if c.HTTPBoot {
		return cfg.fileURL(server, file), ""
	}
	return file, ""
}

// fileFieldLen is the size of the BOOTP header's file field (RFC 951),
// which holds a name of up to 127 bytes and its NUL.
const fileFieldLen = 128

// bootFileOption returns option 67 for a boot file name that does not fit
// the file field, NUL-terminated; ok is false for the names that fit, which
// go in the file field alone. The file field is NUL-padded, so every ROM
// finds the name's end; option 67 is not, and ROMs that copy it as a C
// string read on into the End option or the next option (issue captures:
// TFTP asked for "ipxe.efi\xff", "undionly.kpxea\x11"). dnsmasq's proxy
// mode likewise sends the file field only. RFC 2132 §2 lets a sender add
// a trailing NUL that receivers must drop, so the long-name case is safe
// for both kinds of reader.
func bootFileOption(file string) (dhcpv4.Option, bool) {
	if len(file) < fileFieldLen {
		return dhcpv4.Option{}, false
	}
	return dhcpv4.OptGeneric(dhcpv4.OptionBootfileName, append([]byte(file), 0)), true
}

// reply builds the proxy OFFER or ACK: no yiaddr, options 53, 54, 60, 97
// echoed, the boot file in the header's file field, option 43 for BIOS PXE
// ROMs. Option 67 is left out unless the name does not fit the file field
// (bootFileOption).
func reply(p *dhcpv4.DHCPv4, mt dhcpv4.MessageType, c Client, server net.IP, file string) *dhcpv4.DHCPv4 {
	r := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        p.HWType,
		ClientHWAddr:  p.ClientHWAddr,
		TransactionID: p.TransactionID,
		Flags:         p.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  server,
		GatewayIPAddr: p.GatewayIPAddr,
		BootFileName:  file,
		Options:       make(dhcpv4.Options, 8),
	}
	if r.GatewayIPAddr == nil {
		r.GatewayIPAddr = net.IPv4zero
	}
	typ := dhcpv4.MessageTypeOffer
	if mt == dhcpv4.MessageTypeRequest {
		typ = dhcpv4.MessageTypeAck
		// RFC 2131 table 3: an ACK carries the REQUEST's ciaddr.
		if c.IP != nil {
			r.ClientIPAddr = c.IP
		}
	}
	vendor := vendorPXE
	if c.HTTPBoot {
		vendor = vendorHTTP
	}
	r.UpdateOption(dhcpv4.OptMessageType(typ))
	r.UpdateOption(dhcpv4.OptServerIdentifier(server))
	r.UpdateOption(dhcpv4.OptClassIdentifier(vendor))
	if opt, ok := bootFileOption(file); ok {
		r.BootFileName = ""
		r.UpdateOption(opt)
	}
	// Some ROMs send option 97 malformed: echo whatever came, never reject.
	if guid := p.Options.Get(dhcpv4.OptionClientMachineIdentifier); guid != nil {
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, guid))
	}
	// RFC 6842 (client identifier) and RFC 3046 (relay agent information):
	// copied back as the library's NewReplyFromRequest does.
	for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionClientIdentifier, dhcpv4.OptionRelayAgentInformation} {
		if v := p.Options.Get(code); v != nil {
			r.UpdateOption(dhcpv4.OptGeneric(code, v))
		}
	}
	if c.Firmware == machine.FirmwareBIOS && !c.HTTPBoot && !c.IPXE {
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, discoveryControl))
	}
	return r
}
