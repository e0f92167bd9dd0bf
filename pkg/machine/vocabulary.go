package machine

import (
	"fmt"
	"time"
)

// Arch is a Talos architecture: the CPU architecture of the Image
// Factory's kernel-ARCH and initramfs-ARCH.xz assets. The zero value is
// unknown ("").
type Arch string

// The architectures Talos publishes images for.
const (
	ArchAMD64 Arch = "amd64"
	ArchARM64 Arch = "arm64"
)

// ParseArch reads a Talos architecture name as profiles write it.
func ParseArch(s string) (Arch, error) {
	switch a := Arch(s); a {
	case ArchAMD64, ArchARM64:
		return a, nil
	}
	return "", fmt.Errorf("arch %q is not amd64 or arm64", s)
}

// ArchFromIPXE maps iPXE's ${buildarch} to a Talos arch; ok is false for
// builds Talos has no image for. BIOS iPXE (undionly.kpxe) is a 32-bit
// build and says i386 on 64-bit machines, so i386 means amd64 (iPXE
// source: src/config/defaults/pcbios.h builds for i386).
func ArchFromIPXE(buildarch string) (Arch, bool) {
	switch buildarch {
	case "x86_64", "i386", "amd64":
		return ArchAMD64, true
	case "arm64", "aarch64":
		return ArchARM64, true
	}
	return "", false
}

// Firmware is the boot firmware a PXE client announces in DHCP option 93
// (RFC 4578 §2.1, with the IANA "Processor Architecture Types" registry).
// The proxyDHCP server maps the registry's codes to it; whether the client
// asked for UEFI HTTP boot is kept apart, since it changes the transport,
// not the binary.
type Firmware uint8

// The firmware classes tinderbox tells apart. FirmwareOther is every code
// it has no iPXE binary for.
const (
	FirmwareOther      Firmware = iota
	FirmwareBIOS                // x86 BIOS PXE ROM (code 0)
	FirmwareEFIIA32             // 32-bit x86 UEFI (codes 6, 15)
	FirmwareEFIX64              // x86-64 UEFI (codes 7, 9, 16, 17)
	FirmwareEFIARM32            // 32-bit ARM UEFI (codes 10, 18)
	FirmwareEFIARM64            // arm64 UEFI (codes 11, 19)
	FirmwareUBootARM32          // 32-bit ARM U-Boot (codes 21, 23)
	FirmwareUBootARM64          // arm64 U-Boot (codes 22, 24)
)

var firmwareNames = [...]string{"other", "bios", "efi-ia32", "efi-x64", "efi-arm32", "efi-arm64", "uboot-arm32", "uboot-arm64"}

// String names the firmware as metrics and logs label it: bios, efi-ia32,
// efi-x64, efi-arm32, efi-arm64, uboot-arm32, uboot-arm64 or other.
func (f Firmware) String() string {
	if int(f) < len(firmwareNames) {
		return firmwareNames[f]
	}
	return "other"
}

// Label is the metric label of a client with this firmware: String, with
// "-http" appended for UEFI HTTP boot (efi-x64-http); "other" stays other.
func (f Firmware) Label(httpBoot bool) string {
	if f == FirmwareOther || !httpBoot {
		return f.String()
	}
	return f.String() + "-http"
}

// Arch is the Talos architecture the firmware runs, "" for firmware Talos
// has no image for (32-bit x86 and ARM, unknown codes).
func (f Firmware) Arch() Arch {
	switch f {
	case FirmwareBIOS, FirmwareEFIX64:
		return ArchAMD64
	case FirmwareEFIARM64, FirmwareUBootARM64:
		return ArchARM64
	}
	return ""
}

// Install is a profile's install mode: how often the machine netboots the
// Talos installer.
type Install string

// The install modes a profile's `install` key takes.
const (
	// InstallOnce netboots the installer until Talos is installed, then
	// boots the disk until the machine is re-armed.
	InstallOnce Install = "once"
	// InstallAlways netboots Talos on every boot (diskless machines).
	InstallAlways Install = "always"
	// InstallNever never netboots: the machine is told to boot its disk.
	InstallNever Install = "never"
)

