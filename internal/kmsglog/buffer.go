package kmsglog

import (
	"container/list"
	"strings"
	"sync"
	"unsafe"
)

// Defaults for BufferOptions.
const (
	// DefaultLines is how many lines a machine keeps: a Talos boot and
	// install log is one to two thousand kernel lines, the most recent
	// thousand hold the install.
	DefaultLines = 1000
	// DefaultBytes bounds one machine's lines in memory: a thousand
	// typical lines (under 200 bytes of text each) fit, a thousand
	// MaxLine lines do not.
	DefaultBytes = 256 << 10
	// DefaultKeys bounds the machines kept; with DefaultBytes, the lines
	// of all of them take at most 256 MiB.
	DefaultKeys = 1024
	// DefaultSubscriberQueue bounds the lines queued for one subscriber.
	// A console that falls this far behind is dropped (it reconnects and
	// reloads the last lines) rather than ever blocking the receiver.
	DefaultSubscriberQueue = 256
)

// lineOverhead is what a stored Line costs besides its strings' bytes.
const lineOverhead = int(unsafe.Sizeof(Line{}))

// BufferOptions configures NewBuffer; 0 means the default for each.
type BufferOptions struct {
	// Lines is how many lines each key keeps, the newest.
	Lines int
	// Bytes bounds each key's lines in memory: the text of Msg and
	// Service plus the size of a Line each. The newest line is always
	// kept, however long.
	Bytes int
	// Keys bounds the keys (machines) kept; adding to one more forgets
	// the least recently added-to key's lines. Subscriptions are not
	// affected.
	Keys int
	// SubscriberQueue is how many lines a subscriber may fall behind
	// before it is dropped.
	SubscriberQueue int
}

// Buffer keeps the last lines of each key (a machine's MAC, for the
// daemon) in memory, bounded per key and in the number of keys, and
// fans new lines out to live subscribers. A subscriber that falls behind
// is dropped rather than ever blocking Add. It is safe for concurrent
// use; Close it at shutdown to end every subscription.
type Buffer[K comparable] struct {
	mu     sync.Mutex
	o      BufferOptions
	rings  map[K]*list.Element // of *ring[K]
	lru    *list.List          // front: most recently added to
	subs   map[K]map[*subscriber]struct{}
	closed bool
}

// ring is one key's lines, oldest first from head.
type ring[K comparable] struct {
	key   K
	buf   []Line
	head  int
	n     int
	bytes int
}

type subscriber struct{ c chan Line }

// NewBuffer returns an empty buffer.
func NewBuffer[K comparable](o BufferOptions) *Buffer[K] {
	if o.Lines <= 0 {
		o.Lines = DefaultLines
	}
	if o.Bytes <= 0 {
		o.Bytes = DefaultBytes
	}
	if o.Keys <= 0 {
		o.Keys = DefaultKeys
	}
	if o.SubscriberQueue <= 0 {
		o.SubscriberQueue = DefaultSubscriberQueue
	}
	return &Buffer[K]{o: o, rings: map[K]*list.Element{}, lru: list.New(), subs: map[K]map[*subscriber]struct{}{}}
}

// Add appends l to key's lines, dropping the oldest beyond the bounds,
// and queues it for key's subscribers, dropping each whose queue is
// full. It never blocks.
func (b *Buffer[K]) Add(key K, l Line) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ring(key).push(l, b.o.Lines, b.o.Bytes)
	for s := range b.subs[key] {
		select {
		case s.c <- l:
		default:
			b.drop(key, s)
		}
	}
}

// ring returns key's ring, making it (and room for it) if needed; b.mu
// is held.
func (b *Buffer[K]) ring(key K) *ring[K] {
	if e, ok := b.rings[key]; ok {
		b.lru.MoveToFront(e)
		return e.Value.(*ring[K])
	}
	for len(b.rings) >= b.o.Keys {
		e := b.lru.Back()
		b.lru.Remove(e)
		delete(b.rings, e.Value.(*ring[K]).key)
	}
	r := &ring[K]{key: key}
	b.rings[key] = b.lru.PushFront(r)
	return r
}

