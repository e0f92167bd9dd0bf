# shellcheck shell=bash
# The plumbing of tinderbox's end-to-end scripts, sourced by them
# (docs/testing.md explains the topology and its timings):
#
#   namespace $E2E-lan:  bridge ${E2E}br0 $NET.1/24 + a ULA /64, dnsmasq as the
#                        router's plain DHCP (addresses, router, RA; no PXE),
#                        one tap per VM
#   namespace $E2E-boot: tinderbox (and the fake Image Factory on the
#                        namespace's own loopback) on ${E2E}boot0 $NET.2, a
#                        veth whose peer is on the bridge: a spare box on the LAN
#   VMs (QEMU):          SeaBIOS with QEMU's iPXE ROM, or OVMF with its native
#                        PXE client (romfile= empty)
#   namespace $E2E-lan2: (e2e_second_lan, optional) a second LAN with its own
#                        bridge ${E2E}br1, router and tap ${E2E}tap9, on
#                        ${E2E}boot1 of the boot namespace: tinderbox on two
#                        LANs
#
# A script sets E2E (a short prefix, unique per script), NET (the /24's first
# three octets) and TAPS (how many taps), then calls e2e_init. Everything it
# creates (namespaces, devices, processes) is removed on exit, even when
# killed; logs stay in $work.

e2e_log() { echo "$E2E: $*" >&2; }

e2e_skip() {
	e2e_log "SKIP: $*"
	exit 0
}

# e2e_require checks root and the tools every firmware run needs; a
# missing one skips the script (CI installs them, so CI never skips).
e2e_require() {
	[ "$(id -u)" -eq 0 ] || e2e_skip "needs root (network namespaces, taps, port 67)"
	local tool f
	for tool in ip qemu-system-x86_64 dnsmasq go "$@"; do
		command -v "$tool" >/dev/null || e2e_skip "$tool is not installed (scripts/deps.sh e2e)"
	done
	for f in /usr/share/OVMF/OVMF_CODE.fd /usr/share/OVMF/OVMF_VARS.fd /usr/lib/ipxe/snponly.efi /usr/lib/ipxe/undionly.kpxe; do
		[ -e "$f" ] || e2e_skip "$f is missing (apt-get install ovmf ipxe)"
	done
}

# e2e_accel picks the QEMU accelerator: TCG unless E2E_ACCEL=kvm. KVM is
# opt-in because /dev/kvm on some hosts opens fine but cannot run firmware
# (QEMU aborts or the guest faults, docs/testing.md), which no quick probe
# reveals.
e2e_accel() {
	if [ "${E2E_ACCEL:-tcg}" = kvm ] && [ -w /dev/kvm ]; then
		echo "-accel kvm -cpu host"
	else
		echo "-accel tcg -cpu qemu64"
	fi
}

e2e_init() {
	repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	work=$(mktemp -d "/tmp/$E2E.XXXXXX")
	lan=$E2E-lan
	lan2=$E2E-lan2
	boot=$E2E-boot
	br=${E2E}br0
	pids=()
	passes=0
	fails=0
	trap e2e_cleanup EXIT
	trap 'exit 130' INT TERM
}

e2e_cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	ip netns del "$lan" 2>/dev/null || true
	ip netns del "$lan2" 2>/dev/null || true
	ip netns del "$boot" 2>/dev/null || true
	e2e_log "logs kept in $work"
}

