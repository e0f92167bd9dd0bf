// Package panics contains the panics raised while one packet, request or
// transfer is handled, so that a bug in one handler (or in a hook it calls)
// costs that one answer and not the whole daemon: the panic is recovered,
// counted in tinderbox_panics_total{where}, and logged at Error with its
// stack, once per site and panic value.
package panics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/metrics"
)

// Counter is tinderbox_panics_total on one registry. It is safe for
// concurrent use.
type Counter struct {
	vec *prometheus.CounterVec
}

// Register returns the panics counter of reg, registering it on first use:
// every server registers its own site on the registry it is given, and
// they share one metric family. A nil reg counts nothing.
func Register(reg prometheus.Registerer) *Counter {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "panics_total",
		Help: "Panics recovered in a packet, request or transfer handler, by where (dhcp, tftp, talos_events, talos_logs, http_boot, http_admin); the handler's answer was lost, the server kept serving.",
	}, []string{"where"})
	if reg == nil {
		return &Counter{vec: vec}
	}
	if err := reg.Register(vec); err != nil {
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			// Only a programming error (a clashing metric) gets here.
			panic(fmt.Sprintf("panics: register: %v", err))
		}
		vec = already.ExistingCollector.(*prometheus.CounterVec)
	}
	return &Counter{vec: vec}
}

// Site is one place where panics are recovered. Its series exists (at 0)
// from the moment the site is made, so an alert on its rate sees it. A
// nil *Site recovers and logs but counts nothing.
type Site struct {
	where string
	n     prometheus.Counter

	mu   sync.Mutex
	seen map[string]struct{}
}

// maxSeen bounds the panic values a site remembers having logged; beyond
// it the memory is cleared, so a flood of distinct values cannot grow it.
const maxSeen = 64

// Site returns the site named where, a bounded metric label value. A nil
// Counter gives a site that counts nothing.
func (c *Counter) Site(where string) *Site {
	s := &Site{where: where}
	if c != nil {
		s.n = c.vec.WithLabelValues(where)
	}
	return s
}

// Recover, deferred directly (defer site.Recover(log, attrs...)), recovers
// a panic of the function that deferred it, counts it, and logs it: at
// Error with the stack the first time this site sees a panic value, at
// Debug after that (the counter still counts each one). attrs name what was
// being handled (remote, file, …). A handler that must let some panics
// through (net/http's http.ErrAbortHandler) recovers itself and calls
// Caught.
func (s *Site) Recover(log *slog.Logger, attrs ...slog.Attr) {
	if v := recover(); v != nil {
		s.Caught(v, log, attrs...)
	}
}

// Caught counts and logs v, a value the caller recovered, as Recover does.
// It returns the error a handler can report for the lost answer.
func (s *Site) Caught(v any, log *slog.Logger, attrs ...slog.Attr) error {
	if s == nil {
		logPanic(log, slog.LevelError, "", v, true, attrs)
		return fmt.Errorf("handler panicked: %v", v)
	}
	err := fmt.Errorf("%s: handler panicked: %v", s.where, v)
	if s.n != nil {
		s.n.Inc()
	}
	level, stack := slog.LevelDebug, false
	if s.first(fmt.Sprint(v)) {
		level, stack = slog.LevelError, true
	}
	logPanic(log, level, s.where, v, stack, attrs)
	return err
}

// first says whether the site has not logged the panic value key yet, and
// remembers it.
func (s *Site) first(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[key]; ok {
		return false
	}
	if s.seen == nil || len(s.seen) >= maxSeen {
		s.seen = map[string]struct{}{}
	}
	s.seen[key] = struct{}{}
	return true
}

func logPanic(log *slog.Logger, level slog.Level, where string, v any, stack bool, attrs []slog.Attr) {
	if log == nil {
		return
	}
	all := append([]slog.Attr{slog.String("where", where), slog.Any("panic", v)}, attrs...)
	if stack {
		all = append(all, slog.String("stack", string(debug.Stack())))
	}
	log.LogAttrs(context.Background(), level, "panic recovered: the handler's answer is lost, serving goes on", all...)
}
