package machine

import (
	"encoding/json"
	"net"
	"slices"
	"testing"
	"time"
)

func TestParseMAC(t *testing.T) {
	want := MAC{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"colons", "52:54:00:ab:cd:ef", true},
		{"colons upper", "52:54:00:AB:CD:EF", true},
		{"dashes (iPXE hexhyp, profile file names)", "52-54-00-ab-cd-ef", true},
		{"bare hex", "525400abcdef", true},
		{"bare hex upper", "525400ABCDEF", true},
		{"cisco dotted", "5254.00ab.cdef", true},
		{"empty", "", false},
		{"too short", "52:54:00:ab:cd", false},
		{"eight bytes (EUI-64)", "52:54:00:ab:cd:ef:00:01", false},
		{"bare hex not hex", "525400abcdeg", false},
		{"bare hex too long", "525400abcdef0", false},
		{"path traversal", "../../etc/passwd", false},
		{"trailing newline", "52:54:00:ab:cd:ef\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMAC(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseMAC(%q) error = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if tc.ok && got != want {
				t.Fatalf("ParseMAC(%q) = %v, want %v", tc.in, got, want)
			}
		})
	}
}

func TestMACForms(t *testing.T) {
	m, err := ParseMAC("52-54-00-AB-CD-EF")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.String(), "52:54:00:ab:cd:ef"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := m.Dashed(), "52-54-00-ab-cd-ef"; got != want {
		t.Errorf("Dashed() = %q, want %q", got, want)
	}
	if m.IsZero() || !(MAC{}).IsZero() {
		t.Errorf("IsZero wrong for %v or the zero MAC", m)
	}
	hw := m.HardwareAddr()
	hw[0] = 0xff
	if m[0] != 0x52 {
		t.Errorf("HardwareAddr aliases the MAC")
	}
	if _, err := MACFromHardwareAddr(net.HardwareAddr{1, 2, 3}); err == nil {
		t.Errorf("MACFromHardwareAddr accepted 3 bytes")
	}
	b, err := json.Marshal(map[string]MAC{"mac": m})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"mac":"52:54:00:ab:cd:ef"}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
	var back map[string]MAC
	if err := json.Unmarshal([]byte(`{"mac":"525400ABCDEF"}`), &back); err != nil || back["mac"] != m {
		t.Errorf("JSON round trip = %v, %v; want %v", back, err, m)
	}
	if err := json.Unmarshal([]byte(`{"mac":"nope"}`), &back); err == nil {
		t.Errorf("JSON accepted a bad MAC")
	}
}

// FuzzParseMAC checks that every MAC that parses prints in canonical form
// and parses back to itself from both of its printed forms.
func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"52:54:00:ab:cd:ef", "52-54-00-AB-CD-EF", "525400abcdef", "5254.00ab.cdef", "", "zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMAC(s)
		if err != nil {
			return
		}
		for _, form := range []string{m.String(), m.Dashed()} {
			back, err := ParseMAC(form)
			if err != nil || back != m {
				t.Fatalf("ParseMAC(%q) = %v, %v; want %v (from %q)", form, back, err, m, s)
			}
		}
		if len(m.String()) != 17 {
			t.Fatalf("String() = %q, not 17 characters", m.String())
		}
	})
}

func TestArch(t *testing.T) {
	for _, tc := range []struct {
		buildarch string
		want      Arch
		ok        bool
	}{
		{"x86_64", ArchAMD64, true}, {"i386", ArchAMD64, true}, {"amd64", ArchAMD64, true},
		{"arm64", ArchARM64, true}, {"aarch64", ArchARM64, true},
		{"arm32", "", false}, {"", "", false}, {"riscv64", "", false},
	} {
		if got, ok := ArchFromIPXE(tc.buildarch); got != tc.want || ok != tc.ok {
			t.Errorf("ArchFromIPXE(%q) = %q, %v; want %q, %v", tc.buildarch, got, ok, tc.want, tc.ok)
		}
	}
	if _, err := ParseArch("x86_64"); err == nil {
		t.Errorf("ParseArch accepted an iPXE name")
	}
	if a, err := ParseArch("arm64"); err != nil || a != ArchARM64 {
		t.Errorf("ParseArch(arm64) = %q, %v", a, err)
	}
}

func TestFirmware(t *testing.T) {
	for _, tc := range []struct {
		fw    Firmware
		http  bool
		label string
		arch  Arch
	}{
		{FirmwareBIOS, false, "bios", ArchAMD64},
		{FirmwareEFIX64, false, "efi-x64", ArchAMD64},
		{FirmwareEFIX64, true, "efi-x64-http", ArchAMD64},
		{FirmwareEFIARM64, true, "efi-arm64-http", ArchARM64},
		{FirmwareEFIIA32, false, "efi-ia32", ""},
		{FirmwareEFIARM32, true, "efi-arm32-http", ""},
		{FirmwareOther, true, "other", ""},
		{Firmware(200), false, "other", ""},
	} {
		if got := tc.fw.Label(tc.http); got != tc.label {
			t.Errorf("%d.Label(%v) = %q, want %q", tc.fw, tc.http, got, tc.label)
		}
		if got := tc.fw.Arch(); got != tc.arch {
			t.Errorf("%v.Arch() = %q, want %q", tc.fw, got, tc.arch)
		}
	}
}

