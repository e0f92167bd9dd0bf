#!/usr/bin/env bash
# Boot stages on emulated firmware (issue 20, `make bench-boot`; not part of
# `make bench` or CI: it takes minutes). N QEMU VMs (TCG) PXE-boot at once,
# in paired rounds: through tinderbox, and through the anchor stack,
# dnsmasq (proxyDHCP + TFTP, the usual iPXE recipe: a user-class tag sends
# iPXE to the script, the firmware to iPXE) + nginx serving a static boot
# script, the kernel, the initramfs and one static machine config per MAC.
# FIRMWARE picks the VMs' firmware: seabios (QEMU's iPXE ROM: no TFTP
# stage) or ovmf (UEFI x86-64: EDK2's own PXE client loads iPXE's
# snponly.efi by TFTP, from either stack, and iPXE does its own DHCP). A
# capture on each VM's tap (tcpdump: all of the VM's traffic, the router's
# unicast DHCP answers included) is read the same way for both by
# internal/bench/bootstages: per stage (proxy DHCP offer, the firmware's
# TFTP request, TFTP of iPXE, iPXE's first DISCOVER, iPXE's DHCP, the
# iPXE script(s), the kernel, the initramfs, the config; an HTTP stage
# ends when the VM acknowledges the answer's last byte), the time in ms
# from the VM's first DHCPDISCOVER to the stage's end; what each TFTP
# server granted (DATA packets, blksize, windowsize) and how many TCP
# segments each HTTP server re-sent. Prints median (min–max) over ROUNDS
# rounds × N VMs, tinderbox beside the anchor, and the median of the
# per-VM ratios (the same VM in the same round).
#
# A round ends when every VM has fetched its config (the stand-in Talos
# prints "config sha256:" on the serial console): the point where a real
# Talos leaves the boot server's path. tinderbox gets a fresh state
# directory per round (each VM is a machine that netboots: install: once,
# never installed) and a cache warmed before the first round, as nginx's
# files are on disk; each VM a fresh disk and OVMF variable store.
#
# Topology: scripts/e2e/lib.sh's (a LAN namespace with a bridge, a router's
# plain DHCP and one tap per VM; a boot namespace on a veth where tinderbox,
# or dnsmasq and nginx, serve on $NET.2), made here and removed on exit.
# QEMU under TCG spends seconds in firmware that KVM would not: read the
# stages' differences, not their totals.
#
# Needs root, QEMU, SeaBIOS and QEMU's iPXE ROMs, OVMF, dnsmasq, nginx,
# tcpdump, and what scripts/e2e/assets.sh needs (scripts/deps.sh e2e).
# Environment: FIRMWARE (seabios, the default, or ovmf), N (VMs per round,
# default 3), ROUNDS (default 3), TIMEOUT (seconds a round may take,
# default 300), STRICT=1 to exit 1 when a VM did not fetch its config in a
# round. E2E_ACCEL=kvm as in scripts/e2e/lib.sh.
set -euo pipefail
N=${N:-3}
ROUNDS=${ROUNDS:-3}
TIMEOUT=${TIMEOUT:-300}
STRICT=${STRICT:-0}
FIRMWARE=${FIRMWARE:-seabios}
case $FIRMWARE in
seabios) fwname="SeaBIOS VMs (QEMU's iPXE ROM" ;;
ovmf) fwname="OVMF VMs (EDK2's PXE, then iPXE's snponly.efi by TFTP" ;;
*)
	echo "bench-boot: FIRMWARE=$FIRMWARE: want seabios or ovmf" >&2
	exit 2
	;;
esac
# The iPXE build both stacks hand to UEFI firmware (tinderbox's default).
efi=snponly.efi
E2E=tbxb NET=10.82.0 TAPS=$N
# shellcheck source=e2e/lib.sh
. "$(dirname "$0")/e2e/lib.sh"
# shellcheck source=lib/bench.sh
. "$(dirname "$0")/lib/bench.sh"

if ! command -v nginx >/dev/null 2>&1 && [ -x /usr/sbin/nginx ]; then
	PATH=$PATH:/usr/sbin
fi
e2e_require xz curl grub-mkrescue xorriso mformat tcpdump nginx
[ -x /bin/busybox ] || e2e_skip "/bin/busybox is missing (apt-get install busybox-static)"
e2e_init
chmod 755 "$work" # nginx workers and dnsmasq's TFTP run as other users
rec=$work/records
e2e_build
(cd "$repo" && go build -o "$work/bootstages" ./internal/bench/bootstages)
e2e_topology
e2e_router
e2e_fakefactory

