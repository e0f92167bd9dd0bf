#!/usr/bin/env bash
# Real firmware PXE-boots through tinderbox, end to end (issue 9): QEMU VMs
# on a LAN whose router (dnsmasq) hands out addresses only; tinderbox on its
# own veth, with a fake Image Factory serving a real Debian kernel and a
# busybox initramfs whose init plays Talos (scripts/e2e/assets.sh): it reads
# talos.config= from /proc/cmdline, fetches it, prints its sha256 and
# contents on the serial console and powers off. Scenarios:
#   1. UEFI (OVMF native PXE), known machine, install: once: offer → TFTP
#      ipxe.efi → iPXE → script → kernel + initramfs from the cache (fetched
#      once) → config with the right token, equal to `tinderbox render`;
#      state installing.
#   2. The same machine again → told to boot its disk, state installed;
#      `tinderbox machines reinstall` → the next boot netboots again.
#   3. BIOS (SeaBIOS + iPXE ROM), unknown machine, unknown: maintenance →
#      boots with no talos.config; state discovered.
#   4. install: never → not netbooted; state local.
#   5. Two VMs at once from a cold cache → one upstream fetch per asset.
#   6. An intruder on the LAN (its own MAC and address) asks for a
#      machine's script and presents its config URL: refused, no token, no
#      state change, and the log names the intruder (binding is on, as by
#      default).
# Prints a timings table per scenario and step. Topology: scripts/e2e/lib.sh.
# Needs root and qemu-system-x86, ovmf, ipxe, ipxe-qemu, dnsmasq, busybox-static.
set -euo pipefail
E2E=tbxe NET=10.78.0 TAPS=3
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

e2e_require xz curl
[ -x /bin/busybox ] || e2e_skip "/bin/busybox is missing (apt-get install busybox-static)"
e2e_init
e2e_build
(cd "$repo" && go build -o "$work/fakefactory" ./cmd/fakefactory)

assets=${E2E_ASSETS:-$repo/.run/e2e-assets}
"$repo/scripts/e2e/assets.sh" "$assets"
# console=ttyS0 puts the kernel's (and the stand-in init's) output on the
# serial log; panic=-1 turns a kernel panic into a reboot, which -no-reboot
# turns into QEMU exiting, so a broken boot fails fast.
echo "talos.platform=metal console=ttyS0 panic=-1" >"$work/cmdline-metal-amd64"

e2e_topology
e2e_router

# The fake factory listens on the boot namespace's own loopback.
ip netns exec "$boot" "$work/fakefactory" -asset "kernel-amd64=$assets/kernel-amd64" \
	-asset "initramfs-amd64.xz=$assets/initramfs-amd64.xz" -asset "cmdline-metal-amd64=$work/cmdline-metal-amd64" \
	>"$work/factory.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
	factory=$(head -n 1 "$work/factory.out" 2>/dev/null || true)
	case "$factory" in http://*) break ;; esac
	sleep 0.1
done
case "$factory" in http://*) ;; *) cat "$work/factory.out" >&2; e2e_log "FAIL: the fake factory did not start"; exit 1 ;; esac

schematic=$(printf '%064d' 0 | tr 0 e)
uefi=52:54:00:78:00:01 bios=52:54:00:78:00:02 never=52:54:00:78:00:03 colda=52:54:00:78:00:05 coldb=52:54:00:78:00:06
p=$work/profiles
mkdir -p "$p/configs" "$p/machines" "$work/cache" "$work/state"
cat >"$p/defaults.yaml" <<YAML
unknown: maintenance
talos:
  version: v1.12.7
  schematic: $schematic
install: once
config: base
YAML
cat >"$p/configs/base.yaml" <<'YAML'
version: v1alpha1
machine:
  type: worker
  token: e2etok.notarealtoken0000
  install:
    disk: /dev/vda
cluster:
  controlPlane:
    endpoint: https://10.78.0.10:6443
  clusterName: e2e
YAML
echo "hostname: uefi-once" >"$p/machines/${uefi//:/-}.yaml"
printf 'hostname: never\ninstall: never\n' >"$p/machines/${never//:/-}.yaml"
printf 'hostname: cold-a\ntalos:\n  version: v1.13.0\n' >"$p/machines/${colda//:/-}.yaml"
printf 'hostname: cold-b\ntalos:\n  version: v1.13.0\n' >"$p/machines/${coldb//:/-}.yaml"

cat >"$work/tinderbox.yaml" <<YAML
advertise: $NET.2
http: {listen: ":8080"}
admin: {listen: "127.0.0.1:8081"}
dhcp: {interface: ${E2E}boot0}
tftp: {listen: ":69"}
ipxe: {dir: /usr/lib/ipxe}
factory: {url: "$factory"}
cache: {dir: $work/cache}
state: {dir: $work/state}
profiles: {dir: $p}
log: {level: debug}
YAML
tb() { ip netns exec "$boot" "$work/tinderbox" --config "$work/tinderbox.yaml" "$@"; }
tb validate >&2
e2e_tinderbox --config "$work/tinderbox.yaml"

