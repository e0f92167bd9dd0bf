//go:build !unix

package cache

import (
	"errors"
	"fmt"
	"os"
)

// tryLock would take an exclusive flock on f. The cache relies on flock's
// semantics (dropped when the process dies) to tell a live fetch's file
// from one left behind, so elsewhere it refuses, with an error matching
// errors.ErrUnsupported: no fetch starts and no file is cleaned up.
func tryLock(*os.File) error {
	return fmt.Errorf("flock: %w: the asset cache runs on Unix only", errors.ErrUnsupported)
}