# e2e_forget drops PIDs that were waited for, so cleanup never signals a
# recycled PID.
e2e_forget() {
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

e2e_build() {
	e2e_log "building tinderbox"
	(cd "$repo" && go build -o "$work/tinderbox" ./cmd/tinderbox)
}

# e2e_topology makes the two namespaces, the bridge, the veth and TAPS taps
# (${E2E}tap0 …).
e2e_topology() {
	ip netns del "$lan" 2>/dev/null || true
	ip netns del "$boot" 2>/dev/null || true
	ip netns add "$lan"
	ip netns add "$boot"
	inlan ip link set lo up
	inboot ip link set lo up
	inlan ip link add "$br" type bridge forward_delay 0 stp_state 0
	inlan ip addr add "$NET.1/24" dev "$br"
	inlan ip -6 addr add "fd${NET##*.}::1/64" dev "$br" nodad
	inlan ip link set "$br" up
	inlan ip link add "${E2E}veth0" type veth peer name "${E2E}boot0"
	inlan ip link set "${E2E}boot0" netns "$boot"
	inlan ip link set "${E2E}veth0" master "$br" up
	inboot ip addr add "$NET.2/24" dev "${E2E}boot0"
	inboot ip link set "${E2E}boot0" up
	local i
	for ((i = 0; i < TAPS; i++)); do
		inlan ip tuntap add dev "${E2E}tap$i" mode tap
		inlan ip link set "${E2E}tap$i" master "$br" up
	done
}

# e2e_router [NS BRIDGE NET NAME] starts dnsmasq as the home router of the
# LAN (default: the first): addresses and a default route only, no PXE
# options. no-ping avoids dnsmasq's ~3 s ICMP check; RA spares iPXE its
# ~16 s IPv6 wait.
e2e_router() {
	local ns=${1:-$lan} bridge=${2:-$br} net=${3:-$NET} name=${4:-dnsmasq}
	ip netns exec "$ns" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface="$bridge" --bind-interfaces \
		--dhcp-range="$net.100,$net.150,255.255.255.0,1h" --dhcp-option=option:router,"$net.1" \
		--dhcp-range="fd${net##*.}::,ra-only" --enable-ra --no-ping --log-dhcp --log-facility=- \
		--dhcp-leasefile="$work/$name.leases" --pid-file="$work/$name.pid" >"$work/$name.log" 2>&1 &
	pids+=($!)
}

# e2e_second_lan NET2: a second LAN, namespace $lan2, bridge ${E2E}br1
# $NET2.1/24 (+ a ULA /64) with its own router and one tap (${E2E}tap9), reaching the
# boot namespace on ${E2E}boot1 $NET2.2: the boot namespace is then one
# server on two LANs that cannot reach each other.
e2e_second_lan() {
	local net2=$1
	ip netns del "$lan2" 2>/dev/null || true
	ip netns add "$lan2"
	ip netns exec "$lan2" ip link set lo up
	ip netns exec "$lan2" ip link add "${E2E}br1" type bridge forward_delay 0 stp_state 0
	ip netns exec "$lan2" ip addr add "$net2.1/24" dev "${E2E}br1"
	# The ULA prefix lets the router send RAs, sparing iPXE its IPv6 wait.
	ip netns exec "$lan2" ip -6 addr add "fd${net2##*.}::1/64" dev "${E2E}br1" nodad
	ip netns exec "$lan2" ip link set "${E2E}br1" up
	ip netns exec "$lan2" ip link add "${E2E}veth1" type veth peer name "${E2E}boot1"
	ip netns exec "$lan2" ip link set "${E2E}boot1" netns "$boot"
	ip netns exec "$lan2" ip link set "${E2E}veth1" master "${E2E}br1" up
	inboot ip addr add "$net2.2/24" dev "${E2E}boot1"
	inboot ip link set "${E2E}boot1" up
	ip netns exec "$lan2" ip tuntap add dev "${E2E}tap9" mode tap
	ip netns exec "$lan2" ip link set "${E2E}tap9" master "${E2E}br1" up
	e2e_router "$lan2" "${E2E}br1" "$net2" dnsmasq-lan2
}

# e2e_tinderbox ARGS…: starts `tinderbox serve ARGS…` in the boot namespace
# with its log in $work/tinderbox.log, and waits until it listens.
e2e_tinderbox() {
	(cd "$work" && exec ip netns exec "$boot" ./tinderbox serve "$@") >"$work/tinderbox.log" 2>&1 &
	tinderbox_pid=$!
	pids+=("$tinderbox_pid")
	local i
	for i in $(seq 100); do
		grep -q "tinderbox starting" "$work/tinderbox.log" 2>/dev/null && return 0
		kill -0 "$tinderbox_pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$work/tinderbox.log" >&2
	e2e_log "FAIL: tinderbox did not start"
	exit 1
}

# e2e_fakefactory [KERNELARG…] builds the stand-in Talos' kernel and initramfs
# (scripts/e2e/assets.sh, into $E2E_ASSETS, default .run/e2e-assets: built
# once, reused while its sources stay the same) and cmd/fakefactory, and
# starts the fake factory on the boot namespace's own loopback, serving
# them for every schematic and version; sets factory to its URL. The
# installed image's grub.cfg names tinderbox ($NET.2) as its event sink
# and log receiver, as Talos' installer carries those arguments over.
# console=ttyS0 puts the kernel's (and the stand-in's) output on the
# serial log; panic=-1 turns a kernel panic into a reboot, which
# -no-reboot turns into QEMU exiting, so a broken boot fails fast;
# printk.devkmsg=on (as on Talos' own command line) lets the stand-in
# write its [talos] lines to /dev/kmsg without the kernel's rate limit.
# KERNELARGs follow them (the stand-in's options: scripts/e2e/faketalos).
e2e_fakefactory() {
	local assets=${E2E_ASSETS:-$repo/.run/e2e-assets}
	"$repo/scripts/e2e/assets.sh" "$assets" "$NET.2"
	(cd "$repo" && go build -o "$work/fakefactory" ./cmd/fakefactory)
	echo "talos.platform=metal console=ttyS0 panic=-1 printk.devkmsg=on${*:+ $*}" >"$work/cmdline-metal-amd64"
	ip netns exec "$boot" "$work/fakefactory" -asset "kernel-amd64=$assets/kernel-amd64" \
		-asset "initramfs-amd64.xz=$assets/initramfs-amd64.xz" -asset "cmdline-metal-amd64=$work/cmdline-metal-amd64" \
		>"$work/factory.out" 2>&1 &
	pids+=($!)
	local _
	for _ in $(seq 50); do
		factory=$(head -n 1 "$work/factory.out" 2>/dev/null || true)
		case "$factory" in http://*) return 0 ;; esac
		sleep 0.1
	done
	cat "$work/factory.out" >&2
	e2e_log "FAIL: the fake factory did not start"
	exit 1
}

# e2e_profiles DIR SCHEMATIC CLUSTER ENDPOINT: a profiles tree under DIR
# (its machines/ left empty for the caller) whose defaults install Talos
# v1.12.7 of SCHEMATIC once, from a worker config of the cluster CLUSTER
# with its control plane at https://ENDPOINT:6443, on /dev/vda; unknown
# machines get maintenance mode.
e2e_profiles() {
	local p=$1 schematic=$2 cluster=$3 endpoint=$4
	mkdir -p "$p/configs" "$p/machines"
	cat >"$p/defaults.yaml" <<YAML
unknown: maintenance
talos:
  version: v1.12.7
  schematic: $schematic
install: once
config: base
YAML
	cat >"$p/configs/base.yaml" <<YAML
version: v1alpha1
machine:
  type: worker
  token: e2etok.notarealtoken0000
  install:
    disk: /dev/vda
cluster:
  controlPlane:
    endpoint: https://$endpoint:6443
  clusterName: $cluster
YAML
}

# vm_start NAME TAP MAC UUID FIRMWARE [reboot]: boots a VM, serial
# console to $work/NAME.serial (appended across boots). FIRMWARE is seabios
# (QEMU's iPXE ROM) or ovmf (EDK2's own PXE client). The VM has a virtio
# disk, $work/NAME.disk (64 MiB, kept across boots), and boots its NIC
# first, then that disk (bootindex, honoured by both firmwares). OPTION
# "reboot" lets the VM reboot in place, as a machine does after its install;
# without it a reboot ends QEMU (-no-reboot), so a broken boot fails fast.
# SeaBIOS copies its console, and so the iPXE ROM's, to the serial port
# (etc/sercon-port 0x3f8), as OVMF does by itself. The VM runs in the
# namespace $vm_ns (default $lan), where its tap must be. Sets vm_pid.
vm_start() {
	local name=$1 tap=$2 mac=$3 uuid=$4 fw=$5 opt=${6:-}
	local fwargs=() qargs=(-no-reboot)
	[ "$opt" = reboot ] && qargs=()
	case "$fw" in
	seabios)
		# etc/sercon-port is read as a little-endian integer: 0x3f8, COM1.
		# QEMU warns that the name lacks "opt/": SeaBIOS reads this one.
		[ -e "$work/sercon-port" ] || printf '\xf8\x03' >"$work/sercon-port"
		fwargs=(-fw_cfg "name=etc/sercon-port,file=$work/sercon-port"
			-device "virtio-net-pci,netdev=n0,mac=$mac,bootindex=1")
		;;
	ovmf)
		[ -e "$work/$name.vars.fd" ] || cp /usr/share/OVMF/OVMF_VARS.fd "$work/$name.vars.fd"
		fwargs=(-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd
			-drive "if=pflash,format=raw,unit=1,file=$work/$name.vars.fd"
			-device "virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1")
		;;
	esac
	[ -e "$work/$name.disk" ] || truncate -s 64M "$work/$name.disk"
	e2e_log "booting $name ($fw, $mac${6:+, $6})"
	# shellcheck disable=SC2046 # the accelerator is two words on purpose
	ip netns exec "${vm_ns:-$lan}" qemu-system-x86_64 $(e2e_accel) -m 512 -display none -monitor none "${qargs[@]}" \
		-chardev "file,id=ser0,path=$work/$name.serial,append=on" -serial chardev:ser0 -uuid "$uuid" \
		-netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" "${fwargs[@]}" \
		-drive "if=none,id=d0,format=raw,file=$work/$name.disk" -device virtio-blk-pci,drive=d0,bootindex=2 &
	vm_pid=$!
	pids+=("$vm_pid")
}

# vm_wait PID TIMEOUT CMD…: waits until CMD succeeds or the VM exits (it
# powers itself off) or TIMEOUT seconds pass; then stops the VM. Returns
# CMD's last verdict.
vm_wait() {
	local pid=$1 timeout=$2
	shift 2
	local deadline=$((SECONDS + timeout)) ok=1
	while [ $SECONDS -lt $deadline ]; do
		if "$@" >/dev/null 2>&1; then
			ok=0
			break
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	if [ $ok -ne 0 ] && "$@" >/dev/null 2>&1; then
		ok=0
	fi
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	e2e_forget "$pid"
	return $ok
}

# check WHAT CMD…: one named assertion; failures are counted, not fatal.
check() {
	local what=$1
	shift
	if "$@" >/dev/null 2>&1; then
		e2e_log "ok   $what"
		passes=$((passes + 1))
	else
		e2e_log "FAIL $what"
		fails=$((fails + 1))
	fi
}

# e2e_summary prints the closing count, "PREFIX: N passed, M failed", and
# fails the script when any check failed.
e2e_summary() {
	echo "$E2E: $passes passed, $fails failed"
	[ "$fails" -eq 0 ]
}