// Lines returns key's newest n lines, oldest first; n <= 0 means all.
func (b *Buffer[K]) Lines(key K, n int) []Line {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.rings[key]
	if !ok {
		return nil
	}
	r := e.Value.(*ring[K])
	if n <= 0 || n > r.n {
		n = r.n
	}
	out := make([]Line, n)
	for i := range n {
		out[i] = r.at(r.n - n + i)
	}
	return out
}

// Search returns key's lines whose message contains substr, ignoring
// case (Unicode lower case), oldest first. An empty substr matches every
// line.
func (b *Buffer[K]) Search(key K, substr string) []Line {
	lines := b.Lines(key, 0)
	want := strings.ToLower(substr)
	out := lines[:0]
	for _, l := range lines {
		if strings.Contains(strings.ToLower(l.Msg), want) {
			out = append(out, l)
		}
	}
	return out
}

// Subscribe returns a channel of key's lines added from now on, and a
// cancel function that ends the subscription (calling it more than once
// is harmless). The channel is closed when the subscriber falls
// SubscriberQueue lines behind, when cancel is called and when the
// buffer closes (at once, if it is closed already).
func (b *Buffer[K]) Subscribe(key K) (<-chan Line, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &subscriber{c: make(chan Line, b.o.SubscriberQueue)}
	if b.closed {
		close(s.c)
		return s.c, func() {}
	}
	if b.subs[key] == nil {
		b.subs[key] = map[*subscriber]struct{}{}
	}
	b.subs[key][s] = struct{}{}
	return s.c, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.drop(key, s)
	}
}

// drop ends s if it is still subscribed to key; b.mu is held.
func (b *Buffer[K]) drop(key K, s *subscriber) {
	set := b.subs[key]
	if _, ok := set[s]; !ok {
		return
	}
	delete(set, s)
	if len(set) == 0 {
		delete(b.subs, key)
	}
	close(s.c)
}

// Subscribers is the number of open subscriptions, over all keys.
func (b *Buffer[K]) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, set := range b.subs {
		n += len(set)
	}
	return n
}

// Len is the number of keys with lines kept.
func (b *Buffer[K]) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.rings)
}

// Forget drops key's lines (for a machine that was removed); its
// subscriptions stay.
func (b *Buffer[K]) Forget(key K) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.rings[key]; ok {
		b.lru.Remove(e)
		delete(b.rings, key)
	}
}

// Close ends every subscription and refuses new ones; the lines stay
// readable. Closing twice is harmless.
func (b *Buffer[K]) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for key, set := range b.subs {
		for s := range set {
			b.drop(key, s)
		}
	}
}

// size is what l costs in a ring.
func size(l Line) int { return lineOverhead + len(l.Msg) + len(l.Service) }

// at returns the i-th line, oldest first.
func (r *ring[K]) at(i int) Line { return r.buf[(r.head+i)%len(r.buf)] }

// push appends l and drops the oldest lines beyond maxLines or maxBytes
// (keeping l itself).
func (r *ring[K]) push(l Line, maxLines, maxBytes int) {
	if r.n == len(r.buf) {
		if len(r.buf) < maxLines {
			// Grow by doubling up to maxLines: a machine that logs little
			// holds little.
			grown := make([]Line, min(max(2*len(r.buf), 16), maxLines))
			for i := range r.n {
				grown[i] = r.at(i)
			}
			r.buf, r.head = grown, 0
		} else {
			r.pop()
		}
	}
	r.buf[(r.head+r.n)%len(r.buf)] = l
	r.n++
	r.bytes += size(l)
	for r.bytes > maxBytes && r.n > 1 {
		r.pop()
	}
}

// pop drops the oldest line.
func (r *ring[K]) pop() {
	r.bytes -= size(r.buf[r.head])
	r.buf[r.head] = Line{} // let its strings go
	r.head = (r.head + 1) % len(r.buf)
	r.n--
}
