#!/usr/bin/env bash
# Installs what a tinderbox task needs on Debian/Ubuntu: `scripts/deps.sh run`
# (serve the example profiles), `test` (unit tests), `e2e` (real firmware in
# QEMU), `deploy` (package and image checks), `ci` (everything .ci/run uses). Debian packages come through apt-get
# (with sudo when not root); Go modules come through the Go module proxy when
# the build asks for them.
set -euo pipefail

task=${1:-test}
case "$task" in
run) pkgs=(ipxe ca-certificates) ;;
test) pkgs=(ca-certificates curl tftp-hpa chromium) ;;
e2e) pkgs=(ca-certificates curl chromium xz-utils busybox-static ipxe ipxe-qemu qemu-system-x86 ovmf dnsmasq-base tcpdump iproute2
	grub-pc-bin grub-efi-amd64-bin xorriso mtools) ;;
deploy) pkgs=(ca-certificates curl iproute2 systemd debootstrap buildah libcap2-bin systemd-container) ;;
ci) pkgs=(ca-certificates curl tftp-hpa chromium git make xz-utils busybox-static ipxe ipxe-qemu qemu-system-x86 ovmf dnsmasq-base tcpdump iproute2
	grub-pc-bin grub-efi-amd64-bin xorriso mtools
	systemd debootstrap buildah libcap2-bin systemd-container) ;;
*) echo "usage: $0 run|test|e2e|deploy|ci" >&2; exit 2 ;;
esac

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# Go: any toolchain from 1.21 on fetches the version go.mod asks for by itself.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH=$PATH:/usr/local/go/bin
fi
command -v go >/dev/null 2>&1 || missing+=(golang-go)

if [ ${#missing[@]} -gt 0 ]; then
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "deps: missing ${missing[*]}, and this is not a Debian/Ubuntu system: install them by hand" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}" >&2
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# go_minor prints the minor version of the go on PATH (1.19 → 19).
go_minor() {
	local v
	v=$(go env GOVERSION 2>/dev/null || go version | awk '{print $3}')
	echo "$v" | sed -E 's/^go1\.([0-9]+).*/\1/'
}

# Debian 12's own Go is 1.19, too old to fetch the toolchain go.mod names;
# bookworm-backports has a newer golang-go. Its source is added from the
# mirror the system already uses (the URIs of its bookworm entry).
backports_go() {
	grep -q '^VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null || return 1
	command -v apt-get >/dev/null 2>&1 || return 1
	local uri list=/etc/apt/sources.list.d/tinderbox-bookworm-backports.sources
	uri=$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
	[ -n "$uri" ] || uri=$(awk '/^deb / && / bookworm / && !/security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
	[ -n "$uri" ] || return 1
	echo "deps: Debian 12's Go is too old; installing golang-go from bookworm-backports ($uri)" >&2
	printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" |
		"${sudo[@]}" tee "$list" >/dev/null
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends -t bookworm-backports golang-go >/dev/null
	hash -r
}

if [ "$(go_minor)" -lt 21 ] 2>/dev/null; then
	backports_go || true
fi
if [ "$(go_minor)" -lt 21 ] 2>/dev/null; then
	echo "deps: $(go version) is too old: tinderbox needs Go 1.26 (any Go from 1.21 fetches it by itself)." >&2
	echo "deps: install a newer Go, e.g. from your distribution's backports." >&2
	exit 1
fi
