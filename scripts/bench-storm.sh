#!/usr/bin/env bash
# A power-restore storm (issue 20, `make bench`): N machines (default 5000)
# network-boot at once against one tinderbox, C at a time (default 256),
# each through the whole path: proxyDHCP DISCOVER and the port-4011
# REQUEST, TFTP of the iPXE binary, iPXE's DHCP, /boot.ipxe and /ipxe,
# kernel, initramfs and the machine config (internal/bench/storm says how
# each step is simulated). Prints each stage's p50/p99/max and failures,
# the wall time, and the fake Image Factory's fetches per asset (must be 1
# each).
#
# Topology, all created here and removed on exit:
#
#   namespace tbs-srv-PID: tinderbox and the fake factory, 10.1.0.1/24 on a
#                          veth; the nodes' network 10.2.0.0/16 is routed
#                          to 10.1.0.2 (binding.routedNetworks)
#   namespace tbs-cli-PID: the storm, 10.1.0.2/24 on the veth's peer (the
#                          router and DHCP relay agent), every node's
#                          address on its loopback
#
# The nodes sit behind a relay as 5000 machines would (no L2 segment holds
# them), so binding stays on: the server learns each address from the
# relayed DHCP exchange, and the kernel's neighbour table holds only the
# router (10.1.0.2).
#
# Needs root, ip(8), curl and Go. Environment: NODES (5000), CONCURRENCY
# (256), ASSET_SIZE (initramfs bytes, the kernel a quarter; 262144),
# IPXE_SIZE (the TFTP file, 245760: a snponly.efi's size), STRICT=1 to
# exit 1 on a failure or an asset fetched more than once.
set -euo pipefail

NODES=${NODES:-5000}
CONCURRENCY=${CONCURRENCY:-256}
ASSET_SIZE=${ASSET_SIZE:-262144}
IPXE_SIZE=${IPXE_SIZE:-245760}
STRICT=${STRICT:-0}

die() {
	echo "bench-storm: $*" >&2
	exit 1
}
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, port 67)"
for tool in ip curl go; do
	command -v "$tool" >/dev/null || die "$tool is not installed"
done

cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/bench-storm.XXXXXX)
srv=tbs-srv-$$
cli=tbs-cli-$$
veth=tbs$$
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	# Anything still running in the namespaces was started here.
	for ns in "$srv" "$cli"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do
			kill "$p" 2>/dev/null || true
		done
	done
	ip netns del "$srv" 2>/dev/null || true
	ip netns del "$cli" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench-storm: building" >&2
go build -o "$work/tinderbox" ./cmd/tinderbox
go build -o "$work/fakefactory" ./cmd/fakefactory
go build -o "$work/storm" ./internal/bench/storm

# The network.
ip netns add "$srv"
ip netns add "$cli"
ip link add "${veth}s" netns "$srv" type veth peer name "${veth}c" netns "$cli"
ip -n "$srv" link set lo up
ip -n "$cli" link set lo up
ip -n "$srv" addr add 10.1.0.1/24 dev "${veth}s"
ip -n "$cli" addr add 10.1.0.2/24 dev "${veth}c"
ip -n "$srv" link set "${veth}s" up
ip -n "$cli" link set "${veth}c" up
ip -n "$srv" route add 10.2.0.0/16 via 10.1.0.2
# Every node's address, as /32s on the client namespace's loopback.
"$work/storm" -n "$NODES" -addrs -dev lo | ip -n "$cli" -batch -
# nsenter execs the command itself (ip netns exec forks and waits), so
# started in the background straight from the script (not through a
# function, which runs in a subshell) $! is the server's own PID: what
# cleanup kills and where its RSS is read.
insrv() { nsenter --net="/run/netns/$srv" "$@"; }

# The fake Image Factory, on the server namespace's loopback.
nsenter --net="/run/netns/$srv" "$work/fakefactory" -initramfs-size "$ASSET_SIZE" >"$work/factory.url" 2>"$work/factory.log" &
pids+=($!)
for _ in $(seq 100); do
	factory=$(head -1 "$work/factory.url" 2>/dev/null || true)
	[ -n "$factory" ] && break
	sleep 0.1
