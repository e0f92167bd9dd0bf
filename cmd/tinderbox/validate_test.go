package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// validateGolden is the whole output of validate on
// testdata/validate-broken, a tree with one of each problem.
const validateGolden = "testdata/validate-broken.golden"

// validateConfig writes a config file serving the profiles in dir (as
// given: a relative dir stays relative in validate's output).
func validateConfig(t *testing.T, dir string) string {
	t.Helper()
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "tinderbox.yaml")
	writeFile(t, cfg, fmt.Sprintf("advertise: 127.0.0.1\nhttp: {listen: \"127.0.0.1:18080\"}\ndhcp: {enabled: false}\ntftp: {enabled: false}\ncache: {dir: %[1]s/cache}\nstate: {dir: %[1]s/state}\nprofiles: {dir: %[2]s}\n", tmp, dir))
	return cfg
}

func runValidate(t *testing.T, cfg string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := execute(t.Context(), []string{"validate", "--config", cfg}, &out, &errOut)
	return out.String(), errOut.String(), exitCode(err, &errOut)
}

// TestValidateBrokenGolden: on a broken tree validate lists every problem
// (each machine's, those across machines, the kernel command lines') with
// file, line and fix, then the warnings, and exits 1. Run with -update to
// rewrite the golden file.
func TestValidateBrokenGolden(t *testing.T) {
	cfg := validateConfig(t, "testdata/validate-broken")
	stdout, stderr, code := runValidate(t, cfg)
	if code != 1 {
		t.Errorf("exit code: got %d, want 1", code)
	}
	got := []byte(strings.ReplaceAll("exit code "+fmt.Sprint(code)+"\n--- stdout\n"+stdout+"--- stderr\n"+stderr, cfg, "$CONFIG"))
	if *update {
		if err := os.WriteFile(validateGolden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(validateGolden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("validate output differs from %s (run with -update after checking it):\ngot:\n%s\nwant:\n%s", validateGolden, got, want)
	}
	// Each kind of problem, so that an -update cannot lose one unseen.
	for _, w := range []string{
		"configs/controlplane.yaml:12: machine 02-00-00-00-00-01: cluster.apiServer.certSANs: 192.168.1.10",
		"patches/stock-installer.yaml:3: machine 02-00-00-00-00-11: machine.install.image: ghcr.io/siderolabs/installer:v1.12.7 is not an Image Factory installer",
		"patches/other-schematic.yaml:3: machine 02-00-00-00-00-13: machine.install.image:",
		"patches/old-installer.yaml:3: machine 02-00-00-00-00-12: warning: machine.install.image:",
		"configs/worker.yaml:5: machine 02-00-00-00-00-14: machine.install: neither disk nor diskSelector",
		"machines/02-00-00-00-00-11.yaml:1: machine 02-00-00-00-00-11: hostname worker-01: machine 02-00-00-00-00-12",
		"patches/link.yaml:5: machine 02-00-00-00-00-03: LinkConfig[eth0].addresses[0].address: static address 192.168.1.12: machine 02-00-00-00-00-02",
		"patches/endpoint.yaml:3: machine 02-00-00-00-00-01 (and 7 other machine(s) with this endpoint): warning: cluster.controlPlane.endpoint: 192.168.1.10 is neither",
		`machine 02:00:00:00:00:15: kernel argument "#x"`,
		"11 problem(s) and 2 warning(s) found",
	} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q", w)
		}
	}
}

// TestValidateOnlyWarnings: warnings are printed, and validate exits 0.
func TestValidateOnlyWarnings(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, filepath.Join("..", "..", "profiles"), dir)
	writeFile(t, filepath.Join(dir, "patches", "pinned.yaml"), "machine:\n  install:\n    image: factory.talos.dev/installer/d4cf8602b9d285ede53209d5e8c482372d61d3b9aa850736c2dc65bd8d091cba:v1.12.6\n")
	f := filepath.Join(dir, "machines", "52-54-00-00-00-21.yaml")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, f, string(b)+"patches: [pinned]\n")
	stdout, stderr, code := runValidate(t, validateConfig(t, dir))
	if code != 0 || !strings.Contains(stdout, "4 machine(s) rendered, 1 warning(s)") ||
		!strings.Contains(stderr, "pinned.yaml:3: machine 52-54-00-00-00-21: warning: machine.install.image:") {
		t.Errorf("got exit code %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestValidateExampleVIPMoved: the example's endpoint and certSANs both
// follow values.vipHost, so moving the VIP (.50 to .10) validates; a
// certSANs entry written out by hand is what goes stale, and validate
// points at it, once per control-plane machine.
func TestValidateExampleVIPMoved(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, filepath.Join("..", "..", "profiles"), dir)
	f := filepath.Join(dir, "defaults.yaml")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, f, strings.Replace(string(b), "vipHost: 50", "vipHost: 10", 1))
	if _, stderr, code := runValidate(t, validateConfig(t, dir)); code != 0 {
		t.Fatalf("VIP moved in values: got exit code %d, stderr:\n%s", code, stderr)
	}

	cpFile := filepath.Join(dir, "configs", "controlplane.yaml")
	cp, err := os.ReadFile(cpFile)
	if err != nil {
		t.Fatal(err)
	}
	const templated = "            - {{ cidrhost .Values.lan .Values.vipHost }}"
	lines := strings.Split(string(cp), "\n")
	line := slices.Index(lines, templated) + 1
	if line == 0 {
		t.Fatalf("configs/controlplane.yaml has no line %q", templated)
	}
	lines[line-1] = "            - 192.168.1.50"
	writeFile(t, cpFile, strings.Join(lines, "\n"))
	_, stderr, code := runValidate(t, validateConfig(t, dir))
	want := fmt.Sprintf("%s:%d: machine 1c-69-7a-00-00-11: cluster.apiServer.certSANs: 192.168.1.10 (the host of cluster.controlPlane.endpoint) is not among them", cpFile, line)
	if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "3 problem(s) and 0 warning(s) found") {
		t.Errorf("got exit code %d, stderr:\n%s\nwant a line with %q", code, stderr, want)
	}
}
