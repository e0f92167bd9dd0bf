#!/usr/bin/env bash
# Builds tinderbox's multi-architecture OCI image without a daemon and
# without emulation: one image per static binary given (each cross-compiled
# by make cross; its architecture is the binary's GOARCH), assembled by
# buildah (Debian package "buildah", vfs storage) FROM scratch from files on
# this host: the binary, the iPXE binaries of Debian's "ipxe" package
# (symlinks resolved) plus ipxe-arm64.efi (scripts/ipxe-arm64.sh: Debian
# 12's package lacks it), the CA certificates, a passwd entry for the
# non-root user 65532, and /var/lib/tinderbox as a volume. No RUN step runs
# in an image, so no image of a foreign architecture needs qemu to build.
# The iPXE binaries are for the machines that boot, so every image carries
# all of them whatever its own architecture. The binary carries the file
# capability cap_net_bind_service, so that user can bind ports 67, 69 and
# 4011: Kubernetes cannot give a non-root container a capability any other
# way (it sets no ambient capabilities), and a runtime whose bounding set
# lacks NET_BIND_SERVICE refuses to start the binary rather than failing
# later. The image runs on tinderbox's built-in defaults, which match its
# layout: mount a config at /etc/tinderbox/tinderbox.yaml and profiles at
# /etc/tinderbox/profiles. Containerfile at the repository root is the same
# image for docker users.
#
#   [VERSION=…] scripts/image.sh [BIN...]    BIN defaults to bin/tinderbox
# Writes, in buildah's local storage, one image per architecture
# (tinderbox:VERSION-ARCH) and the manifest list tinderbox:VERSION naming
# them all; and bin/tinderbox-image.tar, that manifest list with every image
# as an OCI archive named localhost/tinderbox:latest, which k3s ctr images
# import and podman load take (each picks its own architecture). Prints the
# archive's path.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -gt 0 ] || set -- bin/tinderbox
for bin in "$@"; do
	[ -x "$bin" ] || { echo "image: $bin missing: run make cross first" >&2; exit 1; }
