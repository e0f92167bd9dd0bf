// Package client calls a running tinderbox's admin API (/api/v1 on the
// admin listener), as the CLI's machines and script commands do. The
// shapes it returns are pkg/api's, the same the server writes.
package client

import (
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
