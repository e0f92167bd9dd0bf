package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

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
	streamEvents(w, r, a.opts.Heartbeat, lines, sendLine)
}

// sendLine writes one "line" event.
func sendLine(w io.Writer, l kmsglog.Line) error {
	b, err := json.Marshal(logLine(l))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: line\ndata: %s\n\n", b)
	return err
}
