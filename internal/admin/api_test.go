package admin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// call sends a request with an optional bearer token, body and headers
// (a "Host" among them replaces the request's Host) and returns the
// status, the headers and the body.
func call(t *testing.T, url, method, path, token, body string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

const validCP = "hostname: cp-01-renamed\ngroups: [controlplane, nuc]\nvalues:\n  address: 192.168.1.11/24\n"

// TestProfileCalls: GET, PUT (checked, refused with 422 and the problems'
// lines, written atomically and served at once), PUT ?check=1, DELETE.
func TestProfileCalls(t *testing.T) {
	f := newFull(t, "", nil)
	cpFile := filepath.Join(f.dir, filepath.FromSlash(fileCP))
	orig, err := os.ReadFile(cpFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, body string
		want                     int
		// wantBody is a substring of the answer.
		wantBody string
		// wantFile is the cp-01 file's content after the call.
		wantFile string
	}{
		{name: "get", method: http.MethodGet, path: "/api/v1/machines/" + macCP + "/profile", want: http.StatusOK, wantBody: "hostname: cp-01", wantFile: string(orig)},
		{name: "get dashed MAC", method: http.MethodGet, path: "/api/v1/machines/1C-69-7A-00-00-11/profile", want: http.StatusOK, wantBody: "hostname: cp-01", wantFile: string(orig)},
		{name: "get none", method: http.MethodGet, path: "/api/v1/machines/52:54:00:00:00:77/profile", want: http.StatusNotFound, wantBody: `"error"`, wantFile: string(orig)},
		{name: "get bad MAC", method: http.MethodGet, path: "/api/v1/machines/nope/profile", want: http.StatusBadRequest, wantBody: `"error"`, wantFile: string(orig)},
		{name: "put unknown key", method: http.MethodPut, path: "/api/v1/machines/" + macCP + "/profile", body: "hostname: x\ngroupz: [nuc]\n",
			want: http.StatusUnprocessableEntity, wantBody: `"` + fileCP + `:2: unknown key \"groupz\"`, wantFile: string(orig)},
		{name: "put bad YAML", method: http.MethodPut, path: "/api/v1/machines/" + macCP + "/profile", body: "hostname: [x\n",
			want: http.StatusUnprocessableEntity, wantBody: `"line": 1`, wantFile: string(orig)},
		{name: "put missing group", method: http.MethodPut, path: "/api/v1/machines/" + macCP + "/profile", body: "hostname: x\ngroups: [nope]\n",
			want: http.StatusUnprocessableEntity, wantBody: "nope", wantFile: string(orig)},
		{name: "put check only", method: http.MethodPut, path: "/api/v1/machines/" + macCP + "/profile?check=1", body: validCP,
			want: http.StatusOK, wantBody: `"checked": true`, wantFile: string(orig)},
		{name: "put", method: http.MethodPut, path: "/api/v1/machines/" + macCP + "/profile", body: validCP,
			want: http.StatusOK, wantBody: `"etag"`, wantFile: validCP},
		{name: "delete none", method: http.MethodDelete, path: "/api/v1/machines/52:54:00:00:00:77/profile", want: http.StatusNotFound, wantBody: `"error"`, wantFile: validCP},
		{name: "delete", method: http.MethodDelete, path: "/api/v1/machines/" + macCP + "/profile", want: http.StatusOK, wantBody: fileCP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hdr, body := call(t, f.srv.URL, tt.method, tt.path, "", tt.body, nil)
			if code != tt.want || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("got %d %s, want %d with %q", code, body, tt.want, tt.wantBody)
			}
			if ct := hdr.Get("Content-Type"); code >= 400 && ct != "application/json" {
				t.Errorf("error answer has Content-Type %q, want application/json", ct)
			}
			got, err := os.ReadFile(cpFile)
			if tt.wantFile == "" {
				if !os.IsNotExist(err) {
					t.Errorf("file still there after delete: %v", err)
				}
			} else if string(got) != tt.wantFile {
				t.Errorf("file holds %q, want %q", got, tt.wantFile)
			}
		})
	}
	if _, ok := f.profiles.Machine(mustMAC(macCP)); ok {
		t.Errorf("the deleted profile is still served")
	}
	entries, _ := os.ReadDir(filepath.Join(f.dir, "machines"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

// TestProfileServedAtOnce: a PUT changes the rendered config, the profile
// flag and the event stream without waiting for the directory watcher.
func TestProfileServedAtOnce(t *testing.T) {
	f := newFull(t, "", nil)
	const mac = "52:54:00:00:00:77"
	if code, _, _ := call(t, f.srv.URL, http.MethodGet, "/api/v1/machines/"+mac+"/config", "", "", nil); code != http.StatusNotFound {
		t.Fatalf("config before the profile: got %d, want 404", code)
	}
	code, hdr, body := call(t, f.srv.URL, http.MethodPut, "/api/v1/machines/"+mac+"/profile", "",
		"hostname: new-one\ngroups: [worker, vm]\nvalues:\n  address: 192.168.1.77/24\n", map[string]string{"If-None-Match": "*"})
	if code != http.StatusCreated || hdr.Get("ETag") == "" {
		t.Fatalf("create: got %d %s (ETag %q), want 201 with an ETag", code, body, hdr.Get("ETag"))
	}
	code, hdr, body = call(t, f.srv.URL, http.MethodGet, "/api/v1/machines/"+mac+"/config", "", "", nil)
	if code != http.StatusOK || !strings.Contains(body, "hostname: new-one") {
		t.Fatalf("config after the profile: got %d\n%s", code, body)
	}
	if got, want := hdr.Get(api.ProfileSetHeader), f.profiles.Status().Hash; got == "" || got != want {
		t.Errorf("config's %s: got %q, want the served set's %q", api.ProfileSetHeader, got, want)
	}
	code, _, body = call(t, f.srv.URL, http.MethodGet, "/api/v1/machines/"+mac, "", "", nil)
	var m api.Machine
	if err := json.Unmarshal([]byte(body), &m); err != nil || code != http.StatusOK || !m.Profile || m.Hostname != "new-one" {
		t.Fatalf("machine after the profile: %d %s", code, body)
	}
}

// TestProfileConflicts is the concurrency choice: If-Match makes a write
// conditional (412 when someone wrote in between), If-None-Match: *
// refuses to overwrite, and without them the last write wins, whole.
func TestProfileConflicts(t *testing.T) {
	f := newFull(t, "", nil)
	path := "/api/v1/machines/" + macCP + "/profile"
	_, hdr, _ := call(t, f.srv.URL, http.MethodGet, path, "", "", nil)
	tag := hdr.Get("ETag")
	if tag == "" {
		t.Fatal("GET gave no ETag")
	}
	// Alice and Bob both read the file; Alice saves first.
	if code, _, body := call(t, f.srv.URL, http.MethodPut, path, "", validCP, map[string]string{"If-Match": tag}); code != http.StatusOK {
		t.Fatalf("first write: got %d %s", code, body)
	}
	bob := strings.Replace(validCP, "cp-01-renamed", "cp-01-bob", 1)
	code, hdr, body := call(t, f.srv.URL, http.MethodPut, path, "", bob, map[string]string{"If-Match": tag})
	if code != http.StatusPreconditionFailed || !strings.Contains(body, "changed since it was read") {
		t.Fatalf("stale write: got %d %s, want 412", code, body)
	}
	if got := hdr.Get("ETag"); got != profiles.ETag([]byte(validCP)) {
		t.Errorf("412 carries ETag %q, want the current file's %q", got, profiles.ETag([]byte(validCP)))
	}
	if code, _, _ := call(t, f.srv.URL, http.MethodDelete, path, "", "", map[string]string{"If-Match": tag}); code != http.StatusPreconditionFailed {
		t.Errorf("stale delete: got %d, want 412", code)
	}
	if code, _, _ := call(t, f.srv.URL, http.MethodPut, path, "", bob, map[string]string{"If-None-Match": "*"}); code != http.StatusPreconditionFailed {
		t.Errorf("create over an existing file: got %d, want 412", code)
	}
	if code, _, _ := call(t, f.srv.URL, http.MethodPut, "/api/v1/machines/52:54:00:00:00:78/profile", "", bob, map[string]string{"If-Match": "*"}); code != http.StatusPreconditionFailed {
		t.Errorf("If-Match: * on a missing file: got %d, want 412", code)
	}
	if b, _ := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(fileCP))); string(b) != validCP {
		t.Fatalf("a refused write changed the file: %q", b)
	}
	// Unconditional writes at once: one of them wins, whole.
	var wg sync.WaitGroup
	bodies := make([]string, 8)
	for i := range bodies {
		bodies[i] = strings.Replace(validCP, "cp-01-renamed", "cp-01-w"+string(rune('a'+i)), 1)
		wg.Go(func() {
			if code, _, body := call(t, f.srv.URL, http.MethodPut, path, "", bodies[i], nil); code != http.StatusOK {
				t.Errorf("concurrent write %d: got %d %s", i, code, body)
			}
		})
	}
	wg.Wait()
	b, _ := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(fileCP)))
	found := false
	for _, want := range bodies {
		found = found || string(b) == want
	}
	if !found {
		t.Fatalf("after concurrent writes the file is none of them: %q", b)
	}
	if p, _ := f.profiles.Machine(mustMAC(macCP)); !strings.Contains(string(b), "hostname: "+p.Hostname+"\n") {
		t.Errorf("served hostname %q is not the file's: %q", p.Hostname, b)
	}
}

