package talosevents

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Marshal encodes an event as Talos does: the type URL (TypeURLPrefix and
// the message's full name) and the message's wire bytes. msg is a
// SequenceEvent, PhaseEvent, TaskEvent, MachineStatusEvent,
// ServiceStateEvent, ConfigLoadErrorEvent, ConfigValidationErrorEvent or
// AddressEvent value; anything else, Unknown included, is an error. Zero
// scalars are left out, as proto3 does; MachineStatusEvent always carries
// its status, as Talos sends it.
func Marshal(msg any) (typeURL string, value []byte, err error) {
	var (
		b    []byte
		name string
	)
	switch m := msg.(type) {
	case SequenceEvent:
		name = NameSequenceEvent
		b = appendString(b, 1, m.Sequence)
		b = appendEnum(b, 2, int32(m.Action))
		if m.Error != nil {
			var e []byte
			e = appendEnum(e, 1, int32(m.Error.Code))
			e = appendString(e, 2, m.Error.Message)
			b = appendMessage(b, 3, e)
		}
	case PhaseEvent:
		name = NamePhaseEvent
		b = appendString(b, 1, m.Phase)
		b = appendEnum(b, 2, int32(m.Action))
	case TaskEvent:
		name = NameTaskEvent
		b = appendString(b, 1, m.Task)
		b = appendEnum(b, 2, int32(m.Action))
	case MachineStatusEvent:
		name = NameMachineStatusEvent
		b = appendEnum(b, 1, int32(m.Stage))
		var s []byte
		s = appendBool(s, 1, m.Ready)
		for _, c := range m.Unmet {
			var u []byte
			u = appendString(u, 1, c.Name)
			u = appendString(u, 2, c.Reason)
			s = appendMessage(s, 2, u)
		}
		b = appendMessage(b, 2, s)
	case ServiceStateEvent:
		name = NameServiceStateEvent
		b = appendString(b, 1, m.Service)
		b = appendEnum(b, 2, int32(m.Action))
		b = appendString(b, 3, m.Message)
		if h := m.Health; h != nil {
			var e []byte
			e = appendBool(e, 1, h.Unknown)
			e = appendBool(e, 2, h.Healthy)
			e = appendString(e, 3, h.LastMessage)
			if !h.LastChange.IsZero() {
				e = appendMessage(e, 4, appendTimestamp(nil, h.LastChange))
			}
			b = appendMessage(b, 4, e)
		}
	case ConfigLoadErrorEvent:
		name = NameConfigLoadErrorEvent
		b = appendString(b, 1, m.Error)
	case ConfigValidationErrorEvent:
		name = NameConfigValidationErrorEvent
		b = appendString(b, 1, m.Error)
	case AddressEvent:
		name = NameAddressEvent
		b = appendString(b, 1, m.Hostname)
		for _, a := range m.Addresses {
			// Repeated strings carry every element, empty ones included.
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendString(b, a)
		}
	default:
		return "", nil, fmt.Errorf("talosevents: marshal %T: not a Talos event this package encodes", msg)
	}
	return TypeURLPrefix + name, b, nil
}

// EncodeRequest encodes an EventRequest carrying msg (see Marshal) with
// the given id and no actor id.
func EncodeRequest(id string, msg any) ([]byte, error) {
	typeURL, value, err := Marshal(msg)
	if err != nil {
		return nil, err
	}
	return appendRequest(nil, id, "", typeURL, value), nil
}

// appendRequest appends an EventRequest: data = 1 (an Any: type_url = 1,
// value = 2), id = 2, actor_id = 3. The Any is always present.
func appendRequest(b []byte, id, actorID, typeURL string, value []byte) []byte {
	var a []byte
	a = appendString(a, 1, typeURL)
	if len(value) > 0 {
		a = protowire.AppendTag(a, 2, protowire.BytesType)
		a = protowire.AppendBytes(a, value)
	}
	b = appendMessage(b, 1, a)
	b = appendString(b, 2, id)
	b = appendString(b, 3, actorID)
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendEnum appends an enum or int32; a negative value is sign-extended
// to ten bytes, as proto3 encodes int32.
func appendEnum(b []byte, num protowire.Number, v int32) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(int64(v)))
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, 1)
}

// appendMessage appends an embedded message, even an empty one: presence
// is what tells a set message from an absent one.
func appendMessage(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

// appendTimestamp appends a google.protobuf.Timestamp's fields (int64
// seconds = 1, int32 nanos = 2) for t.
func appendTimestamp(b []byte, t time.Time) []byte {
	if s := t.Unix(); s != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(s))
	}
	return appendEnum(b, 2, int32(t.Nanosecond()))
}
