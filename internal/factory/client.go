// Package factory is a client for the Talos Image Factory
// (siderolabs/image-factory; its API in that repository's docs/api.md): it
// registers schematics and remembers their IDs on disk, downloads the PXE
// files (kernel, initramfs, kernel command line) and lists Talos versions.
//
// The client follows redirects (the factory may answer 302 to an object
// store on another host), bounds every wait with a timeout, honours context
// cancellation, retries transient failures (5xx, 429, network errors) with
// exponential backoff, sends a User-Agent naming tinderbox and its version,
// and takes basic-auth credentials from the factory URL's userinfo. The
// credentials never appear in logs or errors and are not sent to another
// host a redirect leads to.
package factory

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/metrics"
	"github.com/tinderbox-boot/tinderbox/internal/version"
)

// Defaults for Options fields left zero.
const (
	// DefaultTimeout bounds connecting, waiting for response headers, and
	// any pause in a response body. A body as such has no deadline: a
	// 100 MB initramfs over a slow uplink takes minutes.
	DefaultTimeout = 30 * time.Second
	// DefaultAttempts is how often a request is tried before a transient
	// failure is reported.
	DefaultAttempts = 4
	// DefaultBackoff is the wait before the first retry; it doubles for
	// each further one (0.5 s, 1 s, 2 s: a factory restarting behind a load
	// balancer is usually back within those 3.5 s).
	DefaultBackoff = 500 * time.Millisecond
	// maxErrorBody bounds how much of an error response is kept for the
	// operator: the factory's messages are one line.
	maxErrorBody = 4 << 10
	// maxRedirects matches net/http's own limit.
	maxRedirects = 10
	// schematicsFile, under Options.StateDir, remembers schematic IDs.
	schematicsFile = "factory-schematics.json"
)

// Options configures New.
type Options struct {
	// URL is the factory's base URL, e.g. https://factory.talos.dev. A
	// userinfo part (https://user:pass@host) is sent as basic auth.
	URL string
	// StateDir is where registered schematic IDs are remembered, so that a
	// restart without the factory still knows them. Empty: memory only.
	StateDir string
	Logger   *slog.Logger
	// Registerer receives the client's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Transport overrides the HTTP transport (tests). Nil: a clone of
	// net/http's default transport with the timeouts below.
	Transport http.RoundTripper
	Timeout   time.Duration
	Attempts  int
	Backoff   time.Duration
}

// Client talks to one Image Factory. It is safe for concurrent use.
type Client struct {
	base     *url.URL // without userinfo
	user     *url.Userinfo
	hc       *http.Client
	log      *slog.Logger
	timeout  time.Duration
	attempts int
	backoff  time.Duration
	requests *prometheus.CounterVec

	mu sync.Mutex
	// confirmed holds the IDs the factory itself returned during this
	// process's life, by sha256 of the schematic body.
	confirmed map[string]string
	store     *idStore
}

// New returns a client for the factory at opts.URL.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("factory: url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("factory: url %q: want http(s)://host[:port]", u.Redacted())
	}
	c := &Client{
		user:      u.User,
		log:       opts.Logger,
		timeout:   opts.Timeout,
		attempts:  opts.Attempts,
		backoff:   opts.Backoff,
		confirmed: map[string]string{},
	}
	u.User = nil
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c.base = u
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.attempts <= 0 {
		c.attempts = DefaultAttempts
	}
	if c.backoff <= 0 {
		c.backoff = DefaultBackoff
	}
	rt := opts.Transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DialContext = (&net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}).DialContext
		t.TLSHandshakeTimeout = c.timeout
		t.ResponseHeaderTimeout = c.timeout
		// Exact bytes and a real Content-Length: transparent gzip would
		// hide the length the cache checks a download against.
		t.DisableCompression = true
		rt = t
	}
	c.hc = &http.Client{Transport: rt, CheckRedirect: c.checkRedirect}
	c.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: "factory", Name: "requests_total",
		Help: "HTTP requests sent to the Image Factory, by operation (register, versions, image) and result (status class, timeout or error).",
	}, []string{"op", "result"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(c.requests); err != nil {
			return nil, fmt.Errorf("factory: metrics: %w", err)
		}
	}
	c.store = newIDStore(opts.StateDir, c.log)
	return c, nil
}

// URL returns the factory's base URL without credentials, as logs and
// errors show it.
func (c *Client) URL() string { return c.base.String() }

// InstallerImage returns the factory's installer image for a schematic and
// version, <factory host>/installer/<id>:<version>, which `talosctl upgrade`
// uses to keep the schematic's extensions.
func (c *Client) InstallerImage(id, ver string) string {
	if v, err := NormalizeVersion(ver); err == nil {
		ver = v
	}
	return c.base.Host + "/installer/" + id + ":" + ver
}

