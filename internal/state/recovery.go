package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// What Open does with a database that fails its check (state.onCorrupt).
const (
	// OnCorruptRestore moves the corrupt file aside and starts from the
	// newest backup that passes the check; with no such backup it refuses
	// to start, as OnCorruptRefuse does.
	OnCorruptRestore = "restore"
	// OnCorruptRefuse leaves the corrupt file where it is and refuses to
	// start, so that every restart refuses the same way until someone
	// restores a backup by hand (docs/architecture.md, "State database: corruption, backups, restore").
	OnCorruptRefuse = "refuse"
)

const (
	// BackupDir is the directory under state.dir that holds the backups.
	BackupDir = "backups"
	// DefaultBackupKeep keeps a day of hourly backups.
	DefaultBackupKeep = 24
	// DefaultWriteTimeout bounds the wait for another write to finish:
	// commits take milliseconds, so ten seconds means a frozen disk.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultCloseTimeout bounds Close, its backup included.
	DefaultCloseTimeout = 10 * time.Second
	// DefaultOpenTimeout bounds Open: the check of a 20,000-machine
	// database takes about a second (BenchmarkCheck), so two minutes
	// leaves room for a slow disk and still ends a start on a frozen one.
	DefaultOpenTimeout = 2 * time.Minute
	// corruptSuffix names a database moved aside, before its UTC time.
	corruptSuffix = ".corrupt-"
	// stampLayout is the UTC time in the names of backups and of files
	// moved aside: fixed width, so names sort by time.
	stampLayout = "20060102T150405.000Z"
)

var (
	// ErrCorrupt marks a database that fails its consistency check, or
	// in which bbolt panicked.
	ErrCorrupt = errors.New("state database is corrupt")
	// ErrStuck marks a write that did not finish within its bound
	// (Options.WriteTimeout, Options.CloseTimeout): a frozen disk.
	ErrStuck = errors.New("state database write is stuck")
)

// guard runs fn, turning a panic into an error wrapping ErrCorrupt and
// marking the store degraded: bbolt panics on a corrupt page, and a read
// of a mapped page past the end of a truncated file panics too, instead
// of killing the process, because the goroutine faults with
// debug.SetPanicOnFault on.
func (s *Store) guard(op string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = s.degrade(fmt.Errorf("%w: %s: %v", ErrCorrupt, op, r))
		}
	}()
	return fn()
}

// view runs fn in a read transaction, guarded.
func (s *Store) view(op string, fn func(*bolt.Tx) error) error {
	return s.guard(op, func() error { return s.db.View(fn) })
}

// update runs fn in a write transaction, guarded; the caller holds the
// write lock. A degraded store refuses writes: on a corrupt database they
// could spread the damage.
func (s *Store) update(op string, fn func(*bolt.Tx) error) error {
	if err := s.faulted(); err != nil {
		return err
	}
	s.writeStart.Store(time.Now().UnixNano())
	defer s.writeStart.Store(0)
	return s.guard(op, func() error { return s.db.Update(fn) })
}

// lock takes the write lock, waiting at most WriteTimeout for the write
// holding it.
func (s *Store) lock(op string) error {
	select {
	case s.wlock <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(s.writeTimeout)
	defer t.Stop()
	select {
	case s.wlock <- struct{}{}:
		return nil
	case <-t.C:
		return fmt.Errorf("state: %s: %w: another write has not finished in %s", op, ErrStuck, s.writeTimeout)
	}
}

func (s *Store) unlock() { <-s.wlock }

// degrade marks the store degraded by err (the first one is kept, logged
// once and counted), and returns err.
func (s *Store) degrade(err error) error {
	s.fmu.Lock()
	first := s.fault == nil
	if first {
		s.fault = err
	}
	s.fmu.Unlock()
	if first {
		s.metrics.corruptions.WithLabelValues("runtime").Inc()
		s.log.Error("state database is corrupt: writes are refused until a restart checks it and restores a backup",
			"file", s.path, "err", err)
	}
	return err
}

func (s *Store) faulted() error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.fault != nil {
		return fmt.Errorf("degraded: %w", s.fault)
	}
	return nil
}

// Health returns nil when the store serves reads and writes. It returns
// an error wrapping ErrCorrupt once bbolt panicked in a transaction or a
// backup found the database corrupt (the store stays degraded until a
// restart), and one wrapping ErrStuck while a write has been in progress
// longer than Options.WriteTimeout. It reads no database and never blocks.
func (s *Store) Health() error {
	if err := s.faulted(); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if start := s.writeStart.Load(); start != 0 {
		if d := time.Since(time.Unix(0, start)); d > s.writeTimeout {
			return fmt.Errorf("state: %w: a write has been in progress for %s", ErrStuck, d.Round(time.Second))
		}
	}
	return nil
}

// Unreadable returns the keys (MACs) of the records that do not decode,
// sorted: the store skips them in List and fails Get and Update on them;
// Forget deletes them.
func (s *Store) Unreadable() []string {
	s.umu.Lock()
	defer s.umu.Unlock()
	return slices.Sorted(func(yield func(string) bool) {
		for k := range s.unreadable {
			if !yield(k) {
				return
			}
		}
	})
}

