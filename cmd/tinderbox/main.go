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

// exitCode prints err (unless already reported) and returns the process exit status.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if !errors.Is(err, errReported) {
		fmt.Fprintf(stderr, "tinderbox: %v\n", err)
	}
	return 1
}
