// Package health judges whether tinderbox can boot a machine now, and
// answers the probes that ask: GET /livez (the process answers), GET
// /healthz (a status line, 503 when down) and GET /readyz (every check, as
// JSON). Checks never block: what needs the disk is probed in the
// background (DiskProbe) and read here.
package health

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/tinderbox-boot/tinderbox/pkg/api"
)

// Check is one named check. Run must not block: it reads state that
// something else keeps current.
type Check struct {
	Name string
	Run  func() (api.HealthStatus, string)
}

// Checker runs its checks on every call. It is safe for concurrent use
// when its checks are.
type Checker struct {
	checks []Check
}

// New returns a checker running checks, in order.
func New(checks ...Check) *Checker { return &Checker{checks: checks} }

// Report runs every check; its status is the worst of theirs.
func (c *Checker) Report() api.Health {
	h := api.Health{Status: api.HealthOK, Checks: make([]api.HealthCheck, 0, len(c.checks))}
	for _, ch := range c.checks {
		st, detail := ch.Run()
		h.Checks = append(h.Checks, api.HealthCheck{Name: ch.Name, Status: st, Detail: detail})
		h.Status = Worst(h.Status, st)
	}
	return h
}

// Worst is the worse of a and b.
func Worst(a, b api.HealthStatus) api.HealthStatus {
	if rank(b) > rank(a) {
		return b
	}
	return a
}

func rank(s api.HealthStatus) int {
	switch s {
	case api.HealthOK:
		return 0
	case api.HealthDegraded:
		return 1
	}
	return 2 // down, or a status nobody knows: assume the worst
}

// Code is the HTTP status a probe gets for s: 200 while machines can boot
// (ok, degraded), 503 when they cannot (down).
func Code(s api.HealthStatus) int {
	if rank(s) >= rank(api.HealthDown) {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}

// Healthz answers one line: "ok", or the status and every check that is
// not ok ("down: state: …; listeners: …"), with Code's status.
func (c *Checker) Healthz(w http.ResponseWriter, _ *http.Request) {
	h := c.Report()
	line := string(h.Status)
	var bad []string
	for _, ch := range h.Checks {
		if ch.Status != api.HealthOK {
			bad = append(bad, ch.Name+": "+ch.Detail)
		}
	}
	if len(bad) > 0 {
		line += ": " + strings.Join(bad, "; ")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(Code(h.Status))
	fmt.Fprintln(w, line)
}

// Readyz answers the report as JSON (api.Health), with Code's status.
func (c *Checker) Readyz(w http.ResponseWriter, _ *http.Request) {
	h := c.Report()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(Code(h.Status))
	_ = json.NewEncoder(w).Encode(h)
}

// Livez answers 200 "ok" whenever the HTTP server answers at all: it
// checks nothing else, so that a liveness probe restarts a process that
// has stopped serving, not one whose disk or profiles are bad (a restart
// mends neither).
func Livez(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}
