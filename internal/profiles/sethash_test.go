package profiles

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const hashTree = "testdata/golden/layers/profiles"

// copyShuffled copies the profiles tree src into a new directory, writing
// its files in reverse order and giving each another modification time,
// as a second replica's checkout (git-sync, a ConfigMap volume) would.
func copyShuffled(t *testing.T, src string) string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(files)
	dst := t.TempDir()
	for i, p := range files {
		rel, _ := filepath.Rel(src, p)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		to := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			t.Fatal(err)
		}
		when := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
		if err := os.Chtimes(to, when, when); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func loadHash(t *testing.T, dir string) string {
	t.Helper()
	set, err := Load(t.Context(), testOptions(dir))
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	return set.Hash()
}

// TestSetHashSameTree: the same files give the same hash, whatever the
// order they were written in, their modification times, and files the
// load does not read (a README, dot files such as .git).
func TestSetHashSameTree(t *testing.T) {
	want := loadHash(t, copyDir(t, hashTree))
	if len(want) != 64 || strings.Trim(want, "0123456789abcdef") != "" {
		t.Fatalf("got hash %q, want 64 hex digits", want)
	}
	other := copyShuffled(t, hashTree)
	if got := loadHash(t, other); got != want {
		t.Errorf("a copy written in another order, with other times: got hash %s, want %s", got, want)
	}
	writeFile(t, filepath.Join(other, "README.md"), "not a profile\n")
	writeFile(t, filepath.Join(other, ".git", "HEAD"), "ref: refs/heads/main\n")
	writeFile(t, filepath.Join(other, "machines", ".52-54-00-00-00-01.yaml.swp"), "editor leftovers")
	if got := loadHash(t, other); got != want {
		t.Errorf("with files that are not profiles added: got hash %s, want %s", got, want)
	}
}

// TestSetHashOneByte: one byte more in any input file (a newline, which
// changes no value) changes the hash, as does an input file added.
func TestSetHashOneByte(t *testing.T) {
	base := loadHash(t, copyDir(t, hashTree))
	for _, rel := range []string{
		"defaults.yaml", "machines/52-54-00-00-00-01.yaml", "groups/fast.yaml",
		"configs/node.yaml", "patches/common.yaml", "schematics/base.yaml",
	} {
		t.Run(rel, func(t *testing.T) {
			dir := copyDir(t, hashTree)
			path := filepath.Join(dir, rel)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, string(data)+"\n")
			if got := loadHash(t, dir); got == base {
				t.Errorf("after one byte was added to %s: got the same hash %s", rel, got)
			}
		})
	}
	t.Run("file added", func(t *testing.T) {
		dir := copyDir(t, hashTree)
		// A copy of a patch under a name no profile uses: the set
		// renders alike, but its files differ.
		data, err := os.ReadFile(filepath.Join(dir, "patches", "tuning.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "patches", "unused.yaml"), string(data))
		if got := loadHash(t, dir); got == base {
			t.Errorf("with a file added: got the same hash %s", got)
		}
	})
}

// TestStoreSetHash: the store's status, its renders and the
// tinderbox_profiles_set_info metric name the hash of the set being
// served, and follow it across a reload.
func TestStoreSetHash(t *testing.T) {
	dir := copyDir(t, hashTree)
	reg := prometheus.NewPedanticRegistry()
	s, err := NewStore(t.Context(), testOptions(dir), StoreOptions{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	check := func(want string) {
		t.Helper()
		if got := s.Status().Hash; got != want {
			t.Errorf("status: got hash %s, want %s", got, want)
		}
		m := s.Machines()[0].MAC
		cfg, set, err := s.Rendered(t.Context(), m)
		if err != nil || len(cfg) == 0 || set != want {
			t.Errorf("Rendered(%s): got %d bytes, set %s, err %v; want a config of set %s", m, len(cfg), set, err, want)
		}
		exp := "# HELP tinderbox_profiles_set_info The profile set being served: 1, labelled with its hash (the SHA-256 of its input files by path and content).\n" +
			"# TYPE tinderbox_profiles_set_info gauge\n" +
			"tinderbox_profiles_set_info{hash=\"" + want + "\"} 1\n"
		if err := testutil.GatherAndCompare(reg, strings.NewReader(exp), "tinderbox_profiles_set_info"); err != nil {
			t.Error(err)
		}
	}
	first := loadHash(t, dir)
	check(first)
	path := filepath.Join(dir, "defaults.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(data)+"\n")
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	second := loadHash(t, dir)
	if second == first {
		t.Fatal("the edit did not change the hash")
	}
	check(second)
}
