package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/tinderbox-boot/tinderbox/internal/bind"
	"github.com/tinderbox-boot/tinderbox/internal/bootflow"
	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/internal/eventhub"
	"github.com/tinderbox-boot/tinderbox/internal/factory"
	"github.com/tinderbox-boot/tinderbox/internal/httpserver"
	"github.com/tinderbox-boot/tinderbox/internal/metrics"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/internal/version"
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
			log := newLogger(cfg.Log, cmd.ErrOrStderr())
			return run(cmd.Context(), cfg, log)
		},
	}
}

// run binds every socket, then serves until ctx is cancelled.
func run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	d, err := newDaemon(ctx, cfg, log)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// daemon is tinderbox with every socket bound and every server built.
type daemon struct {
	cfg      *config.Config
	log      *slog.Logger
	registry *prometheus.Registry
	// boot is the boot HTTP server; subsystems mount their routes on its
	// router while the daemon is being built.
	boot     *httpserver.Server
	state    *state.Store
	factory  *factory.Client
	cache    *cache.Cache
	profiles *profiles.Store
	flow     *bootflow.Flow
	// events carries state changes to the admin API's event streams.
	events  *eventhub.Hub
	servers []server
	// closers release what newDaemon opened: after Run's servers have
	// stopped, or at once should a later step of newDaemon fail.
	closers []func() error
	// httpAddr and adminAddr are the listeners' addresses (a test binding
	// :0 reads the ports here).
	httpAddr, adminAddr, tftpAddr net.Addr
	// httpMetrics are the request metrics both HTTP servers share.
	httpMetrics *httpserver.Metrics
}

// server is one of the daemon's servers, ready to run.
type server struct {
	name  string
	serve func(ctx context.Context) error
}

// newDaemon binds every socket first, so that a busy port fails before any
// server starts, and builds the servers on them. Each subsystem is wired by
// an add… method in its own file.
func newDaemon(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *daemon, err error) {
	d := &daemon{cfg: cfg, log: log, registry: metrics.NewRegistry()}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	// Servers are built in dependency order: the boot flow needs the
	// state, the cache and the profiles; DHCP and TFTP report to the flow.
	for _, add := range []func(context.Context) error{
		d.addBootHTTP, d.addState, d.addAssets, d.addProfiles, d.addFlow, d.addTFTP, d.addDHCP, d.addAdmin,
	} {
		if err := add(ctx); err != nil {
			return nil, err
		}
	}
	log.Info("tinderbox starting", "version", version.Version, "commit", version.Commit,
		"config", cfg.File, "advertise", cfg.Advertise, "http", d.httpAddr.String())
	return d, nil
}

// addBootHTTP binds http.listen and builds the boot HTTP server with
// /healthz and /metrics.
func (d *daemon) addBootHTTP(ctx context.Context) error {
	ln, err := bind.TCP(ctx, "boot HTTP", d.cfg.HTTP.Listen)
	if err != nil {
		return err
	}
	d.closers = append(d.closers, ln.Close)
	d.httpAddr = ln.Addr()

	d.httpMetrics = httpserver.NewMetrics(d.registry)
	d.boot = httpserver.New(httpserver.Options{Name: "boot", Logger: d.log, Metrics: d.httpMetrics})
	d.boot.Router().Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	d.boot.Router().Method(http.MethodGet, "/metrics", metrics.Handler(d.registry))
	d.servers = append(d.servers, server{"boot HTTP", func(ctx context.Context) error { return d.boot.Serve(ctx, ln) }})
	return nil
}

// Run runs every server until ctx is cancelled or one of them fails; it
// returns the first failure, or nil after a clean shutdown.
func (d *daemon) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, s := range d.servers {
		g.Go(func() error {
			if err := s.serve(ctx); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			return nil
		})
	}
	err := g.Wait()
	d.close()
	d.log.Info("tinderbox stopped")
	return err
}

// close releases what newDaemon opened, newest first (the state store
// after the servers that write to it). Listeners the servers already
// closed report an error here, which is of no interest.
func (d *daemon) close() {
	for _, c := range slices.Backward(d.closers) {
		_ = c()
	}
}
