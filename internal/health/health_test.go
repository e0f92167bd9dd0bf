package health

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tinderbox-boot/tinderbox/pkg/api"
)

func fixed(st api.HealthStatus, detail string) func() (api.HealthStatus, string) {
	return func() (api.HealthStatus, string) { return st, detail }
}

// TestReport: the report's status is the worst check's, /healthz names
// every check that is not ok, and both answer 503 only when down.
func TestReport(t *testing.T) {
	tests := []struct {
		name     string
		checks   []Check
		want     api.HealthStatus
		code     int
		wantLine string
	}{
		{name: "all ok", checks: []Check{{"a", fixed(api.HealthOK, "fine")}, {"b", fixed(api.HealthOK, "")}},
			want: api.HealthOK, code: 200, wantLine: "ok\n"},
		{name: "degraded", checks: []Check{{"a", fixed(api.HealthDegraded, "old set")}, {"b", fixed(api.HealthOK, "")}},
			want: api.HealthDegraded, code: 200, wantLine: "degraded: a: old set\n"},
		{name: "down wins", checks: []Check{{"a", fixed(api.HealthDegraded, "x")}, {"b", fixed(api.HealthDown, "y")}, {"c", fixed(api.HealthOK, "")}},
			want: api.HealthDown, code: 503, wantLine: "down: a: x; b: y\n"},
		{name: "unknown status counts as down", checks: []Check{{"a", fixed("weird", "?")}},
			want: "weird", code: 503, wantLine: "weird: a: ?\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(tt.checks...)
			if got := c.Report(); got.Status != tt.want || len(got.Checks) != len(tt.checks) {
				t.Errorf("Report: got %+v, want status %s and %d checks", got, tt.want, len(tt.checks))
			}
			w := httptest.NewRecorder()
			c.Healthz(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			if w.Code != tt.code || w.Body.String() != tt.wantLine {
				t.Errorf("Healthz: got %d %q, want %d %q", w.Code, w.Body.String(), tt.code, tt.wantLine)
			}
			w = httptest.NewRecorder()
			c.Readyz(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if w.Code != tt.code || !strings.Contains(w.Body.String(), `"status":"`+string(tt.want)+`"`) {
				t.Errorf("Readyz: got %d %s, want %d", w.Code, w.Body.String(), tt.code)
			}
		})
	}
}

// TestDiskProbe: a writable directory probes clean and leaves no file; a
// directory that is gone fails the probe, naming the error.
func TestDiskProbe(t *testing.T) {
	dir := t.TempDir()
	p := NewDiskProbe(dir, 1<<62, 1<<62)
	runOnce(t, p)
	if err := p.Err(); err != nil || p.Probed().IsZero() {
		t.Errorf("writable dir: got %v (probed %v), want nil after a probe", err, p.Probed())
	}
	if _, err := os.Stat(filepath.Join(dir, ProbeFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the probe left its file behind: %v", err)
	}
	gone := NewDiskProbe(filepath.Join(dir, "missing"), 1<<62, 1<<62)
	runOnce(t, gone)
	if err := gone.Err(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: got %v, want a not-exist error", err)
	}
}

// runOnce runs p until its first probe has ended.
func runOnce(t *testing.T, p *DiskProbe) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for p.Probed().IsZero() {
		select {
		case err := <-done:
			t.Fatalf("Run returned %v before a probe", err)
		default:
		}
		runtime.Gosched()
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
