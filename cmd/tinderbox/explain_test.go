package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestExplainCommand: explain prints each profile key and config field
// with the file and line that set it, PATH narrows it, secrets are
// masked, and a MAC without a profile is an error.
func TestExplainCommand(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, filepath.Join("..", "..", "internal", "profiles", "testdata", "explain"), dir)
	path := filepath.Join(dir, "tinderbox.yaml")
	writeFile(t, path, "advertise: 127.0.0.1\nhttp: {listen: \"127.0.0.1:8080\"}\ndhcp: {enabled: false}\ntftp: {enabled: false}\n"+
		"cache: {dir: "+dir+"/cache}\nstate: {dir: "+dir+"/state}\nprofiles: {dir: "+dir+"}\n")

	var out, errOut bytes.Buffer
	if err := execute(t.Context(), []string{"explain", "52-54-00-00-00-01", "--config", path}, &out, &errOut); err != nil {
		t.Fatalf("explain: %v\n%s", err, errOut.String())
	}
	for _, re := range []string{
		`(?m)^Profile of 52:54:00:00:00:01$`,
		`(?m)^  talos\.version +v1\.11\.6 +machines/52-54-00-00-00-01\.yaml:4$`,
		`(?m)^  values\.region +eu +defaults\.yaml:6$`,
		`(?m)^  install +once +default$`,
		`(?m)^  patches\[0\] +disk +groups/prod\.yaml:4$`,
		`(?m)^Config$`,
		`(?m)^  machine\.install\.disk +/dev/nvme0n1 +patches/disk\.yaml:3$`,
		`(?m)^  machine\.nodeLabels\.zone +a +patches/labels\.yaml:1$`,
		`(?m)^  machine\.network\.hostname +w-01 +filled by tinderbox$`,
		`(?m)^  cluster\.clusterName +eu-cluster +configs/node\.yaml:11$`,
	} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("explain output lacks %s:\n%s", re, out.String())
		}
	}

	out.Reset()
	if err := execute(t.Context(), []string{"explain", "52:54:00:00:00:01", "machine.install", "--config", path}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || lines[0] != "Config" || !strings.Contains(out.String(), "machine.install.image") || strings.Contains(out.String(), "Profile") {
		t.Errorf("explain machine.install: want Config and its three install fields only:\n%s", out.String())
	}

	writeFile(t, filepath.Join(dir, "configs", "node.yaml"), "version: v1alpha1\nmachine:\n  type: worker\n  token: SECRETTOKEN\n  install:\n    disk: /dev/sda\n")
	out.Reset()
	if err := execute(t.Context(), []string{"explain", "52:54:00:00:00:01", "machine.token", "--config", path}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "SECRETTOKEN") || !strings.Contains(out.String(), "<masked>") {
		t.Errorf("explain shows a secret:\n%s", out.String())
	}

	errOut.Reset()
	err := execute(t.Context(), []string{"explain", "52:54:00:00:00:09", "--config", path}, io.Discard, &errOut)
	if err == nil || !strings.Contains(err.Error(), "has no profile") {
		t.Errorf("unknown machine: got %v", err)
	}
}

// TestDiffCommand: against a running daemon, diff says "no change" (exit
// 0) right after the config is served, prints the changed lines (exit 1)
// after a patch changes, and exits 2 for a machine never served.
func TestDiffCommand(t *testing.T) {
	cfg := exampleConfig(t)
	d, _ := startDaemon(t, cfg)
	admin := "http://" + d.adminAddr.String()
	client := &http.Client{Timeout: 10 * time.Second}

	const mac = "1c:69:7a:00:00:11"
	_, script := get(t, client, "http://"+d.httpAddr.String()+"/ipxe?mac=1c-69-7a-00-00-11&arch=x86_64")
	m := regexp.MustCompile(`talos\.config=(\S+)`).FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("no talos.config in:\n%s", script)
	}
	if code, body := get(t, client, m[1]); code != http.StatusOK {
		t.Fatalf("config: %d %s", code, body)
	}
	_ = d.flow.Flush(t.Context())

	run := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := execute(t.Context(), append([]string{"diff", "--server", admin}, args...), &out, &errOut)
		code := exitCode(err, &errOut)
		return code, out.String(), errOut.String()
	}
	if code, out, errOut := run(mac); code != 0 || !strings.HasPrefix(out, "no change since "+mac) {
		t.Errorf("just served: exit %d, out %q, err %q; want 0 and no change", code, out, errOut)
	}

	patch := filepath.Join(cfg.Profiles.Dir, "patches", "common.yaml")
	b, err := os.ReadFile(patch)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, patch, strings.Replace(string(b), "gateway: {{ cidrhost .Values.lan 1 }}", "gateway: {{ cidrhost .Values.lan 2 }}", 1))
	if err := d.profiles.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(mac)
	minus, plus := 0, 0
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "---"), strings.HasPrefix(l, "+++"):
		case strings.HasPrefix(l, "-"):
			minus++
			if !strings.HasSuffix(l, "- gateway: 192.168.1.1") {
				t.Errorf("unexpected removed line %q", l)
			}
		case strings.HasPrefix(l, "+"):
			plus++
			if !strings.HasSuffix(l, "- gateway: 192.168.1.2") {
				t.Errorf("unexpected added line %q", l)
			}
		}
	}
	if code != 1 || minus != 1 || plus != 1 {
		t.Errorf("after the patch: exit %d, %d removed and %d added lines, want 1, 1, 1\n%s%s", code, minus, plus, out, errOut)
	}

	code, _, errOut = run("1c:69:7a:00:00:12")
	if code != 2 || !strings.Contains(errOut, "has not been served a config") {
		t.Errorf("never served: exit %d, stderr %q; want 2 and a message saying so", code, errOut)
	}
}
