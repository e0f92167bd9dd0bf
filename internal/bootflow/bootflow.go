// Package bootflow joins the machine-state store, the profiles and the
// asset cache into what a network-booting node is served (docs/api.md,
// "Boot HTTP"; docs/protocol.md, "Machine states"):
// the generic /boot.ipxe, each machine's /ipxe script, and its machine
// config at /config/{mac}, guarded by a per-machine token. It also turns
// what the DHCP, TFTP and asset servers report into machine events.
//
// A request acts for its machine only when evidence binds its source
// address to the machine's MAC (internal/evidence; docs/security.md): only
// such a request gets a script carrying the config token, moves the
// machine's state, or gets the machine config. Any other request gets a
// script that carries no secret and changes nothing, or a refusal, and the
// log says why. Every /config refusal looks the same to the client,
// whatever its reason.
package bootflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/boot"
	"github.com/tinderbox-boot/tinderbox/internal/evidence"
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
	// MaintenanceArgs returns the kernel arguments of a maintenance boot
	// (defaults.yaml's kernelArgs).
	MaintenanceArgs() []string
	// Rendered returns the machine config of mac, exactly as
	// `tinderbox render` prints it, and the hash of the profile set it
	// comes from (profiles.Set.Hash), which the served record keeps.
	Rendered(ctx context.Context, mac machine.MAC) (config []byte, set string, err error)
}

// Cmdlines gives the Image Factory's kernel command line for PXE.
type Cmdlines interface {
	// Cmdline returns cmdline-metal-ARCH of the schematic and version.
	Cmdline(ctx context.Context, schematicID, version string, arch machine.Arch) (string, error)
}

// Options configures New.
type Options struct {
	// BaseURL is the boot HTTP server as nodes reach it at the configured
	// (or default) advertise address: http://ADVERTISE:PORT. Scripts
	// decided without a request (Script: `tinderbox script`, the admin
	// API) name it, and so does every script when Pinned.
	BaseURL string
	// Pinned makes every script name BaseURL and Own (config advertise set
	// explicitly: a NAT, port forward or virtual address nodes must use).
	// When false, a script served over HTTP names the address the request
	// arrived on instead (the connection's local address and port), so a
	// node on any of the server's LANs is sent to its own LAN's address.
	Pinned bool
	// LocalBoot is config ipxe.localBoot: exit | sanboot | notfound.
	LocalBoot string
	Store     state.Backend
	Profiles  Profiles
	Cmdlines  Cmdlines
	// Evidence binds request addresses to MACs; nil means binding off.
	Evidence *evidence.Binder
	// Own are tinderbox's own kernel arguments for every netboot (the
	// event sink and the log receiver: talos.events.sink=…,
	// talos.logging.kernel=…), placed first after talos.config, naming
	// BaseURL's host.
	Own []string
	// OwnAt returns Own as nodes that reach tinderbox at host see it, for
	// a script that names the request's local address (Pinned false); nil
	// keeps Own for every script.
	OwnAt  func(host netip.Addr) []string
	Logger *slog.Logger
	// Registerer receives the boot-step and machines-by-state metrics.
	Registerer prometheus.Registerer
}

// Flow serves the node-facing endpoints. It is safe for concurrent use.
type Flow struct {
	opts  Options
	log   *slog.Logger
	ev    *evidence.Binder
	steps *prometheus.CounterVec
	// installs and installTime are the install outcomes Talos reported and
	// how long they took.
	installs    *prometheus.CounterVec
	installTime *prometheus.HistogramVec
	// q holds the state writes no answer waits for (queue.go).
	q *writeQueue

	// ids are Talos event ids already applied (TalosEvent).
	idsMu sync.Mutex
	ids   map[string]struct{}

	// cmdlines are the kernel command lines Cmdlines gave (cmdline).
	cmdMu    sync.RWMutex
	cmdlines map[cmdlineKey]string

	// scripts are the scripts served, by machine and inputs
	// (scriptcache.go).
	scripts scriptCache
}

