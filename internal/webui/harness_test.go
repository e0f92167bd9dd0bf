package webui

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tinderbox-boot/tinderbox/internal/admin"
	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
)

// macCP is cp-01 in the repository's example profiles.
const macCP = "1c:69:7a:00:00:11"

type fakeFactory struct{}

func (fakeFactory) URL() string { return "http://factory.test" }
func (fakeFactory) Versions(context.Context) ([]string, error) {
	return []string{"v1.12.7"}, nil
}

// newServer serves the API and the UI over the example profiles (copied),
// a real state store and an empty cache.
func newServer(t *testing.T, token string) *httptest.Server {
	t.Helper()
	return newServerClock(t, token, nil)
}

// newServerClock is newServer with the API's clock (nil: time.Now).
func newServerClock(t *testing.T, token string, clock func() time.Time) *httptest.Server {
	t.Helper()
	srv, _ := newServerStore(t, token, clock)
	return srv
}

// newServerStore is newServerClock that also returns the state store.
func newServerStore(t *testing.T, token string, clock func() time.Time) (*httptest.Server, *state.Store) {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "..", "profiles"))); err != nil {
		t.Fatal(err)
	}
	ps, err := profiles.NewStore(t.Context(), profiles.Options{Dir: dir, FactoryURL: "https://factory.example.test"}, profiles.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	c, err := cache.Open(cache.Options{Dir: t.TempDir(), Upstream: func(context.Context, cache.Key) (io.ReadCloser, int64, error) {
		return nil, 0, errors.New("no factory in this test")
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	log := slog.New(slog.DiscardHandler)
	a := admin.New(admin.Options{Token: token, Store: store, Profiles: ps, Files: ps, Cache: c, Factory: fakeFactory{}, Logger: log, Clock: clock})
	r := chi.NewRouter()
	a.Mount(r)
	New(Options{API: a, Records: store, Profiles: ps, Files: ps, Logger: log}).Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv, store
}
