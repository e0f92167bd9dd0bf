//go:build unix

package ipxe

import (
	"os"
	"syscall"
)

// openNoFollow opens path for reading, refusing a symlink in its last
// element (O_NOFOLLOW) and never blocking on a FIFO (O_NONBLOCK).
func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
}
