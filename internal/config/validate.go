package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Validate checks every key and returns every problem found, joined; nil
// when the config is usable.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		key, msg, _ := strings.Cut(fmt.Sprintf(format, args...), ": ")
		errs = append(errs, &Problem{Key: key, Msg: msg})
	}

	if c.Advertise != "" {
		a, err := netip.ParseAddr(c.Advertise)
		switch {
		case err != nil:
			add("advertise: %q is not an IP address", c.Advertise)
		case !a.Is4():
			add("advertise: %s is not an IPv4 address (PXE firmware and iPXE boot over IPv4)", a)
		case a.IsUnspecified():
			add("advertise: %s cannot be reached by nodes; set the address of this host on the boot LAN", a)
		}
	}

	if err := checkListen(c.HTTP.Listen); err != nil {
		add("http.listen: %v", err)
	}
	if c.HTTP.WriteTimeout < 0 {
		add("http.writeTimeout: %s: want a duration of zero (off) or more, such as 30s", c.HTTP.WriteTimeout)
	}
	if err := checkListen(c.Admin.Listen); err != nil {
		add("admin.listen: %v", err)
	} else if c.Admin.TokenFile == "" && !IsLoopback(c.Admin.Listen) {
		add("admin.listen: %s is reachable from the network: set admin.tokenFile, or listen on 127.0.0.1", c.Admin.Listen)
	}
	if c.Admin.TokenFile != "" {
		if _, err := ReadToken(c.Admin.TokenFile); err != nil {
			add("admin.tokenFile: %v", err)
		}
	}
	if err := CheckHosts(c.Admin.Hosts); err != nil {
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			add("admin.hosts: %v", e)
		}
	}

	if c.DHCP.Enabled {
		if c.DHCP.Port < 1 || c.DHCP.Port > 65535 {
			add("dhcp.port: %d is not a port (1-65535)", c.DHCP.Port)
		}
		if c.DHCP.PXEPort < 0 || c.DHCP.PXEPort > 65535 {
			add("dhcp.pxePort: %d is not a port (1-65535, or 0 to disable)", c.DHCP.PXEPort)
		}
		if c.DHCP.PXEPort != 0 && c.DHCP.PXEPort == c.DHCP.Port {
			add("dhcp.pxePort: %d is the same as dhcp.port", c.DHCP.PXEPort)
		}
		if c.DHCP.Interface != "" {
			if _, err := net.InterfaceByName(c.DHCP.Interface); err != nil {
				add("dhcp.interface: no network interface %q on this host", c.DHCP.Interface)
			}
			if len(c.DHCP.Interfaces) > 0 {
				add("dhcp.interfaces: both dhcp.interface and dhcp.interfaces are set; name every interface in dhcp.interfaces and remove dhcp.interface")
			}
		}
		seen := map[string]bool{}
		for _, name := range c.DHCP.Interfaces {
			switch {
			case seen[name]:
				add("dhcp.interfaces: %q is listed twice", name)
			case name == "":
				add("dhcp.interfaces: an empty name; list interface names, or leave the list empty to listen on every interface")
			default:
				if _, err := net.InterfaceByName(name); err != nil {
					add("dhcp.interfaces: no network interface %q on this host", name)
				}
			}
			seen[name] = true
		}
	}
	if c.TFTP.Enabled {
		if err := checkListen(c.TFTP.Listen); err != nil {
			add("tftp.listen: %v", err)
		}
		// RFC 2348 allows 8–65464; a cap under RFC 1350's 512 would make
		// clients that negotiate slower than those that do not.
		if n := c.TFTP.MaxBlockSize; n != 0 && (n < 512 || n > 65464) {
			add("tftp.maxBlockSize: %d: want 512–65464 bytes, or 0 for the interface MTU's limit alone", n)
		}
		if c.TFTP.MaxPerClient < 1 {
			add("tftp.maxPerClient: %d: want at least 1", c.TFTP.MaxPerClient)
		}
		if d := c.TFTP.MaxTimeout; d < time.Second || d > 255*time.Second {
			add("tftp.maxTimeout: %s: want 1s to 255s (RFC 2349's range)", d)
		}
		if c.TFTP.FirstAckWait <= 0 {
			add("tftp.firstAckWait: %s: want a duration above zero, such as 15s", c.TFTP.FirstAckWait)
		}
	}

	switch c.IPXE.LocalBoot {
	case LocalBootExit, LocalBootSanboot, LocalBootNotFound:
	default:
		add("ipxe.localBoot: %q is not one of exit, sanboot, notfound", c.IPXE.LocalBoot)
	}
	switch c.IPXE.EFIx64 {
	case "snponly.efi", "ipxe.efi":
	default:
		add("ipxe.efiX64: %q is not one of snponly.efi, ipxe.efi", c.IPXE.EFIx64)
	}
	if c.IPXE.Dir == "" {
		add("ipxe.dir: empty; set the directory holding undionly.kpxe and ipxe.efi")
	}

	if u, err := url.Parse(c.Factory.URL); err != nil {
		add("factory.url: %v", err)
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("factory.url: %q: want an http:// or https:// URL with a host", c.Factory.URL)
	}

	if c.Cache.MaxSize <= 0 {
		add("cache.maxSize: %d bytes: want a size above zero, such as 20GiB", c.Cache.MaxSize)
	}
	if err := checkCreatableDir(c.Cache.Dir); err != nil {
		add("cache.dir: %v", err)
	}
	if err := checkCreatableDir(c.State.Dir); err != nil {
		add("state.dir: %v", err)
	}
	switch c.State.Backend {
	case "", "bolt": // "" is a Config built in code without the defaults
	case "etcd":
		for _, p := range c.State.Etcd.problems() {
			add("state.etcd.%s", p)
		}
	default:
		add("state.backend: %q is not one of bolt, etcd", c.State.Backend)
	}
	if c.State.Discovered.Max < 1 {
		add("state.discovered.max: %d: want at least 1 (the records of machines without a profile that are kept)", c.State.Discovered.Max)
	}
	if c.State.Discovered.TTL < 0 {
		add("state.discovered.ttl: %s: want a duration such as 24h, or 0 to keep them until state.discovered.max pushes them out", c.State.Discovered.TTL)
	}
	if c.State.OnCorrupt != "restore" && c.State.OnCorrupt != "refuse" {
		add("state.onCorrupt: %q is not one of restore, refuse", c.State.OnCorrupt)
	}
	if c.State.Backup.Interval < 0 {
		add("state.backup.interval: %s is negative: want a duration such as 1h, or 0 to back up only at shutdown", c.State.Backup.Interval)
	}
	if c.State.Backup.Keep < 1 {
		add("state.backup.keep: %d: want at least 1 (the backups of state.db that are kept)", c.State.Backup.Keep)
	}
	if c.Profiles.Dir == "" {
		add("profiles.dir: empty")
	} else if fi, err := os.Stat(c.Profiles.Dir); err != nil {
		add("profiles.dir: %s: no such directory (create it, or point profiles.dir at one)", c.Profiles.Dir)
	} else if !fi.IsDir() {
		add("profiles.dir: %s is not a directory", c.Profiles.Dir)
	}

	for _, n := range c.Binding.RoutedNetworks {
		p, err := netip.ParsePrefix(strings.TrimSpace(n))
		switch {
		case err != nil:
			add("binding.routedNetworks: %q is not a network in CIDR form (10.20.0.0/24)", n)
		case p.Bits() == 0:
			add("binding.routedNetworks: %s would trust relayed DHCP for every address; name the networks behind your relays", p)
		}
	}

	if c.Reports.Enabled {
		if err := checkListen(c.Reports.EventsListen); err != nil {
			add("reports.eventsListen: %v", err)
		}
		if err := checkListen(c.Reports.LogsListen); err != nil {
			add("reports.logsListen: %v", err)
		}
	}
	if c.DHCP.ReplyDelay < 0 || c.DHCP.ReplyDelay > MaxReplyDelay {
		add("dhcp.replyDelay: %s: want 0 (no delay) to %s, such as 500ms", c.DHCP.ReplyDelay, MaxReplyDelay)
	}
	if c.Reports.StallAfter < 0 {
		add("reports.stallAfter: %s is negative: want a duration such as 15m, or 0 to never mark machines stalled", c.Reports.StallAfter)
	}

	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		add("log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format: %q is not one of text, json", c.Log.Format)
	}
	return errors.Join(errs...)
}

