package tftp

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/tinderbox-boot/tinderbox/internal/ipxe"
)

// ipxe.Root's refused names carry their reason to the client.
var _ Refusal = (*ipxe.NameError)(nil)

// errFS answers Open with a fixed error for some names and serves the
// rest from files.
type errFS struct {
	files fstest.MapFS
	errs  map[string]error
}

func (e errFS) Open(name string) (fs.File, error) {
	if err, ok := e.errs[name]; ok {
		return nil, err
	}
	return e.files.Open(name)
}

// refused is a Refusal that is not ipxe's.
type refused struct{ why string }

func (r *refused) Error() string  { return "refused: " + r.why }
func (r *refused) Reason() string { return r.why }
func (r *refused) Unwrap() error  { return fs.ErrInvalid }

type ctxKey struct{}

// ctxRecorder keeps the context value each TFTPSent sees.
type ctxRecorder struct{ got chan any }

func (r ctxRecorder) TFTPSent(ctx context.Context, _ Transfer) { r.got <- ctx.Value(ctxKey{}) }

// serveBare runs a server with only Files set (and a recorder when rec is
// not nil) on a loopback socket; it returns the socket and a function that
// cancels Serve and returns its error.
func serveBare(t *testing.T, ctx context.Context, files fs.FS, rec Recorder) (net.PacketConn, func() error) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- New(Options{Files: files, Recorder: rec}).Serve(ctx, pc) }()
	stop := sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() { _ = stop() })
	return pc, stop
}

// TestContract: with no Logger, Metrics or Recorder the server serves;
// the recorder gets Serve's context; Serve returns nil on cancel and has
// closed its socket.
func TestContract(t *testing.T) {
	content := []byte("iPXE binary")
	files := fstest.MapFS{"ipxe.efi": {Data: content}}

	t.Run("nil logger, metrics and recorder", func(t *testing.T) {
		pc, stop := serveBare(t, t.Context(), files, nil)
		c := dialRaw(t, pc.LocalAddr().String())
		got, _ := c.download("ipxe.efi", 512, 1, nil)
		if !bytes.Equal(got, content) {
			t.Fatalf("got %q, want %q", got, content)
		}
		if err := stop(); err != nil {
			t.Fatalf("Serve after cancel: got %v, want nil", err)
		}
		if _, _, err := pc.ReadFrom(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("reading the socket after Serve returned: got %v, want net.ErrClosed (Serve closes it)", err)
		}
	})

	t.Run("recorder gets the serve context", func(t *testing.T) {
		rec := ctxRecorder{got: make(chan any, 1)}
		ctx := context.WithValue(t.Context(), ctxKey{}, "serve ctx")
		pc, _ := serveBare(t, ctx, files, rec)
		dialRaw(t, pc.LocalAddr().String()).download("ipxe.efi", 512, 1, nil)
		if v := <-rec.got; v != "serve ctx" {
			t.Errorf("TFTPSent saw context value %v, want %q", v, "serve ctx")
		}
	})

	t.Run("closes the socket when it fails early", func(t *testing.T) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := New(Options{Files: files}).Serve(ctx, pc); err != nil {
			t.Fatalf("Serve with a cancelled context: got %v, want nil", err)
		}
		if _, _, err := pc.ReadFrom(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("got %v, want net.ErrClosed", err)
		}
	})
}

// TestOpenErrors: the error packet a client gets depends only on the
// io/fs error Files returns (and a Refusal's reason), whoever implements
// Files.
func TestOpenErrors(t *testing.T) {
	files := errFS{
		files: fstest.MapFS{"ok.bin": {Data: []byte("x")}},
		errs: map[string]error{
			"refused":    &refused{why: "no such names here"},
			"permission": &fs.PathError{Op: "open", Path: "permission", Err: fs.ErrPermission},
			"invalid":    &fs.PathError{Op: "open", Path: "invalid", Err: fs.ErrInvalid},
			"missing":    &fs.PathError{Op: "open", Path: "missing", Err: fs.ErrNotExist},
			"broken":     errors.New("disk on fire"),
		},
	}
	pc, _ := serveBare(t, t.Context(), files, nil)
	addr := pc.LocalAddr().String()
	tests := []struct {
		name     string
		file     string
		wantCode uint16
		wantMsg  string
	}{
		{"refusal", "refused", errAccessViolation, "no such names here"},
		{"permission", "permission", errAccessViolation, "access violation"},
		{"invalid", "invalid", errAccessViolation, "access violation"},
		{"not found", "missing", errFileNotFound, "file not found"},
		{"not found in MapFS", "nothing.bin", errFileNotFound, "file not found"},
		{"other error", "broken", errNotDefined, "cannot open file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.request(rrq(tt.file, "octet"))
			p := c.mustRecv()
			if code, msg := parseError(p); len(p) < 2 || p[1] != opERROR || code != tt.wantCode || msg != tt.wantMsg {
				t.Fatalf("got %s, want ERROR %d %q", describe(p), tt.wantCode, tt.wantMsg)
			}
		})
	}
}

// TestIPXERefusalMessages: names ipxe.Root refuses are answered with
// access violation and ipxe's reason, as before tftp stopped importing
// ipxe.
func TestIPXERefusalMessages(t *testing.T) {
	f := start(t, nil)
	tests := []struct {
		name, file string
		want       error
	}{
		{"traversal", "../secret", ipxe.ErrTraversal},
		{"absolute", "/etc/passwd", ipxe.ErrAbsolute},
		{"symlink out", "escape", ipxe.ErrEscapes},
		{"directory", "sub", ipxe.ErrNotRegular},
		{"empty", "", ipxe.ErrEmptyName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, f.addr)
			c.request(rrq(tt.file, "octet"))
			p := c.mustRecv()
			if code, msg := parseError(p); code != errAccessViolation || msg != tt.want.Error() {
				t.Fatalf("got %s, want ERROR %d %q", describe(p), errAccessViolation, tt.want.Error())
			}
		})
	}
}
