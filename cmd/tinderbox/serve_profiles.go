package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/internal/factory"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
)

// addProfiles loads profiles.dir, refusing to start when it has a
// problem (there is no earlier set to fall back on), and watches it: a
// change that loads is served, one that does not is logged and the last
// good set keeps serving.
func (d *daemon) addProfiles(ctx context.Context) error {
	opts := profileOptions(d.cfg, d.factory)
	// The port actually bound, which differs from the config's for ":0".
	opts.BaseURL = bootURL(d.cfg.Advertise, d.httpAddr.String())
	store, err := profiles.NewStore(ctx, opts, profiles.StoreOptions{Logger: d.log, Registerer: d.registry})
	if err != nil {
		return fmt.Errorf("profiles %s do not load (`tinderbox validate` lists every problem): %w", d.cfg.Profiles.Dir, err)
	}
	d.profiles = store
	d.log.Info("profiles loaded", "dir", d.cfg.Profiles.Dir, "machines", store.Set().Len(), "unknown", store.Unknown())
	d.servers = append(d.servers, server{"profiles watcher", store.Watch})
	return nil
}

// schematicResolver returns the Image Factory client that turns schematic
// names into IDs, remembering them under state.dir so that rendering works
// without the factory. It registers no metrics: the asset cache's client
// does.
func schematicResolver(cfg *config.Config, log *slog.Logger) (*factory.Client, error) {
	return factory.New(factory.Options{URL: cfg.Factory.URL, StateDir: cfg.State.Dir, Logger: log})
}

// profileOptions are the options profiles are loaded with, the same for
// the daemon, `render` and `validate`, so that all three give the same
// bytes.
func profileOptions(cfg *config.Config, r profiles.SchematicResolver) profiles.Options {
	return profiles.Options{Dir: cfg.Profiles.Dir, Schematics: r, FactoryURL: cfg.Factory.URL, BaseURL: bootURL(cfg.Advertise, cfg.HTTP.Listen)}
}

// bootURL is the boot HTTP server as nodes reach it,
// http://ADVERTISE:PORT, with the port of listen (a configured or a bound
// address), or "" when either is unknown.
func bootURL(advertise, listen string) string {
	_, port, err := net.SplitHostPort(listen)
	if advertise == "" || err != nil || port == "" {
		return ""
	}
	return "http://" + net.JoinHostPort(advertise, port)
}
