package webui

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/admin"
)

// TestLogin: pages send a browser without the cookie to the login page;
// a wrong token is refused; the right one sets an HttpOnly, SameSite=Strict
// cookie holding a session id (not the token) and returns to the page
// asked for; log-out clears it and ends the session on the server, so the
// old cookie, sent again, no longer works.
func TestLogin(t *testing.T) {
	srv := newServer(t, "s3cret")
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	var lastLocation string
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		lastLocation = req.URL.RequestURI()
		return nil
	}}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(path string, form url.Values) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", srv.URL)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	code, body := get("/cache")
	if code != http.StatusOK || !strings.Contains(body, `id="token"`) || lastLocation != "/login?next=%2Fcache" {
		t.Fatalf("without the cookie: %d at %s", code, lastLocation)
	}
	resp, body := post("/login", url.Values{"token": {"guess"}, "next": {"/cache"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not the one") {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	// A next that leaves the site is replaced by /.
	resp, _ = post("/login", url.Values{"token": {"s3cret"}, "next": {"//evil.example/x"}})
	if resp.StatusCode != http.StatusOK || lastLocation != "/" {
		t.Fatalf("login: %d at %s", resp.StatusCode, lastLocation)
	}
	var cookie *http.Cookie
	for _, c := range resp.Request.Response.Cookies() {
		if c.Name == admin.CookieName {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" ||
		cookie.MaxAge != int(admin.SessionTTL/time.Second) || len(cookie.Value) < 43 || strings.Contains(cookie.Value, "s3cret") {
		t.Fatalf("login cookie: %+v; want a 256-bit session id, HttpOnly, SameSite=Strict, Path=/, Max-Age 12 h", cookie)
	}
	pages := []struct{ path, want string }{
		{"/", "1c:69:7a:00:00:11"},
		{"/machines/" + macCP, "Boot timeline"},
		{"/machines/52:54:00:00:00:88", "This machine has no profile yet"},
		{"/cache", "Prefetch"},
		{"/status", "iPXE binaries"},
		{"/static/app.js", "EventSource"},
		{"/static/style.css", "@media"},
	}
	for _, p := range pages {
		if code, body := get(p.path); code != http.StatusOK || !strings.Contains(body, p.want) {
			t.Errorf("%s: got %d, want 200 with %q", p.path, code, p.want)
		}
	}
	if code, _ := get("/machines/not-a-mac"); code != http.StatusBadRequest {
		t.Errorf("bad MAC page: got %d, want 400", code)
	}
	if resp, _ := post("/logout", nil); lastLocation != "/login" || resp.StatusCode != http.StatusOK {
		t.Errorf("logout: %d at %s", resp.StatusCode, lastLocation)
	}
	if _, body := get("/"); !strings.Contains(body, `id="token"`) {
		t.Error("after logout the machines page is still shown")
	}
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/machines", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(cookie)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the logged-out session's cookie, replayed: got %d, want 401", resp.StatusCode)
	}
}

// TestOpenListener: without a token the pages need no login.
func TestOpenListener(t *testing.T) {
	srv := newServer(t, "")
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		t.Fatalf("got %d at %s", resp.StatusCode, resp.Request.URL)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("got CSP %q", csp)
	}
}

// TestCrossSiteLogin: a login form posted from another site is refused.
func TestCrossSiteLogin(t *testing.T) {
	srv := newServer(t, "s3cret")
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/login", strings.NewReader("token=s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Errorf("got %d with cookies %v, want 403 and none", resp.StatusCode, resp.Cookies())
	}
}

// TestLoginThrottle: wrong tokens at the login page are throttled per
// address: after admin.FailureBurst of them the page answers 429 with
// Retry-After and sets no cookie, even for the right token, until the
// wait is over.
func TestLoginThrottle(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := newServerClock(t, "s3cret", clock)
	login := func(token string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", srv.URL)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range admin.FailureBurst {
		if resp := login("guess"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: got %d, want 401", i+1, resp.StatusCode)
		}
	}
	resp := login("s3cret")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "12" || len(resp.Cookies()) != 0 {
		t.Fatalf("right token while throttled: got %d Retry-After %q cookies %v, want 429, 12 and none", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Cookies())
	}
	mu.Lock()
	now = now.Add(12 * time.Second)
	mu.Unlock()
	if resp := login("s3cret"); resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Errorf("right token after the wait: got %d cookies %v, want 303 and the session", resp.StatusCode, resp.Cookies())
	}
}

var noRedirect = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestLocalNext: the login's next keeps only paths of this site.
func TestLocalNext(t *testing.T) {
	tests := []struct{ next, want string }{
		{"/", "/"},
		{"/cache", "/cache"},
		{"/machines/1c:69:7a:00:00:11", "/machines/1c:69:7a:00:00:11"},
		{"/machines/1c%3A69%3A7a%3A00%3A00%3A11?tab=profile#editor", "/machines/1c%3A69%3A7a%3A00%3A00%3A11?tab=profile#editor"},
		{"", "/"},
		{"cache", "/"},
		{"//evil.example", "/"},
		{"//evil.example/x", "/"},
		{`/\evil.example`, "/"},
		{`/\/evil.example`, "/"},
		{"/\t/evil.example", "/"},
		{"/\n/evil.example", "/"},
		{"/%09/evil.example", "/"},
		{"/%0a/evil.example", "/"},
		{"/%5Cevil.example", "/"},
		{"/%2F/evil.example", "/"},
		{"/x?next=%5C%5Cevil", "/"},
		{"https://evil.example", "/"},
		{"http:/evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"/javascript:alert(1)", "/javascript:alert(1)"},
		{" /cache", "/"},
		{"/%zz", "/"},
	}
	for _, tt := range tests {
		if got := LocalNext(tt.next); got != tt.want {
			t.Errorf("LocalNext(%q): got %q, want %q", tt.next, got, tt.want)
		}
	}
}

// TestLoginNextThroughServer: the login page and form both replace a
// next that leaves the site.
func TestLoginNextThroughServer(t *testing.T) {
	srv := newServer(t, "s3cret")
	for _, next := range []string{"/\t/evil.example", "/%09/evil.example", "//evil.example", `/\evil.example`, "https://evil.example", "javascript:alert(1)"} {
		form := url.Values{"token": {"s3cret"}, "next": {next}}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/login", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", srv.URL)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/" {
			t.Errorf("next %q: got %d to %q, want 303 to /", next, resp.StatusCode, loc)
		}
		resp, err = http.Get(srv.URL + "/login?next=" + url.QueryEscape(next))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `name="next" value="/"`) {
			t.Errorf("login page with next %q: the form does not carry /", next)
		}
	}
}
