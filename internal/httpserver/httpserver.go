// Package httpserver is the HTTP plumbing shared by tinderbox's boot and
// admin servers: a chi router with request metrics by route pattern and
// status class, structured access logging, recovery from handler panics,
// server timeouts, and a Serve that shuts down gracefully when its context
// ends.
//
// # Server contract
//
// Server keeps the contract all of tinderbox's servers (proxydhcp, tftp,
// httpserver) share:
//
//   - Serve(ctx, ln) blocks until ctx is cancelled, shuts down gracefully
//     (requests in flight get ShutdownTimeout to finish, on a fresh
//     context), and returns nil; it returns an error only when the
//     listener fails.
//   - Serve owns the listener it is given and closes it before returning,
//     whatever the outcome, as net/http's Server.Serve does. The caller
//     closes a listener only if it never calls Serve.
//   - A nil Options.Logger discards logs; nil Options.Metrics counts
//     nothing.
//   - Optional behaviour is an explicit Options field; handlers are
//     mounted on Router.
package httpserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/metrics"
	"github.com/tinderbox-boot/tinderbox/internal/panics"
)

// Timeouts for every tinderbox HTTP server. net/http's WriteTimeout, one
// deadline for a whole response, is left unset: a node on a slow link may
// take minutes to pull a 100 MB initramfs, and server-sent events stay
// open; Options.WriteTimeout bounds each write's progress instead.
// IdleTimeout and ReadHeaderTimeout bound the connections that send
// nothing.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	IdleTimeout       = 120 * time.Second
	// ShutdownTimeout bounds a graceful shutdown; connections still open
	// then (a transfer in flight) are closed.
	ShutdownTimeout = 5 * time.Second
)

// Server is one HTTP server: a router to mount handlers on, and Serve.
type Server struct {
	name         string
	router       chi.Router
	log          *slog.Logger
	writeTimeout time.Duration
	timeouts     prometheus.Counter
}

// Options configures New.
type Options struct {
	// Name is the server's label in metrics and logs: "boot" or "admin".
	Name string
	// Logger gets one access-log line per request (Debug, Warn for 5xx)
	// and the panics handlers raise (Error); nil discards.
	Logger *slog.Logger
	// Metrics holds the request counters and histograms; shared by every
	// server (they are told apart by the server label). nil counts
	// nothing.
	Metrics *Metrics
	// WriteTimeout is how long a write to a client may make no progress
	// (the client reads nothing) before its connection is closed, counted
	// in tinderbox_http_write_timeouts_total. Every write, and every
	// WriteChunk bytes of a file sent with sendfile, starts it again, so a
	// slow client that keeps reading is never cut. 0 sets no deadline.
	WriteTimeout time.Duration
}

// New returns a server whose router instruments and logs every request.
func New(opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := chi.NewRouter()
	r.Use(instrument(opts.Name, log, opts.Metrics))
	s := &Server{name: opts.Name, router: r, log: log, writeTimeout: opts.WriteTimeout}
	if opts.Metrics != nil && opts.WriteTimeout > 0 {
		s.timeouts = opts.Metrics.writeTimeouts.WithLabelValues(opts.Name)
	}
	return s
}

// Router is the router to mount routes on. Mount before calling Serve.
func (s *Server) Router() chi.Router { return s.router }

// Serve serves HTTP on ln until ctx is cancelled, then shuts down gracefully
// within ShutdownTimeout and returns nil. It blocks. Serve closes ln before
// it returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.writeTimeout > 0 {
		ln = &progressListener{Listener: ln, timeout: s.writeTimeout, timeouts: s.timeouts, log: s.log, server: s.name}
	}
	srv := &http.Server{
		Handler:           s.router,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		IdleTimeout:       IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// The serve context is gone: shutdown needs a fresh one.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("http: shutdown timed out; closing open connections", "server", s.name)
		err = srv.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// Metrics are the request metrics of every HTTP server.
type Metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	writeTimeouts *prometheus.CounterVec
	panics        *panics.Counter
}

// NewMetrics registers the HTTP request metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests served, by server, route pattern and status class.",
		}, []string{"server", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help: "Time to serve an HTTP request, by server and route pattern.",
			// From a 1 ms script to a minutes-long initramfs download.
			Buckets: []float64{.001, .005, .025, .1, .5, 2.5, 10, 60, 300},
		}, []string{"server", "route"}),
		writeTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "http", Name: "write_timeouts_total",
			Help: "Connections closed because a write made no progress for http.writeTimeout (the client stopped reading), by server.",
		}, []string{"server"}),
		panics: panics.Register(reg),
	}
	reg.MustRegister(m.requests, m.duration, m.writeTimeouts)
	return m
}

