package eventhub

import (
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

var mac = machine.MustParseMAC("52:54:00:00:00:01")

// TestSlowSubscriber: a subscriber that does not read is dropped once its
// buffer is full, and publishing never blocks.
func TestSlowSubscriber(t *testing.T) {
	h := New()
	defer h.Close()
	slow, _ := h.Subscribe()
	fast, _ := h.Subscribe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range Buffer * 4 {
			h.Publish(mac)
			<-fast.C()
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a slow subscriber")
	}
	n := 0
	for range slow.C() {
		n++
	}
	if n != Buffer {
		t.Errorf("slow subscriber got %d before being dropped, want %d", n, Buffer)
	}
	if got := h.Subscribers(); got != 1 {
		t.Errorf("got %d subscribers, want 1 (the fast one)", got)
	}
}

// TestClose: closing a subscription or the hub closes the queues, twice
// is harmless, and a closed hub refuses subscribers.
func TestClose(t *testing.T) {
	h := New()
	a, _ := h.Subscribe()
	b, _ := h.Subscribe()
	a.Close()
	a.Close()
	if _, ok := <-a.C(); ok {
		t.Error("a closed subscription still delivers")
	}
	h.Publish(mac)
	if got, ok := <-b.C(); !ok || got != mac {
		t.Errorf("got %v, %v, want %v", got, ok, mac)
	}
	h.Close()
	h.Close()
	b.Close()
	if _, ok := <-b.C(); ok {
		t.Error("the hub closed, yet its subscription delivers")
	}
	if _, ok := h.Subscribe(); ok {
		t.Error("a closed hub took a subscriber")
	}
	if n := h.Subscribers(); n != 0 {
		t.Errorf("got %d subscribers after Close, want 0", n)
	}
}
