#!/usr/bin/env bash
# A power-restore storm (issues 20 and 22, `make bench`): N machines
# (default 5000) network-boot at once, C at a time (default 256), each
# through the whole path: proxyDHCP DISCOVER and the port-4011 REQUEST,
# TFTP of the iPXE binary, iPXE's DHCP, /boot.ipxe and /ipxe, kernel,
# initramfs and the machine config (internal/bench/storm says how each
# step is simulated). Two kinds of round:
#
#   bolt  one tinderbox, its state in bbolt (state.backend: bolt)
#   etcd  REPLICAS tinderbox replicas (default 2) on one segment, their
#         state in a three-member etcd cluster (state.backend: etcd, one
#         prefix), each with its own cache and one shared profiles tree
#
# BACKENDS (default "bolt etcd") says which run; with both, ROUNDS paired
# rounds (default 1) alternate them (bolt etcd, then etcd bolt, ...), so
# their figures come from the same run. Every round starts from nothing
# (empty state, cache and etcd). Each round prints the storm's own table;
# the end prints each stage's p50/p99 per backend side by side (median
# (min–max) over the rounds), failures and retries, wall time, the fake
# Image Factory's fetches per asset per replica (must be 1 each), and for
# etcd the outcome read from etcd itself and etcd's write figures
# (internal/bench/etcdcluster check).
#
# Topology, all created here and removed on exit (addresses 10.1.0.0/24
# on one bridge, the storm's server segment):
#
#   namespace tbs-br-PID:   the bridge
#   namespace tbs-rK-PID:   replica K at 10.1.0.1 (K=1), 10.1.0.3, 10.1.0.4,
#                           with a fake factory of its own on its loopback;
#                           the nodes' network 10.2.0.0/16 is routed to
#                           10.1.0.2 (binding.routedNetworks)
#   namespace tbs-etcd-PID: etcd members at 10.1.0.11, .12, .13 (client
#                           port 2379, peer 2380), one process each,
#                           fsync on, data under the work directory (the
#                           real disk)
#   namespace tbs-cli-PID:  the storm at 10.1.0.2 (the router and DHCP
#                           relay agent, forwarding to every replica),
#                           every node's address on its loopback
#
# The nodes sit behind a relay as 5000 machines would (no L2 segment holds
# them), so binding stays on: each replica learns each address from the
# relayed DHCP exchange, and the kernel's neighbour table holds only the
# router (10.1.0.2). A node takes the first offer, as firmware does, and
# follows that replica's 4011 and TFTP; iPXE's first offer names the
# script's replica.
#
# Needs root, ip(8), curl, jq and Go. Environment: NODES (5000),
# CONCURRENCY (256), ASSET_SIZE (initramfs bytes, the kernel a quarter;
# 262144), IPXE_SIZE (the TFTP file, 245760: a snponly.efi's size),
# BACKENDS, ROUNDS, REPLICAS (1 to 3), TINDERBOX (a prebuilt binary to
# measure instead of this tree's), STRICT=1 to exit 1 on a failure, an
# asset fetched more than once by one replica, or a wrong outcome in etcd.
set -euo pipefail

NODES=${NODES:-5000}
CONCURRENCY=${CONCURRENCY:-256}
ASSET_SIZE=${ASSET_SIZE:-262144}
IPXE_SIZE=${IPXE_SIZE:-245760}
BACKENDS=${BACKENDS:-bolt etcd}
ROUNDS=${ROUNDS:-1}
REPLICAS=${REPLICAS:-2}
STRICT=${STRICT:-0}

die() {
	echo "bench-storm: $*" >&2
	exit 1
}
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, port 67)"
for tool in ip curl jq go; do
	command -v "$tool" >/dev/null || die "$tool is not installed"
done
for b in $BACKENDS; do
	case $b in bolt | etcd) ;; *) die "BACKENDS: $b is neither bolt nor etcd" ;; esac