schematic=$(printf '%064d' 0 | tr 0 b)
version=v1.12.7
macs=()
p=$work/profiles
mkdir -p "$work/cache"
e2e_profiles "$p" "$schematic" bench 10.82.0.10
for ((i = 0; i < N; i++)); do
	mac=$(printf '52:54:00:82:00:%02x' $((i + 1)))
	macs+=("$mac")
	echo "hostname: vm-$i" >"$p/machines/${mac//:/-}.yaml"
done
cat >"$work/tinderbox.yaml" <<YAML
advertise: $NET.2
http: {listen: ":8080"}
admin: {listen: "127.0.0.1:8081"}
dhcp: {interface: ${E2E}boot0}
tftp: {listen: ":69"}
ipxe: {dir: /usr/lib/ipxe, efiX64: $efi}
factory: {url: "$factory"}
cache: {dir: $work/cache}
state: {dir: $work/state}
profiles: {dir: $p}
reports: {enabled: false}
log: {level: info}
YAML

# The anchor's files: the same kernel and initramfs, the script a static
# setup would hold (kernel, initrd, boot; the same command line, with
# talos.config naming the machine's own file by iPXE's ${mac:hexhyp}, and
# initrd=NAME, which the kernel's EFI stub needs under the 2019 UEFI iPXE
# to find the initramfs and BIOS ignores, as in tinderbox's script), and
# each machine's config as tinderbox renders it.
www=$work/anchor/www
tftproot=$work/anchor/tftp
mkdir -p "$www/config" "$tftproot" "$work/anchor/nginx"
cp "${E2E_ASSETS:-$repo/.run/e2e-assets}/kernel-amd64" "${E2E_ASSETS:-$repo/.run/e2e-assets}/initramfs-amd64.xz" "$www/"
cp /usr/lib/ipxe/undionly.kpxe "/usr/lib/ipxe/$efi" "$tftproot/"
cat >"$www/boot.ipxe" <<IPXE
#!ipxe
kernel http://$NET.2:8080/kernel-amd64 initrd=initramfs-amd64.xz $(cat "$work/cmdline-metal-amd64") talos.config=http://$NET.2:8080/config/\${mac:hexhyp}.yaml
initrd http://$NET.2:8080/initramfs-amd64.xz
boot
IPXE
for mac in "${macs[@]}"; do
	inboot "$work/tinderbox" render "$mac" --config "$work/tinderbox.yaml" >"$www/config/${mac//:/-}.yaml"
done
chmod -R a+rX "$work/anchor"
bench_nginx_conf "$work/anchor/nginx" "$NET.2:8080" "$www"

# Warm tinderbox's cache once, as nginx's files are on disk already.
tb_start() {
	rm -rf "$work/state"
	e2e_tinderbox --config "$work/tinderbox.yaml"
}
tb_stop() {
	kill "$tinderbox_pid" 2>/dev/null || true
	wait "$tinderbox_pid" 2>/dev/null || true
	e2e_forget "$tinderbox_pid"
}
tb_start
for f in kernel-amd64 initramfs-amd64.xz; do
	inboot curl -fsS -o /dev/null "http://$NET.2:8080/assets/$schematic/$version/$f" || {
		e2e_log "FAIL: warming the cache with $f"
		exit 1
	}
done
tb_stop

anchor_start() {
	# dnsmasq's proxy mode with the common iPXE recipe: firmware is sent
	# to iPXE by TFTP, iPXE (user class "iPXE") to the script over HTTP.
	ip netns exec "$boot" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface="${E2E}boot0" --bind-interfaces \
		--dhcp-range="$NET.0,proxy,255.255.255.0" --dhcp-userclass=set:ipxe,iPXE \
		--pxe-service=tag:!ipxe,x86PC,PXE,undionly.kpxe --pxe-service=tag:!ipxe,X86-64_EFI,PXE,"$efi" \
		--pxe-service="tag:ipxe,x86PC,iPXE,http://$NET.2:8080/boot.ipxe" \
		--pxe-service="tag:ipxe,X86-64_EFI,iPXE,http://$NET.2:8080/boot.ipxe" \
		--enable-tftp --tftp-root="$tftproot" --log-dhcp --log-facility=- \
		--pid-file="$work/anchor/dnsmasq.pid" >>"$work/anchor/dnsmasq.log" 2>&1 &
	anchor_dnsmasq=$!
	pids+=("$anchor_dnsmasq")
	ip netns exec "$boot" nginx -p "$work/anchor/nginx" -c "$work/anchor/nginx/nginx.conf" &
	anchor_nginx=$!
	pids+=("$anchor_nginx")
	local _
	for _ in $(seq 100); do
		inboot curl -fsS -o /dev/null "http://$NET.2:8080/boot.ipxe" 2>/dev/null && return 0
		sleep 0.1
	done
	e2e_log "FAIL: nginx did not start"
	exit 1
}
anchor_stop() {
	kill "$anchor_dnsmasq" "$anchor_nginx" 2>/dev/null || true
	wait "$anchor_dnsmasq" "$anchor_nginx" 2>/dev/null || true
	e2e_forget "$anchor_dnsmasq" "$anchor_nginx"
}