// checkRedirect drops the credentials on a redirect to any other host (the
// factory sends downloads to an object store) and bounds the chain.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if req.URL.Host != c.base.Host || req.URL.Scheme != c.base.Scheme {
		req.Header.Del("Authorization")
	}
	return nil
}

// Error is a failed factory request. Its message names the factory and the
// operation and, when the factory answered, its status and its own text
// verbatim.
type Error struct {
	Factory string // base URL, without credentials
	Op      string // "register schematic", "GET /versions", …
	// Status is the HTTP status the factory answered, or 0 when it gave
	// no answer (network error, timeout, cut-off body).
	Status int
	// Body is the factory's answer to a failed request, trimmed.
	Body string
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "factory %s: %s: ", e.Factory, e.Op)
	switch {
	case e.Status != 0 && e.Body != "":
		fmt.Fprintf(&b, "%d %s: %s", e.Status, http.StatusText(e.Status), e.Body)
	case e.Status != 0:
		fmt.Fprintf(&b, "%d %s", e.Status, http.StatusText(e.Status))
	default:
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the factory did not answer in time.
func (e *Error) Timeout() bool {
	var ne net.Error
	return errors.Is(e.Err, ErrIdle) || (errors.As(e.Err, &ne) && ne.Timeout())
}

// transient reports whether trying again may help.
func (e *Error) transient() bool {
	if e.Status != 0 {
		return e.Status >= 500 || e.Status == http.StatusTooManyRequests
	}
	return !errors.Is(e.Err, context.Canceled) && !errors.Is(e.Err, context.DeadlineExceeded) || e.Timeout()
}

// ErrIdle is the cause of an Error when a response body stalled for longer
// than the timeout.
var ErrIdle = errors.New("no data within the timeout")

// request is one factory call.
type request struct {
	// op names the call in errors; kind is its bounded metric label.
	op, kind, method, path string
	body                   []byte
	contentType            string
	attempts               int
}

// do sends r, retrying transient failures, and returns a 2xx response whose
// body pauses no longer than the timeout. The caller closes the body.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	attempts := r.attempts
	if attempts <= 0 {
		attempts = c.attempts
	}
	wait := c.backoff
	for i := 1; ; i++ {
		resp, err := c.once(ctx, r)
		if err == nil {
			return resp, nil
		}
		var fe *Error
		if !errors.As(err, &fe) || !fe.transient() || i >= attempts || ctx.Err() != nil {
			return nil, err
		}
		c.log.Debug("factory request failed; retrying", "factory", c.URL(), "op", r.op, "attempt", i, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, &Error{Factory: c.URL(), Op: r.op, Err: ctx.Err()}
		case <-t.C:
		}
		wait *= 2
	}
}

// once sends r one time.
func (c *Client) once(ctx context.Context, r request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	u := *c.base
	u.Path += r.path
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		cancel()
		return nil, &Error{Factory: c.URL(), Op: r.op, Err: err}
	}
	req.Header.Set("User-Agent", version.UserAgent())
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if c.user != nil {
		pass, _ := c.user.Password()
		req.SetBasicAuth(c.user.Username(), pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		cancel()
		var ue *url.Error
		if errors.As(err, &ue) {
			// url.Error repeats the method and URL, which Error already names.
			err = ue.Err
		}
		c.count(r.kind, err, 0)
		return nil, &Error{Factory: c.URL(), Op: r.op, Err: err}
	}
	c.count(r.kind, nil, resp.StatusCode)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		cancel()
		return nil, &Error{Factory: c.URL(), Op: r.op, Status: resp.StatusCode, Body: strings.TrimSpace(string(msg)),
			Err: fmt.Errorf("status %d", resp.StatusCode)}
	}
	resp.Body = newIdleReader(resp.Body, c.timeout, cancel)
	return resp, nil
}

func (c *Client) count(op string, err error, status int) {
	result := fmt.Sprintf("%dxx", status/100)
	if err != nil {
		result = "error"
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			result = "timeout"
		}
	}
	c.requests.WithLabelValues(op, result).Inc()
}

// idleReader cancels its request when no byte arrives within the timeout,
// and then reports ErrIdle rather than the cancellation.
type idleReader struct {
	rc     io.ReadCloser
	timer  *time.Timer
	idle   time.Duration
	cancel context.CancelFunc
	mu     sync.Mutex
	fired  bool
}

func newIdleReader(rc io.ReadCloser, idle time.Duration, cancel context.CancelFunc) *idleReader {
	r := &idleReader{rc: rc, idle: idle, cancel: cancel}
	r.timer = time.AfterFunc(idle, func() {
		r.mu.Lock()
		r.fired = true
		r.mu.Unlock()
		cancel()
	})
	return r
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if n > 0 {
		r.timer.Reset(r.idle)
	}
	if err != nil && err != io.EOF {
		r.mu.Lock()
		fired := r.fired
		r.mu.Unlock()
		if fired {
			err = ErrIdle
		}
	}
	return n, err
}

