package state

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// changes records OnChange calls.
type changes struct {
	mu   sync.Mutex
	seen []Machine
}

func (c *changes) add(m Machine) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, m)
}

// forgotten returns the MACs reported as forgotten, in order.
func (c *changes) forgotten() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.seen {
		if m.State == "" {
			out = append(out, m.MAC.String())
		}
	}
	return out
}

func macN(i int) machine.MAC {
	return machine.MustParseMAC(fmt.Sprintf("52:54:00:00:%02x:%02x", i/256, i%256))
}

func TestClip(t *testing.T) {
	tests := []struct {
		name, in string
		n        int
		want     string
	}{
		{name: "short", in: "abc", n: 5, want: "abc"},
		{name: "exact", in: "abcde", n: 5, want: "abcde"},
		{name: "long", in: "abcdefgh", n: 5, want: "ab" + ClipMark},
		{name: "cut inside a rune", in: "aéééé", n: 6, want: "aé" + ClipMark},
		{name: "invalid bytes", in: "a\xff\xfeb", n: 10, want: "a?b"},
		{name: "long and invalid", in: "\xff\xff\xff\xffabcdef", n: 6, want: "?" + ClipMark},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := clip(tt.in, tt.n)
			if got != tt.want || len(got) > tt.n || !utf8.ValidString(got) {
				t.Errorf("clip(%q, %d) = %q (%d bytes), want %q", tt.in, tt.n, got, len(got), tt.want)
			}
		})
	}
}

