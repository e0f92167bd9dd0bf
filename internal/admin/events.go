package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// DefaultHeartbeat is how often an idle event stream gets a comment line,
// well inside the idle timeouts of proxies between the browser and us.
const DefaultHeartbeat = 15 * time.Second

// subscriberBuffer bounds the changes queued for one event client. A
// client that falls this far behind is disconnected (its browser
// reconnects and reloads the list) rather than ever blocking the store.
const subscriberBuffer = 64

// Hub fans machine changes out to the event streams. Publish never
// blocks, so it can be the state store's OnChange. It is safe for
// concurrent use; Close it at shutdown to end every stream.
type Hub struct {
	mu     sync.Mutex
	subs   map[chan machine.MAC]struct{}
	closed bool
	done   chan struct{}
}

// NewHub returns a hub with no subscribers.
func NewHub() *Hub { return &Hub{subs: map[chan machine.MAC]struct{}{}, done: make(chan struct{})} }

// Publish queues m's MAC for every stream; a stream whose queue is full is
// closed.
func (h *Hub) Publish(m state.Machine) { h.publish(m.MAC) }

func (h *Hub) publish(mac machine.MAC) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- mac:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// subscribe returns a stream's queue, closed when the stream falls behind
// or the hub closes; ok is false after Close.
func (h *Hub) subscribe() (chan machine.MAC, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	ch := make(chan machine.MAC, subscriberBuffer)
	h.subs[ch] = struct{}{}
	return ch, true
}

func (h *Hub) unsubscribe(ch chan machine.MAC) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[ch]; ok {
		delete(h.subs, ch)
		close(ch)
	}
}

// Subscribers is the number of open streams.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Close ends every stream and refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	close(h.done)
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}

// notify tells the streams that mac changed outside the state store (its
// profile was written).
func (a *API) notify(mac machine.MAC) {
	if a.opts.Hub != nil {
		a.opts.Hub.publish(mac)
	}
}

// MachineEvent is the data of a "machine" server-sent event: the machine
// as GET /api/v1/machines/{mac} shows it, or only its MAC with Gone set
// when it has neither a record nor a profile any more.
type MachineEvent struct {
	Machine
	Gone bool `json:"gone,omitempty"`
}

// events streams machine changes as server-sent events: a "hello" event
// at once, then one "machine" event per change, and a comment line every
// heartbeat while idle. It ends when the client leaves or the hub closes.
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	if a.opts.Hub == nil {
		writeError(w, http.StatusNotImplemented, "this server has no event stream")
		return
	}
	rc := http.NewResponseController(w)
	ch, ok := a.opts.Hub.subscribe()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	defer a.opts.Hub.unsubscribe(ch)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// retry: how long the browser waits before reconnecting after we end
	// the stream (a slow client or a restart).
	if _, err := fmt.Fprint(w, "retry: 2000\nevent: hello\ndata: {}\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(a.opts.Heartbeat)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-a.opts.Hub.done:
			return
		case mac, ok := <-ch:
			if !ok {
				return
			}
			err = a.sendMachine(w, mac)
		case <-tick.C:
			_, err = fmt.Fprint(w, ": heartbeat\n\n")
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

func (a *API) sendMachine(w http.ResponseWriter, mac machine.MAC) error {
	ev := MachineEvent{Machine: Machine{MAC: mac}}
	rec, recorded, err := a.opts.Store.Get(mac)
	if err != nil {
		return err
	}
	m, err := a.view(mac, rec, recorded)
	if err != nil {
		return err
	}
	if !recorded && !m.Profile {
		ev.Gone = true
	} else {
		ev.Machine = m
		ev.Events = rec.Events
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: machine\ndata: %s\n\n", b)
	return err
}
