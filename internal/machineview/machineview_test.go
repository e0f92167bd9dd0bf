package machineview

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

func TestMaskSecrets(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		hidden   []string
	}{
		{
			name:   "talos secrets",
			in:     "machine:\n  token: abc.def\n  ca:\n    crt: LS0tCRT\n    key: LS0tKEY\n  network:\n    hostname: cp-01\ncluster:\n  secret: s3\n  aescbcEncryptionSecret: aesvalue\n  serviceAccount:\n    key: sa\n",
			want:   []string{"hostname: cp-01", "token: <masked>", "crt: LS0tCRT", "key: <masked>"},
			hidden: []string{"abc.def", "LS0tKEY", "s3", "aesvalue", ": sa"},
		},
		{
			name:   "several documents, certSANs shown",
			in:     "cluster:\n  apiServer:\n    certSANs: [192.168.1.50]\n---\napiVersion: v1alpha1\nkind: WireguardConfig\nname: wg0\nprivateKey: wgsecret\n",
			want:   []string{"192.168.1.50", "privateKey: <masked>", "kind: WireguardConfig"},
			hidden: []string{"wgsecret"},
		},
		{name: "not YAML", in: "a: [\n", want: []string{Masked}, hidden: []string{"a:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MaskSecrets([]byte(tt.in))
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("got\n%s\nwant it to hold %q", got, w)
				}
			}
			for _, h := range tt.hidden {
				if strings.Contains(got, h) {
					t.Errorf("got\n%s\nwant %q masked", got, h)
				}
			}
		})
	}
}

func TestTimeline(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 1, 1, 0, 0, s, 0, time.UTC) }
	ev := func(s int, k machine.EventKind, detail string, n int64) machine.Event {
		return machine.Event{Time: at(s), Kind: k, Detail: detail, Bytes: n}
	}
	events := []machine.Event{
		ev(1, machine.EventDHCPOffer, "offer", 0), ev(2, machine.EventScript, "netboot", 0), ev(3, machine.EventConfig, "", 10),
		// The next boot: only its steps count.
		ev(10, machine.EventDHCPOffer, "offer", 0), ev(11, machine.EventDHCPOffer, "ack", 0), ev(12, machine.EventTFTP, "ipxe.efi", 1000),
		ev(13, machine.EventScript, "netboot", 0), ev(14, machine.EventKernel, "kernel-amd64", 5000), ev(15, machine.EventInitramfs, "initramfs-amd64.xz", 9000),
		ev(16, machine.EventAsset, "cmdline-metal-amd64", 50), ev(17, machine.EventReinstall, "", 0),
	}
	steps := Timeline(events)
	want := []struct {
		done bool
		sec  int
		n    int64
	}{{true, 11, 0}, {true, 12, 1000}, {true, 13, 0}, {true, 14, 5000}, {true, 15, 9000}, {false, 0, 0}, {false, 0, 0}}
	if len(steps) != len(want) {
		t.Fatalf("got %d steps, want %d", len(steps), len(want))
	}
	for i, w := range want {
		s := steps[i]
		if s.Done != w.done || (w.done && (!s.Time.Equal(at(w.sec)) || s.Bytes != w.n)) {
			t.Errorf("step %s: got done=%v at %v %d bytes, want done=%v at %ds %d bytes", s.Name, s.Done, s.Time, s.Bytes, w.done, w.sec, w.n)
		}
	}
	// A run of script requests: the step is at its latest, with its count.
	run := append(events[:0:0], ev(20, machine.EventDHCPOffer, "offer", 0),
		machine.Event{Time: at(30), Since: at(21), Count: 9, Kind: machine.EventScript, Detail: "netboot"})
	if s := Timeline(run)[machine.StageScript]; !s.Done || !s.Time.Equal(at(30)) || s.Count != 9 {
		t.Errorf("a run of scripts: got %+v, want done at 30s, count 9", s)
	}
	if got := Timeline(nil); len(got) != 7 || got[0].Done {
		t.Errorf("no events: got %+v", got)
	}
}

type fakeProfiles map[machine.MAC]profiles.Profile

func (p fakeProfiles) Machine(mac machine.MAC) (profiles.Profile, bool) {
	pr, ok := p[mac]
	return pr, ok
}

