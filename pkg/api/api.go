// Package api holds the JSON shapes of tinderbox's admin API, /api/v1 on
// the admin listener: what the server writes and what pkg/client reads.
// Every answer is JSON except the profile, config and script calls
// (YAML or text) and the event stream (server-sent events whose "machine"
// events carry a MachineEvent). An error answer of any call is an Error.
package api

import (
	"time"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// ProfileSetHeader is the header of GET /api/v1/machines/{mac}/config
// that names the hash of the profile set the config was rendered from
// (ProfileStatus.Hash).
const ProfileSetHeader = "X-Tinderbox-Profile-Set"

// Machine is one row of GET /api/v1/machines, and the answer of GET
// /api/v1/machines/{mac} and POST /api/v1/machines/{mac}/reinstall: what
// tinderbox recorded of a machine joined with its profile.
type Machine struct {
	MAC      machine.MAC `json:"mac"`
	Hostname string      `json:"hostname"`
	// State is the recorded state, or for a machine that never booted the
	// state it would start in.
	State     machine.State `json:"state"`
	Arch      machine.Arch  `json:"arch"`
	UUID      string        `json:"uuid"`
	IP        string        `json:"ip"`
	FirstSeen *time.Time    `json:"firstSeen"`
	LastSeen  *time.Time    `json:"lastSeen"`
	// Profile says whether the machine has a profile.
	Profile bool `json:"profile"`
	// LastStep names the newest event for people ("Kernel", "Local boot",
	// "reinstall"), "" when it never booted.
	LastStep string `json:"lastStep"`
	// Talos is what the machine's Talos last reported of itself; nil when
	// it never reported (its state is then inferred from its boots).
	Talos *TalosReport `json:"talos,omitempty"`
	// Failure says why a failed machine failed: Talos' own message, or
	// what tinderbox saw.
	Failure string `json:"failure,omitempty"`
	// Attention is set when the machine needs an operator: "failed: …",
	// or "stalled: no progress for 17m after Kernel" (reports.stallAfter).
	Attention string `json:"attention,omitempty"`
	// Events, oldest first, are set only for one machine, not in the list.
	Events []machine.Event `json:"events,omitempty"`
}

// LogLine is one line of a machine's Talos log stream (its kernel log,
// with machined's "[talos] …" lines), as GET /api/v1/machines/{mac}/logs
// gives it.
type LogLine struct {
	// Time is when Talos logged it (else when tinderbox received it).
	Time time.Time `json:"time"`
	// Level is Talos' level: "debug", "info", "warn", "error".
	Level string `json:"level,omitempty"`
	// Facility and Priority are the kernel's syslog names ("kern",
	// "info"); empty on service lines.
	Facility string `json:"facility,omitempty"`
	Priority string `json:"priority,omitempty"`
	// Service is the Talos service of a service log line.
	Service string `json:"service,omitempty"`
	Msg     string `json:"msg"`
	// Truncated is set when the line was cut to the receiver's limit.
	Truncated bool `json:"truncated,omitempty"`
}

// LogLines is the body of GET /api/v1/machines/{mac}/logs.
type LogLines struct {
	Lines []LogLine `json:"lines"`
}

// TalosReport is a machine's Talos status as it last reported it.
type TalosReport struct {
	// Stage is "booting", "installing", "maintenance", "running",
	// "rebooting", … (Talos' machine stage, lower case).
	Stage string `json:"stage"`
	Ready bool   `json:"ready"`
	// At is when it last reported.
	At time.Time `json:"at"`
}

// MachineEvent is the data of a "machine" server-sent event of GET
// /api/v1/events: the machine as GET /api/v1/machines/{mac} shows it, or
// only its MAC with Gone set when it has neither a record nor a profile
// any more.
type MachineEvent struct {
	Machine
	Gone bool `json:"gone,omitempty"`
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
	// Problems lists every problem, for validation failures (HTTP 422),
	// each as "file:line: message".
	Problems []string `json:"problems,omitempty"`
	// At gives each of Problems apart, for the UI to show by its line.
	At []ProblemAt `json:"at,omitempty"`
}

// ProblemAt is one validation problem: the file (under the profiles
// directory) and line at fault where known.
type ProblemAt struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Machine string `json:"machine,omitempty"`
	Message string `json:"message"`
}

