package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// crashCopy opens a copy of the store's database file, made while the
// store is open, as a kill -9 at this instant would leave it: what is in
// it was committed, whatever the store still holds in memory.
func crashCopy(t *testing.T, dir string) *Store {
	t.Helper()
	to := t.TempDir()
	for _, name := range []string{DBFile, SecretFile} {
		in, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(to, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return openStore(t, to, Options{BackupKeep: -1})
}

// TestAppendLog: appendLog's result, as bytes (each element it writes
// after a '\n'), for logs of either layout, with and without the last
// element replaced.
func TestAppendLog(t *testing.T) {
	for _, tc := range []struct {
		name    string
		log     string
		add     []string
		replace bool
		limit   int
		want    string
		ok      bool
	}{
		{name: "no log", log: "", add: []string{`{"a":1}`}, limit: 3, want: "[\n{\"a\":1}]", ok: true},
		{name: "empty", log: `[]`, add: []string{`1`, `2`}, limit: 3, want: "[\n1,\n2]", ok: true},
		{name: "appended", log: `[1,2]`, add: []string{`3`}, limit: 3, want: "[\n1,2,\n3]", ok: true},
		{name: "oldest dropped", log: `[1,2,3]`, add: []string{`4`}, limit: 3, want: "[\n2,3,\n4]", ok: true},
		{name: "more added than the bound", log: `[1,2]`, add: []string{`3`, `4`, `5`, `6`}, limit: 3, want: "[\n4,\n5,\n6]", ok: true},
		{name: "nothing added", log: `[1,2]`, add: nil, limit: 3, want: "[\n1,2]", ok: true},
		{name: "white space", log: " [ 1 ,\n 2 ] ", add: []string{`3`}, limit: 2, want: "[\n2,\n3]", ok: true},
		{name: "strings with delimiters", log: `[{"d":"a],{\"b"},{"d":"c,\\"},{"d":"[x"}]`, add: []string{`{"d":"y"}`}, limit: 3, want: "[\n{\"d\":\"c,\\\\\"},{\"d\":\"[x\"},\n{\"d\":\"y\"}]", ok: true},
		{name: "nested", log: `[[1,[2]],{"a":[3,4]}]`, add: []string{`5`}, limit: 2, want: "[\n{\"a\":[3,4]},\n5]", ok: true},
		{name: "last replaced, old layout", log: `[{"a":1},{"a":2}]`, add: []string{`{"a":3}`}, replace: true, limit: 3, want: "[\n{\"a\":1},\n{\"a\":3}]", ok: true},
		{name: "last replaced, new layout", log: "[\n{\"a\":1},\n{\"a\":\"x,}\\\"\"}]", add: []string{`{"a":3}`, `{"a":4}`}, replace: true, limit: 3, want: "[\n{\"a\":1},\n{\"a\":3},\n{\"a\":4}]", ok: true},
		{name: "the only one replaced", log: "[\n{\"a\":1}]", add: []string{`{"a":2}`}, replace: true, limit: 3, want: "[\n{\"a\":2}]", ok: true},
		{name: "replaced in a full log", log: "[\n{\"a\":1},\n{\"a\":2},\n{\"a\":3}]", add: []string{`{"a":4}`, `{"a":5}`}, replace: true, limit: 3, want: "[\n{\"a\":2},\n{\"a\":4},\n{\"a\":5}]", ok: true},
		{name: "a newline not before the last", log: "[\n{\"a\":1},{\"a\":2}]", add: []string{`{"a":3}`}, replace: true, limit: 3, want: "[\n{\"a\":1},\n{\"a\":3}]", ok: true},
		{name: "nothing to replace", log: `[]`, add: []string{`{"a":3}`}, replace: true, limit: 3, want: "[\n{\"a\":3}]", ok: true},
		{name: "an object", log: `{"a":1}`, add: []string{`1`}, limit: 3},
		{name: "not closed", log: `[1,2`, add: []string{`1`}, limit: 3},
		{name: "empty element", log: `[1,,2]`, add: []string{`1`}, limit: 3},
		{name: "trailing comma", log: `[1,2,]`, add: []string{`1`}, limit: 3},
		{name: "after the array", log: `[1]x`, add: []string{`1`}, limit: 3},
		{name: "blank", log: " ", add: []string{`1`}, limit: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log []byte
			if tc.log != "" {
				log = []byte(tc.log)
			}
			var add [][]byte
			for _, a := range tc.add {
				add = append(add, []byte(a))
			}
			got, n, ok := appendLog(log, -1, add, tc.replace, tc.limit)
			if ok != tc.ok || string(got) != tc.want {
				t.Errorf("got %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
			if !ok {
				return
			}
			// Told how many elements the log holds, it scans only those
			// it drops (and finds the last from the end), with the same
			// result.
			var held []json.RawMessage
			if log != nil {
				if err := json.Unmarshal(log, &held); err != nil {
					t.Fatal(err)
				}
			}
			known, kn, kok := appendLog(log, len(held), add, tc.replace, tc.limit)
			if !kok || string(known) != tc.want || kn != n {
				t.Errorf("with the count: got %q, %d, %v; want %q, %d", known, kn, kok, tc.want, n)
			}
		})
	}
}

// FuzzAppendLog: for any JSON array, appendLog's result is the array of
// its elements (the last left out when replaced) and the added ones, the
// newest limit of them, as decoding and encoding would make it; so is
// appending to that result, with or without its count (its last element
// then found from the end).
func FuzzAppendLog(f *testing.F) {
	f.Add([]byte(`[{"time":"2026-11-24T12:00:00Z","kind":"dhcp","detail":"a,]\"}"}]`), "x", uint8(3), uint8(2), false)
	f.Add([]byte(` [ 1 , "2" , [3] , {"4":[5]} ] `), "", uint8(1), uint8(1), true)
	f.Add([]byte(`[]`), `"]`, uint8(4), uint8(0), true)
	f.Add([]byte("[\n{\"a\":\"\\n\"},{\"b\":1}]"), "\n", uint8(4), uint8(2), true)
	f.Fuzz(func(t *testing.T, log []byte, detail string, limit, n uint8, replace bool) {
		var old []json.RawMessage
		if json.Unmarshal(log, &old) != nil || old == nil {
			t.Skip("not a JSON array")
		}
		if limit == 0 {
			limit = 1
		}
		var add [][]byte
		for i := range int(n % 8) {
			v, err := json.Marshal(machine.Event{Kind: machine.EventKind(fmt.Sprint(i)), Detail: detail})
			if err != nil {
				t.Fatal(err)
			}
			add = append(add, v)
		}
		check := func(log []byte, old []json.RawMessage) ([]byte, []json.RawMessage) {
			t.Helper()
			got, count, ok := appendLog(log, -1, add, replace, int(limit))
			if !ok {
				t.Fatalf("appendLog(%q): not ok, yet it is a JSON array", log)
			}
			if known, kc, kok := appendLog(log, len(old), add, replace, int(limit)); !kok || string(known) != string(got) || kc != count {
				t.Fatalf("appendLog(%q) with its count: %q, %d, %v; without: %q, %d", log, known, kc, kok, got, count)
			}
			var elems []json.RawMessage
			if err := json.Unmarshal(got, &elems); err != nil {
				t.Fatalf("appendLog(%q) = %q: %v", log, got, err)
			}
			want := slices.Clone(old)
			if replace && len(want) > 0 && len(add) > 0 {
				want = want[:len(want)-1]
			}
			for _, a := range add {
				want = append(want, a)
			}
			want = want[max(0, len(want)-int(limit)):]
			if len(elems) != len(want) || count != len(want) {
				t.Fatalf("appendLog(%q) = %q: %d elements, want %d", log, got, len(elems), len(want))
			}
			for i := range want {
				if !jsonEqual(t, elems[i], want[i]) {
					t.Fatalf("appendLog(%q) = %q: element %d is %s, want %s", log, got, i, elems[i], want[i])
				}
			}
			return got, elems
		}
		check(check(log, old))
	})
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// TestApplyOnDiskWhenItReturns: what Apply stored is in the database
// file when it returns, as a crash copy shows; so is Update's.
func TestApplyOnDiskWhenItReturns(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Now: fakeClock()})
	r := s.Apply(Change{MAC: macN(1), Fn: func(m *Machine, exists bool) error {
		if exists {
			return errors.New("a new record was expected")
		}
		m.State = machine.Installing
		m.Events = append(m.Events, s.Event(machine.EventConfig, "", 100))
		return nil
	}, Served: &Served{Hash: "abc", Size: 100, Config: "masked"}})
	if r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	if _, err := s.Update(macN(2), func(m *Machine, _ bool) error { m.State = machine.Installed; return nil }); err != nil {
		t.Fatal(err)
	}
	c := crashCopy(t, dir)
	m, ok, err := c.Get(macN(1))
	if err != nil || !ok || m.State != machine.Installing || len(m.Events) != 1 || m.Events[0].Kind != machine.EventConfig {
		t.Errorf("crash copy: got %+v, %v, %v; want installing with its config event", m, ok, err)
	}
	if sv, ok, err := c.Served(macN(1)); err != nil || !ok || sv.Hash != "abc" {
		t.Errorf("crash copy: served %+v, %v, %v; want the one Apply stored", sv, ok, err)
	}
	if m, ok, _ := c.Get(macN(2)); !ok || m.State != machine.Installed {
		t.Errorf("crash copy: got %+v, %v; want the machine Update stored", m, ok)
	}
}

// TestApplyConcurrentTransition: 32 writers race to move one pending
// machine to installing; exactly one sees it pending, and every one's
// event is in the log.
func TestApplyConcurrentTransition(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	if _, err := s.Update(macN(1), func(m *Machine, _ bool) error { m.State = machine.Pending; return nil }); err != nil {
		t.Fatal(err)
	}
	var transitions atomic.Int32
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			r := s.Apply(Change{MAC: macN(1), Fn: func(m *Machine, _ bool) error {
				if m.State == machine.Pending {
					m.State = machine.Installing
					transitions.Add(1)
				}
				m.Events = append(m.Events, s.Event(machine.EventConfig, fmt.Sprint(i), 0))
				return nil
			}})
			if r[0].Err != nil {
				t.Error(r[0].Err)
			}
		})
	}
	wg.Wait()
	if n := transitions.Load(); n != 1 {
		t.Errorf("pending → installing %d times, want once", n)
	}
	m, _, err := s.Get(macN(1))
	if err != nil || m.State != machine.Installing || len(m.Events) != 32 {
		t.Errorf("got %s with %d events (%v), want installing with 32", m.State, len(m.Events), err)
	}
	if !slices.IsSortedFunc(m.Events, byTime) {
		t.Error("events out of time order")
	}
}

// TestApplyEvents: appended events keep the log bounded and in time
// order, events older than the stored log merged into place; the
// summary's LastSeen and last event follow.
func TestApplyEvents(t *testing.T) {
	clk := newClock()
	s := openStore(t, t.TempDir(), Options{Now: clk.Now, MaxEvents: 4})
	appendAt := func(at time.Time, details ...string) {
		t.Helper()
		r := s.Apply(Change{MAC: macN(1), Fn: func(m *Machine, _ bool) error {
			m.State = machine.Pending
			for _, d := range details {
				m.Events = append(m.Events, machine.Event{Time: at, Kind: machine.EventTFTP, Detail: d})
			}
			return nil
		}})
		if r[0].Err != nil {
			t.Fatal(r[0].Err)
		}
		if len(r[0].Machine.Events) != len(details) {
			t.Errorf("Apply returned %d events, want the %d added", len(r[0].Machine.Events), len(details))
		}
	}
	t0 := clk.Now()
	appendAt(t0.Add(1*time.Second), "a", "b")
	appendAt(t0.Add(2*time.Second), "c", "d", "e")
	appendAt(t0.Add(3*time.Second), "f")
	appendAt(t0.Add(2500*time.Millisecond), "late") // older than the newest: merged into place
	m, _, err := s.Get(macN(1))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range m.Events {
		got = append(got, e.Detail)
	}
	if want := "d e late f"; strings.Join(got, " ") != want {
		t.Errorf("log: got %v, want the newest 4 in time order, %q", got, want)
	}
	if !slices.IsSortedFunc(m.Events, byTime) {
		t.Errorf("log out of time order: %v", m.Events)
	}
	l, err := s.List()
	if err != nil || len(l) != 1 || l[0].Last == nil || l[0].Last.Detail != "f" || !l[0].LastSeen.Equal(t0.Add(3*time.Second)) {
		t.Errorf("summary: got %+v (%v), want last event f at %s", l, err, t0.Add(3*time.Second))
	}
	if p, ok, err := s.Peek(macN(1)); err != nil || !ok || !p.LastSeen.Equal(t0.Add(3*time.Second)) || p.State != machine.Pending {
		t.Errorf("Peek: got %+v, %v, %v", p, ok, err)
	}
}

