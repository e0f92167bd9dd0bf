//go:build !linux

package main

import (
	"errors"
	"fmt"
	"os"
)

// openTap would create a TAP device; TAP devices through /dev/net/tun
// are Linux's, so elsewhere it returns an error matching
// errors.ErrUnsupported.
func openTap(name string) (*os.File, error) {
	return nil, fmt.Errorf("create TAP %s: %w: delaywire runs on Linux only", name, errors.ErrUnsupported)
}
