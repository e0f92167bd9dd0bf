#!/usr/bin/env bash
# Tries tinderbox's proxyDHCP as a new user would, with real firmware: a QEMU
# SeaBIOS VM (QEMU's iPXE ROM) and a QEMU OVMF VM (native PXE, romfile=
# empty) on a LAN whose router (dnsmasq) hands out addresses only. Each VM
# must get its address from the router and tinderbox's offer, then fetch the
# right boot file: OVMF asks TFTP for snponly.efi, iPXE gets
# http://10.77.0.2:8080/boot.ipxe and asks for it. Topology: scripts/e2e/lib.sh.
#
# Usage: scripts/e2e-dhcp.sh [--capture DIR]
#   --capture DIR  keep the DHCP/TFTP packets of each VM as DIR/<vm>.pcap
#                  (scripts/capture-dhcp.sh uses it for the golden tests,
#                  which expect 10.77.0.2 and these MACs)
# Needs root and qemu-system-x86, ovmf, ipxe, ipxe-qemu, dnsmasq, tcpdump.
set -euo pipefail
E2E=tbxd NET=10.77.0 TAPS=2
# shellcheck source=e2e/lib.sh
. "$(dirname "$0")/e2e/lib.sh"

capture=""
if [ "${1:-}" = "--capture" ]; then
	capture=$(realpath "${2:?--capture needs a directory}")
	mkdir -p "$capture"
fi
e2e_require tcpdump
e2e_init
e2e_build
e2e_topology
e2e_router

mkdir -p "$work/profiles" "$work/cache" "$work/state"
# Unknown machines are told to boot their disk, so the chain ends without
# Talos; the factory URL is a closed port on the namespace's own loopback,
# so nothing here can reach a real Image Factory.
echo "unknown: local" >"$work/profiles/defaults.yaml"
e2e_tinderbox --advertise "$NET.2" --dhcp-interface "${E2E}boot0" \
	--http-listen :8080 --admin-listen 127.0.0.1:8081 --ipxe-dir /usr/lib/ipxe \
	--factory-url http://127.0.0.1:9 \
	--profiles-dir "$work/profiles" --cache-dir "$work/cache" --state-dir "$work/state" \
	--log-level debug

# served MAC: the chain reached the end: /boot.ipxe found the NIC and asked
# /ipxe for this machine's script.
served() { grep "boot script served" "$work/tinderbox.log" | grep -q "mac=$1"; }
# runvm NAME TAP MAC UUID FIRMWARE: boots one VM, with tcpdump on the bridge,
# until tinderbox has served it its script, or 150 s.
runvm() {
	local name=$1 mac=$3
	ip netns exec "$lan" tcpdump -i "$br" -U -n -w "$work/$name.pcap" 'udp port 67 or udp port 68 or udp port 4011 or udp port 69' 2>"$work/$name.tcpdump.log" &
	local dump=$!
	ip netns exec "$lan" tcpdump -i "$br" -U -n -w "$work/$name.http.pcap" 'tcp port 8080' 2>/dev/null &
	local http=$!
	pids+=("$dump" "$http")
	sleep 1
	vm_start "$@"
	vm_wait "$vm_pid" 150 served "$mac" || true
	sleep 2 # let tcpdump drain what the kernel has buffered
	kill "$dump" "$http" 2>/dev/null || true
	wait "$dump" "$http" 2>/dev/null || true
	e2e_forget "$dump" "$http"
	if [ -n "$capture" ]; then
		cp "$work/$name.pcap" "$capture/$name.pcap"
	fi
}
runvm seabios-ipxe "${E2E}tap0" 52:54:00:77:00:01 8f1b6b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b seabios
runvm ovmf "${E2E}tap1" 52:54:00:77:00:02 0d9c8b7a-6f5e-4d3c-9b2a-1f0e9d8c7b6a ovmf

# What a user would look at: the router's log, tinderbox's log, the wire.
offer() { grep "proxy offer sent\|proxy ack sent" "$work/tinderbox.log" | grep "mac=$1" | grep -q "$2"; }
leased() { grep -q "DHCPACK($br) 10\.77\.0\.[0-9]* $1" "$work/dnsmasq.log"; }
rrq() { tcpdump -r "$work/$1.pcap" -n 'udp dst port 69' 2>/dev/null | grep -q "RRQ \"$2\""; }
gets() { tcpdump -r "$work/$1.http.pcap" -n -A 2>/dev/null | grep -q "GET $2"; }

check "SeaBIOS VM got its address from the router" leased 52:54:00:77:00:01
check "SeaBIOS VM (QEMU's iPXE ROM) was offered the boot script" offer 52:54:00:77:00:01 "file=http://10.77.0.2:8080/boot.ipxe"
check "SeaBIOS VM asked for /boot.ipxe over HTTP" gets seabios-ipxe /boot.ipxe
check "OVMF VM got its address from the router" leased 52:54:00:77:00:02
check "OVMF VM was offered snponly.efi" offer 52:54:00:77:00:02 "file=snponly.efi"
check "OVMF VM asked TFTP for snponly.efi" rrq ovmf snponly.efi
check "iPXE on the OVMF VM was offered the boot script" offer 52:54:00:77:00:02 "file=http://10.77.0.2:8080/boot.ipxe"
check "iPXE on the OVMF VM asked for /boot.ipxe over HTTP" gets ovmf /boot.ipxe
check "SeaBIOS VM got its own script (/ipxe with its MAC)" served 52:54:00:77:00:01
check "OVMF VM got its own script (/ipxe with its MAC)" served 52:54:00:77:00:02
check "tinderbox logged no error" bash -c "! grep -q 'level=ERROR' '$work/tinderbox.log'"

if [ "$fails" -ne 0 ]; then
	e2e_log "tinderbox's Info lines:"
	grep "level=INFO" "$work/tinderbox.log" >&2 || true
fi
e2e_summary