done
case $REPLICAS in 1 | 2 | 3) ;; *) die "REPLICAS must be 1, 2 or 3" ;; esac

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh
# On the real disk, not a tmpfs: etcd's and bbolt's fsyncs are measured.
work=$(mktemp -d /var/tmp/bench-storm.XXXXXX)
rec=$work/records
br=tbs-br-$$
cli=tbs-cli-$$
ens=tbs-etcd-$$
rns=(tbs-r1-$$ tbs-r2-$$ tbs-r3-$$)
raddr=(10.1.0.1 10.1.0.3 10.1.0.4)
eaddr=(10.1.0.11 10.1.0.12 10.1.0.13)
pids=()
stop_pids() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	pids=()
}
cleanup() {
	stop_pids
	# Anything still running in the namespaces was started here.
	for ns in "${rns[@]}" "$ens" "$cli" "$br"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do
			kill "$p" 2>/dev/null || true
		done
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench-storm: building" >&2
if [ -n "${TINDERBOX:-}" ]; then
	cp "$TINDERBOX" "$work/tinderbox"
else
	go build -o "$work/tinderbox" ./cmd/tinderbox
fi
go build -o "$work/fakefactory" ./cmd/fakefactory
go build -o "$work/storm" ./internal/bench/storm
go build -o "$work/etcdcluster" ./internal/bench/etcdcluster

# The network: one bridge, one veth from each namespace to it.
ip netns add "$br"
ip -n "$br" link add tbsbr type bridge
ip -n "$br" link set tbsbr up
join() { # join NS NAME ADDR: a veth from NS (as NAME) to the bridge
	ip netns add "$1"
	ip link add "$2" netns "$1" type veth peer name "$2b" netns "$br"
	ip -n "$br" link set "$2b" master tbsbr up
	ip -n "$1" link set lo up
	ip -n "$1" addr add "$3/24" dev "$2"
	ip -n "$1" link set "$2" up
}
join "$cli" tbsc$$ 10.1.0.2
for k in 0 1 2; do
	join "${rns[$k]}" "tbs$((k + 1))$$" "${raddr[$k]}"
	ip -n "${rns[$k]}" route add 10.2.0.0/16 via 10.1.0.2
done
join "$ens" tbse$$ "${eaddr[0]}"
ip -n "$ens" addr add "${eaddr[1]}/24" dev tbse$$
ip -n "$ens" addr add "${eaddr[2]}/24" dev tbse$$
# Every node's address, as /32s on the client namespace's loopback.
"$work/storm" -n "$NODES" -addrs -dev lo | ip -n "$cli" -batch -
# nsenter execs the command itself (ip netns exec forks and waits), so
# started in the background straight from the script (not through a
# function, which runs in a subshell) $! is the process's own PID: what
# is killed and where its RSS is read.
inns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

# The profiles: the example tree's groups, configs and patches, one
# machine file per node, the LAN set to the nodes' network; one tree that
# every replica reads.
cp -r profiles "$work/profiles"
rm -f "$work/profiles/machines/"*
sed -i 's|lan: 192.168.1.0/24|lan: 10.2.0.0/16|' "$work/profiles/defaults.yaml"
"$work/storm" -n "$NODES" -profiles "$work/profiles"

mkdir -p "$work/ipxe"
head -c "$IPXE_SIZE" /dev/urandom >"$work/ipxe/snponly.efi"
touch "$work/ipxe/undionly.kpxe" # BIOS clients' binary: none here, but its absence is warned about

wait_for() { # wait_for NS URL PID: until URL answers, 1 if PID ends or 2 minutes pass
	for _ in $(seq 1200); do
		inns "$1" curl -fsS -o /dev/null "$2" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# etcd_start DIR: three members, fresh data under DIR.
etcd_start() {
	local cluster="" k p
	for k in 0 1 2; do
		cluster+="${cluster:+,}m$k=http://${eaddr[$k]}:2380"
	done
	for k in 0 1 2; do
		mkdir -p "$1/m$k"
		nsenter --net="/run/netns/$ens" "$work/etcdcluster" member -name "m$k" -dir "$1/m$k" \
			-peer "http://${eaddr[$k]}:2380" -client "http://${eaddr[$k]}:2379" -cluster "$cluster" 2>"$1/m$k.log" &
		pids+=($!)
	done
	for k in 0 1 2; do
		p=${pids[$((${#pids[@]} - 3 + k))]}
		wait_for "$ens" "http://${eaddr[$k]}:2379/health" "$p" || {
			cat "$1/m$k.log" >&2
			die "etcd member m$k did not start"
		}
	done
}

# cpu PID: the process's user and system CPU time so far, in seconds.
cpu() {
	awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.1f", ($12 + $13) / hz}' "/proc/$1/stat"
}

endpoints() {
	local k out=""
	for k in 0 1 2; do out+="${out:+,}http://${eaddr[$k]}:2379"; done
	echo "$out"
}

# round BACKEND R: one storm, from nothing, and its figures recorded.
round() {
	local b=$1 r=$2 n=1 dir k servers="" rc=0 tb=()
	[ "$b" = etcd ] && n=$REPLICAS
	dir=$work/$b-$r
	mkdir -p "$dir"
	[ "$b" = etcd ] && etcd_start "$dir/etcd"
	for ((k = 0; k < n; k++)); do
		nsenter --net="/run/netns/${rns[$k]}" "$work/fakefactory" -initramfs-size "$ASSET_SIZE" >"$dir/factory$k.url" 2>"$dir/factory$k.log" &
		pids+=($!)
	done
	local t0
	t0=$(date +%s.%N)
	for ((k = 0; k < n; k++)); do
		local factory=""
		for _ in $(seq 100); do
			factory=$(head -1 "$dir/factory$k.url" 2>/dev/null || true)
			[ -n "$factory" ] && break
			sleep 0.1
		done
		[ -n "$factory" ] || die "the fake factory of replica $((k + 1)) did not start"
		local st="{dir: $dir/state$k}"
		[ "$b" = etcd ] && st="{dir: $dir/state$k, backend: etcd, etcd: {endpoints: [$(endpoints)], prefix: /tinderbox/}}"
		cat >"$dir/tinderbox$k.yaml" <<YAML
advertise: ${raddr[$k]}
http: {listen: "${raddr[$k]}:8080"}
admin: {listen: "127.0.0.1:8081"}
tftp: {listen: "${raddr[$k]}:69"}
ipxe: {dir: $work/ipxe}
factory: {url: "$factory"}
cache: {dir: $dir/cache$k}
state: $st
profiles: {dir: $work/profiles}
binding: {enabled: true, routedNetworks: [10.2.0.0/16]}
reports: {enabled: false}
log: {level: ${LOG_LEVEL:-warn}}
YAML
		nsenter --net="/run/netns/${rns[$k]}" "$work/tinderbox" serve --config "$dir/tinderbox$k.yaml" 2>"$dir/tinderbox$k.log" &
		tb+=($!)
		pids+=($!)
		servers+="${servers:+,}${raddr[$k]}"
	done
	for ((k = 0; k < n; k++)); do
		wait_for "${rns[$k]}" "http://${raddr[$k]}:8080/healthz" "${tb[$k]}" || {
			cat "$dir/tinderbox$k.log" >&2
			die "tinderbox replica $((k + 1)) did not start"
		}
	done
	awk -v a="$t0" -v b="$(date +%s.%N)" -v n="$n" -v be="$b" 'BEGIN {printf "bench-storm: %s round: %d tinderbox up in %.1f s\n", be, n, b - a}' >&2

	echo "== round $r, $b: $n tinderbox, $NODES nodes, $CONCURRENCY at once ($(nproc) cores, shared) =="
	inns "$cli" "$work/storm" -server "$servers" -relay 10.1.0.2 -nodes 10.2.0.0/16 \
		-n "$NODES" -c "$CONCURRENCY" | tee "$dir/storm.out" || rc=$?
	[ "$rc" = 0 ] || echo "FAIL $b round $r: the storm failed" >>"$work/problems"

	# The storm's table, recorded per stage.
	awk -v p="$b" '/^\| [a-z_ ]+ \| [0-9]/ {
		split($0, f, /[ ]*\|[ ]*/); s = f[2]; gsub(/ /, "_", s)
		print p "/" s "/failed", f[4]; print p "/" s "/retries", f[5]
		print p "/" s "/p50", f[6]; print p "/" s "/p99", f[7]
	}
	/^storm:/ {for (i = 1; i <= NF; i++) if ($i == "time") {w = $(i + 1); sub(/;/, "", w); print p "/wall", w}
		for (i = 1; i <= NF; i++) if ($i == "booted") print p "/booted", $(i - 3)}' "$dir/storm.out" >>"$rec"

	# One upstream fetch per asset per replica, whatever the storm.
	for ((k = 0; k < n; k++)); do
		echo "replica $((k + 1)) (${raddr[$k]}): fake factory fetches per asset (must be 1 each):"
		inns "${rns[$k]}" curl -fsS "$(head -1 "$dir/factory$k.url")/_fake/counts" | jq -r 'to_entries[] | select(.key | startswith("/image/")) | "\(.key) \(.value)"' |
			sed 's|^/image/[^/]*/||' | sort | while read -r asset count; do
			printf '  %-28s %s\n' "$asset" "$count"
			[ "$count" = 1 ] || echo "MULTI $b round $r replica $((k + 1)): $asset fetched $count times" >>"$work/problems"
			bench_record "$rec" "$b/fetches_max" "$count"
		done
		# DHCP and TFTP packets the replica's kernel dropped because it
		# did not read them in time (its namespace's own UDP counters).
		inns "${rns[$k]}" awk '/^Udp:/ && !h {split($0, k); h = 1; next} /^Udp:/ {for (i = 2; i <= NF; i++) if (k[i] == "RcvbufErrors") print "  UDP receive-buffer drops:", $i}' /proc/net/snmp
		local rss steps
		rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/${tb[$k]}/status")
		bench_record "$rec" "$b/rss" "$rss"
		bench_record "$rec" "$b/cpu_tinderbox" "$(cpu "${tb[$k]}")"
		steps=$(inns "${rns[$k]}" curl -fsS "http://${raddr[$k]}:8080/metrics" |
			awk '/^tinderbox_boot_steps_total\{result="ok",step="config"\}/ {c = $2} /^tinderbox_state_etcd_conflicts_total / {x = ", etcd conflicts (compare failed, retried) " $2}
				END {printf "configs served %d%s", c, x}')
		printf '  peak RSS (VmHWM) %s MiB, CPU %s s, %s\n' "$rss" "$(cpu "${tb[$k]}")" "$steps"
		if grep -q . "$dir/tinderbox$k.log"; then
			echo "  warnings and errors (first 5 of $(wc -l <"$dir/tinderbox$k.log")):"
			head -5 "$dir/tinderbox$k.log" | sed 's/^/    /'
		fi
	done
	# The outcome, as replica 1's admin API reports it.
	local inst
	inst=$(inns "${rns[0]}" curl -fsS http://127.0.0.1:8081/api/v1/machines | jq '[.[] | select(.state == "installing")] | length')
	echo "machines installing, per replica 1's admin API: $inst of $NODES"
	[ "$inst" = "$NODES" ] || echo "STATE $b round $r: $inst of $NODES installing" >>"$work/problems"
	if [ "$b" = etcd ]; then
		local p ecpu=0
		for p in "${pids[@]:0:3}"; do ecpu=$(awk -v a="$ecpu" -v b="$(cpu "$p")" 'BEGIN {print a + b}'); done
		bench_record "$rec" etcd/cpu_etcd "$ecpu"
		echo "etcd members' CPU: $ecpu s"
		inns "$ens" "$work/etcdcluster" check -endpoints "$(endpoints)" -prefix /tinderbox/ -n "$NODES" | tee "$dir/check.out" ||
			echo "ETCD $b round $r: the records in etcd are not the outcome wanted" >>"$work/problems"
		awk '/^etcd history:/ {for (i = 1; i <= NF; i++) if ($i == "record" && $(i + 1) == "writes") print "etcd/writes", $(i - 1)}
			/^etcd figures:/ {for (i = 1; i <= NF; i++) {
				if ($i == "raft" && $(i + 1) == "proposals") print "etcd/proposals", $(i - 1)
				if ($i == "size") print "etcd/dbsize", $(i + 1)
				if ($i == "fsync" && $(i + 1) == "mean") print "etcd/fsync", $(i + 2)
				if ($i == "commit" && $(i + 1) == "mean") print "etcd/commit", $(i + 2)}}' "$dir/check.out" >>"$rec"
	fi
	stop_pids
	rm -rf "$dir/etcd" "$dir"/cache* "$dir"/state*
}

: >"$rec"
read -r -a backends <<<"$BACKENDS"
set -- "${backends[@]}"
for ((r = 1; r <= ROUNDS; r++)); do
	if [ $# = 2 ] && [ $((r % 2)) = 0 ]; then
		round "$2" "$r"
		round "$1" "$r"
	else
		for b in "$@"; do round "$b" "$r"; done
	fi
done

# The backends side by side: median (min–max) over the rounds; failures
# and retries summed over them.
sum() { awk -v k="$1" '$1 == k {s += $2} END {print s + 0}' "$rec"; }
echo
echo "storm, $NODES nodes, $CONCURRENCY at once, $ROUNDS round(s) of: $BACKENDS (bolt: 1 tinderbox; etcd: $REPLICAS replicas on a three-member etcd); median (min–max) ms"
hdr="| stage |" sep="|---|"
for b in "$@"; do
	hdr+=" $b p50 | $b p99 |"
	sep+="---|---|"
done
for b in "$@"; do
	hdr+=" $b failed / retries |"
	sep+="---|"
done
echo "$hdr"
echo "$sep"
for s in dhcp pxe tftp ipxe_dhcp script kernel initramfs config whole_boot; do
	line="| ${s/_boot/ boot} |"
	for b in "$@"; do
		line+=" $(bench_cell "$rec" "$b/$s/p50" %.1f) | $(bench_cell "$rec" "$b/$s/p99" %.1f) |"
	done
	for b in "$@"; do line+=" $(sum "$b/$s/failed") / $(sum "$b/$s/retries") |"; done
	echo "$line"
done
for b in "$@"; do
	printf '%s: wall time %s s; booted %s of %s; most fetches of one asset by one replica %s; peak RSS per replica %s MiB; CPU per replica %s s\n' "$b" \
		"$(bench_cell "$rec" "$b/wall" %.1f)" "$(bench_cell "$rec" "$b/booted" %.0f)" "$NODES" \
		"$(bench_stat "$rec" "$b/fetches_max" | awk '{print $3}')" "$(bench_cell "$rec" "$b/rss" %.0f)" "$(bench_cell "$rec" "$b/cpu_tinderbox" %.1f)"
done
if [[ " $* " == *" etcd "* ]]; then
	printf 'etcd: %s raft proposals committed, %s machine record writes, db size %s MiB; WAL fsync mean %s ms, backend commit mean %s ms; CPU of the three members %s s\n' \
		"$(bench_cell "$rec" etcd/proposals %.0f)" "$(bench_cell "$rec" etcd/writes %.0f)" "$(bench_cell "$rec" etcd/dbsize %.1f)" \
		"$(bench_cell "$rec" etcd/fsync %.2f)" "$(bench_cell "$rec" etcd/commit %.2f)" "$(bench_cell "$rec" etcd/cpu_etcd %.1f)"
fi
if [ $# = 2 ]; then
	# Paired per round: each round's second backend over its first.
	for k in whole_boot/p50 whole_boot/p99 script/p50 config/p50 tftp/p50 wall; do
		bench_ratio "$rec" "$2/$k" "$1/$k" "ratio/$k"
	done
	printf '%s / %s, paired per round: whole boot p50 %s, p99 %s; script p50 %s; config p50 %s; tftp p50 %s; wall time %s\n' "$2" "$1" \
		"$(bench_cell "$rec" ratio/whole_boot/p50 %.2f)" "$(bench_cell "$rec" ratio/whole_boot/p99 %.2f)" \
		"$(bench_cell "$rec" ratio/script/p50 %.2f)" "$(bench_cell "$rec" ratio/config/p50 %.2f)" \
		"$(bench_cell "$rec" ratio/tftp/p50 %.2f)" "$(bench_cell "$rec" ratio/wall %.2f)"
fi
if [ -s "$work/problems" ]; then
	cat "$work/problems"
	echo "goal (zero failures, one upstream fetch per asset per replica, every machine installing once): MISSED"
	[ "$STRICT" = 1 ] && exit 1
else
	echo "goal (zero failures, one upstream fetch per asset per replica, every machine installing once): met"
fi
exit 0
