package main

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/internal/factory"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
)

// openCache builds the factory client and opens the cache on it. reg may be
// nil (the CLI registers no metrics).
func openCache(factoryURL, stateDir, cacheDir string, maxSize int64, log *slog.Logger, reg prometheus.Registerer) (*factory.Client, *cache.Cache, error) {
	fc, err := factory.New(factory.Options{URL: factoryURL, StateDir: stateDir, Logger: log, Registerer: reg})
	if err != nil {
		return nil, nil, err
	}
	c, err := cache.Open(cache.Options{Dir: cacheDir, MaxSize: maxSize, Upstream: cache.FromFactory(fc), Logger: log, Registerer: reg})
	if err != nil {
		return nil, nil, fmt.Errorf("%w (cache.dir)", err)
	}
	return fc, c, nil
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
