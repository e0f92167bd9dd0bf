package proxydhcp

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var loopback = net.IPv4(127, 0, 0, 1).To4()

// recorder keeps what it is told.
type recorder struct {
	mu       sync.Mutex
	sent     []Sent
	observed []Client
}

func (r *recorder) DHCPObserved(_ context.Context, c Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.observed = append(r.observed, c)
}

func (r *recorder) seen() []Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Client(nil), r.observed...)
}

func (r *recorder) DHCPSent(_ context.Context, s Sent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, s)
}

func (r *recorder) all() []Sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Sent(nil), r.sent...)
}

func sendRaw(t *testing.T, to *net.UDPAddr, b []byte) {
	t.Helper()
	conn, err := net.DialUDP("udp4", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 2s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
