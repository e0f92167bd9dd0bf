#!/usr/bin/env bash
# Records the DHCP packets of real firmware for internal/proxydhcp's golden tests
# and rewrites the expected replies and fuzz seeds from them.
#
# scripts/e2e-dhcp.sh boots QEMU SeaBIOS (QEMU's iPXE ROM) and OVMF (native
# PXE, romfile= empty) against tinderbox and dnsmasq inside network
# namespaces, with tcpdump on the bridge; --capture keeps each VM's
# DHCP/TFTP packets as internal/proxydhcp/testdata/capture/<vm>.pcap. TestGolden
# -update then replays the client packets through the decision function and
# writes <vm>.golden and testdata/fuzz/FuzzDecide/capture-*.
# Needs root, qemu-system-x86, ovmf, ipxe, ipxe-qemu, dnsmasq, tcpdump.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out="$repo/internal/proxydhcp/testdata/capture"
[ "$(id -u)" -eq 0 ] || {
	echo "capture-dhcp: needs root (network namespaces, taps); nothing captured" >&2
	exit 1
}
"$repo/scripts/e2e-dhcp.sh" --capture "$out"
cd "$repo" && go test ./internal/proxydhcp/ -run 'TestGolden$' -update
echo "capture-dhcp: wrote $out/*.pcap and *.golden; review with git diff" >&2