# fetched I: VM I's stand-in Talos has fetched its config (it prints its
# hash on the serial console).
fetched() { grep -aq "TINDERBOX-E2E: config sha256:" "$work/vm$1.serial" 2>/dev/null; }

# boot_round WHO R: every VM boots at once under a capture; the VMs stop
# once they have fetched their configs; the capture's stages and counts
# are recorded as NAME/WHO, one value per VM, and kept in
# $work/stages-WHO-R.
boot_round() {
	local who=$1 r=$2 i caps=()
	# --immediate-mode: otherwise the packets still in the kernel's capture
	# ring when tcpdump is stopped are lost (seen here: the last 2 s of a
	# boot, the config's fetch among them).
	for ((i = 0; i < N; i++)); do
		ip netns exec "$lan" tcpdump -i "${E2E}tap$i" -s 1600 -B 32768 --immediate-mode -U -w "$work/round$r-$who-$i.pcap" 2>"$work/tcpdump-$who-$r-$i.log" &
		caps+=($!)
		pids+=($!)
	done
	for ((i = 0; i < N; i++)); do
		for _ in $(seq 100); do
			grep -q "listening on" "$work/tcpdump-$who-$r-$i.log" 2>/dev/null && break
			sleep 0.1
		done
	done
	local vms=()
	for ((i = 0; i < N; i++)); do
		rm -f "$work/vm$i.serial" "$work/vm$i.disk" "$work/vm$i.vars.fd"
		vm_start "vm$i" "${E2E}tap$i" "${macs[$i]}" "$(printf '11111111-2222-4333-8444-5555558200%02x' "$i")" "$FIRMWARE"
		vms+=("$vm_pid")
	done
	local deadline=$((SECONDS + TIMEOUT)) started
	while [ $SECONDS -lt $deadline ]; do
		started=0
		for ((i = 0; i < N; i++)); do
			fetched "$i" && started=$((started + 1))
		done
		[ "$started" -eq "$N" ] && break
		sleep 0.5
	done
	for ((i = 0; i < N; i++)); do
		if ! fetched "$i"; then
			# The next round starts a fresh serial log: keep this one.
			cp "$work/vm$i.serial" "$work/vm$i-$who-$r.serial" 2>/dev/null || true
			e2e_log "round $r ($who): vm$i did not fetch its config in ${TIMEOUT}s (serial log: $work/vm$i-$who-$r.serial)"
			fails=$((fails + 1))
		fi
	done
	kill "${vms[@]}" 2>/dev/null || true
	wait "${vms[@]}" 2>/dev/null || true
	e2e_forget "${vms[@]}"
	kill -INT "${caps[@]}" 2>/dev/null || true
	wait "${caps[@]}" 2>/dev/null || true
	e2e_forget "${caps[@]}"
	: >"$work/stages-$who-$r"
	for ((i = 0; i < N; i++)); do
		"$work/bootstages" -server "$NET.2" -port 8080 "$work/round$r-$who-$i.pcap" "${macs[$i]}" >>"$work/stages-$who-$r"
		rm -f "$work/round$r-$who-$i.pcap"
	done
	# Each stage's own time, "d" before its name: from the end of the
	# stage before it (the offer: from the DISCOVER), when both were seen.
	awk '
	BEGIN { split("offer:start rrq:offer tftp:rrq ipxe:tftp ipxedhcp:ipxe script:ipxedhcp kernel:script initramfs:kernel config:initramfs", p, " ")
		for (i in p) { split(p[i], x, ":"); prev[x[1]] = x[2] } }
	{ v[$1 " " $2] = $3; v[$1 " start"] = 0; order[++n] = $1 " " $2 }
	END { for (i = 1; i <= n; i++) { split(order[i], k, " ")
		if (!(k[2] in prev)) continue
		a = v[order[i]]; b = v[k[1] " " prev[k[2]]]
		print k[1], "d" k[2], (a != "-" && b != "-" && b != "") ? sprintf("%.1f", a - b) : "-" } }
	' "$work/stages-$who-$r" >"$work/stages-$who-$r.d"
	cat "$work/stages-$who-$r.d" >>"$work/stages-$who-$r"
	rm -f "$work/stages-$who-$r.d"
	awk -v who="$who" '$3 != "-" { print $2 "/" who, $3 }' "$work/stages-$who-$r" >>"$rec"
}

