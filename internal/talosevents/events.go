package talosevents

import (
	"net/netip"
	"strconv"
	"time"
)

// Event is one EventRequest as the sink received it.
type Event struct {
	// ID is the request's id (field 2): Talos sends the event's xid, a
	// 20-character string that sorts by time.
	ID string
	// ActorID is the request's actor_id (field 3), set by newer Talos
	// releases to the id of the API call that caused the event; often empty.
	ActorID string
	// TypeURL is the Any's type_url exactly as sent, for example
	// "type.googleapis.com/machine.SequenceEvent".
	TypeURL string
	// Message is the decoded payload: a SequenceEvent, PhaseEvent,
	// TaskEvent, MachineStatusEvent, ServiceStateEvent,
	// ConfigLoadErrorEvent, ConfigValidationErrorEvent or AddressEvent
	// value, or Unknown for any other type.
	Message any
	// Received is when the sink decoded the request (the server's clock).
	Received time.Time
}

// Full protobuf names of the messages Decode knows (package machine,
// api/machine/machine.proto in Talos). The Any's type URL ends in one of
// them after its last slash.
const (
	NameSequenceEvent              = "machine.SequenceEvent"
	NamePhaseEvent                 = "machine.PhaseEvent"
	NameTaskEvent                  = "machine.TaskEvent"
	NameMachineStatusEvent         = "machine.MachineStatusEvent"
	NameServiceStateEvent          = "machine.ServiceStateEvent"
	NameConfigLoadErrorEvent       = "machine.ConfigLoadErrorEvent"
	NameConfigValidationErrorEvent = "machine.ConfigValidationErrorEvent"
	NameAddressEvent               = "machine.AddressEvent"
)

// TypeURLPrefix is the prefix Talos' event-sink controller gives every
// type URL: it wraps each payload with protobuf-go's anypb.New, which uses
// this default (Talos, internal/app/machined/pkg/controllers/runtime/
// events_sink.go). Talos' own Events API uses "talos/runtime/" instead;
// Decode accepts either, since it reads only the name after the last slash.
const TypeURLPrefix = "type.googleapis.com/"

// SequenceAction is machine.SequenceEvent.Action (api/machine/machine.proto).
type SequenceAction int32

// The sequence actions, with their wire values.
const (
	SequenceNoop  SequenceAction = 0
	SequenceStart SequenceAction = 1
	SequenceStop  SequenceAction = 2
)

// String returns the proto name ("START"), or the number for a value this
// package does not know.
func (a SequenceAction) String() string {
	return enumName(int32(a), "NOOP", "START", "STOP")
}

// SequenceEvent is machine.SequenceEvent: a sequence ("boot",
// "initialize", "install", "reboot", "upgrade", "reset", "shutdown")
// started or stopped. Fields: sequence = 1, action = 2, error = 3.
type SequenceEvent struct {
	Sequence string
	Action   SequenceAction
	// Error is set when the sequence stopped because it failed; nil when it
	// succeeded or the field was absent.
	Error *Error
}

// ErrorCode is common.Code (api/common/common.proto in Talos).
type ErrorCode int32

// The error codes, with their wire values. CANCELED appears in later
// releases; other values are kept as numbers.
const (
	CodeFatal    ErrorCode = 0
	CodeLocked   ErrorCode = 1
	CodeCanceled ErrorCode = 2
)

// String returns the proto name ("FATAL"), or the number for a value this
// package does not know.
func (c ErrorCode) String() string {
	return enumName(int32(c), "FATAL", "LOCKED", "CANCELED")
}

// Error is common.Error: code = 1, message = 2. Its details (field 3, a
// list of Any) are skipped.
type Error struct {
	Code    ErrorCode
	Message string
}

// StepAction is the Action of machine.PhaseEvent and machine.TaskEvent;
// the two enums have the same values (api/machine/machine.proto).
type StepAction int32

// The phase and task actions, with their wire values.
const (
	StepStart StepAction = 0
	StepStop  StepAction = 1
)

// String returns the proto name ("STOP"), or the number for a value this
// package does not know.
func (a StepAction) String() string {
	return enumName(int32(a), "START", "STOP")
}

// PhaseEvent is machine.PhaseEvent: a phase of a sequence started or
// stopped. Fields: phase = 1, action = 2.
type PhaseEvent struct {
	Phase  string
	Action StepAction
}

// TaskEvent is machine.TaskEvent: a task of a phase started or stopped.
// Fields: task = 1, action = 2.
type TaskEvent struct {
	Task   string
	Action StepAction
}

