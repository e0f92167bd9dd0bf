package ipxe

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree builds base/{secret, srv/...}: srv is the served directory, secret a
// file outside it that must never be served.
func tree(t *testing.T) (srv, secret string) {
	t.Helper()
	base := t.TempDir()
	srv = filepath.Join(base, "srv")
	secret = filepath.Join(base, "secret")
	mustWrite(t, secret, "secret")
	mustWrite(t, filepath.Join(srv, BIOS), "bios")
	mustWrite(t, filepath.Join(srv, "sub", "f.efi"), "sub")
	mustWrite(t, filepath.Join(base, "boot", "ipxe.efi"), "efi outside")
	for link, target := range map[string]string{
		"up":        "../secret",
		"abs":       secret,
		"in":        "sub/f.efi",
		"sub/up":    "../../secret",
		"dangling":  "nothing-here",
		EFIx64:      filepath.Join(base, "boot", "ipxe.efi"), // as Debian ships it
		SNPOnly:     "../secret-dir/none",                    // a boot name whose target is missing
		"subdir-up": "..",
	} {
		if err := os.Symlink(target, filepath.Join(srv, link)); err != nil {
			t.Fatal(err)
		}
	}
	mkfifo(t, filepath.Join(srv, "fifo"))
	return srv, secret
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		file string
		want error
	}{
		{"plain", "undionly.kpxe", nil},
		{"subdirectory", "arm64/ipxe.efi", nil},
		{"dots inside a name", "a..b.efi", nil},
		{"longest", strings.Repeat("a", MaxNameLen), nil},
		{"empty", "", ErrEmptyName},
		{"too long", strings.Repeat("a", MaxNameLen+1), ErrNameTooLong},
		{"NUL", "ipxe.efi\x00.txt", ErrNUL},
		{"absolute", "/etc/passwd", ErrAbsolute},
		{"parent", "../etc/passwd", ErrTraversal},
		{"parent inside", "sub/../../etc/passwd", ErrTraversal},
		{"parent only", "..", ErrTraversal},
		{"parent that stays inside", "sub/../ipxe.efi", ErrTraversal},
		{"backslash", `..\secret`, ErrBadName},
		{"control character", "ipxe\n.efi", ErrBadName},
		{"DEL", "ipxe\x7f.efi", ErrBadName},
		{"invalid UTF-8", "ipxe\xff.efi", ErrBadName},
		{"dot element", "./ipxe.efi", ErrBadName},
		{"dot", ".", ErrBadName},
		{"empty element", "sub//f.efi", ErrBadName},
		{"trailing slash", "sub/", ErrBadName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckName(tt.file)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("CheckName(%q): got %v, want nil", tt.file, err)
				}
				return
			}
			var ne *NameError
			if !errors.As(err, &ne) || !errors.Is(err, tt.want) || !errors.Is(err, fs.ErrInvalid) {
				t.Fatalf("CheckName(%q): got %v, want a *NameError matching %v and fs.ErrInvalid", tt.file, err, tt.want)
			}
		})
	}
}

func TestRootOpen(t *testing.T) {
	srv, _ := tree(t)
	r := NewRoot(srv)
	t.Cleanup(func() { _ = r.Close() })
	tests := []struct {
		name     string
		file     string
		content  string // on success
		wantErr  error  // nil for success
		notExist bool
	}{
		{name: "regular file", file: BIOS, content: "bios"},
		{name: "file in a subdirectory", file: "sub/f.efi", content: "sub"},
		{name: "symlink inside", file: "in", content: "sub"},
		{name: "boot file symlinked out, as Debian ships ipxe.efi", file: EFIx64, content: "efi outside"},
		{name: "symlink out with ..", file: "up", wantErr: ErrEscapes},
		{name: "absolute symlink out", file: "abs", wantErr: ErrEscapes},
		{name: "symlink out from a subdirectory", file: "sub/up", wantErr: ErrEscapes},
		{name: "through a symlink to the parent", file: "subdir-up/secret", wantErr: ErrEscapes},
		{name: "traversal", file: "../secret", wantErr: ErrTraversal},
		{name: "absolute", file: "/etc/passwd", wantErr: ErrAbsolute},
		{name: "directory", file: "sub", wantErr: ErrNotRegular},
		{name: "FIFO does not block and is refused", file: "fifo", wantErr: ErrNotRegular},
		{name: "missing", file: "nothing.efi", notExist: true},
		{name: "dangling symlink", file: "dangling", notExist: true},
		{name: "boot file symlink to nothing", file: SNPOnly, notExist: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := r.Open(tt.file)
			switch {
			case tt.notExist:
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Open(%q): got %v, want fs.ErrNotExist", tt.file, err)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Open(%q): got %v, want %v", tt.file, err, tt.wantErr)
				}
			default:
				if err != nil {
					t.Fatalf("Open(%q): %v", tt.file, err)
				}
				defer func() { _ = f.Close() }()
				got, err := io.ReadAll(f)
				if err != nil || string(got) != tt.content {
					t.Fatalf("Open(%q) read: got %q, %v; want %q", tt.file, got, err, tt.content)
				}
			}
		})
	}
}

