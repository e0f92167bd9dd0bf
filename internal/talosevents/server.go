package talosevents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// The service and method Talos calls (siderolink, api/events/events.proto:
// package events, service EventSinkService, rpc Publish).
const (
	ServiceName = "events.EventSinkService"
	// PublishMethod is the full gRPC method name of Publish.
	PublishMethod = "/" + ServiceName + "/Publish"
)

// Defaults for Options.
const (
	// DefaultMaxMessage bounds one EventRequest: Talos' events are a few
	// hundred bytes; the largest, a failed sequence's error, stays far
	// below 64 KiB.
	DefaultMaxMessage = 64 << 10
	// DefaultMaxStreams bounds the RPCs in flight on one connection: Talos
	// publishes one event at a time and waits for the answer.
	DefaultMaxStreams = 16
	// DefaultMaxConns bounds open connections: each Talos node keeps one;
	// a rack booting at once is a few hundred nodes. Beyond it, new
	// connections wait in the kernel's accept queue.
	DefaultMaxConns = 1024
)

const (
	// idleTimeout closes a connection that has carried no RPC for this
	// long; Talos dials again for its next event.
	idleTimeout = 5 * time.Minute
	// minPingInterval is the shortest keepalive ping interval a client may
	// use: 10 s is the least grpc-go clients can ask, so no grpc-go client
	// is ever sent away for pinging, while a flood of pings is.
	minPingInterval = 10 * time.Second
	// handshakeTimeout bounds the HTTP/2 preface of a new connection.
	handshakeTimeout = 10 * time.Second
	// shutdownGrace is how long Serve lets RPCs in flight finish once ctx
	// is cancelled before it cuts the connections.
	shutdownGrace = 5 * time.Second
)

// Recorder learns of every event received. TalosEvent is called from the
// RPC's goroutine before Publish is answered, with the context Serve was
// given and the client's source address (IPv4 unmapped); Talos publishes
// one event at a time, so one node's events arrive in the order it sent
// them. It must be safe for concurrent use and should not block: Talos
// waits for the answer before it sends its next event.
type Recorder interface {
	// TalosEvent records ev. An error means ev could not be kept for
	// now (the state store cannot write): Publish is answered
	// Unavailable, and Talos sends the event again, with those after it,
	// once it has reconnected (its sink resumes after the last event a
	// Publish acknowledged). An event it chose to drop is not an error.
	TalosEvent(ctx context.Context, from netip.AddrPort, ev Event) error
}

// NopRecorder records nothing.
type NopRecorder struct{}

// TalosEvent does nothing.
func (NopRecorder) TalosEvent(context.Context, netip.AddrPort, Event) error { return nil }

// Options configures New. All fields are optional.
type Options struct {
	// Recorder is told of every event; nil records nothing.
	Recorder Recorder
	// Logger gets one Debug line per event and per refused request; nil
	// discards.
	Logger *slog.Logger
	// Metrics counts requests and events; nil counts nothing.
	Metrics *Metrics
	// MaxMessage bounds one request in bytes; larger ones are refused with
	// ResourceExhausted before they are read. 0 means DefaultMaxMessage.
	MaxMessage int
	// MaxStreams bounds concurrent RPCs per connection; 0 means
	// DefaultMaxStreams.
	MaxStreams int
	// MaxConns bounds open connections; 0 means DefaultMaxConns.
	MaxConns int
	// Now is the clock that stamps Event.Received; nil means time.Now.
	Now func() time.Time
}

// Server is Talos' event sink: a plain (insecure) gRPC server with the one
// method Talos calls. It is safe for concurrent use.
type Server struct {
	rec        Recorder
	log        *slog.Logger
	m          *Metrics
	maxMessage int
	maxStreams int
	maxConns   int
	now        func() time.Time
}

