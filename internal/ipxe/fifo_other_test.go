//go:build !unix

package ipxe

import "testing"

// mkfifo skips the test: the fixture needs a named pipe, which this
// system does not have.
func mkfifo(t *testing.T, _ string) {
	t.Helper()
	t.Skip("the ipxe.dir fixture needs a FIFO, which this system does not have")
}
