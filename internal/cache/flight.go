package cache

import (
	"context"
	"io"
	"os"
	"sync"
)

// flight is one upstream download in progress. Its readers read the
// temporary file with ReadAt (pread: safe beside the writer) up to the
// bytes written so far, and wait on wake for more.
type flight struct {
	key Key

	mu      sync.Mutex
	f       *os.File
	size    int64 // announced, -1 unknown
	written int64
	started bool // first bytes checked: readers may stream
	done    bool
	err     error
	entry   Entry
	// wake is closed and replaced whenever the state above changes.
	wake chan struct{}
	// users counts the fetch itself and every Open waiting or reading;
	// the file is closed when the last one leaves.
	users int
}

func newFlight(k Key) *flight {
	return &flight{key: k, size: -1, wake: make(chan struct{}), users: 1}
}

// changed wakes every waiter. Call with mu held.
func (fl *flight) changed() {
	close(fl.wake)
	fl.wake = make(chan struct{})
}

func (fl *flight) setFile(f *os.File) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.f = f
}

func (fl *flight) setSize(n int64) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.size = n
}

func (fl *flight) advance(n int64) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.written += n
	fl.started = true
	fl.changed()
}

func (fl *flight) finish(e Entry, err error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.done, fl.entry, fl.err = true, e, err
	fl.changed()
}

func (fl *flight) result() (Entry, error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.entry, fl.err
}

// waitStarted blocks until the first bytes are in (true), the flight ended
// without having been seen started (false, or its error), or ctx ends. On
// error the caller's reference is released.
func (fl *flight) waitStarted(ctx context.Context) (bool, error) {
	for {
		fl.mu.Lock()
		started, done, err, wake := fl.started, fl.done, fl.err, fl.wake
		fl.mu.Unlock()
		switch {
		case err != nil:
			fl.release()
			return false, err
		case started && !done:
			return true, nil
		case done:
			return false, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			fl.release()
			return false, ctx.Err()
		}
	}
}

// readAt reads from *off, blocking until bytes past it are written, the
// flight ends (io.EOF, or its error), or ctx ends.
func (fl *flight) readAt(ctx context.Context, p []byte, off *int64) (int, error) {
	for {
		fl.mu.Lock()
		avail, done, err, wake, f := fl.written-*off, fl.done, fl.err, fl.wake, fl.f
		fl.mu.Unlock()
		if avail > 0 && len(p) > 0 {
			n, rerr := f.ReadAt(p[:min(int64(len(p)), avail)], *off)
			*off += int64(n)
			if n > 0 {
				return n, nil
			}
			return 0, rerr
		}
		if err != nil {
			return 0, err
		}
		if done {
			return 0, io.EOF
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// release drops one reference; the last closes the file.
func (fl *flight) release() {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.users--
	if fl.users == 0 && fl.f != nil {
		fl.f.Close()
	}
}
