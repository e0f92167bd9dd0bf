//go:build unix

package cache

import (
	"os"
	"syscall"
)

// tryLock takes an exclusive flock on f without waiting; the kernel
// drops it when f is closed or the process dies.
func tryLock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