// ProfileWritten is the answer to PUT or DELETE
// /api/v1/machines/{mac}/profile.
type ProfileWritten struct {
	MAC machine.MAC `json:"mac"`
	// File is the profile file's path under the profiles directory.
	File string `json:"file"`
	// ETag is the new file's entity tag, "" after a DELETE or a check.
	ETag string `json:"etag,omitempty"`
	// Checked is true when the call only checked (?check=1).
	Checked bool `json:"checked,omitempty"`
	// ReloadError is set when the file was written but the directory
	// did not reload (another file broke meanwhile): the older set keeps
	// serving until that is fixed.
	ReloadError string `json:"reloadError,omitempty"`
}

// CacheListing is the answer of GET /api/v1/cache.
type CacheListing struct {
	Entries []CacheEntry `json:"entries"`
	// Size is the bytes of every entry together.
	Size     int64         `json:"size"`
	Prefetch PrefetchState `json:"prefetch"`
	// Factory is filled only with ?factory=1: probing it takes time.
	Factory *FactoryStatus `json:"factory,omitempty"`
}

// CacheEntry is one cached Image Factory asset.
type CacheEntry struct {
	// Schematic is the 64-hex schematic ID.
	Schematic string `json:"schematic"`
	// Version is the Talos version, with its leading "v".
	Version string `json:"version"`
	// File is the factory's file name (kernel-amd64, initramfs-amd64.xz,
	// cmdline-metal-amd64).
	File string `json:"file"`
	// Size is in bytes.
	Size int64 `json:"size"`
	// SHA256 is the hex digest of the file, also its ETag.
	SHA256   string    `json:"sha256"`
	Fetched  time.Time `json:"fetched"`
	LastUsed time.Time `json:"lastUsed"`
}