// markUnreadable records that the record under key does not decode,
// logging it the first time.
func (s *Store) markUnreadable(key string, err error) {
	s.umu.Lock()
	_, seen := s.unreadable[key]
	s.unreadable[key] = struct{}{}
	s.umu.Unlock()
	if !seen {
		s.log.Error("state: record does not decode: it is left out of lists; forget the machine to drop it", "mac", key, "err", err)
	}
}

func (s *Store) clearUnreadable(key string) {
	s.umu.Lock()
	delete(s.unreadable, key)
	s.umu.Unlock()
}

// check is what checkFile found in a database.
type check struct {
	// corrupt is nil when the database passed; it wraps ErrCorrupt.
	corrupt error
	// unreadable maps the key of each record that does not decode to
	// why; they do not make the database corrupt.
	unreadable map[string]error
	// records counts the machine records.
	records int
}

// checkFile checks the database at path, opened read-only: its size
// against bbolt's high-water mark (a truncated file), every record of
// every bucket decoded, then bbolt's own consistency check (tx.Check:
// page reachability, double frees, key order). A missing file passes. An
// error is returned, apart from check, for what is not the file's content
// (another process holds it, no permission, not a regular file).
func checkFile(path string, lockTimeout time.Duration) (c check, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("state: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return c, fmt.Errorf("state: %s is not a regular file (%s): move it away", path, fi.Mode().Type())
	}
	if fi.Size() == 0 {
		c.corrupt = fmt.Errorf("%w: the file is empty (0 bytes)", ErrCorrupt)
		return c, nil
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			c.corrupt = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return c, inUse(path)
	case errors.Is(err, fs.ErrPermission):
		return c, fmt.Errorf("state: open %s: %w", path, err)
	case err != nil:
		c.corrupt = fmt.Errorf("%w: %v", ErrCorrupt, err)
		return c, nil
	}
	defer db.Close()
	c.unreadable = map[string]error{}
	cerr := db.View(func(tx *bolt.Tx) error {
		if tx.Size() > fi.Size() {
			return fmt.Errorf("%w: truncated: its pages reach %d bytes, the file has %d", ErrCorrupt, tx.Size(), fi.Size())
		}
		for _, b := range []struct {
			name   []byte
			decode func([]byte) error
		}{
			{machinesBucket, func(v []byte) error { return json.Unmarshal(v, new(Summary)) }},
			{eventsBucket, func(v []byte) error { return json.Unmarshal(v, new([]json.RawMessage)) }},
			{servedBucket, func(v []byte) error { return json.Unmarshal(v, new(Served)) }},
		} {
			bk := tx.Bucket(b.name)
			if bk == nil {
				continue
			}
			if err := bk.ForEach(func(k, v []byte) error {
				if string(b.name) == string(machinesBucket) {
					c.records++
				}
				if err := b.decode(v); err != nil {
					c.unreadable[string(k)] = fmt.Errorf("%s: %w", b.name, err)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
		}
		// Every page read above was within the file, so the check's
		// goroutine, which faults without SetPanicOnFault, reads
		// nothing past its end.
		var problems []string
		for err := range tx.Check() {
			if len(problems) < 3 {
				problems = append(problems, err.Error())
			}
		}
		if len(problems) > 0 {
			return fmt.Errorf("%w: %s", ErrCorrupt, strings.Join(problems, "; "))
		}
		return nil
	})
	if cerr != nil {
		c.corrupt = cerr
	}
	return c, nil
}

func inUse(path string) error {
	return fmt.Errorf("state: %s is in use by another process (is another tinderbox running with this state.dir?)", path)
}

// recoverDB checks the database file before anything else opens it and,
// when it is corrupt, restores the newest good backup or refuses
// (Options.OnCorrupt), saying which in one log line. It returns the
// unreadable records of the database that will be opened.
func (s *Store) recoverDB() (map[string]error, error) {
	c, err := checkFile(s.path, time.Second)
	if err != nil {
		return nil, err
	}
	if c.corrupt == nil {
		return c.unreadable, nil
	}
	s.metrics.corruptions.WithLabelValues("open").Inc()
	if s.onCorrupt == OnCorruptRefuse {
		return nil, fmt.Errorf("state: %s: %w; state.onCorrupt is refuse, so tinderbox does not start: restore a backup from %s by hand (docs/architecture.md, \"State database: corruption, backups, restore\") or set state.onCorrupt to restore",
			s.path, c.corrupt, s.backupDir)
	}
	backup, bc, skipped := s.newestGoodBackup()
	if backup == "" {
		s.metrics.restores.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("state: %s: %w; no good backup in %s (%d corrupt), so tinderbox does not start: starting empty would reinstall every installed machine. Move the file away to start with no machines",
			s.path, c.corrupt, s.backupDir, skipped)
	}
	aside := s.path + corruptSuffix + s.now().UTC().Format(stampLayout)
	if err := os.Rename(s.path, aside); err != nil {
		s.metrics.restores.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("state: %s: %w; moving it aside: %w", s.path, c.corrupt, err)
	}
	if err := copyAtomic(backup, s.path); err != nil {
		s.metrics.restores.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("state: %s: %w; moved to %s; restoring %s: %w", s.path, c.corrupt, aside, backup, err)
	}
	s.metrics.restores.WithLabelValues("ok").Inc()
	s.log.Error("state database corrupt: moved aside and restored from the newest good backup; changes since that backup are lost",
		"file", s.path, "moved_to", aside, "backup", backup, "corrupt_backups_skipped", skipped, "err", c.corrupt)
	return bc.unreadable, nil
}

// backups returns the backup files, newest first.
func (s *Store) backups() []string {
	paths, _ := filepath.Glob(filepath.Join(s.backupDir, "state-*.db"))
	slices.Sort(paths)
	slices.Reverse(paths)
	return paths
}

// newestGoodBackup returns the newest backup that passes the check, with
// what the check found, and how many newer ones it skipped as corrupt.
func (s *Store) newestGoodBackup() (path string, c check, skipped int) {
	for _, p := range s.backups() {
		c, err := checkFile(p, time.Second)
		if err == nil && c.corrupt == nil {
			return p, c, skipped
		}
		skipped++
	}
	return "", check{}, skipped
}

// Backup writes a copy of the database, as of one read transaction, to
// BackupDir/state-<UTC time>.db under state.dir, and removes the oldest
// backups beyond Options.BackupKeep. The copy is written to a temporary
// file, synced, checked as Open checks a database, and only then renamed
// into place, so a backup file is always whole and good. A copy that
// fails the check means the live database is corrupt: the store turns
// degraded (Health) and the older backups are kept. It returns the
// backup's path. Safe for concurrent use with every other method; it
// does not wait for writes.
func (s *Store) Backup() (path string, err error) {
	defer func() {
		if err != nil {
			s.metrics.backups.WithLabelValues("error").Inc()
			return
		}
		s.metrics.backups.WithLabelValues("ok").Inc()
		s.metrics.lastBackup.SetToCurrentTime()
	}()
	if err := os.MkdirAll(s.backupDir, 0o750); err != nil {
		return "", fmt.Errorf("state: backup: %w", err)
	}
	path = filepath.Join(s.backupDir, "state-"+s.now().UTC().Format(stampLayout)+".db")
	f, err := os.CreateTemp(s.backupDir, backupTempPattern)
	if err != nil {
		return "", fmt.Errorf("state: backup: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, there is nothing to remove
	werr := s.view("backup", func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(f)
		return err
	})
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return "", fmt.Errorf("state: backup %s: %w", path, err)
	}
	c, err := checkFile(tmp, time.Second)
	if err != nil {
		return "", fmt.Errorf("state: backup %s: %w", path, err)
	}
	if c.corrupt != nil {
		s.metrics.corruptions.WithLabelValues("backup").Inc()
		return "", s.degrade(fmt.Errorf("state: backup %s: the copy of the live database fails its check: %w", path, c.corrupt))
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("state: backup: %w", err)
	}
	if err := syncDir(s.backupDir); err != nil {
		return "", fmt.Errorf("state: backup: %w", err)
	}
	all := s.backups()
	for _, old := range all[min(max(s.keep, 1), len(all)):] {
		if err := os.Remove(old); err != nil {
			return "", fmt.Errorf("state: backup: remove the oldest: %w", err)
		}
	}
	return path, nil
}

// Temporary files of Backup and copyAtomic, as a crash leaves them.
const (
	backupTempPattern = ".state-*.db.tmp"
	// copyAtomic's is "." + the file's name + this.
	copyTempSuffix = "-*.tmp"
)

// removeTemporaries deletes what a crash or kill -9 in the middle of a
// Backup or a restore left: a temporary copy as large as the database,
// which nothing else would ever remove, piling up with every such
// crash. The caller holds the database open, so no other tinderbox is
// writing them.
func (s *Store) removeTemporaries() {
	stale, _ := filepath.Glob(filepath.Join(s.backupDir, backupTempPattern))
	copies, _ := filepath.Glob(filepath.Join(filepath.Dir(s.path), "."+filepath.Base(s.path)+copyTempSuffix))
	for _, p := range append(stale, copies...) {
		if err := os.Remove(p); err != nil {
			s.log.Warn("state: remove a temporary file a crash left", "file", p, "err", err)
			continue
		}
		s.log.Info("state: removed a temporary file a crash left", "file", p)
	}
}

// copyAtomic copies src to dst through a synced temporary file renamed
// into place, then syncs dst's directory.
func copyAtomic(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+copyTempSuffix)
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	_, werr := io.Copy(out, in)
	serr := out.Sync()
	cerr := out.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return err
	}
	if err := os.Chmod(out.Name(), 0o600); err != nil {
		return err
	}
	if err := os.Rename(out.Name(), dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	return errors.Join(serr, d.Close())
}
