// Package client calls a running tinderbox's admin API (/api/v1 on the
// admin listener), as the CLI's machines and script commands do. The
// shapes it returns are pkg/api's, the same the server writes.
package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tinderbox-boot/tinderbox/pkg/api"
)

// Client calls one tinderbox's admin API. It is safe for concurrent use.
type Client struct {
	// BaseURL is the admin listener, e.g. http://127.0.0.1:8081, without
	// a trailing slash.
	BaseURL string
	// Token is the bearer token (admin.tokenFile); empty sends none, for
	// a loopback listener without one.
	Token string
	HTTP  *http.Client
}

// New returns a client with a 30-second timeout per call.
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// maxAnswer bounds an answer's body: a machine list of thousands of
// machines stays well under it.
const maxAnswer = 16 << 20

// do calls the API; a non-2xx answer becomes an error carrying the
// server's message (api.Error) and the status code.
func (c *Client) do(ctx context.Context, method, path string, out any) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, nil)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin: is tinderbox serving at %s? %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("admin: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e api.Error
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return body, fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return body, fmt.Errorf("admin: %s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return body, fmt.Errorf("admin: %s %s: bad answer: %w", method, path, err)
		}
	}
	return body, nil
}

// machinePath is a machine's URL path; mac is sent as given (the server
// takes every spelling machine.ParseMAC does).
func machinePath(mac string) string { return "/api/v1/machines/" + url.PathEscape(mac) }

// Machines lists every machine, booted or with a profile, by MAC.
func (c *Client) Machines(ctx context.Context) ([]api.Machine, error) {
	var out []api.Machine
	_, err := c.do(ctx, http.MethodGet, "/api/v1/machines", &out)
	return out, err
}

// Machine returns one machine with its events.
func (c *Client) Machine(ctx context.Context, mac string) (api.Machine, error) {
	var out api.Machine
	_, err := c.do(ctx, http.MethodGet, machinePath(mac), &out)
	return out, err
}

// Reinstall re-arms a machine (it netboots and installs on its next
// boot) and returns it.
func (c *Client) Reinstall(ctx context.Context, mac string) (api.Machine, error) {
	var out api.Machine
	_, err := c.do(ctx, http.MethodPost, machinePath(mac)+"/reinstall", &out)
	return out, err
}

// Forget deletes a machine's state record; its profile stays.
func (c *Client) Forget(ctx context.Context, mac string) error {
	_, err := c.do(ctx, http.MethodDelete, machinePath(mac), nil)
	return err
}

// Script returns the boot script the machine would get now, for iPXE
// build arch buildarch ("" lets the profile decide), without recording a
// boot.
func (c *Client) Script(ctx context.Context, mac, buildarch string) (string, error) {
	path := machinePath(mac) + "/script"
	if buildarch != "" {
		path += "?arch=" + url.QueryEscape(buildarch)
	}
	body, err := c.do(ctx, http.MethodGet, path, nil)
	return string(body), err
}

// ConfigDiff returns how the config mac would be served now differs
// from the one it was last served (GET /api/v1/machines/{mac}/config/diff).
// A machine never served a config is an error saying so (HTTP 404).
func (c *Client) ConfigDiff(ctx context.Context, mac string) (api.ConfigDiff, error) {
	var out api.ConfigDiff
	_, err := c.do(ctx, http.MethodGet, machinePath(mac)+"/config/diff", &out)
	return out, err
}

// Logs returns mac's newest received Talos log lines, oldest first: at
// most lines of them (0: the server's default), only those holding q (any
// case) when q is not empty.
func (c *Client) Logs(ctx context.Context, mac string, lines int, q string) (api.LogLines, error) {
	v := url.Values{}
	if lines > 0 {
		v.Set("lines", fmt.Sprint(lines))
	}
	if q != "" {
		v.Set("q", q)
	}
	path := machinePath(mac) + "/logs"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out api.LogLines
	_, err := c.do(ctx, http.MethodGet, path, &out)
	return out, err
}

// FollowLogs calls fn with each of mac's log lines as it arrives, until ctx
// ends (nil is returned then), fn fails, or the server ends the stream.
func (c *Client) FollowLogs(ctx context.Context, mac string, fn func(api.LogLine) error) error {
	return c.stream(ctx, machinePath(mac)+"/logs/stream", "line", nil, func(data []byte) error {
		var l api.LogLine
		if err := json.Unmarshal(data, &l); err != nil {
			return fmt.Errorf("admin: bad log line: %w", err)
		}
		return fn(l)
	})
}

// Watch calls fn with each machine change as it happens (GET
// /api/v1/events), until ctx ends (nil is returned then), fn fails, or the
// server ends the stream.
func (c *Client) Watch(ctx context.Context, fn func(api.MachineEvent) error) error {
	return c.WatchFrom(ctx, nil, fn)
}

// WatchFrom is Watch, calling start (when not nil) once the stream is
// open and before the first change: a listing made in start misses no
// change that follows it, as `tinderbox machines -w` needs. An error from
// start ends the watch with that error.
func (c *Client) WatchFrom(ctx context.Context, start func() error, fn func(api.MachineEvent) error) error {
	return c.stream(ctx, "/api/v1/events", "machine", start, func(data []byte) error {
		var m api.MachineEvent
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("admin: bad machine event: %w", err)
		}
		return fn(m)
	})
}

// maxEventLine bounds one line of a server-sent event stream.
const maxEventLine = 1 << 20

// stream reads a server-sent event stream (the HTML living standard's
// text/event-stream) and calls fn with the data of each event named kind;
// hello, when not nil, is called on the server's first event ("hello"),
// which says the stream is open.
func (c *Client) stream(ctx context.Context, path, kind string, hello func() error, fn func(data []byte) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+path, nil)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := *c.HTTP
	hc.Timeout = 0 // a stream lasts as long as ctx
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("admin: is tinderbox serving at %s? %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		var e api.Error
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("admin: GET %s: HTTP %d", path, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxEventLine)
	var event string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			event = ""
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "hello" && hello != nil:
			if err := hello(); err != nil {
				return err
			}
			hello = nil
		case strings.HasPrefix(line, "data: ") && event == kind:
			if err := fn([]byte(strings.TrimPrefix(line, "data: "))); err != nil {
				return err
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("admin: GET %s: %w", path, err)
	}
	return fmt.Errorf("admin: GET %s: the server ended the stream", path)
}
