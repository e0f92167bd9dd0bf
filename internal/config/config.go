// Package config loads and validates tinderbox's configuration file
// (docs/configuration.md): YAML from --config, ./tinderbox.yaml or
// /etc/tinderbox/tinderbox.yaml, overridden by TINDERBOX_* environment
// variables and command-line flags, decoded strictly into typed sections.
//
// viper stays inside this package; every server receives only its own typed
// section.
package config

import (
	"net/netip"
	"strings"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/problem"
)

// Config is the whole tinderbox configuration.
type Config struct {
	// Advertise is the IPv4 address nodes use to reach tinderbox. When empty,
	// Load fills it with the first IPv4 address of dhcp.interface (or of
	// the first of dhcp.interfaces, or of the interface that holds the
	// default route) and leaves AdvertisePinned false.
	Advertise string `mapstructure:"advertise"`
	// AdvertisePinned is true when advertise was set (file, environment or
	// flag): every URL and address handed to a node then names Advertise.
	// When false, Advertise is only the default Load found, which the
	// admin API, `tinderbox script` and `render` show, and each DHCP reply
	// or boot HTTP answer names the address of the interface its request
	// arrived on instead (docs/protocol.md, "Addresses in URLs").
	AdvertisePinned bool `mapstructure:"-"`

	HTTP     HTTP     `mapstructure:"http"`
	Admin    Admin    `mapstructure:"admin"`
	DHCP     DHCP     `mapstructure:"dhcp"`
	TFTP     TFTP     `mapstructure:"tftp"`
	IPXE     IPXE     `mapstructure:"ipxe"`
	Factory  Factory  `mapstructure:"factory"`
	Cache    Cache    `mapstructure:"cache"`
	State    State    `mapstructure:"state"`
	Profiles Profiles `mapstructure:"profiles"`
	Log      Log      `mapstructure:"log"`
	Binding  Binding  `mapstructure:"binding"`
	Reports  Reports  `mapstructure:"reports"`

	// File is the configuration file that was read, or "" when only built-in
	// defaults, environment and flags were used.
	File string `mapstructure:"-"`
}

// HTTP is the boot HTTP server nodes talk to: iPXE scripts, assets, machine
// configs, /metrics and /healthz.
type HTTP struct {
	Listen string `mapstructure:"listen"`
	// WriteTimeout is how long a write to a client may make no progress
	// (the client reads nothing) before the connection is closed; each
	// write, and each 256 KiB of a file, starts it again, so a slow client
	// that keeps reading is never cut. 0 turns it off.
	WriteTimeout time.Duration `mapstructure:"writeTimeout"`
}

// Admin is the web UI and JSON API server.
type Admin struct {
	Listen string `mapstructure:"listen"`
	// TokenFile holds the bearer token; required when Listen is not loopback.
	// ReadToken refuses a token of less than MinTokenBits.
	TokenFile string `mapstructure:"tokenFile"`
	// Hosts are more names the listener answers to in the Host header
	// (a reverse proxy's or the host's own DNS name), each "name" (any
	// port) or "name:port". Loopback names and the address a request
	// arrived on are always accepted.
	Hosts []string `mapstructure:"hosts"`
}

// DHCP is the proxyDHCP responder.
type DHCP struct {
	Enabled bool `mapstructure:"enabled"`
	// Interface binds the responder to one network interface
	// (SO_BINDTODEVICE); "" with Interfaces empty listens on every one.
	Interface string `mapstructure:"interface"`
	// Interfaces binds one responder per listed interface; Validate
	// refuses it together with Interface.
	Interfaces []string `mapstructure:"interfaces"`
	Port       int      `mapstructure:"port"`
	// PXEPort is the PXE boot server port (4011); 0 disables that listener.
	PXEPort int `mapstructure:"pxePort"`
	// ReplyDelay holds every proxy reply back this long (0 to 5 s), for
	// firmware that misses a reply arriving before the router's.
	ReplyDelay time.Duration `mapstructure:"replyDelay"`
}

// Devices returns the interfaces the responder binds to, one listener
// pair (dhcp.port and dhcp.pxePort) each: dhcp.interfaces, else
// dhcp.interface alone; nil listens once on every interface.
func (d DHCP) Devices() []string {
	if len(d.Interfaces) > 0 {
		return d.Interfaces
	}
	if d.Interface != "" {
		return []string{d.Interface}
	}
	return nil
}

