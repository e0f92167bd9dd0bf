package cache_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a fetch, a flight or a handler goroutine
// outlives its test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
