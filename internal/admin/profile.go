package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/tinderbox-boot/tinderbox/internal/problem"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
)

// ProfileFiles is the profiles directory the profile calls read and
// write. *profiles.Store implements it.
type ProfileFiles interface {
	// Dir is the profiles directory.
	Dir() string
	// Check loads the directory as if the layer file rel held data (nil:
	// absent) and returns every problem, joined.
	Check(ctx context.Context, rel string, data []byte) error
	// Reload loads the directory again, so a written file is served.
	Reload(ctx context.Context) error
	// Status is how loading the directory goes.
	Status() profiles.Status
}

// profileFile returns the machine file's path under the profiles
// directory ("machines/52-54-00-12-34-56.yaml") and on disk.
func (a *API) profileFile(mac machine.MAC) (rel, path string) {
	rel = "machines/" + mac.Dashed() + ".yaml"
	return rel, filepath.Join(a.opts.Files.Dir(), filepath.FromSlash(rel))
}

// etag is a file's entity tag: its SHA-256, quoted.
func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// profileParam is machineParam for the profile calls, which also need the
// profiles directory.
func (a *API) profileParam(w http.ResponseWriter, r *http.Request) (machine.MAC, bool) {
	if a.opts.Files == nil {
		writeError(w, http.StatusNotImplemented, "this server edits no profiles directory")
		return machine.MAC{}, false
	}
	return machineParam(w, r)
}

// readProfile returns the machine file's bytes, nil when there is none.
func readProfile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// getProfile answers the machine's profile file as YAML, with its ETag.
func (a *API) getProfile(w http.ResponseWriter, r *http.Request) {
	mac, ok := a.profileParam(w, r)
	if !ok {
		return
	}
	rel, path := a.profileFile(mac)
	b, err := readProfile(path)
	if err != nil {
		a.internal(w, "read profile", err)
		return
	}
	if b == nil {
		writeError(w, http.StatusNotFound, "no profile file "+rel)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("ETag", etag(b))
	_, _ = w.Write(b)
}

// ProfileWritten is the answer to a profile PUT or DELETE.
type ProfileWritten struct {
	MAC  machine.MAC `json:"mac"`
	File string      `json:"file"`
	// ETag is the new file's entity tag, "" after a DELETE or a check.
	ETag string `json:"etag,omitempty"`
	// Checked is true when the call only checked (?check=1).
	Checked bool `json:"checked,omitempty"`
	// ReloadError is set when the file was written but the directory
	// did not reload (another file broke meanwhile): the older set keeps
	// serving until that is fixed.
	ReloadError string `json:"reloadError,omitempty"`
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
	if body == nil {
		body = []byte{}
	}
	rel, path := a.profileFile(mac)
	check := r.URL.Query().Get("check") != ""
	if !check {
		a.writeMu.Lock()
		defer a.writeMu.Unlock()
		if !a.preconditions(w, r, path) {
			return
		}
	}
	if err := a.opts.Files.Check(r.Context(), rel, body); err != nil {
		a.problems(w, r, err)
		return
	}
	out := ProfileWritten{MAC: mac, File: rel, Checked: check}
	if check {
		writeJSON(w, http.StatusOK, out)
		return
	}
	existed, err := fileExists(path)
	if err != nil {
		a.internal(w, "write profile", err)
		return
	}
	if err := writeAtomic(path, body); err != nil {
		a.internal(w, "write profile", err)
		return
	}
	a.log.Info("profile written", "mac", mac, "file", rel)
	out.ETag = etag(body)
	if err := a.opts.Files.Reload(r.Context()); err != nil {
		out.ReloadError = err.Error()
	}
	a.notify(mac)
	w.Header().Set("ETag", out.ETag)
	status := http.StatusOK
	if !existed {
		status = http.StatusCreated
	}
	writeJSON(w, status, out)
}

// deleteProfile removes the machine's file after checking the directory
// loads without it; If-Match works as for PUT.
func (a *API) deleteProfile(w http.ResponseWriter, r *http.Request) {
	mac, ok := a.profileParam(w, r)
	if !ok {
		return
	}
	rel, path := a.profileFile(mac)
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	if ok, err := fileExists(path); err != nil || !ok {
		if err != nil {
			a.internal(w, "delete profile", err)
			return
		}
		writeError(w, http.StatusNotFound, "no profile file "+rel)
		return
	}
	if !a.preconditions(w, r, path) {
		return
	}
	if err := a.opts.Files.Check(r.Context(), rel, nil); err != nil {
		a.problems(w, r, err)
		return
	}
	if err := os.Remove(path); err != nil {
		a.internal(w, "delete profile", err)
		return
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		a.internal(w, "delete profile", err)
		return
	}
	a.log.Info("profile deleted", "mac", mac, "file", rel)
	out := ProfileWritten{MAC: mac, File: rel}
	if err := a.opts.Files.Reload(r.Context()); err != nil {
		out.ReloadError = err.Error()
	}
	a.notify(mac)
	writeJSON(w, http.StatusOK, out)
}

// preconditions answers 412 itself when If-Match or If-None-Match does
// not hold for the file at path.
func (a *API) preconditions(w http.ResponseWriter, r *http.Request, path string) bool {
	match, noneMatch := r.Header.Get("If-Match"), r.Header.Get("If-None-Match")
	if match == "" && noneMatch == "" {
		return true
	}
	cur, err := readProfile(path)
	if err != nil {
		a.internal(w, "read profile", err)
		return false
	}
	fail := func(msg string) bool {
		if cur != nil {
			w.Header().Set("ETag", etag(cur))
		}
		writeError(w, http.StatusPreconditionFailed, msg)
		return false
	}
	switch {
	case match == "*" && cur == nil:
		return fail("the profile file does not exist")
	case match != "" && match != "*" && (cur == nil || !etagIn(match, etag(cur))):
		return fail("the profile file changed since it was read: reload it and apply the edit again")
	case noneMatch == "*" && cur != nil:
		return fail("the profile file already exists: someone created it meanwhile")
	}
	return true
}

// etagIn says whether the If-Match list holds tag (weak tags compare by
// value: the file's bytes are the representation).
func etagIn(list, tag string) bool {
	for t := range strings.SplitSeq(list, ",") {
		if strings.TrimPrefix(strings.TrimSpace(t), "W/") == tag {
			return true
		}
	}
	return false
}

// problems answers 422 with each problem of a failed check.
func (a *API) problems(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client left: no one to answer
	}
	dir := a.opts.Files.Dir()
	out := Error{Error: "the profile does not load; nothing was written"}
	for _, e := range problem.Leaves(err) {
		at := ProblemAt{Message: e.Error()}
		var p *profiles.Problem
		if errors.As(e, &p) {
			at = ProblemAt{File: p.File, Line: p.Line, Machine: p.Machine, Message: p.Msg}
			if rel, err := filepath.Rel(dir, p.File); err == nil && !strings.HasPrefix(rel, "..") {
				at.File = filepath.ToSlash(rel)
			}
		}
		out.At = append(out.At, at)
		out.Problems = append(out.Problems, formatProblem(at))
	}
	writeJSON(w, http.StatusUnprocessableEntity, out)
}

func formatProblem(p ProblemAt) string {
	subject := ""
	if p.Machine != "" {
		subject = "machine " + p.Machine
	}
	return problem.Format(p.File, p.Line, subject, p.Message)
}

func fileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// writeAtomic replaces path with data: a hidden temporary file in the
// same directory, synced, renamed over it, and the directory synced, so a
// crash leaves the old file or the new one, and the profiles watcher
// (which skips hidden files) never reads half of one.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
