package profiles

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestReadFile: readFile gives what os.ReadFile gives, for files empty,
// small, the size of its buffer and larger, and the same error for a
// file that is not there.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 300, 32<<10 - 1, 32 << 10, 32<<10 + 1, 100 << 10} {
		path := filepath.Join(dir, "f")
		want := bytes.Repeat([]byte("values: {a: 1}\n"), size/15+1)[:size]
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("size %d: got %d bytes, %v; want the file's %d", size, len(got), err, size)
		}
	}
	missing := filepath.Join(dir, "missing.yaml")
	_, err := readFile(missing)
	_, want := os.ReadFile(missing)
	if err == nil || err.Error() != want.Error() || !os.IsNotExist(err) {
		t.Errorf("missing file: got %v, want %v", err, want)
	}
}