// TFTP is the read-only TFTP server for the iPXE chain-load.
type TFTP struct {
	Enabled bool   `mapstructure:"enabled"`
	Listen  string `mapstructure:"listen"`
	// MaxBlockSize caps the blksize (RFC 2348) granted to clients, in
	// bytes of file data per DATA packet, below the cap the receiving
	// interface's MTU sets; 0 for none, else 512–65464.
	MaxBlockSize int `mapstructure:"maxBlockSize"`
	// MaxPerClient bounds the transfers one client address runs at once.
	MaxPerClient int `mapstructure:"maxPerClient"`
	// MaxTimeout caps the timeout option (RFC 2349) a client may ask; a
	// larger ask is declined. 1 s to 255 s.
	MaxTimeout time.Duration `mapstructure:"maxTimeout"`
	// FirstAckWait bounds the wait for a client's first ACK, over all
	// retransmissions.
	FirstAckWait time.Duration `mapstructure:"firstAckWait"`
}

// IPXE says where the iPXE binaries are and how a script boots the local disk.
type IPXE struct {
	Dir string `mapstructure:"dir"`
	// EFIx64 is the iPXE build handed to x86-64 UEFI firmware: "snponly.efi"
	// (the firmware's own network driver) or "ipxe.efi" (iPXE's drivers).
	EFIx64 string `mapstructure:"efiX64"`
	// LocalBoot is one of LocalBootExit, LocalBootSanboot, LocalBootNotFound.
	LocalBoot string `mapstructure:"localBoot"`
}

// The ways an iPXE script can tell a machine to boot its local disk.
const (
	LocalBootExit     = "exit"
	LocalBootSanboot  = "sanboot"
	LocalBootNotFound = "notfound"
)

// Factory is the Talos Image Factory tinderbox fetches kernels and initramfs from.
type Factory struct {
	URL string `mapstructure:"url"`
}

// Cache is the on-disk cache of Image Factory assets.
type Cache struct {
	Dir string `mapstructure:"dir"`
	// MaxSize bounds the cache; least recently used assets are evicted
	// beyond it, those no profile or Allow entry names first.
	MaxSize ByteSize `mapstructure:"maxSize"`
	// Allow names images the boot HTTP server serves and fetches beyond
	// those the profiles name; every other asset is refused.
	Allow []Image `mapstructure:"allow"`
}

// State is where machine state lives: the embedded bbolt database under
// Dir (Backend "bolt") or an etcd cluster shared by several replicas
// (Backend "etcd"); how many records of machines without a profile it
// keeps; and, for bolt, what happens to a corrupt database and how it is
// backed up.
type State struct {
	// Backend is "bolt" (the default: one tinderbox, nothing else to
	// run; "" means it too) or "etcd" (State.Etcd).
	Backend string `mapstructure:"backend"`
	// Dir holds the bolt database and token key, and with either
	// backend the last good profile set.
	Dir        string     `mapstructure:"dir"`
	Etcd       StateEtcd  `mapstructure:"etcd"`
	Discovered Discovered `mapstructure:"discovered"`
	// OnCorrupt is what start does with a corrupt state.db: "restore"
	// (move it aside, start from the newest good backup; refuse when
	// there is none) or "refuse" (leave it, do not start).
	OnCorrupt string      `mapstructure:"onCorrupt"`
	Backup    StateBackup `mapstructure:"backup"`
}

// StateEtcd is the etcd cluster the state lives in when State.Backend is
// "etcd".
type StateEtcd struct {
	// Endpoints are the members' client URLs (https://10.0.0.1:2379).
	Endpoints []string `mapstructure:"endpoints"`
	// Prefix is the key prefix every record lives under; replicas on
	// one prefix share their machines and tokens.
	Prefix string `mapstructure:"prefix"`
	// DialTimeout bounds the first connection at start.
	DialTimeout time.Duration `mapstructure:"dialTimeout"`
	// RequestTimeout bounds each write: past it (no quorum) the write
	// fails and the state check reports degraded.
	RequestTimeout time.Duration `mapstructure:"requestTimeout"`
	TLS            EtcdTLS       `mapstructure:"tls"`
	// Username and Password, when set, authenticate to etcd.
	Username string `mapstructure:"username"`
	Password string `mapstructure:"password"`
}

// EtcdTLS are the PEM files of TLS to etcd: CA verifies the members; Cert
// and Key, set together, are the client certificate.
type EtcdTLS struct {
	CA   string `mapstructure:"ca"`
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
}

// StateBackup is how often state.db is backed up and how many backups
// are kept (under state.dir/backups).
type StateBackup struct {
	// Interval is the time between backups; 0 takes one only at a clean
	// shutdown.
	Interval time.Duration `mapstructure:"interval"`
	// Keep is how many backups are kept, newest first. At least 1.
	Keep int `mapstructure:"keep"`
}

// Discovered bounds the records of discovered machines (no profile), which
// any host on the boot LAN can create.
type Discovered struct {
	// Max is how many are kept; beyond it the least recently seen are
	// forgotten. At least 1.
	Max int `mapstructure:"max"`
	// TTL is how long after it was last seen one is forgotten; 0 keeps
	// them until Max pushes them out.
	TTL time.Duration `mapstructure:"ttl"`
}

