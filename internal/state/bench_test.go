package state

import (
	"fmt"
	"sync"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/state/etcdtest"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// bootKinds are the kinds cycled through to fill a log with events no two
// neighbours of which are repeats (machine.Coalesce merges those).
var bootKinds = []machine.EventKind{machine.EventDHCPOffer, machine.EventTFTP, machine.EventScript}

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
			for j := range 64 {
				m.Events = append(m.Events, s.Event(bootKinds[j%len(bootKinds)], "ipxe.efi", 1000))
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

// writeBackends opens, for the write benchmarks, a bolt store and an etcd
// store on a three-member cluster on loopback whose members sync their
// log as a production etcd does: what a write costs on each.
func writeBackends(b *testing.B) []struct {
	name string
	s    Backend
} {
	b.Helper()
	bolt, err := Open(b.TempDir(), Options{BackupKeep: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bolt.Close() })
	cluster := etcdtest.NewWith(b, 3, etcdtest.Options{Fsync: true})
	return []struct {
		name string
		s    Backend
	}{{"bolt", bolt}, {"etcd", openEtcd(b, cluster, "/bench/", Options{})}}
}

// appendEvent is a boot step's write: one event on the machine's record.
func appendEvent(s Backend) func(m *Machine, _ bool) error {
	return func(m *Machine, _ bool) error {
		m.State = machine.Pending
		m.Events = append(m.Events, s.Event(machine.EventTFTP, "snponly.efi", 1000))
		return nil
	}
}

// BenchmarkUpdateWrite is one Update at a time (a Talos report), over 100
// machines.
func BenchmarkUpdateWrite(b *testing.B) {
	for _, be := range writeBackends(b) {
		b.Run(be.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := be.s.Update(macN(i%100), appendEvent(be.s)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkUpdateWriteParallel is Updates from concurrent requests, each
// goroutine on machines of its own: bolt's group commit and etcd's raft
// batching both share one sync among them.
func BenchmarkUpdateWriteParallel(b *testing.B) {
	for _, be := range writeBackends(b) {
		b.Run(be.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8)
			var next sync.Mutex
			g := 0
			b.RunParallel(func(pb *testing.PB) {
				next.Lock()
				base := 1000 * (g + 1)
				g++
				next.Unlock()
				i := 0
				for pb.Next() {
					if _, err := be.s.Update(macN(base+i%100), appendEvent(be.s)); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}

// BenchmarkApplyWrite is the write queue's drain: one Apply of 64
// machines' events.
func BenchmarkApplyWrite(b *testing.B) {
	for _, be := range writeBackends(b) {
		b.Run(be.name, func(b *testing.B) {
			b.ReportAllocs()
			changes := make([]Change, 64)
			for i := range changes {
				changes[i] = Change{MAC: macN(5000 + i), Fn: appendEvent(be.s)}
			}
			for b.Loop() {
				for _, r := range be.s.Apply(changes...) {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(changes)), "ns/change")
		})
	}
}

// BenchmarkDrainFullLogs is the write queue's drain in a storm: one
// Apply of 1000 machines whose logs are full (DefaultMaxEvents events,
// the newest a script event), each getting 3 new events. In distinct they
// are a DHCP offer, a TFTP transfer and a script, none a repeat of the
// one before, so every change appends 3 and drops the 3 oldest; in repeat
// they repeat the log's newest event (a machine fetching its script again
// and again), the case machine.Coalesce folds into that event. It reports
// the drain's time, bytes and allocations (one op is one drain of 1000
// changes), as the daemon commits it (synced).
func BenchmarkDrainFullLogs(b *testing.B) {
	for _, tt := range []struct {
		name  string
		added []machine.EventKind
	}{
		{"distinct", bootKinds},
		{"repeat", []machine.EventKind{machine.EventScript, machine.EventScript, machine.EventScript}},
	} {
		b.Run(tt.name, func(b *testing.B) { benchDrain(b, tt.added) })
	}
}

func benchDrain(b *testing.B, added []machine.EventKind) {
	const machines = 1000
	s, err := Open(b.TempDir(), Options{BackupKeep: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	s.db.NoSync = true // filling only
	fill := make([]Change, machines)
	for i := range fill {
		fill[i] = Change{MAC: macN(i), Fn: func(m *Machine, _ bool) error {
			m.State = machine.Pending
			m.UUID, m.IP, m.Arch = "8d5ae0f7-0000-4000-8000-000000000001", "192.0.2.50", machine.ArchAMD64
			// The newest (j = 63) is a script event.
			for j := range DefaultMaxEvents {
				m.Events = append(m.Events, s.Event(bootKinds[(j+2)%len(bootKinds)], "ipxe", 949))
			}
			return nil
		}}
	}
	for _, r := range s.Apply(fill...) {
		if r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	s.db.NoSync = false
	changes := make([]Change, machines)
	for i := range changes {
		changes[i] = Change{MAC: macN(i), Fn: func(m *Machine, _ bool) error {
			for _, k := range added {
				m.Events = append(m.Events, s.Event(k, "ipxe", 949))
			}
			return nil
		}}
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range s.Apply(changes...) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.StopTimer()
	if m, ok, err := s.Get(macN(machines - 1)); err != nil || !ok || len(m.Events) != DefaultMaxEvents {
		b.Fatalf("after the drains: ok=%v err=%v, %d events, want %d", ok, err, len(m.Events), DefaultMaxEvents)
	}
}
