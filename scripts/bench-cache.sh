#!/usr/bin/env bash
# Benchmarks tinderbox's asset cache over loopback (issue 6, `make bench`):
#
#  1. hot: a 100 MiB cached initramfs served to 1, 8 and 64 concurrent
#     clients, by tinderbox and by nginx (sendfile on) serving the very same
#     file in the same run; prints MB/s, the tinderbox/nginx ratio and
#     tinderbox's peak RSS. Goal: ratio >= 0.9 at every concurrency, RSS
#     under 100 MiB.
#  2. cold storm: 64 clients ask an empty cache for the asset while a slow
#     fake factory sends it; prints the upstream fetches (must be 1) and the
#     time to last byte beside that of a single cold client.
#
# Everything listens on 127.0.0.1 only and is stopped on exit. Needs Go and
# nginx (installed with apt-get when missing and running as root).
# The machine may be shared: each hot figure is the best of ROUNDS runs
# that alternate between the two servers.
# Environment: SIZE (bytes, default 100 MiB), DURATION (seconds per hot run,
# default 3), ROUNDS (default 3), RATE (fake factory bytes/s for the cold
# storm, default 50 MiB/s).
set -euo pipefail

SIZE=${SIZE:-104857600}
DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-52428800}
CONCURRENCY=(1 8 64)
ID=376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba
VERSION=v1.12.7
FILE=initramfs-amd64.xz

cd "$(dirname "$0")/.."
root=$PWD

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

# The load generator: stdlib only, built outside the module.
mkdir -p "$work/load"
cat >"$work/load/go.mod" <<'EOF'
module benchload

