#!/usr/bin/env bash
# Benchmarks tinderbox at scale (issue 20, `make bench`): a profiles tree
# of N machines (default 5000, internal/profiles/fleettree: the example
# profiles/ with machines of their own, a fifth of them in the longhorn
# group) and state databases of 5000 and 20,000 machine records. Paired
# A/B rounds of two binaries in the same run: "before", built from BASE
# (default 28d0fe0, the commit the incremental profile loads started
# from, unpacked with git archive), and "after", this work tree.
#
# Per round and binary (scripts/scale drives them, on loopback only; the
# Image Factory URL points at a closed loopback port):
#   - first start: `serve` until GET /readyz answers, with an empty
#     state.dir (no last good copy of the profiles yet);
#   - start: the same again, state.dir kept (a restart);
#   - validate: `tinderbox validate` on the tree, with the daemon's
#     state.dir (after: the renders it keeps there are used) and with an
#     empty one (every machine rendered);
#   - reload: from writing a file to /metrics showing a set loaded after
#     it (tinderbox_profiles_last_load_success_timestamp_seconds), for
#     one machine's file, the longhorn group (about N/5 machines) and
#     defaults.yaml (all); it includes the watcher's debounce (300 ms
#     before, 100 ms after);
#   - /metrics: the median of SCRAPES scrapes, and the RSS after them,
#     with 5000 and 20,000 records (the example profiles, 4 machines, so
#     that the records' cost shows alone).
# Prints median (min–max) over RUNS rounds, the median of the per-round
# after/before ratios, and each goal. Times are wall clock on a machine
# that may be busy; the CPU seconds of start and validate are printed
# too, with their run-queue wait (the time their threads were runnable
# but waited for a CPU, summed over threads, from
# /proc/PID/task/*/schedstat) and the machine's load average.
# Environment: RUNS (default 3), N (5000), SCRAPES (20), BASE, STRICT=1 to
# exit 1 when a goal is missed, ONLY=validate to time nothing but
# validate with an empty state.dir (every machine rendered; more rounds
# in the same time).
set -euo pipefail

RUNS=${RUNS:-3}
N=${N:-5000}
SCRAPES=${SCRAPES:-20}
BASE=${BASE:-28d0fe0}
STRICT=${STRICT:-0}
ONLY=${ONLY:-}
case "$ONLY" in
"" | validate) ;;
*)
	echo "bench-scale: ONLY=$ONLY: want validate or nothing" >&2
	exit 2
	;;
