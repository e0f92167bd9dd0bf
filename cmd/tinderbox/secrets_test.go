package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/secrets"
)

func TestSecretsGen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets.yaml")
	var errOut bytes.Buffer
	if err := execute(t.Context(), []string{"secrets", "gen", "-o", path}, io.Discard, &errOut); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.Parse(first); err != nil {
		t.Errorf("the written bundle does not parse: %v", err)
	}

	err = execute(t.Context(), []string{"secrets", "gen", "-o", path}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "pass --force") {
		t.Errorf("second gen: got %v, want a refusal naming --force", err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, first) {
		t.Error("the refused gen changed the file")
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := execute(t.Context(), []string{"secrets", "gen", "-o", path, "--force"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	forced, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(forced, first) {
		t.Error("--force kept the old bundle")
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("after --force: mode %v, want 0600", info.Mode().Perm())
	}
	if _, err := secrets.Parse(forced); err != nil {
		t.Errorf("the replaced bundle does not parse: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("left %d files beside the bundle, want none", len(entries)-1)
	}
}
