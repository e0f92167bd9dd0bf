package bootflow

import (
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/served"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// pendingConfig is a served config waiting to be kept.
type pendingConfig struct {
	at   time.Time
	body []byte
}

// keepServed hands a config just served to mac to the background writer,
// which masks it and stores it (state.Store.PutServed) after the answer
// is written, so keeping it adds no database write to /config. Configs
// waiting are held one per machine, the newest winning, so memory stays
// bounded by the number of machines; one writer runs at a time.
func (f *Flow) keepServed(mac machine.MAC, at time.Time, body []byte) {
	f.keepMu.Lock()
	defer f.keepMu.Unlock()
	f.keepQ[mac] = pendingConfig{at: at, body: body}
	if f.keeping {
		return
	}
	f.keeping = true
	f.keepWG.Add(1)
	go f.writeServed()
}

// writeServed stores waiting configs until none is left.
func (f *Flow) writeServed() {
	defer f.keepWG.Done()
	for {
		f.keepMu.Lock()
		var (
			mac   machine.MAC
			p     pendingConfig
			found bool
		)
		for mac, p = range f.keepQ {
			found = true
			break
		}
		if !found {
			f.keeping = false
			f.keepMu.Unlock()
			return
		}
		delete(f.keepQ, mac)
		f.keepMu.Unlock()
		snap := served.Take(p.body, f.opts.Store.MaskTag)
		if _, err := f.opts.Store.PutServed(mac, state.Served{At: p.at, Hash: snap.Hash, Size: snap.Size, Config: string(snap.Masked), Note: snap.Note}); err != nil {
			f.log.Error("config: keep served config", "mac", mac, "err", err)
		}
	}
}

// Flush blocks until every config served so far is kept. The daemon
// calls it before closing the state store; tests call it before reading
// what was kept.
func (f *Flow) Flush() { f.keepWG.Wait() }