// PrefetchState is the progress of the background prefetch POST
// /api/v1/cache/prefetch starts.
type PrefetchState struct {
	Running  bool       `json:"running"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	// Targets are schematic/version/arch, one per image.
	Targets []string `json:"targets,omitempty"`
	// Fetched is the number of assets fetched or found cached.
	Fetched int    `json:"fetched"`
	Error   string `json:"error,omitempty"`
}

// Status is the answer of GET /api/v1/status.
type Status struct {
	Version   string        `json:"version"`
	Commit    string        `json:"commit"`
	Listeners []Listener    `json:"listeners"`
	Counters  []Counter     `json:"counters"`
	IPXE      IPXEStatus    `json:"ipxe"`
	Profiles  ProfileStatus `json:"profiles"`
	Factory   FactoryStatus `json:"factory"`
	Binding   BindingStatus `json:"binding"`
	// Events is the number of open event streams.
	Events int `json:"eventSubscribers"`
	// Health is what GET /readyz on the boot HTTP server answers; absent
	// when the server reports none.
	Health *Health `json:"health,omitempty"`
}

// HealthStatus is how able tinderbox is to boot a machine: HealthOK,
// HealthDegraded or HealthDown.
type HealthStatus string

// The health statuses, from best to worst.
const (
	// HealthOK: every check passes.
	HealthOK HealthStatus = "ok"
	// HealthDegraded: machines boot, but something needs an operator
	// (the profiles on disk do not load and the last good set serves;
	// some iPXE binaries are missing). GET /healthz answers 200.
	HealthDegraded HealthStatus = "degraded"
	// HealthDown: a machine that netboots now would fail (the state
	// database cannot be written, a listener is not serving, the daemon
	// is stopping). GET /healthz answers 503.
	HealthDown HealthStatus = "down"
)

// Health says whether tinderbox can boot a machine now, check by check
// (docs/api.md, "Health").
type Health struct {
	// Status is the worst of the checks' statuses.
	Status HealthStatus `json:"status"`
	// Checks are state, profiles, listeners and ipxe, in that order.
	Checks []HealthCheck `json:"checks"`
}

// HealthCheck is one of the things a boot needs.
type HealthCheck struct {
	Name   string       `json:"name"`
	Status HealthStatus `json:"status"`
	// Detail says what is wrong, or what was checked when nothing is.
	Detail string `json:"detail,omitempty"`
}

// BindingStatus says how boot sessions are bound to evidence
// (docs/security.md).
type BindingStatus struct {
	// Enabled is binding.enabled.
	Enabled bool `json:"enabled"`
	// Following is true while the kernel's neighbour-table notifications
	// are applied; false (with binding on) means every lookup reads the
	// whole table until they recover.
	Following bool `json:"following"`
	// RoutedNetworks is binding.routedNetworks.
	RoutedNetworks []string `json:"routedNetworks"`
}

// Listener is one of the daemon's sockets.
type Listener struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
}

// Counter is one tinderbox counter series.
type Counter struct {
	Name string `json:"name"`
	// Labels are name=value pairs, comma-separated.
	Labels string  `json:"labels,omitempty"`
	Value  float64 `json:"value"`
}

// IPXEStatus lists the boot binaries found in ipxe.dir and those missing.
type IPXEStatus struct {
	Dir     string   `json:"dir"`
	Found   []string `json:"found"`
	Missing []string `json:"missing"`
	// Hint says how to get the missing ones.
	Hint string `json:"hint,omitempty"`
}

// ProfileStatus is how loading the profiles directory goes.
type ProfileStatus struct {
	Dir      string `json:"dir"`
	Machines int    `json:"machines"`
	// Hash is the hash of the profile set being served: the hex SHA-256
	// of its input files by path and content, computed when it loaded.
	// Replicas serving the same tree show the same hash; one that shows
	// another serves an older or newer tree. Empty when nothing loaded.
	Hash        string     `json:"hash,omitempty"`
	LoadedAt    *time.Time `json:"loadedAt,omitempty"`
	LastAttempt *time.Time `json:"lastAttempt,omitempty"`
	// Problems are why the files on disk do not load; the set loaded at
	// LoadedAt keeps serving meanwhile.
	Problems []string `json:"problems"`
	// ReadOnly, when set, is why profile files cannot be written through
	// the API and UI here (a read-only mount, or no write permission), and
	// where to edit them instead.
	ReadOnly string `json:"readOnly,omitempty"`
}

// FactoryStatus says whether the Image Factory answers.
type FactoryStatus struct {
	URL       string `json:"url"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// Versions is how many Talos versions it offers.
	Versions int `json:"versions,omitempty"`
}

// ConfigDiff is the answer of GET /api/v1/machines/{mac}/config/diff: how
// the config the machine would be served now differs from the one it was
// last served. Both are compared with their secrets masked: a secret
// reads as "<masked:TAG>", TAG a short keyed hash of it, so a changed
// secret shows as a changed line without its value.
type ConfigDiff struct {
	MAC machine.MAC `json:"mac"`
	// ServedAt is when the config was last served at /config/{mac}.
	ServedAt time.Time `json:"servedAt"`
	// ServedHash and CurrentHash are the hex SHA-256 of the bytes served
	// then and of the bytes that would be served now, secrets included.
	ServedHash  string `json:"servedHash"`
	CurrentHash string `json:"currentHash"`
	// Changed is ServedHash != CurrentHash.
	Changed bool `json:"changed"`
	// ServedProfileSet is the hash of the profile set the served config
	// was rendered from (empty when it was served before tinderbox kept
	// it); CurrentProfileSet that of the set this tinderbox serves now
	// (ProfileStatus.Hash). They differ after a change of the profiles,
	// or when the replica that answers holds another tree than the one
	// that served the config.
	ServedProfileSet  string `json:"servedProfileSet,omitempty"`
	CurrentProfileSet string `json:"currentProfileSet,omitempty"`
	// Diff is the unified diff from the served config (labelled "served")
	// to the current one ("current"); empty when they are equal, or when
	// Note says why there is none.
	Diff string `json:"diff"`
	// Note says why a change has no Diff: a config too large to keep, say.
	Note string `json:"note,omitempty"`
}
