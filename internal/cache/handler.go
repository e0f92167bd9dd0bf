package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tinderbox-boot/tinderbox/internal/factory"
)

// Route is the boot HTTP route of cached assets (docs/api.md, "Boot HTTP").
const Route = "/assets/{schematic}/{version}/{file}"

// Sent describes one asset response, for the machine-state layer. The MAC
// is unknown here: the machine is known by its address.
type Sent struct {
	Remote netip.Addr
	Key    Key
	// Bytes is how many body bytes were sent; Complete is true when the
	// whole asset (not a range, not a cut transfer) was sent.
	Bytes    int64
	Complete bool
	// Status and Failure describe an asset that was not served: the HTTP
	// status answered and why. Failure is "" for an asset served.
	Status  int
	Failure string
}

// Recorder is told about every asset sent. The machine-state layer
// implements it to record "assets sent" events; it must not block.
type Recorder interface {
	AssetSent(ctx context.Context, s Sent)
}

// NopRecorder records nothing.
type NopRecorder struct{}

// AssetSent does nothing.
func (NopRecorder) AssetSent(context.Context, Sent) {}

const (
	// logEvery bounds logging of a failing or refused asset to one line per
	// asset per minute: a rack of nodes retrying a missing initramfs would
	// otherwise flood the log.
	logEvery = time.Minute
	// logAssets bounds the assets logged per minute: a client asking for
	// made-up assets gets this many lines, then a count of the rest. 32
	// covers the files of a few images misnamed at once (six per image),
	// and keeps the limiter's table small whatever the requests.
	logAssets = 32
)

// Handler serves GET and HEAD /assets/{schematic}/{version}/{file}: cached
// files with Range, ETag (the sha256) and Content-Length through
// http.ServeContent on the open file, so the kernel's sendfile path does the
// copying; a missing asset is fetched and streamed as it arrives. An asset
// the cache's Scope does not want is refused with 404, whether cached or
// not, and never fetched. It is safe for concurrent use.
type Handler struct {
	c   *Cache
	log *slog.Logger
	rec Recorder

	failures, refusals logLimit
}

// NewHandler returns the asset handler for c. rec may be nil.
func NewHandler(c *Cache, log *slog.Logger, rec Recorder) *Handler {
	if rec == nil {
		rec = NopRecorder{}
	}
	return &Handler{c: c, log: log, rec: rec}
}

// Mount adds the asset route for GET and HEAD to r.
func (h *Handler) Mount(r chi.Router) {
	r.Method(http.MethodGet, Route, h)
	r.Method(http.MethodHead, Route, h)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k, err := NewKey(chi.URLParam(r, "schematic"), chi.URLParam(r, "version"), chi.URLParam(r, "file"))
	if err != nil {
		http.Error(w, "bad asset path: "+err.Error(), http.StatusBadRequest)
		return
	}
	if s := h.c.scope; s != nil && !s.Allowed(k) {
		h.refuse(w, r, k)
		return
	}
	a, err := h.c.Open(r.Context(), k)
	if err != nil {
		h.fail(w, r, k, err)
		return
	}
	defer a.Close()
	cw := &countWriter{ResponseWriter: w}
	w.Header().Set("Content-Type", contentType(k.File))
	if e, f, ok := a.Complete(); ok {
		w.Header().Set("ETag", `"`+e.SHA256+`"`)
		state := "miss"
		if a.Hit() {
			state = "hit"
		}
		w.Header().Set("X-Tinderbox-Cache", state)
		http.ServeContent(cw, r, "", e.Fetched, f)
		h.sent(r, k, cw, e.Size)
		return
	}
	// In flight: stream the bytes as they arrive. A Range is ignored (RFC
	// 9110 §14.2 lets a server answer 200 with the whole body); the next
	// request, once cached, gets its 206.
	w.Header().Set("X-Tinderbox-Cache", "miss")
	size := a.Size()
	if size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	err = stream(cw, a)
	h.sent(r, k, cw, size)
	if err != nil {
		if r.Context().Err() == nil {
			h.logFailure(k, err)
		}
		// Abort the connection so the client sees a failed transfer, even
		// without a Content-Length to fall short of.
		panic(http.ErrAbortHandler)
	}
}

