package talosevents

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/metrics"
	"github.com/tinderbox-boot/tinderbox/internal/panics"
)

// result is how a Publish request ended; it is the result label of
// tinderbox_talos_events_requests_total.
type result string

const (
	// resultOK: the request was decoded and the recorder took it.
	resultOK result = "ok"
	// resultUnrecorded: the recorder could not keep the event (its state
	// store could not write); it was answered Unavailable, for Talos to
	// send it again.
	resultUnrecorded result = "unrecorded"
	// resultMalformed: the request or its payload was not valid protobuf
	// of the expected shape; it was answered InvalidArgument.
	resultMalformed result = "malformed"
)

// Kinds of event, the type label of tinderbox_talos_events_received_total.
var allKinds = []string{
	"sequence", "phase", "task", "machine_status", "service_state",
	"config_load_error", "config_validation_error", "address", "unknown",
}

// kindOf names a decoded message for the type label.
func kindOf(msg any) string {
	switch msg.(type) {
	case SequenceEvent:
		return "sequence"
	case PhaseEvent:
		return "phase"
	case TaskEvent:
		return "task"
	case MachineStatusEvent:
		return "machine_status"
	case ServiceStateEvent:
		return "service_state"
	case ConfigLoadErrorEvent:
		return "config_load_error"
	case ConfigValidationErrorEvent:
		return "config_validation_error"
	case AddressEvent:
		return "address"
	}
	return "unknown"
}

// Metrics are the event sink's Prometheus collectors.
type Metrics struct {
	requests *prometheus.CounterVec
	events   *prometheus.CounterVec
	panics   *panics.Site
}

// NewMetrics registers the event sink's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "talos_events", Name: "requests_total",
			Help: "Publish requests from Talos nodes, by result (ok, unrecorded, malformed). Requests over the size limit are refused by gRPC before they are counted.",
		}, []string{"result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "talos_events", Name: "received_total",
			Help: "Talos events received, by type (sequence, phase, task, machine_status, service_state, config_load_error, config_validation_error, address, unknown).",
		}, []string{"type"}),
	}
	for _, r := range []result{resultOK, resultUnrecorded, resultMalformed} {
		m.requests.WithLabelValues(string(r))
	}
	for _, k := range allKinds {
		m.events.WithLabelValues(k)
	}
	reg.MustRegister(m.requests, m.events)
	m.panics = panics.Register(reg).Site("talos_events")
	return m
}
