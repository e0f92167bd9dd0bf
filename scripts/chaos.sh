#!/usr/bin/env bash
# The kill -9 chaos run (docs/testing.md, "Chaos run"): builds tinderbox and
# the driver in scripts/chaos/, then runs the driver on loopback only.
#   scripts/chaos.sh [-seed N] [-rounds 20] [-nodes 24] [-unknown 8] [-corrupt-every 5]
# CHAOS_KEEP=1 keeps the work directory (round logs, state, cache).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/tinderbox-chaos.XXXXXX")
pid=
cleanup() {
	# The driver kills the daemon it runs (and the daemon dies with it).
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	if [ "${CHAOS_KEEP:-}" = 1 ]; then
		echo "chaos: kept $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$repo"
CGO_ENABLED=0 go build -trimpath -o "$work/tinderbox" ./cmd/tinderbox
go build -o "$work/chaos" ./scripts/chaos
mkdir "$work/run"
"$work/chaos" -tinderbox "$work/tinderbox" -profiles "$repo/profiles" -dir "$work/run" "$@" &
pid=$!
wait "$pid"
