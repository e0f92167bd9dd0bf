package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/tinderbox-boot/tinderbox/internal/admin"
	"github.com/tinderbox-boot/tinderbox/internal/bind"
	"github.com/tinderbox-boot/tinderbox/internal/bootflow"
	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/internal/eventhub"
	"github.com/tinderbox-boot/tinderbox/internal/evidence"
	"github.com/tinderbox-boot/tinderbox/internal/health"
	"github.com/tinderbox-boot/tinderbox/internal/httpserver"
	"github.com/tinderbox-boot/tinderbox/internal/ifaddr"
	"github.com/tinderbox-boot/tinderbox/internal/ipxe"
	"github.com/tinderbox-boot/tinderbox/internal/kmsglog"
	"github.com/tinderbox-boot/tinderbox/internal/metrics"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/proxydhcp"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/internal/talosevents"
	"github.com/tinderbox-boot/tinderbox/internal/tftp"
	"github.com/tinderbox-boot/tinderbox/internal/version"
	"github.com/tinderbox-boot/tinderbox/internal/webui"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

func newServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: proxyDHCP, TFTP, boot HTTP and admin HTTP",
		Long: `serve runs tinderbox until SIGINT or SIGTERM, then shuts down gracefully.
Every socket is bound before any server starts: a port that is taken or
privileged fails at start, naming the port.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				printProblems(cmd, err)
				return errReported
			}
			// The daemon's log lines are written by a goroutine of their
			// own: the proxyDHCP responder logs one per reply.
			lw := newLogWriter(cmd.ErrOrStderr())
			defer lw.Close()
			return run(cmd.Context(), cfg, newLogger(cfg.Log, lw))
		},
	}
}

// run binds every socket, builds every subsystem on them, then serves
// until ctx is cancelled.
func run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	d, err := newDaemon(ctx, cfg, log)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// daemon is tinderbox with every socket bound and every server built.
type daemon struct {
	log      *slog.Logger
	registry *prometheus.Registry
	state    state.Backend
	profiles *profiles.Store
	servers  []server
	// ipxeFiles are the iPXE binaries handed out, for the status page.
	ipxeFiles []string
	// closers release what newDaemon opened, newest last: after Run's
	// servers have stopped, or at once should newDaemon fail part-way.
	closers []func() error
	// eventsAddr and logsAddr are the Talos event sink's and log
	// receiver's addresses; nil when off.
	eventsAddr, logsAddr net.Addr
	// hub fans machine changes out to the event streams.
	hub *eventhub.Hub
	// flow is the boot flow.
	flow *bootflow.Flow
	// logs holds the machines' Talos log lines; nil when off.
	logs *kmsglog.Buffer[machine.MAC]
	// neighbours is the kernel's neighbour table when binding is on.
	neighbours *evidence.Kernel
	// The bound addresses (a test binding :0 reads the ports here);
	// tftpAddr is nil when TFTP is off.
	httpAddr, adminAddr, tftpAddr net.Addr
	// socks are the bound sockets, closed first at shutdown.
	socks *sockets
	// health judges whether the daemon can boot a machine now.
	health *health.Checker
	// stopping is set once Run's context ends.
	stopping atomic.Bool
}

// server is one of the daemon's servers, ready to run.
type server struct {
	name  string
	serve func(ctx context.Context) error
	// listener marks the servers of a socket, which the health's
	// listeners check follows.
	listener bool
	// up is true while serve runs.
	up *atomic.Bool
}

// sockets are every socket the daemon serves on. Each server's Serve owns
// and closes its socket; close releases them for a daemon that never ran.
type sockets struct {
	boot, admin net.Listener
	tftp        net.PacketConn // nil when tftp.enabled is false
	dhcp        []dhcpSocket   // empty when dhcp.enabled is false
	events      net.Listener   // Talos' event sink; nil when reports.enabled is false
	logsTCP     net.Listener   // Talos' log receiver, TCP and UDP on one port; nil when off
	logsUDP     net.PacketConn
}

// dhcpSocket is one proxyDHCP port: 67 (with broadcast DISCOVERs) or the
// PXE boot server port 4011 (unicast REQUESTs), on one interface or on
// every one; what names it, and its interface if it has one.
type dhcpSocket struct {
	what string
	pxe  bool
	conn *net.UDPConn
}

func (s *sockets) close() {
	for _, c := range []io.Closer{s.boot, s.admin, s.tftp, s.events, s.logsTCP, s.logsUDP} {
		if c != nil {
			_ = c.Close()
		}
	}
	for _, d := range s.dhcp {
		_ = d.conn.Close()
	}
}

// bindSockets binds every socket the config asks for, in the order the
// operator reads them in the config file; the first that fails is returned
// with its port named, and the ones already bound are closed.
func bindSockets(ctx context.Context, cfg *config.Config) (_ *sockets, err error) {
	s := &sockets{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.boot, err = bind.TCP(ctx, "boot HTTP", cfg.HTTP.Listen); err != nil {
		return nil, err
	}
	if s.admin, err = bind.TCP(ctx, "admin", cfg.Admin.Listen); err != nil {
		return nil, err
	}
	if cfg.DHCP.Enabled {
		// One pair of sockets per interface named (dhcp.interfaces), each
		// tied to its device, or one pair on every interface.
		devices := cfg.DHCP.Devices()
		if len(devices) == 0 {
			devices = []string{""}
		}
		for _, dev := range devices {
			ports := []dhcpSocket{{what: "proxyDHCP"}}
			if cfg.DHCP.PXEPort != 0 {
				ports = append(ports, dhcpSocket{what: "proxyDHCP PXE", pxe: true})
			}
			for _, p := range ports {
				port := cfg.DHCP.Port
				if p.pxe {
					port = cfg.DHCP.PXEPort
				}
				if dev != "" {
					p.what += " on " + dev
				}
				if p.conn, err = proxydhcp.Listen(ctx, p.what, dev, port); err != nil {
					return nil, err
				}
				s.dhcp = append(s.dhcp, p)
			}
		}
	}
	if cfg.TFTP.Enabled {
		if s.tftp, err = tftp.Listen(ctx, cfg.TFTP.Listen); err != nil {
			return nil, err
		}
	}
	if cfg.Reports.Enabled {
		if s.events, err = bind.TCP(ctx, "Talos event sink", cfg.Reports.EventsListen); err != nil {
			return nil, err
		}
		if s.logsTCP, err = bind.TCP(ctx, "Talos log receiver", cfg.Reports.LogsListen); err != nil {
			return nil, err
		}
		// UDP on the TCP socket's port, which port 0 has just picked.
		host, _, _ := net.SplitHostPort(cfg.Reports.LogsListen)
		port := strconv.Itoa(s.logsTCP.Addr().(*net.TCPAddr).Port)
		if s.logsUDP, err = bind.UDP(ctx, "Talos log receiver", net.JoinHostPort(host, port)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// reportArgs are the kernel arguments that point a netbooted Talos at
// tinderbox's receivers (docs/protocol.md, "Talos reports back") at
// advertise (the advertised address, or the address a script request
// arrived on); a port of 0 leaves its receiver out.
func reportArgs(advertise string, eventsPort, logsPort int) []string {
	var args []string
	if eventsPort != 0 {
		args = append(args, "talos.events.sink="+net.JoinHostPort(advertise, strconv.Itoa(eventsPort)))
	}
	if logsPort != 0 {
		args = append(args, "talos.logging.kernel=tcp://"+net.JoinHostPort(advertise, strconv.Itoa(logsPort))+"/")
	}
	return args
}

// reportPorts are the ports the receivers bound; 0 for one that is off.
func (s *sockets) reportPorts() (events, logs int) {
	if s.events != nil {
		events = s.events.Addr().(*net.TCPAddr).Port
	}
	if s.logsTCP != nil {
		logs = s.logsTCP.Addr().(*net.TCPAddr).Port
	}
	return events, logs
}

// newDaemon binds every socket first, so that a busy or privileged port
// fails before anything else happens (profiles loading may call the Image
// Factory), then builds each subsystem from plain values, in dependency
// order: state, the factory client, profiles, the assets they boot, the
// boot flow over them, then the servers that report to it.
func newDaemon(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *daemon, err error) {
	var token string
	if cfg.Admin.TokenFile != "" {
		if token, err = config.ReadToken(cfg.Admin.TokenFile); err != nil {
			return nil, err
		}
	}
	var advertise netip.Addr
	if cfg.DHCP.Enabled {
		if advertise, err = netip.ParseAddr(cfg.Advertise); err != nil || !advertise.Is4() {
			return nil, fmt.Errorf("proxyDHCP: advertise %q is not an IPv4 address; set advertise or dhcp.interface", cfg.Advertise)
		}
		if !cfg.AdvertisePinned {
			// Each reply names the address of its request's interface.
			advertise = netip.Addr{}
		}
	}
	socks, err := bindSockets(ctx, cfg)
	if err != nil {
		return nil, err
	}
	d := &daemon{log: log, registry: metrics.NewRegistry(), httpAddr: socks.boot.Addr(), adminAddr: socks.admin.Addr(), socks: socks}
	d.closers = append(d.closers, func() error { socks.close(); return nil })
	if socks.tftp != nil {
		d.tftpAddr = socks.tftp.LocalAddr()
	}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	baseURL := bootURL(cfg.Advertise, d.httpAddr.String())
	warnSharedDHCPPorts(socks.dhcp, log)

	// State (bbolt under state.dir, or etcd shared with other replicas):
	// every change, another replica's included, goes to the admin API's
	// event streams; discovered records past their TTL are swept while
	// serving.
	events := eventhub.New()
	d.hub = events
	onChange := func(m state.Machine) { events.Publish(m.MAC) }
	disc := cfg.State.Discovered
	if d.state, err = openState(cfg.State, state.Options{
		Logger: log, OnChange: onChange, DiscoveredMax: disc.Max, DiscoveredTTL: disc.TTL,
		OnCorrupt: cfg.State.OnCorrupt, BackupKeep: cfg.State.Backup.Keep, Registerer: d.registry,
	}); err != nil {
		return nil, err
	}
	d.closers = append(d.closers, func() error {
		// close drops errors; a stuck write lost at shutdown is worth a line.
		if err := d.state.Close(); err != nil {
			log.Error("state: close", "err", err)
		}
		return nil
	})
	if b, ok := d.state.(state.Backupper); ok && cfg.State.Backup.Interval > 0 {
		every := cfg.State.Backup.Interval
		d.add("state backups", func(ctx context.Context) error {
			t := time.NewTicker(every)
			defer t.Stop()
			return b.Backups(ctx, t.C)
		})
	}
	// The write probe of state.dir, for the health's state check.
	probe := health.NewDiskProbe(cfg.State.Dir, probeEvery, probeDeadline)
	d.add("state disk probe", probe.Run)
	if disc.TTL > 0 {
		d.add("state sweeper", func(ctx context.Context) error {
			t := time.NewTicker(state.SweepInterval(disc.TTL))
			defer t.Stop()
			return d.state.Expire(ctx, t.C)
		})
	}

	// The Image Factory client: profiles resolve schematic names with it,
	// the asset cache fetches from it.
	fc, err := newFactory(cfg, log, d.registry)
	if err != nil {
		return nil, err
	}

	// Profiles: on a problem, serve the last good set kept under
	// state.dir (a copy made at every good load), and refuse to start only
	// when there is none; the watcher serves later edits that load, and
	// keeps the last good set on one that does not.
	popts := profileOptions(cfg, fc)
	popts.BaseURL = baseURL // the port actually bound, which differs from the config's for ":0"
	popts.RenderCache = renderCachePath(cfg)
	sopts := profiles.StoreOptions{Logger: log, Registerer: d.registry, LastGood: filepath.Join(cfg.State.Dir, LastGoodProfilesDir)}
	if d.profiles, err = profiles.NewStore(ctx, popts, sopts); err != nil {
		return nil, fmt.Errorf("profiles %s do not load (`tinderbox validate` lists every problem), and no last good set is kept in %s: %w",
			cfg.Profiles.Dir, sopts.LastGood, err)
	}
	if st := d.profiles.Status(); st.Err == nil {
		log.Info("profiles loaded", "dir", cfg.Profiles.Dir, "machines", d.profiles.Set().Len(), "unknown", d.profiles.Unknown())
	}

	// Assets: the on-disk cache in front of the factory, serving and
	// fetching only what the profiles being served boot and cache.allow
	// names (followed across reloads), and keeping those longest.
	scope, err := assetScope(cfg, d.profiles)
	if err != nil {
		return nil, err
	}
	assets, err := openCache(cfg, fc, scope, log, d.registry)
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, assets.Close)
	log.Info("asset cache ready", "dir", assets.Dir(), "entries", len(assets.List()), "size", assets.Size(),
		"max_size", cfg.Cache.MaxSize.String(), "allow", len(cfg.Cache.Allow), "factory", fc.URL())

	// iPXE binaries, for TFTP and for UEFI HTTP boot clients at /boot/{file}.
	root := ipxe.NewRoot(cfg.IPXE.Dir)
	d.closers = append(d.closers, root.Close)
	efiX64, fellBack := ipxe.PickEFIx64(root.Dir(), cfg.IPXE.EFIx64)
	if fellBack {
		log.Warn("ipxe.efiX64 is not in ipxe.dir; x86-64 UEFI machines get the other build", "dir", root.Dir(), "want", cfg.IPXE.EFIx64, "serving", efiX64)
	}
	d.ipxeFiles = append(ipxe.Required(efiX64), ipxe.EFIArm64)
	if missing := ipxe.Missing(root.Dir(), ipxe.Required(efiX64)...); len(missing) > 0 {
		log.Warn("ipxe.dir lacks boot binaries; serving what exists", "dir", root.Dir(), "missing", missing, "hint", ipxe.InstallHint)
	}
	arm64 := len(ipxe.Missing(root.Dir(), ipxe.EFIArm64)) == 0
	if !arm64 {
		log.Info("no arm64 iPXE in ipxe.dir; arm64 UEFI machines cannot netboot", "dir", root.Dir(), "file", ipxe.EFIArm64)
	}

	// The boot flow: what each machine is served, and the hooks the DHCP,
	// TFTP and asset servers report to.
	eventsPort, logsPort := socks.reportPorts()
	own := reportArgs(cfg.Advertise, eventsPort, logsPort)
	binder, err := d.openEvidence(cfg.Binding)
	if err != nil {
		return nil, err
	}
	flow := bootflow.New(bootflow.Options{
		BaseURL: baseURL, Pinned: cfg.AdvertisePinned, LocalBoot: cfg.IPXE.LocalBoot, Store: d.state, Profiles: d.profiles,
		Cmdlines: assets, Evidence: binder, Own: own, Logger: log, Registerer: d.registry,
		OwnAt: func(host netip.Addr) []string { return reportArgs(host.String(), eventsPort, logsPort) },
	})
	// DHCP, transfer and refusal records and served configs are written
	// in the background: write what waits before the state store closes,
	// within the store's own write bound, so a stuck disk cannot hold
	// shutdown.
	d.closers = append(d.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), state.DefaultWriteTimeout)
		defer cancel()
		if err := flow.Flush(ctx); err != nil {
			log.Error("state: records lost at shutdown", "err", err)
		}
		return nil
	})
	d.flow = flow

	// Boot HTTP: what nodes fetch, plus the probes' /livez, /healthz,
	// /readyz, and /metrics.
	d.health = health.New(d.checks(d.state, probe, d.profiles, root.Dir(), ipxe.Required(efiX64))...)
	httpMetrics := httpserver.NewMetrics(d.registry)
	bootSrv := httpserver.New(httpserver.Options{Name: "boot", Logger: log, Metrics: httpMetrics, WriteTimeout: cfg.HTTP.WriteTimeout})
	r := bootSrv.Router()
	r.Get("/livez", health.Livez)
	r.Get("/healthz", d.health.Healthz)
	r.Get("/readyz", d.health.Readyz)
	r.Method(http.MethodGet, "/metrics", metrics.Handler(d.registry))
	ipxeFiles := ipxe.Handler(root, log)
	r.Method(http.MethodGet, ipxe.HTTPPath, ipxeFiles)
	r.Method(http.MethodHead, ipxe.HTTPPath, ipxeFiles)
	flow.Mount(r)
	cache.NewHandler(assets, log, flow).Mount(r)
	d.listen("boot HTTP", func(ctx context.Context) error { return bootSrv.Serve(ctx, socks.boot) })
	d.add("profiles watcher", d.profiles.Watch)

	// What Talos reports of itself: its event sink.
	if socks.events != nil {
		d.eventsAddr = socks.events.Addr()
		sink := talosevents.New(talosevents.Options{Recorder: flow, Logger: log, Metrics: talosevents.NewMetrics(d.registry)})
		log.Info("Talos event sink listening", "addr", d.eventsAddr.String(), "kernel_args", own)
		d.listen("Talos event sink", func(ctx context.Context) error { return sink.Serve(ctx, socks.events) })
	}
	// And its log stream, kept per machine for the console.
	if socks.logsTCP != nil {
		d.logs = kmsglog.NewBuffer[machine.MAC](kmsglog.BufferOptions{})
		d.logsAddr = socks.logsTCP.Addr()
		recv := kmsglog.New(kmsglog.Options{Sink: flow.LogSink(d.logs), Logger: log, Registerer: d.registry})
		log.Info("Talos log receiver listening", "addr", d.logsAddr.String(), "transports", "tcp, udp")
		d.listen("Talos log receiver (TCP)", func(ctx context.Context) error { return recv.ServeTCP(ctx, socks.logsTCP) })
		d.listen("Talos log receiver (UDP)", func(ctx context.Context) error { return recv.ServeUDP(ctx, socks.logsUDP) })
	}

	// The UDP servers answer from the receiving interface's address: one
	// table of interfaces, kept current by the kernel's notifications,
	// spares them two netlink dumps per packet. Without it they ask the
	// kernel each time.
	ifs, err := ifaddr.New()
	if err != nil {
		log.Warn("interfaces: asking the kernel per packet", "err", err)
	}
	d.closers = append(d.closers, ifs.Close)

	// TFTP: the iPXE chain-load.
	if socks.tftp != nil {
		srv := tftp.New(tftp.Options{Files: root, Logger: log, Metrics: tftp.NewMetrics(d.registry), Recorder: flow, MaxBlksize: cfg.TFTP.MaxBlockSize,
			MaxPerClient: cfg.TFTP.MaxPerClient, MaxTimeout: cfg.TFTP.MaxTimeout, FirstAckWait: cfg.TFTP.FirstAckWait, Interfaces: ifs})
		log.Info("tftp listening", "addr", d.tftpAddr.String(), "dir", root.Dir())
		d.listen("TFTP", func(ctx context.Context) error { return srv.Serve(ctx, socks.tftp) })
	}

	// proxyDHCP: points PXE firmware at iPXE and iPXE at /boot.ipxe.
	if len(socks.dhcp) > 0 {
		dcfg := proxydhcp.Config{Advertise: advertise, HTTPPort: d.httpAddr.(*net.TCPAddr).Port, Arm64: arm64, EFIx64: efiX64}
		m := proxydhcp.NewMetrics(d.registry)
		for _, s := range socks.dhcp {
			srv := proxydhcp.New(proxydhcp.Options{
				Config: dcfg, Logger: log, Metrics: m, PXEPort: s.pxe, Policy: flow, Recorder: flow, Observer: flow,
				ReplyDelay: cfg.DHCP.ReplyDelay, Interfaces: ifs,
			})
			d.listen(s.what, func(ctx context.Context) error { return srv.Serve(ctx, s.conn) })
		}
		script := "http://<address of the receiving interface>:" + strconv.Itoa(dcfg.HTTPPort) + "/boot.ipxe"
		if advertise.IsValid() {
			script = dcfg.ScriptURL(advertise)
		}
		log.Info("proxyDHCP listening", "interfaces", cfg.DHCP.Devices(), "port", cfg.DHCP.Port, "pxe_port", cfg.DHCP.PXEPort,
			"boot_script", script, "arm64", arm64)
	}

	// Admin: the JSON API and the web UI, behind the Host check (DNS
	// rebinding) for every request.
	adminSrv := httpserver.New(httpserver.Options{Name: "admin", Logger: log, Metrics: httpMetrics})
	adminHosts, err := admin.NewHosts(d.adminAddr, cfg.Admin.Hosts)
	if err != nil {
		return nil, err
	}
	adminSrv.Router().Use(adminHosts.Middleware(log))
	opts := admin.Options{
		Token: token, Store: d.state, Profiles: d.profiles, Scripts: flow, Logger: log,
		Files: d.profiles, Hub: events, Cache: assets, Factory: fc, IPXEDir: cfg.IPXE.Dir, IPXEFiles: d.ipxeFiles,
		Listeners: d.listeners(cfg), Gatherer: d.registry, StallAfter: cfg.Reports.StallAfter, Logs: d.logs,
		Health: d.health.Report,
		Binding: func() api.BindingStatus {
			return api.BindingStatus{Enabled: cfg.Binding.Enabled, Following: d.neighbours != nil && d.neighbours.Following(), RoutedNetworks: cfg.Binding.RoutedNetworks}
		},
	}
	adminAPI := admin.New(opts)
	adminAPI.Mount(adminSrv.Router())
	webui.New(webui.Options{API: adminAPI, Records: d.state, Profiles: d.profiles, Files: d.profiles, Logger: log, StallAfter: cfg.Reports.StallAfter}).Mount(adminSrv.Router())
	log.Info("admin API and UI listening", "addr", d.adminAddr.String(), "auth", token != "")
	d.listen("admin HTTP", func(ctx context.Context) error {
		// Event streams never end on their own: close them when the
		// daemon stops, so the graceful shutdown does not wait for them.
		stop := context.AfterFunc(ctx, events.Close)
		defer stop()
		if d.logs != nil {
			stopLogs := context.AfterFunc(ctx, d.logs.Close)
			defer stopLogs()
		}
		return adminSrv.Serve(ctx, socks.admin)
	})

	log.Info("tinderbox starting", "version", version.Version, "commit", version.Commit,
		"config", cfg.File, "advertise", cfg.Advertise, "advertise_pinned", cfg.AdvertisePinned, "http", d.httpAddr.String())
	return d, nil
}

// openEvidence opens the kernel's neighbour table when binding is on
// (docs/security.md) and returns the binder the boot flow judges requests
// by.
func (d *daemon) openEvidence(cfg config.Binding) (*evidence.Binder, error) {
	opts := evidence.Options{Enabled: cfg.Enabled, Routed: cfg.Routed()}
	if cfg.Enabled {
		k, err := evidence.OpenKernel(d.log, "")
		if err != nil {
			return nil, fmt.Errorf("binding.enabled: %w", err)
		}
		d.closers = append(d.closers, k.Close)
		d.neighbours = k
		opts.Neighbours = k
		d.log.Info("boot sessions bound to evidence: config tokens, state changes and configs only for requests from the machine itself", "routed_networks", cfg.RoutedNetworks)
	} else {
		d.log.Warn("binding.enabled is false: any host that reaches the boot HTTP server can fetch any machine's config token and config, and move its state (docs/security.md)")
	}
	return evidence.New(opts)
}

// add adds a background server (a loop that serves no socket).
func (d *daemon) add(name string, serve func(context.Context) error) {
	d.servers = append(d.servers, server{name: name, serve: serve, up: new(atomic.Bool)})
}

// listen adds the server of a socket.
func (d *daemon) listen(name string, serve func(context.Context) error) {
	d.servers = append(d.servers, server{name: name, serve: serve, listener: true, up: new(atomic.Bool)})
}

// listeners names every bound socket for the status page.
func (d *daemon) listeners(cfg *config.Config) []api.Listener {
	ls := []api.Listener{{Name: "boot HTTP", Addr: d.httpAddr.String()}, {Name: "admin HTTP and UI", Addr: d.adminAddr.String()}}
	if d.tftpAddr != nil {
		ls = append(ls, api.Listener{Name: "TFTP", Addr: d.tftpAddr.String()})
	}
	if d.eventsAddr != nil {
		ls = append(ls, api.Listener{Name: "Talos event sink", Addr: d.eventsAddr.String()})
	}
	if d.logsAddr != nil {
		ls = append(ls, api.Listener{Name: "Talos log receiver (TCP, UDP)", Addr: d.logsAddr.String()})
	}
	if cfg.DHCP.Enabled {
		on := ""
		if devs := cfg.DHCP.Devices(); len(devs) > 0 {
			on = " on " + strings.Join(devs, ", ")
		}
		ls = append(ls, api.Listener{Name: "proxyDHCP" + on, Addr: fmt.Sprintf(":%d", cfg.DHCP.Port)})
		if cfg.DHCP.PXEPort != 0 {
			ls = append(ls, api.Listener{Name: "PXE boot server" + on, Addr: fmt.Sprintf(":%d", cfg.DHCP.PXEPort)})
		}
	}
	return ls
}

// warnSharedDHCPPorts warns when another socket on this host listens on a
// proxyDHCP port: the kernel hands each unicast packet to one socket only.
func warnSharedDHCPPorts(socks []dhcpSocket, log *slog.Logger) {
	for _, s := range socks {
		port := s.conn.LocalAddr().(*net.UDPAddr).Port
		others, err := proxydhcp.Sharers(s.conn)
		switch {
		case errors.Is(err, errors.ErrUnsupported):
		case err != nil:
			log.Warn("proxyDHCP: cannot tell whether another process shares the port", "port", port, "err", err)
		case len(others) > 0:
			log.Warn("proxyDHCP: another socket on this host listens on the same UDP port and interface; "+
				"the kernel gives each unicast packet (port-4011 REQUESTs, relayed requests) to one socket only, "+
				"so some PXE clients may go unanswered: stop the other server or bind each to its own interfaces (dhcp.interfaces)",
				"port", port, "sharers", strings.Join(others, "; "))
		}
	}
}

// stopGrace bounds the wait for the servers to stop, and then for what
// newDaemon opened to close, after Run's context ends: a handler stuck on a
// frozen disk must not keep the process alive (under systemd or
// Kubernetes, a SIGKILL comes 30 s after SIGTERM anyway). Each server
// closes its sockets before it waits for its requests in flight, so the
// ports are free already.
const stopGrace = 12 * time.Second

// Run runs every server until ctx is cancelled or one of them fails; it
// returns the first failure, or nil after a clean shutdown. It returns
// within twice stopGrace of the end of ctx, with an error naming the
// servers that did not stop when some did not.
func (d *daemon) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	stopping := context.AfterFunc(gctx, func() { d.stopping.Store(true) })
	defer stopping()
	// Up from here: every socket is bound, and the kernel queues what
	// arrives before a server's goroutine reads it.
	for _, s := range d.servers {
		s.up.Store(true)
	}
	for _, s := range d.servers {
		g.Go(func() error {
			defer s.up.Store(false)
			if err := s.serve(gctx); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			return nil
		})
	}
	waited := make(chan error, 1)
	go func() { waited <- g.Wait() }()
	var err error
	select {
	case err = <-waited:
	case <-gctx.Done():
		select {
		case err = <-waited:
		case <-time.After(stopGrace):
			var stuck []string
			for _, s := range d.servers {
				if s.up.Load() {
					stuck = append(stuck, s.name)
				}
			}
			err = fmt.Errorf("shutdown: %s did not stop within %s of the signal (a request stuck on the disk?)", strings.Join(stuck, ", "), stopGrace)
			d.log.Error("servers did not stop; closing what remains", "servers", stuck, "grace", stopGrace)
		}
	}
	// The sockets first: nothing below may keep a port held.
	d.socks.close()
	closed := make(chan struct{})
	go func() { d.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(stopGrace):
		d.log.Error("closing the state database and caches did not finish; exiting anyway", "grace", stopGrace)
	}
	d.log.Info("tinderbox stopped")
	return err
}

// close releases what newDaemon opened, newest first (the state store
// after the servers that write to it). Sockets a server already closed
// report an error here, which is of no interest.
func (d *daemon) close() {
	for _, c := range slices.Backward(d.closers) {
		_ = c()
	}
}

// LastGoodProfilesDir is where, under state.dir, the daemon keeps a copy of
// the last profiles directory that loaded, served at start when the
// directory does not load.
const LastGoodProfilesDir = "profiles-last-good"

// RenderCacheFile is where, under state.dir, the machines' renders are
// kept across restarts (profiles.Options.RenderCache): a restart renders
// only the machines whose inputs changed, and validate reads it.
const RenderCacheFile = "profile-renders.db"

func renderCachePath(cfg *config.Config) string {
	return filepath.Join(cfg.State.Dir, RenderCacheFile)
}