// TestBodyLimit: a body over 1 MiB is refused with 413 and writes nothing.
func TestBodyLimit(t *testing.T) {
	f := newFull(t, "", nil)
	big := "hostname: x\n# " + strings.Repeat("x", maxBody) + "\n"
	code, _, body := call(t, f.srv.URL, http.MethodPut, "/api/v1/machines/52:54:00:00:00:79/profile", "", big, nil)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, `"error"`) {
		t.Fatalf("got %d %s, want 413", code, body)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "machines", "52-54-00-00-00-79.yaml")); !os.IsNotExist(err) {
		t.Errorf("an oversized body was written: %v", err)
	}
}

// everyCall lists one request per API call.
var everyCall = []struct{ method, path, body string }{
	{http.MethodGet, "/api/v1/machines", ""},
	{http.MethodGet, "/api/v1/machines/" + macCP, ""},
	{http.MethodDelete, "/api/v1/machines/52:54:00:00:00:70", ""},
	{http.MethodGet, "/api/v1/machines/" + macCP + "/config", ""},
	{http.MethodGet, "/api/v1/machines/" + macCP + "/script", ""},
	{http.MethodPost, "/api/v1/machines/" + macCP + "/reinstall", ""},
	{http.MethodGet, "/api/v1/machines/" + macCP + "/profile", ""},
	{http.MethodPut, "/api/v1/machines/" + macCP + "/profile?check=1", validCP},
	{http.MethodDelete, "/api/v1/machines/52:54:00:00:00:70/profile", ""},
	{http.MethodGet, "/api/v1/cache", ""},
	{http.MethodGet, "/api/v1/status", ""},
}

