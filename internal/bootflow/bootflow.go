// Package bootflow joins the machine-state store, the profiles and the
// asset cache into what a network-booting node is served (docs/api.md,
// "Boot HTTP"; docs/protocol.md, "Machine states"):
// the generic /boot.ipxe, each machine's /ipxe script, and its machine
// config at /config/{mac}, guarded by a per-machine token. It also turns
// what the DHCP, TFTP and asset servers report into machine events.
package bootflow

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/boot"
	"github.com/tinderbox-boot/tinderbox/internal/metrics"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Profiles is the profile set as the boot flow consults it;
// *profiles.Store implements it. Implementations must be safe for
// concurrent use.
type Profiles interface {
	// Machine returns the effective profile of mac; ok is false for a
	// machine with no profile.
	Machine(mac machine.MAC) (p profiles.Profile, ok bool)
	// Unknown returns the policy for machines with no profile.
	Unknown() machine.Unknown
	// Maintenance returns the Talos version, schematic and arch a
	// maintenance boot uses (any may be empty).
	Maintenance() profiles.Talos
	// Render returns the machine config of mac, exactly as
	// `tinderbox render` prints it.
	Render(ctx context.Context, mac machine.MAC) ([]byte, error)
}

// Cmdlines gives the Image Factory's kernel command line for PXE.
type Cmdlines interface {
	// Cmdline returns cmdline-metal-ARCH of the schematic and version.
	Cmdline(ctx context.Context, schematicID, version string, arch machine.Arch) (string, error)
}

// Options configures New.
type Options struct {
	// BaseURL is the boot HTTP server as nodes reach it: http://ADVERTISE:PORT.
	BaseURL string
	// LocalBoot is config ipxe.localBoot: exit | sanboot | notfound.
	LocalBoot string
	Store     *state.Store
	Profiles  Profiles
	Cmdlines  Cmdlines
	Logger    *slog.Logger
	// Registerer receives the boot-step and machines-by-state metrics.
	Registerer prometheus.Registerer
}

// Flow serves the node-facing endpoints. It is safe for concurrent use.
type Flow struct {
	opts  Options
	log   *slog.Logger
	steps *prometheus.CounterVec

	// ips maps a node's IP to its MAC, learnt from DHCP and script
	// requests, so TFTP and asset transfers (which only know the peer's
	// address) land in the right machine's log.
	mu  sync.Mutex
	ips map[string]machine.MAC
}

// New returns a Flow and registers its metrics.
func New(opts Options) *Flow {
	f := &Flow{
		opts: opts,
		log:  opts.Logger,
		ips:  map[string]machine.MAC{},
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "boot", Name: "steps_total",
			Help: "Boot steps served to machines, by step (dhcp, tftp, script, asset, config, local_boot) and result.",
		}, []string{"step", "result"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(f.steps, &machinesCollector{store: opts.Store})
	}
	return f
}

// Mount adds /boot.ipxe, /ipxe and /config/{mac} to r.
func (f *Flow) Mount(r chi.Router) {
	r.Get("/boot.ipxe", f.serveGeneric)
	r.Get("/ipxe", f.serveScript)
	r.Get("/config/{mac}", f.serveConfig)
}

func (f *Flow) serveGeneric(w http.ResponseWriter, _ *http.Request) {
	writeScript(w, http.StatusOK, boot.GenericScript(f.opts.BaseURL))
}

func writeScript(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// httpError answers with a one-line plain-text reason, which iPXE prints.
func httpError(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "tinderbox: "+format+"\n", args...)
}

// ScriptResult is what a script request came to, for tests and logs.
type ScriptResult struct {
	Action boot.Action
	State  machine.State
	Body   string
	Status int
}

