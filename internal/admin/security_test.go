package admin

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tinderbox-boot/tinderbox/pkg/client"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

func TestHostsAllowed(t *testing.T) {
	extra := []string{"tinderbox.example", "proxy.example:8443", "[2001:db8::5]"}
	tests := []struct {
		name, listen, local, host string
		want                      bool
	}{
		{"listen address", "127.0.0.1:8081", "", "127.0.0.1:8081", true},
		{"localhost", "127.0.0.1:8081", "", "localhost:8081", true},
		{"localhost, any case, final dot", "127.0.0.1:8081", "", "LocalHost.:8081", true},
		{"IPv6 loopback", "127.0.0.1:8081", "", "[::1]:8081", true},
		{"another port", "127.0.0.1:8081", "", "localhost:8082", false},
		{"no port means 80", "127.0.0.1:8081", "", "localhost", false},
		{"no port on port 80", "127.0.0.1:80", "", "localhost", true},
		{"rebinding name", "127.0.0.1:8081", "", "evil.example:8081", false},
		{"rebinding name, no port", "127.0.0.1:8081", "", "evil.example", false},
		{"loopback name as a prefix", "127.0.0.1:8081", "", "127.0.0.1.evil.example:8081", false},
		{"userinfo", "127.0.0.1:8081", "", "localhost@evil.example:8081", false},
		{"empty", "127.0.0.1:8081", "", "", false},
		{"admin.hosts name, any port", "127.0.0.1:8081", "", "tinderbox.example:9000", true},
		{"admin.hosts name, no port", "127.0.0.1:8081", "", "Tinderbox.Example", true},
		{"admin.hosts name:port", "127.0.0.1:8081", "", "proxy.example:8443", true},
		{"admin.hosts name, other port", "127.0.0.1:8081", "", "proxy.example", false},
		{"admin.hosts IPv6", "127.0.0.1:8081", "", "[2001:db8::5]:1234", true},
		{"wildcard: the address connected to", "0.0.0.0:8081", "10.0.0.5:8081", "10.0.0.5:8081", true},
		{"wildcard: another address", "0.0.0.0:8081", "10.0.0.5:8081", "10.0.0.6:8081", false},
		{"wildcard: localhost", "0.0.0.0:8081", "127.0.0.1:8081", "localhost:8081", true},
		{"wildcard IPv6: [::1]", "[::]:8081", "[::1]:8081", "[::1]:8081", true},
		{"one address: not localhost", "10.0.0.5:8081", "10.0.0.5:8081", "localhost:8081", false},
		{"one address: itself", "10.0.0.5:8081", "", "10.0.0.5:8081", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHosts(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(tt.listen)), extra)
			if err != nil {
				t.Fatal(err)
			}
			var local netip.AddrPort
			if tt.local != "" {
				local = netip.MustParseAddrPort(tt.local)
			}
			if got := h.Allowed(tt.host, local); got != tt.want {
				t.Errorf("Allowed(%q) on %s: got %v, want %v", tt.host, tt.listen, got, tt.want)
			}
		})
	}
	if _, err := NewHosts(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, []string{"https://x.example/"}); err == nil {
		t.Error("NewHosts took a URL as a host name")
	}
}

// syncBuffer is a log destination the server's goroutines can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hostGuarded serves the API of an open listener behind Hosts.Middleware
// on a loopback socket,
// as cmd/tinderbox wires it, and returns the server and its log.
func hostGuarded(t *testing.T, extra []string, tweak func(*Options)) (*full, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	f := newFull(t, "", func(o *Options) {
		o.Logger = log
		if tweak != nil {
			tweak(o)
		}
	})
	f.srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHosts(ln.Addr(), extra)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Use(h.Middleware(log))
	f.api.Mount(r)
	f.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: r}}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f, &logs
}

