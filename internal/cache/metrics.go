package cache

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/metrics"
)

// metricSet holds the cache's metrics (tinderbox_cache_…) and those of its
// upstream downloads (tinderbox_factory_…).
type metricSet struct {
	lookups       *prometheus.CounterVec
	servedBytes   prometheus.Counter
	evictions     prometheus.Counter
	size          prometheus.Gauge
	entries       prometheus.Gauge
	fetches       *prometheus.CounterVec
	fetchedBytes  prometheus.Counter
	fetchDuration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metricSet, error) {
	ns := metrics.Namespace
	m := &metricSet{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "cache", Name: "lookups_total",
			Help: "Asset lookups, by result: hit (served from disk), miss (fetched, or joined a fetch in flight), negative (a factory 4xx answer remembered), refused (an asset no profile or cache.allow names).",
		}, []string{"result"}),
		servedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "cache", Name: "served_bytes_total",
			Help: "Bytes of assets sent to clients.",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "cache", Name: "evictions_total",
			Help: "Entries evicted to keep the cache within cache.maxSize, or pruned.",
		}),
		size: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "cache", Name: "size_bytes",
			Help: "Total size of the cached assets.",
		}),
		entries: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "cache", Name: "entries",
			Help: "Number of cached assets.",
		}),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "factory", Name: "fetches_total",
			Help: "Asset downloads from the Image Factory, by result: ok, http_error, timeout, network, size_mismatch, invalid, disk, canceled.",
		}, []string{"result"}),
		fetchedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "factory", Name: "fetched_bytes_total",
			Help: "Bytes of assets downloaded from the Image Factory and cached.",
		}),
		fetchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "factory", Name: "fetch_duration_seconds",
			Help: "Time to download and cache an asset from the Image Factory.",
			// From a cmdline file on a LAN mirror to a 100 MB initramfs on a slow uplink.
			Buckets: []float64{.05, .25, 1, 5, 15, 60, 180, 600},
		}),
	}
	for _, r := range []string{"hit", "miss", "negative", "refused"} {
		m.lookups.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.lookups, m.servedBytes, m.evictions, m.size, m.entries, m.fetches, m.fetchedBytes, m.fetchDuration} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("cache: metrics: %w", err)
			}
		}
	}
	return m, nil
}
