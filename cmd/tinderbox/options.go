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

// newFactory builds the Image Factory client assets are fetched with. reg
// may be nil (the CLI registers no metrics).
func newFactory(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*factory.Client, error) {
	return factory.New(factory.Options{URL: cfg.Factory.URL, StateDir: cfg.State.Dir, Logger: log, Registerer: reg})
}

// openCache opens the asset cache of cfg on fc. scope is what the asset
// route serves, fetches and keeps longest; nil (the CLI) wants everything.
// reg may be nil.
func openCache(cfg *config.Config, fc *factory.Client, scope cache.Scope, log *slog.Logger, reg prometheus.Registerer) (*cache.Cache, error) {
	c, err := cache.Open(cache.Options{
		Dir: cfg.Cache.Dir, MaxSize: int64(cfg.Cache.MaxSize), Upstream: cache.FromFactory(fc), Scope: scope,
		Logger: log, Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("%w (cache.dir)", err)
	}
	return c, nil
}

// assetScope is the daemon's asset scope: what the profiles store serves
// boots, and cfg's cache.allow.
func assetScope(cfg *config.Config, store *profiles.Store) (*cache.ProfileScope, error) {
	allow := make([]cache.Target, 0, len(cfg.Cache.Allow))
	for _, im := range cfg.Cache.Allow {
		allow = append(allow, cache.Target{Schematic: im.Schematic, Version: im.Version, Arch: im.Arch})
	}
	s, err := cache.NewProfileScope(store, allow)
	if err != nil {
		return nil, fmt.Errorf("cache.allow: %w", err)
	}
	return s, nil
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
