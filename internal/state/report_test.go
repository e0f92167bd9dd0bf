package state

import (
	"strings"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Talos' reports as the event sink decodes them.
var (
	installStart = Report{Sequence: "install"}
	installDone  = Report{Sequence: "install", Stop: true}
	installError = Report{Sequence: "install", Stop: true, Error: "failed to install: disk /dev/sdz not found"}
	bootError    = Report{Sequence: "boot", Stop: true, Error: "network is unreachable"}
	initStart    = Report{Sequence: "initialize"}
	initDone     = Report{Sequence: "initialize", Stop: true}
	rebootStart  = Report{Sequence: "reboot"}
	booting      = Report{Stage: "booting"}
	maintenance  = Report{Stage: "maintenance"}
	running      = Report{Stage: "running"}
	readyStatus  = Report{Stage: "running", Ready: true}
	rebooting    = Report{Stage: "rebooting"}
)

// step is one thing that happens to a machine: a Talos report, or one of
// the boot flow's own steps.
type step struct {
	name   string
	report *Report
	do     func(m *Machine)
}

func rep(r Report) step { return step{name: "report", report: &r} }

var (
	served  = step{name: "config served", do: (*Machine).ConfigServed}
	netboot = step{name: "network boot", do: func(m *Machine) { m.ScriptServed() }}
	rearm   = step{name: "reinstall", do: (*Machine).Reinstall}
)

// TestReportedSequences: sequences of Talos reports and boot-flow steps,
// from a machine pending an install (install: once), to the state, the
// failure and the token generation they end in.
func TestReportedSequences(t *testing.T) {
	tests := []struct {
		name        string
		steps       []step
		want        machine.State
		failure     string
		generation  uint64
		stage       string
		ready, seen bool
	}{
		{
			name:  "a whole install, then running and ready from disk",
			steps: []step{served, rep(booting), rep(initStart), rep(initDone), rep(installStart), rep(installDone), rep(rebootStart), rep(rebooting), rep(booting), rep(running), rep(readyStatus)},
			want:  machine.Ready, generation: 1, stage: "running", ready: true, seen: true,
		},
		{
			name:  "installed; the reboot netboots first and is told to boot the disk",
			steps: []step{served, rep(installStart), rep(installDone), netboot},
			want:  machine.Installed, generation: 1, seen: true,
		},
		{
			name:  "the install fails with Talos' own message",
			steps: []step{served, rep(installStart), rep(installError)},
			want:  machine.Failed, failure: "Talos install sequence failed: failed to install: disk /dev/sdz not found", seen: true,
		},
		{
			name:  "the boot sequence fails before the install",
			steps: []step{served, rep(initStart), rep(bootError)},
			want:  machine.Failed, failure: "Talos boot sequence failed: network is unreachable", seen: true,
		},
		{
			name:  "maintenance mode after the config was served",
			steps: []step{served, rep(booting), rep(maintenance)},
			want:  machine.Failed, failure: "maintenance mode", stage: "maintenance", seen: true,
		},
		{
			name:  "a failed install is retried: config again, install starts and ends",
			steps: []step{served, rep(installStart), rep(installError), netboot, served, rep(installStart), rep(installDone)},
			want:  machine.Installed, generation: 1, seen: true,
		},
		{
			name:  "reported, then network-booted again without the install's end",
			steps: []step{served, rep(installStart), netboot},
			want:  machine.Failed, failure: "before Talos reported its install done", seen: true,
		},
		{
			name:  "no reports at all: the next network boot means installed (the old inference)",
			steps: []step{served, netboot},
			want:  machine.Installed, generation: 1,
		},
		{
			name:  "ready, then not ready: installed",
			steps: []step{served, rep(installStart), rep(installDone), rep(readyStatus), rep(running)},
			want:  machine.Installed, generation: 1, stage: "running", seen: true,
		},
		{
			name:  "an error after the install is done changes nothing",
			steps: []step{served, rep(installStart), rep(installDone), rep(bootError)},
			want:  machine.Installed, generation: 1, seen: true,
		},
		{
			name:  "a reinstall forgets the reports and spends the token",
			steps: []step{served, rep(installStart), rep(installError), rearm},
			want:  machine.Pending, generation: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Machine{State: machine.Pending}
			now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
			for _, s := range tt.steps {
				now = now.Add(time.Second)
				if s.report != nil {
					m.Reported(*s.report, now)
				} else {
					s.do(&m)
				}
			}
			if m.State != tt.want || m.Generation != tt.generation || m.Stage != tt.stage || m.Ready != tt.ready || m.Reporting != tt.seen {
				t.Errorf("got state %s generation %d stage %q ready %v reporting %v; want %s %d %q %v %v",
					m.State, m.Generation, m.Stage, m.Ready, m.Reporting, tt.want, tt.generation, tt.stage, tt.ready, tt.seen)
			}
			if (tt.failure == "") != (m.Failure == "") || !strings.Contains(m.Failure, tt.failure) {
				t.Errorf("failure: got %q, want %q", m.Failure, tt.failure)
			}
		})
	}
}

// TestReportedOutsideTheCycle: netboot, local and discovered machines only
// record what Talos says.
func TestReportedOutsideTheCycle(t *testing.T) {
	for _, st := range []machine.State{machine.Netboot, machine.Local, machine.Discovered} {
		m := Machine{State: st}
		for _, r := range []Report{installStart, installError, maintenance, readyStatus} {
			if before := m.Reported(r, time.Now()); before != st || m.State != st {
				t.Errorf("%s after %+v: got %s", st, r, m.State)
			}
		}
		if m.Stage != "running" || !m.Ready || m.Failure != "" {
			t.Errorf("%s: status not recorded, or a failure: %+v", st, m.Talos)
		}
	}
}

// TestReportsSurviveTheStore: what Talos reported is stored with the
// record and read back, by Get and in List's summaries.
func TestReportsSurviveTheStore(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mac := machine.MustParseMAC("52:54:00:00:00:01")
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	if _, err := s.Update(mac, func(m *Machine, _ bool) error {
		m.State = machine.Installing
		m.Reported(installError, at)
		m.Reported(Report{Stage: "maintenance"}, at)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := Talos{Reporting: true, Stage: "maintenance", ReportedAt: at, Failure: "Talos install sequence failed: failed to install: disk /dev/sdz not found"}
	m, _, err := s.Get(mac)
	if err != nil || m.Talos != want || m.State != machine.Failed {
		t.Errorf("Get: %s %+v %v; want failed %+v", m.State, m.Talos, err, want)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Talos != want {
		t.Errorf("List: %+v %v", list, err)
	}
}