// cmdlineKey names one kernel command line of the Image Factory.
type cmdlineKey struct {
	schematic, version string
	arch               machine.Arch
}

// maxCmdlines bounds the command lines kept: a fleet boots a handful of
// schematic, version and arch combinations; past the bound all are
// forgotten and asked for again.
const maxCmdlines = 64

// cmdline returns Cmdlines' kernel command line for the schematic,
// version and arch, asking it once per combination: what the factory
// gives for a schematic ID (a hash of the schematic), a version and an
// arch does not change, and the cache opens its file under its lock for
// each call (76 % of the lock waits of the daemon serving /ipxe to 32
// connections). Errors are not kept.
func (f *Flow) cmdline(ctx context.Context, schematic, version string, arch machine.Arch) (string, error) {
	k := cmdlineKey{schematic, version, arch}
	f.cmdMu.RLock()
	c, ok := f.cmdlines[k]
	f.cmdMu.RUnlock()
	if ok {
		return c, nil
	}
	c, err := f.opts.Cmdlines.Cmdline(ctx, schematic, version, arch)
	if err != nil {
		return "", err
	}
	f.cmdMu.Lock()
	if len(f.cmdlines) >= maxCmdlines {
		clear(f.cmdlines)
	}
	f.cmdlines[k] = c
	f.cmdMu.Unlock()
	return c, nil
}

// New returns a Flow and registers its metrics.
func New(opts Options) *Flow {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ev := opts.Evidence
	if ev == nil {
		ev, _ = evidence.New(evidence.Options{})
	}
	f := &Flow{
		opts: opts,
		log:  opts.Logger,
		ev:   ev,
		q:    newWriteQueue(opts.Store, opts.Logger),
		ids:  map[string]struct{}{},

		cmdlines: map[cmdlineKey]string{},
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "boot", Name: "steps_total",
			Help: "Boot steps served to machines, by step (dhcp, tftp, script, asset, config, local_boot) and result.",
		}, []string{"step", "result"}),
	}
	f.installs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "installs_total",
		Help: "Installs as Talos reported them, by result: started, succeeded, failed.",
	}, []string{"result"})
	f.installTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metrics.Namespace, Name: "install_duration_seconds",
		Help:    "Seconds from a machine's first DHCP offer of its install session until Talos reported it installed, or running and ready.",
		Buckets: prometheus.ExponentialBuckets(30, 2, 9),
	}, []string{"until"})
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(f.steps, f.installs, f.installTime, &machinesCollector{store: opts.Store})
		opts.Registerer.MustRegister(f.q.collectors()...)
	}
	return f
}

// Mount adds /boot.ipxe, /ipxe and /config/{mac} to r.
func (f *Flow) Mount(r chi.Router) {
	r.Get("/boot.ipxe", f.serveGeneric)
	r.Get("/ipxe", f.serveScript)
	r.Get("/config/{mac}", f.serveConfig)
}

func (f *Flow) serveGeneric(w http.ResponseWriter, r *http.Request) {
	// Not cached: the generic script is asked for once per boot, before
	// the machine's own, and is made in a microsecond.
	base, _ := f.endpoints(localAddr(r))
	writePage(w, newPage(http.StatusOK, boot.GenericScript(base)))
}

// localAddr is the address r arrived on (http.LocalAddrContextKey, IPv4
// unmapped, zone dropped); invalid when the server did not record one (a
// handler called without a server, as in tests with a ResponseRecorder).
func localAddr(r *http.Request) netip.AddrPort {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}

// endpointAt returns the address a script served for a request that
// arrived on local names (endpoints): local itself, or the zero AddrPort
// for BaseURL and Own when Pinned, or when local cannot be handed to a
// node (invalid, unspecified, or an IPv6 link-local address, whose zone
// is this host's and means nothing to the node).
func (f *Flow) endpointAt(local netip.AddrPort) netip.AddrPort {
	a := local.Addr()
	if f.opts.Pinned || !local.IsValid() || a.IsUnspecified() || a.IsLinkLocalUnicast() || local.Port() == 0 {
		return netip.AddrPort{}
	}
	return local
}

