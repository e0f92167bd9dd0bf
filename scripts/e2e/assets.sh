#!/usr/bin/env bash
# Builds the small real Talos stand-ins the fake Image Factory serves in
# end-to-end tests: scripts/e2e/assets.sh OUTDIR [SINKHOST]
#   OUTDIR/kernel-amd64        a Debian kernel (linux-image package, extracted, not installed)
#   OUTDIR/initramfs-amd64.xz  busybox + NIC and disk modules + scripts/e2e/faketalos (a
#                              static Go program that plays Talos on the wire) + disk.img;
#                              its init brings the network up with udhcpc and runs faketalos,
#                              which fetches talos.config, reports events and logs, writes
#                              disk.img to the install disk and reboots
#   OUTDIR/disk-amd64.img      disk.img alone: a grub-mkrescue hybrid image that boots on
#                              SeaBIOS and OVMF from a hard disk, the same kernel with an
#                              initramfs that is the one above without disk.img; its grub.cfg
#                              adds e2e.disk=1 and names SINKHOST (default 10.78.0.2, the
#                              advertise address of scripts/e2e/boot.sh) as event sink
#                              (:8091) and log receiver (:8092), as Talos' installer carries
#                              those arguments over to the installed system
# Needs apt-get (Debian/Ubuntu), Go, busybox-static, xz-utils, grub-pc-bin,
# grub-efi-amd64-bin, xorriso and mtools. Reuses OUTDIR when it was built
# by this script, from these faketalos sources, for this SINKHOST.
set -euo pipefail
out=${1:?usage: assets.sh OUTDIR [SINKHOST]}
sink=${2:-10.78.0.2}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
stamp=$( (cat "$repo/scripts/e2e/assets.sh" "$repo"/scripts/e2e/faketalos/*.go "$repo/go.sum"; echo "$sink") | sha256sum | cut -d' ' -f1)
if [ -s "$out/kernel-amd64" ] && [ -s "$out/initramfs-amd64.xz" ] && [ -s "$out/disk-amd64.img" ] &&
	[ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "assets: $out is complete" >&2
	exit 0
fi
for tool in grub-mkrescue xorriso mformat; do
	command -v "$tool" >/dev/null || { echo "assets: $tool is missing (scripts/deps.sh e2e)" >&2; exit 1; }
done
for d in /usr/lib/grub/i386-pc /usr/lib/grub/x86_64-efi; do
	[ -d "$d" ] || { echo "assets: $d is missing (apt-get install grub-pc-bin grub-efi-amd64-bin)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The kernel package the linux-image-amd64 metapackage points at today.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ]; then
	echo "assets: cannot find the linux-image package (run apt-get update?)" >&2
	exit 1
fi
(cd "$work" && apt-get download -qq "$pkg" >/dev/null)
dpkg -x "$work"/"$pkg"_*.deb "$work/kpkg"
cp "$work"/kpkg/boot/vmlinuz-* "$work/vmlinuz"

# The stand-in Talos, static so it runs on busybox's bare root.
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$work/faketalos" ./scripts/e2e/faketalos)

root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,lib/modules}
cp /bin/busybox "$root/bin/busybox"
cp "$work/faketalos" "$root/bin/faketalos"
# virtio-net, e1000 and virtio-blk are modules in Debian's kernel; load
# order matters.
mods=(failover net_failover virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_net e1000 virtio_blk)
for m in "${mods[@]}"; do
	f=$(find "$work/kpkg/lib/modules" -name "$m.ko*" | head -n 1)
	if [ -z "$f" ]; then
		echo "assets: module $m not in $pkg" >&2
		continue
	fi
	case "$f" in
	*.xz) xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
	*.zst) zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
	*) cp "$f" "$root/lib/modules/$m.ko" ;;
	esac
done
echo "${mods[*]}" >"$root/etc/modules"

cat >"$root/bin/dhcp-event" <<'SCRIPT'
#!/bin/busybox sh
# udhcpc's event script: configure the address and default route it got.
case "$1" in
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	[ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
	;;
esac
exit 0
SCRIPT

# init: mounts, modules and network with busybox, then the stand-in Talos,
# which ends by rebooting or powering off; should it return, power off.
cat >"$root/init" <<'SCRIPT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
say() { echo "TINDERBOX-E2E: $*"; }
for m in $(cat /etc/modules); do insmod "/lib/modules/$m.ko" 2>/dev/null; done
grep -q 'e2e.disk=1' /proc/cmdline || say "booted: $(cat /proc/cmdline)"
nic=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
ip link set lo up
ip link set "$nic" up
udhcpc -i "$nic" -s /bin/dhcp-event -q -n -t 10 >/dev/null 2>&1 || say "dhcp failed on $nic"
say "address: $(ip -4 -o addr show dev "$nic" | awk '{print $4}')"
/bin/faketalos
say "faketalos exited ($?): powering off"
sync
poweroff -f
SCRIPT
chmod +x "$root/init" "$root/bin/dhcp-event"

# newc cpio, xz with the crc32 check the kernel's decompressor accepts.
cpio_xz() { (cd "$1" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) | xz --check=crc32 -9; }

# The installed system: GRUB for i386-pc and x86_64-efi on one hybrid
# image (an MBR with GRUB's boot code, an EFI system partition with
# BOOTX64.EFI), booting the kernel straight away. printk.devkmsg=on lets
# the stand-in write its [talos] lines to /dev/kmsg without the kernel's
# rate limit, as Talos' own command line does.
iso=$work/iso
mkdir -p "$iso/boot/grub"
cp "$work/vmlinuz" "$iso/boot/vmlinuz"
cpio_xz "$root" >"$iso/boot/initrd.xz"
cat >"$iso/boot/grub/grub.cfg" <<CFG
set timeout=0
set default=0
insmod all_video
serial --unit=0 --speed=115200
terminal_output console serial
menuentry "tinderbox e2e: installed system" {
	echo "grub: booting the installed system from disk"
	linux /boot/vmlinuz console=ttyS0 panic=-1 printk.devkmsg=on e2e.disk=1 talos.events.sink=$sink:8091 talos.logging.kernel=tcp://$sink:8092/
	initrd /boot/initrd.xz
}
CFG
# Only the modules grub.cfg and the two boot paths need, no fonts, themes
# or locales: the image stays a few MB beyond the kernel and initramfs.
# grub-mkrescue's EFI core loads every partition map module it knows, so
# they are all here; all_video spares GRUB EFI its "booting in blind mode".
parts="part_msdos part_gpt part_apple part_acorn part_amiga part_bsd part_dfly part_dvh part_plan part_sun part_sunpc"
grub-mkrescue -o "$work/disk.img" --compress=xz --fonts= --locales= --themes= \
	--install-modules="linux normal echo serial terminal test all_video iso9660 fat configfile search search_fs_uuid search_label $parts" \
	"$iso" 2>"$work/grub-mkrescue.log" || { cat "$work/grub-mkrescue.log" >&2; exit 1; }

cp "$work/disk.img" "$root/disk.img"
cpio_xz "$root" >"$out/initramfs-amd64.xz.tmp"
cp "$work/disk.img" "$out/disk-amd64.img.tmp"
cp "$work/vmlinuz" "$out/kernel-amd64.tmp"
mv "$out/kernel-amd64.tmp" "$out/kernel-amd64"
mv "$out/initramfs-amd64.xz.tmp" "$out/initramfs-amd64.xz"
mv "$out/disk-amd64.img.tmp" "$out/disk-amd64.img"
echo "$stamp" >"$out/stamp"
echo "assets: $out: kernel $(stat -c %s "$out/kernel-amd64") bytes ($pkg), initramfs $(stat -c %s "$out/initramfs-amd64.xz") bytes, disk image $(stat -c %s "$out/disk-amd64.img") bytes" >&2