// TestHostMiddleware: over a real socket, a Host that does not name the
// listener gets a JSON 421 whatever the call and credentials; the
// listener's own names and admin.hosts get through, and so does
// pkg/client.
func TestHostMiddleware(t *testing.T) {
	f, logs := hostGuarded(t, []string{"tinderbox.example"}, nil)
	p := ":" + strconv.Itoa(f.srv.Listener.Addr().(*net.TCPAddr).Port)
	tests := []struct {
		name, method, path, host string
		want                     int
	}{
		{"rebinding: read a config", http.MethodGet, "/api/v1/machines/" + macCP + "/config", "evil.example" + p, http.StatusMisdirectedRequest},
		{"rebinding: no port", http.MethodGet, "/api/v1/machines", "evil.example", http.StatusMisdirectedRequest},
		{"rebinding: reinstall", http.MethodPost, "/api/v1/machines/" + macCP + "/reinstall", "evil.example" + p, http.StatusMisdirectedRequest},
		{"rebinding: unknown path", http.MethodGet, "/nothing", "evil.example" + p, http.StatusMisdirectedRequest},
		{"other port", http.MethodGet, "/api/v1/machines", "localhost:1", http.StatusMisdirectedRequest},
		{"127.0.0.1", http.MethodGet, "/api/v1/machines", "127.0.0.1" + p, http.StatusOK},
		{"localhost", http.MethodGet, "/api/v1/machines/" + macCP + "/config", "localhost" + p, http.StatusOK},
		{"admin.hosts", http.MethodGet, "/api/v1/machines", "tinderbox.example", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, body := call(t, f.srv.URL, tt.method, tt.path, "", "", map[string]string{"Host": tt.host})
			if code != tt.want {
				t.Fatalf("got %d %s, want %d", code, body, tt.want)
			}
			if code == http.StatusMisdirectedRequest && (!strings.Contains(body, `"error"`) || !strings.Contains(body, "admin.hosts") || !strings.Contains(body, "DNS rebinding")) {
				t.Errorf("421 body: %s", body)
			}
		})
	}
	if _, ok, _ := f.store.Get(machine.MustParseMAC(macCP)); ok {
		t.Error("a refused reinstall made a record")
	}
	if !strings.Contains(logs.String(), "host=evil.example") {
		t.Errorf("no log line names the refused host:\n%s", logs)
	}
	if list, err := client.New(f.srv.URL, "").Machines(t.Context()); err != nil || len(list) == 0 {
		t.Errorf("pkg/client: got %d machines, %v", len(list), err)
	}
}

// TestOpenListenerCrossSite: on a listener without a token, a state
// change a browser marks as coming from another site is refused with a
// JSON 403 and changes nothing; the same call from the listener's own
// page, or from a client that is no browser, goes through. Reads are not
// refused (the Host check and the browser's same-origin policy keep
// other sites from reading them).
func TestOpenListenerCrossSite(t *testing.T) {
	c, _ := newCache(t)
	f, _ := hostGuarded(t, nil, func(o *Options) { o.Cache = c })
	self := f.srv.URL
	refused := map[string]map[string]string{
		"other origin":                {"Origin": "http://evil.example"},
		"other origin, cross-site":    {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
		"cross-site fetch":            {"Sec-Fetch-Site": "cross-site"},
		"same-site (another port)":    {"Sec-Fetch-Site": "same-site"},
		"opaque origin":               {"Origin": "null"},
		"own origin but cross-site":   {"Origin": self, "Sec-Fetch-Site": "cross-site"},
		"own host on another scheme":  {"Origin": "ftp://" + strings.TrimPrefix(self, "http://")},
		"own origin with a path":      {"Origin": self + "/x"},
		"other origin, same-origin??": {"Origin": "http://evil.example", "Sec-Fetch-Site": "same-origin"},
	}
	allowed := map[string]map[string]string{
		"no browser headers (CLI, curl)":   nil,
		"own origin":                       {"Origin": self},
		"own origin, same-origin fetch":    {"Origin": self, "Sec-Fetch-Site": "same-origin"},
		"same-origin fetch without Origin": {"Sec-Fetch-Site": "same-origin"},
		"typed by the user":                {"Sec-Fetch-Site": "none"},
	}
	writes := []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/machines/" + macCP + "/reinstall", ""},
		{http.MethodPost, "/api/v1/cache/prefetch", ""},
		{http.MethodDelete, "/api/v1/machines/" + macCP, ""},
		{http.MethodPut, "/api/v1/machines/" + macCP + "/profile?check=1", validCP},
		{http.MethodDelete, "/api/v1/machines/" + macCP + "/profile", ""},
	}
	for name, hdr := range refused {
		for _, w := range writes {
			t.Run(name+" "+w.method+" "+w.path, func(t *testing.T) {
				code, _, body := call(t, f.srv.URL, w.method, w.path, "", w.body, hdr)
				if code != http.StatusForbidden || !strings.Contains(body, "cross-site request refused") {
					t.Errorf("got %d %s, want a JSON 403", code, body)
				}
			})
		}
		t.Run(name+" read", func(t *testing.T) {
			if code, _, body := call(t, f.srv.URL, http.MethodGet, "/api/v1/machines/"+macCP, "", "", hdr); code != http.StatusOK {
				t.Errorf("got %d %s, want 200", code, body)
			}
		})
	}
	if _, ok, _ := f.store.Get(machine.MustParseMAC(macCP)); ok {
		t.Error("a refused reinstall made a record")
	}
	if st := f.api.prefetch.get(); st.Started != nil {
		t.Errorf("a refused prefetch ran: %+v", st)
	}
	for name, hdr := range allowed {
		t.Run(name, func(t *testing.T) {
			code, _, body := call(t, f.srv.URL, http.MethodPost, "/api/v1/machines/"+macCP+"/reinstall", "", "", hdr)
			if code != http.StatusOK {
				t.Errorf("reinstall: got %d %s, want 200", code, body)
			}
		})
	}
	if err := client.New(f.srv.URL, "").Forget(t.Context(), macCP); err != nil {
		t.Errorf("pkg/client forget: %v", err)
	}
}

