#!/usr/bin/env bash
# Real firmware PXE-boots through tinderbox, end to end (issues 9 and 16):
# QEMU VMs with a blank disk on a LAN whose router (dnsmasq) hands out
# addresses only; tinderbox on its own veth, with a fake Image Factory
# serving a real Debian kernel and a busybox initramfs whose init runs
# scripts/e2e/faketalos, a stand-in Talos (scripts/e2e/assets.sh builds
# both): it reads talos.config= from /proc/cmdline, fetches it and prints
# its sha256 on the serial console, publishes Talos' event sequence to
# tinderbox's event sink and streams [talos] log lines to its log
# receiver, "installs" by writing a bootable image (GRUB for BIOS and UEFI,
# the same kernel, an initramfs that reports RUNNING and ready) to the disk
# and reboots. Scenarios:
#   1. UEFI (OVMF native PXE), known machine, install: once: offer → TFTP
#      snponly.efi → iPXE → script → kernel + initramfs from the cache (fetched
#      once) → config with the right token, equal to `tinderbox render` →
#      installed, from Talos' report, before the reboot → the reboot is
#      told to boot its disk (ipxe.localBoot: exit), the disk boots, and
#      its report makes the machine ready; `tinderbox machines logs` shows
#      the [talos] lines of both boots.
#   2. `tinderbox machines reinstall` → the next boot netboots again,
#      fetches a config with a new token and reports installed again.
#   3. BIOS (SeaBIOS + iPXE ROM), unknown machine, unknown: maintenance →
#      boots with no talos.config; state discovered.
#   4. install: never → not netbooted; state local.
#   5. Two VMs at once from a cold cache → one upstream fetch per asset.
#   6. An intruder on the LAN (its own MAC and address) asks for a
#      machine's script and presents its config URL: refused, no token, no
#      state change, and the log names the intruder (binding is on, as by
#      default).
#   7. As 1 on BIOS: `exit` reaches the disk on SeaBIOS too; ready.
#   8. At once: a failing install (kernel argument e2e.fail-install=1 from
#      the profile: the stand-in reports the install sequence stopped with
#      an error) ends failed with Talos' message; a node that stops after
#      its kernel (e2e.stall=1: never fetches its config) is shown stalled
#      after Initramfs (reports.stallAfter is 20s here).
#   9. ipxe.localBoot: sanboot (tinderbox restarted with it): on SeaBIOS
#      iPXE boots drive 0x80 itself (its messages reach the serial log).
#  10. One server, two LANs (issue 18): a second LAN with its own router,
#      on a second interface of tinderbox's namespace; tinderbox restarted
#      with dhcp.interfaces [both] and advertise not set. A machine on each
#      LAN, at once: each is handed its own LAN's address in the iPXE offer
#      and in every URL and argument of its script, installs (config,
#      events, kernel log all reach tinderbox over its own LAN).
# Prints a timings table per scenario and step. Topology: scripts/e2e/lib.sh.
# Needs root and qemu-system-x86, ovmf, ipxe, ipxe-qemu, dnsmasq,
# busybox-static, grub-pc-bin, grub-efi-amd64-bin, xorriso, mtools
# (scripts/deps.sh e2e).
set -euo pipefail
E2E=tbxe NET=10.78.0 TAPS=3 NET2=10.79.0
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

e2e_require xz curl grub-mkrescue xorriso mformat
[ -x /bin/busybox ] || e2e_skip "/bin/busybox is missing (apt-get install busybox-static)"
e2e_init
e2e_build

e2e_topology
e2e_router
e2e_fakefactory

schematic=$(printf '%064d' 0 | tr 0 e)
uefi=52:54:00:78:00:01 bios=52:54:00:78:00:02 never=52:54:00:78:00:03 colda=52:54:00:78:00:05 coldb=52:54:00:78:00:06
biosonce=52:54:00:78:00:07 failing=52:54:00:78:00:08 stall=52:54:00:78:00:09
lan1m=52:54:00:78:00:0a lan2m=52:54:00:79:00:0b
p=$work/profiles
mkdir -p "$work/cache" "$work/state"
e2e_profiles "$p" "$schematic" e2e 10.78.0.10
echo "hostname: uefi-once" >"$p/machines/${uefi//:/-}.yaml"
printf 'hostname: never\ninstall: never\n' >"$p/machines/${never//:/-}.yaml"
printf 'hostname: cold-a\ntalos:\n  version: v1.13.0\n' >"$p/machines/${colda//:/-}.yaml"
printf 'hostname: cold-b\ntalos:\n  version: v1.13.0\n' >"$p/machines/${coldb//:/-}.yaml"
echo "hostname: bios-once" >"$p/machines/${biosonce//:/-}.yaml"
printf 'hostname: failing\nkernelArgs: ["e2e.fail-install=1"]\n' >"$p/machines/${failing//:/-}.yaml"
printf 'hostname: stall\nkernelArgs: ["e2e.stall=1"]\n' >"$p/machines/${stall//:/-}.yaml"
echo "hostname: lan-one" >"$p/machines/${lan1m//:/-}.yaml"
echo "hostname: lan-two" >"$p/machines/${lan2m//:/-}.yaml"

