// Package version holds the build's version and commit, set at link time with
// -ldflags "-X github.com/tinderbox-boot/tinderbox/internal/version.Version=… -X …Commit=…".
package version

import (
	"fmt"
	"runtime"
)

// Version is the release version, or "dev" for a build from a work tree.
var Version = "dev"

// Commit is the git commit the binary was built from, or "unknown".
var Commit = "unknown"

// String returns a one-line description: version, commit and Go version.
func String() string {
	return fmt.Sprintf("tinderbox %s (commit %s, %s %s/%s)", Version, Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// UserAgent returns the User-Agent tinderbox sends to upstream services.
func UserAgent() string {
	return "tinderbox/" + Version
}
