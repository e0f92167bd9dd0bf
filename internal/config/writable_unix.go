//go:build unix

package config

import "golang.org/x/sys/unix"

// writable reports, as access(2) does for this process's user, whether
// files can be created in the directory dir.
func writable(dir string) error {
	return unix.Access(dir, unix.W_OK|unix.X_OK)
}
