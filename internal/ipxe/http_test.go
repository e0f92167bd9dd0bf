package ipxe

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

func TestHandler(t *testing.T) {
	srv, _ := tree(t)
	root := NewRoot(srv)
	t.Cleanup(func() { _ = root.Close() })
	r := chi.NewRouter()
	h := Handler(root, nil) // nil log discards; the refusals below log

	r.Handle(HTTPPath, h)
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)

	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		wantStatus int
		wantBody   string
		wantLength string
	}{
		{name: "GET", method: http.MethodGet, path: "/boot/" + BIOS, wantStatus: 200, wantBody: "bios", wantLength: "4"},
		{name: "GET through Debian's symlink", method: http.MethodGet, path: "/boot/" + EFIx64, wantStatus: 200, wantBody: "efi outside"},
		{name: "HEAD", method: http.MethodHead, path: "/boot/" + BIOS, wantStatus: 200, wantBody: "", wantLength: "4"},
		{name: "Range", method: http.MethodGet, path: "/boot/" + BIOS, header: map[string]string{"Range": "bytes=1-2"}, wantStatus: 206, wantBody: "io", wantLength: "2"},
		{name: "missing", method: http.MethodGet, path: "/boot/nothing.efi", wantStatus: 404},
		{name: "escaped traversal", method: http.MethodGet, path: "/boot/..%2Fsecret", wantStatus: 400},
		{name: "escaped absolute", method: http.MethodGet, path: "/boot/%2Fetc%2Fpasswd", wantStatus: 400},
		{name: "escaped NUL", method: http.MethodGet, path: "/boot/ipxe.efi%00", wantStatus: 400},
		{name: "symlink out", method: http.MethodGet, path: "/boot/up", wantStatus: 400},
		{name: "directory", method: http.MethodGet, path: "/boot/sub", wantStatus: 400},
		{name: "POST", method: http.MethodPost, path: "/boot/" + BIOS, wantStatus: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, ts.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s: got status %d (%s), want %d", tt.method, tt.path, resp.StatusCode, strings.TrimSpace(string(body)), tt.wantStatus)
			}
			if tt.wantStatus/100 != 2 {
				return
			}
			if string(body) != tt.wantBody {
				t.Errorf("body: got %q, want %q", body, tt.wantBody)
			}
			if tt.wantLength != "" && resp.Header.Get("Content-Length") != tt.wantLength {
				t.Errorf("Content-Length: got %q, want %q", resp.Header.Get("Content-Length"), tt.wantLength)
			}
		})
	}
}