// stream copies a download in flight to w, flushing each chunk so the
// client gets the bytes as they arrive. It returns nil at the asset's end.
func stream(w http.ResponseWriter, a *Asset) error {
	rc := http.NewResponseController(w)
	buf := make([]byte, copyBuf)
	for {
		n, err := a.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if ferr := rc.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (h *Handler) sent(r *http.Request, k Key, cw *countWriter, size int64) {
	if r.Method == http.MethodHead {
		return
	}
	h.c.m.servedBytes.Add(float64(cw.n))
	remote := netip.Addr{}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		remote = ap.Addr().Unmap()
	}
	complete := cw.n == size && (cw.status == 0 || cw.status == http.StatusOK)
	h.rec.AssetSent(r.Context(), Sent{Remote: remote, Key: k, Bytes: cw.n, Complete: complete})
}

// fail answers a request for an asset that is not cached and could not be
// fetched: 504 when the factory did not answer in time, 502 otherwise.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, k Key, err error) {
	if r.Context().Err() != nil {
		return // the client went away
	}
	status := http.StatusBadGateway
	var t interface{ Timeout() bool }
	switch {
	case errors.Is(err, ErrClosed):
		status = http.StatusServiceUnavailable
	case errors.As(err, &t) && t.Timeout():
		status = http.StatusGatewayTimeout
	}
	h.logFailure(k, err)
	h.failed(r, k, status, fmt.Sprintf("not cached and could not be fetched: %v", err))
	http.Error(w, fmt.Sprintf("tinderbox: %s is not cached and could not be fetched: %v", k, err), status)
}

// failed tells the recorder of an asset that was not served.
func (h *Handler) failed(r *http.Request, k Key, status int, why string) {
	remote := netip.Addr{}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		remote = ap.Addr().Unmap()
	}
	h.rec.AssetSent(r.Context(), Sent{Remote: remote, Key: k, Status: status, Failure: why})
}

// refuse answers a request for an asset no profile and no cache.allow
// entry names: 404, without a look at the disk or the factory.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, k Key) {
	h.c.m.lookups.WithLabelValues("refused").Inc()
	if ok, dropped := h.refusals.allow(k, h.c.now()); ok {
		h.log.Info("asset refused: no profile and no cache.allow entry names its image",
			withDropped(dropped, "asset", k.String(), "remote", r.RemoteAddr)...)
	}
	h.failed(r, k, http.StatusNotFound, "no profile and no cache.allow entry names its image")
	http.Error(w, fmt.Sprintf("tinderbox: %s is not an asset of an image the profiles or cache.allow name; not served", k), http.StatusNotFound)
}

// logFailure logs err for k, at most once per asset per logEvery.
func (h *Handler) logFailure(k Key, err error) {
	if ok, dropped := h.failures.allow(k, h.c.now()); ok {
		h.log.Warn("asset unavailable", withDropped(dropped, "asset", k.String(), "err", err)...)
	}
}

// withDropped adds to a log line's attributes how many lines about other
// requests were held back before it, when any were.
func withDropped(dropped int, args ...any) []any {
	if dropped > 0 {
		args = append(args, "not_logged", dropped)
	}
	return args
}

// logLimit rate-limits log lines per asset: one per logEvery, and at most
// logAssets assets a period, so its memory stays bounded whatever the
// requests. The zero value is ready to use.
type logLimit struct {
	mu      sync.Mutex
	last    map[Key]time.Time
	swept   time.Time
	dropped int
}

// allow reports whether a line about k may be logged now, and how many
// lines were held back since the last one allowed.
func (l *logLimit) allow(k Key, now time.Time) (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[Key]time.Time{}
	}
	if now.Sub(l.swept) >= logEvery {
		for old, t := range l.last {
			if now.Sub(t) >= logEvery {
				delete(l.last, old)
			}
		}
		l.swept = now
	}
	if t, seen := l.last[k]; (seen && now.Sub(t) < logEvery) || (!seen && len(l.last) >= logAssets) {
		l.dropped++
		return false, 0
	}
	l.last[k] = now
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

func contentType(file string) string {
	if kind, _, _ := factory.FileKind(file); kind == factory.KindCmdline {
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// countWriter counts body bytes. It passes ReadFrom through, so that
// http.ServeContent's copy from an *os.File still reaches the connection's
// sendfile path.
type countWriter struct {
	http.ResponseWriter
	n      int64
	status int
}

func (w *countWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *countWriter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err := rf.ReadFrom(r)
		w.n += n
		return n, err
	}
	return io.Copy(writerOnly{w}, r)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *countWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerOnly hides ReadFrom, so io.Copy does not recurse into it.
type writerOnly struct{ io.Writer }
