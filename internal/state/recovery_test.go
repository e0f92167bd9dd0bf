package state

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// testMAC is the i-th machine of a populated store.
func testMAC(i int) machine.MAC {
	return machine.MustParseMAC(fmt.Sprintf("52:54:00:01:%02x:%02x", i/256, i%256))
}

// populate writes n installed machines, each with events events, into a
// store under dir and closes it, which leaves one backup of it. The
// database is a few hundred KiB for n=300, events=16.
func populate(t *testing.T, dir string, n, events int) {
	t.Helper()
	c := newClock()
	s, err := Open(dir, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := s.Update(testMAC(i), func(m *Machine, _ bool) error {
			m.State = machine.Installed
			m.UUID = fmt.Sprintf("8d5ae0f7-0000-4000-8000-%012d", i)
			for e := range events {
				m.Events = append(m.Events, s.Event(machine.EventTFTP, fmt.Sprintf("file-%d", e), int64(e)))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// pristine is a populated state.dir, made once and copied per test.
var pristine struct {
	dir  string
	size int64
}

// copyDir copies a populated state.dir into a new temporary directory.
func copyPristine(t *testing.T) string {
	t.Helper()
	if pristine.dir == "" {
		// Not t.TempDir: it lives on across the tests that copy it.
		d, err := os.MkdirTemp("", "state-pristine-")
		if err != nil {
			t.Fatal(err)
		}
		populate(t, d, 300, 16)
		fi, err := os.Stat(filepath.Join(d, DBFile))
		if err != nil {
			t.Fatal(err)
		}
		pristine.dir, pristine.size = d, fi.Size()
	}
	dst := t.TempDir()
	err := filepath.WalkDir(pristine.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(pristine.dir, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o750)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pristine.dir != "" {
		os.RemoveAll(pristine.dir)
	}
	os.Exit(code)
}

// logBuffer is a logger writing JSON lines to a buffer.
type logBuffer struct{ bytes.Buffer }

func (b *logBuffer) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(b, nil)) }

// errorLines returns the logged lines at level ERROR.
func (b *logBuffer) errorLines() []string {
	var out []string
	for l := range strings.Lines(b.String()) {
		if strings.Contains(l, `"level":"ERROR"`) {
			out = append(out, l)
		}
	}
	return out
}

// corruptFiles returns the files moved aside in dir.
func corruptFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, DBFile+corruptSuffix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkWhole asserts that s serves exactly the populated machines, each
// whole: nothing partial is served.
func checkWhole(t *testing.T, s *Store, n, events int) {
	t.Helper()
	list, err := s.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != n {
		t.Fatalf("List: got %d machines, want %d", len(list), n)
	}
	for i := range n {
		m, ok, err := s.Get(testMAC(i))
		if err != nil || !ok {
			t.Fatalf("Get %s: ok %v, err %v", testMAC(i), ok, err)
		}
		if m.State != machine.Installed || len(m.Events) != events || m.UUID != fmt.Sprintf("8d5ae0f7-0000-4000-8000-%012d", i) {
			t.Fatalf("Get %s: got state %q, %d events, uuid %q; want installed, %d events", testMAC(i), m.State, len(m.Events), m.UUID, events)
		}
	}
	if err := s.Health(); err != nil {
		t.Fatalf("Health: %v", err)
	}
	if u := s.Unreadable(); len(u) != 0 {
		t.Fatalf("Unreadable: got %v, want none", u)
	}
}

// damage is one way a state.db goes bad on disk.
type damage struct {
	name string
	do   func(t *testing.T, path string)
	// always says the damage is always detected; overwritten pages may
	// land on free pages, which no read touches.
	always bool
}

func overwritePages(seed uint64) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(seed, seed))
		const page = 4096
		pages := fi.Size() / page
		buf := make([]byte, page)
		for range 4 {
			for i := range buf {
				buf[i] = byte(rng.UintN(256))
			}
			if _, err := f.WriteAt(buf, rng.Int64N(pages)*page); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func truncateTo(size int64) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		t.Helper()
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
	}
}

func damages() []damage {
	d := []damage{
		{name: "truncated to 100 KiB", do: truncateTo(100 << 10), always: true},
		{name: "truncated to 8 KiB", do: truncateTo(8 << 10), always: true},
		{name: "zero length", do: truncateTo(0), always: true},
		{name: "meta pages overwritten", always: true, do: func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, 2*4096), 0); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for seed := range uint64(8) {
		d = append(d, damage{name: fmt.Sprintf("4 random pages, seed %d", seed), do: overwritePages(seed)})
	}
	return d
}

// TestOpenDamagedRestores damages a populated database in each way and
// opens it with its backup present: Open never panics, and the store
// serves every machine whole, from the backup when the damage was found
// (the damaged file kept aside, one error line, counted), or from the
// file itself when the damage touched only free pages.
func TestOpenDamagedRestores(t *testing.T) {
	for _, d := range damages() {
		t.Run(d.name, func(t *testing.T) {
			dir := copyPristine(t)
			path := filepath.Join(dir, DBFile)
			before, _ := os.ReadFile(path)
			d.do(t, path)
			damaged, _ := os.ReadFile(path)
			var logs logBuffer
			reg := prometheus.NewRegistry()
			s, err := Open(dir, Options{Logger: logs.logger(), Registerer: reg, BackupKeep: -1})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			checkWhole(t, s, 300, 16)
			aside := corruptFiles(t, dir)
			restored := testutil.ToFloat64(s.metrics.restores.WithLabelValues("ok"))
			switch {
			case len(aside) == 1:
				kept, _ := os.ReadFile(aside[0])
				if !bytes.Equal(kept, damaged) {
					t.Errorf("%s: not the damaged file", aside[0])
				}
				if restored != 1 || testutil.ToFloat64(s.metrics.corruptions.WithLabelValues("open")) != 1 {
					t.Errorf("restores ok %v, corruptions at open %v; want 1, 1", restored, testutil.ToFloat64(s.metrics.corruptions.WithLabelValues("open")))
				}
				if lines := logs.errorLines(); len(lines) != 1 || !strings.Contains(lines[0], "restored from the newest good backup") {
					t.Errorf("got error lines %q, want one saying it was restored", lines)
				}
			case len(aside) == 0 && !d.always:
				t.Logf("the damage touched no page in use")
				if restored != 0 || bytes.Equal(before, damaged) {
					t.Errorf("no file moved aside, yet restores %v (or the damage changed nothing)", restored)
				}
			default:
				t.Fatalf("files moved aside: got %v, want one", aside)
			}
		})
	}
}

// TestOpenDamagedRefuses opens each damaged database that is detected,
// once with state.onCorrupt refuse and once with no backup: Open returns
// an error wrapping ErrCorrupt that says what to do, and leaves the file
// in place, so a restart refuses the same way instead of starting empty.
func TestOpenDamagedRefuses(t *testing.T) {
	for _, d := range damages() {
		if !d.always {
			continue
		}
		for _, mode := range []string{"refuse", "no backup"} {
			t.Run(d.name+", "+mode, func(t *testing.T) {
				dir := copyPristine(t)
				path := filepath.Join(dir, DBFile)
				d.do(t, path)
				damaged, _ := os.ReadFile(path)
				opts := Options{OnCorrupt: OnCorruptRestore}
				want := "no good backup"
				if mode == "refuse" {
					opts.OnCorrupt, want = OnCorruptRefuse, "state.onCorrupt is refuse"
				} else if err := os.RemoveAll(filepath.Join(dir, BackupDir)); err != nil {
					t.Fatal(err)
				}
				s, err := Open(dir, opts)
				if err == nil {
					s.Close()
					t.Fatal("Open: got a store, want an error")
				}
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
					t.Errorf("Open: got %v, want ErrCorrupt naming %s and saying %q", err, path, want)
				}
				if now, _ := os.ReadFile(path); !bytes.Equal(now, damaged) {
					t.Errorf("%s changed; want it left as it was", path)
				}
				if aside := corruptFiles(t, dir); len(aside) != 0 {
					t.Errorf("moved aside: %v, want nothing", aside)
				}
			})
		}
	}
}

// TestRestoreSkipsCorruptBackups corrupts the newest backup too: the one
// before it is restored.
func TestRestoreSkipsCorruptBackups(t *testing.T) {
	dir := copyPristine(t)
	c := newClock()
	c.Advance(time.Hour)
	s, err := Open(dir, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(testMAC(1000), func(m *Machine, _ bool) error { m.State = machine.Pending; return nil }); err != nil {
		t.Fatal(err)
	}
	newest, err := s.Backup()
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	backups := (&Store{backupDir: filepath.Join(dir, BackupDir)}).backups()
	if len(backups) != 3 || backups[1] != newest {
		t.Fatalf("backups: got %v, want 3, the one Close took and then %s first", backups, newest)
	}
	truncateTo(8<<10)(t, backups[0]) // the one just taken, with testMAC(1000)
	truncateTo(8<<10)(t, backups[1]) // the one Close took, with testMAC(1000)
	truncateTo(0)(t, filepath.Join(dir, DBFile))
	var logs logBuffer
	s, err = Open(dir, Options{Logger: logs.logger(), BackupKeep: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkWhole(t, s, 300, 16) // the pristine backup: without testMAC(1000)
	if lines := logs.errorLines(); len(lines) != 1 || !strings.Contains(lines[0], `"corrupt_backups_skipped":2`) || !strings.Contains(lines[0], backups[2]) {
		t.Errorf("got error lines %q, want one naming %s and 2 skipped", lines, backups[2])
	}
}

// TestGarbledRecord writes invalid JSON into one record with bbolt
// directly: the database stays (its pages are sound), listing leaves the
// record out and names it, and forgetting the machine clears it.
func TestGarbledRecord(t *testing.T) {
	dir := copyPristine(t)
	bad := testMAC(7)
	db, err := bolt.Open(filepath.Join(dir, DBFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(machinesBucket).Put([]byte(bad.String()), []byte(`{"mac": "52:54:00:01:00:07", "state": `))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	var logs logBuffer
	reg := prometheus.NewRegistry()
	s, err := Open(dir, Options{Logger: logs.logger(), Registerer: reg, BackupKeep: -1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if aside := corruptFiles(t, dir); len(aside) != 0 {
		t.Errorf("moved aside: %v, want nothing", aside)
	}
	list, err := s.List()
	if err != nil || len(list) != 299 || slices.ContainsFunc(list, func(m Summary) bool { return m.MAC == bad }) {
		t.Fatalf("List: got %d machines (err %v), want the 299 others", len(list), err)
	}
	if got := s.Unreadable(); !slices.Equal(got, []string{bad.String()}) {
		t.Errorf("Unreadable: got %v, want [%s]", got, bad)
	}
	if got := gaugeValue(t, reg, "tinderbox_state_unreadable_records"); got != 1 {
		t.Errorf("tinderbox_state_unreadable_records: got %v, want 1", got)
	}
	if lines := logs.errorLines(); len(lines) != 1 || !strings.Contains(lines[0], bad.String()) {
		t.Errorf("got error lines %q, want one naming %s", lines, bad)
	}
	if _, _, err := s.Get(bad); err == nil {
		t.Error("Get of the garbled record: got no error")
	}
	if _, err := s.Update(bad, func(*Machine, bool) error { return nil }); err == nil {
		t.Error("Update of the garbled record: got no error; want it kept rather than overwritten as new")
	}
	if err := s.Health(); err != nil {
		t.Errorf("Health: %v", err)
	}
	if ok, err := s.Forget(bad); !ok || err != nil {
		t.Fatalf("Forget: ok %v, err %v", ok, err)
	}
	if got := s.Unreadable(); len(got) != 0 {
		t.Errorf("Unreadable after Forget: got %v, want none", got)
	}
}

// gaugeValue returns the value of the gauge named name in reg.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s is not registered", name)
	return 0
}

// TestOpenFIFO puts a FIFO where state.db belongs (as a frozen disk
// would leave every read waiting): Open refuses at once, naming it, and
// leaves it in place.
func TestOpenFIFO(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DBFile)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	s, err := Open(dir, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open: got a store, want an error")
	}
	if !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), path) {
		t.Errorf("Open: got %v, want it to name %s as not a regular file", err, path)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeNamedPipe {
		t.Errorf("%s: want the FIFO left in place", path)
	}
}

// TestOpenLocked holds the database's lock from another handle: Open
// gives up, saying another process holds it.
func TestOpenLocked(t *testing.T) {
	dir := copyPristine(t)
	db, err := bolt.Open(filepath.Join(dir, DBFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := Open(dir, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open: got a store, want an error")
	}
	if !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("Open: got %v, want it in use", err)
	}
	if aside := corruptFiles(t, dir); len(aside) != 0 {
		t.Errorf("moved aside: %v, want nothing", aside)
	}
}

// TestCloseWithStuckWrite blocks a write inside its transaction, as a
// frozen disk blocks a commit: Health reports it, the next write gives
// up, and Close returns with ErrStuck instead of waiting for it.
func TestCloseWithStuckWrite(t *testing.T) {
	s, err := Open(t.TempDir(), Options{WriteTimeout: 50 * time.Millisecond, CloseTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	entered := make(chan struct{})
	writeDone := make(chan error, 1)
	go func() {
		_, err := s.Update(testMAC(1), func(m *Machine, _ bool) error {
			close(entered)
			<-release
			m.State = machine.Pending
			return nil
		})
		writeDone <- err
	}()
	<-entered
	for s.Health() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Health(); !errors.Is(err, ErrStuck) {
		t.Errorf("Health: got %v, want ErrStuck", err)
	}
	if _, err := s.Update(testMAC(2), func(*Machine, bool) error { return nil }); !errors.Is(err, ErrStuck) {
		t.Errorf("second Update: got %v, want ErrStuck", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if !errors.Is(err, ErrStuck) {
			t.Errorf("Close: got %v, want ErrStuck", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Close did not return while a write was stuck")
	}
	close(release)
	<-writeDone
}

// TestCorruptWhileOpen overwrites every page but the meta pages under an
// open store, as a failing disk would: no call panics, the store turns
// degraded (counted, one error line) and refuses writes.
func TestCorruptWhileOpen(t *testing.T) {
	dir := copyPristine(t)
	var logs logBuffer
	reg := prometheus.NewRegistry()
	s, err := Open(dir, Options{Logger: logs.logger(), Registerer: reg, BackupKeep: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := os.OpenFile(filepath.Join(dir, DBFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, int(pristine.size)-2*4096), 2*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var errs int
	for i := range 300 {
		if _, _, err := s.Get(testMAC(i)); err != nil {
			errs++
		}
	}
	if _, err := s.List(); err != nil {
		errs++
	}
	if errs == 0 {
		t.Fatal("no read failed on a database of garbage")
	}
	if err := s.Health(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Health: got %v, want ErrCorrupt", err)
	}
	if _, err := s.Update(testMAC(1), func(*Machine, bool) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Update: got %v, want ErrCorrupt", err)
	}
	if _, err := s.Backup(); err == nil {
		t.Error("Backup of a corrupt database: got no error")
	}
	if got := testutil.ToFloat64(s.metrics.corruptions.WithLabelValues("runtime")); got != 1 {
		t.Errorf("corruptions at runtime: got %v, want 1", got)
	}
	if got := gaugeValue(t, reg, "tinderbox_state_healthy"); got != 0 {
		t.Errorf("tinderbox_state_healthy: got %v, want 0", got)
	}
	if lines := logs.errorLines(); len(lines) != 1 {
		t.Errorf("got %d error lines, want 1: %q", len(lines), lines)
	}
}

// TestBackupKeeps takes more backups than kept: the newest are kept,
// each a good database, and Close takes one more.
func TestBackupKeeps(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	reg := prometheus.NewRegistry()
	s, err := Open(dir, Options{Now: c.Now, BackupKeep: 3, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	var taken []string
	for i := range 5 {
		if _, err := s.Update(testMAC(i), func(m *Machine, _ bool) error { m.State = machine.Installed; return nil }); err != nil {
			t.Fatal(err)
		}
		c.Advance(time.Hour)
		p, err := s.Backup()
		if err != nil {
			t.Fatal(err)
		}
		taken = append(taken, p)
	}
	got := s.backups()
	slices.Reverse(got)
	if !slices.Equal(got, taken[2:]) {
		t.Errorf("backups: got %v, want %v", got, taken[2:])
	}
	for i, p := range got {
		c, err := checkFile(p, time.Second)
		if err != nil || c.corrupt != nil || c.records != i+3 {
			t.Errorf("%s: records %d, corrupt %v, err %v; want %d good records", p, c.records, c.corrupt, err, i+3)
		}
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, BackupDir, ".*")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	c.Advance(time.Hour)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if after := s.backups(); len(after) != 3 || after[0] == taken[4] {
		t.Errorf("after Close: got %v, want 3 with a new newest", after)
	}
	if got := testutil.ToFloat64(s.metrics.backups.WithLabelValues("ok")); got != 6 {
		t.Errorf("backups ok: got %v, want 6", got)
	}
}

// TestBackupIsConsistentUnderWrites backs up while writers run: every
// backup is a good database.
func TestBackupIsConsistentUnderWrites(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s, err := Open(dir, Options{Now: c.Now, BackupKeep: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := s.Update(testMAC(i%200), func(m *Machine, _ bool) error {
				m.State = machine.Installed
				m.Events = append(m.Events, s.Event(machine.EventTFTP, "x", 1))
				return nil
			}); err != nil {
				done <- err
				return
			}
		}
	}()
	for range 10 {
		c.Advance(time.Second)
		if _, err := s.Backup(); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, p := range s.backups() {
		if c, err := checkFile(p, time.Second); err != nil || c.corrupt != nil || len(c.unreadable) != 0 {
			t.Errorf("%s: corrupt %v, unreadable %v, err %v", p, c.corrupt, c.unreadable, err)
		}
	}
}

// TestUpdatePanicIsNotCorruption: a panic in Update's function is the
// caller's fault; it becomes an error and the store stays healthy.
func TestUpdatePanicIsNotCorruption(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Update(testMAC(1), func(*Machine, bool) error { panic("boom") }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Update: got %v, want the panic as an error", err)
	}
	if err := s.Health(); err != nil {
		t.Errorf("Health: %v", err)
	}
	if _, ok, _ := s.Get(testMAC(1)); ok {
		t.Error("the panicking update was stored")
	}
}

// BenchmarkCheck measures the check Open runs (and each backup runs on
// its copy) on a database of 20,000 machines with a short and a full
// event log.
func BenchmarkCheck(b *testing.B) {
	for _, events := range []int{8, 64} {
		b.Run(fmt.Sprintf("machines=20000/events=%d", events), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), DBFile)
			db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			c := newClock()
			for batch := range 20 {
				if err := db.Update(func(tx *bolt.Tx) error {
					sb, err := tx.CreateBucketIfNotExists(machinesBucket)
					if err != nil {
						return err
					}
					eb, err := tx.CreateBucketIfNotExists(eventsBucket)
					if err != nil {
						return err
					}
					for i := range 1000 {
						m := Machine{MAC: machine.MustParseMAC(fmt.Sprintf("52:54:00:%02x:%02x:%02x", batch, i/256, i%256)), State: machine.Installed,
							UUID: "8d5ae0f7-0000-4000-8000-000000000001", IP: "192.0.2.50", FirstSeen: c.Now(), LastSeen: c.Now()}
						for range events {
							m.Events = append(m.Events, machine.Event{Time: c.Now(), Kind: machine.EventTFTP, Detail: "ipxe.efi", Bytes: 1000})
						}
						if err := put(sb, eb, []byte(m.MAC.String()), &m); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			db.Close()
			fi, _ := os.Stat(path)
			b.ReportAllocs()
			for b.Loop() {
				c, err := checkFile(path, time.Second)
				if err != nil || c.corrupt != nil || c.records != 20000 {
					b.Fatal(c.records, c.corrupt, err)
				}
			}
			b.ReportMetric(float64(fi.Size())/(1<<20), "MiB")
		})
	}
}

// TestOpenRemovesTemporaries: the temporary copies a kill -9 in the
// middle of a backup or a restore leaves (found by the chaos run: one
// database-sized file per such kill, never removed) are deleted at the
// next Open; backups and other files stay.
func TestOpenRemovesTemporaries(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{BackupKeep: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(testMAC(1), func(m *Machine, _ bool) error { m.State = machine.Pending; return nil }); err != nil {
		t.Fatal(err)
	}
	backup, err := s.Backup()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	stale := []string{
		filepath.Join(dir, BackupDir, ".state-123456.db.tmp"),
		filepath.Join(dir, "."+DBFile+"-987654.tmp"),
	}
	keep := []string{backup, filepath.Join(dir, "notes.tmp"), filepath.Join(dir, SecretFile)}
	for _, p := range stale {
		if err := os.WriteFile(p, []byte("half a copy"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(keep[1], []byte("not ours"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{BackupKeep: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range stale {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: got %v after Open, want it removed", p, err)
		}
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: got %v after Open, want it kept", p, err)
		}
	}
	if _, ok, err := s.Get(testMAC(1)); err != nil || !ok {
		t.Errorf("record after Open: ok=%v err=%v", ok, err)
	}
}
