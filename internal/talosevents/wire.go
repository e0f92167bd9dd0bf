package talosevents

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed is wrapped by every error DecodeRequest and Decode return
// for bytes that are not a valid message of the expected type.
var ErrMalformed = errors.New("malformed protobuf")

// Bounds on what one request may carry. A message is already bounded by
// the server's maximum message size; these keep a small message of many
// tiny entries from turning into a large allocation.
const (
	// maxTypeURL bounds the Any's type_url: Talos' are under 50 bytes.
	maxTypeURL = 512
	// maxUnmet bounds MachineStatusEvent's unmet conditions: Talos has a
	// handful of conditions (config, network, time, services).
	maxUnmet = 256
	// maxAddresses bounds AddressEvent's addresses.
	maxAddresses = 256
)

// Request is an EventRequest (siderolink, api/events/events.proto) with its
// Any unpacked: data = 1 (type_url = 1, value = 2 inside), id = 2,
// actor_id = 3.
type Request struct {
	ID      string
	ActorID string
	TypeURL string
	// Value is the payload's wire bytes, a copy owned by the Request.
	Value []byte
}

// DecodeRequest parses an EventRequest. Unknown fields are skipped, and a
// known field sent with another wire type is skipped too, as protobuf-go
// does. It returns an error wrapping ErrMalformed for truncated or invalid
// wire data, strings that are not UTF-8, a request without data, an empty
// or over-long type URL. It never panics and does not keep b.
func DecodeRequest(b []byte) (Request, error) {
	var (
		r       Request
		hasData bool
	)
	err := eachField(b, func(f field) error {
		if f.typ != protowire.BytesType {
			return nil
		}
		var err error
		switch f.num {
		case 1:
			hasData = true
			err = decodeAny(f.bytes, &r)
		case 2:
			r.ID, err = str(f)
		case 3:
			r.ActorID, err = str(f)
		}
		return err
	})
	switch {
	case err != nil:
		return Request{}, fmt.Errorf("talosevents: EventRequest: %w", err)
	case !hasData:
		return Request{}, fmt.Errorf("talosevents: EventRequest: %w: no data", ErrMalformed)
	case r.TypeURL == "":
		return Request{}, fmt.Errorf("talosevents: EventRequest: %w: empty type URL", ErrMalformed)
	case len(r.TypeURL) > maxTypeURL:
		return Request{}, fmt.Errorf("talosevents: EventRequest: %w: type URL of %d bytes, over %d", ErrMalformed, len(r.TypeURL), maxTypeURL)
	}
	return r, nil
}

// decodeAny merges a google.protobuf.Any (type_url = 1, value = 2) into r.
func decodeAny(b []byte, r *Request) error {
	return eachField(b, func(f field) error {
		if f.typ != protowire.BytesType {
			return nil
		}
		var err error
		switch f.num {
		case 1:
			r.TypeURL, err = str(f)
		case 2:
			r.Value = append([]byte(nil), f.bytes...)
		}
		return err
	})
}

// messageName is the full message name of a type URL: what follows its
// last slash, as google.protobuf.Any defines it.
func messageName(typeURL string) string {
	return typeURL[strings.LastIndexByte(typeURL, '/')+1:]
}

