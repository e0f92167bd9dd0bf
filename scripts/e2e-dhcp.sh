#!/usr/bin/env bash
# Tries tinderbox's proxyDHCP as a new user would, with real firmware:
#
#   namespace tbxd-lan:  bridge tdbr0 10.77.0.1/24 + fd77::1/64, dnsmasq as the
#                        router's plain DHCP (addresses, router, RA; no PXE),
#                        one tap per VM, tcpdump on the bridge
#   namespace tbxd-boot: tinderbox serve on tdboot0 10.77.0.2 (a veth whose
#                        peer is on the bridge: a spare box on the LAN)
#   VMs (QEMU, TCG):     SeaBIOS with QEMU's iPXE ROM; OVMF with its native
#                        PXE client (romfile= empty)
#
# Each VM must get its address from dnsmasq and tinderbox's offer, and then
# fetch the right boot file: OVMF asks TFTP for ipxe.efi, iPXE (QEMU's ROM,
# or the ipxe.efi OVMF loaded) gets http://10.77.0.2:8080/boot.ipxe.
#
# Usage: scripts/e2e-dhcp.sh [--capture DIR]
#   --capture DIR  keep the DHCP/TFTP packets of each VM as DIR/<vm>.pcap
#                  (scripts/capture-dhcp.sh uses it for the golden tests)
# Needs root and qemu-system-x86, ovmf, ipxe, ipxe-qemu, dnsmasq, tcpdump.
# Everything it creates (namespaces, devices, processes) is removed on exit.
# PROTOCOL.md §7 explains the topology and timings.
set -euo pipefail

capture=""
if [ "${1:-}" = "--capture" ]; then
	capture=$(realpath "${2:?--capture needs a directory}")
	mkdir -p "$capture"
fi

skip() {
	echo "e2e-dhcp: SKIP: $*" >&2
	exit 0
}
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, taps, port 67)"
for tool in ip qemu-system-x86_64 dnsmasq tcpdump go; do
	command -v "$tool" >/dev/null || skip "$tool is not installed"
done
for f in /usr/share/OVMF/OVMF_CODE.fd /usr/share/OVMF/OVMF_VARS.fd /usr/lib/ipxe/ipxe.efi /usr/lib/ipxe/undionly.kpxe; do
	[ -e "$f" ] || skip "$f is missing (apt-get install ovmf ipxe)"
done

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/tbxd-e2e.XXXXXX)
lan=tbxd-lan
boot=tbxd-boot
pids=()

cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	ip netns del "$lan" 2>/dev/null || true
	ip netns del "$boot" 2>/dev/null || true
	echo "e2e-dhcp: logs and captures kept in $work" >&2
}
trap cleanup EXIT

# forget drops PIDs that were waited for, so cleanup never signals a
# recycled PID.
forget() {
	local keep=() pid gone
	for pid in "${pids[@]}"; do
		for gone in "$@"; do
			[ "$pid" = "$gone" ] && continue 2
		done
		keep+=("$pid")
	done
	pids=("${keep[@]}")
}

# Background commands are started with `ip netns exec` itself, never through
# these functions: ip execs the command, so $! is the command's own PID.
inlan() { ip netns exec "$lan" "$@"; }
inboot() { ip netns exec "$boot" "$@"; }

echo "e2e-dhcp: building tinderbox" >&2
(cd "$repo" && go build -o "$work/tinderbox" ./cmd/tinderbox)

ip netns del "$lan" 2>/dev/null || true
ip netns del "$boot" 2>/dev/null || true
ip netns add "$lan"
ip netns add "$boot"
inlan ip link set lo up
inboot ip link set lo up
inlan ip link add tdbr0 type bridge forward_delay 0 stp_state 0
inlan ip addr add 10.77.0.1/24 dev tdbr0
inlan ip -6 addr add fd77::1/64 dev tdbr0 nodad
inlan ip link set tdbr0 up
inlan ip link add tdveth0 type veth peer name tdboot0
inlan ip link set tdboot0 netns "$boot"
inlan ip link set tdveth0 master tdbr0 up
inboot ip addr add 10.77.0.2/24 dev tdboot0
inboot ip link set tdboot0 up
for tap in tdtap0 tdtap1; do
	inlan ip tuntap add dev "$tap" mode tap
	inlan ip link set "$tap" master tdbr0 up
done

# The router: addresses and a default route only, no PXE options. no-ping
# avoids dnsmasq's ~3 s ICMP check; RA spares iPXE its ~16 s IPv6 wait.
ip netns exec "$lan" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface=tdbr0 --bind-interfaces \
	--dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,1h --dhcp-option=option:router,10.77.0.1 \
	--dhcp-range=fd77::,ra-only --enable-ra --no-ping --log-dhcp --log-facility=- \
	--dhcp-leasefile="$work/leases" --pid-file="$work/dnsmasq.pid" >"$work/dnsmasq.log" 2>&1 &
pids+=($!)

mkdir -p "$work/profiles" "$work/cache" "$work/state"
# Unknown machines are told to boot their disk, so the chain ends without
# Talos; the factory URL is a closed port on the namespace's own loopback,
# so nothing here can reach a real Image Factory.
echo "unknown: local" >"$work/profiles/defaults.yaml"
(cd "$work" && exec ip netns exec "$boot" ./tinderbox serve --advertise 10.77.0.2 --dhcp-interface tdboot0 \
	--http-listen :8080 --admin-listen 127.0.0.1:8081 --ipxe-dir /usr/lib/ipxe \
	--factory-url http://127.0.0.1:9 \
	--profiles-dir "$work/profiles" --cache-dir "$work/cache" --state-dir "$work/state" \
	--log-level debug) >"$work/tinderbox.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
	grep -q "proxyDHCP listening" "$work/tinderbox.log" 2>/dev/null && break
	sleep 0.2
