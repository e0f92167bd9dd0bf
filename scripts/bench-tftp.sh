#!/usr/bin/env bash
# Benchmarks tinderbox's TFTP server (issue 5, `make bench`): the time to
# fetch a 1 MiB file with blksize 1468 at windowsize 1 (lockstep) and 8 from
# tinderbox, and the same file at windowsize 1 from dnsmasq's TFTP server, in
# the same run, printed with their ratios.
# Goals: windowsize 8 at least 3x faster than lockstep; tinderbox no slower
# than dnsmasq in lockstep.
#
# The traffic crosses a veth pair between two network namespaces this
# script creates, with `tc netem` delay on both ends (or, where the kernel
# has no netem, two TAP devices joined by internal/tftp/internal/delaywire, a
# userspace cable with the same delay); everything it creates (namespaces,
# links, processes, files) is removed on exit. Needs root, iproute2
# (ip, tc), dnsmasq and Go. The client is internal/tftp/internal/tftpbench
# (pack.ag/tftp's client: curl and tftp-hpa cannot ask for windowsize).
# Environment: DELAY (netem delay per direction, default 1ms), RUNS
# (downloads per figure, the median is printed; default 5), STRICT=1 to
# exit 1 when a goal is missed.
set -euo pipefail

DELAY=${DELAY:-1ms}
RUNS=${RUNS:-5}
STRICT=${STRICT:-0}
NET=10.251.69
SRV=tbtftp-srv-$$
CLI=tbtftp-cli-$$

cd "$(dirname "$0")/.."

die() { echo "bench-tftp: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
for tool in ip tc go; do command -v "$tool" >/dev/null || die "$tool is missing"; done
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
[ -x "$DNSMASQ" ] || die "dnsmasq is missing: apt-get install dnsmasq-base"

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	ip netns del "$SRV" 2>/dev/null || true
	ip netns del "$CLI" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "bench-tftp: building" >&2
go build -o "$work/tinderbox" ./cmd/tinderbox
go build -o "$work/tftpbench" ./internal/tftp/internal/tftpbench

mkdir -p "$work/ipxe" "$work/profiles" "$work/cache" "$work/state"
head -c $((1 << 20)) /dev/urandom >"$work/ipxe/bench.bin"
chmod -R a+rX "$work"

ip netns add "$SRV"
ip netns add "$CLI"
ip -n "$SRV" link set lo up
ip -n "$CLI" link set lo up
# The link: a veth pair with netem delay on both ends; on a kernel without
# netem (sch_netem), two TAP devices joined by delaywire, which forwards
# every frame after the same delay.
ip link add tbtftp-s$$ netns "$SRV" type veth peer name tbtftp-c$$ netns "$CLI"
if tc -n "$SRV" qdisc add dev tbtftp-s$$ root netem delay "$DELAY" 2>/dev/null; then
	tc -n "$CLI" qdisc add dev tbtftp-c$$ root netem delay "$DELAY"
	link="veth + netem"
else
	ip -n "$SRV" link del tbtftp-s$$
	go build -o "$work/delaywire" ./internal/tftp/internal/delaywire
	"$work/delaywire" -a tbtftp-s$$ -b tbtftp-c$$ -delay "$DELAY" >"$work/delaywire.out" &
	pids+=($!)
	for _ in $(seq 50); do grep -q ready "$work/delaywire.out" && break; sleep 0.1; done
	grep -q ready "$work/delaywire.out" || die "delaywire did not start"
	ip link set tbtftp-s$$ netns "$SRV"
	ip link set tbtftp-c$$ netns "$CLI"
	link="TAP + delaywire (no netem in this kernel)"
fi
ip -n "$SRV" addr add "$NET.1/24" dev tbtftp-s$$
ip -n "$SRV" addr add "$NET.3/24" dev tbtftp-s$$
ip -n "$CLI" addr add "$NET.2/24" dev tbtftp-c$$
ip -n "$SRV" link set tbtftp-s$$ up
ip -n "$CLI" link set tbtftp-c$$ up

cat >"$work/tinderbox.yaml" <<YAML
advertise: $NET.1
http: {listen: "$NET.1:8080"}
admin: {listen: "127.0.0.1:8081"}
dhcp: {enabled: false}
tftp: {enabled: true, listen: "$NET.1:69"}
ipxe: {dir: "$work/ipxe"}
factory: {url: "http://127.0.0.1:1"}
cache: {dir: "$work/cache"}
state: {dir: "$work/state"}
profiles: {dir: "$work/profiles"}
log: {level: warn}
YAML
ip netns exec "$SRV" "$work/tinderbox" serve --config "$work/tinderbox.yaml" 2>"$work/tinderbox.log" &
pids+=($!)
ip netns exec "$SRV" "$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --port=0 --user=root \
	--listen-address="$NET.3" --bind-interfaces --enable-tftp --tftp-root="$work/ipxe" \
	--pid-file="$work/dnsmasq.pid" --log-facility="$work/dnsmasq.log" &
pids+=($!)

fetch() { # fetch HOST WINDOWSIZE RUNS: prints the median seconds
	ip netns exec "$CLI" "$work/tftpbench" -url "tftp://$1:69/bench.bin" -want "$work/ipxe/bench.bin" \
		-blksize 1468 -windowsize "$2" -runs "$3"
}
for host in "$NET.1" "$NET.3"; do
	for _ in $(seq 50); do
		fetch "$host" 8 1 >/dev/null 2>&1 && continue 2
		sleep 0.2
	done
	echo "--- tinderbox log"; cat "$work/tinderbox.log"; echo "--- dnsmasq log"; cat "$work/dnsmasq.log" 2>/dev/null
	die "no TFTP server answering on $host:69"
done

echo "bench-tftp: 1 MiB, blksize 1468, delay $DELAY each way ($link), median of $RUNS" >&2
# The runs alternate between the servers so that load from elsewhere on
# the machine falls on both alike.
tb1s=() dq1s=() tb8s=()
for _ in $(seq "$RUNS"); do
	tb1s+=("$(fetch "$NET.1" 1 1)")
	dq1s+=("$(fetch "$NET.3" 1 1)")
	tb8s+=("$(fetch "$NET.1" 8 1)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
tb1=$(median "${tb1s[@]}")
dq1=$(median "${dq1s[@]}")
tb8=$(median "${tb8s[@]}")

awk -v tb1="$tb1" -v tb8="$tb8" -v dq1="$dq1" -v delay="$DELAY" -v link="$link" -v strict="$STRICT" 'BEGIN {
	speedup = tb1 / tb8; vsref = dq1 / tb1
	printf "TFTP 1 MiB, blksize 1468, delay %s each way over %s:\n", delay, link
	printf "  tinderbox windowsize 1   %.3f s\n", tb1
	printf "  tinderbox windowsize 8   %.3f s\n", tb8
	printf "  dnsmasq   windowsize 1   %.3f s\n", dq1
	ok1 = speedup >= 3; ok2 = vsref >= 1
	printf "  windowsize 8 speed-up over lockstep   %.2fx  (goal >= 3x: %s)\n", speedup, ok1 ? "met" : "MISSED"
	printf "  dnsmasq / tinderbox time, lockstep    %.2f   (goal >= 1: %s)\n", vsref, ok2 ? "met" : "MISSED"
	exit (strict == "1" && !(ok1 && ok2)) ? 1 : 0
}'
