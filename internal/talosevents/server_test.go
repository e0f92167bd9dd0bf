package talosevents

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// hang bounds every wait so that a broken server fails the test instead
// of hanging it; no test depends on how long anything takes.
const hang = 30 * time.Second

var received = time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)

type recorded struct {
	from netip.AddrPort
	ev   Event
}

// recorder keeps every event it is told of.
type recorder struct {
	mu  sync.Mutex
	got []recorded
}

func (r *recorder) TalosEvent(_ context.Context, from netip.AddrPort, ev Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, recorded{from, ev})
	return nil
}

func (r *recorder) events() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.got...)
}

// closeListener records whether Serve closed it.
type closeListener struct {
	net.Listener
	mu     sync.Mutex
	closed bool
}

func (l *closeListener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	return l.Listener.Close()
}

func (l *closeListener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// sink is a server running on a loopback listener.
type sink struct {
	addr string
	ln   *closeListener
	reg  *prometheus.Registry
	m    *Metrics
	rec  *recorder
	stop func() error // cancels Serve and returns its result
}

func startSink(t *testing.T, opts Options) *sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := &sink{addr: ln.Addr().String(), ln: &closeListener{Listener: ln}, reg: reg, m: NewMetrics(reg), rec: &recorder{}}
	if opts.Recorder == nil {
		opts.Recorder = s.rec
	}
	opts.Metrics = s.m
	opts.Now = func() time.Time { return received }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(opts).Serve(ctx, s.ln) }()
	s.stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(hang):
			t.Error("Serve did not return after cancel")
			return nil
		}
	})
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// dial connects a client to addr and reports the local address of the
// connection it makes: the source address the sink should see.
func dial(t *testing.T, addr string) (*grpc.ClientConn, func() netip.AddrPort) {
	t.Helper()
	var (
		mu    sync.Mutex
		local netip.AddrPort
	)
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", a)
			if err == nil {
				mu.Lock()
				local = c.LocalAddr().(*net.TCPAddr).AddrPort()
				mu.Unlock()
			}
			return c, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn, func() netip.AddrPort { mu.Lock(); defer mu.Unlock(); return local }
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), hang)
	t.Cleanup(cancel)
	return ctx
}

// installSequence is what a Talos node publishes from boot to a running
// installed system, with a failed install attempt before the good one.
var installSequence = []any{
	SequenceEvent{Sequence: "initialize", Action: SequenceStart},
	PhaseEvent{Phase: "systemRequirements", Action: StepStart},
	TaskEvent{Task: "setupSystemDirectory", Action: StepStart},
	TaskEvent{Task: "setupSystemDirectory", Action: StepStop},
	PhaseEvent{Phase: "systemRequirements", Action: StepStop},
	SequenceEvent{Sequence: "initialize", Action: SequenceStop},
	MachineStatusEvent{Stage: StageInstalling, Unmet: []UnmetCondition{{Name: "install", Reason: "installing"}}},
	SequenceEvent{Sequence: "install", Action: SequenceStart},
	PhaseEvent{Phase: "install", Action: StepStart},
	TaskEvent{Task: "install", Action: StepStart},
	TaskEvent{Task: "install", Action: StepStop},
	PhaseEvent{Phase: "install", Action: StepStop},
	SequenceEvent{Sequence: "install", Action: SequenceStop, Error: &Error{Code: CodeFatal, Message: "failed to install: no disk matched"}},
	SequenceEvent{Sequence: "install", Action: SequenceStart},
	SequenceEvent{Sequence: "install", Action: SequenceStop},
	SequenceEvent{Sequence: "reboot", Action: SequenceStart},
	ServiceStateEvent{Service: "apid", Action: ServiceRunning, Message: "Health check successful", Health: &ServiceHealth{Healthy: true}},
	MachineStatusEvent{Stage: StageRunning, Ready: true},
}

// TestRoundTrip publishes a whole install over a real loopback gRPC
// connection and checks that the recorder sees every event, decoded, in
// order, from the client's source address.
func TestRoundTrip(t *testing.T) {
	s := startSink(t, Options{})
	conn, local := dial(t, s.addr)
	ctx := ctxFor(t)
	ids := make([]string, len(installSequence))
	for i, msg := range installSequence {
		ids[i] = "ev" + string(rune('a'+i))
		if err := Publish(ctx, conn, ids[i], msg); err != nil {
			t.Fatalf("Publish #%d (%T): %v", i, msg, err)
		}
	}

	got := s.rec.events()
	if len(got) != len(installSequence) {
		t.Fatalf("recorder saw %d events, want %d", len(got), len(installSequence))
	}
	from := local()
	if !from.Addr().Is4() || from.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("client's local address %v is not 127.0.0.1", from)
	}
	for i, r := range got {
		want := Event{
			ID:       ids[i],
			TypeURL:  "type.googleapis.com/machine." + reflect.TypeOf(installSequence[i]).Name(),
			Message:  installSequence[i],
			Received: received,
		}
		if !reflect.DeepEqual(r.ev, want) {
			t.Errorf("event %d:\ngot  %#v\nwant %#v", i, r.ev, want)
		}
		if r.from != from {
			t.Errorf("event %d: from %v, want the client's address %v", i, r.from, from)
		}
	}

	if got := testutil.ToFloat64(s.m.requests.WithLabelValues("ok")); got != float64(len(installSequence)) {
		t.Errorf("requests ok: got %v, want %d", got, len(installSequence))
	}
	for kind, want := range map[string]float64{"sequence": 7, "phase": 4, "task": 4, "machine_status": 2, "service_state": 1, "unknown": 0} {
		if got := testutil.ToFloat64(s.m.events.WithLabelValues(kind)); got != want {
			t.Errorf("received %s: got %v, want %v", kind, got, want)
		}
	}
}

