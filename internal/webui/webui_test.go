package webui

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
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
