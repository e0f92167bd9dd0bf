package talosevents

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary bytes through the path the server runs
// on every request (DecodeRequest, then Decode) and asserts, beyond never
// panicking: every refusal wraps ErrMalformed; a decoded request encodes
// back to one that decodes the same; a decoded event of a known type
// encodes back to one that decodes the same; any other type comes back as
// Unknown with the request's type URL.
func FuzzDecodeRequest(f *testing.F) {
	golden, err := filepath.Glob(filepath.Join("testdata", "*.bin"))
	if err != nil || len(golden) == 0 {
		f.Fatalf("no golden requests in testdata (%v)", err)
	}
	for _, p := range golden {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(handRequest("x", "talos/runtime/machine.MachineStatusEvent", bField(2, bField(2, sField(1, "a")))))
	f.Add(handRequest("x", "type.googleapis.com/machine.RestartEvent", vField(1, 1)))

	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRequest(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeRequest: error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := DecodeRequest(appendRequest(nil, req.ID, req.ActorID, req.TypeURL, req.Value))
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if again.ID != req.ID || again.ActorID != req.ActorID || again.TypeURL != req.TypeURL || !bytes.Equal(again.Value, req.Value) {
			t.Fatalf("request round trip: got %#v, want %#v", again, req)
		}

		msg, err := Decode(req.TypeURL, req.Value)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode: error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if u, ok := msg.(Unknown); ok {
			if u.TypeURL != req.TypeURL {
				t.Fatalf("Unknown.TypeURL %q, want %q", u.TypeURL, req.TypeURL)
			}
			return
		}
		url, value, err := Marshal(msg)
		if err != nil {
			t.Fatalf("Marshal(%#v): %v", msg, err)
		}
		if messageName(url) != messageName(req.TypeURL) {
			t.Fatalf("Marshal named %q, the request %q", url, req.TypeURL)
		}
		back, err := Decode(url, value)
		if err != nil {
			t.Fatalf("re-encoded %#v does not decode: %v", msg, err)
		}
		if !reflect.DeepEqual(back, msg) {
			t.Fatalf("event round trip:\ngot  %#v\nwant %#v", back, msg)
		}
	})
}
