package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/kmsglog"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
)

// DefaultLogLines is how many lines GET …/logs gives without ?lines=.
const DefaultLogLines = 200

// logLine is the API's shape of a received line.
func logLine(l kmsglog.Line) api.LogLine {
	return api.LogLine{Time: l.Time, Level: l.Level, Facility: l.Facility, Priority: l.Priority, Service: l.Service, Msg: l.Msg, Truncated: l.Truncated}
}

// logs answers GET /api/v1/machines/{mac}/logs: the machine's newest
// received log lines, oldest first; ?lines=N (default DefaultLogLines)
// bounds them, ?q=TEXT keeps those holding TEXT (any case).
func (a *API) logs(w http.ResponseWriter, r *http.Request) {
	if a.opts.Logs == nil {
		WriteError(w, http.StatusNotImplemented, "this server receives no Talos logs (reports.enabled is false)")
		return
	}
	mac, ok := machineParam(w, r)
	if !ok {
		return
	}
	n := DefaultLogLines
	if v := r.URL.Query().Get("lines"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			WriteError(w, http.StatusBadRequest, "lines: want a positive number")
			return
		}
	}
	var lines []kmsglog.Line
	if q := r.URL.Query().Get("q"); q != "" {
		lines = a.opts.Logs.Search(mac, q)
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
	} else {
		lines = a.opts.Logs.Lines(mac, n)
	}
	out := api.LogLines{Lines: make([]api.LogLine, 0, len(lines))}
	for _, l := range lines {
		out.Lines = append(out.Lines, logLine(l))
	}
	writeJSON(w, http.StatusOK, out)
}

// logStream answers GET /api/v1/machines/{mac}/logs/stream: server-sent
// "line" events (an api.LogLine each) as the machine's lines arrive, after
// a "hello", with a comment every heartbeat while idle. It ends when the
// client leaves or falls behind, or the daemon stops.
func (a *API) logStream(w http.ResponseWriter, r *http.Request) {
	if a.opts.Logs == nil {
		WriteError(w, http.StatusNotImplemented, "this server receives no Talos logs (reports.enabled is false)")
		return
	}
	mac, ok := machineParam(w, r)
	if !ok {
		return
	}
	lines, cancel := a.opts.Logs.Subscribe(mac)
	defer cancel()
	streamLines(w, r, a.opts.Heartbeat, lines)
}

func streamLines(w http.ResponseWriter, r *http.Request, heartbeat time.Duration, lines <-chan kmsglog.Line) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
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
		case l, ok := <-lines:
			if !ok {
				return
			}
			var b []byte
			if b, err = json.Marshal(logLine(l)); err == nil {
				_, err = fmt.Fprintf(w, "event: line\ndata: %s\n\n", b)
			}
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
