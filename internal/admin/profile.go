package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/tinderbox-boot/tinderbox/internal/problem"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// ProfileFiles is the profiles directory the profile calls read and
// write. *profiles.Store implements it.
type ProfileFiles interface {
	// Dir is the profiles directory.
	Dir() string
	// Status is how loading the directory goes.
	Status() profiles.Status
	MachineFile(mac machine.MAC) (profiles.MachineFile, error)
	CheckMachine(ctx context.Context, mac machine.MAC, data []byte) (profiles.Written, error)
	WriteMachine(ctx context.Context, mac machine.MAC, data []byte, pre profiles.Precondition) (profiles.Written, error)
	DeleteMachine(ctx context.Context, mac machine.MAC, pre profiles.Precondition) (profiles.Written, error)
	// Writable is nil when profile files can be written here, else an
	// error wrapping profiles.ErrReadOnly that says why.
	Writable() error
}

// profileParam is machineParam for the profile calls, which also need the
// profiles directory.
func (a *API) profileParam(w http.ResponseWriter, r *http.Request) (machine.MAC, bool) {
	if a.opts.Files == nil {
		WriteError(w, http.StatusNotImplemented, "this server edits no profiles directory")
		return machine.MAC{}, false
	}
	return machineParam(w, r)
}

// getProfile answers the machine's profile file as YAML, with its ETag.
func (a *API) getProfile(w http.ResponseWriter, r *http.Request) {
	mac, ok := a.profileParam(w, r)
	if !ok {
		return
	}
	f, err := a.opts.Files.MachineFile(mac)
	if err != nil {
		a.internal(w, "read profile", err)
		return
	}
	if !f.Exists() {
		WriteError(w, http.StatusNotFound, "no profile file "+f.Rel)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("ETag", f.ETag)
	_, _ = w.Write(f.Data)
}

// precondition reads If-Match and If-None-Match.
func precondition(r *http.Request) profiles.Precondition {
	return profiles.Precondition{IfMatch: r.Header.Get("If-Match"), IfNoneMatch: r.Header.Get("If-None-Match")}
}

// putProfile checks the body by loading the whole directory with it in
// place of the machine's file, answers 422 with every problem if that
// fails, and otherwise writes it atomically and reloads the directory.
// With ?check=1 it only checks. An If-Match header makes the write
// conditional on the file being unchanged since it was read (412
// otherwise); If-Match: * requires an existing file, If-None-Match: * a
// new one. Without either, the last write wins.
func (a *API) putProfile(w http.ResponseWriter, r *http.Request) {
	mac, ok := a.profileParam(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		a.internal(w, "read request", err)
		return
	}
	if r.URL.Query().Get("check") != "" {
		res, err := a.opts.Files.CheckMachine(r.Context(), mac, body)
		if err != nil {
			a.writeFailed(w, r, "check profile", res, err)
			return
		}
		writeJSON(w, http.StatusOK, api.ProfileWritten{MAC: mac, File: res.File, Checked: true})
		return
	}
	res, err := a.opts.Files.WriteMachine(r.Context(), mac, body, precondition(r))
	if err != nil {
		a.writeFailed(w, r, "write profile", res, err)
		return
	}
	a.log.Info("profile written", "mac", mac, "file", res.File)
	a.notify(mac)
	w.Header().Set("ETag", res.ETag)
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, written(mac, res))
}

// deleteProfile removes the machine's file after checking the directory
// loads without it; If-Match works as for PUT.
func (a *API) deleteProfile(w http.ResponseWriter, r *http.Request) {
	mac, ok := a.profileParam(w, r)
	if !ok {
		return
	}
	res, err := a.opts.Files.DeleteMachine(r.Context(), mac, precondition(r))
	if err != nil {
		a.writeFailed(w, r, "delete profile", res, err)
		return
	}
	a.log.Info("profile deleted", "mac", mac, "file", res.File)
	a.notify(mac)
	writeJSON(w, http.StatusOK, written(mac, res))
}

func written(mac machine.MAC, res profiles.Written) api.ProfileWritten {
	out := api.ProfileWritten{MAC: mac, File: res.File, ETag: res.ETag}
	if res.ReloadErr != nil {
		out.ReloadError = res.ReloadErr.Error()
	}
	return out
}

// writeFailed maps a refused write or delete to its status: 404 without
// a file to delete, 412 when a precondition fails (with the current
// file's ETag), 422 with every problem when the directory would not load.
func (a *API) writeFailed(w http.ResponseWriter, r *http.Request, op string, res profiles.Written, err error) {
	var conflict *profiles.ConflictError
	var invalid *profiles.InvalidError
	switch {
	case errors.Is(err, profiles.ErrNotFound):
		WriteError(w, http.StatusNotFound, "no profile file "+res.File)
	case errors.As(err, &conflict):
		if conflict.ETag != "" {
			w.Header().Set("ETag", conflict.ETag)
		}
		WriteError(w, http.StatusPreconditionFailed, conflict.Msg)
	case errors.As(err, &invalid):
		a.problems(w, r, invalid.Err)
	case errors.Is(err, profiles.ErrReadOnly):
		WriteError(w, http.StatusConflict, err.Error())
	default:
		a.internal(w, op, err)
	}
}

// problems answers 422 with each problem of a failed check.
func (a *API) problems(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client left: no one to answer
	}
	dir := a.opts.Files.Dir()
	out := api.Error{Error: "the profile does not load; nothing was written"}
	for _, e := range problem.Leaves(err) {
		at := api.ProblemAt{Message: e.Error()}
		var p *profiles.Problem
		if errors.As(e, &p) {
			at = api.ProblemAt{File: p.File, Line: p.Line, Machine: p.Machine, Message: p.Msg}
			if rel, err := filepath.Rel(dir, p.File); err == nil && !strings.HasPrefix(rel, "..") {
				at.File = filepath.ToSlash(rel)
			}
		}
		out.At = append(out.At, at)
		out.Problems = append(out.Problems, formatProblem(at))
	}
	writeJSON(w, http.StatusUnprocessableEntity, out)
}

func formatProblem(p api.ProblemAt) string {
	subject := ""
	if p.Machine != "" {
		subject = "machine " + p.Machine
	}
	return problem.Format(p.File, p.Line, subject, p.Message)
}
