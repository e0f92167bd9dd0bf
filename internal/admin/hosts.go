package admin

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// loopbackNames are the Host names a loopback or wildcard listener
// answers to with its own port.
var loopbackNames = []string{"localhost", "127.0.0.1", "::1"}

// hostName is one accepted Host: a lower-case name or address without
// brackets, and a port (0: any).
type hostName struct {
	name string
	port uint16
}

// Hosts is the set of Host header values the admin listener answers to.
type Hosts struct {
	listen netip.AddrPort
	names  []hostName
}

// NewHosts returns the Host names of a listener bound at listen: its own
// address and port; for a loopback or wildcard listener also localhost,
// 127.0.0.1 and [::1] with its port; and extra, the admin.hosts entries,
// each "name" (any port) or "name:port". Beyond these, Allowed accepts
// the address a request's connection arrived on, with its port. It fails
// when listen is not an IP address and port or an extra entry does not
// parse (config.CheckHosts reports those first).
func NewHosts(listen net.Addr, extra []string) (*Hosts, error) {
	ap, err := netip.ParseAddrPort(listen.String())
	if err != nil {
		return nil, fmt.Errorf("admin: listen address %s: %w", listen, err)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
	h := &Hosts{listen: ap, names: []hostName{{ap.Addr().String(), ap.Port()}}}
	if ap.Addr().IsLoopback() || ap.Addr().IsUnspecified() {
		for _, n := range loopbackNames {
			h.names = append(h.names, hostName{n, ap.Port()})
		}
	}
	for _, e := range extra {
		n, ok := parseHost(e, 0)
		if !ok {
			return nil, fmt.Errorf("admin: admin.hosts entry %q: want a host name or address, optionally with :port", e)
		}
		h.names = append(h.names, n)
	}
	return h, nil
}

// parseHost splits a Host header or admin.hosts entry into a lower-case
// name (brackets and a final dot removed) and port; defaultPort when it
// names none.
func parseHost(s string, defaultPort uint16) (hostName, bool) {
	name, port := s, defaultPort
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return hostName{}, false
		}
		name, port = h, uint16(n)
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		name = s[1 : len(s)-1]
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if name == "" || strings.ContainsAny(name, "/@ \t[]") {
		return hostName{}, false
	}
	if a, err := netip.ParseAddr(name); err == nil {
		name = a.Unmap().WithZone("").String()
	}
	return hostName{name, port}, true
}

// Allowed says whether host, a request's Host header, names this
// listener; local is the address the request's connection arrived on
// (invalid when unknown). A Host without a port means port 80.
func (h *Hosts) Allowed(host string, local netip.AddrPort) bool {
	got, ok := parseHost(host, 80)
	if !ok {
		return false
	}
	if local.IsValid() && got.name == local.Addr().Unmap().WithZone("").String() && got.port == local.Port() {
		return true // the address the client connected to: no DNS name, nothing to rebind
	}
	for _, n := range h.names {
		if n.name == got.name && (n.port == 0 || n.port == got.port) {
			return true
		}
	}
	return false
}

// url is where the listener is reached from this host, for the refusal.
func (h *Hosts) url() string {
	a := h.listen.Addr()
	if a.IsUnspecified() {
		a = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return "http://" + netip.AddrPortFrom(a, h.listen.Port()).String()
}

// Middleware answers 421 Misdirected Request (an api.Error) to every
// request whose Host header does not name the listener, and logs it at
// Warn. It defeats DNS rebinding: a page from another site whose name
// is made to resolve to this host sends that name as its Host, so its
// requests never reach the API or the UI.
func (h *Hosts) Middleware(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var local netip.AddrPort
			if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
				local, _ = netip.ParseAddrPort(a.String())
			}
			if !h.Allowed(r.Host, local) {
				log.Warn("admin: request for another host name refused", "remote", r.RemoteAddr, "host", r.Host, "path", r.URL.Path)
				WriteError(w, http.StatusMisdirectedRequest, fmt.Sprintf(
					"host %q is not a name of this admin listener (a defence against DNS rebinding): reach it at %s, "+
						"or add the name to admin.hosts", r.Host, h.url()))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