// Script decides and writes the iPXE script for mac (as `tinderbox script`
// and GET /ipxe do), recording the request in the machine's state when
// record is true. buildarch is iPXE's ${buildarch}; remoteIP may be empty.
// The error comes with the HTTP status it is answered with.
func (f *Flow) Script(ctx context.Context, mac machine.MAC, uuid, buildarch, remoteIP string, record bool) (ScriptResult, error) {
	prof, known := f.opts.Profiles.Machine(mac)
	policy := f.opts.Profiles.Unknown()
	arch, _ := machine.ArchFromIPXE(buildarch)
	if known && prof.Talos.Arch != "" {
		arch = prof.Talos.Arch
	}

	var m state.Machine
	apply := func(m *state.Machine, _ bool) error {
		m.State = state.Reconcile(m.State, known, prof.Install)
		m.ScriptServed()
		if arch != "" {
			m.Arch = arch
		}
		if uuid != "" {
			m.UUID = uuid
		}
		if remoteIP != "" {
			m.IP = remoteIP
		}
		return nil
	}
	var err error
	if record {
		if !known && policy == machine.UnknownIgnore {
			// Ignored machines leave no trace, as with DHCP.
			m = state.Machine{MAC: mac, State: machine.Discovered}
		} else if m, err = f.opts.Store.Update(mac, apply); err != nil {
			return ScriptResult{Status: http.StatusInternalServerError}, err
		}
	} else {
		cur, _, err := f.opts.Store.Get(mac)
		if err != nil {
			return ScriptResult{Status: http.StatusInternalServerError}, err
		}
		m = cur
		m.MAC = mac
		_ = apply(&m, true)
	}

	res := ScriptResult{Action: boot.Decide(m.State, known, policy), State: m.State, Status: http.StatusOK}
	switch res.Action {
	case boot.Ignore:
		res.Status, res.Body = http.StatusNotFound, "tinderbox: no profile for "+mac.String()+", and unknown machines are ignored\n"
	case boot.LocalBoot:
		var notFound bool
		if res.Body, notFound = boot.LocalScript(f.opts.LocalBoot, mac); notFound {
			res.Status = http.StatusNotFound
		}
	case boot.Netboot, boot.Maintenance:
		hostname, talos, args := prof.Hostname, prof.Talos, prof.KernelArgs
		if res.Action == boot.Maintenance {
			hostname, talos, args = "", f.opts.Profiles.Maintenance(), nil
		}
		if talos.Arch == "" {
			talos.Arch = arch
		}
		if talos.Arch == "" {
			return ScriptResult{Status: http.StatusBadRequest}, fmt.Errorf("machine %s: arch %q is not amd64 or arm64, and its profile names none", mac, buildarch)
		}
		if talos.Version == "" || talos.SchematicID == "" {
			return ScriptResult{Status: http.StatusInternalServerError}, fmt.Errorf("machine %s: no Talos version or schematic to boot (for unknown machines, set talos.version and talos.schematic in defaults.yaml)", mac)
		}
		cmdline, err := f.opts.Cmdlines.Cmdline(ctx, talos.SchematicID, talos.Version, talos.Arch)
		if err != nil {
			return ScriptResult{Status: http.StatusBadGateway}, fmt.Errorf("kernel command line for %s (Talos %s, schematic %s): %w", mac, talos.Version, short(talos.SchematicID), err)
		}
		params := boot.NetbootParams{
			BaseURL: f.opts.BaseURL, MAC: mac, UUID: m.UUID, Hostname: hostname,
			SchematicID: talos.SchematicID, Version: talos.Version, Arch: talos.Arch,
			Cmdline: cmdline, KernelArgs: args,
		}
		if res.Action == boot.Netboot {
			params.ConfigURL = f.ConfigURL(m)
		}
		if res.Body, err = boot.NetbootScript(params); err != nil {
			return ScriptResult{Status: http.StatusInternalServerError}, fmt.Errorf("machine %s: %w", mac, err)
		}
	}
	return res, nil
}

// ConfigURL returns the talos.config URL of the machine, token included.
func (f *Flow) ConfigURL(m state.Machine) string {
	return f.opts.BaseURL + "/config/" + m.MAC.Dashed() + "?token=" + f.opts.Store.Token(m)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}