// Decode decodes an event payload by its type URL: a SequenceEvent,
// PhaseEvent, TaskEvent, MachineStatusEvent, ServiceStateEvent,
// ConfigLoadErrorEvent, ConfigValidationErrorEvent or AddressEvent value
// for the machine.* names of Talos' api/machine/machine.proto (whatever the
// prefix before the last slash), and Unknown{TypeURL} for any other type.
// Unknown fields are skipped; an error wraps ErrMalformed. It never panics
// and does not keep value.
func Decode(typeURL string, value []byte) (any, error) {
	var (
		msg any
		err error
	)
	switch name := messageName(typeURL); name {
	case NameSequenceEvent:
		var e SequenceEvent
		err = decodeSequence(value, &e)
		msg = e
	case NamePhaseEvent:
		var e PhaseEvent
		err = decodeStep(value, &e.Phase, &e.Action)
		msg = e
	case NameTaskEvent:
		var e TaskEvent
		err = decodeStep(value, &e.Task, &e.Action)
		msg = e
	case NameMachineStatusEvent:
		var e MachineStatusEvent
		err = decodeMachineStatus(value, &e)
		msg = e
	case NameServiceStateEvent:
		var e ServiceStateEvent
		err = decodeServiceState(value, &e)
		msg = e
	case NameConfigLoadErrorEvent:
		var e ConfigLoadErrorEvent
		err = decodeOneString(value, &e.Error)
		msg = e
	case NameConfigValidationErrorEvent:
		var e ConfigValidationErrorEvent
		err = decodeOneString(value, &e.Error)
		msg = e
	case NameAddressEvent:
		var e AddressEvent
		err = decodeAddress(value, &e)
		msg = e
	default:
		return Unknown{TypeURL: typeURL}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("talosevents: %s: %w", messageName(typeURL), err)
	}
	return msg, nil
}

func decodeSequence(b []byte, e *SequenceEvent) error {
	return eachField(b, func(f field) error {
		switch {
		case f.num == 1 && f.typ == protowire.BytesType:
			s, err := str(f)
			e.Sequence = s
			return err
		case f.num == 2 && f.typ == protowire.VarintType:
			e.Action = SequenceAction(int32(f.varint))
		case f.num == 3 && f.typ == protowire.BytesType:
			if e.Error == nil { // a message field sent twice is merged
				e.Error = &Error{}
			}
			return decodeError(f.bytes, e.Error)
		}
		return nil
	})
}

func decodeError(b []byte, e *Error) error {
	return eachField(b, func(f field) error {
		switch {
		case f.num == 1 && f.typ == protowire.VarintType:
			e.Code = ErrorCode(int32(f.varint))
		case f.num == 2 && f.typ == protowire.BytesType:
			s, err := str(f)
			e.Message = s
			return err
		}
		return nil
	})
}

// decodeStep decodes PhaseEvent and TaskEvent, which share a shape:
// a string = 1 and an action = 2.
func decodeStep(b []byte, name *string, action *StepAction) error {
	return eachField(b, func(f field) error {
		switch {
		case f.num == 1 && f.typ == protowire.BytesType:
			s, err := str(f)
			*name = s
			return err
		case f.num == 2 && f.typ == protowire.VarintType:
			*action = StepAction(int32(f.varint))
		}
		return nil
	})
}

func decodeMachineStatus(b []byte, e *MachineStatusEvent) error {
	return eachField(b, func(f field) error {
		switch {
		case f.num == 1 && f.typ == protowire.VarintType:
			e.Stage = MachineStage(int32(f.varint))
		case f.num == 2 && f.typ == protowire.BytesType:
			return decodeStatus(f.bytes, e)
		}
		return nil
	})
}

// decodeStatus merges a MachineStatusEvent.MachineStatus into e.
func decodeStatus(b []byte, e *MachineStatusEvent) error {
	return eachField(b, func(f field) error {
		switch {
		case f.num == 1 && f.typ == protowire.VarintType:
			e.Ready = f.varint != 0
		case f.num == 2 && f.typ == protowire.BytesType:
			if len(e.Unmet) == maxUnmet {
				return fmt.Errorf("%w: more than %d unmet conditions", ErrMalformed, maxUnmet)
			}
			var c UnmetCondition
			if err := decodeCondition(f.bytes, &c); err != nil {
				return err
			}
			e.Unmet = append(e.Unmet, c)
		}
		return nil
	})
}

func decodeCondition(b []byte, c *UnmetCondition) error {
	return eachField(b, func(f field) error {
		if f.typ != protowire.BytesType {
			return nil
		}
		var err error
		switch f.num {
		case 1:
			c.Name, err = str(f)
		case 2:
			c.Reason, err = str(f)
		}
		return err
	})
}

