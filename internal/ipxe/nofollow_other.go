//go:build !unix

package ipxe

import (
	"errors"
	"fmt"
	"os"
)

// openNoFollow would open a boot file's symlink target without following
// a link swapped in since it was resolved; without O_NOFOLLOW that cannot
// be done safely, so a boot file that is a symlink out of ipxe.dir is
// refused with an error matching errors.ErrUnsupported.
func openNoFollow(path string) (*os.File, error) {
	return nil, fmt.Errorf("open %s: %w: boot files that are symlinks out of ipxe.dir are served on Unix only", path, errors.ErrUnsupported)
}
