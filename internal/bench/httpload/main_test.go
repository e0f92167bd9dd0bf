package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
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
