#!/usr/bin/env bash
# Benchmarks tinderbox's asset cache over loopback against nginx (issues 6
# and 20, `make bench`), with the paired-round method of scripts/lib/bench.sh:
#
#  1. hot: a 100 MiB cached initramfs downloaded by 1, 8 and 64 concurrent
#     clients (internal/bench/httpload, keep-alive, DURATION seconds), from
#     tinderbox and from nginx (sendfile on) serving the very same file,
#     alternating A B / B A for ROUNDS rounds. Prints MB/s as median
#     (min–max) and the ratio as the median of the per-round ratios; goal:
#     ratio >= 1.0 at every concurrency.
#  2. cold: per round, a single client asks an empty cache for the asset
#     while a slow fake factory sends it, then 64 clients at once ask
#     another empty cache; prints each one's time to last byte, the
#     storm/single ratio, and the upstream fetches of the storm (must be 1).
#
# Everything listens on 127.0.0.1 only and is stopped on exit. Needs Go and
# nginx (installed with apt-get when missing and running as root).
# Environment: SIZE (bytes, default 100 MiB), DURATION (seconds per hot
# run, default 3), ROUNDS (default 5), COLD_ROUNDS (default 3), RATE (fake
# factory bytes/s for the cold runs, default 50 MiB/s), STRICT=1 to exit 1
# when a goal is missed.
set -euo pipefail

SIZE=${SIZE:-104857600}
DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-5}
COLD_ROUNDS=${COLD_ROUNDS:-3}
RATE=${RATE:-52428800}
STRICT=${STRICT:-0}
CONCURRENCY=(1 8 64)
ID=376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba
VERSION=v1.12.7
FILE=initramfs-amd64.xz

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh

if ! command -v nginx >/dev/null 2>&1 && [ -x /usr/sbin/nginx ]; then
	PATH=$PATH:/usr/sbin
fi
if ! command -v nginx >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "bench: installing nginx" >&2
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
	else
		echo "bench: nginx is missing: apt-get install nginx-light" >&2
		exit 1
	fi
fi

work=$(mktemp -d)
chmod 755 "$work" # nginx workers run as another user
rec=$work/records
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

echo "bench: building" >&2
go build -o "$work/tinderbox" ./cmd/tinderbox
go build -o "$work/fakefactory" ./cmd/fakefactory
go build -o "$work/httpload" ./internal/bench/httpload
load() { "$work/httpload" "$@"; }
field() { sed -E "s/.*\b$1=([^ ]+).*/\1/" <<<"$2"; }

# start_tinderbox CACHE_DIR FACTORY_URL: serves boot HTTP on a free port.
start_tinderbox() {
	local dir=$1 url=$2
	tb_port=$(load -freeport)
	mkdir -p "$work/profiles" "$work/ipxe"
	cat >"$work/tinderbox.yaml" <<YAML
advertise: 127.0.0.1
http: {listen: "127.0.0.1:$tb_port"}
admin: {listen: "127.0.0.1:$(load -freeport)"}
dhcp: {enabled: false}
tftp: {enabled: false}
reports: {enabled: false}
ipxe: {dir: $work/ipxe}
factory: {url: "$url"}
cache: {dir: $dir, maxSize: 20GiB, allow: ["$ID/$VERSION/amd64"]}
state: {dir: $work/state}
profiles: {dir: $work/profiles}
log: {level: warn}
YAML
	"$work/tinderbox" serve --config "$work/tinderbox.yaml" 2>>"$work/tinderbox.log" &
	tb_pid=$!
	pids+=("$tb_pid")
	for _ in $(seq 100); do
		if curl -fsS "http://127.0.0.1:$tb_port/healthz" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench: tinderbox did not start:" >&2
	cat "$work/tinderbox.log" >&2
	exit 1
}

stop_pid() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

peak_rss_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# start_factory RATE: a fake factory serving a SIZE-byte initramfs.
start_factory() {
	"$work/fakefactory" -initramfs-size "$SIZE" -rate "$1" >"$work/factory.url" &
	ff_pid=$!
	pids+=("$ff_pid")
	for _ in $(seq 100); do
		ff_url=$(head -1 "$work/factory.url" 2>/dev/null || true)
		[ -n "$ff_url" ] && return 0
		sleep 0.1
	done
	echo "bench: fake factory did not start" >&2
	exit 1
}

upstream_count() {
	curl -fsS "$ff_url/_fake/counts" | sed -nE "s|.*\"/image/$ID/$VERSION/$FILE\": *([0-9]+).*|\1|p"
}

echo "bench: $((SIZE / 1048576)) MiB asset, ${DURATION}s per hot run, $ROUNDS paired rounds, loopback, $(nproc) cores" >&2

# --- hot ---------------------------------------------------------------
start_factory 0
start_tinderbox "$work/cache" "$ff_url"
"$work/tinderbox" cache prefetch --config "$work/tinderbox.yaml" --schematic "$ID" --version "$VERSION" --arch amd64 >/dev/null
asset_path="$ID/$VERSION/$FILE"
ls -l "$work/cache/$asset_path" >/dev/null

ng_port=$(load -freeport)
bench_nginx_conf "$work/nginx" "127.0.0.1:$ng_port" "$work/cache"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
ng_pid=$!
pids+=("$ng_pid")
for _ in $(seq 100); do
	curl -fsS -o /dev/null "http://127.0.0.1:$ng_port/$asset_path" 2>/dev/null && break
	sleep 0.1