# The iPXE builds: Debian's, as a user's install has them. UEFI machines
# get snponly.efi, tinderbox's default (ipxe.efiX64): Debian's 2019
# ipxe.efi hangs under OVMF once its script exits (docs/testing.md,
# "Booting the disk").
E2E_IPXE_DIR=${E2E_IPXE_DIR:-/usr/lib/ipxe}

# tbconfig LOCALBOOT [two-lans | secondary]: tinderbox's config, with
# ipxe.localBoot LOCALBOOT; advertise pinned to $NET.2 and DHCP on
# ${E2E}boot0, or with two-lans, advertise not set and DHCP on both LANs'
# interfaces, or with secondary, advertise pinned to $NET.3, the boot
# interface's secondary address.
tbconfig() {
	local adv="advertise: $NET.2" dhcp="dhcp: {interface: ${E2E}boot0}"
	case "${2:-}" in
	two-lans) adv="" dhcp="dhcp: {interfaces: [${E2E}boot0, ${E2E}boot1]}" ;;
	secondary) adv="advertise: $NET.3" ;;
	esac
	cat >"$work/tinderbox.yaml" <<YAML
$adv
http: {listen: ":8080"}
admin: {listen: "127.0.0.1:8081"}
$dhcp
tftp: {listen: ":69"}
ipxe: {dir: $E2E_IPXE_DIR, localBoot: $1}
factory: {url: "$factory"}
cache: {dir: $work/cache}
state: {dir: $work/state}
profiles: {dir: $p}
reports: {eventsListen: ":8091", logsListen: ":8092", stallAfter: 20s}
log: {level: debug}
YAML
}
tbconfig exit
# The config flag follows the command (tb validate, tb machines show MAC).
tb() { ip netns exec "$boot" "$work/tinderbox" "$1" --config "$work/tinderbox.yaml" "${@:2}"; }
tb validate >&2
e2e_tinderbox --config "$work/tinderbox.yaml"

