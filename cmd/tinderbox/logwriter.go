package main

import (
	"io"
	"sync"
)

// maxPendingLog bounds what a logWriter holds in memory, in bytes: some
// 5000 lines, a few seconds of a 5000-node DHCP storm's reply lines.
const maxPendingLog = 1 << 20

// maxSpareLog is the largest buffer a logWriter keeps for reuse once
// written, in bytes; a larger one, grown in a burst, is left to the GC.
const maxSpareLog = 64 << 10

// logWriter passes what the daemon logs to w from a goroutine of its own,
// in order, so that logging a line never waits for the file or terminal
// behind w: a write to a log file stalls for milliseconds while the same
// disk syncs the state database, and the proxyDHCP responder logs a line
// per reply. Lines wait in memory up to maxPendingLog bytes; past that,
// Write waits for the goroutine, so nothing is dropped. Errors of w are
// not reported (log/slog drops them too). Close writes what waits and
// stops the goroutine; a Write after Close goes to w directly. Lines
// still waiting when the process dies without Close (a crash) are lost:
// at most what was logged while one write to w was in progress. It is
// safe for concurrent use.
type logWriter struct {
	w    io.Writer
	wake chan struct{} // one token: pending has bytes, or closed is set
	done chan struct{} // closed when the goroutine has written all and stopped

	mu      sync.Mutex
	taken   *sync.Cond // the goroutine took pending
	pending []byte
	closed  bool
}

// newLogWriter starts a logWriter on w; Close stops it.
func newLogWriter(w io.Writer) *logWriter {
	l := &logWriter{w: w, wake: make(chan struct{}, 1), done: make(chan struct{})}
	l.taken = sync.NewCond(&l.mu)
	go l.run()
	return l
}

// Write queues a copy of p for w and returns len(p), nil; it waits only
// while maxPendingLog bytes are queued.
func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	for !l.closed && len(l.pending) > 0 && len(l.pending)+len(p) > maxPendingLog {
		l.taken.Wait()
	}
	if l.closed {
		l.mu.Unlock()
		<-l.done // after everything queued before Close
		return l.w.Write(p)
	}
	l.pending = append(l.pending, p...)
	l.mu.Unlock()
	l.poke()
	return len(p), nil
}

// Close writes what is queued to w and stops the goroutine. It does not
// close w.
func (l *logWriter) Close() error {
	l.mu.Lock()
	l.closed = true
	l.taken.Broadcast()
	l.mu.Unlock()
	l.poke()
	<-l.done
	return nil
}

func (l *logWriter) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run writes what is queued, all of it at each turn, until Close.
func (l *logWriter) run() {
	defer close(l.done)
	var spare []byte
	for range l.wake {
		l.mu.Lock()
		b, closed := l.pending, l.closed
		l.pending = spare[:0]
		l.taken.Broadcast()
		l.mu.Unlock()
		if len(b) > 0 {
			_, _ = l.w.Write(b)
		}
		if closed {
			return
		}
		spare = nil
		if cap(b) <= maxSpareLog {
			spare = b
		}
	}
}
