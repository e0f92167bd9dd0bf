package kmsglog

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/metrics"
	"github.com/tinderbox-boot/tinderbox/internal/panics"
)

// Transport is how a line arrived; it is the transport label.
type Transport string

// The transports Talos' log sender speaks.
const (
	TCP Transport = "tcp"
	UDP Transport = "udp"
)

// DropReason is why a line was not handed to the Sink; it is the reason
// label of the dropped-lines metric.
type DropReason string

// The reasons a line is dropped.
const (
	// DropRateLimited: its source was over its rate (Options.Rate, Burst).
	DropRateLimited DropReason = "rate_limited"
	// DropGarbage: not a JSON object with a string msg.
	DropGarbage DropReason = "garbage"
	// DropOversized: longer than MaxLine and cut before its message.
	DropOversized DropReason = "oversized"
)

// metricSet holds the receiver's collectors.
type metricSet struct {
	received    *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	truncated   prometheus.Counter
	connections *prometheus.CounterVec
	closed      *prometheus.CounterVec
	open        prometheus.GaugeFunc
	panics      *panics.Site
}

// The results of an incoming TCP connection, besides the refusals.
const connAccepted = "accepted"

// The reasons a TCP connection ends.
const (
	closedEOF      = "eof"
	closedIdle     = "idle"
	closedError    = "error"
	closedShutdown = "shutdown"
)

func newMetrics(reg prometheus.Registerer, openConns func() float64) *metricSet {
	const sub = "kmsglog"
	m := &metricSet{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "lines_received_total",
			Help: "Log lines received from Talos nodes (newline-separated over TCP, one per UDP datagram), by transport; dropped ones included.",
		}, []string{"transport"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "lines_dropped_total",
			Help: "Log lines not kept, by reason (rate_limited, garbage, oversized).",
		}, []string{"reason"}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "lines_truncated_total",
			Help: "Log lines longer than the line limit, kept cut.",
		}),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "connections_total",
			Help: "TCP connections from Talos nodes, by result (accepted, too_many, too_many_from_source).",
		}, []string{"result"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "connections_closed_total",
			Help: "Accepted TCP connections that ended, by reason (eof, idle, error, shutdown).",
		}, []string{"reason"}),
		open: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "connections_open",
			Help: "TCP connections open now.",
		}, openConns),
	}
	for _, t := range []Transport{TCP, UDP} {
		m.received.WithLabelValues(string(t))
	}
	for _, r := range []DropReason{DropRateLimited, DropGarbage, DropOversized} {
		m.dropped.WithLabelValues(string(r))
	}
	for _, r := range []string{connAccepted, string(refusedTotal), string(refusedPerSource)} {
		m.connections.WithLabelValues(r)
	}
	for _, r := range []string{closedEOF, closedIdle, closedError, closedShutdown} {
		m.closed.WithLabelValues(r)
	}
	reg.MustRegister(m.received, m.dropped, m.truncated, m.connections, m.closed, m.open)
	m.panics = panics.Register(reg).Site("talos_logs")
	return m
}
