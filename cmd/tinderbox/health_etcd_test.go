package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/state/etcdtest"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
)

// TestHealthEtcdQuorum: a daemon on state.backend etcd is ok while the
// cluster has its quorum, degraded (still 200: it keeps answering from
// its cache) with the state check naming etcd once it has lost it, and
// ok again by itself once the members are back.
func TestHealthEtcdQuorum(t *testing.T) {
	cluster := etcdtest.New(t, 3)
	cfg := testConfig(t)
	writeIPXE(t, cfg)
	cfg.State.Backend = "etcd"
	cfg.State.Etcd.Endpoints = cluster.Endpoints()
	cfg.State.Etcd.Prefix = "/daemon/"
	cfg.State.Etcd.DialTimeout, cfg.State.Etcd.RequestTimeout = 5*time.Second, 2*time.Second
	d, _ := startDaemon(t, cfg)
	base := "http://" + d.httpAddr.String()

	if code, h := readyz(t, d); code != http.StatusOK || check(t, h, "state").Status != api.HealthOK {
		t.Fatalf("GET /readyz with etcd up: %d %+v, want the state check ok", code, h)
	}
	cluster.Stop(1)
	cluster.Stop(2)
	var code int
	var body string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, body = get(t, http.DefaultClient, base+"/healthz"); strings.HasPrefix(body, "degraded") || time.Now().After(deadline) {
			break
		}
	}
	if code != http.StatusOK || !strings.HasPrefix(body, "degraded: state: state: etcd: ") || !strings.Contains(body, "no quorum or unreachable since") {
		t.Errorf("GET /healthz without quorum: %d %q, want 200 degraded naming etcd", code, body)
	}
	if code, h := readyz(t, d); code != http.StatusOK || check(t, h, "state").Status != api.HealthDegraded {
		t.Errorf("GET /readyz without quorum: %d %+v, want 200 with the state check degraded", code, h)
	}
	cluster.Start(1, 2)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, body = get(t, http.DefaultClient, base+"/healthz"); body == "ok\n" || time.Now().After(deadline) {
			break
		}
	}
	if code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz once the quorum is back: %d %q, want ok", code, body)
	}
}
