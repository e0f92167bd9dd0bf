package main

import (
	"context"
	"fmt"

	"github.com/tinderbox-boot/tinderbox/internal/admin"
	"github.com/tinderbox-boot/tinderbox/internal/bind"
	"github.com/tinderbox-boot/tinderbox/internal/bootflow"
	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/internal/eventhub"
	"github.com/tinderbox-boot/tinderbox/internal/httpserver"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/internal/webui"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
)

// addState opens the machine-state database under state.dir; every change
// goes to the admin API's event streams.
func (d *daemon) addState(context.Context) error {
	d.events = eventhub.New()
	st, err := state.Open(d.cfg.State.Dir, state.Options{Logger: d.log, OnChange: func(m state.Machine) { d.events.Publish(m.MAC) }})
	if err != nil {
		return err
	}
	d.state = st
	d.closers = append(d.closers, st.Close)
	return nil
}

// addFlow builds the boot flow over the state, the profiles and the cache,
// mounts /boot.ipxe, /ipxe and /config/{mac}, and has the asset handler
// report to it.
func (d *daemon) addFlow(context.Context) error {
	d.flow = bootflow.New(bootflow.Options{
		BaseURL:    bootURL(d.cfg.Advertise, d.httpAddr.String()),
		LocalBoot:  d.cfg.IPXE.LocalBoot,
		Store:      d.state,
		Profiles:   d.profiles,
		Cmdlines:   d.cache,
		Logger:     d.log,
		Registerer: d.registry,
	})
	d.flow.Mount(d.boot.Router())
	cache.NewHandler(d.cache, d.log, d.flow).Mount(d.boot.Router())
	return nil
}

// addAdmin binds admin.listen and serves the admin API and the web UI there.
func (d *daemon) addAdmin(ctx context.Context) error {
	var token string
	if d.cfg.Admin.TokenFile != "" {
		var err error
		if token, err = config.ReadToken(d.cfg.Admin.TokenFile); err != nil {
			return err
		}
	}
	ln, err := bind.TCP(ctx, "admin", d.cfg.Admin.Listen)
	if err != nil {
		return err
	}
	d.closers = append(d.closers, ln.Close)
	d.adminAddr = ln.Addr()
	srv := httpserver.New(httpserver.Options{Name: "admin", Logger: d.log, Metrics: d.httpMetrics})
	listeners := []api.Listener{{Name: "boot HTTP", Addr: d.httpAddr.String()}, {Name: "admin HTTP and UI", Addr: ln.Addr().String()}}
	if d.tftpAddr != nil {
		listeners = append(listeners, api.Listener{Name: "TFTP", Addr: d.tftpAddr.String()})
	}
	if d.cfg.DHCP.Enabled {
		listeners = append(listeners, api.Listener{Name: "proxyDHCP", Addr: fmt.Sprintf(":%d", d.cfg.DHCP.Port)})
		if d.cfg.DHCP.PXEPort != 0 {
			listeners = append(listeners, api.Listener{Name: "PXE boot server", Addr: fmt.Sprintf(":%d", d.cfg.DHCP.PXEPort)})
		}
	}
	opts := admin.Options{
		Token: token, Store: d.state, Profiles: d.profiles, Scripts: d.flow, Logger: d.log,
		Files: d.profiles, Hub: d.events, Cache: d.cache, IPXEDir: d.cfg.IPXE.Dir,
		Listeners: listeners, Gatherer: d.registry,
	}
	if d.factory != nil {
		opts.Factory = d.factory
	}
	a := admin.New(opts)
	a.Mount(srv.Router())
	webui.New(webui.Options{API: a, Records: d.state, Profiles: d.profiles, Files: d.profiles, Logger: d.log}).Mount(srv.Router())
	d.log.Info("admin API and UI listening", "addr", ln.Addr().String(), "auth", token != "")
	d.servers = append(d.servers, server{"admin HTTP", func(ctx context.Context) error {
		// Event streams never end on their own: close them when the
		// daemon stops, so the graceful shutdown does not wait for them.
		stop := context.AfterFunc(ctx, d.events.Close)
		defer stop()
		return srv.Serve(ctx, ln)
	}})
	return nil
}
