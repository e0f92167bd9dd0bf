// Package talosevents is Talos Linux's event sink: the gRPC server a Talos
// node publishes its runtime events to when it boots with the kernel
// argument talos.events.sink=HOST:PORT (or an EventSinkConfig document).
// It decodes each event into a typed value and hands it, with the node's
// source address, to a Recorder; the daemon binds the address to a MAC.
//
// # Wire facts
//
// Read in Talos' and siderolink's sources (siderolabs/talos:
// api/machine/machine.proto, api/common/common.proto,
// internal/app/machined/pkg/controllers/runtime/events_sink.go;
// siderolabs/siderolink: api/events/events.proto):
//
//   - Talos dials plain gRPC, no TLS, and calls
//     events.EventSinkService/Publish once per event, waiting for the
//     answer before it sends the next one. The request is
//     EventRequest { google.protobuf.Any data = 1; string id = 2;
//     string actor_id = 3; }, the answer an empty EventResponse.
//   - id is the event's xid; after a reconnection Talos resends from the
//     last event the sink acknowledged, so an id may arrive twice.
//   - data wraps a message of package machine with protobuf-go's
//     anypb.New, so its type URL is "type.googleapis.com/machine.<Name>";
//     Talos' own Events API uses "talos/runtime/machine.<Name>". Decode
//     reads only the name after the last slash and accepts both.
//   - The messages decoded here, with their field numbers and enum values,
//     are documented on their Go types (SequenceEvent, PhaseEvent,
//     TaskEvent, MachineStatusEvent, ServiceStateEvent,
//     ConfigLoadErrorEvent, ConfigValidationErrorEvent, AddressEvent);
//     any other type decodes to Unknown.
//
// The codec is written against google.golang.org/protobuf/encoding/protowire
// rather than generated code: Talos' Go modules cannot be fetched, and the
// few messages needed are smaller by hand than with a protoc toolchain.
// Unknown fields are skipped; malformed input is an error wrapping
// ErrMalformed, never a panic.
//
// # Server contract
//
// Server keeps the contract all of tinderbox's servers share: Serve(ctx,
// ln) blocks until ctx is cancelled, lets the RPCs in flight finish, and
// returns nil; it owns ln and closes it before returning. A nil
// Options.Logger discards logs, nil Options.Metrics counts nothing, nil
// Options.Recorder records nothing. Requests are bounded in size
// (Options.MaxMessage), RPCs per connection (Options.MaxStreams) and
// connections (Options.MaxConns); keepalive pings more often than every
// 10 s are refused. A malformed request is answered InvalidArgument,
// counted and logged at Debug, and the server keeps serving.
package talosevents
