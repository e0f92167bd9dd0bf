package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fleetTree writes a profiles directory of n machines into dir, built on
// the example profiles/: three control-plane NUCs, then workers (VMs);
// each machine has its own MAC, hostname and static address, so the tree
// validates without a problem. It returns the path of a config file that
// serves it.
func fleetTree(tb testing.TB, dir string, n int) string {
	tb.Helper()
	profilesDir := filepath.Join(dir, "profiles")
	copyTree(tb, filepath.Join("..", "..", "profiles"), profilesDir)
	old, err := filepath.Glob(filepath.Join(profilesDir, "machines", "*.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range n {
		host, groups := fmt.Sprintf("worker-%04d", i), "[worker, vm]"
		// The example's LAN is 192.168.1.0/24 (gateway .1, VIP .50); the
		// fleet's addresses go on from 192.168.2.0, 250 a /24.
		addr := fmt.Sprintf("192.168.%d.%d/16", 2+i/250, 1+i%250)
		if i < 3 {
			host, groups = fmt.Sprintf("cp-%02d", i+1), "[controlplane, nuc]"
			addr = fmt.Sprintf("192.168.1.%d/24", 11+i)
		}
		name := fmt.Sprintf("1c-69-7a-%02x-%02x-%02x.yaml", i>>16&0xff, i>>8&0xff, i&0xff)
		body := fmt.Sprintf("hostname: %s\ngroups: %s\nvalues:\n  address: %s\n", host, groups, addr)
		if err := os.WriteFile(filepath.Join(profilesDir, "machines", name), []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "tinderbox.yaml")
	body := fmt.Sprintf("advertise: 127.0.0.1\nhttp: {listen: \"127.0.0.1:18080\"}\ndhcp: {enabled: false}\ntftp: {enabled: false}\ncache: {dir: %[1]s/cache}\nstate: {dir: %[1]s/state}\nprofiles: {dir: %[1]s/profiles}\n", dir)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// BenchmarkValidate1000 runs `tinderbox validate` (config, every machine's
// render and checks, the checks across machines, every kernel command
// line) on a tree of 1000 machines. Issue 17's goal: under 3 s an
// operation (`make bench`; scripts/bench-validate.sh prints the median).
func BenchmarkValidate1000(b *testing.B) {
	const n = 1000
	cfg := fleetTree(b, b.TempDir(), n)
	want := fmt.Sprintf("ok, %d machine(s) rendered, 0 warning(s)", n)
	b.ReportAllocs()
	for b.Loop() {
		var stdout, stderr bytes.Buffer
		if err := execute(b.Context(), []string{"validate", "--config", cfg}, &stdout, &stderr); err != nil {
			b.Fatalf("validate: %v\n%s", err, stderr.String())
		}
		if !strings.Contains(stdout.String(), want) {
			b.Fatalf("validate: stdout lacks %q:\n%s\nstderr:\n%s", want, stdout.String(), stderr.String())
		}
	}
}