func decodeServiceState(b []byte, e *ServiceStateEvent) error {
	return eachField(b, func(f field) error {
		var err error
		switch {
		case f.num == 1 && f.typ == protowire.BytesType:
			e.Service, err = str(f)
		case f.num == 2 && f.typ == protowire.VarintType:
			e.Action = ServiceAction(int32(f.varint))
		case f.num == 3 && f.typ == protowire.BytesType:
			e.Message, err = str(f)
		case f.num == 4 && f.typ == protowire.BytesType:
			if e.Health == nil {
				e.Health = &ServiceHealth{}
			}
			err = decodeHealth(f.bytes, e.Health)
		}
		return err
	})
}

func decodeHealth(b []byte, h *ServiceHealth) error {
	return eachField(b, func(f field) error {
		var err error
		switch {
		case f.num == 1 && f.typ == protowire.VarintType:
			h.Unknown = f.varint != 0
		case f.num == 2 && f.typ == protowire.VarintType:
			h.Healthy = f.varint != 0
		case f.num == 3 && f.typ == protowire.BytesType:
			h.LastMessage, err = str(f)
		case f.num == 4 && f.typ == protowire.BytesType:
			h.LastChange, err = decodeTimestamp(f.bytes, h.LastChange)
		}
		return err
	})
}

// decodeTimestamp merges a google.protobuf.Timestamp (int64 seconds = 1,
// int32 nanos = 2) into prev and returns it in UTC.
func decodeTimestamp(b []byte, prev time.Time) (time.Time, error) {
	var sec, nsec int64
	if !prev.IsZero() {
		sec, nsec = prev.Unix(), int64(prev.Nanosecond())
	}
	err := eachField(b, func(f field) error {
		switch {
		case f.num == 1 && f.typ == protowire.VarintType:
			sec = int64(f.varint)
		case f.num == 2 && f.typ == protowire.VarintType:
			nsec = int64(int32(f.varint))
		}
		return nil
	})
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(sec, nsec).UTC(), nil
}

// decodeOneString decodes a message whose only field is a string = 1.
func decodeOneString(b []byte, s *string) error {
	return eachField(b, func(f field) error {
		if f.num != 1 || f.typ != protowire.BytesType {
			return nil
		}
		v, err := str(f)
		*s = v
		return err
	})
}

func decodeAddress(b []byte, e *AddressEvent) error {
	return eachField(b, func(f field) error {
		if f.typ != protowire.BytesType {
			return nil
		}
		switch f.num {
		case 1:
			s, err := str(f)
			e.Hostname = s
			return err
		case 2:
			if len(e.Addresses) == maxAddresses {
				return fmt.Errorf("%w: more than %d addresses", ErrMalformed, maxAddresses)
			}
			s, err := str(f)
			if err != nil {
				return err
			}
			e.Addresses = append(e.Addresses, s)
		}
		return nil
	})
}

// field is one field of a message: its number, wire type and, for the
// varint and length-delimited types, its value (bytes alias the input).
type field struct {
	num    protowire.Number
	typ    protowire.Type
	varint uint64
	bytes  []byte
}

// eachField calls fn for every field of the message in b, in order, and
// stops at fn's first error. Fixed-width and group fields are checked and
// passed with no value. Wire errors wrap ErrMalformed.
func eachField(b []byte, fn func(field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: tag: %v", ErrMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.varint, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.bytes, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %v", ErrMalformed, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// str returns a length-delimited field as a string; proto3 strings must be
// UTF-8, and protobuf-go refuses those that are not.
func str(f field) (string, error) {
	if !utf8.Valid(f.bytes) {
		return "", fmt.Errorf("%w: field %d: string is not UTF-8", ErrMalformed, f.num)
	}
	return string(f.bytes), nil
}