// TestApplyPartialFailure: a change whose Fn fails stores nothing of
// itself (its served config included); the others in the same call are
// stored.
func TestApplyPartialFailure(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	boom := errors.New("boom")
	set := func(st machine.State) func(*Machine, bool) error {
		return func(m *Machine, _ bool) error { m.State = st; return nil }
	}
	rs := s.Apply(
		Change{MAC: macN(1), Fn: set(machine.Pending)},
		Change{MAC: macN(2), Fn: func(*Machine, bool) error { return boom }, Served: &Served{Hash: "x"}},
		Change{MAC: macN(3), Fn: set(machine.Local)},
	)
	if rs[0].Err != nil || rs[2].Err != nil || !errors.Is(rs[1].Err, boom) {
		t.Fatalf("results: %+v", rs)
	}
	for i, want := range map[int]bool{1: true, 2: false, 3: true} {
		if _, ok, _ := s.Get(macN(i)); ok != want {
			t.Errorf("machine %d stored: %v, want %v", i, ok, want)
		}
	}
	if _, ok, _ := s.Served(macN(2)); ok {
		t.Error("the failed change's served config was stored")
	}
	// A served config alone is kept only for a machine with a record.
	rs = s.Apply(Change{MAC: macN(1), Served: &Served{Hash: "y"}}, Change{MAC: macN(4), Served: &Served{Hash: "z"}})
	if rs[0].Err != nil || rs[1].Err != nil {
		t.Fatalf("results: %+v", rs)
	}
	if sv, ok, _ := s.Served(macN(1)); !ok || sv.Hash != "y" {
		t.Errorf("served of machine 1: %+v, %v", sv, ok)
	}
	if _, ok, _ := s.Served(macN(4)); ok {
		t.Error("a served config was kept for a machine without a record")
	}
}