e2e_log "$N VMs per round, $ROUNDS paired rounds, $(nproc) cores (shared), $(e2e_accel)"
for ((r = 1; r <= ROUNDS; r++)); do
	order="tinderbox anchor"
	[ $((r % 2)) -eq 0 ] && order="anchor tinderbox"
	for who in $order; do
		e2e_log "round $r: $who"
		if [ "$who" = tinderbox ]; then
			tb_start
			boot_round tinderbox "$r"
			tb_stop
		else
			anchor_start
			boot_round anchor "$r"
			anchor_stop
		fi
	done
	# The paired ratio: the same VM (MAC), the same stage, in this round
	# (stages only: the counts are compared side by side).
	awk '
	$2 == "tftpdata" || $2 == "blksize" || $2 == "windowsize" || $2 == "retrans" { next }
	FNR == NR { if ($3 != "-") a[$1 " " $2] = $3; next }
	$3 != "-" && ($1 " " $2) in a && $3 > 0 { print $2 "/ratio", a[$1 " " $2] / $3 }
	' "$work/stages-tinderbox-$r" "$work/stages-anchor-$r" >>"$rec"
done

echo
echo "boot stages: $N $fwname, $(e2e_accel)) at once, $ROUNDS paired rounds; ms from the VM's first DHCPDISCOVER to the end of each stage; median (min–max) over rounds × VMs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
# stage_table KEY=NAME...: one row per stage, tinderbox beside the anchor
# and the median of the per-VM ratios.
stage_table() {
	local kv
	echo "| stage | tinderbox ms | anchor (dnsmasq + nginx) ms | tinderbox/anchor |"
	echo "|---|---|---|---|"
	for kv in "$@"; do
		printf '| %s | %s | %s | %s |\n' "${kv#*=}" "$(bench_cell "$rec" "${kv%%=*}/tinderbox" %.1f)" \
			"$(bench_cell "$rec" "${kv%%=*}/anchor" %.1f)" "$(bench_cell "$rec" "${kv%%=*}/ratio" %.2f)"
	done
}
stage_table "offer=proxy DHCP offer" "rrq=firmware's TFTP request of iPXE" "tftp=TFTP of iPXE (last DATA)" \
	"ipxe=iPXE's first DISCOVER" "ipxedhcp=iPXE's DHCP (last ACK)" "script=iPXE script" "kernel=kernel" \
	"initramfs=initramfs" "config=config fetched"
echo
echo "Each stage's own time: ms from the end of the stage before it (the offer: from the DISCOVER)"
echo
stage_table "doffer=proxy DHCP offer" "drrq=firmware: DHCP, PXE, to its TFTP request" "dtftp=TFTP transfer of iPXE" \
	"dipxe=iPXE starting, to its DISCOVER" "dipxedhcp=iPXE's DHCP exchange" "dscript=iPXE script(s)" \
	"dkernel=kernel" "dinitramfs=initramfs" "dconfig=kernel boot, to config fetched"
echo
echo "| per VM boot | tinderbox | anchor (dnsmasq + nginx) |"
echo "|---|---|---|"
for s in tftpdata blksize windowsize retrans; do
	case $s in
	tftpdata) name="TFTP of iPXE: DATA packets sent" ;;
	blksize) name="TFTP of iPXE: blksize granted (bytes)" ;;
	windowsize) name="TFTP of iPXE: windowsize granted (blocks per ACK)" ;;
	retrans) name="HTTP: TCP segments re-sent" ;;
	esac
	printf '| %s | %s | %s |\n' "$name" "$(bench_cell "$rec" "$s/tinderbox" %.0f)" "$(bench_cell "$rec" "$s/anchor" %.0f)"
done
echo
echo "VM boots that did not fetch their config: $fails"
if [ "$FIRMWARE" = seabios ]; then
	echo "(\"-\": the stage does not occur: QEMU's iPXE ROM is iPXE already, so neither stack sends it iPXE by TFTP)"
fi
if [ "$fails" -ne 0 ] && [ "$STRICT" = 1 ]; then
	exit 1
fi
