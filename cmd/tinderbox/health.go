package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/health"
	"github.com/tinderbox-boot/tinderbox/internal/ipxe"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
)

// The state directory's write probe: every probeEvery, a 4 KiB file is
// written, synced and removed; one that takes longer than probeDeadline
// (a frozen disk) makes the state check fail at once, without waiting for
// a machine's write to hang. probeDeadline is under the state store's
// own write timeout (10 s), so the probe tells first.
const (
	probeEvery    = 10 * time.Second
	probeDeadline = 5 * time.Second
)

// checks are the daemon's health checks (docs/api.md, "Health"):
//
//   - state: down when the store is degraded (corrupt, or a write stuck)
//     or state.dir cannot be written within probeDeadline (full,
//     read-only, frozen): boots record state, and fail without it.
//     Degraded when the etcd backend has no quorum (state.ErrUnavailable):
//     machines whose state this replica holds keep booting from its
//     cache, transitions that need a write are refused, and the check
//     clears by itself once etcd answers.
//   - profiles: degraded when the files do not load and the last good
//     set serves (machines boot as before; the edit needs fixing).
//   - listeners: down when a configured socket's server is not running,
//     or the daemon is stopping.
//   - ipxe: degraded when boot binaries are missing from ipxe.dir
//     (firmware of that kind cannot chain-load; iPXE ROMs still boot).
func (d *daemon) checks(st state.Backend, probe *health.DiskProbe, ps *profiles.Store, ipxeDir string, required []string) []health.Check {
	return []health.Check{
		{Name: "state", Run: func() (api.HealthStatus, string) {
			if err := st.Health(); errors.Is(err, state.ErrUnavailable) {
				return api.HealthDegraded, err.Error()
			} else if err != nil {
				return api.HealthDown, err.Error()
			}
			if err := probe.Err(); err != nil {
				return api.HealthDown, "state.dir: " + err.Error()
			}
			return api.HealthOK, ""
		}},
		{Name: "profiles", Run: func() (api.HealthStatus, string) {
			s := ps.Status()
			if s.Err == nil {
				return api.HealthOK, fmt.Sprintf("%d machines", s.Machines)
			}
			first := s.Err.Error()
			if len(s.Problems) > 0 {
				first = s.Problems[0]
			}
			return api.HealthDegraded, fmt.Sprintf("the files do not load (%d problems; first: %s); serving the set loaded at %s (%d machines)",
				max(len(s.Problems), 1), first, s.LoadedAt.UTC().Format(time.RFC3339), s.Machines)
		}},
		{Name: "listeners", Run: func() (api.HealthStatus, string) {
			if d.stopping.Load() {
				return api.HealthDown, "stopping"
			}
			var down, up []string
			for _, s := range d.servers {
				if !s.listener {
					continue
				}
				if s.up.Load() {
					up = append(up, s.name)
				} else {
					down = append(down, s.name)
				}
			}
			if len(down) > 0 {
				return api.HealthDown, "not serving: " + strings.Join(down, ", ")
			}
			return api.HealthOK, strings.Join(up, ", ")
		}},
		{Name: "ipxe", Run: func() (api.HealthStatus, string) {
			if missing := ipxe.Missing(ipxeDir, required...); len(missing) > 0 {
				return api.HealthDegraded, fmt.Sprintf("missing from %s: %s (%s)", ipxeDir, strings.Join(missing, ", "), ipxe.InstallHint)
			}
			return api.HealthOK, strings.Join(required, ", ")
		}},
	}
}