// rawSize returns how many bytes the record of mac takes in each bucket.
func rawSize(t *testing.T, s *Store, mac machine.MAC) (summary, events int) {
	t.Helper()
	if err := s.db.View(func(tx *bolt.Tx) error {
		summary = len(tx.Bucket(machinesBucket).Get([]byte(mac.String())))
		events = len(tx.Bucket(eventsBucket).Get([]byte(mac.String())))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return summary, events
}

// TestUpdateBoundsRecords: whatever a caller puts in a record, 500 KB
// values included, what is stored and returned is clipped to the limits.
func TestUpdateBoundsRecords(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	huge := strings.Repeat("<", 500<<10) // each '<' takes six bytes in JSON
	mac := macN(1)
	m, err := s.Update(mac, func(m *Machine, _ bool) error {
		m.State = machine.Discovered
		m.UUID, m.IP, m.Arch = huge, huge, machine.Arch(huge)
		for range 2 * DefaultMaxEvents {
			m.Events = append(m.Events, machine.Event{Kind: machine.EventKind(huge), Detail: huge})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(mac)
	if err != nil || !ok {
		t.Fatalf("Get: ok=%v err=%v", ok, err)
	}
	for _, r := range []struct {
		name string
		m    Machine
	}{{"returned by Update", m}, {"read back", got}} {
		for _, f := range []struct {
			field, v string
			max      int
		}{
			{"UUID", r.m.UUID, MaxUUID}, {"IP", r.m.IP, MaxIP}, {"Arch", string(r.m.Arch), MaxName},
			{"event kind", string(r.m.Events[0].Kind), MaxName}, {"event detail", r.m.Events[0].Detail, MaxDetail},
		} {
			if len(f.v) > f.max || !strings.HasSuffix(f.v, ClipMark) || !strings.HasPrefix(f.v, "<") {
				t.Errorf("%s: %s is %d bytes (%.10q…), want at most %d ending in %q", r.name, f.field, len(f.v), f.v, f.max, ClipMark)
			}
		}
		if len(r.m.Events) != DefaultMaxEvents {
			t.Errorf("%s: %d events, want %d", r.name, len(r.m.Events), DefaultMaxEvents)
		}
	}
	sum, evs := rawSize(t, s, mac)
	if sum+evs > 128<<10 {
		t.Errorf("stored record: summary %d bytes, events %d bytes; want under 128 KiB in all", sum, evs)
	}
}

// TestListAndCountReadNoEvents: with a machine's event log unreadable,
// listing and counting still work (they never read it); only Get fails.
func TestListAndCountReadNoEvents(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{Now: fakeClock()})
	for i, st := range []machine.State{machine.Pending, machine.Installed, machine.Installed} {
		if _, err := s.Update(macN(i), func(m *Machine, _ bool) error {
			m.State = st
			m.Events = append(m.Events, s.Event(machine.EventKernel, "kernel-amd64", 1), s.Event(machine.EventConfig, "", 2))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(eventsBucket).Put([]byte(macN(1).String()), []byte("not JSON"))
	}); err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil || len(list) != 3 {
		t.Fatalf("List: %d machines, %v; want 3", len(list), err)
	}
	if l := list[1].Last; l == nil || l.Kind != machine.EventConfig || l.Bytes != 2 {
		t.Errorf("List: last event %+v, want the config event", l)
	}
	if got := s.CountByState(); got[machine.Installed] != 2 || got[machine.Pending] != 1 || len(got) != 2 {
		t.Errorf("CountByState: got %v, want 2 installed, 1 pending", got)
	}
	if _, _, err := s.Get(macN(1)); err == nil {
		t.Error("Get of a record with a corrupt event log: got no error")
	}
}

// writeOldLayout writes a database as releases before the split did: the
// event log inside each machine's record, and no events bucket.
func writeOldLayout(t *testing.T, dir string, recs []Machine) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, DBFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(machinesBucket)
		if err != nil {
			return err
		}
		for _, m := range recs {
			v, err := json.Marshal(m)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(m.MAC.String()), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestOpenMigratesOldLayout opens a database of the older layout, grown
// as the incident that led to the split grew one (500 KB UUIDs): records
// are split, bounded, and the file compacted.
func TestOpenMigratesOldLayout(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs []Machine
	for i := range 20 {
		recs = append(recs, Machine{
			MAC: macN(i), State: machine.Discovered, UUID: strings.Repeat("u", 500<<10), IP: "192.0.2.9",
			FirstSeen: at, LastSeen: at.Add(time.Duration(i) * time.Second), Generation: 2,
			Events: []machine.Event{
				{Time: at, Kind: machine.EventDHCPOffer, Detail: "offer ipxe.efi"},
				{Time: at.Add(time.Duration(i) * time.Second), Kind: machine.EventScript, Detail: "maintenance"},
			},
		})
	}
	recs = append(recs, Machine{MAC: macN(100), State: machine.Installed, FirstSeen: at, LastSeen: at})
	writeOldLayout(t, dir, recs)
	path := filepath.Join(dir, DBFile)
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	s := openStore(t, dir, Options{})
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if after.Size() >= before.Size()/4 {
		t.Errorf("database %d bytes before, %d after migrating: want the clipped values' space given back", before.Size(), after.Size())
	}
	m, ok, err := s.Get(macN(3))
	if err != nil || !ok {
		t.Fatalf("Get: ok=%v err=%v", ok, err)
	}
	if len(m.Events) != 2 || m.Events[1].Detail != "maintenance" || m.Generation != 2 || m.IP != "192.0.2.9" || len(m.UUID) > MaxUUID {
		t.Errorf("migrated record: got %+v", m)
	}
	list, err := s.List()
	if err != nil || len(list) != 21 {
		t.Fatalf("List: %d machines, %v; want 21", len(list), err)
	}
	if l := list[3].Last; l == nil || l.Detail != "maintenance" {
		t.Errorf("List: last event %+v, want the script event", l)
	}
	if l := list[20].Last; l != nil {
		t.Errorf("machine without events: last event %+v, want none", l)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(machinesBucket).Get([]byte(macN(3).String()))
		if strings.Contains(string(v), `"events"`) {
			t.Errorf("summary still holds the event log: %s", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := s.CountByState(); got[machine.Discovered] != 20 || got[machine.Installed] != 1 {
		t.Errorf("CountByState after migration: got %v", got)
	}
}

// TestDiscoveredMax: beyond the bound the least recently seen discovered
// records go, reported as forgotten; records in other states, however
// old, stay.
func TestDiscoveredMax(t *testing.T) {
	var ch changes
	clk := newClock()
	s := openStore(t, t.TempDir(), Options{DiscoveredMax: 3, Now: clk.Now, OnChange: ch.add})
	touch := func(i int, st machine.State) {
		t.Helper()
		clk.Advance(time.Second)
		if _, err := s.Update(macN(i), func(m *Machine, _ bool) error {
			m.State = st
			m.Events = append(m.Events, s.Event(machine.EventDHCPOffer, "offer", 0))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	touch(100, machine.Installed) // the oldest record of all
	touch(101, machine.Pending)
	for i := range 3 {
		touch(i, machine.Discovered)
	}
	touch(0, machine.Discovered) // seen again: now the newest
	touch(3, machine.Discovered) // one too many: 1, the least recently seen, goes
	touch(4, machine.Discovered) // and then 2
	touch(101, machine.Discovered)
	if got, want := ch.forgotten(), []string{macN(1).String(), macN(2).String(), macN(0).String()}; !slices.Equal(got, want) {
		t.Errorf("forgotten: got %v, want %v", got, want)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, m := range list {
		kept = append(kept, m.MAC.String())
	}
	if want := []string{macN(3).String(), macN(4).String(), macN(100).String(), macN(101).String()}; !slices.Equal(kept, want) {
		t.Errorf("kept: got %v, want %v", kept, want)
	}
	if got := s.CountByState(); got[machine.Discovered] != 3 || got[machine.Installed] != 1 {
		t.Errorf("CountByState: got %v, want 3 discovered, 1 installed", got)
	}
}

// TestSweepExpiresDiscovered: a sweep forgets the discovered records last
// seen longer than the TTL ago, and nothing else.
func TestSweepExpiresDiscovered(t *testing.T) {
	var ch changes
	clk := newClock()
	s := openStore(t, t.TempDir(), Options{DiscoveredTTL: time.Hour, Now: clk.Now, OnChange: ch.add})
	put := func(i int, st machine.State) {
		t.Helper()
		if _, err := s.Update(macN(i), func(m *Machine, _ bool) error { m.State = st; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	put(0, machine.Discovered)
	put(1, machine.Installed)
	clk.Advance(50 * time.Minute)
	put(2, machine.Discovered)
	clk.Advance(20 * time.Minute) // 0 was last seen 70 minutes ago, 2 only 20
	n, err := s.Sweep()
	if err != nil || n != 1 {
		t.Fatalf("Sweep: %d forgotten, %v; want 1", n, err)
	}
	if got := ch.forgotten(); !slices.Equal(got, []string{macN(0).String()}) {
		t.Errorf("forgotten: got %v, want only %s", got, macN(0))
	}
	for i, want := range []bool{false, true, true} {
		if _, ok, _ := s.Get(macN(i)); ok != want {
			t.Errorf("%s recorded after the sweep: got %v, want %v", macN(i), ok, want)
		}
	}
	if n, err := s.Sweep(); n != 0 || err != nil {
		t.Errorf("second Sweep: %d forgotten, %v; want none", n, err)
	}
}

func TestSweepNeverWithoutTTL(t *testing.T) {
	clk := newClock()
	s := openStore(t, t.TempDir(), Options{Now: clk.Now})
	if _, err := s.Update(macN(0), func(m *Machine, _ bool) error { m.State = machine.Discovered; return nil }); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * 365 * 24 * time.Hour)
	if n, err := s.Sweep(); n != 0 || err != nil {
		t.Errorf("Sweep with no TTL: %d forgotten, %v; want none", n, err)
	}
}

// TestExpireSweepsOnTick drives Expire with a hand-fed tick: each tick
// sweeps, and cancelling returns nil.
func TestExpireSweepsOnTick(t *testing.T) {
	clk := newClock()
	forgot := make(chan machine.MAC, 10)
	s := openStore(t, t.TempDir(), Options{DiscoveredTTL: time.Minute, Now: clk.Now, OnChange: func(m Machine) {
		if m.State == "" {
			forgot <- m.MAC
		}
	}})
	if _, err := s.Update(macN(7), func(m *Machine, _ bool) error { m.State = machine.Discovered; return nil }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	tick := make(chan time.Time)
	done := make(chan error, 1)
	go func() { done <- s.Expire(ctx, tick) }()
	clk.Advance(2 * time.Minute)
	tick <- clk.Now()
	if got := <-forgot; got != macN(7) {
		t.Errorf("forgotten on tick: got %s, want %s", got, macN(7))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Expire after cancel: got %v, want nil", err)
	}
}

// TestOpenAppliesBounds: a database holding more discovered records than
// the bound (or older than the TTL) is brought within it on Open.
func TestOpenAppliesBounds(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s, err := Open(dir, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		clk.Advance(time.Minute)
		if _, err := s.Update(macN(i), func(m *Machine, _ bool) error { m.State = machine.Discovered; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// 0 is past the TTL; of the other five, the newest three stay.
	clk.Advance(5*time.Minute + 30*time.Second)
	s2 := openStore(t, dir, Options{DiscoveredMax: 3, DiscoveredTTL: 10 * time.Minute, Now: clk.Now})
	list, err := s2.List()
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, m := range list {
		kept = append(kept, m.MAC.String())
	}
	if want := []string{macN(3).String(), macN(4).String(), macN(5).String()}; !slices.Equal(kept, want) {
		t.Errorf("after Open: got %v, want %v", kept, want)
	}
}

func TestSweepInterval(t *testing.T) {
	for _, c := range []struct{ ttl, want time.Duration }{
		{24 * time.Hour, time.Minute}, {time.Minute, time.Minute}, {10 * time.Second, 10 * time.Second},
	} {
		if got := SweepInterval(c.ttl); got != c.want {
			t.Errorf("SweepInterval(%v) = %v, want %v", c.ttl, got, c.want)
		}
	}
}