done

tb_url="http://127.0.0.1:$tb_port/assets/$asset_path"
ng_url="http://127.0.0.1:$ng_port/$asset_path"
# hot_run WHO URL C: one DURATION run, recorded as hot/cC/WHO.
errs=0
hot_run() {
	local out
	out=$(load -url "$2" -c "$3" -d "${DURATION}s") || true
	bench_record "$rec" "hot/c$3/$1" "$(field mbps "$out")"
	errs=$((errs + $(field errors "$out") + $(field status_other "$out")))
}
for c in "${CONCURRENCY[@]}"; do
	for r in $(seq "$ROUNDS"); do
		# Alternate who goes first, so a burst of other load on the
		# machine does not always fall on the same server.
		if [ $((r % 2)) -eq 1 ]; then
			hot_run tinderbox "$tb_url" "$c"
			hot_run nginx "$ng_url" "$c"
		else
			hot_run nginx "$ng_url" "$c"
			hot_run tinderbox "$tb_url" "$c"
		fi
	done
	bench_ratio "$rec" "hot/c$c/tinderbox" "hot/c$c/nginx" "hot/c$c/ratio"
done
hot_rss=$(peak_rss_mib "$tb_pid")
stop_pid "$ng_pid"
stop_pid "$tb_pid"
stop_pid "$ff_pid"

# --- cold --------------------------------------------------------------
start_factory "$RATE"
fetch_errs=0
for r in $(seq "$COLD_ROUNDS"); do
	start_tinderbox "$work/cold1-$r" "$ff_url"
	one=$(load -url "http://127.0.0.1:$tb_port/assets/$asset_path" -c 1) || true
	stop_pid "$tb_pid"
	before=$(upstream_count)
	start_tinderbox "$work/cold64-$r" "$ff_url"
	storm=$(load -url "http://127.0.0.1:$tb_port/assets/$asset_path" -c 64) || true
	bench_record "$rec" cold/fetches $(($(upstream_count) - before))
	bench_record "$rec" cold/rss "$(peak_rss_mib "$tb_pid")"
	stop_pid "$tb_pid"
	bench_record "$rec" cold/single "$(field max_ms "$one")"
	bench_record "$rec" cold/storm_max "$(field max_ms "$storm")"
	bench_record "$rec" cold/storm_p50 "$(field p50_ms "$storm")"
	bench_record "$rec" cold/complete "$(field requests "$storm")"
	errs=$((errs + $(field errors "$storm") + $(field status_other "$storm") + $(field errors "$one")))
	rm -rf "$work/cold1-$r" "$work/cold64-$r"
done
bench_ratio "$rec" cold/storm_max cold/single cold/ratio

# --- report ------------------------------------------------------------
met() { if bench_goal "$rec" "$1" "$2" "$3"; then echo met; else
	echo MISSED
	missed=1
fi; }
missed=0
printf '\nhot: %d MiB cached asset, %d paired rounds of %ss per server; median (min–max)\n\n' $((SIZE / 1048576)) "$ROUNDS" "$DURATION"
printf '| clients | tinderbox MB/s | nginx MB/s | tinderbox/nginx | goal >= 1.0 |\n|---|---|---|---|---|\n'
for c in "${CONCURRENCY[@]}"; do
	printf '| %s | %s | %s | %s | %s |\n' "$c" "$(bench_cell "$rec" "hot/c$c/tinderbox" %.0f)" \
		"$(bench_cell "$rec" "hot/c$c/nginx" %.0f)" "$(bench_cell "$rec" "hot/c$c/ratio" %.2f)" "$(met "hot/c$c/ratio" '>=' 1.0)"
done
printf '\ntinderbox peak RSS (VmHWM) after the hot runs: %s MiB; failed downloads: %d\n' "$hot_rss" "$errs"
printf '\ncold: empty cache, fake factory at %d MiB/s, %d rounds; median (min–max)\n\n' $((RATE / 1048576)) "$COLD_ROUNDS"
printf '| figure | value |\n|---|---|\n'
printf '| 1 cold client, time to last byte | %s ms |\n' "$(bench_cell "$rec" cold/single %.0f)"
printf '| 64 cold clients, time to last byte, slowest | %s ms |\n' "$(bench_cell "$rec" cold/storm_max %.0f)"
printf '| 64 cold clients, time to last byte, p50 | %s ms |\n' "$(bench_cell "$rec" cold/storm_p50 %.0f)"
printf '| storm slowest / single (paired) | %s |\n' "$(bench_cell "$rec" cold/ratio %.2f)"
printf '| downloads complete of 64 | %s |\n' "$(bench_cell "$rec" cold/complete %.0f)"
printf '| upstream fetches per storm (must be 1) | %s |\n' "$(bench_cell "$rec" cold/fetches %.0f)"
printf '| tinderbox peak RSS | %s MiB |\n' "$(bench_cell "$rec" cold/rss %.1f)"
read -r -a f < <(bench_stat "$rec" cold/fetches)
if [ "${f[1]}" != 1 ] || [ "${f[2]}" != 1 ]; then
	echo "bench: a cold storm caused other than 1 upstream fetch (min ${f[1]}, max ${f[2]})" >&2
	missed=1
fi
[ "$errs" = 0 ] || missed=1
if [ "$missed" = 1 ] && [ "$STRICT" = 1 ]; then
	exit 1
fi