// endpoints returns the base URL and own kernel arguments a script served
// for a request that arrived on local names: BaseURL and Own when
// endpointAt gives the zero AddrPort, else http://LOCAL:PORT and
// OwnAt(LOCAL).
func (f *Flow) endpoints(local netip.AddrPort) (base string, own []string) {
	local = f.endpointAt(local)
	if !local.IsValid() {
		return f.opts.BaseURL, f.opts.Own
	}
	a := local.Addr()
	own = f.opts.Own
	if f.opts.OwnAt != nil {
		own = f.opts.OwnAt(a)
	}
	return "http://" + local.String(), own
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
	// Body is the answer's body; empty with an error.
	Body   string
	Status int
	// Secret is true when Body carries the machine's config token.
	Secret bool
	// page is the answer as it is written (Body's bytes, shared with
	// the script cache); nil with an error.
	page *scriptPage
}

// Script decides and writes the iPXE script for mac (as `tinderbox script`
// and GET /ipxe do), recording the request in the machine's state when
// record is true. buildarch is iPXE's ${buildarch}; uuid must be a
// canonical SMBIOS UUID or empty (anything else is dropped); remoteIP may
// be empty. The error comes with the HTTP status it is answered with.
// Script itself checks no evidence: callers that act for a network
// request do (see serveScript).
func (f *Flow) Script(ctx context.Context, mac machine.MAC, uuid, buildarch, remoteIP string, record bool) (ScriptResult, error) {
	res, sighting, err := f.script(ctx, scriptRequest{mac: mac, uuid: uuid, buildarch: buildarch, ip: remoteIP, record: record, create: record})
	f.queue(mac, &sighting)
	if res.page != nil {
		res.Body = string(res.page.body)
	}
	return res, err
}

// scriptRequest is one script to decide.
type scriptRequest struct {
	mac                 machine.MAC
	uuid, buildarch, ip string
	// src, when valid, is the request's source address, which script
	// makes ip of: the record's string when it holds that address, so
	// that a machine asking from its address again costs no allocation.
	src netip.Addr
	// record stores the request's effect; create lets it make a record
	// for a machine that has none.
	record, create bool
	// local is the address the request arrived on; invalid for a script
	// decided without one (Script), which names BaseURL.
	local netip.AddrPort
}

// errNoRecord stops an update that would create a record it must not.
var errNoRecord = errors.New("no record to update")