# What a user would look at.
serial() { grep -a "TINDERBOX-E2E: $2" "$work/$1.serial"; }
powered_off() { serial "$1" "powering off"; }
state_is() { tb machines show "$1" -o json | grep -q "\"state\": \"$2\""; }
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

# timings NAME MAC START: seconds from the VM's start to each boot step, from
# the machine's event log in tinderbox's state.
timings() {
	local name=$1 mac=$2 start=$3
	tb machines show "$mac" -o json | awk -v start="$start" -v name="$name" '
		/"time":/ { gsub(/[",]/, "", $2); t = $2 }
		/"kind":/ { gsub(/[",]/, "", $2); k = $2 }
		/"detail":/ { gsub(/[",]/, "", $2); d = $2 }
		/^    }/ {
			cmd = "date -d " t " +%s.%N"; cmd | getline e; close(cmd)
			if (e >= start) {
				step = k
				if (k == "asset") step = (d ~ /^kernel/) ? "kernel" : "initramfs"
				if (k == "dhcp_offer") step = "dhcp"
				if (!(step in first)) first[step] = e - start
			}
			k = ""; d = ""
		}
		END {
			printf "%-28s", name
			n = split("dhcp tftp script kernel initramfs config local_boot", steps, " ")
			for (i = 1; i <= n; i++) printf " %9s", (steps[i] in first) ? sprintf("%.1f", first[steps[i]]) : "-"
			printf "\n"
		}' >>"$work/timings"
}
now() { date +%s.%N; }

# 1. UEFI, known, install: once.
start=$(now)
vm_start uefi "${E2E}tap0" "$uefi" 11111111-2222-4333-8444-555555555501 ovmf
vm_wait "$vm_pid" 300 powered_off uefi || true
timings "1 UEFI install" "$uefi" "$start"
check "1: OVMF fetched ipxe.efi over TFTP" grep -q "tftp: file sent.*file=ipxe.efi" "$work/tinderbox.log"
check "1: iPXE was served a netboot script" scripted "$uefi" netboot
check "1: the kernel booted with talos.config" serial uefi "fetching config: http://$NET.2:8080/config/52-54-00-78-00-01?token="
check "1: the config fetched equals tinderbox render" config_matches uefi "$uefi"
check "1: state is installing" state_is "$uefi" installing
check "1: kernel fetched once from the factory" fetched_once v1.12.7 kernel-amd64
check "1: initramfs fetched once from the factory" fetched_once v1.12.7 initramfs-amd64.xz

# 2. The same machine boots again, then is re-armed.
start=$(now)
vm_start uefi "${E2E}tap0" "$uefi" 11111111-2222-4333-8444-555555555501 ovmf
vm_wait "$vm_pid" 240 scripted "$uefi" local || true
timings "2 UEFI next boot" "$uefi" "$start"
check "2: told to boot the local disk" scripted "$uefi" local
check "2: state is installed" state_is "$uefi" installed
check "2: tinderbox machines reinstall" tb machines reinstall "$uefi"
check "2: state is pending after reinstall" state_is "$uefi" pending
start=$(now)
vm_start uefi "${E2E}tap0" "$uefi" 11111111-2222-4333-8444-555555555501 ovmf
vm_wait "$vm_pid" 300 bash -c "[ \$(grep -ac 'TINDERBOX-E2E: powering off' '$work/uefi.serial') -ge 2 ]" || true
timings "2 UEFI after reinstall" "$uefi" "$start"
check "2: netbooted again after reinstall" test "$(served_count "$uefi" netboot)" -ge 2
check "2: fetched its config again (new token)" test "$(serial uefi "config sha256: " | wc -l)" -ge 2
check "2: state is installing again" state_is "$uefi" installing

# 3. BIOS, unknown machine, unknown: maintenance.
start=$(now)
vm_start bios "${E2E}tap1" "$bios" 11111111-2222-4333-8444-555555555502 seabios
vm_wait "$vm_pid" 240 powered_off bios || true
timings "3 BIOS unknown" "$bios" "$start"
check "3: iPXE was served a maintenance script" scripted "$bios" maintenance
check "3: booted Talos with no talos.config" serial bios "maintenance mode: no talos.config"
check "3: state is discovered" state_is "$bios" discovered

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
vm_wait "$pida" 300 powered_off cold-a || true
vm_wait "$pidb" 120 powered_off cold-b || true
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

check "tinderbox logged no error" bash -c "! grep -q 'level=ERROR' '$work/tinderbox.log'"

{
	echo
	echo "seconds from power-on to each boot step (first event of each kind):"
	printf "%-28s %9s %9s %9s %9s %9s %9s %9s\n" scenario dhcp tftp script kernel initramfs config local
	cat "$work/timings"
	echo
} >&2
if [ "$fails" -ne 0 ]; then
	e2e_log "tinderbox's Info, Warn and Error lines:"
	grep "level=INFO\|level=WARN\|level=ERROR" "$work/tinderbox.log" >&2 || true
fi
e2e_summary