func (r *idleReader) Close() error {
	r.timer.Stop()
	err := r.rc.Close()
	r.cancel()
	return err
}

// Download is a file being downloaded from the factory. Read returns an
// *Error when the body is cut short. The caller must Close it.
type Download struct {
	// Size is the Content-Length the factory announced, or -1.
	Size int64
	body io.ReadCloser
	op   string
	c    *Client
	read int64
}

// Read reads the body.
func (d *Download) Read(p []byte) (int, error) {
	n, err := d.body.Read(p)
	d.read += int64(n)
	if err == nil || err == io.EOF {
		return n, err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) && d.Size >= 0 {
		err = fmt.Errorf("body cut off after %d of %d bytes: %w", d.read, d.Size, err)
	}
	return n, &Error{Factory: d.c.URL(), Op: d.op, Err: err}
}

// Close ends the download.
func (d *Download) Close() error { return d.body.Close() }

// Image starts downloading a PXE file, GET /image/{id}/{version}/{file},
// following redirects and retrying transient failures until the response
// headers arrive. The body is not retried: the caller reads it, and a cut
// body surfaces as an error from Read.
func (c *Client) Image(ctx context.Context, id, ver, file string) (*Download, error) {
	if err := CheckSchematicID(id); err != nil {
		return nil, fmt.Errorf("factory: %w", err)
	}
	v, err := NormalizeVersion(ver)
	if err != nil {
		return nil, fmt.Errorf("factory: %w", err)
	}
	if err := CheckFile(file); err != nil {
		return nil, fmt.Errorf("factory: %w", err)
	}
	op := "GET /image/" + id + "/" + v + "/" + file
	resp, err := c.do(ctx, request{op: op, kind: "image", method: http.MethodGet, path: "/image/" + id + "/" + v + "/" + file})
	if err != nil {
		return nil, err
	}
	return &Download{Size: resp.ContentLength, body: resp.Body, op: op, c: c}, nil
}

// Versions lists the Talos versions the factory offers, GET /versions.
func (c *Client) Versions(ctx context.Context) ([]string, error) {
	const op = "GET /versions"
	resp, err := c.do(ctx, request{op: op, kind: "versions", method: http.MethodGet, path: "/versions"})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var vs []string
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&vs); err != nil {
		return nil, &Error{Factory: c.URL(), Op: op, Err: fmt.Errorf("decode version list: %w", err)}
	}
	return vs, nil
}

// SchematicID registers a schematic (its YAML, as in
// profiles/schematics/<name>.yaml) with the factory, POST /schematics, and
// returns its ID. The ID is remembered on disk: when the factory cannot be
// reached (network error, timeout, 5xx) and the same body was registered
// before, the remembered ID is returned. A schematic the factory rejects
// (400) is reported with the factory's own message.
func (c *Client) SchematicID(ctx context.Context, schematic []byte) (string, error) {
	sum := sha256.Sum256(schematic)
	key := hex.EncodeToString(sum[:])
	c.mu.Lock()
	id, ok := c.confirmed[key]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	remembered, haveRemembered := c.store.get(key)
	r := request{op: "register schematic", kind: "register", method: http.MethodPost, path: "/schematics", body: schematic, contentType: "application/yaml"}
	if haveRemembered {
		// One try: the answer is known already, a factory that is down
		// should not delay a profile reload by the whole backoff.
		r.attempts = 1
	}
	id, err := c.register(ctx, r)
	if err == nil {
		c.mu.Lock()
		c.confirmed[key] = id
		c.mu.Unlock()
		if remembered != id {
			if serr := c.store.put(key, id); serr != nil {
				c.log.Warn("factory: cannot remember schematic ID; a restart without the factory will not know it", "err", serr)
			}
		}
		return id, nil
	}
	var fe *Error
	if ctx.Err() != nil || (errors.As(err, &fe) && !fe.transient()) {
		return "", err
	}
	if haveRemembered {
		c.log.Warn("factory unreachable; using the schematic ID remembered from an earlier registration",
			"factory", c.URL(), "schematic", remembered, "err", err)
		return remembered, nil
	}
	return "", fmt.Errorf("%w (and no ID is remembered for this schematic in %s)", err, c.store.describe())
}

func (c *Client) register(ctx context.Context, r request) (string, error) {
	resp, err := c.do(ctx, r)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody)).Decode(&out); err != nil {
		return "", &Error{Factory: c.URL(), Op: r.op, Err: fmt.Errorf("decode answer: %w", err)}
	}
	if err := CheckSchematicID(out.ID); err != nil {
		return "", &Error{Factory: c.URL(), Op: r.op, Err: fmt.Errorf("answer: %w", err)}
	}
	return out.ID, nil
}
