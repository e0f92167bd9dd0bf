//go:build linux

// Package netnstest gives tests network namespaces of their own (ip(8)
// netns), so they can run real traffic and real kernel tables without
// touching the host's network: New makes a namespace and removes it at
// cleanup, Run executes a function inside one.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"
)

var seq atomic.Int32

// Require skips the test unless it runs as root with ip(8) installed.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) (iproute2)")
	}
}

// New makes a network namespace with its loopback up and returns its
// name, unique to this process; it is deleted at cleanup.
func New(t testing.TB) string {
	t.Helper()
	Require(t)
	name := fmt.Sprintf("tbxt%d-%d", os.Getpid()%100000, seq.Add(1))
	IP(t, "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	IP(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// IP runs ip(8) with args and fails the test on error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Run runs fn on a thread inside the named namespace. The thread stays
// locked and exits with its goroutine, so the namespace never leaks to
// other goroutines; sockets and netlink handles fn opens stay in the
// namespace wherever they are used later.
func Run(t testing.TB, name string, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		ns, err := netns.GetFromName(name)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		fn()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("netns %s: %v", name, err)
	}
}

// Rerun runs the calling test again in a fresh copy of the test binary,
// started through prefix (such as "ip", "netns", "exec", NS to run it in a
// namespace, or "unshare", "--mount", "--" for a mount namespace of its
// own), with env ("NAME=value") set so the copy knows it is the inner run.
// It returns the copy's output, and fails t if the copy fails or does not
// pass every name in want (t.Name() when want is empty). For what needs a
// whole process elsewhere: a daemon whose every thread must be in the
// namespace, or a mount only a private mount namespace may make.
func Rerun(t *testing.T, env string, want []string, prefix ...string) string {
	t.Helper()
	args := append(slices.Clone(prefix), os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	cmd := exec.CommandContext(t.Context(), args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: the inner run failed: %v\n%s", strings.Join(prefix, " "), err, out)
	}
	if len(want) == 0 {
		want = []string{t.Name()}
	}
	for _, name := range want {
		if !strings.Contains(string(out), "--- PASS: "+name) {
			t.Fatalf("%s: the inner run did not pass %s:\n%s", strings.Join(prefix, " "), name, out)
		}
	}
	return string(out)
}
