package talosevents

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
)

// Publish sends one event to an event sink over conn, as Talos does:
// an EventRequest with the given id carrying msg (see Marshal), to
// events.EventSinkService/Publish. It blocks until the sink answers and
// returns the RPC's error (a gRPC status error) or an encoding error.
// Tinderbox uses it in tests and in the end-to-end fake Talos.
func Publish(ctx context.Context, conn grpc.ClientConnInterface, id string, msg any) error {
	req, err := EncodeRequest(id, msg)
	if err != nil {
		return err
	}
	return publishRaw(ctx, conn, req)
}

// publishRaw sends req, the wire bytes of an EventRequest, as they are:
// for tests that send what no encoder would. It blocks until the sink
// answers.
func publishRaw(ctx context.Context, conn grpc.ClientConnInterface, req []byte) error {
	var resp []byte
	if err := conn.Invoke(ctx, PublishMethod, req, &resp, grpc.ForceCodec(rawCodec{})); err != nil {
		return fmt.Errorf("talosevents: publish: %w", err)
	}
	return nil
}
