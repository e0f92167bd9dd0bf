package client

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRequests: the client sends the bearer token, escapes the MAC into
// one path segment, and turns a non-2xx answer into an error carrying the
// server's message, or the status alone when the body is not an
// api.Error.
func TestRequests(t *testing.T) {
	var gotPath, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotAuth = r.URL.EscapedPath()+"?"+r.URL.RawQuery, r.Header.Get("Authorization")
		switch {
		case strings.HasSuffix(r.URL.Path, "/script"):
			_, _ = w.Write([]byte("#!ipxe\n"))
		case strings.Contains(r.URL.Path, "teapot"):
			w.WriteHeader(http.StatusTeapot)
			_, _ = w.Write([]byte("<html>"))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error": "no machine here"}`))
		}
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name, token string
		call        func(c *Client) error
		wantPath    string
		wantAuth    string
		wantErr     string
	}{
		{
			name: "script", token: "tok",
			call:     func(c *Client) error { _, err := c.Script(t.Context(), "52:54:00:00:00:01", "arm64"); return err },
			wantPath: "/api/v1/machines/52:54:00:00:00:01/script?arch=arm64", wantAuth: "Bearer tok",
		},
		{
			name:     "no token, odd MAC spelling",
			call:     func(c *Client) error { _, err := c.Machine(t.Context(), "a/b"); return err },
			wantPath: "/api/v1/machines/a%2Fb?", wantErr: "no machine here (HTTP 404)",
		},
		{
			name:     "not an api.Error",
			call:     func(c *Client) error { return c.Forget(t.Context(), "teapot") },
			wantPath: "/api/v1/machines/teapot?", wantErr: "admin: DELETE /api/v1/machines/teapot: HTTP 418",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(New(srv.URL+"/", tt.token))
			if gotPath != tt.wantPath || gotAuth != tt.wantAuth {
				t.Errorf("got %s with %q, want %s with %q", gotPath, gotAuth, tt.wantPath, tt.wantAuth)
			}
			if (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
				t.Errorf("got error %v, want %q", err, tt.wantErr)
			}
		})
	}
}
