#!/usr/bin/env bash
# Benchmarks `tinderbox validate` on 1000 machines (issue 17, `make bench`):
# cmd/tinderbox BenchmarkValidate1000 builds a tree of 1000 machines from
# the example profiles/ and runs the whole command (config, every render
# and its checks, the checks across machines, every kernel command line).
# Prints the median (min-max) time, bytes and allocations per run over
# RUNS runs. Goal: the median under 3 s.
# Environment: RUNS (default 5), STRICT=1 to exit 1 when the goal is missed.
set -euo pipefail

RUNS=${RUNS:-5}
STRICT=${STRICT:-0}
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/tinderbox.test" ./cmd/tinderbox

# The benchmark reads ../../profiles: run it where go test would.
(cd cmd/tinderbox && "$work/tinderbox.test" -test.run '^$' -test.bench '^BenchmarkValidate1000$' -test.benchtime 1x -test.count "$RUNS" -test.benchmem) |
	awk '/^BenchmarkValidate1000/ { print $3, $5, $7 }' >"$work/runs"

awk -v goal=3e9 -v strict="$STRICT" '
function sort(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
{ n++; ns[n] = $1; by[n] = $2; al[n] = $3 }
END {
	if (n == 0) { print "bench-validate: no result" > "/dev/stderr"; exit 1 }
	sort(ns, n); sort(by, n); sort(al, n); m = int((n + 1) / 2)
	printf "bench-validate: %d runs of validate on 1000 machines; median (min-max)\n", n
	printf "  time %.2f s (%.2f-%.2f)   %.0f MB allocated   %.1f M allocations\n", ns[m] / 1e9, ns[1] / 1e9, ns[n] / 1e9, by[m] / 1e6, al[m] / 1e6
	printf "  goal: under 3 s: %s\n", ns[m] < goal ? "met" : "MISSED"
	if (ns[m] >= goal && strict) exit 1
}' "$work/runs"
