package bootflow

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/boot"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// TestScriptMatrix asks for a script in every combination of profile
// (install once, always, never, or none), state the machine was left in,
// unknown-machine policy and iPXE build arch, through the real store, and
// checks the answer against docs/api.md ("GET /ipxe") and
// docs/protocol.md ("Machine states") written out as a table.
func TestScriptMatrix(t *testing.T) {
	profiles := map[string]machine.MAC{"once": macOnce, "always": macAlways, "never": macNever, "none": macUnknown}
	priors := append([]machine.State{""}, machine.States...)
	arches := map[string]string{"x86_64": "amd64", "i386": "amd64", "arm64": "arm64"}
	for _, policy := range []machine.Unknown{machine.UnknownMaintenance, machine.UnknownLocal, machine.UnknownIgnore} {
		e := newEnv(t, "exit", policy, nil)
		for profile, mac := range profiles {
			for _, prior := range priors {
				for buildarch, arch := range arches {
					name := fmt.Sprintf("%s/%s/%s/%s", policy, profile, prior, buildarch)
					t.Run(name, func(t *testing.T) {
						if _, err := e.store.Forget(mac); err != nil {
							t.Fatal(err)
						}
						if prior != "" {
							if _, err := e.store.Update(mac, func(m *state.Machine, _ bool) error { m.State = prior; return nil }); err != nil {
								t.Fatal(err)
							}
						}
						code, body := e.script(t, mac.Dashed(), buildarch)

						var want boot.Action
						var wantState machine.State
						switch profile {
						case "none":
							want, wantState = map[machine.Unknown]boot.Action{
								machine.UnknownMaintenance: boot.Maintenance, machine.UnknownLocal: boot.LocalBoot, machine.UnknownIgnore: boot.Ignore,
							}[policy], machine.Discovered
						case "always":
							want, wantState = boot.Netboot, machine.Netboot
						case "never":
							want, wantState = boot.LocalBoot, machine.Local
						case "once":
							switch prior {
							case machine.Installing, machine.Installed:
								// The boot after the install (no Talos reports).
								want, wantState = boot.LocalBoot, machine.Installed
							case machine.Ready:
								want, wantState = boot.LocalBoot, machine.Ready
							case machine.Failed:
								// A failed install is retried with the config.
								want, wantState = boot.Netboot, machine.Failed
							default:
								want, wantState = boot.Netboot, machine.Pending
							}
						}

						switch want {
						case boot.Netboot, boot.Maintenance:
							if code != http.StatusOK || !strings.Contains(body, "/kernel-"+arch+" initrd=initramfs-"+arch+".xz ") {
								t.Fatalf("want a %s script for %s: got %d\n%s", want, arch, code, body)
							}
							if hasConfig := strings.Contains(body, "talos.config="); hasConfig != (want == boot.Netboot) {
								t.Errorf("talos.config present = %v, want %v", hasConfig, want == boot.Netboot)
							}
						case boot.LocalBoot:
							if code != http.StatusOK || !strings.HasSuffix(body, "\nexit 1\n") || strings.Contains(body, "kernel ") {
								t.Fatalf("want a local boot: got %d\n%s", code, body)
							}
						case boot.Ignore:
							if code != http.StatusNotFound {
								t.Fatalf("want 404 for an ignored machine: got %d\n%s", code, body)
							}
							if _, ok, _ := e.store.Get(mac); ok && prior == "" {
								t.Error("an ignored machine was recorded")
							}
							return
						}
						m := e.machine(t, mac)
						if m.State != wantState {
							t.Errorf("state: got %q, want %q", m.State, wantState)
						}
					})
				}
			}
		}
	}
}