done
command -v buildah >/dev/null || { echo "image: buildah missing: apt-get install buildah" >&2; exit 1; }
command -v setcap >/dev/null || { echo "image: setcap missing: apt-get install libcap2-bin" >&2; exit 1; }
ipxe_dir=${IPXE_DIR:-/usr/lib/ipxe}
certs=${CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
for f in "$ipxe_dir"/undionly.kpxe "$ipxe_dir"/ipxe.efi "$ipxe_dir"/snponly.efi "$certs"; do
	[ -r "$f" ] || { echo "image: $f missing: apt-get install ipxe ca-certificates" >&2; exit 1; }
done
arm64_dir=bin/package/ipxe
scripts/ipxe-arm64.sh "$arm64_dir"
# The version make stamps in (VERSION as make passes it, else git
# describe), so the tag says what it holds.
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
uid=65532 # the "nonroot" user of distroless images, a convention Kubernetes policies expect

buildah=(buildah --storage-driver "${STORAGE_DRIVER:-vfs}")

stage=
state=
ctr=
cleanup() {
	rm -rf "$stage" "$state"
	if [ -n "$ctr" ]; then "${buildah[@]}" rm "$ctr" >/dev/null; fi
}
trap cleanup EXIT

# build_image BIN ARCH commits the image for one architecture as
# tinderbox:VERSION-ARCH.
build_image() {
	local bin=$1 arch=$2 f
	# The root file system is staged in a folder and copied in one layer.
	stage=$(mktemp -d)
	chmod 0755 "$stage" # it becomes /, which mktemp made 0700
	# buildah copy makes root own what it copies unless told otherwise, so
	# the state directory, owned by the user, is copied on its own.
	state=$(mktemp -d)

	install -D -m 0755 "$bin" "$stage/usr/bin/tinderbox"
	# An xattr, so setcap works on a binary of any architecture, and
	# buildah copy keeps it in the layer.
	setcap cap_net_bind_service=+ep "$stage/usr/bin/tinderbox"
	# ipxe.efi is a symlink to /boot/ipxe.efi in Debian's package: copy the file.
	install -d "$stage/usr/lib/ipxe"
	for f in undionly.kpxe ipxe.efi snponly.efi; do
		install -m 0644 "$(readlink -f "$ipxe_dir/$f")" "$stage/usr/lib/ipxe/$f"
	done
	install -m 0644 "$arm64_dir/ipxe-arm64.efi" "$stage/usr/lib/ipxe/ipxe-arm64.efi"
	install -D -m 0644 "$certs" "$stage/etc/ssl/certs/ca-certificates.crt"
	install -d "$stage/etc/tinderbox/profiles" "$stage/tmp"
	chmod 1777 "$stage/tmp"
	install -d "$stage/usr/share/doc/tinderbox/examples"
	cp -r profiles "$stage/usr/share/doc/tinderbox/examples/profiles"
	# The package's copyright file lists every licence in the binary; the
	# image has no /usr/share/common-licenses, so the Apache text comes too,
	# and Debian's own terms for the iPXE binaries.
	install -m 0644 deploy/package/copyright "$stage/usr/share/doc/tinderbox/copyright"
	install -m 0644 LICENSE "$stage/usr/share/doc/tinderbox/LICENSE"
	install -m 0644 "$arm64_dir/ipxe-arm64.copyright" "$stage/usr/share/doc/tinderbox/ipxe-arm64.copyright"
	if [ -r /usr/share/doc/ipxe/copyright ]; then
		install -m 0644 /usr/share/doc/ipxe/copyright "$stage/usr/share/doc/tinderbox/ipxe.copyright"
	fi
	printf 'root:x:0:0:root:/root:/sbin/nologin\ntinderbox:x:%d:%d:tinderbox:/var/lib/tinderbox:/sbin/nologin\n' $uid $uid >"$stage/etc/passwd"
	printf 'root:x:0:\ntinderbox:x:%d:\n' $uid >"$stage/etc/group"
	install -d -m 0755 "$stage/var/lib"

	ctr=$("${buildah[@]}" from --arch "$arch" --os linux scratch)
	"${buildah[@]}" copy --quiet "$ctr" "$stage" / >/dev/null
	"${buildah[@]}" copy --quiet --chown $uid:$uid "$ctr" "$state" /var/lib/tinderbox >/dev/null
	"${buildah[@]}" config \
		--arch "$arch" --os linux \
		--user $uid:$uid \
		--workingdir /var/lib/tinderbox \
		--volume /var/lib/tinderbox \
		--entrypoint '["/usr/bin/tinderbox"]' \
		--cmd serve \
		--port 67/udp --port 69/udp --port 4011/udp --port 8080/tcp --port 8081/tcp \
		--stop-signal SIGTERM \
		--label org.opencontainers.image.title=tinderbox \
		--label "org.opencontainers.image.description=Network boot for Talos Linux" \
		--label org.opencontainers.image.source=https://github.com/tinderbox-boot/tinderbox \
		--label "org.opencontainers.image.licenses=Apache-2.0 AND BSD-3-Clause AND BSD-2-Clause AND MIT AND GPL-2.0-only" \
		--label "org.opencontainers.image.version=$version" \
		"$ctr"
	"${buildah[@]}" commit --quiet --format oci --rm "$ctr" "tinderbox:$version-$arch" >/dev/null
	ctr=
	rm -rf "$stage" "$state"
}

list=tinderbox:$version
# A manifest list cannot be replaced in place: an earlier build's goes first.
"${buildah[@]}" manifest rm "$list" >/dev/null 2>&1 || true
"${buildah[@]}" manifest rm tinderbox:latest >/dev/null 2>&1 || true
"${buildah[@]}" manifest create "$list" >/dev/null
for bin in "$@"; do
	arch=$(go version -m "$bin" | awk '$1 == "build" && $2 ~ /^GOARCH=/ {sub(/GOARCH=/, "", $2); print $2}')
	[ -n "$arch" ] || { echo "image: $bin: no GOARCH in its build information" >&2; exit 1; }
	build_image "$bin" "$arch"
	"${buildah[@]}" manifest add --arch "$arch" --os linux "$list" "containers-storage:localhost/tinderbox:$version-$arch" >/dev/null
	echo "image: tinderbox:$version-$arch" >&2
done
"${buildah[@]}" tag "$list" tinderbox:latest
out=bin/tinderbox-image.tar
rm -f "$out"
"${buildah[@]}" manifest push --quiet --all "$list" "oci-archive:$out:localhost/tinderbox:latest" >&2
echo "$out"