// New returns a server; call Serve to run it.
func New(opts Options) *Server {
	s := &Server{
		rec: opts.Recorder, log: opts.Logger, m: opts.Metrics, now: opts.Now,
		maxMessage: opts.MaxMessage, maxStreams: opts.MaxStreams, maxConns: opts.MaxConns,
	}
	if s.rec == nil {
		s.rec = NopRecorder{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.m == nil {
		// Collectors on a registry nobody gathers: counting into them is
		// the no-op, and the handler needs no nil checks.
		s.m = NewMetrics(prometheus.NewRegistry())
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxMessage <= 0 {
		s.maxMessage = DefaultMaxMessage
	}
	if s.maxStreams <= 0 {
		s.maxStreams = DefaultMaxStreams
	}
	if s.maxConns <= 0 {
		s.maxConns = DefaultMaxConns
	}
	return s
}

// serviceDesc registers Publish by hand: the request is decoded from its
// wire bytes by DecodeRequest, so no generated code is needed.
var serviceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Publish",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var raw []byte
			if err := dec(&raw); err != nil {
				return nil, err
			}
			return srv.(*Server).publish(ctx, raw)
		},
	}},
	Metadata: "events/events.proto",
}

// Serve answers Talos' Publish calls on ln until ctx is cancelled, then
// lets the RPCs in flight finish (cutting them after a few seconds), and
// returns nil. It blocks. Serve closes ln before it returns, whatever the
// outcome. A malformed request is answered InvalidArgument and counted;
// only a failing listener ends Serve early, with an error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if ctx.Err() != nil {
		_ = ln.Close()
		return nil
	}
	gs := grpc.NewServer(
		grpc.ForceServerCodec(rawCodec{}),
		grpc.MaxRecvMsgSize(s.maxMessage),
		grpc.MaxConcurrentStreams(uint32(s.maxStreams)),
		grpc.ConnectionTimeout(handshakeTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime: minPingInterval, PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: idleTimeout}),
	)
	gs.RegisterService(&serviceDesc, s)

	stopped := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(stopped)
		done := make(chan struct{})
		go func() { gs.GracefulStop(); close(done) }()
		t := time.NewTimer(shutdownGrace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			gs.Stop()
			<-done
		}
	})
	err := gs.Serve(netutil.LimitListener(ln, s.maxConns))
	if !stop() {
		// ctx was cancelled: Serve returned because of the stop; wait
		// until the RPCs in flight are done.
		<-stopped
		return nil
	}
	gs.Stop()
	_ = ln.Close()
	if err == nil || errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return fmt.Errorf("talosevents: serve %s: %w", ln.Addr(), err)
}

// publish decodes one request, hands the event to the recorder, and
// answers an empty EventResponse. A panic (in the Recorder, say) is
// recovered, counted and logged, and answered Internal: gRPC does not
// recover handlers' panics, and one would end the process.
func (s *Server) publish(ctx context.Context, raw []byte) (_ any, err error) {
	var from netip.AddrPort
	if p, ok := peer.FromContext(ctx); ok {
		if ta, ok := p.Addr.(*net.TCPAddr); ok {
			from = unmapAddrPort(ta.AddrPort())
		}
	}
	defer func() {
		if v := recover(); v != nil {
			s.m.panics.Caught(v, s.log, slog.String("remote", from.String()))
			err = status.Error(codes.Internal, "tinderbox could not handle the event")
		}
	}()
	req, err := DecodeRequest(raw)
	var msg any
	if err == nil {
		msg, err = Decode(req.TypeURL, req.Value)
	}
	if err != nil {
		s.m.requests.WithLabelValues(string(resultMalformed)).Inc()
		s.log.Debug("talos event refused", "remote", from.String(), "bytes", len(raw), "err", err)
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	ev := Event{ID: req.ID, ActorID: req.ActorID, TypeURL: req.TypeURL, Message: msg, Received: s.now()}
	s.m.events.WithLabelValues(kindOf(msg)).Inc()
	s.log.Debug("talos event", "remote", from.String(), "id", ev.ID, "type", req.TypeURL)
	if err := s.rec.TalosEvent(ctx, from, ev); err != nil {
		s.m.requests.WithLabelValues(string(resultUnrecorded)).Inc()
		return nil, status.Error(codes.Unavailable, "event not recorded; send it again later")
	}
	s.m.requests.WithLabelValues(string(resultOK)).Inc()
	return []byte{}, nil
}

// rawCodec hands gRPC messages over as their wire bytes: the server
// unmarshals into a *[]byte and marshals a []byte (the empty
// EventResponse). It stands in for the proto codec, so it takes its name.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return b, nil
	case *[]byte:
		return *b, nil
	}
	return nil, fmt.Errorf("talosevents: codec: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("talosevents: codec: cannot unmarshal into %T", v)
	}
	// gRPC may reuse data's buffer once Unmarshal returns.
	*p = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }
