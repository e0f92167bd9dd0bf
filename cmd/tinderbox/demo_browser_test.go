//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// demoEnv turns TestDemoBrowser on (make demo-test and make e2e set it): it
// needs root, QEMU and the e2e packages, and boots a VM for about a minute.
const demoEnv = "TINDERBOX_DEMO_TEST"

// demoShotsEnv names the folder for TestDemoBrowser's screenshots; unset,
// they go to .run/demo-screenshots at the repository's root.
const demoShotsEnv = "TINDERBOX_DEMO_SCREENSHOTS"

// demoMAC is the VM scripts/demo.sh boots: worker-01 of the example profiles.
const demoMAC = "52:54:00:00:00:21"

// TestDemoBrowser runs scripts/demo.sh (make demo) until its VM is ready and
// watches the machine in the web UI, from this host over the demo's veth,
// in headless Chromium: logged in with the token the demo prints, it takes
// a screenshot when the machine's row shows pending (before the VM is
// powered on), installing, installed and ready, and checks that the row
// showed that state both before and after each screenshot, so the picture
// holds it. The screenshots' paths are logged.
func TestDemoBrowser(t *testing.T) {
	if os.Getenv(demoEnv) == "" {
		t.Skipf("%s is not set: make demo-test runs this (root, QEMU, the packages of scripts/deps.sh e2e)", demoEnv)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, taps and port 67")
	}
	ctx := browser(t)
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv(demoShotsEnv)
	if dir == "" {
		dir = filepath.Join(repo, ".run", "demo-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	demo := startDemo(t, repo)
	ui, token := demo.line(t, "Web UI:"), demo.line(t, "Admin token:")

	step(t, ctx, "open the UI", chromedp.Navigate(ui), chromedp.WaitVisible(chromedp.CSS("#token")))
	step(t, ctx, "log in", chromedp.SetValue(chromedp.CSS("#token"), token), chromedp.Submit(chromedp.CSS("#token")), chromedp.WaitVisible(chromedp.CSS("#machines")))
	waitJS(t, ctx, "the event stream", `document.querySelector("#live").textContent.startsWith("Live")`)

	badge := fmt.Sprintf(`document.querySelector('tr[data-mac=%q] .badge')?.textContent`, demoMAC)
	start := time.Now()
	for i, want := range []string{"pending", "installing", "installed", "ready"} {
		demo.waitState(t, ctx, badge, want)
		at := time.Since(start)
		before := demo.eval(t, ctx, badge)
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			t.Fatalf("screenshot at %s: %v", want, err)
		}
		after := demo.eval(t, ctx, badge)
		if before != want || after != want {
			t.Fatalf("the row showed %q before the screenshot and %q after, want %q at both", before, after, want)
		}
		path := filepath.Join(dir, fmt.Sprintf("%d-%s.png", i+1, want))
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%-10s at %5.1fs: %s", want, at.Seconds(), path)
		if want == "pending" {
			// Power the VM on only now that pending is on record.
			if err := os.WriteFile(demo.gate, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := demo.wait(); err != nil {
		t.Fatalf("scripts/demo.sh: %v\n%s", err, demo.output())
	}
}

// demoRun is scripts/demo.sh running under a test.
type demoRun struct {
	gate string        // the file whose creation powers the VM on
	done chan struct{} // closed when the script has exited
	err  error         // the script's exit, once done is closed

	mu  sync.Mutex
	out strings.Builder // the script's output so far
}

// startDemo starts scripts/demo.sh with DEMO_EXIT_AFTER=ready and its VM
// held until the gate file exists; a cleanup stops it (SIGTERM: the script
// removes what it made) and waits for it.
func startDemo(t *testing.T, repo string) *demoRun {
	t.Helper()
	d := &demoRun{gate: filepath.Join(t.TempDir(), "power-on"), done: make(chan struct{})}
	cmd := exec.Command(filepath.Join(repo, "scripts", "demo.sh"))
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "DEMO_EXIT_AFTER=ready", "DEMO_POWER_ON_AFTER="+d.gate)
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start scripts/demo.sh: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
		}
	}()
	go func() {
		d.err = cmd.Wait()
		w.Close()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-d.done
		}
		t.Logf("scripts/demo.sh said:\n%s", d.output())
	})
	return d
}

func (d *demoRun) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// wait waits for the script to exit and returns its error.
func (d *demoRun) wait() error {
	<-d.done
	return d.err
}

// line waits up to 5 minutes (the first run builds the stand-in Talos)
// for the script's line "  LABEL value" and returns the value.
func (d *demoRun) line(t *testing.T, label string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		for l := range strings.Lines(d.output()) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), label); ok {
				return strings.TrimSpace(v)
			}
		}
		select {
		case <-d.done:
			t.Fatalf("scripts/demo.sh exited (%v) before printing %q:\n%s", d.err, label, d.output())
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatalf("scripts/demo.sh printed no %q:\n%s", label, d.output())
	return ""
}

// waitState waits up to 5 minutes, or until the script exits, for the
// expression to give want in the page.
func (d *demoRun) waitState(t *testing.T, ctx context.Context, expr, want string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	go func() {
		select {
		case <-d.done:
			cancel()
		case <-sctx.Done():
		}
	}()
	if _, err := chromedp.Run(sctx, chromedp.Poll[bool](fmt.Sprintf("(%s) === %q", expr, want), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("waiting for the machine to show %s (it shows %q): %v\npage: %s\nscripts/demo.sh said:\n%s", want, d.eval(t, ctx, expr), err, pageText(ctx), d.output())
	}
}

// eval returns the expression's value in the page as text.
func (d *demoRun) eval(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Evaluate[string](fmt.Sprintf("String(%s)", expr)))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}
