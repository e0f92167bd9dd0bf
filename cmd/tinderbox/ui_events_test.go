package main

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// streamReader returns a function that reads the event stream body, named
// name in failures, line by line until one contains want; the test fails
// when the stream ends first.
func streamReader(t *testing.T, name string, body io.Reader) func(want string) {
	rd := bufio.NewReader(body)
	return func(want string) {
		t.Helper()
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("%s ended before %q: %v", name, want, err)
			}
			if strings.Contains(line, want) {
				return
			}
		}
	}
}

// TestEventsThroughDaemon: a state change in the daemon reaches an open
// event stream, and an open stream does not hold up shutdown.
func TestEventsThroughDaemon(t *testing.T) {
	d, stop := startDaemon(t, testConfig(t))
	resp, err := http.Get("http://" + d.adminAddr.String() + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	readUntil := streamReader(t, "the stream", resp.Body)
	readUntil("event: hello")
	const mac = "52:54:00:00:00:42"
	if _, err := d.state.Update(machine.MustParseMAC(mac), func(m *state.Machine, _ bool) error { m.State = machine.Discovered; return nil }); err != nil {
		t.Fatal(err)
	}
	readUntil(`"mac":"` + mac + `"`)

	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// httpserver.ShutdownTimeout is 5s: a stream kept open would take it all.
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown took %v with an event stream open", took)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Errorf("stream did not end cleanly: %v", err)
	}
}
