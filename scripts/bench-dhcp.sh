#!/usr/bin/env bash
# Benchmarks tinderbox's proxyDHCP responder against dnsmasq's proxy mode
# (issue 20, `make bench`): PXE DHCPDISCOVERs (option 60 PXEClient, 93 EFI
# x86-64, 97 UUID) from MACS distinct clients, sent at a fixed rate for
# DURATION by internal/bench/dhcpload, replies matched by transaction ID.
# Each round steps the rate up through RATES for one server, then for the
# other (tinderbox and dnsmasq alternate, which goes first alternates too),
# and records each server's highest rate with no drop (every DISCOVER
# answered within WAIT; the stepping stops at the first rate that drops),
# then the p50 and p99 reply latency (to the kernel's receive timestamp
# of the reply in the generator's namespace; the p99 to the generator's
# read of it is printed beside, to show the generator is not the tail)
# and the CPU per offer at 5000/s (utime+stime
# of the server process from /proc/PID/stat over the step, divided by the
# replies). Figures are the median (min–max) of ROUNDS rounds; the ratio is
# the median of the per-round ratios. The kernel's UDP receive-buffer drop
# counter (Udp RcvbufErrors in /proc/net/snmp) of the server namespace is
# printed per server.
# Goals: tinderbox's highest no-drop rate >= dnsmasq's (ratio >= 1.0);
# tinderbox's p99 at 5000/s under 1 ms.
#
# The two servers run in one network namespace, on one end of a veth pair
# (10.252.67.1/24); the load generator in another (10.252.67.2/24). Only
# one server runs at a time. Both log every reply to a file (tinderbox at
# info, dnsmasq's default DHCP logging), as they would in production.
# Everything the script creates (namespaces, processes, files) is removed
# on exit. Needs root, iproute2, dnsmasq and Go.
# Environment: ROUNDS (default 3), RATES (default "1000 2000 4000 6000
# 8000 12000 16000"), DURATION (per step, default 3s), WAIT (default 1s),
# MACS (default 1000), TINDERBOX (a prebuilt binary to measure instead of
# building this tree's), STRICT=1 to exit 1 when a goal is missed.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
RATES=${RATES:-"1000 2000 4000 6000 8000 12000 16000"}
DURATION=${DURATION:-3s}
WAIT=${WAIT:-1s}
MACS=${MACS:-1000}
STRICT=${STRICT:-0}
NET=10.252.67
SRV=tbdhcp-srv-$$
CLI=tbdhcp-cli-$$
SIF=tbdhcp-s$$
CIF=tbdhcp-c$$

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh

