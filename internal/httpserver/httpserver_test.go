package httpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rig is a Server on a loopback listener, with a client for it.
type rig struct {
	srv     *Server
	ln      net.Listener
	base    string
	client  *http.Client
	metrics *Metrics
	reg     *prometheus.Registry
	logs    string       // path of the server's log, read while the server writes it
	stop    func() error // cancels Serve and returns its error; idempotent
	done    chan struct{}
}

// newRig builds a server named "test" (with a logger and metrics unless
// bare), lets mount add routes, and starts Serve.
func newRig(t *testing.T, bare bool, mount func(r *Server)) *rig {
	t.Helper()
	return newRigWith(t, bare, 0, mount)
}

// newRigWith is newRig with Options.WriteTimeout set to writeTimeout.
func newRigWith(t *testing.T, bare bool, writeTimeout time.Duration, mount func(r *Server)) *rig {
	t.Helper()
	rg := &rig{logs: filepath.Join(t.TempDir(), "server.log"), done: make(chan struct{})}
	opts := Options{Name: "test", WriteTimeout: writeTimeout}
	if !bare {
		rg.reg = prometheus.NewRegistry()
		rg.metrics = NewMetrics(rg.reg)
		opts.Metrics = rg.metrics
		f, err := os.Create(rg.logs)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		opts.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), f), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	rg.srv = New(opts)
	mount(rg.srv)
	lc := net.ListenConfig{}
	if writeTimeout > 0 {
		// Small send buffers (accepted sockets inherit the listener's), so
		// that a write waits on the client's reading after some KiB, not
		// after the megabytes loopback's autotuning allows.
		lc.Control = smallBuffer(syscall.SO_SNDBUF)
	}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rg.ln, rg.base = ln, "http://"+ln.Addr().String()
	tr := &http.Transport{}
	rg.client = &http.Client{Transport: tr}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- rg.srv.Serve(ctx, ln)
		close(rg.done)
	}()
	rg.stop = sync.OnceValue(func() error {
		cancel()
		return <-errc
	})
	t.Cleanup(func() {
		if err := rg.stop(); err != nil {
			t.Errorf("Serve after cancel: got %v, want nil", err)
		}
		tr.CloseIdleConnections()
	})
	return rg
}

// log returns what the server has logged so far.
func (rg *rig) log(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(rg.logs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// get fetches path and returns the status and body.
func (rg *rig) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := rg.client.Get(rg.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

func (rg *rig) requests(server, route, code string) float64 {
	return testutil.ToFloat64(rg.metrics.requests.WithLabelValues(server, route, code))
}

// counter is the value of the counter series name{label="value"}; 0
// when there is none.
func (rg *rig) counter(t *testing.T, name, label, value string) float64 {
	t.Helper()
	mfs, err := rg.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func mountBasics(s *Server) {
	s.Router().Get("/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "thing "+r.PathValue("id"))
	})
	s.Router().Get("/fail", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "broken", http.StatusBadGateway)
	})
	s.Router().Get("/boom/{id}", func(http.ResponseWriter, *http.Request) { panic("handler bug") })
}

// TestServeClosesListener: Serve returns nil when its context is
// cancelled, and the listener it was given is closed.
func TestServeClosesListener(t *testing.T) {
	rg := newRig(t, false, mountBasics)
	if code, body := rg.get(t, "/things/a"); code != http.StatusOK || body != "thing a" {
		t.Fatalf("got %d %q, want 200 %q", code, body, "thing a")
	}
	if err := rg.stop(); err != nil {
		t.Fatalf("Serve after cancel: got %v, want nil", err)
	}
	if _, err := rg.ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Serve returned: got %v, want net.ErrClosed (Serve closes the listener)", err)
	}
}

// TestServeCancelledBeforeStart: a context already cancelled still gets
// nil and a closed listener.
func TestServeCancelledBeforeStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := New(Options{Name: "test"}).Serve(ctx, ln); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("got %v, want net.ErrClosed", err)
	}
}

// TestGracefulShutdown: a request in flight when the context is
// cancelled is served to the end; new connections are refused meanwhile.
func TestGracefulShutdown(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	rg := newRig(t, false, func(s *Server) {
		s.Router().Get("/slow", func(w http.ResponseWriter, _ *http.Request) {
			close(started)
			<-release
			_, _ = io.WriteString(w, "finished")
		})
	})
	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := rg.client.Get(rg.base + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{resp.StatusCode, string(b), err}
	}()
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- rg.stop() }()

	// Shutdown closes the listener first: wait until a new connection is
	// refused, which shows shutdown began with the request in flight.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", rg.ln.Addr().String())
		if err != nil {
			break
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts connections 5s after cancel")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-rg.done:
		t.Fatal("Serve returned with a request in flight")
	default:
	}
	close(release)
	r := <-res
	if r.err != nil || r.code != http.StatusOK || r.body != "finished" {
		t.Errorf("in-flight request: got %d %q %v, want 200 %q", r.code, r.body, r.err, "finished")
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve: got %v, want nil", err)
	}
}