done
grep -q "proxyDHCP listening" "$work/tinderbox.log" || {
	cat "$work/tinderbox.log" >&2
	echo "e2e-dhcp: FAIL: tinderbox did not start" >&2
	exit 1
}

# runvm NAME TAP MAC UUID QEMU-ARGS…: boots one VM until tinderbox has sent
# it the boot script URL (plus a few seconds for the HTTP request), or 150 s.
runvm() {
	local name=$1 tap=$2 mac=$3 uuid=$4
	shift 4
	local pcap="$work/$name.pcap"
	ip netns exec "$lan" tcpdump -i tdbr0 -U -n -w "$pcap" 'udp port 67 or udp port 68 or udp port 4011 or udp port 69' 2>"$work/$name.tcpdump.log" &
	local dump=$!
	pids+=("$dump")
	ip netns exec "$lan" tcpdump -i tdbr0 -U -n -w "$work/$name.http.pcap" 'tcp port 8080' 2>/dev/null &
	local http=$!
	pids+=("$http")
	sleep 1
	echo "e2e-dhcp: booting $name ($mac)" >&2
	ip netns exec "$lan" qemu-system-x86_64 -accel tcg -cpu qemu64 -m 512 -display none -monitor none -no-reboot \
		-serial "file:$work/$name.serial" -uuid "$uuid" \
		-netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" "$@" &
	local vm=$!
	pids+=("$vm")
	local deadline=$((SECONDS + 150))
	while [ $SECONDS -lt $deadline ]; do
		if grep "proxy offer sent" "$work/tinderbox.log" | grep "mac=$mac" | grep -q "boot.ipxe"; then
			sleep 8
			break
		fi
		sleep 1
	done
	kill "$vm" "$dump" "$http" 2>/dev/null || true
	wait "$vm" "$dump" "$http" 2>/dev/null || true
	forget "$vm" "$dump" "$http"
	if [ -n "$capture" ]; then
		cp "$pcap" "$capture/$name.pcap"
	fi
}

runvm seabios-ipxe tdtap0 52:54:00:77:00:01 8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b \
	-device virtio-net-pci,netdev=n0,mac=52:54:00:77:00:01 -boot n
cp /usr/share/OVMF/OVMF_VARS.fd "$work/ovmf-vars.fd"
runvm ovmf tdtap1 52:54:00:77:00:02 0d9c8b7a-6f5e-4d3c-9b2a-1f0e9d8c7b6a \
	-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd \
	-drive "if=pflash,format=raw,unit=1,file=$work/ovmf-vars.fd" \
	-device virtio-net-pci,netdev=n0,mac=52:54:00:77:00:02,romfile= -boot n

# What a user would look at: the router's log, tinderbox's log, the wire.
fails=0
check() {
	local what=$1
	shift
	if "$@" >/dev/null 2>&1; then
		echo "e2e-dhcp: ok   $what" >&2
	else
		echo "e2e-dhcp: FAIL $what" >&2
		fails=$((fails + 1))
	fi
}
offer() { grep "proxy offer sent\|proxy ack sent" "$work/tinderbox.log" | grep "mac=$1" | grep -q "$2"; }
leased() { grep -q "DHCPACK(tdbr0) 10\.77\.0\.[0-9]* $1" "$work/dnsmasq.log"; }
rrq() { tcpdump -r "$work/$1.pcap" -n 'udp dst port 69' 2>/dev/null | grep -q "RRQ \"$2\""; }
gets() { tcpdump -r "$work/$1.http.pcap" -n -A 2>/dev/null | grep -q "GET $2"; }

check "SeaBIOS VM got its address from the router" leased 52:54:00:77:00:01
check "SeaBIOS VM (QEMU's iPXE ROM) was offered the boot script" offer 52:54:00:77:00:01 "file=http://10.77.0.2:8080/boot.ipxe"
check "SeaBIOS VM asked for /boot.ipxe over HTTP" gets seabios-ipxe /boot.ipxe
check "OVMF VM got its address from the router" leased 52:54:00:77:00:02
check "OVMF VM was offered ipxe.efi" offer 52:54:00:77:00:02 "file=ipxe.efi"
check "OVMF VM asked TFTP for ipxe.efi" rrq ovmf ipxe.efi
check "iPXE on the OVMF VM was offered the boot script" offer 52:54:00:77:00:02 "file=http://10.77.0.2:8080/boot.ipxe"
check "iPXE on the OVMF VM asked for /boot.ipxe over HTTP" gets ovmf /boot.ipxe
check "tinderbox logged no error" bash -c "! grep -q 'level=ERROR' '$work/tinderbox.log'"

echo "e2e-dhcp: tinderbox's Info lines:" >&2
grep "level=INFO" "$work/tinderbox.log" | grep -v "level=DEBUG" >&2 || true
if [ "$fails" -ne 0 ]; then
	echo "e2e-dhcp: $fails check(s) failed" >&2
	exit 1
fi
echo "e2e-dhcp: all checks passed" >&2
