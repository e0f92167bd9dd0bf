package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/factory"
)

// addAssets opens the asset cache under cache.dir, fetching from the Image
// Factory at factory.url, and serves it at /assets/{schematic}/{version}/{file}
// on the boot HTTP server (mounted by addFlow, which records what it sends).
// The cache is closed (fetches in flight cancelled, their partial files
// removed) when the daemon stops.
func (d *daemon) addAssets(_ context.Context) error {
	fc, c, err := openCache(d.cfg.Factory.URL, d.cfg.State.Dir, d.cfg.Cache.Dir, int64(d.cfg.Cache.MaxSize), d.log, d.registry)
	if err != nil {
		return err
	}
	d.closers = append(d.closers, c.Close)
	d.factory, d.cache = fc, c
	d.log.Info("asset cache ready", "dir", c.Dir(), "entries", len(c.List()), "size", c.Size(),
		"max_size", d.cfg.Cache.MaxSize.String(), "factory", fc.URL())
	return nil
}

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
