package health

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ProbeFile is the file DiskProbe writes, syncs and removes in its
// directory.
const ProbeFile = ".health-probe"

// probeSize is what a probe writes: one page, the least a database write
// needs.
const probeSize = 4096

// DiskProbe tells whether a directory can be written within a deadline:
// Run writes, syncs and removes ProbeFile in it every interval, one probe
// at a time, and Err reports the last outcome, or a probe still running
// past the deadline (a frozen disk). Err never blocks. It is safe for
// concurrent use.
type DiskProbe struct {
	dir      string
	every    time.Duration
	deadline time.Duration

	mu      sync.Mutex
	running bool
	started time.Time
	last    error
	probed  time.Time
}

// NewDiskProbe returns a probe of dir, run every interval once Run is
// called, that fails when one write takes longer than deadline.
func NewDiskProbe(dir string, every, deadline time.Duration) *DiskProbe {
	return &DiskProbe{dir: dir, every: every, deadline: deadline}
}

// ErrStuck is wrapped by Err while a probe has run past its deadline.
var ErrStuck = errors.New("the disk does not answer")

// Err is nil when the last probe wrote and synced its file in time, and
// says why not otherwise (a full disk: the write's error wraps
// syscall.ENOSPC; a frozen one: ErrStuck). Before the first probe ends it
// is nil.
func (p *DiskProbe) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		if d := time.Since(p.started); d > p.deadline {
			return fmt.Errorf("%w: writing a %d-byte file in %s has taken %s so far (limit %s)", ErrStuck, probeSize, p.dir, d.Round(time.Second), p.deadline)
		}
	}
	return p.last
}

// Probed is when the last probe ended; zero before the first.
func (p *DiskProbe) Probed() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.probed
}

// Run probes at once and then every interval until ctx is cancelled, and
// returns nil. It blocks. A probe stuck in the kernel is left behind when
// ctx ends (its goroutine ends when the disk answers); no new probe starts
// while one runs.
func (p *DiskProbe) Run(ctx context.Context) error {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		done := make(chan struct{})
		p.mu.Lock()
		p.running, p.started = true, time.Now()
		p.mu.Unlock()
		go func() {
			defer close(done)
			err := writeProbe(p.dir)
			p.mu.Lock()
			p.running, p.last, p.probed = false, err, time.Now()
			p.mu.Unlock()
		}()
		select {
		case <-done:
		case <-ctx.Done():
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// writeProbe writes, syncs and removes ProbeFile in dir.
func writeProbe(dir string) error {
	path := filepath.Join(dir, ProbeFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write probe: %w", err)
	}
	_, werr := f.Write(make([]byte, probeSize))
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	rerr := os.Remove(path)
	if err := errors.Join(werr, cerr, rerr); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("write probe: %s is full: %w", dir, err)
		}
		return fmt.Errorf("write probe: %w", err)
	}
	return nil
}