done
[ -n "$factory" ] || die "the fake factory did not start"

# The profiles: the example tree's groups, configs and patches, one
# machine file per node, the LAN set to the nodes' network.
cp -r profiles "$work/profiles"
rm -f "$work/profiles/machines/"*
sed -i 's|lan: 192.168.1.0/24|lan: 10.2.0.0/16|' "$work/profiles/defaults.yaml"
"$work/storm" -n "$NODES" -profiles "$work/profiles"

mkdir -p "$work/ipxe"
head -c "$IPXE_SIZE" /dev/urandom >"$work/ipxe/snponly.efi"
touch "$work/ipxe/undionly.kpxe" # BIOS clients' binary: none here, but its absence is warned about

cat >"$work/tinderbox.yaml" <<YAML
advertise: 10.1.0.1
http: {listen: "10.1.0.1:8080"}
admin: {listen: "127.0.0.1:8081"}
tftp: {listen: "10.1.0.1:69"}
ipxe: {dir: $work/ipxe}
factory: {url: "$factory"}
cache: {dir: $work/cache}
state: {dir: $work/state}
profiles: {dir: $work/profiles}
binding: {enabled: true, routedNetworks: [10.2.0.0/16]}
reports: {enabled: false}
log: {level: ${LOG_LEVEL:-warn}}
YAML
echo "bench-storm: starting tinderbox with $NODES machine profiles" >&2
t0=$(date +%s.%N)
nsenter --net="/run/netns/$srv" "$work/tinderbox" serve --config "$work/tinderbox.yaml" 2>"$work/tinderbox.log" &
tb=$!
pids+=("$tb")
up=
for _ in $(seq 1200); do
	if insrv curl -fsS -o /dev/null http://10.1.0.1:8080/healthz 2>/dev/null; then
		up=1
		break
	fi
	kill -0 "$tb" 2>/dev/null || break
	sleep 0.1
done
[ -n "$up" ] || {
	cat "$work/tinderbox.log" >&2
	die "tinderbox did not start"
}
awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "bench-storm: tinderbox up in %.1f s\n", b - a}' >&2

echo "bench-storm: $NODES nodes, $CONCURRENCY at once ($(nproc) cores, shared)" >&2
rc=0
ip netns exec "$cli" "$work/storm" -server 10.1.0.1 -relay 10.1.0.2 -nodes 10.2.0.0/16 \
	-n "$NODES" -c "$CONCURRENCY" | tee "$work/storm.out" || rc=$?

# One upstream fetch per asset, whatever the storm.
echo "fake factory fetches per asset (must be 1 each):"
insrv curl -fsS "$factory/_fake/counts" | tr -d '{}"' | tr ',' '\n' | grep '^/image/' | sed 's|^/image/[^/]*/||; s|:| |' | sort |
	while read -r asset count; do
		printf '  %-28s %s\n' "$asset" "$count"
		[ "$count" = 1 ] || echo "MULTI $asset" >>"$work/multi"
	done
# DHCP and TFTP packets the server's kernel dropped because tinderbox did
# not read them in time (its namespace's own UDP counters).
insrv awk '/^Udp:/ && !h {split($0, k); h = 1; next} /^Udp:/ {for (i = 2; i <= NF; i++) if (k[i] == "RcvbufErrors") print "server UDP receive-buffer drops:", $i}' /proc/net/snmp
printf 'tinderbox peak RSS (VmHWM): %s MiB\n' "$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$tb/status")"
if grep -q . "$work/tinderbox.log"; then
	echo "tinderbox warnings and errors (first 5 of $(wc -l <"$work/tinderbox.log")):"
	head -5 "$work/tinderbox.log"
fi

ok=1
[ "$rc" = 0 ] || ok=0
[ ! -e "$work/multi" ] || ok=0
if [ "$ok" = 1 ]; then
	echo "goal (zero failures, one upstream fetch per asset): met"
else
	echo "goal (zero failures, one upstream fetch per asset): MISSED"
	[ "$STRICT" = 1 ] && exit 1
fi
exit 0