die() { echo "bench-dhcp: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
for tool in ip go awk; do command -v "$tool" >/dev/null || die "$tool is missing"; done
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
[ -x "$DNSMASQ" ] || die "dnsmasq is missing: apt-get install dnsmasq-base"

work=$(mktemp -d)
server_pid=
cleanup() {
	stop_server
	ip netns del "$SRV" 2>/dev/null || true
	ip netns del "$CLI" 2>/dev/null || true
	rm -rf "$work"
}
stop_server() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
		server_pid=
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench-dhcp: building" >&2
if [ -n "${TINDERBOX:-}" ]; then
	cp "$TINDERBOX" "$work/tinderbox"
else
	go build -o "$work/tinderbox" ./cmd/tinderbox
fi
go build -o "$work/dhcpload" ./internal/bench/dhcpload

mkdir -p "$work/ipxe" "$work/profiles" "$work/cache" "$work/state"
for f in undionly.kpxe ipxe.efi snponly.efi; do printf 'not a real binary\n' >"$work/ipxe/$f"; done
chmod -R a+rX "$work"

ip netns add "$SRV"
ip netns add "$CLI"
ip -n "$SRV" link set lo up
ip -n "$CLI" link set lo up
ip link add "$SIF" netns "$SRV" type veth peer name "$CIF" netns "$CLI"
ip -n "$SRV" addr add "$NET.1/24" dev "$SIF"
ip -n "$CLI" addr add "$NET.2/24" dev "$CIF"
ip -n "$SRV" link set "$SIF" up
ip -n "$CLI" link set "$CIF" up

# tinderbox: proxyDHCP on the veth end, everything else as shipped
# (binding at its default), an empty profiles directory (every machine
# unknown, answered for maintenance), TFTP off.
cat >"$work/tinderbox.yaml" <<YAML
http: {listen: "$NET.1:8080"}
admin: {listen: "127.0.0.1:8081"}
dhcp: {enabled: true, interface: "$SIF", pxePort: 0}
tftp: {enabled: false}
ipxe: {dir: "$work/ipxe"}
factory: {url: "http://127.0.0.1:1"}
cache: {dir: "$work/cache"}
state: {dir: "$work/state"}
profiles: {dir: "$work/profiles"}
log: {level: info}
YAML
# dnsmasq: proxy mode on the same interface, a PXE service per firmware
# class so that it answers PXE DISCOVERs as tinderbox does.
cat >"$work/dnsmasq.conf" <<CONF
port=0
interface=$SIF
bind-interfaces
dhcp-range=$NET.0,proxy
pxe-service=x86PC,"tinderbox bench",undionly.kpxe
pxe-service=X86-64_EFI,"tinderbox bench",snponly.efi
pxe-service=BC_EFI,"tinderbox bench",snponly.efi
log-facility=$work/dnsmasq.log
CONF

start_server() { # start_server NAME: runs it in the server namespace
	case "$1" in
	tinderbox)
		ip netns exec "$SRV" "$work/tinderbox" serve --config "$work/tinderbox.yaml" 2>>"$work/tinderbox.log" &
		;;
	dnsmasq)
		ip netns exec "$SRV" "$DNSMASQ" --keep-in-foreground --conf-file="$work/dnsmasq.conf" --user=root --pid-file= &
		;;
	esac
	server_pid=$!
	# Ready when a DISCOVER is answered.
	for _ in $(seq 50); do
		load 50 0.1 | grep -q 'answered=[1-9]' && return
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.2
	done
	echo "--- tinderbox log"; tail -20 "$work/tinderbox.log"; echo "--- dnsmasq log"; tail -20 "$work/dnsmasq.log" 2>/dev/null || true
	die "$1 does not answer"
}

load() { # load RATE SECONDS: one run of the generator, its key=value line
	ip netns exec "$CLI" "$work/dhcpload" -iface "$CIF" -rate "$1" -duration "${2}s" -wait "$WAIT" -macs "$MACS"
}

field() { # field LINE KEY
	printf '%s\n' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'
}

