package talosevents

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: Serve
// must stop every connection and RPC it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