// ParseInstall reads a profile's install mode. "" is an error: a profile
// that leaves the key out gets once from its layering, not from here.
func ParseInstall(s string) (Install, error) {
	switch i := Install(s); i {
	case InstallOnce, InstallAlways, InstallNever:
		return i, nil
	}
	return "", fmt.Errorf("install %q is not once, always or never", s)
}

// Unknown is the policy for machines with no profile, the defaults' key
// `unknown`.
type Unknown string

// The policies for machines with no profile.
const (
	// UnknownMaintenance boots Talos in maintenance mode, where it waits
	// for a config (`talosctl apply-config --insecure`).
	UnknownMaintenance Unknown = "maintenance"
	// UnknownLocal tells the machine to boot its disk.
	UnknownLocal Unknown = "local"
	// UnknownIgnore sends nothing at all: no DHCP reply, no script.
	UnknownIgnore Unknown = "ignore"
)

// ParseUnknown reads the defaults' unknown policy. "" is an error: a
// defaults file that leaves the key out gets maintenance from the profile
// set, not from here.
func ParseUnknown(s string) (Unknown, error) {
	switch u := Unknown(s); u {
	case UnknownMaintenance, UnknownLocal, UnknownIgnore:
		return u, nil
	}
	return "", fmt.Errorf("unknown %q is not maintenance, local or ignore", s)
}

// State is where a machine stands in its boot and install cycle.
type State string

// The states a machine record is in.
const (
	// Discovered: the machine PXE-booted but has no profile.
	Discovered State = "discovered"
	// Pending: install: once, waiting to netboot the installer.
	Pending State = "pending"
	// Installing: its machine config was served, or Talos reported its
	// install sequence started.
	Installing State = "installing"
	// Failed: Talos reported a sequence that stopped with an error, or
	// stayed in maintenance mode, or the machine network-booted again
	// before Talos reported its install done. Its next network boot
	// netboots again with its config.
	Failed State = "failed"
	// Installed: Talos reported its install done, or (for a machine that
	// reports nothing) it network-booted again after its config was
	// served; it is told to boot its disk until re-armed.
	Installed State = "installed"
	// Ready: installed, and Talos reported itself running and ready.
	Ready State = "ready"
	// Netboot: install: always; it netboots Talos on every boot.
	Netboot State = "netboot"
	// Local: install: never; it is told to boot its disk.
	Local State = "local"
)

// States lists every state, in cycle order.
var States = []State{Discovered, Pending, Installing, Failed, Installed, Ready, Netboot, Local}

// EventKind names a boot step or an operator action in a machine's log.
type EventKind string

// The events recorded per machine.
const (
	EventDHCPOffer  EventKind = "dhcp_offer"    // proxy offer or ack sent
	EventTFTP       EventKind = "tftp"          // iPXE binary sent over TFTP
	EventScript     EventKind = "script"        // iPXE script served
	EventKernel     EventKind = "kernel"        // Talos kernel sent whole
	EventInitramfs  EventKind = "initramfs"     // Talos initramfs sent whole
	EventAsset      EventKind = "asset"         // another asset sent whole
	EventConfig     EventKind = "config"        // machine config served
	EventLocalBoot  EventKind = "local_boot"    // told to boot the local disk
	EventReinstall  EventKind = "reinstall"     // re-armed by the operator
	EventTransition EventKind = "transition"    // state changed
	EventDenied     EventKind = "config_denied" // config refused (the reason is the detail)
	EventRefused    EventKind = "refused"       // a script or an asset refused or failed (the reason is the detail)
	EventTalos      EventKind = "talos"         // Talos reported a sequence or a status
)

// Event is one timestamped entry of a machine's log: one occurrence, or
// a run of identical ones folded together (Coalesce).
type Event struct {
	// Time is when it happened; for a run, its latest occurrence.
	Time   time.Time `json:"time"`
	Kind   EventKind `json:"kind"`
	Detail string    `json:"detail,omitempty"`
	Bytes  int64     `json:"bytes,omitempty"`
	// Count is how many times it happened in a row: 0 (absent in JSON)
	// and 1 both mean once (Times).
	Count int `json:"count,omitempty"`
	// Since is the time of the first occurrence of a run; zero (absent
	// in JSON) for a single occurrence (First).
	Since time.Time `json:"since,omitzero"`
}

