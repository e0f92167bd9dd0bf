package bootflow

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// TestScriptQuery checks scriptQuery against url.URL.Query on the
// queries iPXE sends and on the odd ones.
func TestScriptQuery(t *testing.T) {
	tests := []struct {
		name, query                 string
		wantMAC, wantUUID, wantArch string
	}{
		{"ipxe", "mac=52-54-00-00-00-01&uuid=" + testUUID + "&arch=x86_64", "52-54-00-00-00-01", testUUID, "x86_64"},
		{"empty", "", "", "", ""},
		{"escaped", "mac=52%3A54%3A00%3A00%3A00%3A01&arch=x86+64", "52:54:00:00:00:01", "", "x86 64"},
		{"escaped key", "m%61c=a", "a", "", ""},
		{"first wins", "mac=a&mac=b", "a", "", ""},
		{"bad escape skipped", "mac=%zz&mac=b", "b", "", ""},
		{"bad key escape skipped", "%zz=1&mac=b", "b", "", ""},
		{"semicolon skipped", "mac=a;b&uuid=u", "", "u", ""},
		{"no value", "mac&arch=", "", "", ""},
		{"empty pairs", "&&mac=a&", "a", "", ""},
		{"long query", strings.Repeat("x=1&", maxFastPairs) + "mac=a", "a", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mac, uuid, arch := scriptQuery(&url.URL{RawQuery: tt.query})
			if mac != tt.wantMAC || uuid != tt.wantUUID || arch != tt.wantArch {
				t.Errorf("scriptQuery(%q) = %q, %q, %q; want %q, %q, %q", tt.query, mac, uuid, arch, tt.wantMAC, tt.wantUUID, tt.wantArch)
			}
		})
	}
}

// TestScriptQueryAllocatesNothing checks that the query iPXE sends costs
// no allocation to read.
func TestScriptQueryAllocatesNothing(t *testing.T) {
	u := &url.URL{RawQuery: "mac=52-54-00-00-00-01&uuid=" + testUUID + "&arch=x86_64"}
	if n := testing.AllocsPerRun(100, func() { scriptQuery(u) }); n != 0 {
		t.Errorf("scriptQuery: %v allocations, want 0", n)
	}
}

// FuzzScriptQuery checks that scriptQuery reads every query as
// url.URL.Query does.
func FuzzScriptQuery(f *testing.F) {
	for _, s := range []string{
		"mac=52-54-00-00-00-01&uuid=" + testUUID + "&arch=x86_64",
		"mac=%41&mac=b", "m%61c=%zz&mac=c", "uuid=a;b&arch=+", "mac=a=b&&arch",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		u := &url.URL{RawQuery: query}
		q := u.Query()
		mac, uuid, arch := scriptQuery(u)
		if mac != q.Get("mac") || uuid != q.Get("uuid") || arch != q.Get("arch") {
			t.Errorf("scriptQuery(%q) = %q, %q, %q; url.Values say %q, %q, %q", query, mac, uuid, arch, q.Get("mac"), q.Get("uuid"), q.Get("arch"))
		}
	})
}

// TestCanonicalUUIDAs checks that canonicalUUIDAs is canonicalUUID
// whatever the record holds, and reuses the record's string when it is
// the same UUID in canonical form.
func TestCanonicalUUIDAs(t *testing.T) {
	canonical := strings.ToLower(testUUID)
	tests := []struct {
		name, s, known string
		reuse          bool
	}{
		{"same canonical", canonical, canonical, true},
		{"upper case sent", testUUID, canonical, true},
		{"upper case known", testUUID, testUUID, false},
		{"other", otherUUID, canonical, false},
		{"none sent", "", canonical, false},
		{"not a UUID", "xyz", "xyz", false},
		{"unset", "00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := canonicalUUIDAs(tt.s, tt.known), canonicalUUID(tt.s)
			if got != want {
				t.Errorf("canonicalUUIDAs(%q, %q) = %q, want %q", tt.s, tt.known, got, want)
			}
			if tt.reuse && testing.AllocsPerRun(10, func() { canonicalUUIDAs(tt.s, tt.known) }) != 0 {
				t.Errorf("canonicalUUIDAs(%q, %q) allocates", tt.s, tt.known)
			}
		})
	}
}

// TestAddrStringAs checks that addrStringAs is addrString whatever the
// record holds, and reuses the record's string when it is the address
// written as addrString writes it.
func TestAddrStringAs(t *testing.T) {
	tests := []struct {
		name, a, known string
		reuse          bool
	}{
		{"same IPv4", "192.0.2.7", "192.0.2.7", true},
		{"same IPv6", "2001:db8::7", "2001:db8::7", true},
		{"IPv6 written otherwise", "2001:db8::7", "2001:0db8::7", false},
		{"other", "192.0.2.7", "192.0.2.8", false},
		{"prefix of known", "192.0.2.7", "192.0.2.70", false},
		{"none known", "192.0.2.7", "", false},
		{"no address", "", "192.0.2.7", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a netip.Addr
			if tt.a != "" {
				a = netip.MustParseAddr(tt.a)
			}
			got, want := addrStringAs(a, tt.known), addrString(a)
			if got != want {
				t.Errorf("addrStringAs(%s, %q) = %q, want %q", tt.a, tt.known, got, want)
			}
			if tt.reuse && testing.AllocsPerRun(10, func() { addrStringAs(a, tt.known) }) != 0 {
				t.Errorf("addrStringAs(%s, %q) allocates", tt.a, tt.known)
			}
		})
	}
}