// TestBadRequests sends what Talos never would: each is refused with the
// right gRPC code and counted, the recorder never hears of it, and the
// server goes on answering good requests on the same connection.
func TestBadRequests(t *testing.T) {
	s := startSink(t, Options{MaxMessage: 1024})
	conn, _ := dial(t, s.addr)
	ctx := ctxFor(t)
	good := func(id string) {
		t.Helper()
		if err := Publish(ctx, conn, id, PhaseEvent{Phase: "install"}); err != nil {
			t.Fatalf("good request %s: %v", id, err)
		}
	}
	bad := []struct {
		name string
		req  []byte
		code codes.Code
	}{
		{"garbage", []byte("\xff\xff\xff\xff not protobuf"), codes.InvalidArgument},
		{"empty", nil, codes.InvalidArgument},
		{"no data", sField(2, "id"), codes.InvalidArgument},
		{"truncated", handRequest("id", "type.googleapis.com/machine.PhaseEvent", sField(1, "install"))[:20], codes.InvalidArgument},
		{"bad payload", handRequest("id", "type.googleapis.com/machine.SequenceEvent", []byte{0x0a, 0x7f}), codes.InvalidArgument},
		{"not UTF-8", handRequest("id", "type.googleapis.com/machine.TaskEvent", sField(1, "\xff")), codes.InvalidArgument},
		{"oversized", handRequest("id", "type.googleapis.com/machine.TaskEvent", sField(1, strings.Repeat("x", 2000))), codes.ResourceExhausted},
	}
	good("first")
	malformed := 0
	for _, tc := range bad {
		err := publishRaw(ctx, conn, tc.req)
		if got := status.Code(errors.Unwrap(err)); got != tc.code {
			t.Errorf("%s: got %v (%v), want %v", tc.name, got, err, tc.code)
		}
		if tc.code == codes.InvalidArgument {
			malformed++
		}
		good("after " + tc.name)
	}

	err := conn.Invoke(ctx, "/"+ServiceName+"/Subscribe", []byte{}, new([]byte), grpc.ForceCodec(rawCodec{}))
	if got := status.Code(err); got != codes.Unimplemented {
		t.Errorf("unknown method: got %v (%v), want Unimplemented", got, err)
	}

	got := s.rec.events()
	if len(got) != len(bad)+1 {
		t.Errorf("recorder saw %d events, want only the %d good ones", len(got), len(bad)+1)
	}
	for _, r := range got {
		if r.ev.Message != (PhaseEvent{Phase: "install"}) {
			t.Errorf("recorder saw %#v", r.ev)
		}
	}
	if got := testutil.ToFloat64(s.m.requests.WithLabelValues("malformed")); got != float64(malformed) {
		t.Errorf("malformed requests: got %v, want %d", got, malformed)
	}
}

// TestUnknownType checks that an event of a type the sink does not decode
// is still recorded, as Unknown with its type URL.
func TestUnknownType(t *testing.T) {
	s := startSink(t, Options{})
	conn, _ := dial(t, s.addr)
	url := "type.googleapis.com/machine.RestartEvent"
	if err := publishRaw(ctxFor(t), conn, cat(handRequest("r1", url, vField(1, 1)), sField(3, "actor-7"))); err != nil {
		t.Fatal(err)
	}
	want := Event{ID: "r1", ActorID: "actor-7", TypeURL: url, Message: Unknown{TypeURL: url}, Received: received}
	if got := s.rec.events(); len(got) != 1 || !reflect.DeepEqual(got[0].ev, want) {
		t.Errorf("got %#v, want one %#v", got, want)
	}
}

// failingRecorder cannot keep the events whose ID it names, as a
// recorder whose state store cannot write; it keeps the others.
type failingRecorder struct {
	*recorder
	fail string
}

func (f failingRecorder) TalosEvent(ctx context.Context, from netip.AddrPort, ev Event) error {
	if ev.ID == f.fail {
		return errors.New("state store unavailable")
	}
	return f.recorder.TalosEvent(ctx, from, ev)
}

