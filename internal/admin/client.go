package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls a running tinderbox's admin API, as the CLI's `machines`
// and `script` commands do. It is safe for concurrent use.
type Client struct {
	// BaseURL is the admin listener, e.g. http://127.0.0.1:8081.
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// NewClient returns a client with a 30-second timeout per call.
func NewClient(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// do calls the API; a non-2xx answer becomes an error carrying its message.
func (c *Client) do(ctx context.Context, method, path string, out any) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("admin: %w", err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("admin: is tinderbox serving at %s? %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("admin: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return resp, body, fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return resp, body, fmt.Errorf("admin: %s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return resp, body, fmt.Errorf("admin: %s %s: bad answer: %w", method, path, err)
		}
	}
	return resp, body, nil
}

func machinePath(mac string) string { return "/api/v1/machines/" + url.PathEscape(mac) }

// Machines lists every machine.
func (c *Client) Machines(ctx context.Context) ([]Machine, error) {
	var out []Machine
	_, _, err := c.do(ctx, http.MethodGet, "/api/v1/machines", &out)
	return out, err
}

// Machine returns one machine with its events.
func (c *Client) Machine(ctx context.Context, mac string) (Machine, error) {
	var out Machine
	_, _, err := c.do(ctx, http.MethodGet, machinePath(mac), &out)
	return out, err
}

// Reinstall re-arms a machine and returns it.
func (c *Client) Reinstall(ctx context.Context, mac string) (Machine, error) {
	var out Machine
	_, _, err := c.do(ctx, http.MethodPost, machinePath(mac)+"/reinstall", &out)
	return out, err
}

// Forget deletes a machine's state record.
func (c *Client) Forget(ctx context.Context, mac string) error {
	_, _, err := c.do(ctx, http.MethodDelete, machinePath(mac), nil)
	return err
}

// Script returns the boot script the machine would get now, for iPXE
// build arch buildarch ("" lets the profile decide).
func (c *Client) Script(ctx context.Context, mac, buildarch string) (string, error) {
	path := machinePath(mac) + "/script"
	if buildarch != "" {
		path += "?arch=" + url.QueryEscape(buildarch)
	}
	_, body, err := c.do(ctx, http.MethodGet, path, nil)
	return string(body), err
}
