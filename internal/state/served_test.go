package state

import (
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// TestServed: a served config is kept for a recorded machine only, read
// back as stored, and forgotten with the machine; MaskTag is stable per
// value and differs between values.
func TestServed(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mac := machine.MustParseMAC("52:54:00:00:00:01")
	sv := Served{At: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Hash: "ab", Size: 3, Config: "a: 1\n"}

	if ok, err := s.PutServed(mac, sv); err != nil || ok {
		t.Fatalf("no record: PutServed = %v, %v; want false, nil", ok, err)
	}
	if _, ok, err := s.Served(mac); err != nil || ok {
		t.Fatalf("no record: Served ok=%v err=%v", ok, err)
	}
	if _, err := s.Update(mac, func(m *Machine, _ bool) error { m.State = machine.Pending; return nil }); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.PutServed(mac, sv); err != nil || !ok {
		t.Fatalf("PutServed = %v, %v; want true, nil", ok, err)
	}
	got, ok, err := s.Served(mac)
	if err != nil || !ok || !got.At.Equal(sv.At) || got.Hash != sv.Hash || got.Size != sv.Size || got.Config != sv.Config {
		t.Fatalf("Served: got %+v ok=%v err=%v, want %+v", got, ok, err, sv)
	}
	if _, err := s.Forget(mac); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Served(mac); ok {
		t.Error("served config kept after Forget")
	}

	if a, b := s.MaskTag("x"), s.MaskTag("x"); a != b || len(a) != 8 {
		t.Errorf("MaskTag(x) = %q then %q, want one 8-hex tag", a, b)
	}
	if s.MaskTag("x") == s.MaskTag("y") {
		t.Error("MaskTag: x and y share a tag")
	}
}