// TestAuthEveryCall: every call refuses no token and a wrong one with a
// JSON 401, and takes the right one. The clock moves a FailureWindow on
// before each call's wrong token, so the throttle stays out of it.
func TestAuthEveryCall(t *testing.T) {
	c, _ := newCache(t)
	clk := newClock()
	f := newFull(t, "s3cret", func(o *Options) { o.Cache, o.Clock = c, clk.Now })
	for _, c := range everyCall {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			clk.Advance(FailureWindow)
			for _, tok := range []string{"", "wrong"} {
				code, hdr, body := call(t, f.srv.URL, c.method, c.path, tok, c.body, nil)
				if code != http.StatusUnauthorized || !strings.Contains(body, `"error"`) || hdr.Get("WWW-Authenticate") == "" {
					t.Errorf("token %q: got %d %s, want a JSON 401", tok, code, body)
				}
			}
			if code, _, body := call(t, f.srv.URL, c.method, c.path, "s3cret", c.body, nil); code == http.StatusUnauthorized || code >= 500 {
				t.Errorf("right token: got %d %s", code, body)
			}
		})
	}
	t.Run("events", func(t *testing.T) {
		clk.Advance(FailureWindow)
		if code, _, _ := call(t, f.srv.URL, http.MethodGet, "/api/v1/events", "wrong", "", nil); code != http.StatusUnauthorized {
			t.Errorf("got %d, want 401", code)
		}
	})
}

