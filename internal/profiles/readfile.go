package profiles

import (
	"bytes"
	"errors"
	"io/fs"
	"sync"

	"golang.org/x/sys/unix"
)

// readFile is os.ReadFile of a profile file in three or four system
// calls (open, read until end of file, close), where os.ReadFile makes
// ten on Linux: os.Open switches a file to non-blocking mode, tries to
// register it with the runtime's poller (epoll refuses regular files),
// then switches it back (four fcntl and an epoll_ctl), and fstats it for
// its size. A load reads every machine's file, 5000 of them in a large
// tree. Errors are *fs.PathError, worded as os.ReadFile's.
func readFile(path string) ([]byte, error) {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer func() { _ = unix.Close(fd) }()
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	data := (*bp)[:0]
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)] // a file larger than the buffer
		}
		var n int
		err := retryEINTR(func() (err error) {
			n, err = unix.Read(fd, data[len(data):cap(data)])
			return err
		})
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return bytes.Clone(data), nil
		}
		data = data[:len(data)+n]
	}
}

// readBufs are readFile's buffers: most profile files are a few KiB, so
// one read fills a buffer and a second finds the end, and the file's
// bytes are then copied once, at their size.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

// retryEINTR calls fn until it is not interrupted by a signal.
func retryEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