// TestUnrecordedEvent: an event the recorder could not keep is answered
// Unavailable, so that Talos sends it again, and counted unrecorded, not
// ok; the connection takes the next event.
func TestUnrecordedEvent(t *testing.T) {
	rec := &recorder{}
	s := startSink(t, Options{Recorder: failingRecorder{recorder: rec, fail: "lost"}})
	conn, _ := dial(t, s.addr)
	ctx := ctxFor(t)
	if err := Publish(ctx, conn, "lost", SequenceEvent{Sequence: "install", Action: SequenceStop}); status.Code(err) != codes.Unavailable {
		t.Fatalf("Publish of an event the recorder cannot keep: %v, want Unavailable", err)
	}
	if err := Publish(ctx, conn, "kept", SequenceEvent{Sequence: "install", Action: SequenceStop}); err != nil {
		t.Fatalf("Publish of the next event: %v", err)
	}
	if got := rec.events(); len(got) != 1 || got[0].ev.ID != "kept" {
		t.Errorf("recorded %+v, want the one kept", got)
	}
	for res, want := range map[string]float64{"ok": 1, "unrecorded": 1, "malformed": 0} {
		if got := testutil.ToFloat64(s.m.requests.WithLabelValues(res)); got != want {
			t.Errorf("requests{result=%q}: got %v, want %v", res, got, want)
		}
	}
}

// blockingRecorder holds every event until released.
type blockingRecorder struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingRecorder) TalosEvent(context.Context, netip.AddrPort, Event) error {
	b.entered <- struct{}{}
	<-b.release
	return nil
}

// TestServeStopsGracefully cancels Serve while an RPC is in flight: the RPC
// completes, then Serve returns nil and has closed its listener.
func TestServeStopsGracefully(t *testing.T) {
	rec := &blockingRecorder{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s := startSink(t, Options{Recorder: rec})
	conn, _ := dial(t, s.addr)
	published := make(chan error, 1)
	go func() { published <- Publish(ctxFor(t), conn, "x", TaskEvent{Task: "t"}) }()
	select {
	case <-rec.entered:
	case <-time.After(hang):
		t.Fatal("the event never reached the recorder")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	close(rec.release)
	if err := <-published; err != nil {
		t.Errorf("Publish in flight during shutdown: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve: got %v, want nil", err)
	}
	if !s.ln.isClosed() {
		t.Error("Serve returned without closing its listener")
	}
	if _, err := s.ln.Listener.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Serve: got %v, want net.ErrClosed", err)
	}
}

// TestServeCancelled checks that Serve with a context already cancelled
// returns nil at once and closes its listener.
func TestServeCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &closeListener{Listener: ln}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := New(Options{}).Serve(ctx, cl); err != nil {
		t.Errorf("Serve: got %v, want nil", err)
	}
	if !cl.isClosed() {
		t.Error("Serve returned without closing its listener")
	}
}

// failingListener fails every Accept with a permanent error.
type failingListener struct {
	closeListener
}

func (l *failingListener) Accept() (net.Conn, error) {
	return nil, errors.New("accept: listener broken")
}

// TestServeListenerFails checks that a broken listener ends Serve with an
// error naming it, and that the listener is closed.
func TestServeListenerFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{closeListener{Listener: ln}}
	err = New(Options{}).Serve(t.Context(), fl)
	if err == nil || !strings.Contains(err.Error(), "listener broken") || !strings.HasPrefix(err.Error(), "talosevents: serve ") {
		t.Errorf("Serve: got %v, want the listener's error, wrapped", err)
	}
	if !fl.isClosed() {
		t.Error("Serve returned without closing its listener")
	}
}

// TestUnmapAddrPort checks that an IPv4 client accepted on an IPv6 socket
// is known by its plain IPv4 address.
func TestUnmapAddrPort(t *testing.T) {
	tests := []struct{ in, want string }{
		{"[::ffff:192.0.2.7]:5000", "192.0.2.7:5000"},
		{"192.0.2.7:5000", "192.0.2.7:5000"},
		{"[2001:db8::1]:5000", "[2001:db8::1]:5000"},
	}
	for _, tc := range tests {
		if got := unmapAddrPort(netip.MustParseAddrPort(tc.in)); got.String() != tc.want {
			t.Errorf("unmapAddrPort(%s): got %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestCodec checks the raw codec's refusals and that Unmarshal copies.
func TestCodec(t *testing.T) {
	var c rawCodec
	if _, err := c.Marshal("x"); err == nil {
		t.Error("Marshal(string): got no error")
	}
	if err := c.Unmarshal([]byte("x"), new(string)); err == nil {
		t.Error("Unmarshal into *string: got no error")
	}
	in := []byte("abc")
	var out []byte
	if err := c.Unmarshal(in, &out); err != nil {
		t.Fatal(err)
	}
	in[0] = 'X'
	if !bytes.Equal(out, []byte("abc")) {
		t.Errorf("Unmarshal kept its input: got %q", out)
	}
	if b, err := c.Marshal(&out); err != nil || !bytes.Equal(b, out) {
		t.Errorf("Marshal(*[]byte): got %q, %v", b, err)
	}
}