# What a user would look at.
serial() { grep -a "TINDERBOX-E2E: $2" "$work/$1.serial"; }
serial_count() { grep -ac "TINDERBOX-E2E: $2" "$work/$1.serial" || true; }
powered_off() { serial "$1" "powering off"; }
rebooted() { serial "$1" "rebooting"; }
show() { tb machines show "$1" -o json; }
state_is() { show "$1" | grep -q "\"state\": \"$2\""; }
scripted() { grep "boot script served" "$work/tinderbox.log" | grep "mac=$1" | grep -q "action=$2"; }
served_count() { grep "boot script served" "$work/tinderbox.log" | grep "mac=$1" | grep -c "action=$2" || true; }
config_matches() { # the config the VM printed is what `tinderbox render` prints
	local want got
	want=$(tb render "$2" | sha256sum | cut -d' ' -f1)
	got=$(serial "$1" "config sha256: " | tail -n 1 | sed 's/.*config sha256: //' | tr -d '\r')
	[ -n "$got" ] && [ "$got" = "$want" ]
}
fetches() { ip netns exec "$boot" curl -s "$factory/_fake/counts" | grep -o "\"/image/$schematic/$1/$2\": *[0-9]*" | grep -o '[0-9]*$'; }
fetched_once() { [ "$(fetches "$1" "$2")" = 1 ]; }
# timeline MAC: the machine's events, one "kind | detail" line each.
timeline() {
	show "$1" | awk '
		/"kind":/ { k = $2; gsub(/[",]/, "", k) }
		/"detail":/ { d = $0; sub(/^[^:]*: "/, "", d); sub(/",?$/, "", d) }
		/^    }/ { print k " | " d; k = ""; d = "" }'
}
# installed_by_report MAC: the machine became installed right on Talos'
# report that its install sequence was done, before any boot was told to
# go to its disk; not by the fallback inference at its next network boot.
installed_by_report() {
	timeline "$1" | awk '
		/^talos \| install sequence done/ { t = NR }
		/^transition \| installing → installed/ && t && t == NR - 1 { ok = 1 }
		/^local_boot/ && !ok { exit }
		END { exit !ok }'
}
# after_san NAME TEXT: the stand-in said TEXT after iPXE's first sanboot.
after_san() { tr -d '\r' <"$work/$1.serial" | sed -n '/Booting from SAN device 0x80/,$p' | grep -aq "TINDERBOX-E2E: $2"; }
talos_is() { show "$1" | tr -d ' \n' | grep -q "\"talos\":{\"stage\":\"$2\",\"ready\":$3"; }
field_has() { show "$1" | grep "\"$2\": " | grep -qF "$3"; }
logs_have() { tb machines logs "$1" -n 1000 --grep "$2" | grep -qF "$2"; }

# timings NAME MAC START: seconds from the VM's start to each boot step, and
# to the state becoming installed and ready, from the machine's event log in
# tinderbox's state.
timings() {
	local name=$1 mac=$2 start=$3
	show "$mac" | awk -v start="$start" -v name="$name" '
		/"time":/ { gsub(/[",]/, "", $2); t = $2 }
		/"kind":/ { gsub(/[",]/, "", $2); k = $2 }
		/"detail":/ { d = $0; sub(/^[^:]*: "/, "", d); sub(/",?$/, "", d) }
		/^    }/ {
			cmd = "date -d " t " +%s.%N"; cmd | getline e; close(cmd)
			if (e >= start) {
				step = k
				if (k == "dhcp_offer") step = "dhcp"
				if (k == "transition") step = d; sub(/.*→ /, "", step)
				if (!(step in first)) first[step] = e - start
			}
			k = ""; d = ""
		}
		END {
			printf "%-24s", name
			n = split("dhcp tftp script kernel initramfs config installed local_boot ready", steps, " ")
			for (i = 1; i <= n; i++) printf " %9s", (steps[i] in first) ? sprintf("%.1f", first[steps[i]]) : "-"
			printf "\n"
		}' >>"$work/timings"
}
now() { date +%s.%N; }

# installs NAME MAC FIRMWARE N: checks of a whole install cycle, checks
# numbered N: netboot, installed by Talos' report, told to boot its disk
# at the reboot, the disk booted and reported, ready.
installs() {
	local name=$1 mac=$2 n=$4
	check "$n: iPXE was served a netboot script" scripted "$mac" netboot
	check "$n: the kernel booted with talos.config" serial "$name" "fetching config: http://$NET.2:8080/config/${mac//:/-}?token="
	check "$n: the config fetched equals tinderbox render" config_matches "$name" "$mac"
	check "$n: the stand-in wrote the image to /dev/vda" serial "$name" "installed: [0-9]* bytes written to /dev/vda"
	check "$n: installed from Talos' report, before the reboot" installed_by_report "$mac"
	check "$n: the reboot was told to boot its disk" scripted "$mac" local
	check "$n: the disk booted (GRUB, kernel, marker)" serial "$name" "booted from disk: .*e2e.disk=1"
	check "$n: state is ready" state_is "$mac" ready
	check "$n: Talos' status is running and ready" talos_is "$mac" running true
}

# 1. UEFI, known, install: once; the VM reboots in place after its install.
start=$(now)
vm_start uefi "${E2E}tap0" "$uefi" 11111111-2222-4333-8444-555555555501 ovmf reboot
vm_wait "$vm_pid" 300 powered_off uefi || true
timings "1 UEFI install" "$uefi" "$start"
check "1: OVMF fetched snponly.efi over TFTP" grep -q "tftp: file sent.*file=snponly.efi" "$work/tinderbox.log"
installs uefi "$uefi" ovmf 1
check "1: kernel fetched once from the factory" fetched_once v1.12.7 kernel-amd64
check "1: initramfs fetched once from the factory" fetched_once v1.12.7 initramfs-amd64.xz
check "1: machines logs shows the installer's [talos] lines" logs_have "$uefi" "[talos] installing Talos to /dev/vda"
check "1: machines logs shows the disk system's [talos] lines" logs_have "$uefi" "[talos] machine is running and ready"
check "1: machines logs carries the kernel's own log" logs_have "$uefi" "Linux version"

# 2. The same machine is re-armed and installs again (no reboot this time).
check "2: tinderbox machines reinstall" tb machines reinstall "$uefi"
check "2: state is pending after reinstall" state_is "$uefi" pending
start=$(now)
vm_start uefi "${E2E}tap0" "$uefi" 11111111-2222-4333-8444-555555555501 ovmf
vm_wait "$vm_pid" 300 bash -c "[ \$(grep -ac 'TINDERBOX-E2E: rebooting' '$work/uefi.serial') -ge 2 ]" || true
timings "2 UEFI after reinstall" "$uefi" "$start"
check "2: netbooted again after reinstall" test "$(served_count "$uefi" netboot)" -ge 2
check "2: fetched its config again (new token)" test "$(serial_count uefi "config sha256: ")" -ge 2
check "2: the new config equals tinderbox render" config_matches uefi "$uefi"
check "2: state is installed again, from Talos' report" state_is "$uefi" installed

# 3. BIOS, unknown machine, unknown: maintenance.
start=$(now)
vm_start bios "${E2E}tap1" "$bios" 11111111-2222-4333-8444-555555555502 seabios
vm_wait "$vm_pid" 240 powered_off bios || true
timings "3 BIOS unknown" "$bios" "$start"
check "3: iPXE was served a maintenance script" scripted "$bios" maintenance
check "3: booted Talos with no talos.config" serial bios "maintenance mode: no talos.config"
check "3: state is discovered" state_is "$bios" discovered
check "3: Talos' report of maintenance is shown" talos_is "$bios" maintenance false

# 4. install: never.
start=$(now)
vm_start never "${E2E}tap1" "$never" 11111111-2222-4333-8444-555555555503 seabios
vm_wait "$vm_pid" 240 scripted "$never" local || true
sleep 3 # a wrong netboot would have begun loading by now
timings "4 install never" "$never" "$start"
check "4: told to boot the local disk" scripted "$never" local
check "4: no kernel was booted" bash -c "! grep -aq 'TINDERBOX-E2E: booted' '$work/never.serial' 2>/dev/null"
check "4: state is local" state_is "$never" local

# 5. Two VMs at once, cold cache (v1.13.0 was never fetched).
start=$(now)
vm_start cold-a "${E2E}tap0" "$colda" 11111111-2222-4333-8444-555555555505 seabios
pida=$vm_pid
vm_start cold-b "${E2E}tap2" "$coldb" 11111111-2222-4333-8444-555555555506 seabios
pidb=$vm_pid
vm_wait "$pida" 300 rebooted cold-a || true
vm_wait "$pidb" 120 rebooted cold-b || true
timings "5 cold storm A" "$colda" "$start"
timings "5 cold storm B" "$coldb" "$start"
check "5: VM A got its config" config_matches cold-a "$colda"
check "5: VM B got its config" config_matches cold-b "$coldb"
check "5: kernel fetched once for both" fetched_once v1.13.0 kernel-amd64
check "5: initramfs fetched once for both" fetched_once v1.13.0 initramfs-amd64.xz

# 6. An intruder on the LAN: the LAN namespace is a host of its own on the
# bridge ($NET.1, the bridge's MAC), asking over plain HTTP for cold-a's
# script and presenting the config URL cold-a fetched. It gets neither a
# token nor the config, cold-a's state does not move, and the log names it.
http_code() { inlan curl -s -o "$work/intruder.body" -w '%{http_code}' "$1"; }
cfg_url=$(serial cold-a "fetching config: " | tail -n 1 | sed 's/.*fetching config: //' | tr -d '\r')
brmac=$(inlan cat "/sys/class/net/$br/address")
check "6: intruder gets no config with cold-a's URL" test "$(http_code "$cfg_url")" = 403
check "6: the refusal says nothing of why" grep -qx "tinderbox: config refused" "$work/intruder.body"
tb machines reinstall "$colda" >/dev/null
check "6: intruder gets no token script for cold-a" test "$(http_code "http://$NET.2:8080/ipxe?mac=${colda//:/-}&arch=x86_64")" = 403
check "6: no token in the answer" bash -c "! grep -q token= '$work/intruder.body'"
check "6: cold-a is still pending" state_is "$colda" pending
check "6: the log names the intruder" grep -q "request for cold-a ($colda) from $NET.1, which is $brmac" "$work/tinderbox.log"

# 7. BIOS, known, install: once, through to its disk.
start=$(now)
vm_start bios-once "${E2E}tap1" "$biosonce" 11111111-2222-4333-8444-555555555507 seabios reboot
vm_wait "$vm_pid" 300 powered_off bios-once || true
timings "7 BIOS install" "$biosonce" "$start"
installs bios-once "$biosonce" seabios 7

# 8. A failing install and a stalled node, at once.
start=$(now)
vm_start failing "${E2E}tap1" "$failing" 11111111-2222-4333-8444-555555555508 seabios
pida=$vm_pid
vm_start stall "${E2E}tap2" "$stall" 11111111-2222-4333-8444-555555555509 seabios
pidb=$vm_pid
vm_wait "$pida" 240 powered_off failing || true
vm_wait "$pidb" 180 field_has "$stall" attention "stalled: no progress for" || true
timings "8 failing install" "$failing" "$start"
timings "8 stalled after kernel" "$stall" "$start"
check "8: the failing install fetched its config" config_matches failing "$failing"
check "8: state is failed" state_is "$failing" failed
check "8: failure is Talos' own message" field_has "$failing" failure "Talos install sequence failed: install to /dev/vda refused: e2e.fail-install=1"
check "8: attention says failed" field_has "$failing" attention "failed: Talos install sequence failed"
check "8: the stalled node booted its kernel" serial stall "stalling after the kernel"
check "8: the stalled node never fetched its config" bash -c "! grep -aq 'TINDERBOX-E2E: fetching config' '$work/stall.serial'"
check "8: the stalled node is pending" state_is "$stall" pending
check "8: attention says stalled after Initramfs" field_has "$stall" attention "after Initramfs"

# 9. ipxe.localBoot: sanboot. tinderbox restarts with it (same state); the
# BIOS machine, ready, is told to sanboot, and iPXE itself boots the disk
# (its own messages reach the serial log through SeaBIOS' serial console).
kill "$tinderbox_pid"
wait "$tinderbox_pid" 2>/dev/null || true
e2e_forget "$tinderbox_pid"
mv "$work/tinderbox.log" "$work/tinderbox-exit.log"
tbconfig sanboot
e2e_tinderbox --config "$work/tinderbox.yaml"
start=$(now)
vm_start bios-once "${E2E}tap1" "$biosonce" 11111111-2222-4333-8444-555555555507 seabios
vm_wait "$vm_pid" 180 after_san bios-once "powering off" || true
timings "9 BIOS sanboot" "$biosonce" "$start"
check "9: told to boot its disk" scripted "$biosonce" local
check "9: iPXE booted drive 0x80 itself" bash -c "tr -d '\r' <'$work/bios-once.serial' | grep -a -A4 'Booting from SAN device 0x80' | grep -q 'GRUB loading'"
check "9: the disk booted and reported" after_san bios-once "reported running and ready"

# 10. One server, two LANs: advertise not set, DHCP on both interfaces.
# Neither LAN routes to the other, so a machine handed the other LAN's
# address could fetch nothing.
e2e_second_lan "$NET2"
kill "$tinderbox_pid"
wait "$tinderbox_pid" 2>/dev/null || true
e2e_forget "$tinderbox_pid"
mv "$work/tinderbox.log" "$work/tinderbox-sanboot.log"
tbconfig exit two-lans
e2e_tinderbox --config "$work/tinderbox.yaml"
# offered MAC URL: tinderbox sent iPXE at MAC the script URL URL.
offered() { grep "proxy offer sent" "$work/tinderbox.log" | grep "mac=$1" | grep -qF "file=$2"; }
start=$(now)
vm_start lan-one "${E2E}tap1" "$lan1m" 11111111-2222-4333-8444-55555555550a seabios
pida=$vm_pid
vm_ns=$lan2 vm_start lan-two "${E2E}tap9" "$lan2m" 11111111-2222-4333-8444-55555555550b seabios
pidb=$vm_pid
vm_wait "$pida" 300 rebooted lan-one || true
vm_wait "$pidb" 120 rebooted lan-two || true
timings "10 two LANs: LAN 1" "$lan1m" "$start"
timings "10 two LANs: LAN 2" "$lan2m" "$start"
for m in "lan-one $lan1m $NET" "lan-two $lan2m $NET2"; do
	read -r name mac net <<<"$m"
	check "10: $name: iPXE offered its own LAN's script URL" offered "$mac" "http://$net.2:8080/boot.ipxe"
	check "10: $name: talos.config on its own LAN" serial "$name" "fetching config: http://$net.2:8080/config/${mac//:/-}?token="
	check "10: $name: the config equals tinderbox render" config_matches "$name" "$mac"
	check "10: $name: installed from Talos' report (event sink on its LAN)" installed_by_report "$mac"
	check "10: $name: machines logs has its [talos] lines (log receiver on its LAN)" logs_have "$mac" "[talos] installing Talos to /dev/vda"
done
# A script fetched over LAN 2 (from its router's namespace; an unknown MAC,
# so the maintenance script, which carries no secret) names LAN 2's address
# in every URL and argument, and never LAN 1's.
ip netns exec "$lan2" curl -s "http://$NET2.2:8080/ipxe?mac=02-00-00-79-00-99&arch=x86_64" >"$work/lan2.ipxe" || true
check "10: a script fetched over LAN 2 names LAN 2's kernel, initrd, sink, logs" bash -c "grep -q '^kernel http://$NET2.2:8080/assets/' '$work/lan2.ipxe' &&
	grep -q '^initrd http://$NET2.2:8080/assets/' '$work/lan2.ipxe' && grep -q 'talos.events.sink=$NET2.2:8091' '$work/lan2.ipxe' &&
	grep -q 'talos.logging.kernel=tcp://$NET2.2:8092/' '$work/lan2.ipxe'"
check "10: a script fetched over LAN 2 names no address of LAN 1" bash -c "! grep -q '${NET//./\\.}\\.' '$work/lan2.ipxe'"

# 11. advertise on a secondary address (a keepalived VIP, say): OVMF's
# TFTP client takes packets only from the server it asked (EDK2's
# Mtftp4), so every TFTP reply must come from the secondary address, not
# the interface's primary one; the machine (the never-installing one) then
# gets its script over that address too.
kill "$tinderbox_pid"
wait "$tinderbox_pid" 2>/dev/null || true
e2e_forget "$tinderbox_pid"
mv "$work/tinderbox.log" "$work/tinderbox-two-lans.log"
inboot ip addr add "$NET.3/24" dev "${E2E}boot0"
tbconfig exit secondary
e2e_tinderbox --config "$work/tinderbox.yaml"
vm_start secondary "${E2E}tap1" "$never" 11111111-2222-4333-8444-55555555550c ovmf
vm_wait "$vm_pid" 240 scripted "$never" local || true
sent_from() { grep "tftp: file sent" "$work/tinderbox.log" | grep "file=$1" | grep -q "local=$2 "; }
check "11: the primary address is $NET.2, the secondary $NET.3" bash -c "ip netns exec '$boot' ip -4 addr show dev '${E2E}boot0' | grep -q 'inet $NET.3/24 .*secondary'"
check "11: OVMF was offered the boot file from the secondary address" bash -c "grep 'proxydhcp: reply' '$work/tinderbox.log' | grep -q 'server=$NET.3 '"
check "11: OVMF's TFTP download came from the secondary address" sent_from snponly.efi "$NET.3"
check "11: no TFTP reply left from the primary address" bash -c "! grep 'tftp: ' '$work/tinderbox.log' | grep -q 'local=$NET.2 '"
check "11: iPXE was offered the script URL on the secondary address" offered "$never" "http://$NET.3:8080/boot.ipxe"
check "11: the machine was served its script over the secondary address" scripted "$never" local

check "tinderbox logged no error" bash -c "! grep -q 'level=ERROR' '$work/tinderbox-exit.log' '$work/tinderbox-sanboot.log' '$work/tinderbox-two-lans.log' '$work/tinderbox.log'"

{
	echo
	echo "seconds from power-on to each boot step (first event of each kind) and state:"
	printf "%-24s %9s %9s %9s %9s %9s %9s %9s %9s %9s\n" scenario dhcp tftp script kernel initramfs config installed local ready
	cat "$work/timings"
	echo
} >&2
if [ "$fails" -ne 0 ]; then
	e2e_log "tinderbox's Info, Warn and Error lines:"
	grep -h "level=INFO\|level=WARN\|level=ERROR" "$work/tinderbox-exit.log" "$work/tinderbox-sanboot.log" "$work/tinderbox-two-lans.log" "$work/tinderbox.log" >&2 || true
fi
e2e_summary