// TestPanicRecovered: a handler's panic is answered 500, counted under
// its route as 5xx and in tinderbox_panics_total, logged at Error with the
// panic value and its stack once (a repeat at Debug), and the server keeps
// serving.
func TestPanicRecovered(t *testing.T) {
	rg := newRig(t, false, mountBasics)
	if code, _ := rg.get(t, "/boom/1"); code != http.StatusInternalServerError {
		t.Fatalf("got %d, want 500", code)
	}
	if n := rg.requests("test", "/boom/{id}", "5xx"); n != 1 {
		t.Errorf("requests_total{route=/boom/{id},code=5xx}: got %v, want 1", n)
	}
	if code, _ := rg.get(t, "/boom/2"); code != http.StatusInternalServerError {
		t.Fatalf("second panic: got %d, want 500", code)
	}
	if n := rg.counter(t, "tinderbox_panics_total", "where", "http_test"); n != 2 {
		t.Errorf(`tinderbox_panics_total{where="http_test"}: got %v, want 2`, n)
	}
	logs := rg.log(t)
	const first = `level=ERROR msg="panic recovered: the handler's answer is lost, serving goes on" where=http_test panic="handler bug" server=test method=GET path=/boom/1 stack=`
	if !strings.Contains(logs, first) || !strings.Contains(logs, "httpserver_test.go") {
		t.Errorf("got log\n%s\nwant an Error line for the panic, with its stack", logs)
	}
	if !strings.Contains(logs, `level=DEBUG msg="panic recovered: the handler's answer is lost, serving goes on" where=http_test panic="handler bug" server=test method=GET path=/boom/2`+"\n") {
		t.Errorf("got log\n%s\nwant the repeat at Debug, without the stack", logs)
	}
	if code, _ := rg.get(t, "/things/b"); code != http.StatusOK {
		t.Errorf("after a panic: got %d, want 200", code)
	}
}

// TestMetricsByRoute: requests are counted by route pattern and status
// class, never by raw path.
func TestMetricsByRoute(t *testing.T) {
	rg := newRig(t, false, mountBasics)
	for _, p := range []string{"/things/a", "/things/b", "/fail", "/nowhere/x"} {
		rg.get(t, p)
	}
	tests := []struct {
		name, route, code string
		want              float64
	}{
		{"two paths, one pattern", "/things/{id}", "2xx", 2},
		{"status class", "/fail", "5xx", 1},
		{"no route", "unmatched", "4xx", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rg.requests("test", tt.route, tt.code); got != tt.want {
				t.Errorf("requests_total{route=%q,code=%q}: got %v, want %v", tt.route, tt.code, got, tt.want)
			}
		})
	}
	if n := testutil.CollectAndCount(rg.metrics.duration); n != 3 {
		t.Errorf("request_duration_seconds: got %d series, want 3 (one per route)", n)
	}
	if n := testutil.CollectAndCount(rg.metrics.requests); n != 3 {
		t.Errorf("requests_total: got %d series, want 3 (no raw paths)", n)
	}
}

// TestAccessLog: one line per request, at Debug, Warn for 5xx, with the
// route pattern and the raw path.
func TestAccessLog(t *testing.T) {
	rg := newRig(t, false, mountBasics)
	rg.get(t, "/things/a")
	rg.get(t, "/fail")
	logs := rg.log(t)
	for _, want := range []string{
		`level=DEBUG msg="http request" server=test method=GET path=/things/a route=/things/{id} status=200 bytes=7 `,
		`level=WARN msg="http request" server=test method=GET path=/fail route=/fail status=502 `,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("got log\n%s\nwant a line containing %s", logs, want)
		}
	}
	if n := strings.Count(logs, `msg="http request"`); n != 2 {
		t.Errorf("got %d access-log lines, want 2", n)
	}
}

// TestNilLoggerAndMetrics: a server with neither serves, recovers panics
// and shuts down.
func TestNilLoggerAndMetrics(t *testing.T) {
	rg := newRig(t, true, mountBasics)
	if code, _ := rg.get(t, "/things/a"); code != http.StatusOK {
		t.Errorf("got %d, want 200", code)
	}
	if code, _ := rg.get(t, "/boom/1"); code != http.StatusInternalServerError {
		t.Errorf("panic: got %d, want 500", code)
	}
	if err := rg.stop(); err != nil {
		t.Errorf("Serve: got %v, want nil", err)
	}
}

// TestAccessLogCountsEveryWay: the status and bytes the access log
// records, whichever way a handler writes: a file with io.Copy (net/http's
// sendfile path), an informational code before the final one, a flush
// through http.ResponseController before the body.
func TestAccessLogCountsEveryWay(t *testing.T) {
	file := filepath.Join(t.TempDir(), "asset")
	if err := os.WriteFile(file, []byte(strings.Repeat("a", 100000)), 0o644); err != nil {
		t.Fatal(err)
	}
	rg := newRig(t, false, func(s *Server) {
		s.Router().Get("/file", func(w http.ResponseWriter, _ *http.Request) {
			f, err := os.Open(file)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			_, _ = io.Copy(w, f)
		})
		s.Router().Get("/hint", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, "ok")
		})
		s.Router().Get("/flush", func(w http.ResponseWriter, _ *http.Request) {
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("flush: %v", err)
			}
			_, _ = w.Write([]byte("later"))
		})
	})
	for _, tc := range []struct {
		name, path string
		status     int
		body       int
	}{
		{"file", "/file", http.StatusOK, 100000},
		{"informational first", "/hint", http.StatusAccepted, 2},
		{"flushed first", "/flush", http.StatusOK, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := rg.get(t, tc.path)
			if code != tc.status || len(body) != tc.body {
				t.Fatalf("GET %s: got %d with %d bytes, want %d with %d", tc.path, code, len(body), tc.status, tc.body)
			}
			want := fmt.Sprintf("path=%s route=%s status=%d bytes=%d ", tc.path, tc.path, tc.status, tc.body)
			if logs := rg.log(t); !strings.Contains(logs, want) {
				t.Errorf("got log\n%s\nwant a line containing %s", logs, want)
			}
		})
	}
}
