#!/usr/bin/env bash
# Builds the tinderbox .deb into bin/ with nfpm (run as a Go module, so no
# Docker and nothing installed): the binary from `make build`, the systemd
# unit, the commented default config and the example profiles
# (deploy/package/nfpm.yaml). Prints the package's path.
#
#   scripts/package.sh [BIN]    BIN defaults to bin/tinderbox
set -euo pipefail
cd "$(dirname "$0")/.."

# nfpm is pinned: a new release may change the package it writes.
NFPM=${NFPM:-github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.41.3}
bin=${1:-bin/tinderbox}
[ -x "$bin" ] || { echo "package: $bin missing: run make build first" >&2; exit 1; }

# The version is the binary's own (make build stamps it), so the package
# says what it holds. A Debian version must start with a digit: v1.2.3 →
# 1.2.3, and an untagged build → 0.0.0~git<commit> (sorts before any
# release).
desc=$("$bin" version 2>/dev/null | awk '{print $2}')
desc=${desc:-$(git describe --tags --always --dirty 2>/dev/null || echo unknown)}
if [[ $desc =~ ^v([0-9].*)$ ]]; then
	version=${BASH_REMATCH[1]//-/+}
else
	version="0.0.0~git${desc//-/.}"
fi
export TINDERBOX_DEB_VERSION=$version
export GOARCH=${GOARCH:-$(go env GOARCH)}

# nfpm copies the file it is given; make sure it is the one just built, not a
# stale one from another architecture.
file -b "$bin" 2>/dev/null | grep -q "statically linked" || [ ! -x /usr/bin/file ] ||
	{ echo "package: $bin is not a static binary: build it with make build" >&2; exit 1; }

# Man pages, from the commands themselves (built for this host, so a
# package for another architecture gets them too), gzipped as Debian wants.
rm -rf bin/man
GOARCH= go run ./cmd/tinderbox docs man bin/man >&2
gzip -9n bin/man/*.1

mkdir -p bin
out=bin/tinderbox_${version}_${GOARCH}.deb
rm -f "$out"
go run "$NFPM" package --config deploy/package/nfpm.yaml --packager deb --target "$out" >&2
echo "$out"