go 1.22
EOF
cat >"$work/load/main.go" <<'EOF'
// Command benchload downloads a URL from c concurrent clients, either for a
// duration (each client repeating) or once each, and prints the throughput
// and times to last byte.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "URL to download")
	c := flag.Int("c", 1, "concurrent clients")
	d := flag.Duration("d", 0, "run for this long, each client repeating (0: one download each)")
	freeport := flag.Bool("freeport", false, "print a free loopback port and exit")
	flag.Parse()
	if *freeport {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
		return
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *c, DisableCompression: true}
	client := &http.Client{Transport: tr}
	start := time.Now()
	deadline := start.Add(*d)
	var (
		mu    sync.Mutex
		total int64
		errs  int
		ttlbs []float64
		wg    sync.WaitGroup
	)
	for i := 0; i < *c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for {
				t0 := time.Now()
				n, complete, err := fetch(client, *url, buf, *d > 0, deadline)
				mu.Lock()
				total += n
				if err != nil {
					errs++
				} else if complete {
					ttlbs = append(ttlbs, time.Since(t0).Seconds())
				}
				mu.Unlock()
				if *d == 0 || err != nil || time.Now().After(deadline) {
					return
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if *d > 0 {
		secs = d.Seconds()
	}
	sort.Float64s(ttlbs)
	maxT, meanT := 0.0, 0.0
	for _, t := range ttlbs {
		meanT += t
	}
	if len(ttlbs) > 0 {
		maxT, meanT = ttlbs[len(ttlbs)-1], meanT/float64(len(ttlbs))
	}
	fmt.Printf("bytes=%d seconds=%.2f mbps=%.1f downloads=%d errors=%d ttlb_max=%.3f ttlb_mean=%.3f\n",
		total, secs, float64(total)/1e6/secs, len(ttlbs), errs, maxT, meanT)
}

// fetch downloads url once, stopping at the deadline when bounded.
func fetch(client *http.Client, url string, buf []byte, bounded bool, deadline time.Time) (int64, bool, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, false, fmt.Errorf("status %d", resp.StatusCode)
	}
	var n int64
	for {
		m, err := resp.Body.Read(buf)
		n += int64(m)
		if err == io.EOF {
			if resp.ContentLength >= 0 && n != resp.ContentLength {
				return n, false, fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
			}
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
		if bounded && time.Now().After(deadline) {
			return n, false, nil
		}
	}
}
EOF
(cd "$work/load" && GOFLAGS= go build -o "$work/benchload" .)
load() { "$work/benchload" "$@"; }
field() { sed -E "s/.*\b$1=([^ ]+).*/\1/" <<<"$2"; }

# start_tinderbox CACHE_DIR FACTORY_URL: serves boot HTTP on a free port.
start_tinderbox() {
	local dir=$1 url=$2
	tb_port=$(load -freeport)
	mkdir -p "$work/profiles" "$work/ipxe"
	cat >"$work/tinderbox.yaml" <<EOF
advertise: 127.0.0.1
http: {listen: "127.0.0.1:$tb_port"}
admin: {listen: "127.0.0.1:$(load -freeport)"}
dhcp: {enabled: false}
tftp: {enabled: false}
ipxe: {dir: $work/ipxe}
factory: {url: "$url"}
cache: {dir: $dir, maxSize: 20GiB, allow: ["$ID/$VERSION/amd64"]}
state: {dir: $work/state}
profiles: {dir: $work/profiles}
log: {level: warn}
EOF
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
	curl -fsS "$ff_url/_fake/counts" | sed -nE "s|.*\"/image/$ID/$VERSION/$FILE\":([0-9]+).*|\1|p"
}

echo "bench: $((SIZE / 1048576)) MiB asset, ${DURATION}s per hot run, loopback, $(nproc) cores" >&2

# --- hot ---------------------------------------------------------------
start_factory 0
start_tinderbox "$work/cache" "$ff_url"
"$work/tinderbox" cache prefetch --config "$work/tinderbox.yaml" --schematic "$ID" --version "$VERSION" --arch amd64 >/dev/null
asset_path="$ID/$VERSION/$FILE"
ls -l "$work/cache/$asset_path" >/dev/null

ng_port=$(load -freeport)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_timeout 65;
	default_type application/octet-stream;
	client_body_temp_path $work/nginx/body;
	proxy_temp_path $work/nginx/proxy;
	fastcgi_temp_path $work/nginx/fastcgi;
	uwsgi_temp_path $work/nginx/uwsgi;
	scgi_temp_path $work/nginx/scgi;
	server {
		listen 127.0.0.1:$ng_port;
		root $work/cache;
	}
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
ng_pid=$!
pids+=("$ng_pid")
for _ in $(seq 100); do
	curl -fsS -o /dev/null "http://127.0.0.1:$ng_port/$asset_path" 2>/dev/null && break
	sleep 0.1
done

tb_url="http://127.0.0.1:$tb_port/assets/$asset_path"
ng_url="http://127.0.0.1:$ng_port/$asset_path"
# best MBPS_A MBPS_B: the larger.
best() { awk -v a="$1" -v b="$2" 'BEGIN {print (a > b) ? a : b}'; }
printf '\nhot: %d MiB cached asset; best of %d alternating %ss runs per server\n' $((SIZE / 1048576)) "$ROUNDS" "$DURATION"
printf '%-8s %14s %14s %8s %8s\n' clients "tinderbox MB/s" "nginx MB/s" ratio errors
for c in "${CONCURRENCY[@]}"; do
	tbm=0 ngm=0 errs=0
	for r in $(seq "$ROUNDS"); do
		# Alternate who goes first, so a burst of other load on the
		# machine does not always fall on the same server.
		if [ $((r % 2)) -eq 1 ]; then
			tb=$(load -url "$tb_url" -c "$c" -d "${DURATION}s")
			ng=$(load -url "$ng_url" -c "$c" -d "${DURATION}s")
		else
			ng=$(load -url "$ng_url" -c "$c" -d "${DURATION}s")
			tb=$(load -url "$tb_url" -c "$c" -d "${DURATION}s")
		fi
		tbm=$(best "$tbm" "$(field mbps "$tb")")
		ngm=$(best "$ngm" "$(field mbps "$ng")")
		errs=$((errs + $(field errors "$tb") + $(field errors "$ng")))
	done
	printf '%-8s %14s %14s %8s %8s\n' "$c" "$tbm" "$ngm" "$(awk -v a="$tbm" -v b="$ngm" 'BEGIN {printf "%.2f", a / b}')" "$errs"
done
printf 'tinderbox peak RSS (VmHWM): %s MiB\n' "$(peak_rss_mib "$tb_pid")"
stop_pid "$ng_pid"
stop_pid "$tb_pid"
stop_pid "$ff_pid"

# --- cold storm --------------------------------------------------------
start_factory "$RATE"
printf '\ncold: empty cache, fake factory at %d MiB/s\n' $((RATE / 1048576))
start_tinderbox "$work/cold1" "$ff_url"
one=$(load -url "http://127.0.0.1:$tb_port/assets/$asset_path" -c 1)
stop_pid "$tb_pid"
before=$(upstream_count)
start_tinderbox "$work/cold64" "$ff_url"
storm=$(load -url "http://127.0.0.1:$tb_port/assets/$asset_path" -c 64)
fetches=$(($(upstream_count) - before))
rss=$(peak_rss_mib "$tb_pid")
stop_pid "$tb_pid"
printf '%-26s %s s\n' "1 cold client, TTLB:" "$(field ttlb_max "$one")"
printf '%-26s %s s (mean %s s), %s of 64 complete, %s errors\n' "64 cold clients, TTLB max:" \
	"$(field ttlb_max "$storm")" "$(field ttlb_mean "$storm")" "$(field downloads "$storm")" "$(field errors "$storm")"
printf '%-26s %s\n' "storm/single TTLB ratio:" "$(awk -v a="$(field ttlb_max "$storm")" -v b="$(field ttlb_max "$one")" 'BEGIN {printf "%.2f", a / b}')"
printf '%-26s %s (must be 1)\n' "upstream fetches:" "$fetches"
printf '%-26s %s MiB\n' "tinderbox peak RSS:" "$rss"
if [ "$fetches" != 1 ]; then
	echo "bench: the cold storm caused $fetches upstream fetches, want 1" >&2
	exit 1
fi
