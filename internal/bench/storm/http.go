package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// webClient is a node's HTTP client: its connections leave from the
// node's address, and at most one is kept alive (iPXE reuses one
// connection to the same server).
type webClient struct {
	tr     *http.Transport
	client *http.Client
}

func newWebClient(ip netip.Addr, keepAlive bool) *webClient {
	d := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)), Timeout: 30 * time.Second}
	tr := &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
		DisableKeepAlives:   !keepAlive,
	}
	return &webClient{tr: tr, client: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

func (w *webClient) close() { w.tr.CloseIdleConnections() }

// get fetches url and returns its body (kept only when keep is true) and
// its length. A non-200 answer or a short body is an error.
func (w *webClient) get(ctx context.Context, url string, keep bool) ([]byte, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return nil, 0, fmt.Errorf("GET %s: %s: %s", path(url), resp.Status, strings.TrimSpace(string(b)))
	}
	var (
		body []byte
		n    int64
	)
	if keep {
		body, err = io.ReadAll(resp.Body)
		n = int64(len(body))
	} else {
		n, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		return nil, n, fmt.Errorf("GET %s: %w", path(url), err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return nil, n, fmt.Errorf("GET %s: %d of %d bytes", path(url), n, resp.ContentLength)
	}
	return body, n, nil
}

// path is url without its query (tokens stay out of the report).
func path(url string) string {
	p, _, _ := strings.Cut(url, "?")
	return p
}

// script fetches the generic /boot.ipxe the proxy OFFER named, then the
// machine's script as boot.ipxe chains to it, and keeps the kernel,
// initrd and talos.config URLs.
func (n *node) script(ctx context.Context, b *bootState) (int, int64, error) {
	b.web = newWebClient(nodeAddr(n.o.nodes, n.i), true)
	gen, n1, err := b.web.get(ctx, b.scriptURL, true)
	if err != nil {
		return 0, 0, err
	}
	if !strings.HasPrefix(string(gen), "#!ipxe") || !strings.Contains(string(gen), "/ipxe?mac=") {
		return 0, 0, fmt.Errorf("%s is not the generic boot script", path(b.scriptURL))
	}
	base := strings.TrimSuffix(b.scriptURL, "/boot.ipxe")
	mac := strings.ReplaceAll(nodeMAC(n.i).String(), ":", "-")
	u := nodeUUID(n.i)
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	s, n2, err := b.web.get(ctx, fmt.Sprintf("%s/ipxe?mac=%s&uuid=%s&arch=x86_64", base, mac, uuid), true)
	if err != nil {
		return 0, n1, err
	}
	if err := b.parse(string(s)); err != nil {
		return 0, n1 + n2, err
	}
	return 0, n1 + n2, nil
}

// parse takes the kernel, initrd and talos.config URLs from a netboot
// script's kernel and initrd lines.
func (b *bootState) parse(script string) error {
	sc := bufio.NewScanner(strings.NewReader(script))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "kernel":
			b.kernel = f[1]
			for _, a := range f[2:] {
				if v, ok := strings.CutPrefix(a, "talos.config="); ok {
					b.confU = v
				}
			}
		case "initrd":
			b.initrd = f[1]
		}
	}
	if b.kernel == "" || b.initrd == "" || b.confU == "" {
		return fmt.Errorf("the machine's script is not a netboot with a config (kernel %q, initrd %q, config set %t)",
			path(b.kernel), path(b.initrd), b.confU != "")
	}
	return nil
}

func (n *node) kernel(ctx context.Context, b *bootState) (int, int64, error) {
	_, got, err := b.web.get(ctx, b.kernel, false)
	return 0, got, err
}

func (n *node) initramfs(ctx context.Context, b *bootState) (int, int64, error) {
	_, got, err := b.web.get(ctx, b.initrd, false)
	return 0, got, err
}

// config fetches the machine config as the booted Talos kernel does: a
// new client, a new connection.
func (n *node) config(ctx context.Context, b *bootState) (int, int64, error) {
	b.web.close()
	talos := newWebClient(nodeAddr(n.o.nodes, n.i), false)
	defer talos.close()
	body, got, err := talos.get(ctx, b.confU, true)
	if err != nil {
		return 0, got, err
	}
	if !strings.Contains(string(body), "machine:") {
		return 0, got, fmt.Errorf("GET %s: not a machine config", path(b.confU))
	}
	return 0, got, nil
}
