// Package boot decides what a network-booting machine is told, and writes
// the iPXE scripts that tell it (docs/api.md, "GET /ipxe"): the generic
// /boot.ipxe that finds the booting NIC, a netboot of Talos with its
// machine config, a maintenance-mode netboot for unknown machines, or a
// local-disk boot.
//
// Everything here is a pure function over values; the HTTP handlers that
// serve the scripts live with the boot flow.
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
	case machine.Pending, machine.Installing, machine.Netboot:
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
	fmt.Fprintf(&b, "chain %s/ipxe?mac=${${nic}/mac:hexhyp}&uuid=${uuid}&arch=${buildarch} || goto failed\n", baseURL)
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
		return fmt.Sprintf("#!ipxe\n# tinderbox: %s boots its local disk\necho tinderbox: booting the local disk\nsanboot --no-describe --drive 0x80 || exit\n", mac), false
	case LocalNotFound:
		return "tinderbox: " + mac.String() + " boots its local disk\n", true
	}
	return fmt.Sprintf("#!ipxe\n# tinderbox: %s boots its local disk\necho tinderbox: booting the local disk\nexit\n", mac), false
}

// NetbootParams describes a network boot of Talos.
type NetbootParams struct {
	// BaseURL is tinderbox's boot HTTP address as nodes reach it
	// (http://192.168.1.5:8080).
	BaseURL string
	// MAC, UUID and Hostname fill ${mac} (colon form), ${uuid} and
	// ${hostname} in kernel arguments.
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
}

// NetbootScript returns the iPXE script that boots Talos per p. It fails on a
// kernel argument iPXE would mangle: whitespace, or a ${…} placeholder
// tinderbox cannot fill.
func NetbootScript(p NetbootParams) (string, error) {
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

// KernelArgs returns the kernel command line of a netboot: the factory's
// cmdline, then the profile's arguments (an argument "-name" removes every
// earlier argument named name, with or without a value), then talos.config.
// ${mac}, ${uuid} and ${hostname} are filled in here, so iPXE, which would
// expand any ${…} itself, passes them on as written.
func KernelArgs(p NetbootParams) ([]string, error) {
	args := strings.Fields(p.Cmdline)
	for _, a := range p.KernelArgs {
		if name, ok := strings.CutPrefix(a, "-"); ok && name != "" {
			args = slices.DeleteFunc(args, func(x string) bool { return argName(x) == name })
			continue
		}
		args = append(args, a)
	}
	if p.ConfigURL != "" {
		args = slices.DeleteFunc(args, func(x string) bool { return argName(x) == "talos.config" })
		args = append(args, "talos.config="+p.ConfigURL)
	}
	fill := strings.NewReplacer("${mac}", p.MAC.String(), "${uuid}", p.UUID, "${hostname}", p.Hostname)
	for i, a := range args {
		if strings.ContainsAny(a, " \t\r\n") || a == "" {
			return nil, fmt.Errorf("boot: kernel argument %q: empty or holds whitespace", a)
		}
		a = fill.Replace(a)
		if strings.Contains(a, "${") {
			return nil, fmt.Errorf("boot: kernel argument %q: only ${mac}, ${uuid} and ${hostname} can be filled in; iPXE would expand any other ${…}", args[i])
		}
		args[i] = a
	}
	return args, nil
}

// argName is a kernel argument's name: the part before "=".
func argName(arg string) string {
	name, _, _ := strings.Cut(arg, "=")
	return name
}