// checkListen checks a host:port listen address without binding it.
func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port or :port", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q: %q is not a host name or IP address", addr, host)
	}
	return nil
}

// IsLoopback reports whether a listen address only accepts connections from
// this host.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// checkCreatableDir accepts an existing writable directory, or a missing one
// whose nearest existing ancestor is a writable directory. It creates nothing.
func checkCreatableDir(dir string) error {
	if dir == "" {
		return errors.New("empty")
	}
	p := filepath.Clean(dir)
	for {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				if p == filepath.Clean(dir) {
					return fmt.Errorf("%s is not a directory", dir)
				}
				return fmt.Errorf("%s cannot be created: %s is not a directory", dir, p)
			}
			if err := writable(p); err != nil {
				if p == filepath.Clean(dir) {
					return fmt.Errorf("%s is not writable by this user", dir)
				}
				return fmt.Errorf("%s cannot be created: %s is not writable by this user", dir, p)
			}
			return nil
		}
		parent := filepath.Dir(p)
		if parent == p {
			return fmt.Errorf("%s cannot be created", dir)
		}
		p = parent
	}
}

// DefaultAdvertise finds the address nodes should use to reach this host:
// the first IPv4 address of iface when named, else of the interface holding
// the default route, else of the first interface that is up.
func DefaultAdvertise(iface string) (netip.Addr, error) {
	if iface != "" {
		a, err := firstIPv4(iface)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("config: advertise: not set, and %w; set advertise", err)
		}
		return a, nil
	}
	if name := defaultRouteInterface(); name != "" {
		if a, err := firstIPv4(name); err == nil {
			return a, nil
		}
	}
	ifs, err := net.Interfaces()
	if err == nil {
		for _, i := range ifs {
			if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
				continue
			}
			if a, err := firstIPv4(i.Name); err == nil {
				return a, nil
			}
		}
	}
	return netip.Addr{}, errors.New("config: advertise: not set, and this host has no IPv4 address on an interface that is up; set advertise")
}