esac
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-scale.XXXXXX")
shm=$(mktemp -d /dev/shm/bench-scale.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$work" "$shm"' EXIT
rec="$work/records"
: >"$rec"

echo "bench-scale: building before ($BASE) and after (this tree)" >&2
mkdir "$work/src-before"
git archive "$BASE" | tar -x -C "$work/src-before"
(cd "$work/src-before" && CGO_ENABLED=0 go build -trimpath -o "$work/tinderbox-before" ./cmd/tinderbox)
CGO_ENABLED=0 go build -trimpath -o "$work/tinderbox-after" ./cmd/tinderbox
go build -o "$work/scale" ./scripts/scale
scale="$work/scale"

echo "bench-scale: writing a tree of $N machines and 5000 / 20,000 records" >&2
"$scale" tree -src profiles -n "$N" "$work/tree"
for k in 5000 20000; do
	[ "$ONLY" = validate ] && break # no records needed
	# On tmpfs, where fsync costs nothing, then copied: the records are
	# the same for both binaries.
	"$scale" records -n "$k" "$shm/records-$k"
	cp -a "$shm/records-$k" "$work/records-$k"
done

# config BIN_DIR PROFILES STATE: write BIN_DIR/tinderbox.yaml on fresh
# loopback ports; prints "BOOT ADMIN".
config() {
	local boot admin
	boot=127.0.0.1:$("$scale" port)
	admin=127.0.0.1:$("$scale" port)
	cat >"$1/tinderbox.yaml" <<CFG
advertise: 127.0.0.1
http: {listen: "$boot"}
admin: {listen: "$admin"}
dhcp: {enabled: false}
tftp: {enabled: false}
reports: {enabled: false}
factory: {url: "http://127.0.0.1:9"}
cache: {dir: $1/cache}
state: {dir: $3}
profiles: {dir: $2}
CFG
	echo "$boot $admin"
}

# rec_line SIDE PREFIX LINE: record each "KEY VALUE" pair of LINE as
# PREFIX KEY of SIDE.
rec_line() {
	local side=$1 prefix=$2
	# shellcheck disable=SC2086 # split the pairs on purpose
	set -- $3
	while [ $# -ge 2 ]; do
		bench_record "$rec" "$prefix$1/$side" "$2"
		shift 2
	done
}

for r in $(seq "$RUNS"); do
	for side in before after; do
		echo "bench-scale: round $r/$RUNS, $side" >&2
		d="$work/$side"
		rm -rf "$d"
		mkdir -p "$d"
		cp -a "$work/tree" "$d/profiles"
		bin="$work/tinderbox-$side"
		if [ "$ONLY" = validate ]; then
			mkdir "$d/cold"
			config "$d/cold" "$d/profiles" "$d/cold/state" >/dev/null
			rec_line "$side" cold_ "$("$scale" validate -tinderbox "$bin" -config "$d/cold/tinderbox.yaml")"
			continue
		fi
		read -r boot _ < <(config "$d" "$d/profiles" "$d/state")
		rec_line "$side" first_ "$("$scale" ready -tinderbox "$bin" -config "$d/tinderbox.yaml" -boot "$boot")"
		rec_line "$side" "" "$("$scale" ready -tinderbox "$bin" -config "$d/tinderbox.yaml" -boot "$boot")"
		rec_line "$side" "" "$("$scale" validate -tinderbox "$bin" -config "$d/tinderbox.yaml")"
		# validate with a state.dir of its own, empty: no renders kept.
		mkdir "$d/cold"
		config "$d/cold" "$d/profiles" "$d/cold/state" >/dev/null
		rec_line "$side" cold_ "$("$scale" validate -tinderbox "$bin" -config "$d/cold/tinderbox.yaml")"
		rec_line "$side" "" "$("$scale" reload -tinderbox "$bin" -config "$d/tinderbox.yaml" -boot "$boot" -profiles "$d/profiles")"
		for k in 5000 20000; do
			rm -rf "$d/rec" "$d/state"
			cp -a "$work/records-$k" "$d/state"
			cp -a profiles "$d/rec"
			read -r boot _ < <(config "$d" "$d/rec" "$d/state")
			rec_line "$side" "r${k}_" "$("$scale" scrape -tinderbox "$bin" -config "$d/tinderbox.yaml" -boot "$boot" -n "$SCRAPES")"
		done
	done
done

missed=0
# row LABEL KEY FORMAT UNIT OP GOAL: one line of the table.
row() {
	local label=$1 key=$2 fmt=$3 unit=$4 op=$5 goal=$6 verdict
	bench_ratio "$rec" "$key/after" "$key/before" "$key/ratio"
	if [ -z "$goal" ]; then
		verdict=""
	elif bench_goal "$rec" "$key/after" "$op" "$goal"; then
		verdict="met"
	else
		verdict="MISSED"
		missed=1
	fi
	printf '| %s | %s | %s | %s | %s | %s %s |\n' "$label" \
		"$(bench_cell "$rec" "$key/before" "$fmt") $unit" "$(bench_cell "$rec" "$key/after" "$fmt") $unit" \
		"$(bench_cell "$rec" "$key/ratio" %.3f)" "${goal:+$op $goal $unit}" "$verdict"
}

echo "bench-scale: $RUNS paired rounds, $N machines; median (min–max); ratio = median of per-round after/before"
echo "| figure | before ($BASE) | after | after/before | goal |"
echo "|---|---|---|---|---|"
if [ "$ONLY" = validate ]; then
	row "validate, empty state.dir (no renders kept)" cold_validate_s %.2f s "<" 2
	row "  its CPU time" cold_validate_cpu_s %.2f s "" ""
	row "  its run-queue wait (all threads)" cold_validate_runq_s %.2f s "" ""
	if [ "$missed" = 1 ] && [ "$STRICT" = 1 ]; then
		exit 1
	fi
	exit 0
fi
row "first start to ready (empty state.dir)" first_ready_s %.2f s "" ""
row "  its CPU time" first_ready_cpu_s %.2f s "" ""
row "  load average (1 min) then" first_load1 %.1f "" "" ""
row "start to ready (restart)" ready_s %.2f s "<" 2
row "  its CPU time" ready_cpu_s %.2f s "" ""
row "  its run-queue wait (all threads)" ready_runq_s %.2f s "" ""
row "  RSS when ready" ready_rss_mib %.0f MiB "" ""
row "  load average (1 min) then" load1 %.1f "" "" ""
row "validate" validate_s %.2f s "<" 2
row "  its CPU time" validate_cpu_s %.2f s "" ""
row "  its run-queue wait (all threads)" validate_runq_s %.2f s "" ""
row "validate, empty state.dir (no renders kept)" cold_validate_s %.2f s "<" 2
row "  its CPU time" cold_validate_cpu_s %.2f s "" ""
row "  its run-queue wait (all threads)" cold_validate_runq_s %.2f s "" ""
row "reload: one machine's file" reload_machine_s %.3f s "<" 0.5
row "reload: a group (N/5 machines)" reload_group_s %.3f s "" ""
row "reload: defaults.yaml (all)" reload_defaults_s %.3f s "" ""
row "/metrics, 5000 records" r5000_scrape_ms %.1f ms "<" 50
row "  RSS after the scrapes" r5000_rss_mib %.0f MiB "" ""
row "/metrics, 20,000 records" r20000_scrape_ms %.1f ms "<" 50
row "  RSS after the scrapes" r20000_rss_mib %.0f MiB "<" 100
row "  peak RSS" r20000_peak_rss_mib %.0f MiB "<" 100
row "  of it anonymous (heap, stacks)" r20000_anon_mib %.0f MiB "" ""
row "  of it file-backed (state.db's map)" r20000_file_mib %.0f MiB "" ""
if [ "$missed" = 1 ] && [ "$STRICT" = 1 ]; then
	exit 1
fi