// TestCookieAuth: the UI's session cookie stands in for the token; state
// changes under it need the UI's own origin.
func TestCookieAuth(t *testing.T) {
	f := newFull(t, "s3cret", nil)
	host := strings.TrimPrefix(f.srv.URL, "http://")
	c, err := f.api.Login(httptest.NewRequest(http.MethodPost, "/login", nil), "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	session := c.Value
	tests := []struct {
		name, method, path, cookie string
		hdr                        map[string]string
		want                       int
	}{
		{"read with cookie", http.MethodGet, "/api/v1/machines", session, nil, http.StatusOK},
		{"read with a wrong cookie", http.MethodGet, "/api/v1/machines", "guess", nil, http.StatusUnauthorized},
		{"the token is no session", http.MethodGet, "/api/v1/machines", "s3cret", nil, http.StatusUnauthorized},
		{"write, same origin", http.MethodPost, "/api/v1/machines/" + macCP + "/reinstall", session, map[string]string{"Origin": "http://" + host}, http.StatusOK},
		{"write, Sec-Fetch-Site same-origin", http.MethodPost, "/api/v1/machines/" + macCP + "/reinstall", session, map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		{"write, other origin", http.MethodPost, "/api/v1/machines/" + macCP + "/reinstall", session, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"write, cross-site fetch", http.MethodDelete, "/api/v1/machines/" + macCP + "/profile", session, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"write, no origin at all", http.MethodPut, "/api/v1/machines/" + macCP + "/profile", session, nil, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			for k, v := range tt.hdr {
				hdr[k] = v
			}
			if tt.cookie != "" {
				hdr["Cookie"] = CookieName + "=" + tt.cookie
			}
			code, _, body := call(t, f.srv.URL, tt.method, tt.path, "", "token=s3cret", hdr)
			if code != tt.want {
				t.Errorf("got %d %s, want %d", code, body, tt.want)
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(fileCP))); !strings.Contains(string(b), "cp-01") {
		t.Errorf("a refused cross-site write changed the file: %q", b)
	}
}

// sse reads server-sent events from a stream.
type sse struct {
	t  *testing.T
	rd *bufio.Reader
}

// next returns the next event's name and data, or ":" and the comment.
func (s *sse) next() (string, string) {
	s.t.Helper()
	var name, data string
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			s.t.Fatalf("event stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && (name != "" || data != ""):
			return name, data
		case strings.HasPrefix(line, ":"):
			return ":", strings.TrimSpace(line[1:])
		case strings.HasPrefix(line, "event: "):
			name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		}
	}
}

func openEvents(t *testing.T, ctx context.Context, url, token string) (*sse, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("got %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sse{t: t, rd: bufio.NewReader(resp.Body)}
	if name, _ := s.next(); name != "hello" {
		t.Fatalf("first event %q, want hello", name)
	}
	return s, resp
}

// TestEvents: a state change and a profile write each reach the stream as
// the machine's current view; forgetting a machine without a profile
// says it is gone; an idle stream gets heartbeats; closing the hub (the
// daemon stopping) ends it, and a client leaving unsubscribes.
func TestEvents(t *testing.T) {
	f := newFull(t, "tok", func(o *Options) { o.Heartbeat = 50 * time.Millisecond })
	ctx, cancel := context.WithCancel(t.Context())
	s, _ := openEvents(t, ctx, f.srv.URL, "tok")

	readMachine := func() api.MachineEvent {
		t.Helper()
		for {
			name, data := s.next()
			if name == ":" {
				continue
			}
			if name != "machine" {
				t.Fatalf("got event %q, want machine", name)
			}
			var ev api.MachineEvent
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("event data %q: %v", data, err)
			}
			return ev
		}
	}
	const mac = "52:54:00:00:00:55"
	if _, err := f.store.Update(mustMAC(mac), func(m *state.Machine, _ bool) error {
		m.State, m.IP = machine.Discovered, "192.0.2.55"
		m.Events = append(m.Events, f.store.Event(machine.EventDHCPOffer, "offer", 0))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ev := readMachine()
	if ev.MAC.String() != mac || ev.State != "discovered" || ev.IP != "192.0.2.55" || ev.LastStep != "DHCP offer" || len(ev.Events) != 1 || ev.Profile {
		t.Fatalf("got %+v, want the discovered machine with its offer", ev)
	}
	if code, _, body := call(t, f.srv.URL, http.MethodPut, "/api/v1/machines/"+mac+"/profile", "tok",
		"hostname: evented\ngroups: [worker, vm]\nvalues:\n  address: 192.168.1.55/24\n", nil); code != http.StatusCreated {
		t.Fatalf("profile: %d %s", code, body)
	}
	if ev := readMachine(); ev.MAC.String() != mac || !ev.Profile || ev.Hostname != "evented" {
		t.Fatalf("after the profile write got %+v", ev)
	}
	const stranger = "52:54:00:00:00:56"
	if _, err := f.store.Update(mustMAC(stranger), func(m *state.Machine, _ bool) error { m.State = machine.Discovered; return nil }); err != nil {
		t.Fatal(err)
	}
	readMachine()
	if _, err := f.store.Forget(mustMAC(stranger)); err != nil {
		t.Fatal(err)
	}
	if ev := readMachine(); ev.MAC.String() != stranger || !ev.Gone {
		t.Fatalf("after forget got %+v, want gone", ev)
	}
	if name, _ := s.next(); name != ":" {
		t.Fatalf("idle stream: got %q, want a heartbeat comment", name)
	}
	if got := f.hub.Subscribers(); got != 1 {
		t.Fatalf("got %d subscribers, want 1", got)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for f.hub.Subscribers() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a client that left is still subscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}

	s2, _ := openEvents(t, t.Context(), f.srv.URL, "tok")
	done := make(chan error, 1)
	go func() {
		_, err := s2.rd.ReadString(0)
		done <- err
	}()
	f.hub.Close()
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			t.Errorf("stream ended with %v, want EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("closing the hub did not end the stream")
	}
	if code, _, _ := call(t, f.srv.URL, http.MethodGet, "/api/v1/events", "tok", "", nil); code != http.StatusServiceUnavailable {
		t.Errorf("after close: got %d, want 503", code)
	}
}

// newCache opens a cache whose upstream serves the fake factory's files.
func newCache(t *testing.T) (*cache.Cache, *fakefactory.Server) {
	t.Helper()
	ff, err := fakefactory.Start(fakefactory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ff.Close)
	c, err := cache.Open(cache.Options{Dir: t.TempDir(), Upstream: func(_ context.Context, k cache.Key) (io.ReadCloser, int64, error) {
		b := ff.Asset(k.File)
		return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, ff
}

type fakeFactory struct{ err error }

func (f fakeFactory) URL() string { return "http://factory.test" }
func (f fakeFactory) Versions(context.Context) ([]string, error) {
	return []string{"v1.12.7", "v1.12.6"}, f.err
}

// TestCacheCalls: the listing has each asset's size and SHA-256; prefetch
// fetches every image the profiles name in the background.
func TestCacheCalls(t *testing.T) {
	c, ff := newCache(t)
	f := newFull(t, "", func(o *Options) { o.Cache = c; o.Factory = fakeFactory{} })
	code, _, body := call(t, f.srv.URL, http.MethodGet, "/api/v1/cache?factory=1", "", "", nil)
	var l api.CacheListing
	if err := json.Unmarshal([]byte(body), &l); err != nil || code != http.StatusOK || len(l.Entries) != 0 || l.Factory == nil || !l.Factory.Reachable {
		t.Fatalf("empty cache: %d %s", code, body)
	}
	if code, _, body := call(t, f.srv.URL, http.MethodPost, "/api/v1/cache/prefetch", "", "", nil); code != http.StatusAccepted {
		t.Fatalf("prefetch: %d %s", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, body = call(t, f.srv.URL, http.MethodGet, "/api/v1/cache", "", "", nil)
		l = api.CacheListing{}
		if err := json.Unmarshal([]byte(body), &l); err != nil {
			t.Fatal(err)
		}
		if !l.Prefetch.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("prefetch did not finish")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The example profiles name one image (v1.12.7, one schematic, amd64):
	// kernel, initramfs and command line.
	if l.Prefetch.Error != "" || l.Prefetch.Fetched != 3 || len(l.Entries) != 3 {
		t.Fatalf("after prefetch: %s", body)
	}
	for _, e := range l.Entries {
		sum := sha256.Sum256(ff.Asset(e.File))
		if e.SHA256 != hex.EncodeToString(sum[:]) || e.Size != int64(len(ff.Asset(e.File))) {
			t.Errorf("%s: got size %d sha256 %s", e.File, e.Size, e.SHA256)
		}
	}
	var total int64
	for _, e := range l.Entries {
		total += e.Size
	}
	if l.Size != total {
		t.Errorf("got total %d, want %d", l.Size, total)
	}
	t.Run("no cache", func(t *testing.T) {
		bare := newFull(t, "", nil)
		if code, _, _ := call(t, bare.srv.URL, http.MethodGet, "/api/v1/cache", "", "", nil); code != http.StatusNotImplemented {
			t.Errorf("got %d, want 501", code)
		}
	})
}

// TestStatus: listeners, the counters, iPXE binaries found and missing,
// profile problems while the last good set serves, factory reachability.
func TestStatus(t *testing.T) {
	ipxeDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ipxeDir, "snponly.efi"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ctr := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tinderbox_test_things_total", Help: "h"}, []string{"result"})
	reg.MustRegister(ctr)
	ctr.WithLabelValues("ok").Add(3)
	f := newFull(t, "", func(o *Options) {
		o.IPXEDir, o.Gatherer, o.Factory = ipxeDir, reg, fakeFactory{err: errors.New("factory: dial tcp: connection refused")}
		o.Listeners = []api.Listener{{Name: "boot HTTP", Addr: "127.0.0.1:8080"}}
	})
	if err := os.WriteFile(filepath.Join(f.dir, "groups", "broken.yaml"), []byte("install: sometimes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = f.profiles.Reload(t.Context())
	code, _, body := call(t, f.srv.URL, http.MethodGet, "/api/v1/status", "", "", nil)
	var st api.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	if len(st.Listeners) != 1 || st.Listeners[0].Addr != "127.0.0.1:8080" {
		t.Errorf("listeners: %+v", st.Listeners)
	}
	if len(st.Counters) != 1 || st.Counters[0].Value != 3 || st.Counters[0].Labels != "result=ok" {
		t.Errorf("counters: %+v", st.Counters)
	}
	if strings.Join(st.IPXE.Found, ",") != "snponly.efi" || strings.Join(st.IPXE.Missing, ",") != "undionly.kpxe,ipxe-arm64.efi" || st.IPXE.Hint == "" {
		t.Errorf("ipxe: %+v", st.IPXE)
	}
	if len(st.Profiles.Problems) != 1 || !strings.Contains(st.Profiles.Problems[0], "broken.yaml:1") || st.Profiles.Machines != 4 {
		t.Errorf("profiles: %+v", st.Profiles)
	}
	// The hash is the set being served, loaded before the broken group.
	if want := f.profiles.Set().Hash(); st.Profiles.Hash != want || len(want) != 64 {
		t.Errorf("profiles hash: got %q, want the served set's %q", st.Profiles.Hash, want)
	}
	if st.Factory.Reachable || !strings.Contains(st.Factory.Error, "connection refused") {
		t.Errorf("factory: %+v", st.Factory)
	}
}
