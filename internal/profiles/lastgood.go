package profiles

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sync/errgroup"
)

// The last good set: a copy of the files of the last directory that
// loaded, kept under state.dir, so that a restart while the files are
// broken (a bad edit, a bad ConfigMap) serves what was served before
// instead of no boot service at all. The copy holds the secrets bundle too:
// it is written with mode 0700/0600, like state.dir's token key.

// saveLastGood copies the profile files of dir to to, replacing what is
// there, if dir still has the fingerprint stamp it had when it loaded: a
// change while copying makes no copy (the next load makes one). Dot files
// are left out, as fingerprint leaves them out; symbolic links are
// followed. The copy is built beside to and renamed into place. A copy
// that has the stamp already (a restart with the same files) is kept as
// it is; a file of it with the same name, size and modification time as
// the file of dir is linked into the new copy, not copied again, so that a
// reload after an edit writes only the files edited.
func saveLastGood(dir, to, stamp string) error {
	if now, err := fingerprint(to); err == nil && now == stamp {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(to), "."+filepath.Base(to)+"-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if err := copyTree(dir, tmp, to); err != nil {
		return err
	}
	if now, err := fingerprint(dir); err != nil || now != stamp {
		return errChangedWhileCopying
	}
	old := to + ".old"
	_ = os.RemoveAll(old)
	if err := os.Rename(to, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, to); err != nil {
		_ = os.Rename(old, to)
		return err
	}
	return os.RemoveAll(old)
}

var errChangedWhileCopying = errors.New("the directory changed while it was copied")

// copyWorkers is how many files copyTree copies at once: each copy ends
// in an fsync, and concurrent fsyncs share the file system's journal
// commits, where one after the other each waits for its own.
const copyWorkers = 32

// copyTree copies the regular files under src (following links, skipping
// dot files and directories) to dst, with fsync, keeping their
// modification times. A file that prev (an earlier copy; "" for none)
// holds with the same size and modification time is hard-linked from
// there instead: copies are never written to after they are made.
func copyTree(src, dst, prev string) error {
	seen := map[string]bool{}
	var g errgroup.Group
	g.SetLimit(copyWorkers)
	var walk func(from, to, rel string) error
	walk = func(from, to, rel string) error {
		entries, err := os.ReadDir(from)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			p, q, r := filepath.Join(from, e.Name()), filepath.Join(to, e.Name()), filepath.Join(rel, e.Name())
			info, err := os.Stat(p) // follows links
			if err != nil {
				return err
			}
			if info.IsDir() {
				real, err := filepath.EvalSymlinks(p)
				if err != nil {
					return err
				}
				if seen[real] {
					continue // a link back up the tree
				}
				seen[real] = true
				if err := os.Mkdir(q, 0o700); err != nil {
					return err
				}
				if err := walk(p, q, r); err != nil {
					return err
				}
				continue
			}
			if !info.Mode().IsRegular() {
				continue
			}
			if prev != "" && linkSame(filepath.Join(prev, r), q, info) {
				continue
			}
			g.Go(func() error { return copyFile(p, q, info) })
		}
		return nil
	}
	err := walk(src, dst, "")
	return errors.Join(err, g.Wait())
}

// linkSame hard-links old to to when old is a regular file with info's
// size and modification time, and says whether it did.
func linkSame(old, to string, info fs.FileInfo) bool {
	o, err := os.Lstat(old)
	if err != nil || !o.Mode().IsRegular() || o.Size() != info.Size() || !o.ModTime().Equal(info.ModTime()) {
		return false
	}
	return os.Link(old, to) == nil
}

func copyFile(from, to string, info fs.FileInfo) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chtimes(to, info.ModTime(), info.ModTime())
}

// loadLastGood loads the copy at dir with opts otherwise unchanged.
func loadLastGood(ctx context.Context, opts Options, dir string) (*Set, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no last good set: %w", err)
	}
	opts.Dir, opts.Overlay = dir, nil
	return Load(ctx, opts)
}
