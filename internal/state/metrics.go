package state

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/metrics"
)

// metricSet holds the store's metrics (tinderbox_state_…).
type metricSet struct {
	corruptions *prometheus.CounterVec
	backups     *prometheus.CounterVec
	restores    *prometheus.CounterVec
	lastBackup  prometheus.Gauge
}

func newMetrics() *metricSet {
	ns := metrics.Namespace
	m := &metricSet{
		corruptions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "state", Name: "corruptions_total",
			Help: "Times the state database was found corrupt, by where: open (the check at start), backup (a backup's copy failed its check), runtime (bbolt panicked in a transaction).",
		}, []string{"where"}),
		backups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "state", Name: "backups_total",
			Help: "Backups of the state database, by result (ok, error).",
		}, []string{"result"}),
		restores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "state", Name: "restores_total",
			Help: "Corrupt state databases replaced at start, by result: ok (restored from the newest good backup), error (none usable: tinderbox did not start).",
		}, []string{"result"}),
		lastBackup: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "state", Name: "last_backup_timestamp_seconds",
			Help: "When the last good backup of the state database was written, in seconds since the epoch; 0 when none was since start.",
		}),
	}
	for _, w := range []string{"open", "backup", "runtime"} {
		m.corruptions.WithLabelValues(w)
	}
	for _, r := range []string{"ok", "error"} {
		m.backups.WithLabelValues(r)
		m.restores.WithLabelValues(r)
	}
	return m
}

// register registers the store's metrics, with gauges read from s.
func (s *Store) register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{
		s.metrics.corruptions, s.metrics.backups, s.metrics.restores, s.metrics.lastBackup,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "state", Name: "unreadable_records",
			Help: "Machine records that do not decode: left out of lists until forgotten (the log names them).",
		}, func() float64 { return float64(len(s.Unreadable())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "state", Name: "healthy",
			Help: "1 when the state database serves reads and writes, 0 when it is degraded (found corrupt while serving) or a write is stuck.",
		}, func() float64 {
			if s.Health() != nil {
				return 0
			}
			return 1
		}),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("state: metrics: %w", err)
		}
	}
	return nil
}

// Backups calls Backup each time tick delivers, until ctx is cancelled;
// it then returns nil. A failed backup is logged and counted, and tried
// again at the next tick. The daemon runs it with a time.Ticker of
// state.backup.interval.
func (s *Store) Backups(ctx context.Context, tick <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			if path, err := s.Backup(); err != nil {
				s.log.Error("state: backup", "err", err)
			} else {
				s.log.Debug("state database backed up", "file", path)
			}
		}
	}
}