// MachineStage is machine.MachineStatusEvent.MachineStage
// (api/machine/machine.proto).
type MachineStage int32

// The machine stages, with their wire values.
const (
	StageUnknown      MachineStage = 0
	StageBooting      MachineStage = 1
	StageInstalling   MachineStage = 2
	StageMaintenance  MachineStage = 3
	StageRunning      MachineStage = 4
	StageRebooting    MachineStage = 5
	StageShuttingDown MachineStage = 6
	StageResetting    MachineStage = 7
	StageUpgrading    MachineStage = 8
)

// String returns the proto name ("RUNNING"), or the number for a value
// this package does not know.
func (s MachineStage) String() string {
	return enumName(int32(s), "UNKNOWN", "BOOTING", "INSTALLING", "MAINTENANCE",
		"RUNNING", "REBOOTING", "SHUTTING_DOWN", "RESETTING", "UPGRADING")
}

// MachineStatusEvent is machine.MachineStatusEvent: stage = 1 and status = 2,
// a nested MachineStatus { bool ready = 1; repeated UnmetCondition
// unmet_conditions = 2; } flattened here into Ready and Unmet.
type MachineStatusEvent struct {
	Stage MachineStage
	// Ready is true when Talos considers the machine ready (all its
	// conditions met).
	Ready bool
	// Unmet lists the conditions that keep the machine from being ready;
	// at most maxUnmet are accepted.
	Unmet []UnmetCondition
}

// UnmetCondition is MachineStatusEvent.MachineStatus.UnmetCondition:
// name = 1, reason = 2.
type UnmetCondition struct {
	Name   string
	Reason string
}

// ServiceAction is machine.ServiceStateEvent.Action
// (api/machine/machine.proto).
type ServiceAction int32

// The service actions, with their wire values. STARTING appears in later
// releases.
const (
	ServiceInitialized ServiceAction = 0
	ServicePreparing   ServiceAction = 1
	ServiceWaiting     ServiceAction = 2
	ServiceRunning     ServiceAction = 3
	ServiceStopping    ServiceAction = 4
	ServiceFinished    ServiceAction = 5
	ServiceFailed      ServiceAction = 6
	ServiceSkipped     ServiceAction = 7
	ServiceStarting    ServiceAction = 8
)

// String returns the proto name ("RUNNING"), or the number for a value
// this package does not know.
func (a ServiceAction) String() string {
	return enumName(int32(a), "INITIALIZED", "PREPARING", "WAITING", "RUNNING",
		"STOPPING", "FINISHED", "FAILED", "SKIPPED", "STARTING")
}

// ServiceStateEvent is machine.ServiceStateEvent: a Talos service (apid,
// etcd, kubelet, …) changed state. Fields: service = 1, action = 2,
// message = 3, health = 4.
type ServiceStateEvent struct {
	Service string
	Action  ServiceAction
	Message string
	// Health is nil when the event carries none.
	Health *ServiceHealth
}

// ServiceHealth is machine.ServiceHealth: unknown = 1, healthy = 2,
// last_message = 3, last_change = 4 (a google.protobuf.Timestamp).
type ServiceHealth struct {
	Unknown     bool
	Healthy     bool
	LastMessage string
	// LastChange is the zero time when absent, UTC otherwise.
	LastChange time.Time
}

// ConfigLoadErrorEvent is machine.ConfigLoadErrorEvent: Talos could not
// load its machine config. Field: error = 1.
type ConfigLoadErrorEvent struct {
	Error string
}

// ConfigValidationErrorEvent is machine.ConfigValidationErrorEvent: the
// machine config Talos loaded did not validate. Field: error = 1.
type ConfigValidationErrorEvent struct {
	Error string
}

// AddressEvent is machine.AddressEvent: the node's hostname and addresses.
// Fields: hostname = 1, addresses = 2 (repeated); at most maxAddresses are
// accepted.
type AddressEvent struct {
	Hostname  string
	Addresses []string
}

// Unknown stands for a payload whose type Decode does not know; the
// payload itself is dropped.
type Unknown struct {
	TypeURL string
}

// enumName names v from names (indexed by value) or formats the number.
func enumName(v int32, names ...string) string {
	if v >= 0 && int(v) < len(names) {
		return names[v]
	}
	return strconv.FormatInt(int64(v), 10)
}

// unmapAddrPort turns an IPv4-mapped IPv6 address into plain IPv4, so that
// a node is known by one address whichever socket family accepted it.
func unmapAddrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
