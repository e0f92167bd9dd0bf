package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRunRotatesMACsAndCountsOutcomes(t *testing.T) {
	var (
		mu   sync.Mutex
		seen = map[string]int{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Query().Get("mac")]++
		mu.Unlock()
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("#!ipxe\n"))
	}))
	defer srv.Close()

	r := run(srv.URL+"/ipxe?mac={mac}", 3, 3, 0)
	if r.requests != 3 || r.errors != 0 || r.other != 0 || r.bytes != 3*7 || len(r.lat) != 3 {
		t.Fatalf("run = %+v, want 3 requests of 7 bytes", r)
	}
	for _, mac := range []string{"02:00:00:00:00:00", "02:00:00:00:00:01", "02:00:00:00:00:02"} {
		if seen[mac] != 1 {
			t.Errorf("%s asked %d times, want 1 (seen %v)", mac, seen[mac], seen)
		}
	}

	r = run(srv.URL+"/missing", 1, 2, 0)
	if r.requests != 0 || r.other != 2 || !strings.Contains(r.String(), `first_error="status 404"`) {
		t.Fatalf("404s counted as %+v / %s", r, r)
	}
}

func TestExpand(t *testing.T) {
	if got := expand("/a/{i}/{mac}", 258); got != "/a/258/02:00:00:00:01:02" {
		t.Fatalf("expand = %q", got)
	}
}

func TestRunReadsChunkedAndClosingAnswers(t *testing.T) {
	big := strings.Repeat("x", 5000) // past net/http's 2 KiB buffer: sent chunked
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		w.Write([]byte(big[:len(big)/2]))
		w.Write([]byte(big[len(big)/2:]))
	}))
	defer srv.Close()
	// Repeated for a while: a connection the server ends is dialled again.
	for _, path := range []string{"/chunked", "/close"} {
		r := run(srv.URL+path, 1000, 2, 100*time.Millisecond) // -n with no {i} or {mac}: one URL

		if r.requests < 3 || r.errors != 0 || r.other != 0 || r.bytes != int64(r.requests*len(big)) {
			t.Errorf("%s: run = %s, want at least 3 requests of %d bytes and no error", path, r, len(big))
		}
	}
}

func TestRunRefusesOtherSchemes(t *testing.T) {
	r := run("https://127.0.0.1:1/x", 1, 2, 0)
	if r.requests != 0 || r.errors != 2 || !strings.Contains(r.firstErr, "only http://") {
		t.Fatalf("run = %+v, want 2 errors naming the scheme", r)
	}
}