// instrument counts, times and logs each request. The route label is chi's
// route pattern (bounded), never the raw path. A handler's panic is
// recovered: logged at Error with its stack (once per panic value),
// answered 500 when nothing was written yet, counted with the status the
// client saw and in tinderbox_panics_total{where="http_<name>"}.
// http.ErrAbortHandler, net/http's way to cut a response, is counted and
// passed on.
func instrument(name string, log *slog.Logger, m *Metrics) func(http.Handler) http.Handler {
	var site *panics.Site
	if m != nil {
		site = m.panics.Site("http_" + name)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := &statusWriter{ResponseWriter: w}
			defer func() {
				v := recover()
				if v != nil && v != http.ErrAbortHandler {
					site.Caught(v, log, slog.String("server", name), slog.String("method", r.Method), slog.String("path", r.URL.Path))
					if ww.Status() == 0 {
						ww.WriteHeader(http.StatusInternalServerError)
					}
				}
				record(name, log, m, ww, r, start)
				if v == http.ErrAbortHandler {
					panic(v)
				}
			}()
			next.ServeHTTP(ww, r)
		})
	}
}

// record counts, times and logs one finished request.
func record(name string, log *slog.Logger, m *Metrics, ww *statusWriter, r *http.Request, start time.Time) {
	route := "unmatched"
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
		route = rc.RoutePattern()
	}
	status := ww.Status()
	if status == 0 {
		status = http.StatusOK
	}
	elapsed := time.Since(start)
	if m != nil {
		m.requests.WithLabelValues(name, route, codeClass(status)).Inc()
		m.duration.WithLabelValues(name, route).Observe(elapsed.Seconds())
	}
	level := slog.LevelDebug
	if status >= 500 {
		level = slog.LevelWarn
	}
	// Asked first: the line is off at the default level (Debug), and
	// building its attributes (the route, the remote address) is then
	// work on every request for nothing.
	if !log.Enabled(r.Context(), level) {
		return
	}
	log.LogAttrs(r.Context(), level, "http request",
		slog.String("server", name),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Int("bytes", ww.BytesWritten()),
		slog.Duration("duration", elapsed),
		slog.String("remote", r.RemoteAddr),
	)
}

// codeClasses are the code label's values, so that counting a request
// builds no string.
var codeClasses = [...]string{"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"}

// codeClass is status's code label: "2xx" for 200 to 299.
func codeClass(status int) string {
	if c := status / 100; c >= 0 && c < len(codeClasses) {
		return codeClasses[c]
	}
	return strconv.Itoa(status/100) + "xx"
}

// statusWriter records an answer's status and body bytes for the request
// metrics and the access log. Unlike chi's middleware wrapper it passes
// strings on without a copy (io.StringWriter: a script is a string, and
// copying it into a []byte per answer was 6 % of the bytes the daemon
// allocated serving /ipxe), and it keeps net/http's ReadFrom (sendfile)
// for a file sent with io.Copy. http.ResponseController reaches the
// rest (deadlines, hijacking) through Unwrap.
type statusWriter struct {
	http.ResponseWriter
	status int // 0 until the header is written
	bytes  int
}

// WriteHeader passes code on; informational codes (1xx but 101) are sent
// and not recorded, and a second final code is dropped, as net/http does.
func (w *statusWriter) WriteHeader(code int) {
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if w.status == 0 {
		w.status = code
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wrote()
	n, err := w.ResponseWriter.Write(p)
	w.bytes += n
	return n, err
}

// WriteString writes s without copying it when the writer beneath takes
// strings, as net/http's does.
func (w *statusWriter) WriteString(s string) (int, error) {
	w.wrote()
	n, err := io.WriteString(w.ResponseWriter, s)
	w.bytes += n
	return n, err
}

// ReadFrom lets io.Copy reach net/http's ReadFrom, which sends a file
// with sendfile.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wrote()
	var (
		n   int64
		err error
	)
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	w.bytes += int(n)
	return n, err
}

// Flush sends what is buffered, the header first if it was not sent.
func (w *statusWriter) Flush() {
	w.wrote()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap is the writer beneath, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Status is the status sent, 0 when no header was written yet.
func (w *statusWriter) Status() int { return w.status }

// BytesWritten is how many body bytes were written.
func (w *statusWriter) BytesWritten() int { return w.bytes }

// wrote records the implicit 200 of a body written before any status.
func (w *statusWriter) wrote() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
}