func TestRootMissingDirThenInstalled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ipxe")
	r := NewRoot(dir)
	t.Cleanup(func() { _ = r.Close() })
	if _, err := r.Open(BIOS); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("before install: got %v, want fs.ErrNotExist", err)
	}
	mustWrite(t, filepath.Join(dir, BIOS), "bios")
	f, err := r.Open(BIOS)
	if err != nil {
		t.Fatalf("after install: got %v, want the file", err)
	}
	_ = f.Close()
}

func TestRootClosed(t *testing.T) {
	srv, _ := tree(t)
	r := NewRoot(srv)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open(BIOS); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("after Close: got %v, want fs.ErrClosed", err)
	}
}

func TestMissing(t *testing.T) {
	srv, _ := tree(t)
	got := Missing(srv, Required(EFIx64)...)
	if len(got) != 0 {
		t.Errorf("Missing(%v): got %v, want none (ipxe.efi is a symlink to a regular file)", Required(EFIx64), got)
	}
	got = Missing(srv, EFIArm64, BIOS, "sub")
	if len(got) != 2 || got[0] != EFIArm64 || got[1] != "sub" {
		t.Errorf("Missing: got %v, want [%s sub]", got, EFIArm64)
	}
}

// TestPickEFIx64: the configured build when ipxe.dir has it, the other one
// when only that is there, and the configured (missing) one when neither is.
func TestPickEFIx64(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    []string
		want     string
		pick     string
		fellBack bool
	}{
		{"both, snponly wanted", []string{SNPOnly, EFIx64}, SNPOnly, SNPOnly, false},
		{"both, ipxe.efi wanted", []string{SNPOnly, EFIx64}, EFIx64, EFIx64, false},
		{"only ipxe.efi", []string{EFIx64}, SNPOnly, EFIx64, true},
		{"only snponly", []string{SNPOnly}, EFIx64, SNPOnly, true},
		{"neither", nil, SNPOnly, SNPOnly, false},
	} {
		dir := t.TempDir()
		for _, f := range tc.files {
			mustWrite(t, filepath.Join(dir, f), f)
		}
		got, fellBack := PickEFIx64(dir, tc.want)
		if got != tc.pick || fellBack != tc.fellBack {
			t.Errorf("%s: got %q fellBack=%v, want %q fellBack=%v", tc.name, got, fellBack, tc.pick, tc.fellBack)
		}
	}
}

// TestReadPastEnd: the names PXE ROMs send after reading option 67 past its
// end open the boot file; anything else is left to the name checks.
func TestReadPastEnd(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{
		{"ipxe.efi\xff", EFIx64, true},
		{"snponly.efi\xff", SNPOnly, true},
		{"undionly.kpxea\x11", BIOS, true},         // option 97 (0x61 'a'), length 17
		{"undionly.kpxe\x00", BIOS, true},          // a NUL, should one reach here
		{"undionly.kpxe<\x04\x00\x01", BIOS, true}, // option 60's code and length, then bytes
		{"ipxe-arm64.efi\xff\x00", EFIArm64, true},
		{"snponly.efi\x80", SNPOnly, true},
		{"ipxe.efi", "", false},     // the name itself
		{"ipxe.efi.bak", "", false}, // printable suffix: another file
		{"ipxe.efia", "", false},
		{"evil\xff", "", false},
		{"../ipxe.efi\xff", "", false},
		{"", "", false},
	} {
		got, ok := ReadPastEnd(tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ReadPastEnd(%q) = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	// Through Root.Open, as the TFTP server calls it.
	srv, _ := tree(t)
	r := NewRoot(srv)
	defer func() { _ = r.Close() }()
	f, err := r.Open(BIOS + "a\x11")
	if err != nil {
		t.Fatalf("Open(undionly.kpxea\\x11): %v", err)
	}
	b, _ := io.ReadAll(f)
	_ = f.Close()
	if string(b) != "bios" {
		t.Errorf("got %q, want the BIOS file", b)
	}
	if _, err := r.OpenFile(BIOS + "\xff"); err == nil {
		t.Error("OpenFile (HTTP) must not strip: got no error")
	}
}
