package render

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// emitWords are keys and strings of every kind the emitter must tell
// apart: plain words, addresses and prefixes, image references, URLs,
// YAML 1.1 booleans, null and boolean words, numbers and dates as
// strings, empty and quoted text, indicators, sexagesimal numbers,
// several lines, long text, non-ASCII.
var emitWords = []string{
	"version", "machine", "v1alpha1", "eth0", "kube-system", "node.kubernetes.io/exclude-from-external-load-balancers",
	"192.168.1.11/24", "192.168.1.1", "10.244.0.0/16", "fd00::1/64", "::1", "1.2", "1.2.3", "08", "1e3", "0x1F", "0o17", "1_000",
	"2001-12-14", "2001-12-14t21:59:43.10-05:00", "12:30", "0000:02:00.0", "190:20:30",
	"registry.k8s.io/kube-apiserver:v1.35.0", "https://192.168.1.50:6443", "http://x/y?z=1#f", "key:", "a: b", "a #b", "a#b",
	"true", "True", "FALSE", "null", "Null", "~", "yes", "off", "y", "N", "on", ".inf", "-.inf", ".nan", "-1", "+1", "-", "--", "---", "...",
	"", " ", " lead", "trail ", "@at", "`tick", "'single'", `"double"`, "it's", "!tag", "&anchor", "*alias", "%pct", "[x]", "{x}", "a,b", "?q", ":c", "|", ">",
	"mac(link.permanent_addr) == \"1c:69:7a:00:00:00\"", "a b", "a  b", "a b ", "a :b", "a: ", "x=y+z==", "f (g)", "a \"q\"", "a,b c", "a # b", "a b#", "Yes b", "null x", "line\nbreak", "line\nbreak\n", "tab\there", "caf\u00e9", "\u00e9t\u00e9",
	"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJpekNDQVRDZ0F3SUJBZ0lRTmpCa1l6ZGxZVEl6WkRBd01UazRNakFLQmdncWhrak9QUVFEQWpBVk1STXcKRVFZRFZRUUtFd3ByZFdKbGNtNWxkR1Z6TUI0WERUSTBNREV3TVRBd01EQXdNRm9YRFRNME1ERXdNVEF3TURBdwpNRm93RlRFVE1CRUdBMVVFQ2hNS2EzVmlaWEp1WlhSbGN6QlpNQk1HQnlxR1NNNDlBZ0VHQ0NxR1NNNDlBd0VICkEwSUFCR2dv",
}

// emitNumbers are Numbers as files write them.
var emitNumbers = []Number{"0", "6443", "08", "1.5", "-3", "1e3", "0x1F", "1_000", ".inf", "+12"}

// randomValue is a random document value of at most depth levels.
func randomValue(r *rand.Rand, depth int) any {
	k := r.IntN(10)
	if depth == 0 && k < 4 {
		k = 4 + r.IntN(6)
	}
	switch k {
	case 0, 1:
		m := Map{}
		for range r.IntN(4) {
			m = m.Set(randomKey(r), randomValue(r, depth-1))
		}
		return m
	case 2, 3:
		s := []any{}
		for range r.IntN(4) {
			s = append(s, randomValue(r, depth-1))
		}
		return s
	case 4, 5, 6:
		return emitWords[r.IntN(len(emitWords))]
	case 7:
		return emitNumbers[r.IntN(len(emitNumbers))]
	case 8:
		return []any{true, false, nil, 3, int64(-7), 0}[r.IntN(6)]
	}
	if r.IntN(20) == 0 {
		return 2.5 // a float, as a JSON patch leaves one: yaml.v3's to write
	}
	return emitWords[r.IntN(len(emitWords))]
}

// randomKey is a map key: mostly a word of a config, sometimes any.
func randomKey(r *rand.Rand) string {
	if r.IntN(50) == 0 {
		return emitWords[r.IntN(len(emitWords))]
	}
	return emitWords[r.IntN(6)]
}

// TestEmitMatchesYAML: encodeDocs writes, byte for byte, what yaml.v3's
// encoder writes (encodeDocsYAML), for random documents of every value
// a config holds and of the strings yaml.v3 quotes, folds or keeps plain.
func TestEmitMatchesYAML(t *testing.T) {
	r := rand.New(rand.NewPCG(20, 5000))
	fast := 0
	for i := range 20000 {
		// Mostly one short document, as it takes only one value left to
		// yaml.v3 to send a whole config there.
		docs := make([]any, 1+r.IntN(2))
		for j := range docs {
			m := Map{}
			for range r.IntN(4) {
				m = m.Set(randomKey(r), randomValue(r, 5))
			}
			docs[j] = m
		}
		want, err := encodeDocsYAML(docs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeDocs(docs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d: %#v\ngot:\n%s\nwant:\n%s", i, docs, got, want)
		}
		var e emitter
		if e.docs(docs) == nil {
			fast++
		}
	}
	// The comparison means something only if the emitter wrote most
	// cases itself rather than leaving them to yaml.v3.
	if fast < 2000 {
		t.Errorf("the emitter wrote %d of 20000 cases itself, want most", fast)
	}
	t.Logf("%d of 20000 written by the emitter", fast)
}
