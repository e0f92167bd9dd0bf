#!/usr/bin/env bash
# Builds the tinderbox OCI image without a daemon: buildah (Debian package
# "buildah", vfs storage, chroot isolation, so it works unprivileged-ish
# inside containers and CI) assembles FROM scratch the static binary, the
# iPXE binaries of Debian's "ipxe" package (symlinks resolved), the CA
# certificates, a passwd entry for the non-root user 65532, and
# /var/lib/tinderbox as a volume. The binary carries the file capability
# cap_net_bind_service, so that user can bind ports 67, 69 and 4011:
# Kubernetes cannot give a non-root container a capability any other way
# (it sets no ambient capabilities), and a runtime whose bounding set lacks
# NET_BIND_SERVICE refuses to start the binary rather than failing later. The image runs on tinderbox's built-in
# defaults, which match its layout: mount a config at
# /etc/tinderbox/tinderbox.yaml and profiles at /etc/tinderbox/profiles.
# Containerfile at the repository root is the same image for docker users.
#
#   scripts/image.sh [BIN]    BIN defaults to bin/tinderbox
# Writes the image to buildah's local storage as tinderbox:VERSION and
# tinderbox:latest, and to bin/tinderbox-image.tar as a docker archive named
# localhost/tinderbox:latest, the format every loader takes (k3s ctr images
# import, docker load, podman load); prints the archive's path.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-bin/tinderbox}
[ -x "$bin" ] || { echo "image: $bin missing: run make build first" >&2; exit 1; }
command -v buildah >/dev/null || { echo "image: buildah missing: apt-get install buildah" >&2; exit 1; }
command -v setcap >/dev/null || { echo "image: setcap missing: apt-get install libcap2-bin" >&2; exit 1; }
ipxe_dir=${IPXE_DIR:-/usr/lib/ipxe}
certs=${CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
for f in "$ipxe_dir"/undionly.kpxe "$ipxe_dir"/ipxe.efi "$ipxe_dir"/snponly.efi "$certs"; do
	[ -r "$f" ] || { echo "image: $f missing: apt-get install ipxe ca-certificates" >&2; exit 1; }
done
# The binary's own version (make build stamps it), so the tag says what it holds.
version=$("$bin" version 2>/dev/null | awk '{print $2}')
version=${version:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
uid=65532 # the "nonroot" user of distroless images, a convention Kubernetes policies expect

buildah=(buildah --storage-driver "${STORAGE_DRIVER:-vfs}")

# The root file system is staged in a folder and copied in one layer.
stage=$(mktemp -d)
chmod 0755 "$stage" # it becomes /, which mktemp made 0700
# buildah copy makes root own what it copies unless told otherwise, so the
# state directory, owned by the user, is copied on its own.
state=$(mktemp -d)
ctr=
cleanup() {
	rm -rf "$stage" "$state"
	if [ -n "$ctr" ]; then "${buildah[@]}" rm "$ctr" >/dev/null; fi
}
trap cleanup EXIT

install -D -m 0755 "$bin" "$stage/usr/bin/tinderbox"
setcap cap_net_bind_service=+ep "$stage/usr/bin/tinderbox" # buildah copy keeps it (an xattr in the layer)
# ipxe.efi is a symlink to /boot/ipxe.efi in Debian's package: copy the file.
install -d "$stage/usr/lib/ipxe"
for f in undionly.kpxe ipxe.efi snponly.efi; do
	install -m 0644 "$(readlink -f "$ipxe_dir/$f")" "$stage/usr/lib/ipxe/$f"
done
install -D -m 0644 "$certs" "$stage/etc/ssl/certs/ca-certificates.crt"
install -d "$stage/etc/tinderbox/profiles" "$stage/tmp"
chmod 1777 "$stage/tmp"
install -d "$stage/usr/share/doc/tinderbox/examples"
cp -r profiles "$stage/usr/share/doc/tinderbox/examples/profiles"
install -m 0644 LICENSE "$stage/usr/share/doc/tinderbox/copyright"
printf 'root:x:0:0:root:/root:/sbin/nologin\ntinderbox:x:%d:%d:tinderbox:/var/lib/tinderbox:/sbin/nologin\n' $uid $uid >"$stage/etc/passwd"
printf 'root:x:0:\ntinderbox:x:%d:\n' $uid >"$stage/etc/group"
install -d -m 0755 "$stage/var/lib"

ctr=$("${buildah[@]}" from scratch)
"${buildah[@]}" copy --quiet "$ctr" "$stage" / >/dev/null
"${buildah[@]}" copy --quiet --chown $uid:$uid "$ctr" "$state" /var/lib/tinderbox >/dev/null
"${buildah[@]}" config \
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
	--label org.opencontainers.image.licenses=Apache-2.0 \
	--label "org.opencontainers.image.version=$version" \
	"$ctr"
"${buildah[@]}" commit --quiet --format oci --rm "$ctr" "tinderbox:$version" >/dev/null
ctr=
"${buildah[@]}" tag "tinderbox:$version" tinderbox:latest
out=bin/tinderbox-image.tar
rm -f "$out"
"${buildah[@]}" push --quiet "tinderbox:$version" "docker-archive:$out:localhost/tinderbox:latest" >&2
echo "$out"