func firstIPv4(name string) (netip.Addr, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no network interface %q", name)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("interface %s: %w", name, err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no IPv4 address", name)
}

// defaultRouteInterface reads /proc/net/route for the interface of the IPv4
// default route; "" when there is none or the file cannot be read.
func defaultRouteInterface() string {
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		// Columns: Iface Destination Gateway Flags …; destination 00000000 is the default route.
		if len(f) > 2 && f[1] == "00000000" {
			return f[0]
		}
	}
	return ""
}

// CheckHosts checks admin.hosts entries: each a host name or IP address,
// optionally with ":port", and nothing else (no scheme, path or
// wildcard).
func CheckHosts(hosts []string) error {
	var errs []error
	for _, h := range hosts {
		if err := checkHost(h); err != nil {
			errs = append(errs, fmt.Errorf("%q: %w", h, err))
		}
	}
	return errors.Join(errs...)
}

func checkHost(h string) error {
	errShape := errors.New("want a host name or IP address, optionally with :port (no scheme, path or wildcard)")
	if strings.ContainsAny(h, "/*@?# ") {
		return errShape
	}
	name := h
	if host, port, err := net.SplitHostPort(h); err == nil {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
		name = host
	}
	if name == "" {
		return errShape
	}
	if net.ParseIP(strings.Trim(name, "[]")) != nil {
		return nil
	}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if label == "" || len(label) > 63 || strings.Trim(strings.ToLower(label), "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return errShape
		}
	}
	return nil
}

// MaxReplyDelay bounds dhcp.replyDelay: PXE firmware waits about 4 s for
// its first round of offers (EDK2's PXE client retries its DISCOVER after
// 4, 8, 16 and 32 s: mPxeDhcpTimeout in its UefiPxeBcDxe), so a longer
// delay only makes it retry.
const MaxReplyDelay = 5 * time.Second

// problems returns what is wrong with the etcd settings, each as
// "<key under state.etcd>: <message>".
func (e StateEtcd) problems() []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if len(e.Endpoints) == 0 {
		add("endpoints: none: state.backend etcd needs the cluster's client URLs, such as https://10.0.0.1:2379")
	}
	for _, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" {
			add("endpoints: %q: want a client URL with a scheme and a port, such as https://10.0.0.1:2379", ep)
		}
	}
	if !strings.HasPrefix(e.Prefix, "/") || !strings.HasSuffix(e.Prefix, "/") || len(e.Prefix) < 2 {
		add("prefix: %q: want a key prefix that starts and ends with /, such as /tinderbox/", e.Prefix)
	}
	if e.DialTimeout <= 0 {
		add("dialTimeout: %s: want a duration above zero, such as 5s", e.DialTimeout)
	}
	if e.RequestTimeout <= 0 {
		add("requestTimeout: %s: want a duration above zero, such as 5s", e.RequestTimeout)
	}
	for _, f := range []struct{ key, path string }{{"tls.ca", e.TLS.CA}, {"tls.cert", e.TLS.Cert}, {"tls.key", e.TLS.Key}} {
		if f.path == "" {
			continue
		}
		if fh, err := os.Open(f.path); err != nil {
			add("%s: %v", f.key, err)
		} else {
			fh.Close()
		}
	}
	if (e.TLS.Cert == "") != (e.TLS.Key == "") {
		add("tls.cert: a client certificate needs both tls.cert and tls.key")
	}
	if (e.Username == "") != (e.Password == "") {
		add("username: etcd authentication needs both username and password")
	}
	return out
}
