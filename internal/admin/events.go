package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// DefaultHeartbeat is how often an idle event stream gets a comment line,
// well inside the idle timeouts of proxies between the browser and us.
const DefaultHeartbeat = 15 * time.Second

// events streams machine changes as server-sent events: a "hello" event
// at once, then one "machine" event (an api.MachineEvent) per change, and
// a comment line every heartbeat while idle. It ends when the client
// leaves, falls behind, or the hub closes.
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	if a.opts.Hub == nil {
		WriteError(w, http.StatusNotImplemented, "this server has no event stream")
		return
	}
	sub, ok := a.opts.Hub.Subscribe()
	if !ok {
		WriteError(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	defer sub.Close()
	streamEvents(w, r, a.opts.Heartbeat, sub.C(), a.sendMachine)
}

// streamEvents writes a server-sent event stream (the HTML living
// standard's text/event-stream): a "hello" event at once, then send(w, v)
// for each value from c, and a comment line every heartbeat while idle.
// It ends when the client leaves, c closes, or a write fails.
func streamEvents[T any](w http.ResponseWriter, r *http.Request, heartbeat time.Duration, c <-chan T, send func(io.Writer, T) error) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// retry: how long the browser waits before reconnecting after we end
	// the stream (a slow client or a restart).
	if _, err := fmt.Fprint(w, "retry: 2000\nevent: hello\ndata: {}\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case v, ok := <-c:
			if !ok {
				return
			}
			err = send(w, v)
		case <-tick.C:
			_, err = fmt.Fprint(w, ": heartbeat\n\n")
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

func (a *API) sendMachine(w io.Writer, mac machine.MAC) error {
	m, found, err := a.views.Get(mac)
	if err != nil {
		return err
	}
	ev := api.MachineEvent{Machine: m}
	if !found {
		ev = api.MachineEvent{Machine: api.Machine{MAC: mac}, Gone: true}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: machine\ndata: %s\n\n", b)
	return err
}
