package factory

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/renameio/v2"
)

// idStore remembers schematic IDs on disk, by sha256 of the schematic body,
// in one small JSON file replaced atomically on every change.
type idStore struct {
	path string // "" keeps IDs in memory only
	mu   sync.Mutex
	ids  map[string]string
}

type idFile struct {
	// Schematics maps the sha256 of a schematic body to the ID the factory
	// gave it.
	Schematics map[string]string `json:"schematics"`
}

func newIDStore(dir string, log *slog.Logger) *idStore {
	s := &idStore{ids: map[string]string{}}
	if dir == "" {
		return s
	}
	s.path = filepath.Join(dir, schematicsFile)
	b, err := os.ReadFile(s.path)
	if os.IsNotExist(err) {
		return s
	}
	var f idFile
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err != nil {
		// The IDs can be had from the factory again: start afresh rather
		// than refuse to start.
		log.Warn("factory: ignoring unreadable remembered schematic IDs", "file", s.path, "err", err)
		return s
	}
	for k, id := range f.Schematics {
		if CheckSchematicID(id) == nil {
			s.ids[k] = id
		}
	}
	return s
}

func (s *idStore) get(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.ids[key]
	return id, ok
}

func (s *idStore) put(key, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids[key] = id
	if s.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(idFile{Schematics: s.ids}, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path, append(b, '\n'))
}

func (s *idStore) describe() string {
	if s.path == "" {
		return "memory (no state.dir)"
	}
	return s.path
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new content: renameio writes a hidden temporary file beside
// it, syncs it and renames it over path. The file is 0600, as
// os.CreateTemp made it before, or keeps the mode it has.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := renameio.WriteFile(path, data, 0o600, renameio.WithTempDir(dir)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
