package state

import (
	"fmt"
	"testing"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// benchStore is a store of 5000 machines in every state, each with a full
// event log of 64 events; the discovered bound is lifted to hold them.
func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), Options{DiscoveredMax: 5000})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	s.db.NoSync = true // filling only; the benchmarks read
	for i := range 5000 {
		mac := machine.MustParseMAC(fmt.Sprintf("52:54:00:00:%02x:%02x", i/256, i%256))
		if _, err := s.Update(mac, func(m *Machine, _ bool) error {
			m.State = machine.States[i%len(machine.States)]
			m.UUID, m.IP, m.Arch = "8d5ae0f7-0000-4000-8000-000000000001", "192.0.2.50", machine.ArchAMD64
			for range 64 {
				m.Events = append(m.Events, s.Event(machine.EventTFTP, "ipxe.efi", 1000))
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	s.db.NoSync = false
	return s
}

// BenchmarkList is what GET /api/v1/machines and the machines page cost.
func BenchmarkList(b *testing.B) {
	s := benchStore(b)
	b.ReportAllocs()
	for b.Loop() {
		l, err := s.List()
		if err != nil || len(l) != 5000 {
			b.Fatal(len(l), err)
		}
	}
}

// BenchmarkCountByState is what a /metrics scrape costs
// (tinderbox_machines).
func BenchmarkCountByState(b *testing.B) {
	s := benchStore(b)
	b.ReportAllocs()
	for b.Loop() {
		if c := s.CountByState(); c[machine.Discovered] != 5000/len(machine.States)+1 {
			b.Fatal(c)
		}
	}
}

// BenchmarkGet reads one machine with its whole event log, as its page does.
func BenchmarkGet(b *testing.B) {
	s := benchStore(b)
	mac := machine.MustParseMAC("52:54:00:00:01:00")
	b.ReportAllocs()
	for b.Loop() {
		if m, ok, err := s.Get(mac); !ok || err != nil || len(m.Events) != 64 {
			b.Fatal(ok, err)
		}
	}
}
