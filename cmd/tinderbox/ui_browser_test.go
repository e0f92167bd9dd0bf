//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"pack.ag/tftp"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// screenshotsEnv names the folder TestUIBrowser saves its screenshots in
// (make ui-screenshots sets it); unset, it takes none.
const screenshotsEnv = "TINDERBOX_UI_SCREENSHOTS"

// chromium finds the browser, or skips the test saying how to get it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH: the browser tests need it (Debian: apt-get install -y chromium)")
	return ""
}

// browser starts headless Chromium with a fresh profile and returns a tab
// whose JavaScript dialogs (the UI's confirmations) are accepted.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := chromium(t)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	go func() {
		for _, err := range chromedp.Events(ctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return ctx
}

// step runs browser actions with a deadline, failing the test with what.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v\npage: %s", what, err, pageText(ctx))
	}
}

// text returns the text of the first element sel matches.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).textContent`, sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// pageText is the page's address and text, for failure messages.
func pageText(ctx context.Context) string {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(dctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
	if err != nil {
		return err.Error()
	}
	return s
}

// setInput sets a field's value as typing would, input event included.
func setInput(t *testing.T, ctx context.Context, sel, value string) {
	t.Helper()
	step(t, ctx, "set "+sel, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event("input")); })()`, sel, value)))
}

// waitJS waits until the expression is truthy in the page.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(sctx, chromedp.Poll[bool]("!!("+expr+")", chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s: %v\npage: %s", what, err, pageText(ctx))
	}
}

// shots saves full-page screenshots of the page at a desktop and a phone
// viewport when screenshotsEnv is set.
func shots(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, vp := range []struct {
		name   string
		w, h   int64
		mobile bool
	}{{"desktop", 1280, 800, false}, {"phone", 390, 844, true}} {
		step(t, ctx, "viewport "+vp.name, chromedp.EmulateViewport(vp.w, vp.h, chromedp.EmulateScale(2), func(p *emulation.SetDeviceMetricsOverrideParams, _ *emulation.SetTouchEmulationEnabledParams) {
			p.Mobile = vp.mobile
		}))
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+"-"+vp.name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	step(t, ctx, "viewport back", chromedp.EmulateViewport(1280, 800))
}

// TestUIBrowser drives the web UI in headless Chromium against the daemon
// on loopback: log in, watch a new machine appear live as a simulated node
// boots, open it and see its boot timeline, write its profile with a
// mistake (shown, nothing written), fix it (written, rendered), re-arm it
// for a reinstall. With screenshotsEnv set it saves every page's
// screenshots.
func TestUIBrowser(t *testing.T) {
	ctx := browser(t)
	cfg := exampleConfig(t)
	cfg.DHCP.Enabled, cfg.DHCP.Port, cfg.DHCP.PXEPort = true, freeUDPPort(t), freeUDPPort(t)
	cfg.TFTP.Enabled = true
	cfg.Reports.Enabled, cfg.Reports.EventsListen, cfg.Reports.LogsListen = true, "127.0.0.1:0", "127.0.0.1:0"
	token := rand.Text() + rand.Text() // 2 × 26 base32 characters: 260 bits, as admin.tokenFile wants
	cfg.Admin.TokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(cfg.Admin.TokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfg.IPXE.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ipxeEFI := bytes.Repeat([]byte("iPXE for UEFI "), 5000)
	if err := os.WriteFile(filepath.Join(cfg.IPXE.Dir, "ipxe.efi"), ipxeEFI, 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := startDaemon(t, cfg)
	ui := "http://" + d.adminAddr.String()
	boot := "http://" + d.httpAddr.String()

	// Log in: a wrong token is refused, the right one lands on Machines.
	step(t, ctx, "open the UI", chromedp.Navigate(ui+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	shots(t, ctx, "login")
	step(t, ctx, "wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "guess"), chromedp.Submit(chromedp.CSS("#token")), chromedp.WaitVisible(chromedp.CSS("#login-error")))
	step(t, ctx, "log in", chromedp.SetValue(chromedp.CSS("#token"), token), chromedp.Submit(chromedp.CSS("#token")), chromedp.WaitVisible(chromedp.CSS("#machines")))
	waitJS(t, ctx, "the event stream", `document.querySelector("#live").textContent.startsWith("Live")`)

	// A machine without a profile boots: firmware DHCP, TFTP, iPXE, script, kernel, initramfs.
	const mac = "52:54:00:00:00:99"
	n := &node{t: t, d: d, mac: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x99}, dhcp: cfg.DHCP.Port, pxe: cfg.DHCP.PXEPort,
		client: &http.Client{Timeout: 10 * time.Second}}
	firmware := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7}),
	}
	n.exchange(firmware...)
	c, err := tftp.NewClient(tftp.ClientBlocksize(1468))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get("tftp://" + d.tftpAddr.String() + "/ipxe.efi")
	if err != nil {
		t.Fatalf("TFTP: %v", err)
	}
	if _, err := io.Copy(io.Discard, resp); err != nil {
		t.Fatalf("TFTP: %v", err)
	}
	waitJS(t, ctx, "the booting machine's row, live", fmt.Sprintf(`document.querySelector('tr[data-mac=%q].discovered')`, mac))
	_, script := n.get(boot + "/ipxe?mac=52-54-00-00-00-99&arch=x86_64")
	sendLog(t, d, "[talos] backlog line")
	for _, re := range []*regexp.Regexp{kernelRe, initrdRe} {
		if code, _ := n.get(match(t, re, string(script))); code != http.StatusOK {
			t.Fatalf("asset: %d", code)
		}
	}
	waitJS(t, ctx, "the row's last step", fmt.Sprintf(`document.querySelector('tr[data-mac=%q]').textContent.includes("Initramfs")`, mac))
	if got := text(t, ctx, fmt.Sprintf(`tr[data-mac=%q] .badge`, mac)); got != "discovered" {
		t.Errorf("got state badge %q, want discovered", got)
	}
	// The filter hides the others.
	step(t, ctx, "filter", chromedp.SendKeys(chromedp.CSS("#filter"), "00:99"))
	waitJS(t, ctx, "filtered rows", `[...document.querySelectorAll("#machines tbody tr")].filter(r => !r.hidden).length === 1`)
	setInput(t, ctx, "#filter", "")
	waitJS(t, ctx, "every row", `[...document.querySelectorAll("#machines tbody tr")].every(r => !r.hidden)`)
	shots(t, ctx, "machines")

	// Its page: the timeline shows the steps it took.
	step(t, ctx, "open the machine", chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-mac=%q] a.mono`, mac))), chromedp.WaitVisible(chromedp.CSS("#timeline")))
	for _, want := range []string{"DHCP offer", "TFTP", "Script", "Kernel", "Initramfs"} {
		waitJS(t, ctx, "timeline step "+want, fmt.Sprintf(`[...document.querySelectorAll("#timeline li.done .step")].some(s => s.textContent === %q)`, want))
	}

	// The install console: the lines its Talos sent before the page opened,
	// then one sent now, live; the search hides the others.
	waitJS(t, ctx, "console backlog", `document.querySelector("#console").textContent.includes("[talos] backlog line")`)
	sendLog(t, d, "[talos] live line: installing to /dev/sda")
	waitJS(t, ctx, "console live line", `document.querySelector("#console").textContent.includes("live line")`)
	setInput(t, ctx, "#console-filter", "/dev/sda")
	waitJS(t, ctx, "console search", `[...document.querySelectorAll("#console .line")].filter(l => !l.hidden).length === 1`)

	// A profile with a mistake: the problem is shown by its line, Save is
	// off, and nothing is written.
	file := filepath.Join(cfg.Profiles.Dir, "machines", "52-54-00-00-00-99.yaml")
	setEditor := func(text string) { t.Helper(); setInput(t, ctx, "#editor", text) }
	setEditor("hostname: ui-node\ngroupz: [worker, vm]\n")
	waitJS(t, ctx, "the problem", `document.querySelector("#problems").textContent.includes("52-54-00-00-00-99.yaml:2")`)
	waitJS(t, ctx, "Save disabled", `document.querySelector("#save").disabled`)
	waitJS(t, ctx, "line 2 marked", `document.querySelector("#gutter .bad")?.textContent === "2"`)
	shots(t, ctx, "machine-invalid")
	// Submitting anyway (the server checks too) writes nothing.
	step(t, ctx, "submit the broken profile", chromedp.Evaluate[chromedp.Void](`document.querySelector("#profile-form").requestSubmit()`))
	waitJS(t, ctx, "refusal", `document.querySelector("#save-msg").textContent.startsWith("Not saved")`)
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a refused profile was written: %v", err)
	}
	if _, err := d.profiles.Render(t.Context(), machine.MustParseMAC(mac)); err == nil {
		t.Fatal("the machine renders before its profile is saved")
	}

	// Fixed: saved, written, served.
	setEditor("hostname: ui-node\ngroups: [worker, vm]\nvalues:\n  address: 192.168.1.99/24\n")
	waitJS(t, ctx, "Save enabled", `!document.querySelector("#save").disabled && document.querySelector("#problems").textContent === ""`)
	step(t, ctx, "save", chromedp.Click(chromedp.CSS("#save")))
	waitJS(t, ctx, "saved", `document.querySelector("#save-msg")?.textContent.startsWith("Saved") || document.querySelector("#config")`)
	b, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(b), "hostname: ui-node") {
		t.Fatalf("profile file: %q, %v", b, err)
	}
	cfgYAML, err := d.profiles.Render(t.Context(), machine.MustParseMAC(mac))
	if err != nil || !strings.Contains(string(cfgYAML), "hostname: ui-node") {
		t.Fatalf("rendered config after save: %v\n%s", err, cfgYAML)
	}
	step(t, ctx, "the page after saving", chromedp.WaitVisible(chromedp.CSS("#config")))
	if got := text(t, ctx, "#config"); !strings.Contains(got, "ui-node") || !strings.Contains(got, "token: <masked>") || strings.Contains(got, "notarealtoken") {
		t.Errorf("config preview lacks the hostname or masks nothing:\n%s", got)
	}
	shots(t, ctx, "machine")
	step(t, ctx, "reveal secrets", chromedp.Click(chromedp.CSS("#reveal")))
	waitJS(t, ctx, "the unmasked config", `!document.querySelector("#config").textContent.includes("••••") && !document.querySelector("#reveal")`)

	// Reinstall, confirmed: the machine goes back to pending.
	step(t, ctx, "reinstall", chromedp.Click(chromedp.CSS("#reinstall")))
	waitJS(t, ctx, "pending badge", `document.querySelector("#state").textContent === "pending"`)
	rec, ok, err := d.state.Get(machine.MustParseMAC(mac))
	if err != nil || !ok || rec.State != machine.Pending {
		t.Fatalf("state after reinstall: %q ok=%v err=%v, want pending", rec.State, ok, err)
	}

	step(t, ctx, "cache page", chromedp.Navigate(ui+"/cache"), chromedp.WaitVisible(chromedp.CSS("table.assets")))
	if got := text(t, ctx, "table.assets"); !strings.Contains(got, "kernel-amd64") {
		t.Errorf("cache page lacks the kernel just served:\n%s", got)
	}
	shots(t, ctx, "cache")
	step(t, ctx, "status page", chromedp.Navigate(ui+"/status"), chromedp.WaitVisible(chromedp.CSS("table.counters")))
	if got := text(t, ctx, "main"); !strings.Contains(got, "ipxe.efi") || !strings.Contains(got, "tinderbox_") {
		t.Errorf("status page lacks iPXE binaries or counters:\n%s", got)
	}
	shots(t, ctx, "status")
}

