package profiles

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// ErrConflict is what a write or delete whose precondition does not hold
// returns (wrapped in a *ConflictError): the HTTP 412 of the admin API.
var ErrConflict = errors.New("profiles: precondition failed")

// ErrNotFound is what DeleteMachine returns for a machine without a file.
var ErrNotFound = errors.New("profiles: no such file")

// ErrReadOnly is returned (wrapped, with the reason) by Writable,
// WriteMachine and DeleteMachine when this process cannot write machine
// profile files: a read-only mount (a Kubernetes ConfigMap or Secret
// volume) or a directory it has no write permission on (the .deb installs
// /etc/tinderbox/profiles owned by root).
var ErrReadOnly = errors.New("the profiles directory cannot be written by tinderbox here: edit the files where they come from (git, the ConfigMap or Secret, /etc/tinderbox/profiles as root), and tinderbox reloads them")

// Writable returns nil when machine profile files can be written (the
// machines directory, or the profiles directory while it has none), and
// otherwise an error wrapping ErrReadOnly with the reason (access(2) with
// W_OK: EROFS for a read-only mount, EACCES for permissions).
func (s *Store) Writable() error {
	target := filepath.Join(s.opts.Dir, "machines")
	if _, err := os.Stat(target); err != nil {
		target = s.opts.Dir
	}
	if err := unix.Access(target, unix.W_OK); err != nil {
		return fmt.Errorf("%w (%s: %v)", ErrReadOnly, target, err)
	}
	return nil
}

// readOnly wraps a write error that means the directory is read-only
// (EROFS, EACCES, EPERM) in ErrReadOnly; others are returned as they are.
func readOnly(err error) error {
	if errors.Is(err, unix.EROFS) || errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w (%v)", ErrReadOnly, err)
	}
	return err
}

// ConflictError says why a precondition failed. errors.Is(err,
// ErrConflict) holds for it.
type ConflictError struct {
	// Msg says what changed, for people.
	Msg string
	// ETag is the current file's entity tag, "" when there is no file.
	ETag string
}

func (e *ConflictError) Error() string { return e.Msg }

// Is makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// InvalidError is what a write or delete returns when the directory would
// not load with the change; nothing was written. Err joins every problem,
// each a *Problem where the file and line are known.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }

func (e *InvalidError) Unwrap() error { return e.Err }

// MachineFile is a machine's profile file.
type MachineFile struct {
	// Rel is its path under the profiles directory,
	// "machines/52-54-00-12-34-56.yaml".
	Rel string
	// Data is its content, nil when the file does not exist.
	Data []byte
	// ETag is Data's entity tag, "" when the file does not exist.
	ETag string
}

// Exists says whether the file exists.
func (f MachineFile) Exists() bool { return f.Data != nil }

// Precondition makes a write or delete conditional, as HTTP's
// conditional requests do (RFC 9110 section 13.1). Empty fields impose
// nothing.
type Precondition struct {
	// IfMatch is a list of entity tags, one of which the current file
	// must have; "*" requires the file to exist. Weak tags compare by
	// value: the file's bytes are the representation.
	IfMatch string
	// IfNoneMatch "*" requires the file not to exist.
	IfNoneMatch string
}

// Written is the outcome of a write or delete.
type Written struct {
	// File is the machine file's path under the profiles directory; it is
	// set on failures too.
	File string
	// ETag is the written file's entity tag, "" after a delete.
	ETag string
	// Created is true when a write made a new file.
	Created bool
	// ReloadErr is set when the file was written but the directory did
	// not reload (another file broke meanwhile): the older set keeps
	// serving until that is fixed.
	ReloadErr error
}