// Profiles is the profiles directory (docs/profiles.md).
type Profiles struct {
	Dir string `mapstructure:"dir"`
}

// Binding ties each boot session to evidence from the machine itself
// (docs/security.md): a script with the config token, a state change and a
// machine config go only to a request whose source address the kernel's
// neighbour table, or a relayed DHCP exchange, binds to the machine's MAC.
type Binding struct {
	// Enabled turns binding on (the default). Off, any host that can
	// reach the boot HTTP server can ask for any machine's script.
	Enabled bool `mapstructure:"enabled"`
	// RoutedNetworks are the networks (CIDR) behind DHCP relay agents whose
	// relayed DHCP exchanges bind addresses, where the neighbour table
	// holds only the router.
	RoutedNetworks []string `mapstructure:"routedNetworks"`
}

// Routed returns RoutedNetworks parsed; entries that do not parse (which
// Validate reports) are left out.
func (b Binding) Routed() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range b.RoutedNetworks {
		if p, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// Reports are what Talos tells tinderbox of itself (docs/protocol.md,
// "Talos reports back"): its runtime events through the event sink
// (talos.events.sink) and its kernel log (talos.logging.kernel), both
// named on every netboot's kernel command line.
type Reports struct {
	// Enabled turns both receivers and the kernel arguments on.
	Enabled bool `mapstructure:"enabled"`
	// EventsListen is the event sink's gRPC listen address.
	EventsListen string `mapstructure:"eventsListen"`
	// LogsListen is the kernel log receiver's address, TCP and UDP.
	LogsListen string `mapstructure:"logsListen"`
	// StallAfter is how long a machine may make no progress after a boot
	// step before it is shown as stalled; 0 never.
	StallAfter time.Duration `mapstructure:"stallAfter"`
}

// Log sets the daemon's log level and format.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// defaults are the built-in values of every key, as docs/configuration.md
// lists them.
// Every key tinderbox knows must appear here: the set of known keys (for the
// unknown-key check and for environment variables) is derived from it.
func defaults() map[string]any {
	return map[string]any{
		"advertise":                 "",
		"http.listen":               ":8080",
		"http.writeTimeout":         "30s",
		"admin.listen":              "127.0.0.1:8081",
		"admin.tokenFile":           "",
		"admin.hosts":               []string{},
		"dhcp.enabled":              true,
		"dhcp.interface":            "",
		"dhcp.interfaces":           []string{},
		"dhcp.port":                 67,
		"dhcp.pxePort":              4011,
		"dhcp.replyDelay":           "0s",
		"tftp.enabled":              true,
		"tftp.listen":               ":69",
		"tftp.maxBlockSize":         0,
		"tftp.maxPerClient":         8,
		"tftp.maxTimeout":           "10s",
		"tftp.firstAckWait":         "15s",
		"ipxe.dir":                  "/usr/lib/ipxe",
		"ipxe.localBoot":            LocalBootExit,
		"ipxe.efiX64":               "snponly.efi",
		"factory.url":               "https://factory.talos.dev",
		"cache.dir":                 "/var/lib/tinderbox/cache",
		"cache.maxSize":             "20GiB",
		"cache.allow":               []string{},
		"state.backend":             "bolt",
		"state.dir":                 "/var/lib/tinderbox",
		"state.etcd.endpoints":      []string{},
		"state.etcd.prefix":         "/tinderbox/",
		"state.etcd.dialTimeout":    "5s",
		"state.etcd.requestTimeout": "5s",
		"state.etcd.tls.ca":         "",
		"state.etcd.tls.cert":       "",
		"state.etcd.tls.key":        "",
		"state.etcd.username":       "",
		"state.etcd.password":       "",
		"state.discovered.max":      1000,
		"state.discovered.ttl":      "24h",
		"state.onCorrupt":           "restore",
		"state.backup.interval":     "1h",
		"state.backup.keep":         24,
		"profiles.dir":              "/etc/tinderbox/profiles",
		"log.level":                 "info",
		"log.format":                "text",
		"binding.enabled":           true,
		"binding.routedNetworks":    []string{},
		"reports.enabled":           true,
		"reports.eventsListen":      ":8091",
		"reports.logsListen":        ":8092",
		"reports.stallAfter":        "15m",
	}
}

// Problem is one thing wrong with the configuration. Load and Validate
// return every Problem found, joined.
type Problem struct {
	// File and Line locate the problem in the config file, when known.
	File string
	Line int
	// Key is the config key at fault ("dhcp.port"), when known.
	Key string
	Msg string
}

func (p *Problem) Error() string {
	return "config: " + problem.Format(p.File, p.Line, p.Key, p.Msg)
}
