package admin

import (
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestLogin: pages send a browser without the cookie to the login page;
// a wrong token is refused; the right one sets an HttpOnly, SameSite=Strict
// cookie holding it and returns to the page asked for; log-out clears it.
func TestLogin(t *testing.T) {
	c, _ := newCache(t)
	f := newFull(t, "s3cret", func(o *Options) { o.Cache = c; o.Factory = fakeFactory{} })
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
		resp, err := client.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(path string, form url.Values) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", f.srv.URL)
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
		if c.Name == CookieName {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Value != "s3cret" {
		t.Fatalf("login cookie: %+v", cookie)
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
}

// TestOpenListener: without a token the pages need no login.
func TestOpenListener(t *testing.T) {
	f := newFull(t, "", nil)
	resp, err := http.Get(f.srv.URL + "/")
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

func TestMaskSecrets(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		hidden   []string
	}{
		{
			name:   "talos secrets",
			in:     "machine:\n  token: abc.def\n  ca:\n    crt: LS0tCRT\n    key: LS0tKEY\n  network:\n    hostname: cp-01\ncluster:\n  secret: s3\n  aescbcEncryptionSecret: aesvalue\n  serviceAccount:\n    key: sa\n",
			want:   []string{"hostname: cp-01", "token: " + masked, "crt: " + masked},
			hidden: []string{"abc.def", "LS0tCRT", "LS0tKEY", "s3", "aesvalue", ": sa"},
		},
		{
			name:   "several documents and lists",
			in:     "a: 1\n---\ncerts:\n  - one\n  - two\nkeep: [x]\n",
			want:   []string{"a: 1", "keep: [x]", "- " + masked},
			hidden: []string{"one", "two"},
		},
		{name: "not YAML", in: "a: [\n", want: []string{masked}, hidden: []string{"a:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := maskSecrets([]byte(tt.in))
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("got\n%s\nwant it to hold %q", got, w)
				}
			}
			for _, h := range tt.hidden {
				if strings.Contains(got, h) {
					t.Errorf("got\n%s\nwant %q masked", got, h)
				}
			}
		})
	}
}

func TestTimeline(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 1, 1, 0, 0, s, 0, time.UTC) }
	ev := func(s int, k machine.EventKind, detail string, n int64) machine.Event {
		return machine.Event{Time: at(s), Kind: k, Detail: detail, Bytes: n}
	}
	events := []machine.Event{
		ev(1, machine.EventDHCPOffer, "offer", 0), ev(2, machine.EventScript, "netboot", 0), ev(3, machine.EventConfig, "", 10),
		// The next boot: only its steps count.
		ev(10, machine.EventDHCPOffer, "offer", 0), ev(11, machine.EventDHCPOffer, "ack", 0), ev(12, machine.EventTFTP, "ipxe.efi", 1000),
		ev(13, machine.EventScript, "netboot", 0), ev(14, machine.EventKernel, "kernel-amd64", 5000), ev(15, machine.EventInitramfs, "initramfs-amd64.xz", 9000),
		ev(16, machine.EventAsset, "cmdline-metal-amd64", 50), ev(17, machine.EventReinstall, "", 0),
	}
	steps := timeline(events)
	want := []struct {
		done bool
		sec  int
		n    int64
	}{{true, 11, 0}, {true, 12, 1000}, {true, 13, 0}, {true, 14, 5000}, {true, 15, 9000}, {false, 0, 0}, {false, 0, 0}}
	if len(steps) != len(want) {
		t.Fatalf("got %d steps, want %d", len(steps), len(want))
	}
	for i, w := range want {
		s := steps[i]
		if s.Done != w.done || (w.done && (!s.Time.Equal(at(w.sec)) || s.Bytes != w.n)) {
			t.Errorf("step %s: got done=%v at %v %d bytes, want done=%v at %ds %d bytes", s.Name, s.Done, s.Time, s.Bytes, w.done, w.sec, w.n)
		}
	}
	if got := timeline(nil); len(got) != 7 || got[0].Done {
		t.Errorf("no events: got %+v", got)
	}
}
