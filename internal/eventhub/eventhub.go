// Package eventhub fans out "this machine changed" notices from the state
// store and the profile calls to the admin API's event streams. Each
// subscriber has a bounded queue; one that falls behind is dropped rather
// than ever blocking the publisher.
package eventhub

import (
	"sync"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Buffer bounds the notices queued for one subscriber. A browser that
// falls this far behind is disconnected (it reconnects and reloads the
// list) rather than ever blocking the state store.
const Buffer = 64

// Hub fans machine changes out to its subscribers. Publish never blocks,
// so it can run inside the state store's change hook. It is safe for
// concurrent use; Close it at shutdown to end every subscription.
type Hub struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// New returns a hub with no subscribers.
func New() *Hub { return &Hub{subs: map[*Subscription]struct{}{}} }

// Subscription is one subscriber's queue.
type Subscription struct {
	h *Hub
	c chan machine.MAC
}

// C delivers the MAC of each changed machine. It is closed when the
// subscriber falls Buffer notices behind, when the subscription is closed
// and when the hub closes.
func (s *Subscription) C() <-chan machine.MAC { return s.c }

// Close ends the subscription; closing it twice is harmless.
func (s *Subscription) Close() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.h.drop(s)
}

// Publish queues mac for every subscriber and drops each whose queue is
// full. It never blocks.
func (h *Hub) Publish(mac machine.MAC) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.c <- mac:
		default:
			h.drop(s)
		}
	}
}

// Subscribe adds a subscriber; ok is false once the hub is closed.
func (h *Hub) Subscribe() (s *Subscription, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	s = &Subscription{h: h, c: make(chan machine.MAC, Buffer)}
	h.subs[s] = struct{}{}
	return s, true
}

// Subscribers is the number of open subscriptions.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Close ends every subscription and refuses new ones; closing twice is
// harmless.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		h.drop(s)
	}
}

// drop ends s if it is still subscribed; h.mu is held.
func (h *Hub) drop(s *Subscription) {
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.c)
	}
}