// ETag is the entity tag of a file's bytes: the first 16 bytes of its
// SHA-256 in hex, quoted.
func ETag(data []byte) string {
	sum := sha256.Sum256(data)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// machineRel is mac's file under the profiles directory.
func machineRel(mac machine.MAC) string { return "machines/" + mac.Dashed() + ".yaml" }

// MachineFile reads mac's profile file; a missing file is not an error
// (Data is nil).
func (s *Store) MachineFile(mac machine.MAC) (MachineFile, error) {
	rel := machineRel(mac)
	b, err := os.ReadFile(s.path(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return MachineFile{Rel: rel}, nil
	}
	if err != nil {
		return MachineFile{Rel: rel}, fmt.Errorf("profiles: read %s: %w", rel, err)
	}
	return MachineFile{Rel: rel, Data: b, ETag: ETag(b)}, nil
}

// CheckMachine loads the directory as if mac's file held data, as
// WriteMachine would, and returns an *InvalidError with every problem if
// it does not load. Nothing is written; Written names the file only.
func (s *Store) CheckMachine(ctx context.Context, mac machine.MAC, data []byte) (Written, error) {
	out := Written{File: machineRel(mac)}
	if data == nil {
		data = []byte{} // nil means "absent" to Check
	}
	if err := s.Check(ctx, out.File, data); err != nil {
		return out, &InvalidError{Err: err}
	}
	return out, nil
}

// WriteMachine replaces mac's profile file with data, after checking pre
// (a *ConflictError otherwise) and that the whole directory loads with
// data in place of the file (an *InvalidError otherwise). The file is
// written atomically (a crash leaves the old file or the new one, and the
// watcher, which skips hidden files, never reads half of one) and the
// directory reloaded. Writes and deletes are serialised, so a
// precondition compares against the file being replaced. It blocks while
// schematic names are resolved.
func (s *Store) WriteMachine(ctx context.Context, mac machine.MAC, data []byte, pre Precondition) (Written, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	cur, err := s.MachineFile(mac)
	out := Written{File: cur.Rel}
	if err != nil {
		return out, err
	}
	if err := s.Writable(); err != nil {
		return out, err
	}
	if err := pre.check(cur); err != nil {
		return out, err
	}
	if _, err := s.CheckMachine(ctx, mac, data); err != nil {
		return out, err
	}
	if err := replaceFile(s.path(cur.Rel), data); err != nil {
		return out, fmt.Errorf("profiles: write %s: %w", cur.Rel, readOnly(err))
	}
	out.ETag, out.Created = ETag(data), !cur.Exists()
	out.ReloadErr = s.Reload(ctx)
	return out, nil
}

// DeleteMachine removes mac's profile file after checking that it exists
// (ErrNotFound otherwise), pre (a *ConflictError otherwise) and that the
// directory loads without it (an *InvalidError otherwise), then reloads
// the directory. It is serialised with WriteMachine.
func (s *Store) DeleteMachine(ctx context.Context, mac machine.MAC, pre Precondition) (Written, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	cur, err := s.MachineFile(mac)
	out := Written{File: cur.Rel}
	if err != nil {
		return out, err
	}
	if !cur.Exists() {
		return out, fmt.Errorf("profiles: %s: %w", cur.Rel, ErrNotFound)
	}
	if err := s.Writable(); err != nil {
		return out, err
	}
	if err := pre.check(cur); err != nil {
		return out, err
	}
	if err := s.Check(ctx, cur.Rel, nil); err != nil {
		return out, &InvalidError{Err: err}
	}
	path := s.path(cur.Rel)
	if err := os.Remove(path); err != nil {
		return out, fmt.Errorf("profiles: delete %s: %w", cur.Rel, readOnly(err))
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return out, fmt.Errorf("profiles: delete %s: %w", cur.Rel, err)
	}
	out.ReloadErr = s.Reload(ctx)
	return out, nil
}

func (s *Store) path(rel string) string { return filepath.Join(s.opts.Dir, filepath.FromSlash(rel)) }

// check returns a *ConflictError when p does not hold for cur.
func (p Precondition) check(cur MachineFile) error {
	fail := func(msg string) error { return &ConflictError{Msg: msg, ETag: cur.ETag} }
	switch {
	case p.IfMatch == "*" && !cur.Exists():
		return fail("the profile file does not exist")
	case p.IfMatch != "" && p.IfMatch != "*" && (!cur.Exists() || !etagIn(p.IfMatch, cur.ETag)):
		return fail("the profile file changed since it was read: reload it and apply the edit again")
	case p.IfNoneMatch == "*" && cur.Exists():
		return fail("the profile file already exists: someone created it meanwhile")
	}
	return nil
}

// etagIn says whether the If-Match list holds tag.
func etagIn(list, tag string) bool {
	for t := range strings.SplitSeq(list, ",") {
		if strings.TrimPrefix(strings.TrimSpace(t), "W/") == tag {
			return true
		}
	}
	return false
}

// replaceFile replaces path with data through a hidden temporary file in
// the same directory (renameio syncs it before the rename), then syncs the
// directory so the rename itself survives a crash. A new file is 0644
// whatever the umask, as profiles are meant to be read by other tools; an
// existing file keeps its mode.
func replaceFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := renameio.WriteFile(path, data, 0o644, renameio.WithTempDir(dir), renameio.IgnoreUmask()); err != nil {
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
