#!/usr/bin/env bash
# Builds the small real Talos stand-ins the fake Image Factory serves in
# end-to-end tests: scripts/e2e/assets.sh OUTDIR
#   OUTDIR/kernel-amd64        a Debian kernel (linux-image package, extracted, not installed)
#   OUTDIR/initramfs-amd64.xz  busybox + NIC modules; its init plays Talos: it reads
#                              talos.config= from /proc/cmdline, fetches it, prints its
#                              sha256 and contents on the serial console, powers off
# Needs apt-get (Debian/Ubuntu), busybox-static and xz-utils; reuses OUTDIR when complete.
set -euo pipefail
out=${1:?usage: assets.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -s "$out/kernel-amd64" ] && [ -s "$out/initramfs-amd64.xz" ]; then
	echo "assets: $out is complete" >&2
	exit 0
fi
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
cp "$work"/kpkg/boot/vmlinuz-* "$out/kernel-amd64.tmp"

root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,lib/modules}
cp /bin/busybox "$root/bin/busybox"
# virtio-net and e1000 are modules in Debian's kernel; load order matters.
mods=(failover net_failover virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_net e1000)
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

cat >"$root/init" <<'SCRIPT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
say() { echo "TINDERBOX-E2E: $*"; }
for m in $(cat /etc/modules); do insmod "/lib/modules/$m.ko" 2>/dev/null; done
say "booted: $(cat /proc/cmdline)"
nic=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
ip link set lo up
ip link set "$nic" up
udhcpc -i "$nic" -s /bin/dhcp-event -q -n -t 10 >/dev/null 2>&1 || say "dhcp failed on $nic"
say "address: $(ip -4 -o addr show dev "$nic" | awk '{print $4}')"
url=
for arg in $(cat /proc/cmdline); do
	case "$arg" in talos.config=*) url=${arg#talos.config=} ;; esac
done
if [ -z "$url" ]; then
	say "maintenance mode: no talos.config"
else
	say "fetching config: $url"
	if wget -q -O /tmp/config.yaml "$url"; then
		say "config sha256: $(sha256sum /tmp/config.yaml | cut -d' ' -f1)"
		say "config begin"
		cat /tmp/config.yaml
		echo
		say "config end"
	else
		say "config fetch failed"
	fi
fi
say "powering off"
sync
poweroff -f
SCRIPT
chmod +x "$root/init" "$root/bin/dhcp-event"

# newc cpio, xz with the crc32 check the kernel's decompressor accepts.
(cd "$root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) | xz --check=crc32 -9 >"$out/initramfs-amd64.xz.tmp"
mv "$out/kernel-amd64.tmp" "$out/kernel-amd64"
mv "$out/initramfs-amd64.xz.tmp" "$out/initramfs-amd64.xz"
echo "assets: $out: kernel $(stat -c %s "$out/kernel-amd64") bytes ($pkg), initramfs $(stat -c %s "$out/initramfs-amd64.xz") bytes" >&2
