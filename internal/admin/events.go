package admin

import (
	"encoding/json"
	"fmt"
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
	rc := http.NewResponseController(w)
	sub, ok := a.opts.Hub.Subscribe()
	if !ok {
		WriteError(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	defer sub.Close()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// retry: how long the browser waits before reconnecting after we end
	// the stream (a slow client or a restart).
	if _, err := fmt.Fprint(w, "retry: 2000\nevent: hello\ndata: {}\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(a.opts.Heartbeat)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case mac, ok := <-sub.C():
			if !ok {
				return
			}
			err = a.sendMachine(w, mac)
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

func (a *API) sendMachine(w http.ResponseWriter, mac machine.MAC) error {
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
