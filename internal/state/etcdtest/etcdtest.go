// Package etcdtest starts a real etcd cluster inside a test process, on
// loopback, for tests of what runs on the etcd state store: the state
// package's own, and multi-replica daemon tests. Its members are
// go.etcd.io/etcd/server/v3/embed servers, each with its data under the
// test's temporary directory; they can be stopped and started again to
// take the cluster's quorum away and give it back.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// startTimeout bounds a member's start: an embedded member is ready in
// about a second; a minute leaves room for a busy two-core machine
// running the race detector.
const startTimeout = time.Minute

// Cluster is an etcd cluster of embedded members on 127.0.0.1. Its
// methods call t.Fatal on failure and must be called from the test's
// goroutine.
type Cluster struct {
	t       testing.TB
	opts    Options
	members []*member
}

// Options are a cluster's settings beyond its size.
type Options struct {
	// Fsync makes the members sync their log to disk as a production
	// etcd does, for benchmarks that measure what a write costs; tests
	// leave it off, as they need no durability across a power cut.
	Fsync bool
}

type member struct {
	name      string
	dir       string
	peer, cli url.URL
	cluster   string
	etcd      *embed.Etcd
}

// New starts a cluster of n members and waits until it has a leader; it
// is stopped when the test ends.
func New(t testing.TB, n int) *Cluster { return NewWith(t, n, Options{}) }

// NewWith is New with opts.
func NewWith(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, opts: opts}
	var initial []string
	for i := range n {
		m := &member{
			name: fmt.Sprintf("m%d", i),
			dir:  t.TempDir(),
			peer: url.URL{Scheme: "http", Host: freePort(t)},
			cli:  url.URL{Scheme: "http", Host: freePort(t)},
		}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peer.String())
	}
	for _, m := range c.members {
		m.cluster = strings.Join(initial, ",")
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			if m.etcd != nil {
				m.etcd.Close()
			}
		}
	})
	c.Start(indexes(n)...)
	return c
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// freePort returns a loopback address with a port no one listens on.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.cli.String()
	}
	return out
}

// Stop stops member i; its data stays for Start.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	m := c.members[i]
	if m.etcd == nil {
		c.t.Fatalf("etcdtest: member %d is not running", i)
	}
	m.etcd.Close()
	m.etcd = nil
}

// Start starts the members named (stopped ones, or all of a new
// cluster) at once, and waits until each is ready: part of a cluster
// with a leader.
func (c *Cluster) Start(idx ...int) {
	c.t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, i := range idx {
		m := c.members[i]
		cfg := embed.NewConfig()
		cfg.Name, cfg.Dir = m.name, m.dir
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{m.peer}, []url.URL{m.peer}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{m.cli}, []url.URL{m.cli}
		cfg.InitialCluster, cfg.InitialClusterToken = m.cluster, "etcdtest"
		cfg.ClusterState = embed.ClusterStateFlagNew
		cfg.UnsafeNoFsync = !c.opts.Fsync
		cfg.LogLevel = "error"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			c.t.Fatalf("etcdtest: start member %d: %v", i, err)
		}
		m.etcd = e
		wg.Go(func() {
			select {
			case <-e.Server.ReadyNotify():
			case err := <-e.Err():
				mu.Lock()
				errs = append(errs, fmt.Errorf("member %s: %w", m.name, err))
				mu.Unlock()
			case <-time.After(startTimeout):
				mu.Lock()
				errs = append(errs, fmt.Errorf("member %s: not ready after %s", m.name, startTimeout))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		c.t.Fatalf("etcdtest: %v", errs)
	}
}