cpu_ticks() { # utime + stime of a process, in clock ticks
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

rcvbuf_errors() { # Udp RcvbufErrors of the server namespace
	ip netns exec "$SRV" awk '$1 == "Udp:" && !h { for (i = 2; i <= NF; i++) col[$i] = i; h = 1; next }
		$1 == "Udp:" { print $col["RcvbufErrors"] }' /proc/net/snmp
}

secs=${DURATION%s}
hz=$(getconf CLK_TCK)
rec="$work/records"
: >"$rec"
step_log="$work/steps"
: >"$step_log"

measure() { # measure NAME: one round of one server
	local name=$1 best=0 line drop t0 t1 e0 e1 answered
	start_server "$name"
	# The server's own process: tinderbox is the child of ip netns exec,
	# which execs, so $server_pid is it; so is dnsmasq in the foreground.
	e0=$(rcvbuf_errors)
	for rate in $RATES; do
		line=$(load "$rate" "$secs")
		drop=$(field "$line" drop_pct)
		printf '%s %s rate=%s %s\n' "$round" "$name" "$rate" "$line" >>"$step_log"
		if awk -v d="$drop" 'BEGIN { exit !(d > 0) }'; then
			break
		fi
		best=$rate
	done
	bench_record "$rec" "$name/nodrop" "$best"
	t0=$(cpu_ticks "$server_pid")
	line=$(load 5000 "$secs")
	t1=$(cpu_ticks "$server_pid")
	e1=$(rcvbuf_errors)
	printf '%s %s rate=5000 %s\n' "$round" "$name" "$line" >>"$step_log"
	answered=$(field "$line" answered)
	bench_record "$rec" "$name/p50" "$(field "$line" p50_ms)"
	bench_record "$rec" "$name/p99" "$(field "$line" p99_ms)"
	bench_record "$rec" "$name/p99read" "$(field "$line" p99_read_ms)"
	bench_record "$rec" "$name/drop5000" "$(field "$line" drop_pct)"
	bench_record "$rec" "$name/rcvbuferrors" "$((e1 - e0))"
	if [ "${answered:-0}" -gt 0 ]; then
		bench_record "$rec" "$name/cpu" "$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$answered" 'BEGIN { printf "%.4f", t / hz * 1000 / n }')"
	fi
	stop_server
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
	if [ $((round % 2)) = 1 ]; then order="tinderbox dnsmasq"; else order="dnsmasq tinderbox"; fi
	for name in $order; do
		echo "bench-dhcp: round $round/$ROUNDS, $name" >&2
		measure "$name"
	done
done
bench_ratio "$rec" tinderbox/nodrop dnsmasq/nodrop ratio/nodrop
bench_ratio "$rec" tinderbox/cpu dnsmasq/cpu ratio/cpu

echo "bench-dhcp: every step (round, server, rate, generator's figures):"
sed 's/^/  /' "$step_log"
echo
printf 'proxyDHCP, PXE DISCOVERs from %s MACs, %s steps over a veth pair; median (min–max) of %s rounds\n' "$MACS" "$DURATION" "$ROUNDS"
printf 'load average (1, 5, 15 min) at the start: %s; at the end: %s; %s CPUs\n\n' "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)"
printf '| figure | tinderbox | dnsmasq (proxy) | tinderbox / dnsmasq |\n|---|---|---|---|\n'
printf '| highest rate with no drop (/s; steps %s) | %s | %s | %s |\n' "${RATES// /, }" \
	"$(bench_cell "$rec" tinderbox/nodrop %.0f)" "$(bench_cell "$rec" dnsmasq/nodrop %.0f)" "$(bench_cell "$rec" ratio/nodrop %.2f)"
printf '| p50 reply latency at 5000/s (ms) | %s | %s | |\n' \
	"$(bench_cell "$rec" tinderbox/p50 %.2f)" "$(bench_cell "$rec" dnsmasq/p50 %.2f)"
printf '| p99 reply latency at 5000/s (ms) | %s | %s | |\n' \
	"$(bench_cell "$rec" tinderbox/p99 %.2f)" "$(bench_cell "$rec" dnsmasq/p99 %.2f)"
printf '| p99 to the generator'"'"'s read of the reply, for comparison (ms) | %s | %s | |\n' \
	"$(bench_cell "$rec" tinderbox/p99read %.2f)" "$(bench_cell "$rec" dnsmasq/p99read %.2f)"
printf '| drops at 5000/s (%%) | %s | %s | |\n' \
	"$(bench_cell "$rec" tinderbox/drop5000 %.2f)" "$(bench_cell "$rec" dnsmasq/drop5000 %.2f)"
printf '| CPU per offer at 5000/s (ms) | %s | %s | %s |\n' \
	"$(bench_cell "$rec" tinderbox/cpu %.3f)" "$(bench_cell "$rec" dnsmasq/cpu %.3f)" "$(bench_cell "$rec" ratio/cpu %.2f)"
printf '| kernel receive-buffer drops over a round, every step (Udp RcvbufErrors) | %s | %s | |\n' \
	"$(bench_cell "$rec" tinderbox/rcvbuferrors %.0f)" "$(bench_cell "$rec" dnsmasq/rcvbuferrors %.0f)"
echo
ok=1
if bench_goal "$rec" ratio/nodrop '>=' 1.0; then echo "goal: no-drop rate >= 1.0x dnsmasq: met"; else echo "goal: no-drop rate >= 1.0x dnsmasq: MISSED"; ok=0; fi
if bench_goal "$rec" tinderbox/p99 '<' 1.0; then echo "goal: p99 at 5000/s under 1 ms: met"; else echo "goal: p99 at 5000/s under 1 ms: MISSED"; ok=0; fi
if [ "$STRICT" = 1 ] && [ "$ok" = 0 ]; then exit 1; fi
