package admin

import (
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tinderbox-boot/tinderbox/internal/bootflow"
	"github.com/tinderbox-boot/tinderbox/internal/eventhub"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
)

// full is an API over the repository's example profiles (copied, so the
// test can edit them), a real state store and a hub.
type full struct {
	srv      *httptest.Server
	api      *API
	store    *state.Store
	profiles *profiles.Store
	hub      *eventhub.Hub
	dir      string
	// stateDir is the state store's directory.
	stateDir string
}

const (
	// macCP is cp-01 in the example profiles.
	macCP  = "1c:69:7a:00:00:11"
	fileCP = "machines/1c-69-7a-00-00-11.yaml"
)

func newFull(t *testing.T, token string, tweak func(*Options)) *full {
	t.Helper()
	dir := t.TempDir()
	err := filepath.WalkDir(filepath.Join("..", "..", "profiles"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join("..", "..", "profiles"), path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := profiles.NewStore(t.Context(), profiles.Options{Dir: dir, FactoryURL: "https://factory.example.test"}, profiles.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hub := eventhub.New()
	t.Cleanup(hub.Close)
	stateDir := t.TempDir()
	store, err := state.Open(stateDir, state.Options{OnChange: func(m state.Machine) { hub.Publish(m.MAC) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.DiscardHandler)
	flow := bootflow.New(bootflow.Options{BaseURL: "http://192.0.2.1:8080", LocalBoot: "exit", Store: store, Profiles: ps, Cmdlines: cmdlines{}, Logger: log})
	opts := Options{Token: token, Store: store, Profiles: ps, Scripts: flow, Logger: log, Files: ps, Hub: hub}
	if tweak != nil {
		tweak(&opts)
	}
	api := New(opts)
	r := chi.NewRouter()
	api.Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &full{srv: srv, api: api, store: store, profiles: ps, hub: hub, dir: dir, stateDir: stateDir}
}

// clock is a test clock for Options.Clock: it stands still until Advance.
// It is safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