// TestUIBrowserOpen drives the UI of the default listener (loopback, no
// token) in headless Chromium, reached as localhost: the browser's own
// same-origin calls pass the Host and cross-site checks, and a reinstall
// from the machine page goes through.
func TestUIBrowserOpen(t *testing.T) {
	ctx := browser(t)
	cfg := exampleConfig(t)
	d, _ := startDaemon(t, cfg)
	_, port, _ := net.SplitHostPort(d.adminAddr.String())
	const mac = "1c:69:7a:00:00:11" // cp-01 in the example profiles
	step(t, ctx, "open the machine page", chromedp.Navigate("http://localhost:"+port+"/machines/"+mac), chromedp.WaitVisible(chromedp.CSS("#reinstall")))
	step(t, ctx, "reinstall", chromedp.Click(chromedp.CSS("#reinstall")))
	waitJS(t, ctx, "the answer", `document.querySelector("#action-msg").textContent.startsWith("Re-armed")`)
	rec, ok, err := d.state.Get(machine.MustParseMAC(mac))
	if err != nil || !ok || rec.State != machine.Pending || len(rec.Events) == 0 {
		t.Fatalf("record after the UI's reinstall: %+v ok=%v err=%v, want pending with a reinstall event", rec, ok, err)
	}
}

// sendLog sends one line to the daemon's Talos log receiver, from
// loopback, as a node's Talos would over TCP.
func sendLog(t *testing.T, d *daemon, msg string) {
	t.Helper()
	c, err := net.Dial("tcp", d.logsAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line := `{"facility":"user","msg":` + strconv.Quote(msg) + `,"priority":"info","talos-level":"info","talos-time":"2026-11-30T12:00:00Z"}` + "\n"
	if _, err := io.WriteString(c, line); err != nil {
		t.Fatal(err)
	}
}
