package kmsglog

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

var (
	macA = machine.MustParseMAC("52:54:00:00:00:0a")
	macB = machine.MustParseMAC("52:54:00:00:00:0b")
)

func msgs(lines []Line) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Msg
	}
	return out
}

func TestBufferRing(t *testing.T) {
	b := NewBuffer[machine.MAC](BufferOptions{Lines: 5})
	for i := range 12 {
		b.Add(macA, Line{Msg: fmt.Sprint(i)})
	}
	b.Add(macB, Line{Msg: "b"})
	tests := []struct {
		name string
		key  machine.MAC
		n    int
		want string
	}{
		{"all, after wrapping", macA, 0, "7 8 9 10 11"},
		{"last two", macA, 2, "10 11"},
		{"more than kept", macA, 50, "7 8 9 10 11"},
		{"other key", macB, 0, "b"},
		{"unknown key", machine.MAC{1}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(msgs(b.Lines(tt.key, tt.n)), " "); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestBufferBytes: a key's lines are bounded in bytes too; the newest
// line stays, however long.
func TestBufferBytes(t *testing.T) {
	b := NewBuffer[string](BufferOptions{Lines: 1000, Bytes: 10 * (lineOverhead + 100)})
	for i := range 50 {
		b.Add("k", Line{Msg: fmt.Sprintf("%03d", i) + strings.Repeat("x", 97)})
	}
	got := b.Lines("k", 0)
	if len(got) != 10 || !strings.HasPrefix(got[0].Msg, "040") || !strings.HasPrefix(got[9].Msg, "049") {
		t.Errorf("got %d lines from %.3s to %.3s, want the 10 newest, 040 to 049", len(got), got[0].Msg, got[len(got)-1].Msg)
	}
	huge := strings.Repeat("y", 100*(lineOverhead+100))
	b.Add("k", Line{Msg: huge})
	if got := b.Lines("k", 0); len(got) != 1 || got[0].Msg != huge {
		t.Errorf("got %d lines after a line over the bound, want just that line", len(got))
	}
}

// TestBufferKeys: beyond Keys, the least recently added-to key goes.
func TestBufferKeys(t *testing.T) {
	b := NewBuffer[int](BufferOptions{Keys: 3})
	for k := range 3 {
		b.Add(k, Line{Msg: "x"})
	}
	b.Add(0, Line{Msg: "y"}) // 0 is now the most recent; 1 the least
	b.Add(3, Line{Msg: "x"})
	if b.Len() != 3 || b.Lines(1, 0) != nil || len(b.Lines(0, 0)) != 2 || len(b.Lines(3, 0)) != 1 {
		t.Errorf("got %d keys, key 1 %v, key 0 %v: want 3 keys without key 1", b.Len(), b.Lines(1, 0), b.Lines(0, 0))
	}
	b.Forget(0)
	if b.Len() != 2 || b.Lines(0, 0) != nil {
		t.Errorf("key 0 is still there after Forget")
	}
}

func TestBufferSearch(t *testing.T) {
	b := NewBuffer[machine.MAC](BufferOptions{})
	for _, m := range []string{
		"[talos] task installTask (1/1): starting",
		"ata1: SATA link up",
		"[talos] phase install (3/4): FAILED",
		"[talos] install failed: disk /dev/sda not found",
	} {
		b.Add(macA, Line{Msg: m, Time: time.Unix(1, 0)})
	}
	tests := []struct{ q, want string }{
		{"failed", "[talos] phase install (3/4): FAILED|[talos] install failed: disk /dev/sda not found"},
		{"SATA", "ata1: SATA link up"},
		{"nothing like it", ""},
		{"", "[talos] task installTask (1/1): starting|ata1: SATA link up|[talos] phase install (3/4): FAILED|[talos] install failed: disk /dev/sda not found"},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			if got := strings.Join(msgs(b.Search(macA, tt.q)), "|"); got != tt.want {
				t.Errorf("Search(%q): got %q, want %q", tt.q, got, tt.want)
			}
		})
	}
	if got := b.Search(macB, ""); len(got) != 0 {
		t.Errorf("search of an unknown key: got %v, want nothing", got)
	}
}

// TestBufferSubscribe: a subscriber gets its key's new lines in order, a
// slow one is dropped without blocking Add, cancel and Close end
// subscriptions.
func TestBufferSubscribe(t *testing.T) {
	const queue = 8
	b := NewBuffer[machine.MAC](BufferOptions{SubscriberQueue: queue})
	b.Add(macA, Line{Msg: "before"})
	fast, cancelFast := b.Subscribe(macA)
	slow, _ := b.Subscribe(macA)
	other, cancelOther := b.Subscribe(macB)

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range queue * 4 {
			b.Add(macA, Line{Msg: fmt.Sprint(i)})
			if l := <-fast; l.Msg != fmt.Sprint(i) {
				t.Errorf("fast subscriber: got %q, want %d", l.Msg, i)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Add blocked on a slow subscriber")
	}
	n := 0
	for range slow {
		n++
	}
	if n != queue {
		t.Errorf("slow subscriber got %d lines before being dropped, want %d", n, queue)
	}
	if got := b.Subscribers(); got != 2 {
		t.Errorf("got %d subscribers, want 2 (fast and other)", got)
	}
	select {
	case l := <-other:
		t.Errorf("the subscriber of another key got %q", l.Msg)
	default:
	}

	cancelFast()
	cancelFast()
	if _, ok := <-fast; ok {
		t.Error("a cancelled subscription still delivers")
	}
	b.Close()
	b.Close()
	cancelOther()
	if _, ok := <-other; ok {
		t.Error("the buffer closed, yet its subscription delivers")
	}
	late, _ := b.Subscribe(macA)
	if _, ok := <-late; ok {
		t.Error("a closed buffer delivers to a new subscriber")
	}
	if got := len(b.Lines(macA, 0)); got != queue*4+1 {
		t.Errorf("after Close: %d lines readable, want %d", got, queue*4+1)
	}
}