func (p fakeProfiles) Machines() []profiles.Profile {
	var out []profiles.Profile
	for _, pr := range p {
		out = append(out, pr)
	}
	return out
}

// TestViews: a booted machine shows its record, a profile that never
// booted the state it would start in, and a MAC with neither is not found;
// the list holds both, by MAC.
func TestViews(t *testing.T) {
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	booted, pending, none := machine.MustParseMAC("52:54:00:00:00:02"), machine.MustParseMAC("52:54:00:00:00:01"), machine.MustParseMAC("52:54:00:00:00:03")
	if _, err := store.Update(booted, func(m *state.Machine, _ bool) error {
		m.State, m.IP = machine.Installed, "192.0.2.7"
		m.Events = append(m.Events, store.Event(machine.EventKernel, "kernel-amd64", 5))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	v := Views{Records: store, Profiles: fakeProfiles{
		pending: {MAC: pending, Hostname: "cp-01", Install: machine.InstallOnce, Talos: profiles.Talos{Arch: machine.ArchARM64}},
	}}
	tests := []struct {
		name      string
		mac       machine.MAC
		wantFound bool
		want      api.Machine
	}{
		{name: "booted", mac: booted, wantFound: true, want: api.Machine{MAC: booted, State: machine.Installed, IP: "192.0.2.7", LastStep: "Kernel"}},
		{name: "profile only", mac: pending, wantFound: true, want: api.Machine{MAC: pending, Hostname: "cp-01", Profile: true, State: state.Reconcile("", true, machine.InstallOnce), Arch: machine.ArchARM64}},
		{name: "neither", mac: none},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, found, err := v.Get(tt.mac)
			if err != nil || found != tt.wantFound {
				t.Fatalf("got found=%v, %v, want %v", found, err, tt.wantFound)
			}
			if !found {
				return
			}
			got := api.Machine{MAC: m.MAC, Hostname: m.Hostname, State: m.State, Arch: m.Arch, IP: m.IP, Profile: m.Profile, LastStep: m.LastStep}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	list, err := v.List()
	if err != nil || len(list) != 2 || list[0].MAC != pending || list[1].MAC != booted || list[1].Events != nil || list[1].LastStep != "Kernel" {
		t.Errorf("List: got %+v, %v", list, err)
	}
}

// TestAttention: a failed machine, and one stalled part-way through a boot
// or an install, need an operator; one still within reports.stallAfter,
// one done, or one that never booted do not.
func TestAttention(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	kernel := machine.Event{Time: now.Add(-20 * time.Minute), Kind: machine.EventKernel}
	config := machine.Event{Time: now.Add(-3 * time.Minute), Kind: machine.EventConfig}
	sum := func(st machine.State, last *machine.Event, failure string) state.Summary {
		s := state.Summary{State: st, Last: last}
		s.Failure = failure
		if last != nil {
			s.LastSeen = last.Time
		}
		return s
	}
	tests := []struct {
		name       string
		stallAfter time.Duration
		rec        state.Summary
		want       string
	}{
		{"failed", 15 * time.Minute, sum(machine.Failed, &config, "Talos install sequence failed: no disk"), "failed: Talos install sequence failed: no disk"},
		{"pending, stalled after the kernel", 15 * time.Minute, sum(machine.Pending, &kernel, ""), "stalled: no progress for 20m0s after Kernel"},
		{"installing, stalled after the config", 2 * time.Minute, sum(machine.Installing, &config, ""), "stalled: no progress for 3m0s after Config"},
		{"installing, within the limit", 15 * time.Minute, sum(machine.Installing, &config, ""), ""},
		{"stalls not watched", 0, sum(machine.Pending, &kernel, ""), ""},
		{"pending, never booted", 15 * time.Minute, sum(machine.Pending, nil, ""), ""},
		{"installed long ago", 15 * time.Minute, sum(machine.Installed, &kernel, ""), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Views{Profiles: fakeProfiles{}, StallAfter: tt.stallAfter, Now: func() time.Time { return now }}
			if got := v.Of(machine.MustParseMAC("52:54:00:00:00:01"), tt.rec, true).Attention; got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