func (f *Flow) serveScript(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ip := remoteIP(r)
	mac, err := machine.ParseMAC(q.Get("mac"))
	if err != nil {
		f.steps.WithLabelValues("script", "error").Inc()
		f.log.Warn("boot script refused", "mac", q.Get("mac"), "remote", ip, "status", http.StatusBadRequest, "err", err)
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	res, err := f.Script(r.Context(), mac, q.Get("uuid"), q.Get("arch"), ip, true)
	if err != nil {
		f.steps.WithLabelValues("script", "error").Inc()
		level := slog.LevelWarn
		if res.Status >= 500 {
			level = slog.LevelError
		}
		f.log.Log(r.Context(), level, "boot script refused", "mac", q.Get("mac"), "remote", ip, "status", res.Status, "err", err)
		httpError(w, res.Status, "%v", err)
		return
	}
	if ip != "" && res.Action != boot.Ignore {
		f.learnIP(ip, mac)
	}
	f.steps.WithLabelValues("script", string(res.Action)).Inc()
	if res.Action != boot.Ignore {
		evs := []machine.Event{f.opts.Store.Event(machine.EventScript, string(res.Action), 0)}
		if res.Action == boot.LocalBoot {
			f.steps.WithLabelValues("local_boot", "ok").Inc()
			evs = append(evs, f.opts.Store.Event(machine.EventLocalBoot, f.opts.LocalBoot, 0))
		}
		f.record(mac, evs...)
	}
	f.log.Info("boot script served", "mac", mac, "remote", ip, "action", res.Action, "state", res.State)
	writeScript(w, res.Status, res.Body)
}

func (f *Flow) serveConfig(w http.ResponseWriter, r *http.Request) {
	ip := remoteIP(r)
	mac, err := machine.ParseMAC(chi.URLParam(r, "mac"))
	if err != nil {
		f.steps.WithLabelValues("config", "bad_request").Inc()
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	m, ok, err := f.opts.Store.Get(mac)
	if err != nil {
		f.steps.WithLabelValues("config", "error").Inc()
		f.log.Error("config: state lookup", "mac", mac, "err", err)
		httpError(w, http.StatusInternalServerError, "state lookup failed")
		return
	}
	token := r.URL.Query().Get("token")
	if !ok || !f.opts.Store.CheckToken(m, token) {
		f.steps.WithLabelValues("config", "forbidden").Inc()
		reason := "wrong token"
		if token == "" {
			reason = "no token"
		}
		if !ok {
			reason = "machine never booted through tinderbox"
		}
		f.log.Warn("config refused", "mac", mac, "remote", ip, "reason", reason)
		if ok {
			f.event(mac, machine.EventDenied, reason, 0)
		}
		httpError(w, http.StatusForbidden, "config for %s refused: %s", mac, reason)
		return
	}
	if !m.ConfigAllowed() {
		f.steps.WithLabelValues("config", "forbidden").Inc()
		f.log.Warn("config refused", "mac", mac, "remote", ip, "reason", "state "+string(m.State))
		f.event(mac, machine.EventDenied, "state "+string(m.State), 0)
		httpError(w, http.StatusForbidden, "config for %s refused: machine is %s (re-arm it with `tinderbox machines reinstall %s`)", mac, m.State, mac)
		return
	}
	body, err := f.opts.Profiles.Render(r.Context(), mac)
	if err != nil {
		f.steps.WithLabelValues("config", "error").Inc()
		f.log.Error("config: render", "mac", mac, "err", err)
		httpError(w, http.StatusInternalServerError, "rendering the config of %s failed; see `tinderbox validate`", mac)
		return
	}
	if _, err := f.opts.Store.Update(mac, func(m *state.Machine, _ bool) error {
		m.ConfigServed()
		if ip != "" {
			m.IP = ip
		}
		m.Events = append(m.Events, f.opts.Store.Event(machine.EventConfig, "", int64(len(body))))
		return nil
	}); err != nil {
		f.log.Error("config: state update", "mac", mac, "err", err)
	}
	f.steps.WithLabelValues("config", "ok").Inc()
	f.log.Info("machine config served", "mac", mac, "remote", ip, "bytes", len(body))
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// event appends one event to a machine's log.
func (f *Flow) event(mac machine.MAC, kind machine.EventKind, detail string, bytes int64) {
	f.record(mac, f.opts.Store.Event(kind, detail, bytes))
}

// record appends events to a machine's log in one transaction; failures are
// logged, since the request they describe has been answered already.
func (f *Flow) record(mac machine.MAC, evs ...machine.Event) {
	if _, err := f.opts.Store.Update(mac, func(m *state.Machine, _ bool) error {
		m.Events = append(m.Events, evs...)
		return nil
	}); err != nil {
		f.log.Error("state: record events", "mac", mac, "kind", evs[0].Kind, "err", err)
	}
}

func (f *Flow) learnIP(ip string, mac machine.MAC) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Bounded: one entry per address on the boot LAN; a /16 worth at most.
	if len(f.ips) >= 1<<16 {
		clear(f.ips)
	}
	f.ips[ip] = mac
}

// MACOf returns the MAC last seen at ip, if any.
func (f *Flow) MACOf(ip string) (machine.MAC, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mac, ok := f.ips[ip]
	return mac, ok
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// machinesCollector exports tinderbox_machines{state} from the store at
// scrape time; it reads the store's in-memory counts, no record.
type machinesCollector struct{ store *state.Store }

var machinesDesc = prometheus.NewDesc(metrics.Namespace+"_machines", "Machines known to tinderbox, by state.", []string{"state"}, nil)

func (c *machinesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- machinesDesc }

func (c *machinesCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.store.CountByState()
	for _, s := range machine.States {
		ch <- prometheus.MustNewConstMetric(machinesDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
