// Command tinderbox network-boots Talos Linux machines: a proxyDHCP
// responder, a TFTP server for the iPXE chain-load, and an HTTP server for
// iPXE scripts, Image Factory assets and per-machine configs.
//
// This package only parses flags and wires the packages under internal/ together.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// errReported is returned by a command that has already printed its
// problems; it only sets the exit status.
var errReported = errors.New("problems reported")

// exitStatus is an error that exits with its own status rather than 1,
// as `tinderbox diff` exits 2 on trouble (1 saying the configs differ).
type exitStatus struct {
	code int
	err  error
}

func (e *exitStatus) Error() string { return e.err.Error() }
func (e *exitStatus) Unwrap() error { return e.err }

// exitCode prints err (unless already reported) and returns the process exit status.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if !errors.Is(err, errReported) {
		fmt.Fprintf(stderr, "tinderbox: %v\n", err)
	}
	var es *exitStatus
	if errors.As(err, &es) {
		return es.code
	}
	return 1
}
