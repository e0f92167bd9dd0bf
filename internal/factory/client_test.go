package factory_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tinderbox-boot/tinderbox/internal/factory"
	"github.com/tinderbox-boot/tinderbox/internal/version"
	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
)

const testID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"

func startFake(t *testing.T, opts fakefactory.Options) *fakefactory.Server {
	t.Helper()
	f, err := fakefactory.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func newClient(t *testing.T, url, stateDir string) *factory.Client {
	t.Helper()
	c, err := factory.New(factory.Options{URL: url, StateDir: stateDir, Timeout: 300 * time.Millisecond, Backoff: time.Millisecond, Attempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// deadURL is a loopback URL nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

const schematicYAML = `customization:
  extraKernelArgs:
    - net.ifnames=0
  systemExtensions:
    officialExtensions:
      - siderolabs/iscsi-tools
`

func TestSchematicID(t *testing.T) {
	f := startFake(t, fakefactory.Options{})
	c := newClient(t, f.URL, t.TempDir())
	id, err := c.SchematicID(t.Context(), []byte(schematicYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := factory.CheckSchematicID(id); err != nil {
		t.Fatalf("got ID %q: %v", id, err)
	}
	if !f.Registered(id) {
		t.Errorf("got ID %s, the fake never handed it out", id)
	}
	again, err := c.SchematicID(t.Context(), []byte(schematicYAML))
	if err != nil || again != id {
		t.Errorf("second call: got %q, %v; want %q", again, err, id)
	}
	if got := f.Count("/schematics"); got != 1 {
		t.Errorf("got %d POSTs for the same schematic, want 1", got)
	}
	other, err := c.SchematicID(t.Context(), []byte("customization:\n  extraKernelArgs: [quiet]\n"))
	if err != nil || other == id {
		t.Errorf("different schematic: got %q, %v; want an ID other than %q", other, err, id)
	}
}

func TestSchematicIDRejected(t *testing.T) {
	f := startFake(t, fakefactory.Options{})
	c := newClient(t, f.URL, t.TempDir())
	_, err := c.SchematicID(t.Context(), []byte("customization:\n  extraKernalArgs: [quiet]\n"))
	if err == nil {
		t.Fatal("got no error for an unknown field, want the factory's 400")
	}
	var fe *factory.Error
	if !errors.As(err, &fe) || fe.Status != 400 {
		t.Fatalf("got %v, want a factory 400", err)
	}
	for _, want := range []string{f.URL, "400 Bad Request", "field extraKernalArgs not found"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if got := f.Count("/schematics"); got != 1 {
		t.Errorf("got %d POSTs, want 1: a 400 is not retried", got)
	}
}

// TestSchematicIDRemembered: a restart without the factory still knows the
// IDs registered before; an unknown schematic gets an error naming the factory.
func TestSchematicIDRemembered(t *testing.T) {
	state := t.TempDir()
	f := startFake(t, fakefactory.Options{})
	id, err := newClient(t, f.URL, state).SchematicID(t.Context(), []byte(schematicYAML))
	if err != nil {
		t.Fatal(err)
	}
	dead := deadURL(t)
	c := newClient(t, dead, state)
	got, err := c.SchematicID(t.Context(), []byte(schematicYAML))
	if err != nil || got != id {
		t.Fatalf("offline after restart: got %q, %v; want %q", got, err, id)
	}
	_, err = c.SchematicID(t.Context(), []byte("customization: {}\n"))
	if err == nil {
		t.Fatal("offline, unknown schematic: got no error")
	}
	for _, want := range []string{dead, "register schematic", "no ID is remembered"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestImage(t *testing.T) {
	tests := []struct {
		name     string
		opts     fakefactory.Options
		url      func(f *fakefactory.Server) string
		version  string
		wantAuth bool
	}{
		{name: "plain", url: func(f *fakefactory.Server) string { return f.URL }, version: "v1.12.7"},
		{name: "version without v", url: func(f *fakefactory.Server) string { return f.URL }, version: "1.12.7"},
		{name: "redirect to a second host", opts: fakefactory.Options{Redirect: true}, url: func(f *fakefactory.Server) string { return f.URL }, version: "v1.12.7"},
		{
			name:    "credentials, redirect: none sent to the second host",
			opts:    fakefactory.Options{Redirect: true, User: "lab", Password: "s3cret"},
			url:     func(f *fakefactory.Server) string { return strings.Replace(f.URL, "http://", "http://lab:s3cret@", 1) },
			version: "v1.12.7", wantAuth: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, tt.opts)
			c := newClient(t, tt.url(f), "")
			for _, file := range factory.Files("amd64") {
				d, err := c.Image(t.Context(), testID, tt.version, file)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(d)
				d.Close()
				if err != nil {
					t.Fatal(err)
				}
				if want := f.Asset(file); !bytes.Equal(got, want) || d.Size != int64(len(want)) {
					t.Errorf("%s: got %d bytes (announced %d), want the fake's %d", file, len(got), d.Size, len(want))
				}
			}
			if got := f.BlobAuthorizations(); len(got) != 0 {
				t.Errorf("second host got Authorization %q, want none", got)
			}
			if strings.Contains(c.URL(), "s3cret") {
				t.Errorf("URL() = %q shows the password", c.URL())
			}
		})
	}
}

func TestUserAgent(t *testing.T) {
	f := startFake(t, fakefactory.Options{})
	c := newClient(t, f.URL, "")
	if _, err := c.Versions(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := f.UserAgents()
	if len(got) != 1 || got[0] != version.UserAgent() {
		t.Errorf("got User-Agent %q, want [%q]", got, version.UserAgent())
	}
}

func TestVersions(t *testing.T) {
	f := startFake(t, fakefactory.Options{Versions: []string{"v1.12.7", "v1.13.0"}})
	got, err := newClient(t, f.URL, "").Versions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "v1.12.7,v1.13.0" {
		t.Errorf("got %q, want [v1.12.7 v1.13.0]", got)
	}
}

// TestRetries: 5xx and network errors are retried up to Attempts, 4xx is
// not, and each error carries the factory's text.
func TestRetries(t *testing.T) {
	tests := []struct {
		name       string
		fault      fakefactory.Fault
		version    string
		wantTries  int
		wantStatus int
		wantText   string
	}{
		{name: "5xx retried", fault: fakefactory.ServerError, version: "v1.12.7", wantTries: 3, wantStatus: 503, wantText: "upstream registry unavailable"},
		{name: "404 not retried, text verbatim", version: "v9.9.9", wantTries: 1, wantStatus: 404, wantText: "version v9.9.9 not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, fakefactory.Options{})
			f.SetFault(tt.fault)
			c := newClient(t, f.URL, "")
			_, err := c.Image(t.Context(), testID, tt.version, "kernel-amd64")
			var fe *factory.Error
			if !errors.As(err, &fe) || fe.Status != tt.wantStatus {
				t.Fatalf("got %v, want status %d", err, tt.wantStatus)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
			if got := f.Count("/image/" + testID + "/" + tt.version + "/kernel-amd64"); got != tt.wantTries {
				t.Errorf("got %d requests, want %d", got, tt.wantTries)
			}
		})
	}
	t.Run("connection refused retried, then reported", func(t *testing.T) {
		dead := deadURL(t)
		reg := prometheus.NewRegistry()
		c, err := factory.New(factory.Options{URL: dead, Registerer: reg, Backoff: time.Millisecond, Attempts: 3})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Versions(t.Context())
		if err == nil || !strings.Contains(err.Error(), dead) || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("got %v, want connection refused naming %s", err, dead)
		}
		want := `
# HELP tinderbox_factory_requests_total HTTP requests sent to the Image Factory, by operation (register, versions, image) and result (status class, timeout or error).
# TYPE tinderbox_factory_requests_total counter
tinderbox_factory_requests_total{op="versions",result="error"} 3
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tinderbox_factory_requests_total"); err != nil {
			t.Error(err)
		}
	})
}

// TestBodyFaults: a cut-off body and one that stalls fail on Read with an
// error naming the factory; a stall is a timeout.
func TestBodyFaults(t *testing.T) {
	tests := []struct {
		name        string
		fault       fakefactory.Fault
		wantTimeout bool
		wantText    string
	}{
		{name: "truncated", fault: fakefactory.Truncate, wantText: "body cut off after"},
		{name: "wrong content-length", fault: fakefactory.WrongLength, wantText: "body cut off after"},
		{name: "stall", fault: fakefactory.Stall, wantTimeout: true, wantText: "no data within the timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, fakefactory.Options{})
			f.SetFault(tt.fault)
			c := newClient(t, f.URL, "")
			d, err := c.Image(t.Context(), testID, "v1.12.7", "initramfs-amd64.xz")
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			_, err = io.ReadAll(d)
			var fe *factory.Error
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a *factory.Error", err)
			}
			if fe.Timeout() != tt.wantTimeout {
				t.Errorf("Timeout() = %v, want %v (%v)", fe.Timeout(), tt.wantTimeout, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) || !strings.Contains(err.Error(), f.URL) {
				t.Errorf("error %q does not name %s and %q", err, f.URL, tt.wantText)
			}
		})
	}
}

// TestCancel: cancelling the context stops the retries at once.
func TestCancel(t *testing.T) {
	f := startFake(t, fakefactory.Options{})
	f.SetFault(fakefactory.ServerError)
	c, err := factory.New(factory.Options{URL: f.URL, Backoff: time.Hour, Attempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Image(ctx, testID, "v1.12.7", "kernel-amd64")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("took %v after the context ended", el)
	}
}

func TestInstallerImage(t *testing.T) {
	c, err := factory.New(factory.Options{URL: "https://user:pw@factory.example:8443/"})
	if err != nil {
		t.Fatal(err)
	}
	want := "factory.example:8443/installer/" + testID + ":v1.12.7"
	if got := c.InstallerImage(testID, "1.12.7"); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNewBadURL(t *testing.T) {
	for _, u := range []string{"", "factory.talos.dev", "ftp://x", "http://"} {
		if _, err := factory.New(factory.Options{URL: u}); err == nil {
			t.Errorf("New(%q): got no error", u)
		}
	}
}