// script decides the script for req. A sighting that changes nothing an
// answer depends on is not written: it is returned (the zero pendingWrite
// when there is none) for the caller to queue, with the script's event
// when it serves one, so that a request takes the queue's lock once. The
// script's page comes from the script cache when the machine's inputs
// are those of a script made before.
func (f *Flow) script(ctx context.Context, req scriptRequest) (res ScriptResult, sighting pendingWrite, err error) {
	mac := req.mac
	prof, known := f.opts.Profiles.Machine(mac)
	policy := f.opts.Profiles.Unknown()
	// The firmware's arch (iPXE's ${buildarch}) is a fact about the
	// machine; a profile's talos.arch is a claim about it.
	fwArch, _ := machine.ArchFromIPXE(req.buildarch)
	arch := fwArch
	if known && prof.Talos.Arch != "" {
		arch = prof.Talos.Arch
	}
	sight := scriptSighting{known: known, install: prof.Install, seen: sighted{arch: arch}}

	record := req.record && (known || policy != machine.UnknownIgnore) // ignored machines leave no trace, as with DHCP
	// The script is decided on the record as it is on disk (Peek, from
	// memory). Only a change an answer depends on is written before the
	// answer: a new record, or a new state, generation (token) or
	// failure. A sighting that changes none of them (the machine's
	// arch, UUID and address) waits in the queue with the script event.
	cur, exists, err := f.opts.Store.Peek(mac)
	if err != nil {
		return ScriptResult{Status: http.StatusInternalServerError}, pendingWrite{}, err
	}
	sight.seen.uuid = canonicalUUIDAs(req.uuid, cur.UUID)
	if sight.seen.ip = req.ip; req.src.IsValid() {
		sight.seen.ip = addrStringAs(req.src, cur.IP)
	}
	m := cur
	m.MAC = mac
	if record && !exists && !req.create {
		record = false
	}
	sight.apply(&m)
	switch {
	case !record:
	case !exists || m.State != cur.State || m.Generation != cur.Generation || m.Failure != cur.Failure:
		// Declared here, so that only a request that writes pays for
		// the closure.
		create, s := req.create, sight
		m, err = f.transition(mac, func(m *state.Machine, exists bool) error {
			if !exists && !create {
				return errNoRecord
			}
			s.apply(m)
			return nil
		})
		if errors.Is(err, errNoRecord) {
			// Forgotten since Peek: decide on no record, store nothing.
			m = state.Machine{MAC: mac}
			sight.apply(&m)
		} else if err != nil {
			return ScriptResult{Status: http.StatusInternalServerError}, pendingWrite{}, err
		}
	default:
		sighting = pendingWrite{seen: sighted{arch: m.Arch, uuid: m.UUID, ip: sight.seen.ip}}
	}

	res = ScriptResult{Action: boot.Decide(m.State, known, policy), State: m.State, Status: http.StatusOK}
	switch res.Action {
	case boot.Ignore:
		res.page = newPage(http.StatusNotFound, "tinderbox: no profile for "+mac.String()+", and unknown machines are ignored\n")
	case boot.LocalBoot:
		k := scriptKey{action: boot.LocalBoot}
		if res.page = f.scripts.get(mac, k, nil); res.page == nil {
			body, notFound := boot.LocalScript(f.opts.LocalBoot, mac)
			status := http.StatusOK
			if notFound {
				status = http.StatusNotFound
			}
			res.page = newPage(status, body)
			f.scripts.put(mac, k, nil, res.page)
		}
	case boot.Netboot, boot.Maintenance:
		hostname, talos, args := prof.Hostname, prof.Talos, prof.KernelArgs
		if res.Action == boot.Maintenance {
			hostname, talos, args = "", f.opts.Profiles.Maintenance(), f.opts.Profiles.MaintenanceArgs()
			// defaults.yaml's talos.arch is for the fleet's profiles; a
			// machine without one boots the kernel its firmware can run.
			if fwArch != "" {
				talos.Arch = fwArch
			}
		} else if fwArch != "" && talos.Arch != "" && fwArch != talos.Arch {
			return ScriptResult{Status: http.StatusConflict}, sighting, fmt.Errorf("machine %s: its profile says talos.arch %s, but its firmware runs %s iPXE (${buildarch} %q): an %s kernel cannot boot there; fix talos.arch in its profile", mac, talos.Arch, fwArch, clip(req.buildarch), talos.Arch)
		}
		if talos.Arch == "" {
			talos.Arch = arch
		}
		if talos.Arch == "" {
			return ScriptResult{Status: http.StatusBadRequest}, sighting, fmt.Errorf("machine %s: arch %q is not amd64 or arm64, and its profile names none", mac, clip(req.buildarch))
		}
		if talos.Version == "" || talos.SchematicID == "" {
			return ScriptResult{Status: http.StatusInternalServerError}, sighting, fmt.Errorf("machine %s: no Talos version or schematic to boot (for unknown machines, set talos.version and talos.schematic in defaults.yaml)", mac)
		}
		cmdline, err := f.cmdline(ctx, talos.SchematicID, talos.Version, talos.Arch)
		if err != nil {
			return ScriptResult{Status: http.StatusBadGateway}, sighting, fmt.Errorf("kernel command line for %s (Talos %s, schematic %s): %w", mac, talos.Version, short(talos.SchematicID), err)
		}
		k := scriptKey{action: res.Action, local: f.endpointAt(req.local), uuid: m.UUID, hostname: hostname, talos: talos, cmdline: cmdline}
		if res.Action == boot.Netboot {
			k.generation = m.Generation
			res.Secret = true
		}
		if res.page = f.scripts.get(mac, k, args); res.page == nil {
			base, own := f.endpoints(k.local)
			params := boot.NetbootParams{
				BaseURL: base, MAC: mac, UUID: canonicalUUID(m.UUID), Hostname: hostname,
				SchematicID: talos.SchematicID, Version: talos.Version, Arch: talos.Arch,
				Cmdline: cmdline, KernelArgs: args, Own: own,
			}
			if res.Action == boot.Netboot {
				params.ConfigURL = f.configURL(base, m)
			}
			body, err := boot.NetbootScript(params)
			if err != nil {
				return ScriptResult{Status: http.StatusInternalServerError}, sighting, err
			}
			res.page = newPage(http.StatusOK, body)
			f.scripts.put(mac, k, args, res.page)
		}
	}
	res.Status = res.page.status
	return res, sighting, nil
}