// TestBearerThrottle: wrong bearer tokens are logged (never the token)
// and, after FailureBurst of them, the source gets 429 with Retry-After
// for every token, the right one included, until a token's worth of
// time has passed; after a FailureWindow without failures the whole
// burst is back. Another source is not affected.
func TestBearerThrottle(t *testing.T) {
	const token = "s3cret-but-long-enough-for-this-test"
	clk := newClock()
	var logs syncBuffer
	f := newFull(t, token, func(o *Options) {
		o.Clock = clk.Now
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	get := func(tok string) (int, http.Header) {
		t.Helper()
		code, hdr, _ := call(t, f.srv.URL, http.MethodGet, "/api/v1/machines", tok, "", nil)
		return code, hdr
	}
	for i := range FailureBurst {
		if code, _ := get("guess-" + strconv.Itoa(i)); code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: got %d, want 401", i+1, code)
		}
	}
	for _, tok := range []string{"guess-x", token} {
		code, hdr := get(tok)
		if code != http.StatusTooManyRequests || hdr.Get("Retry-After") != "12" {
			t.Fatalf("after %d failures, token %q: got %d Retry-After %q, want 429 Retry-After 12", FailureBurst, tok, code, hdr.Get("Retry-After"))
		}
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("no token while throttled: got %d, want 401", code)
	}
	if code, _, _ := call(t, f.srv.URL, http.MethodGet, "/api/v1/machines", "", "", map[string]string{"Authorization": "Bearer " + token}); code != http.StatusTooManyRequests {
		t.Errorf("right token while throttled: got %d, want 429", code)
	}
	t.Run("another source", func(t *testing.T) {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
		cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL+"/api/v1/machines", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := cl.Do(req)
		if err != nil {
			t.Skipf("cannot send from 127.0.0.2 on this host: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("127.0.0.2 with the right token: got %d, want 200", resp.StatusCode)
		}
	})

	clk.Advance(11 * time.Second)
	if code, hdr := get(token); code != http.StatusTooManyRequests || hdr.Get("Retry-After") != "1" {
		t.Errorf("11 s on: got %d Retry-After %q, want 429 Retry-After 1", code, hdr.Get("Retry-After"))
	}
	clk.Advance(time.Second)
	if code, _ := get(token); code != http.StatusOK {
		t.Errorf("12 s on, right token: got %d, want 200", code)
	}
	if code, _ := get("guess-again"); code != http.StatusUnauthorized {
		t.Errorf("12 s on, one more guess: got %d, want 401", code)
	}
	if code, _ := get(token); code != http.StatusTooManyRequests {
		t.Errorf("after that guess: got %d, want 429", code)
	}
	clk.Advance(FailureWindow)
	for i := range FailureBurst {
		if code, _ := get("guess-" + strconv.Itoa(i)); code != http.StatusUnauthorized {
			t.Fatalf("a window later, wrong token %d: got %d, want 401", i+1, code)
		}
	}

	out := logs.String()
	if n := strings.Count(out, "level=WARN msg=\"admin: wrong bearer token\""); n != 2*FailureBurst+1 {
		t.Errorf("got %d warnings for wrong tokens, want %d:\n%s", n, 2*FailureBurst+1, out)
	}
	if !strings.Contains(out, "remote=127.0.0.1:") || !strings.Contains(out, "path=/api/v1/machines") || !strings.Contains(out, "too many failed attempts") {
		t.Errorf("warnings lack the source, the path or the throttle:\n%s", out)
	}
	if strings.Contains(out, "guess") || strings.Contains(out, token) {
		t.Errorf("a token reached the log:\n%s", out)
	}
}

// TestThrottleBounded: the throttle remembers at most maxSources
// sources; newcomers beyond share one bucket, which never throttles a
// remembered source; sources whose bucket has refilled are forgotten
// when room is needed.
func TestThrottleBounded(t *testing.T) {
	clk := newClock()
	th := newThrottle(clk.Now)
	src := func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
	}
	for i := range maxSources + FailureBurst {
		th.fail(src(i))
	}
	if len(th.sources) != maxSources {
		t.Fatalf("got %d sources, want %d", len(th.sources), maxSources)
	}
	if th.wait(src(maxSources+100)) == 0 {
		t.Error("a newcomer beyond the bound is not throttled by the shared bucket after a burst of failures")
	}
	if th.wait(src(0)) != 0 {
		t.Error("a remembered source with one failure is throttled")
	}
	clk.Advance(FailureWindow)
	if th.fail(src(maxSources + 200)) {
		t.Error("a newcomer's first failure throttles it")
	}
	if len(th.sources) != 1 {
		t.Errorf("after a quiet window: got %d sources, want 1 (the refilled ones forgotten)", len(th.sources))
	}
}

func TestSource(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"192.0.2.7:5000", "192.0.2.7/32"},
		{"[2001:db8:1:2:3:4:5:6]:5000", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:5000", "192.0.2.7/32"},
		{"[fe80::1%eth0]:5000", "fe80::/64"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tt.remote
		if got := source(r).String(); got != tt.want {
			t.Errorf("source(%s): got %s, want %s", tt.remote, got, tt.want)
		}
	}
}

// TestSessions: a session lasts SessionTTL, ends at logout, and the
// store is bounded, dropping the session closest to expiry.
func TestSessions(t *testing.T) {
	clk := newClock()
	s := newSessions(clk.Now)
	id, exp := s.start()
	if len(id) < 43 || !exp.Equal(clk.Now().Add(SessionTTL)) {
		t.Fatalf("got id %q expiring %v", id, exp)
	}
	if other, _ := s.start(); other == id {
		t.Fatal("two sessions share an id")
	}
	clk.Advance(SessionTTL - time.Second)
	if !s.valid(id) {
		t.Error("a session ended before SessionTTL")
	}
	clk.Advance(time.Second)
	if s.valid(id) {
		t.Error("a session outlived SessionTTL")
	}
	id, _ = s.start()
	s.end(id)
	if s.valid(id) || s.valid("") {
		t.Error("an ended or empty session is valid")
	}
	first, _ := s.start()
	var last string
	for range maxSessions + 10 {
		clk.Advance(time.Second)
		last, _ = s.start()
	}
	if len(s.expires) > maxSessions || s.valid(first) || !s.valid(last) {
		t.Errorf("bounded store: %d sessions, oldest valid %v, newest valid %v", len(s.expires), s.valid(first), s.valid(last))
	}
}

// TestLoginSession: the API's Login throttles like the bearer check and gives
// a session cookie, never the token.
func TestLoginSession(t *testing.T) {
	const token = "s3cret-but-long-enough-for-this-test"
	clk := newClock()
	f := newFull(t, token, func(o *Options) { o.Clock = clk.Now })
	req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/login", nil)
	c, err := f.api.Login(req, " "+token+" ")
	if err != nil || c.Value == token || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("Login: got %+v, %v", c, err)
	}
	for range FailureBurst {
		if _, err := f.api.Login(req, "guess"); !errors.Is(err, ErrWrongToken) {
			t.Fatalf("wrong token: got %v", err)
		}
	}
	var te *ThrottledError
	if _, err := f.api.Login(req, token); !errors.As(err, &te) || te.Seconds() != 12 {
		t.Fatalf("right token after %d failures: got %v, want a 12 s ThrottledError", FailureBurst, err)
	}
	clk.Advance(12 * time.Second)
	if _, err := f.api.Login(req, token); err != nil {
		t.Errorf("12 s later: %v", err)
	}
}
