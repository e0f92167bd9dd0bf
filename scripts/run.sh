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
echo "run: serving profiles/ with $cfg; stop with Ctrl-C" >&2
echo "run: for the CLI, in another terminal here: export PATH=\"$(cd "$(dirname "$bin")" && pwd):\$PATH\" TINDERBOX_CONFIG=$cfg" >&2
exec "${sudo[@]}" "$bin" serve --config "$cfg"