func TestParsePolicies(t *testing.T) {
	if i, err := ParseInstall(""); err == nil {
		t.Errorf("ParseInstall(\"\") = %q, want an error", i)
	}
	if i, err := ParseInstall("never"); err != nil || i != InstallNever {
		t.Errorf("ParseInstall(never) = %q, %v", i, err)
	}
	if _, err := ParseInstall("sometimes"); err == nil {
		t.Errorf("ParseInstall accepted sometimes")
	}
	if u, err := ParseUnknown(""); err == nil {
		t.Errorf("ParseUnknown(\"\") = %q, want an error", u)
	}
	if u, err := ParseUnknown("ignore"); err != nil || u != UnknownIgnore {
		t.Errorf("ParseUnknown(ignore) = %q, %v", u, err)
	}
	if _, err := ParseUnknown("drop"); err == nil {
		t.Errorf("ParseUnknown accepted drop")
	}
}

func TestStages(t *testing.T) {
	want := map[EventKind]Stage{
		EventDHCPOffer: StageDHCP, EventTFTP: StageTFTP, EventScript: StageScript,
		EventKernel: StageKernel, EventInitramfs: StageInitramfs, EventConfig: StageConfig,
		EventLocalBoot: StageLocalBoot, EventAsset: StageNone, EventReinstall: StageNone,
		EventDenied: StageNone, EventTransition: StageNone,
	}
	for k, s := range want {
		if got := k.Stage(); got != s {
			t.Errorf("%s.Stage() = %v, want %v", k, got, s)
		}
	}
	if len(Stages) != len(stageNames) {
		t.Fatalf("%d stages, %d names", len(Stages), len(stageNames))
	}
	for i, s := range Stages {
		if int(s) != i || s.String() == "" {
			t.Errorf("Stages[%d] = %d %q", i, s, s)
		}
	}
	if StageNone.String() != "" {
		t.Errorf("StageNone.String() = %q", StageNone.String())
	}
}

func TestCoalesce(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 12, 1, 5, 0, s, 0, time.UTC) }
	ev := func(k EventKind, s int) Event { return Event{Time: at(s), Kind: k, Detail: "d", Bytes: 7} }
	run := func(k EventKind, since, s, n int) Event {
		e := ev(k, s)
		e.Since, e.Count = at(since), n
		return e
	}
	tests := []struct {
		name       string
		last, next Event
		want       Event
		ok         bool
	}{
		{name: "script repeated", last: ev(EventScript, 1), next: ev(EventScript, 2), want: run(EventScript, 1, 2, 2), ok: true},
		{name: "at the same time", last: ev(EventTFTP, 1), next: ev(EventTFTP, 1), want: run(EventTFTP, 1, 1, 2), ok: true},
		{name: "a run grows", last: run(EventConfig, 1, 5, 9), next: ev(EventConfig, 6), want: run(EventConfig, 1, 6, 10), ok: true},
		{name: "two runs", last: run(EventRefused, 1, 5, 3), next: run(EventRefused, 6, 8, 4), want: run(EventRefused, 1, 8, 7), ok: true},
		{name: "different kind", last: ev(EventKernel, 1), next: ev(EventInitramfs, 2)},
		{name: "different detail", last: ev(EventAsset, 1), next: Event{Time: at(2), Kind: EventAsset, Detail: "e", Bytes: 7}},
		{name: "different bytes", last: ev(EventAsset, 1), next: Event{Time: at(2), Kind: EventAsset, Detail: "d", Bytes: 8}},
		{name: "older", last: ev(EventScript, 2), next: ev(EventScript, 1)},
		{name: "a run that began before the last", last: ev(EventScript, 3), next: run(EventScript, 2, 4, 2)},
		{name: "transition", last: ev(EventTransition, 1), next: ev(EventTransition, 2)},
		{name: "reinstall", last: ev(EventReinstall, 1), next: ev(EventReinstall, 2)},
		{name: "talos", last: ev(EventTalos, 1), next: ev(EventTalos, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Coalesce(tt.last, tt.next)
			if ok != tt.ok || got != tt.want {
				t.Errorf("got %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	for _, k := range []EventKind{EventDHCPOffer, EventTFTP, EventScript, EventKernel, EventInitramfs, EventAsset, EventConfig, EventLocalBoot, EventDenied, EventRefused} {
		if !k.Repeats() {
			t.Errorf("%s: Repeats false, want true", k)
		}
	}
}

func TestCoalesceLog(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 12, 1, 5, 0, s, 0, time.UTC) }
	log := []Event{
		{Time: at(1), Kind: EventDHCPOffer, Detail: "offer"},
		{Time: at(2), Kind: EventScript, Detail: "netboot"},
		{Time: at(3), Kind: EventScript, Detail: "netboot"},
		{Time: at(4), Kind: EventScript, Detail: "netboot"},
		{Time: at(5), Kind: EventTransition, Detail: "a → b"},
		{Time: at(6), Kind: EventTransition, Detail: "a → b"},
		{Time: at(7), Kind: EventScript, Detail: "netboot"},
	}
	got := CoalesceLog(log)
	want := []Event{
		{Time: at(1), Kind: EventDHCPOffer, Detail: "offer"},
		{Time: at(4), Kind: EventScript, Detail: "netboot", Count: 3, Since: at(2)},
		{Time: at(5), Kind: EventTransition, Detail: "a → b"},
		{Time: at(6), Kind: EventTransition, Detail: "a → b"},
		{Time: at(7), Kind: EventScript, Detail: "netboot"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if n := got[1].Times() + got[4].Times(); n != 4 {
		t.Errorf("Times: %d script requests, want 4", n)
	}
	if got[0].First() != at(1) || got[1].First() != at(2) {
		t.Errorf("First: %s and %s, want %s and %s", got[0].First(), got[1].First(), at(1), at(2))
	}
}
