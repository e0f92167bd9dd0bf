package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stalledWriter blocks every Write until release is closed, as a log
// file does while the disk is busy, and keeps what it is given.
type stalledWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *stalledWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *stalledWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestLogWriterDoesNotWaitForTheFile: lines logged while the file is
// stalled are taken at once, and every one reaches it, in order, by
// Close; a line logged after Close goes straight to the file.
func TestLogWriterDoesNotWaitForTheFile(t *testing.T) {
	w := &stalledWriter{release: make(chan struct{})}
	l := newLogWriter(w)
	wrote := make(chan struct{})
	var want strings.Builder
	for i := range 100 {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	go func() {
		defer close(wrote)
		for i := range 100 {
			fmt.Fprintf(l, "line %d\n", i)
		}
	}()
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("Write waited for the stalled file")
	}
	close(w.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := w.String(); got != want.String() {
		t.Errorf("the file got %q, want %q", got, want.String())
	}
	fmt.Fprint(l, "after close\n")
	if got := w.String(); !strings.HasSuffix(got, "line 99\nafter close\n") {
		t.Errorf("after Close the file ends %q, want the line written after Close last", got[max(0, len(got)-40):])
	}
}

// TestLogWriterBounded: past maxPendingLog bytes waiting for a stalled
// file, Write waits (nothing is dropped), and goes on once the file takes
// writes again.
func TestLogWriterBounded(t *testing.T) {
	w := &stalledWriter{release: make(chan struct{})}
	l := newLogWriter(w)
	line := []byte(strings.Repeat("x", 1023) + "\n")
	const lines = 3 * maxPendingLog / 1024
	var taken atomic.Int64
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for range lines {
			_, _ = l.Write(line)
			taken.Add(1)
		}
	}()
	// Wait until the queue is full: the goroutine holds what it took
	// first in its stalled write, and the queue cannot take a line more.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		full := len(l.pending)+len(line) > maxPendingLog
		l.mu.Unlock()
		if full {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue never filled: %d lines taken", taken.Load())
		}
	}
	// Not one line more is taken while the file is stalled.
	if n, most := taken.Load(), int64(2*maxPendingLog/len(line)); n > most {
		t.Errorf("%d lines taken while the file was stalled, want at most %d", n, most)
	}
	close(w.release)
	<-wrote
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(w.String()); got != lines*len(line) {
		t.Errorf("the file got %d bytes, want %d (every line)", got, lines*len(line))
	}
}