// TestApplyAfterClose: a write after Close fails and stores nothing.
func TestApplyAfterClose(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if r := s.Apply(Change{MAC: macN(1), Fn: func(*Machine, bool) error { return nil }}); r[0].Err == nil {
		t.Error("Apply after Close: no error")
	}
}

// TestRepeatOnOldLayout: repeats fold into the last event of a log
// written before each element followed a '\n' (as one json.Marshal),
// with the log's length known and after a reopen (unknown); a lone
// repeat rewrites only the summary, and a log rewritten is in the layout
// whose last element is found from the end.
func TestRepeatOnOldLayout(t *testing.T) {
	dir := t.TempDir()
	clock := fakeClock()
	s := openStore(t, dir, Options{Now: clock, BackupKeep: -1})
	mac := macN(7)
	apply := func(evs ...machine.Event) {
		t.Helper()
		if r := s.Apply(Change{MAC: mac, Fn: func(m *Machine, _ bool) error {
			m.State = machine.Pending
			m.Events = append(m.Events, evs...)
			return nil
		}})[0]; r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	raw := func() string {
		t.Helper()
		var v []byte
		if err := s.db.View(func(tx *bolt.Tx) error {
			v = slices.Clone(tx.Bucket(eventsBucket).Get([]byte(mac.String())))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	// oldLayout rewrites the log as a tinderbox before the layout did.
	oldLayout := func() {
		t.Helper()
		m, _, err := s.Get(mac)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.db.Update(func(tx *bolt.Tx) error {
			v, err := json.Marshal(m.Events)
			if err != nil {
				return err
			}
			return tx.Bucket(eventsBucket).Put([]byte(mac.String()), v)
		}); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(raw(), "\n") {
			t.Fatalf("the old layout holds a newline: %q", raw())
		}
	}
	type entry struct {
		kind  machine.EventKind
		count int
	}
	check := func(want ...entry) machine.Event {
		t.Helper()
		m, _, err := s.Get(mac)
		if err != nil {
			t.Fatal(err)
		}
		var got []entry
		for _, e := range m.Events {
			got = append(got, entry{e.Kind, e.Times()})
		}
		if !slices.Equal(got, want) {
			t.Fatalf("events %+v, want %+v", got, want)
		}
		return m.Events[len(m.Events)-1]
	}
	offer := func() machine.Event { return s.Event(machine.EventDHCPOffer, "offer", 0) }
	script := func() machine.Event { return s.Event(machine.EventScript, "netboot", 0) }
	kernel := func() machine.Event { return s.Event(machine.EventKernel, "kernel-amd64", 9) }

	first := offer()
	apply(first, script())
	oldLayout()
	before := raw()
	apply(script())
	if raw() != before {
		t.Errorf("a lone repeat rewrote the log: %q, was %q", raw(), before)
	}
	check(entry{machine.EventDHCPOffer, 1}, entry{machine.EventScript, 2})
	apply(script(), kernel()) // length known, no '\n'
	check(entry{machine.EventDHCPOffer, 1}, entry{machine.EventScript, 3}, entry{machine.EventKernel, 1})
	apply(kernel()) // a lone repeat: the log's kernel is stale
	oldLayout()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, Options{Now: clock, BackupKeep: -1})
	apply(kernel())                                                    // length unknown: the summary alone
	apply(kernel(), offer())                                           // length unknown: scanned
	apply(offer(), script())                                           // length known, the new layout
	apply(script())                                                    // the summary alone
	apply(s.Event(machine.EventTransition, "pending → installing", 0)) // after a run the log holds stale
	last := check(entry{machine.EventDHCPOffer, 1}, entry{machine.EventScript, 3}, entry{machine.EventKernel, 4},
		entry{machine.EventDHCPOffer, 2}, entry{machine.EventScript, 2}, entry{machine.EventTransition, 1})
	if m, _, _ := s.Get(mac); !m.Events[0].Time.Equal(first.Time) || m.Events[0].Count != 0 {
		t.Errorf("the first event: %+v, want %+v", m.Events[0], first)
	}
	v := raw()
	i := strings.LastIndexByte(v, '\n')
	var e machine.Event
	if i < 0 || json.Unmarshal([]byte(strings.TrimSuffix(v[i+1:], "]")), &e) != nil || e != last {
		t.Errorf("the log %q: want its last element after its last newline", v)
	}
	var stored []machine.Event
	if err := json.Unmarshal([]byte(v), &stored); err != nil || len(stored) != 6 || stored[4].Count != 2 {
		t.Errorf("the log as stored: %+v, %v; want 6 events, the run of scripts up to date", stored, err)
	}
}