// Times is how many occurrences e stands for: Count, at least 1.
func (e Event) Times() int { return max(e.Count, 1) }

// First is the time of e's first occurrence: Since, or Time when e is
// a single occurrence.
func (e Event) First() time.Time {
	if e.Since.IsZero() {
		return e.Time
	}
	return e.Since
}

// Repeats reports whether events of kind k fold into a run when they
// repeat (Coalesce): the boot-path steps, which a machine in a boot loop
// or a client retrying a request repeats hundreds of times, and the
// refusals. Transitions, reinstalls and Talos' reports never fold: each
// is history of its own.
func (k EventKind) Repeats() bool {
	switch k {
	case EventDHCPOffer, EventTFTP, EventScript, EventKernel, EventInitramfs, EventAsset,
		EventConfig, EventLocalBoot, EventDenied, EventRefused:
		return true
	}
	return false
}

// Coalesce folds next, an event to append to a log, into last, the log's
// newest event, as syslog's "last message repeated N times" does: ok is
// true when both are of a kind that Repeats, with the same Kind, Detail
// and Bytes, and next (its first occurrence) is not older than last.
// Then merged is the run of both: Count the sum of their Times, Since
// last's First, Time next's Time. Otherwise merged is the zero Event and
// next is to be appended as it is. Every event log of a machine is
// appended to through this rule (AppendEvent), so a machine repeating one
// step keeps one entry for the run, not one per repeat pushing its
// earlier history out of the bounded log.
func Coalesce(last, next Event) (merged Event, ok bool) {
	if !last.Kind.Repeats() || last.Kind != next.Kind || last.Detail != next.Detail || last.Bytes != next.Bytes ||
		next.First().Before(last.Time) {
		return Event{}, false
	}
	merged = next
	merged.Count = last.Times() + next.Times()
	merged.Since = last.First()
	return merged, true
}

// AppendEvent appends e to log, folded into log's newest event when
// Coalesce allows, and returns the log.
func AppendEvent(log []Event, e Event) []Event {
	if n := len(log); n > 0 {
		if merged, ok := Coalesce(log[n-1], e); ok {
			log[n-1] = merged
			return log
		}
	}
	return append(log, e)
}

// CoalesceLog folds every run of events in log that Coalesce allows, in
// place, and returns the shortened log.
func CoalesceLog(log []Event) []Event {
	out := log[:0]
	for _, e := range log {
		out = AppendEvent(out, e)
	}
	return out
}

// Stage is one step of a network boot, in boot order, as the web UI's
// timeline shows it.
type Stage int

// The stages of a network boot. StageNone marks events that are not boot
// steps (reinstall, refusals, transitions).
const (
	StageNone Stage = iota - 1
	StageDHCP
	StageTFTP
	StageScript
	StageKernel
	StageInitramfs
	StageConfig
	StageLocalBoot
)

// Stages lists every stage, in boot order.
var Stages = []Stage{StageDHCP, StageTFTP, StageScript, StageKernel, StageInitramfs, StageConfig, StageLocalBoot}

var stageNames = [...]string{"DHCP offer", "TFTP", "Script", "Kernel", "Initramfs", "Config", "Local boot"}

// String names the stage for people ("Kernel", "Local boot"); "" for
// StageNone.
func (s Stage) String() string {
	if s < 0 || int(s) >= len(stageNames) {
		return ""
	}
	return stageNames[s]
}

// Stage returns the boot stage an event of this kind marks, or StageNone.
func (k EventKind) Stage() Stage {
	switch k {
	case EventDHCPOffer:
		return StageDHCP
	case EventTFTP:
		return StageTFTP
	case EventScript:
		return StageScript
	case EventKernel:
		return StageKernel
	case EventInitramfs:
		return StageInitramfs
	case EventConfig:
		return StageConfig
	case EventLocalBoot:
		return StageLocalBoot
	}
	return StageNone
}
