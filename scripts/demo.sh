#!/usr/bin/env bash
# make demo: tinderbox PXE-boots a QEMU VM, with no hardware and no
# network, while its web UI shows the machine live from this host.
#
# In network namespaces this script makes (and removes on exit or Ctrl-C):
# a LAN with a home router's plain DHCP (dnsmasq), tinderbox on it with the
# fake Image Factory (cmd/fakefactory) serving the stand-in Talos that
# `make e2e` boots (scripts/e2e/assets.sh, scripts/e2e/faketalos), and a
# copy of the example profiles/. A BIOS VM (SeaBIOS + QEMU's iPXE ROM,
# under TCG: the faster of the two firmwares there, about 35 s from power
# on to ready, 10 of them the stand-in's install) with worker-01's MAC
# from the example profiles PXE-boots, "installs" to its disk and
# reboots into it: pending → installing →
# installed (from the stand-in's own Talos reports) → ready. The topology
# is scripts/e2e/lib.sh's, plus one veth pair to this host, DEMO_NET.1
# (here) and DEMO_NET.2 (tinderbox's namespace, where its admin listener
# and web UI are). That listener is not on loopback, so tinderbox demands
# a bearer token (docs/security.md, "The admin listener"): the script
# makes one and prints it with the UI's address.
#
# Environment:
#   DEMO_NET=10.77.99        the /30 to this host (DEMO_NET.1 here, .2 the UI)
#   DEMO_EXIT_AFTER=STATE    exit 0 once the VM's machine reaches STATE
#                            (installed, ready…); exit 1 if it fails, its VM
#                            stops first or 10 minutes pass. Unset: run
#                            until Ctrl-C.
#   DEMO_POWER_ON_AFTER=FILE power the VM on only once FILE exists (a
#                            browser test opens the UI first)
#   E2E_ACCEL=kvm            use KVM instead of TCG (scripts/e2e/lib.sh)
# Needs root and the packages `scripts/deps.sh e2e` installs; when not
# root it runs itself with sudo.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
	echo "demo: network namespaces, taps and port 67 need root: running with sudo" >&2
	exec sudo env "PATH=$PATH" DEMO_NET="${DEMO_NET:-}" DEMO_EXIT_AFTER="${DEMO_EXIT_AFTER:-}" \
		DEMO_POWER_ON_AFTER="${DEMO_POWER_ON_AFTER:-}" E2E_ACCEL="${E2E_ACCEL:-}" "$0" "$@"
fi
E2E=tbxq NET=10.78.0 TAPS=1
host_net=${DEMO_NET:-10.77.99}
# shellcheck source=e2e/lib.sh
. "$(dirname "$0")/e2e/lib.sh"
# A missing tool fails the demo (the e2e scripts skip instead).
e2e_skip() {
	e2e_log "cannot run the demo: $*"
	exit 1
}

e2e_require xz curl grub-mkrescue xorriso mformat
[ -x /bin/busybox ] || e2e_skip "/bin/busybox is missing (scripts/deps.sh e2e)"
e2e_init
# The host's end of the veth to the UI goes too, even while the kernel
# is still tearing the boot namespace down.
trap 'ip link del "${E2E}host" 2>/dev/null || true; e2e_cleanup' EXIT
e2e_build
e2e_topology
e2e_router
# The stand-in's install takes 10 s, as a real one takes a while: long
# enough to see installing in the UI.
e2e_fakefactory e2e.install-seconds=10

# The link to this host.
ip link del "${E2E}host" 2>/dev/null || true
ip link add "${E2E}host" type veth peer name "${E2E}ui0"
ip link set "${E2E}ui0" netns "$boot"
ip addr add "$host_net.1/30" dev "${E2E}host"
ip link set "${E2E}host" up
inboot ip addr add "$host_net.2/30" dev "${E2E}ui0"
inboot ip link set "${E2E}ui0" up

cp -r "$repo/profiles" "$work/profiles"
mkdir -p "$work/cache" "$work/state"
# 32 random bytes, hex: the 256 bits admin.tokenFile asks for.
token=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
printf '%s\n' "$token" >"$work/admin.token"
chmod 600 "$work/admin.token"
cat >"$work/tinderbox.yaml" <<YAML
advertise: $NET.2
http: {listen: ":8080"}
admin: {listen: "$host_net.2:8081", tokenFile: $work/admin.token}
dhcp: {interface: ${E2E}boot0}
tftp: {listen: ":69"}
ipxe: {dir: /usr/lib/ipxe}
factory: {url: "$factory"}
cache: {dir: $work/cache}
state: {dir: $work/state}
profiles: {dir: $work/profiles}
reports: {eventsListen: ":8091", logsListen: ":8092"}
YAML
e2e_tinderbox --config "$work/tinderbox.yaml"

ui="http://$host_net.2:8081"
mac=52:54:00:00:00:21 # worker-01 in the example profiles
cat <<EOF

  tinderbox is serving a copy of profiles/ on a private LAN ($NET.0/24).

  Web UI:      $ui/
  Admin token: $token
               (the UI asks for it once: its listener is on a veth to this
               host, not loopback, so tinderbox requires a token)
  CLI:         go run ./cmd/tinderbox machines -w --server $ui --token $token
  Logs:        $work (tinderbox.log, worker-01.serial)

EOF
if [ -n "${DEMO_POWER_ON_AFTER:-}" ]; then
	e2e_log "waiting for $DEMO_POWER_ON_AFTER before powering the VM on"
	while [ ! -e "$DEMO_POWER_ON_AFTER" ]; do sleep 0.2; done
fi
vm_start worker-01 "${E2E}tap0" "$mac" 11111111-2222-4333-8444-555555550021 seabios reboot

state_of() {
	ip netns exec "$boot" "$work/tinderbox" machines show "$mac" --config "$work/tinderbox.yaml" -o json 2>/dev/null |
		grep -o '"state": "[a-z]*"' | head -n 1 | cut -d'"' -f4
}
deadline=$((SECONDS + 600)) last=
while :; do
	s=$(state_of || true)
	if [ -n "$s" ] && [ "$s" != "$last" ]; then
		e2e_log "worker-01 ($mac) is $s"
		last=$s
	fi
	if [ -n "${DEMO_EXIT_AFTER:-}" ]; then
		[ "$s" = "$DEMO_EXIT_AFTER" ] && exit 0
		if [ "$s" = failed ] || [ $SECONDS -ge $deadline ] || ! kill -0 "$vm_pid" 2>/dev/null; then
			e2e_log "FAIL: worker-01 is ${s:-unknown}, not $DEMO_EXIT_AFTER (serial log: $work/worker-01.serial)"
			exit 1
		fi
	fi
	if ! kill -0 "$tinderbox_pid" 2>/dev/null; then
		tail -n 20 "$work/tinderbox.log" >&2
		e2e_log "FAIL: tinderbox stopped"
		exit 1
	fi
	[ "$s" = ready ] && [ -z "${DEMO_EXIT_AFTER:-}" ] && break
	sleep 0.5
done
e2e_log "worker-01 booted its disk and reported ready; its stand-in Talos then powered the VM off"
e2e_log "the web UI stays at $ui/ until Ctrl-C"
wait "$tinderbox_pid"
