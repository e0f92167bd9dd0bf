#!/usr/bin/env bash
# Runs a built tinderbox on the repository's example profiles: scripts/run.sh BIN CONFIG.
# The proxyDHCP and TFTP ports (67, 4011, 69) are privileged, so when not
# root the binary (not the build) runs under sudo.
set -euo pipefail
bin=${1:?usage: run.sh BIN CONFIG}
cfg=${2:?usage: run.sh BIN CONFIG}
mkdir -p .run/cache .run/state
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	echo "run: ports 67, 4011 and 69 need root: starting $bin with sudo" >&2
	sudo=(sudo)
fi
# proxyDHCP answers only on an interface named here (IFACE): on a
# developer's machine, answering on every interface would offer Talos to
# any PXE-booting computer on any LAN the machine is on.
envs=() args=()
if [ -n "${IFACE:-}" ]; then
	args=(--dhcp-interface "$IFACE")
	echo "run: proxyDHCP answers PXE clients on $IFACE only" >&2
else
	envs=(TINDERBOX_DHCP_ENABLED=false)
	ifaces=$(ip -o -4 addr show scope global 2>/dev/null | awk '{print $2}' | sort -u | paste -sd ' ' - || true)
	echo "run: proxyDHCP is off: name the boot LAN's interface to answer PXE clients there, e.g. make run IFACE=${ifaces%% *} (this host has: ${ifaces:-none})" >&2
fi
echo "run: serving profiles/ with $cfg; stop with Ctrl-C" >&2
echo "run: for the CLI, in another terminal here: export PATH=\"$(cd "$(dirname "$bin")" && pwd):\$PATH\" TINDERBOX_CONFIG=$cfg" >&2
exec "${sudo[@]}" env "${envs[@]}" "$bin" serve --config "$cfg" "${args[@]}"
