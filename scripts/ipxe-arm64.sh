#!/usr/bin/env bash
# Puts iPXE for UEFI arm64 (ipxe-arm64.efi) into DIR, for the .deb and the
# OCI image, with the Debian package's copyright file (ipxe-arm64.copyright)
# and the package's version (ipxe-arm64.version). Debian 12's "ipxe" package
# has no arm64 build; Debian 13 ("trixie") builds one in the same
# architecture-independent package (/usr/lib/ipxe/ipxe-arm64.efi), so the
# file is taken, unchanged, from trixie's "ipxe" .deb:
#
#   1. IPXE_DEB=path/to/ipxe_*.deb, when set (an offline build);
#   2. this host's installed "ipxe" package, when it ships the file
#      (Debian 13 and later);
#   3. else apt-get download, in a private apt state directory (the
#      system's sources and state are not touched), from the Debian
#      mirror this host's apt already uses, suite trixie, verified by apt
#      against the Release file signed with the keys in
#      debian-archive-keyring.
#
# The result is cached: a DIR that already holds all three files is kept.
#
#   scripts/ipxe-arm64.sh DIR
set -euo pipefail

dir=${1:?usage: $0 DIR}
file=ipxe-arm64.efi
if [ -s "$dir/$file" ] && [ -s "$dir/ipxe-arm64.copyright" ] && [ -s "$dir/ipxe-arm64.version" ]; then
	exit 0
fi
mkdir -p "$dir"

# from_tree copies the three files out of an unpacked (or installed) ipxe
# package rooted at $1, whose version is $2.
from_tree() {
	local root=$1 version=$2
	[ -s "$root/usr/lib/ipxe/$file" ] || return 1
	install -m 0644 "$root/usr/lib/ipxe/$file" "$dir/$file"
	install -m 0644 "$root/usr/share/doc/ipxe/copyright" "$dir/ipxe-arm64.copyright"
	echo "$version" >"$dir/ipxe-arm64.version"
	echo "ipxe-arm64: $file from Debian's ipxe $version" >&2
}

# from_deb unpacks the .deb $1 and copies the files out of it.
from_deb() {
	local deb=$1 tmp version
	tmp=$(mktemp -d)
	dpkg-deb -x "$deb" "$tmp"
	version=$(dpkg-deb -f "$deb" Version)
	from_tree "$tmp" "$version" || { rm -rf "$tmp"; echo "ipxe-arm64: $deb has no /usr/lib/ipxe/$file" >&2; return 1; }
	rm -rf "$tmp"
}

if [ -n "${IPXE_DEB:-}" ]; then
	from_deb "$IPXE_DEB"
	exit
fi
if [ -s "/usr/lib/ipxe/$file" ] && dpkg-query -S "/usr/lib/ipxe/$file" >/dev/null 2>&1; then
	from_tree / "$(dpkg-query -W -f='${Version}' ipxe)"
	exit
fi

command -v apt-get >/dev/null || {
	echo "ipxe-arm64: no apt-get: set IPXE_DEB to Debian 13's ipxe_*_all.deb (it holds /usr/lib/ipxe/$file)" >&2
	exit 1
}
# The mirror this host's apt uses for Debian (deb822 or one-line sources).
uri=$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$uri" ] || uri=$(awk '/^deb / && !/security/ && /debian/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$uri" ] || {
	echo "ipxe-arm64: no Debian mirror in /etc/apt/sources.list*: set IPXE_DEB to Debian 13's ipxe_*_all.deb" >&2
	exit 1
}

state=${IPXE_APT_DIR:-/var/tmp/tinderbox-apt-trixie}
mkdir -p "$state/parts" "$state/lists/partial" "$state/cache/archives/partial" "$state/debs"
printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
	>"$state/parts/trixie.sources"
apt=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$state/parts"
	-o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
	-o Dir::Etc::Preferences=/dev/null -o "Dir::Etc::PreferencesParts=$state/parts"
	# Only the package lists: no translations, Contents or AppStream data.
	-o Acquire::Languages=none -o Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false
	-o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
	-o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
	-o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
	-o APT::Architecture=amd64 -o APT::Architectures=amd64)
echo "ipxe-arm64: fetching Debian 13's ipxe package from $uri" >&2
apt-get "${apt[@]}" update -qq >&2
(cd "$state/debs" && rm -f ipxe_*.deb && apt-get "${apt[@]}" download -qq ipxe 2>&1 | grep -v "unsandboxed" >&2 || true)
deb=$(ls "$state/debs"/ipxe_*_all.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { echo "ipxe-arm64: apt-get download ipxe (trixie) from $uri failed" >&2; exit 1; }
from_deb "$deb"