// scriptSighting is what a script request changes in its machine's
// record: the state its profile asks for, the script served, and the
// arch, UUID and address seen (each when not empty).
type scriptSighting struct {
	known   bool
	install machine.Install
	seen    sighted
}

// apply makes s's changes in m.
func (s scriptSighting) apply(m *state.Machine) {
	m.State = state.Reconcile(m.State, s.known, s.install)
	m.ScriptServed()
	s.seen.apply(m)
}

// ConfigURL returns the talos.config URL of the machine at BaseURL, token
// included.
func (f *Flow) ConfigURL(m state.Machine) string {
	return f.configURL(f.opts.BaseURL, m)
}

// configURL is the talos.config URL of the machine under base; the token
// does not depend on base.
func (f *Flow) configURL(base string, m state.Machine) string {
	return base + "/config/" + m.MAC.Dashed() + "?token=" + f.opts.Store.Token(m)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}

// maxField bounds every query value and path segment a node sends: the
// longest legitimate one is a MAC in one of its spellings or a UUID.
const maxField = 64

// clip shortens a client-supplied value for a log line or an error.
func clip(s string) string {
	if len(s) > maxField {
		return s[:maxField] + "…"
	}
	return s
}

func (f *Flow) serveScript(w http.ResponseWriter, r *http.Request) {
	src := remoteAddr(r)
	rawMAC, rawUUID, rawArch := scriptQuery(r.URL)
	if len(rawMAC) > maxField || len(rawUUID) > maxField || len(rawArch) > maxField {
		f.steps.WithLabelValues("script", "error").Inc()
		f.log.Warn("boot script refused", "mac", clip(rawMAC), "remote", addrString(src), "status", http.StatusBadRequest, "err", "query value too long")
		httpError(w, http.StatusBadRequest, "query value too long")
		return
	}
	mac, err := machine.ParseMAC(rawMAC)
	if err != nil {
		f.steps.WithLabelValues("script", "error").Inc()
		f.log.Warn("boot script refused", "mac", rawMAC, "remote", addrString(src), "status", http.StatusBadRequest, "err", err)
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	v := f.ev.Check(src, mac)
	_, known := f.opts.Profiles.Machine(mac)
	req := scriptRequest{mac: mac, uuid: rawUUID, buildarch: rawArch, src: src, record: v.Bound(), local: localAddr(r)}
	// A record is made for a machine a profile or the evidence vouches
	// for; with binding off, only DHCP (which made it) or a profile does.
	req.create = known || v.Via == evidence.ViaNeighbour || v.Via == evidence.ViaRelayedDHCP
	if !v.Bound() {
		req.src, req.uuid = netip.Addr{}, ""
	}
	res, sighting, err := f.script(r.Context(), req)
	evs := make([]machine.Event, 0, 2) // on the stack: add keeps no slice
	// The sighting and the events of this answer are queued together:
	// one hold of the queue's lock per request, where two were the most
	// contended lock of the daemon serving /ipxe to 32 connections.
	if err != nil {
		f.steps.WithLabelValues("script", "error").Inc()
		level := slog.LevelWarn
		if res.Status >= 500 {
			level = slog.LevelError
		}
		f.log.Log(r.Context(), level, "boot script refused", "mac", mac, "remote", addrString(src), "status", res.Status, "err", err)
		if v.Bound() {
			evs = append(evs, f.opts.Store.Event(machine.EventRefused, fmt.Sprintf("script: %d, %v", res.Status, err), 0))
		}
		f.queue(mac, &sighting, evs...)
		httpError(w, res.Status, "%v", err)
		return
	}
	if !v.Bound() {
		// Nothing of an unbound request is recorded (script: record is
		// false), so there is no sighting to queue.
		f.unbound(r.Context(), w, mac, addrString(src), v, res)
		return
	}
	if src.IsValid() && res.Action != boot.Ignore && !v.Checked() {
		f.ev.Learn(src, mac, netip.Addr{})
	}
	f.steps.WithLabelValues("script", string(res.Action)).Inc()
	if res.Action != boot.Ignore {
		evs = append(evs, f.opts.Store.Event(machine.EventScript, string(res.Action), 0))
		if res.Action == boot.LocalBoot {
			f.steps.WithLabelValues("local_boot", "ok").Inc()
			evs = append(evs, f.opts.Store.Event(machine.EventLocalBoot, f.opts.LocalBoot, 0))
		}
	}
	f.queue(mac, &sighting, evs...)
	if f.log.Enabled(r.Context(), slog.LevelInfo) {
		f.log.Info("boot script served", "mac", mac, "remote", addrString(src), "action", res.Action, "state", res.State, "evidence", v.Via)
	}
	writePage(w, res.page)
}

// queue queues p and evs for mac unless they hold nothing to write.
func (f *Flow) queue(mac machine.MAC, p *pendingWrite, evs ...machine.Event) {
	if p.record() || p.served != nil || len(evs) > 0 {
		f.q.add(mac, p, evs...)
	}
}

// unbound answers a script request that no evidence ties to its machine:
// a script without secrets is served as decided (nothing was recorded); a
// script with the config token is refused.
func (f *Flow) unbound(ctx context.Context, w http.ResponseWriter, mac machine.MAC, ip string, v evidence.Verdict, res ScriptResult) {
	why := f.why(mac, ip, v)
	if res.Secret {
		f.steps.WithLabelValues("script", "unbound").Inc()
		f.log.InfoContext(ctx, "boot script refused", "mac", mac, "remote", ip, "reason", why)
		f.denied(mac, machine.EventRefused, "script: 403, "+why)
		httpError(w, http.StatusForbidden, "refused; see the tinderbox log")
		return
	}
	f.steps.WithLabelValues("script", string(res.Action)).Inc()
	f.log.InfoContext(ctx, "boot script served without recording", "mac", mac, "remote", ip, "action", res.Action, "reason", why)
	writePage(w, res.page)
}

// why says, for the log, why a request from ip is not mac's: "request
// for cp-01 from 10.0.0.9, which is aa:bb:…; cp-01 is at 10.0.0.11".
func (f *Flow) why(mac machine.MAC, ip string, v evidence.Verdict) string {
	name := mac.String()
	if p, ok := f.opts.Profiles.Machine(mac); ok && p.Hostname != "" {
		name = p.Hostname + " (" + mac.String() + ")"
	}
	msg := "request for " + name + " from " + ip
	if v.HasOwner {
		msg += ", which is " + v.Owner.String()
	}
	msg += ": " + v.Reason
	if m, ok, err := f.opts.Store.Peek(mac); err == nil && ok && m.IP != "" {
		msg += "; " + name + " was last at " + m.IP
	}
	return msg
}

// refusedConfig is the one answer to every refused config request, so a
// client learns nothing of why: not whether the MAC is known, nor whether
// its token, address or state was at fault.
const refusedConfig = "tinderbox: config refused\n"

// errConfigChanged stops a config's transition when the record changed
// between the checks and the write.
var errConfigChanged = errors.New("record changed since the config request was checked")

func refuseConfig(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write([]byte(refusedConfig))
}

func (f *Flow) serveConfig(w http.ResponseWriter, r *http.Request) {
	src := remoteAddr(r)
	ip := addrString(src)
	raw, token := chi.URLParam(r, "mac"), r.URL.Query().Get("token")
	// Every check runs whatever failed before it, so a refusal takes the
	// same path for every MAC and every reason.
	var (
		mac    machine.MAC
		m      state.Machine
		exists bool
		reason string
	)
	if len(raw) > maxField || len(token) > maxField {
		reason = "path or token too long"
	} else if parsed, err := machine.ParseMAC(raw); err != nil {
		reason = "not a MAC: " + err.Error()
	} else {
		mac = parsed
	}
	m, exists, err := f.opts.Store.Peek(mac)
	if err != nil {
		f.steps.WithLabelValues("config", "error").Inc()
		f.log.Error("config: state lookup", "mac", mac, "err", err)
		httpError(w, http.StatusInternalServerError, "state lookup failed")
		return
	}
	m.MAC = mac
	v := f.ev.Check(src, mac)
	// judge returns why the request is refused, "" when it is not, and
	// whether that reason rests on the record.
	judge := func() (reason string, ofRecord bool) {
		tokenOK := f.opts.Store.CheckToken(m, token)
		switch {
		case !exists:
			return "machine never booted through tinderbox", true
		case token == "":
			return "no token", false
		case !tokenOK:
			return "wrong token", true
		case !v.Bound():
			return f.why(mac, ip, v), false
		case !m.ConfigAllowed():
			return "outside the install window: machine is " + string(m.State) + " (re-arm it with `tinderbox machines reinstall " + mac.String() + "`)", true
		}
		return "", false
	}
	if why, ofRecord := judge(); reason == "" {
		if reason = why; ofRecord {
			// Peek answers from memory; with replicas on etcd that may
			// lag another replica's write of a moment ago (the record
			// made, the token rotated, the machine re-armed by the
			// script it just fetched there): a refusal for what the
			// record says is judged again on the record as the cluster
			// holds it. When it cannot be read, the refusal stands.
			if cur, ok, err := f.opts.Store.Latest(mac); err == nil {
				m, exists = cur, ok
				m.MAC = mac
				reason, _ = judge()
			}
		}
	}
	if reason != "" {
		f.steps.WithLabelValues("config", "forbidden").Inc()
		f.log.Info("config refused", "mac", clip(raw), "remote", ip, "reason", reason)
		if exists {
			f.denied(mac, machine.EventDenied, "config: "+reason)
		}
		refuseConfig(w)
		return
	}
	body, set, err := f.opts.Profiles.Rendered(r.Context(), mac)
	if err != nil {
		f.steps.WithLabelValues("config", "error").Inc()
		f.log.Error("config: render", "mac", mac, "err", err)
		httpError(w, http.StatusInternalServerError, "rendering the config of %s failed; see `tinderbox validate`", mac)
		return
	}
	ev := f.opts.Store.Event(machine.EventConfig, "", int64(len(body)))
	next := m
	if next.ConfigServed(); next.State == m.State {
		// No transition (installing already, or netboot): the event, the
		// address and the served config wait in the queue.
		f.q.add(mac, &pendingWrite{seen: sighted{ip: ip}, events: []queuedEvent{{ev: ev, what: whatEvent}}, served: &pendingConfig{ev: ev, body: body, set: set}})
	} else {
		// pending or failed → installing is on disk before the config
		// leaves: were it lost, the machine's next network boot would
		// install it again. The checks above read the record before
		// this transaction; it makes them again on the record it
		// changes, so a token rotated or a state changed since refuses.
		gen := m.Generation
		_, err := f.transition(mac, func(m *state.Machine, exists bool) error {
			if !exists || m.Generation != gen || !m.ConfigAllowed() {
				return errConfigChanged
			}
			m.ConfigServed()
			if ip != "" {
				m.IP = ip
			}
			m.Events = append(m.Events, ev)
			return nil
		})
		switch {
		case errors.Is(err, errConfigChanged):
			f.steps.WithLabelValues("config", "forbidden").Inc()
			f.log.Info("config refused", "mac", mac, "remote", ip, "reason", "the machine's record changed while its config was rendered")
			refuseConfig(w)
			return
		case err != nil:
			f.steps.WithLabelValues("config", "error").Inc()
			f.log.Error("config: state update", "mac", mac, "err", err)
			httpError(w, http.StatusInternalServerError, "recording the install of %s failed; see the tinderbox log", mac)
			return
		}
		f.keepServed(mac, ev, body, set)
	}
	f.steps.WithLabelValues("config", "ok").Inc()
	f.log.Info("machine config served", "mac", mac, "remote", ip, "bytes", len(body), "evidence", v.Via)
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// denied queues a refusal of kind k for the machine's timeline (an
// existing record only), written after the answer, so the database
// write does not make a known machine's refusal slower than an unknown
// one's.
func (f *Flow) denied(mac machine.MAC, k machine.EventKind, detail string) {
	f.record(mac, f.opts.Store.Event(k, detail, 0))
}

// transferred queues a TFTP or asset transfer to mac, the machine the
// evidence (or its DHCP exchange) ties the transfer's address to. Unlike
// record it makes the record when there is none: a fast client's transfer
// can end before its DHCP reply is recorded (Answer ties the address
// first), and that exchange vouches for the machine.
func (f *Flow) transferred(mac machine.MAC, kind machine.EventKind, detail string, bytes int64) {
	prof, known := f.opts.Profiles.Machine(mac)
	if !known && f.opts.Profiles.Unknown() == machine.UnknownIgnore {
		return
	}
	f.q.add(mac, &pendingWrite{
		create: true, reconcile: true, known: known, install: prof.Install,
		events: []queuedEvent{{ev: f.opts.Store.Event(kind, detail, bytes), what: whatTransfer}},
	})
}

// record queues events for an existing machine's log, written after the
// answer they describe; a failure is logged and counted.
func (f *Flow) record(mac machine.MAC, evs ...machine.Event) {
	f.q.add(mac, &pendingWrite{}, evs...)
}

// MACOf returns the MAC at ip for attributing a transfer: the neighbour
// table's, else the last DHCP exchange's or script request's.
func (f *Flow) MACOf(ip string) (machine.MAC, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return machine.MAC{}, false
	}
	return f.ev.Owner(a)
}

// remoteAddr is the request's source address; invalid when RemoteAddr
// is not an address (as in handler tests that leave it empty).
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// addrStringAs is addrString(a), answered with known when known is what
// it would write, so that an address a record holds is not written again.
func addrStringAs(a netip.Addr, known string) string {
	if !a.IsValid() {
		return ""
	}
	var buf [48]byte // an IPv6 address with no zone fits: 45 bytes at most
	if string(a.AppendTo(buf[:0])) == known {
		return known
	}
	return a.String()
}

// machinesCollector exports tinderbox_machines{state} from the store at
// scrape time; it reads the store's in-memory counts, no record.
type machinesCollector struct{ store state.Backend }

var machinesDesc = prometheus.NewDesc(metrics.Namespace+"_machines", "Machines known to tinderbox, by state.", []string{"state"}, nil)

func (c *machinesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- machinesDesc }

func (c *machinesCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.store.CountByState()
	for _, s := range machine.States {
		ch <- prometheus.MustNewConstMetric(machinesDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
