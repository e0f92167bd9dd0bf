package factory_test

import (
	"strings"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/factory"
	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

func TestNormalizeVersion(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "with v", in: "v1.12.7", want: "v1.12.7"},
		{name: "without v", in: "1.12.7", want: "v1.12.7"},
		{name: "pre-release", in: "v1.13.0-beta.1", want: "v1.13.0-beta.1"},
		{name: "two parts", in: "v1.12", wantErr: true},
		{name: "leading zero", in: "v01.2.3", wantErr: true},
		{name: "path traversal", in: "../../etc", wantErr: true},
		{name: "slash", in: "v1.2.3/x", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "double v", in: "vv1.2.3", wantErr: true},
		{name: "empty pre-release", in: "v1.2.3-", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := factory.NormalizeVersion(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("NormalizeVersion(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestCheckNames(t *testing.T) {
	tests := []struct {
		name    string
		check   func(string) error
		in      string
		wantErr bool
	}{
		{name: "schematic ok", check: factory.CheckSchematicID, in: testID},
		{name: "schematic upper case", check: factory.CheckSchematicID, in: strings.ToUpper(testID), wantErr: true},
		{name: "schematic short", check: factory.CheckSchematicID, in: testID[:63], wantErr: true},
		{name: "file kernel", check: factory.CheckFile, in: "kernel-arm64"},
		{name: "file initramfs", check: factory.CheckFile, in: "initramfs-amd64.xz"},
		{name: "file cmdline", check: factory.CheckFile, in: "cmdline-metal-amd64"},
		{name: "file iso", check: factory.CheckFile, in: "metal-amd64.iso", wantErr: true},
		{name: "file traversal", check: factory.CheckFile, in: "../kernel-amd64", wantErr: true},
		{name: "arch ok", check: checkArch, in: "arm64"},
		{name: "arch bad", check: checkArch, in: "riscv64", wantErr: true},
		{name: "arch empty", check: checkArch, in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.check(tt.in); (err != nil) != tt.wantErr {
				t.Errorf("check(%q) = %v; want error %v", tt.in, err, tt.wantErr)
			}
		})
	}
}

// FuzzNormalizeVersion: an accepted version is a single safe path
// component, starts with v, and normalises to itself.
func FuzzNormalizeVersion(f *testing.F) {
	for _, s := range []string{"v1.12.7", "1.0.0", "v1.13.0-alpha.0", "../x", "v1.2.3-a..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := factory.NormalizeVersion(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(got, "v") || strings.ContainsAny(got, "/\\\x00") || strings.Contains(got, "..") {
			t.Fatalf("NormalizeVersion(%q) = %q: not a safe path component", in, got)
		}
		if again, err := factory.NormalizeVersion(got); err != nil || again != got {
			t.Fatalf("NormalizeVersion(%q) = %q, %v; want %q again", got, again, err, got)
		}
	})
}

func TestCheckContent(t *testing.T) {
	html := []byte("<html><body>Please log in</body></html>")
	for _, arch := range factory.Arches {
		for _, file := range factory.Files(arch) {
			t.Run(file, func(t *testing.T) {
				if err := factory.CheckContent(file, fakefactory.Content(file, 8192)); err != nil {
					t.Errorf("valid %s: got %v", file, err)
				}
				err := factory.CheckContent(file, html)
				if err == nil || !strings.Contains(err.Error(), "<html>") {
					t.Errorf("HTML as %s: got %v, want an error quoting the body", file, err)
				}
			})
		}
	}
	t.Run("cmdline with a NUL", func(t *testing.T) {
		if err := factory.CheckContent("cmdline-metal-amd64", []byte("talos.platform=metal\x00")); err == nil {
			t.Error("got no error")
		}
	})
	t.Run("amd64 kernel given for arm64", func(t *testing.T) {
		if err := factory.CheckContent("kernel-arm64", fakefactory.Content("kernel-amd64", 8192)); err == nil {
			t.Error("got no error")
		}
	})
}

func checkArch(s string) error { return factory.CheckArch(machine.Arch(s)) }
