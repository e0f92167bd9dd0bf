package factory_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a request or a timer goroutine outlives its
// test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
