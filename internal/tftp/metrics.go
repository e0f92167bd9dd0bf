package tftp

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/metrics"
	"github.com/tinderbox-boot/tinderbox/internal/panics"
)

// Result is how a request ended; it is the result label of the metrics.
type Result string

// The results a request can have.
const (
	// ResultOK: the whole file was sent and acknowledged.
	ResultOK Result = "ok"
	// ResultProbe: the client asked for tsize and stopped after the OACK,
	// as EDK2 does before every real download (docs/protocol.md, "TFTP").
	ResultProbe Result = "probe"
	// ResultNotFound: no such file in ipxe.dir.
	ResultNotFound Result = "not_found"
	// ResultRefused: a write, a non-octet mode, or a name that is refused
	// (traversal, absolute, symlink out, NUL, too long, not a regular file).
	ResultRefused Result = "refused"
	// ResultBadRequest: a packet on the server port that is not a
	// well-formed request.
	ResultBadRequest Result = "bad_request"
	// ResultBusy: too many transfers already in flight.
	ResultBusy Result = "busy"
	// ResultClientBusy: the client's address already has as many
	// transfers running as Options.MaxPerClient allows.
	ResultClientBusy Result = "client_busy"
	// ResultTimeout: the client stopped acknowledging.
	ResultTimeout Result = "timeout"
	// ResultAborted: the client sent an error or went away, or the server
	// shut down mid-transfer.
	ResultAborted Result = "aborted"
	// ResultError: the server could not read the file or send.
	ResultError Result = "error"
)

var allResults = []Result{
	ResultOK, ResultProbe, ResultNotFound, ResultRefused, ResultBadRequest,
	ResultBusy, ResultClientBusy, ResultTimeout, ResultAborted, ResultError,
}

// Metrics are the TFTP server's Prometheus collectors.
type Metrics struct {
	transfers   *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	sent        prometheus.Counter
	retransmits prometheus.Counter
	inFlight    prometheus.Gauge
	panics      *panics.Site
}

// NewMetrics registers the TFTP metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "tftp", Name: "transfers_total",
			Help: "TFTP requests, by result (ok, probe, not_found, refused, bad_request, busy, client_busy, timeout, aborted, error).",
		}, []string{"result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: "tftp", Name: "transfer_duration_seconds",
			Help: "Time from a read request to the end of its transfer, by result.",
			// From a loopback probe (~1 ms) to a 1 MB iPXE over a lossy link
			// in lockstep (tens of seconds).
			Buckets: []float64{.001, .005, .025, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"result"}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "tftp", Name: "sent_bytes_total",
			Help: "File bytes sent in DATA packets, retransmissions included.",
		}),
		retransmits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "tftp", Name: "retransmitted_packets_total",
			Help: "DATA and OACK packets sent again after a timeout or a client's repeated ACK.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "tftp", Name: "transfers_in_flight",
			Help: "Transfers in progress.",
		}),
	}
	for _, r := range allResults {
		m.transfers.WithLabelValues(string(r))
	}
	reg.MustRegister(m.transfers, m.duration, m.sent, m.retransmits, m.inFlight)
	m.panics = panics.Register(reg).Site("tftp")
	return m
}
