package machineview

import (
	"time"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Step is one stage of a boot as the timeline shows it.
type Step struct {
	// Name is the stage's name (machine.Stage.String).
	Name string
	// Detail, Time and Bytes are those of the stage's newest event; Count
	// is how many times in a row it happened (machine.Event.Times).
	Detail string
	Time   time.Time
	Bytes  int64
	Count  int
	// Done says whether the current boot reached the stage.
	Done bool
}

// Timeline folds a machine's events (oldest first) into the boot's
// stages, one Step per machine.Stages entry: the newest event of each
// stage since the newest DHCP offer, which starts the current boot.
func Timeline(events []machine.Event) []Step {
	steps := make([]Step, len(machine.Stages))
	for i, st := range machine.Stages {
		steps[i].Name = st.String()
	}
	start := 0
	for i, e := range events {
		if e.Kind == machine.EventDHCPOffer && (i == 0 || events[i-1].Kind != machine.EventDHCPOffer) {
			start = i
		}
	}
	for _, e := range events[start:] {
		if i := e.Kind.Stage(); i != machine.StageNone {
			steps[i] = Step{Name: steps[i].Name, Detail: e.Detail, Time: e.Time, Bytes: e.Bytes, Count: e.Times(), Done: true}
		}
	}
	return steps
}
