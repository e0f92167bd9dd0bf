package secrets

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics, and whatever it accepts it writes back
// (Marshal) in a form it reads to the same bundle, which marshals to the
// same bytes again.
func FuzzParse(f *testing.F) {
	f.Add(readFixture(f))
	f.Add([]byte("cluster: {id: a, secret: b}\n"))
	f.Add([]byte("certs:\n    os:\n        crt: LS0t\n        key: \"\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Parse(data)
		if err != nil {
			return
		}
		out, err := b.Marshal()
		if err != nil {
			t.Fatalf("marshal of a parsed bundle: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("parse of a marshalled bundle: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, b) {
			t.Fatal("round trip changed the bundle")
		}
		out2, err := again.Marshal()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("marshal is not stable (%v)", err)
		}
	})
}
