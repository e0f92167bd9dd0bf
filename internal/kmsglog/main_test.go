package kmsglog

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a connection goroutine outlives the
// Serve that started it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
