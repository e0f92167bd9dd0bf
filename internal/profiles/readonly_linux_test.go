package profiles

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tinderbox-boot/tinderbox/internal/netnstest"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// readOnlyDirEnv carries the directory to TestReadOnlyMount when the test
// binary runs itself again inside a private mount namespace.
const readOnlyDirEnv = "TINDERBOX_TEST_READONLY_DIR"

// TestReadOnlyProfiles: a profiles directory tinderbox cannot write (as the
// .deb's root-owned /etc/tinderbox/profiles is to the tinderbox user, or
// a Kubernetes ConfigMap volume, mounted read-only) makes Writable,
// WriteMachine and DeleteMachine say so with ErrReadOnly, and writes
// nothing. As root, permissions do not stop writes, so the test bind-mounts
// the directory read-only in a mount namespace of its own (unshare); as
// another user, a directory without write permission does.
func TestReadOnlyProfiles(t *testing.T) {
	if dir := os.Getenv(readOnlyDirEnv); dir != "" {
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind mount: %v", err)
		}
		if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			t.Fatalf("remount read-only: %v", err)
		}
		checkReadOnly(t, dir, unix.EROFS)
		return
	}
	dir := copyDir(t, "testdata/golden/layers/profiles")
	if os.Geteuid() != 0 {
		if err := os.Chmod(filepath.Join(dir, "machines"), 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(filepath.Join(dir, "machines"), 0o755) })
		checkReadOnly(t, dir, unix.EACCES)
		return
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("running as root without unshare(1): cannot make a read-only mount")
	}
	netnstest.Rerun(t, readOnlyDirEnv+"="+dir, nil, unshare, "--mount", "--propagation", "private", "--")
}

func checkReadOnly(t *testing.T, dir string, errno unix.Errno) {
	t.Helper()
	s, err := NewStore(t.Context(), testOptions(dir), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Writable()
	if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), errno.Error()) {
		t.Fatalf("Writable: got %v, want ErrReadOnly with %q", err, errno.Error())
	}
	mac := machine.MustParseMAC("52-54-00-00-00-07")
	if _, err := s.WriteMachine(t.Context(), mac, []byte("values: {host: 17}\n"), Precondition{}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("WriteMachine: got %v, want ErrReadOnly", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "machines", mac.Dashed()+".yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file was written: %v", err)
	}
	existing := machine.MustParseMAC("52-54-00-00-00-01")
	if _, err := s.DeleteMachine(t.Context(), existing, Precondition{}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("DeleteMachine: got %v, want ErrReadOnly", err)
	}
}
