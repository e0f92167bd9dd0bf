package ipxe

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"
)

// BootFiles are the names handed to firmware. They alone may be symlinks
// that leave ipxe.dir: Debian's package installs /usr/lib/ipxe/ipxe.efi as a
// symlink to /boot/ipxe.efi.
var BootFiles = []string{BIOS, EFIx64, SNPOnly, EFIArm64}

// MaxNameLen is the longest file name Root accepts, in bytes: the Linux
// limit for one path component. Real boot file names are a few bytes long.
const MaxNameLen = 255

// The reasons Root refuses a name. Each comes wrapped in a *NameError.
var (
	ErrEmptyName   = errors.New("empty file name")
	ErrNameTooLong = fmt.Errorf("file name longer than %d bytes", MaxNameLen)
	ErrNUL         = errors.New("file name contains a NUL byte")
	ErrBadName     = errors.New("file name has control characters, backslashes, invalid UTF-8, or empty or \".\" elements")
	ErrAbsolute    = errors.New("absolute file name")
	ErrTraversal   = errors.New(`file name climbs out of ipxe.dir with ".."`)
	ErrEscapes     = errors.New("file is a symlink that leads out of ipxe.dir")
	ErrNotRegular  = errors.New("not a regular file")
)

// NameError is a refused file name: the request is bad, not the server.
// It matches fs.ErrInvalid as well as its reason.
type NameError struct {
	Name string
	Err  error
}

func (e *NameError) Error() string { return fmt.Sprintf("ipxe: refusing %q: %v", e.Name, e.Err) }

// Unwrap returns the reason and fs.ErrInvalid.
func (e *NameError) Unwrap() []error { return []error{e.Err, fs.ErrInvalid} }

// Reason says why the name is refused, in words fit for the client (the
// TFTP server sends it in its error packet; it implements tftp.Refusal).
func (e *NameError) Reason() string { return e.Err.Error() }

// Root serves the regular files inside ipxe.dir and nothing else. It
// implements fs.FS; the files it opens are *os.File (they implement
// io.ReaderAt and io.Seeker). Root is safe for concurrent use; Close it when
// done.
type Root struct {
	dir string

	mu     sync.Mutex
	root   *os.Root // nil until ipxe.dir could be opened
	closed bool
}

// NewRoot returns a Root for dir. The directory is opened on first use, and
// again on every use while it cannot be: a missing ipxe.dir answers "not
// found" until the operator installs the binaries, with no restart.
func NewRoot(dir string) *Root { return &Root{dir: dir} }

// Dir is the directory Root serves.
func (r *Root) Dir() string { return r.dir }

// Close releases the directory; later opens fail.
func (r *Root) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.root == nil {
		return nil
	}
	return r.root.Close()
}

// osRoot returns the opened directory.
func (r *Root) osRoot() (*os.Root, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("ipxe: %w", fs.ErrClosed)
	}
	if r.root == nil {
		root, err := os.OpenRoot(r.dir)
		if err != nil {
			return nil, fmt.Errorf("ipxe: open ipxe.dir: %w", err)
		}
		r.root = root
	}
	return r.root, nil
}

// CheckName says why name may not be served, or returns nil. It looks only
// at the name, never at the disk.
func CheckName(name string) error {
	var reason error
	switch {
	case name == "":
		reason = ErrEmptyName
	case len(name) > MaxNameLen:
		reason = ErrNameTooLong
	case strings.IndexByte(name, 0) >= 0:
		reason = ErrNUL
	case !utf8.ValidString(name) || strings.ContainsFunc(name, badRune):
		reason = ErrBadName
	case name[0] == '/':
		reason = ErrAbsolute
	case slices.Contains(strings.Split(name, "/"), ".."):
		reason = ErrTraversal
	case !fs.ValidPath(name) || name == ".": // "." is valid in fs.FS: the root itself
		reason = ErrBadName
	}
	if reason != nil {
		return &NameError{Name: name, Err: reason}
	}
	return nil
}

// badRune reports characters no boot file name has: control characters, and
// the backslash some clients use as a DOS path separator.
func badRune(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }

// Open opens name, a slash-separated path relative to ipxe.dir, for reading,
// as the TFTP server asks: a boot file name followed by bytes that a PXE ROM
// read past the end of DHCP option 67 opens that boot file (ReadPastEnd).
// Refused names give a *NameError; missing files an error matching
// fs.ErrNotExist. The file returned is an *os.File.
func (r *Root) Open(name string) (fs.File, error) {
	if known, ok := ReadPastEnd(name); ok {
		name = known
	}
	return r.OpenFile(name)
}

// ReadPastEnd recognises a boot file name that a PXE ROM read past its
// end: ROMs that take DHCP option 67 for a NUL-terminated string copy on
// into the End option (0xff) or the next option's code and length bytes
// (seen as "ipxe.efi\xff" and "undionly.kpxea\x11", option 97 following).
// name must be one of BootFiles followed by bytes that contain a control
// character, DEL or a byte of 0x80 or more, none of which a boot file name
// has; it returns that boot file name. Any other name is not recognised.
func ReadPastEnd(name string) (string, bool) {
	for _, known := range BootFiles {
		rest, ok := strings.CutPrefix(name, known)
		if !ok || rest == "" {
			continue
		}
		// Invalid UTF-8 ranges as utf8.RuneError, which is above 0x7f too.
		if strings.IndexFunc(rest, func(r rune) bool { return r < 0x20 || r >= 0x7f }) >= 0 {
			return known, true
		}
	}
	return "", false
}

// OpenFile is Open with the concrete type.
func (r *Root) OpenFile(name string) (*os.File, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	// O_NONBLOCK: opening a FIFO someone left in the directory must not
	// block the server; regular files ignore the flag.
	root, err := r.osRoot()
	if err != nil {
		return nil, err
	}
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if !escapes(err) {
			return nil, fmt.Errorf("ipxe: %w", err)
		}
		if !slices.Contains(BootFiles, name) {
			return nil, &NameError{Name: name, Err: ErrEscapes}
		}
		if f, err = r.openBootLink(name); err != nil {
			return nil, err
		}
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("ipxe: %w", err)
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, &NameError{Name: name, Err: ErrNotRegular}
	}
	return f, nil
}

// openBootLink follows a boot file's symlink out of ipxe.dir, as Debian's
// ipxe.efi → /boot/ipxe.efi. The target is resolved fully first and then
// opened without following a symlink, so a link swapped in later is refused.
func (r *Root) openBootLink(name string) (*os.File, error) {
	target, err := filepath.EvalSymlinks(filepath.Join(r.dir, name))
	if err != nil {
		return nil, fmt.Errorf("ipxe: %w", err)
	}
	f, err := openNoFollow(target)
	if err != nil {
		return nil, fmt.Errorf("ipxe: %s (symlink target of %s): %w", target, name, err)
	}
	return f, nil
}

// escapes reports os.Root's refusal to leave the directory. Names that
// passed CheckName cannot climb out by themselves, so this is always a
// symlink. os.Root's error has no exported sentinel: match its text.
func escapes(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "path escapes from parent")
}

// Root is an fs.FS: the TFTP server reads ipxe.dir through that interface.
var _ fs.FS = (*Root)(nil)
