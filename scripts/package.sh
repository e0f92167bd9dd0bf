#!/usr/bin/env bash
# Builds the tinderbox .deb for each static binary given, into bin/, with
# nfpm (run as a Go module, so no Docker and nothing installed): the binary,
# the systemd unit, the commented default config, the example profiles, the
# man pages, iPXE for UEFI arm64 (scripts/ipxe-arm64.sh; the x86 builds come
# from the "ipxe" package it depends on), the DEP-5 copyright file, a Debian
# changelog and the lintian overrides (deploy/package/nfpm.yaml). The
# package's architecture is the binary's own (GOARCH in its build
# information), so `GOARCH=arm64 go build` on any host makes the arm64
# package. Prints each package's path.
#
#   [VERSION=… COMMIT=…] scripts/package.sh [BIN...]    BIN defaults to bin/tinderbox
set -euo pipefail
cd "$(dirname "$0")/.."

# nfpm is pinned: a new release may change the package it writes.
NFPM=${NFPM:-github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.41.3}
MAINTAINER="tinderbox maintainers <tinderbox@tinderbox-boot.invalid>"
[ $# -gt 0 ] || set -- bin/tinderbox

# The files every architecture's package shares, made once.
stage=bin/package
rm -rf "$stage/man" "$stage/doc"
mkdir -p "$stage/man" "$stage/doc"
# Man pages, from the commands themselves (built for this host, so a
# package for another architecture gets them too), gzipped as Debian wants.
GOARCH= go run ./cmd/tinderbox docs man "$stage/man" >&2
gzip -9n "$stage/man"/*.1
# The project's changelog is the upstream changelog.
gzip -9nc CHANGELOG.md >"$stage/doc/changelog.gz"
scripts/ipxe-arm64.sh "$stage/ipxe"

# deb_version prints the Debian version for the build described by $1 (git
# describe, as make build stamps it) at commit time $2 (Unix seconds):
#   v1.2.3               → 1.2.3-1
#   v1.2.3-rc.1          → 1.2.3~rc.1-1  (before 1.2.3)
#   v1.2.3-4-gabc1234    → 1.2.3+git20261130214700.abc1234-1  (after 1.2.3)
#   abc1234 (no tag)     → 0.0.0~git20261130214700.abc1234-1  (before any release)
# with ".dirty" after the commit (or "+dirty" after a tag) for a build from
# a modified tree. The timestamp makes successive untagged builds sort in
# commit order; "-1" is the Debian revision (the changelog in the package
# is Debian's, not the project's).
deb_version() {
	local desc=$1 when=$2 dirty= ts tag= pre= commit=
	ts=$(date -u -d "@$when" +%Y%m%d%H%M%S)
	if [[ $desc == *-dirty ]]; then
		dirty=dirty
		desc=${desc%-dirty}
	fi
	if [[ $desc =~ ^(.*)-[0-9]+-g([0-9a-f]+)$ ]]; then
		desc=${BASH_REMATCH[1]} commit=${BASH_REMATCH[2]}
	elif [[ $desc =~ ^[0-9a-f]{7,}$ ]]; then
		commit=$desc desc=v0.0.0
	fi
	if [[ $desc =~ ^v([0-9]+(\.[0-9]+)*)(-([0-9A-Za-z.]+))?$ ]]; then
		tag=${BASH_REMATCH[1]} pre=${BASH_REMATCH[4]}
	else
		echo "package: cannot make a Debian version of build $1" >&2
		return 1
	fi
	local v=$tag${pre:+~$pre}
	if [ -n "$commit" ]; then
		# Untagged builds sort before the first release, later ones after
		# their tag.
		if [ "$desc" = v0.0.0 ] && [[ $1 != v* ]]; then v+="~git$ts.$commit"; else v+="+git$ts.$commit"; fi
		v+=${dirty:+.$dirty}
	else
		v+=${dirty:++$dirty}
	fi
	echo "$v-1"
}

for bin in "$@"; do
	[ -x "$bin" ] || { echo "package: $bin missing: run make build first" >&2; exit 1; }
	# The binary's build information says what it is: its GOARCH, and
	# that it is static.
	info=$(go version -m "$bin")
	arch=$(awk '$1 == "build" && $2 ~ /^GOARCH=/ {sub(/GOARCH=/, "", $2); print $2}' <<<"$info")
	grep -q 'CGO_ENABLED=0' <<<"$info" ||
		{ echo "package: $bin is not a static binary (CGO_ENABLED=0): build it with make cross" >&2; exit 1; }
	# The copyright file names every Go module linked in, with its licence:
	# a new dependency must be added there.
	missing=$(awk '$1 == "dep" {print $2}' <<<"$info" | while read -r m; do
		grep -qE "^(Files:)? +$m/\*\$" deploy/package/copyright || echo "$m"
	done)
	[ -z "$missing" ] || {
		echo "package: deploy/package/copyright does not list these modules of $bin (add each under its licence):" $missing >&2
		exit 1
	}
	# Its version is the one make stamps in with -X (-trimpath keeps
	# -ldflags out of the build information): the binary's own word when
	# it runs here, else VERSION and COMMIT as make passes them, else what
	# make would stamp (git describe).
	desc=
	if [ "$arch" = "$(go env GOHOSTARCH)" ]; then
		read -r _ desc _ commit _ < <("$bin" version | tr -d '(),') || true
	fi
	if [ -z "$desc" ]; then
		desc=${VERSION:-$(git describe --tags --always --dirty)}
		commit=${COMMIT:-$(git rev-parse --short HEAD)}
	fi
	when=$(git show -s --format=%ct "$commit" 2>/dev/null || git show -s --format=%ct HEAD)
	version=$(deb_version "$desc" "$when")

	# Debian's changelog for this build, dated by its commit (so the same
	# commit makes the same package).
	mkdir -p "$stage/$arch"
	{
		printf 'tinderbox (%s) unstable; urgency=medium\n\n' "$version"
		printf '  * tinderbox %s, built from commit %s.\n' "$desc" "$commit"
		printf '    Its changes: /usr/share/doc/tinderbox/changelog.gz.\n\n'
		printf ' -- %s  %s\n' "$MAINTAINER" "$(date -u -R -d "@$when")"
	} | gzip -9n >"$stage/$arch/changelog.Debian.gz"

	out=bin/tinderbox_${version}_${arch}.deb
	rm -f "$out"
	TINDERBOX_BIN=$bin TINDERBOX_DEB_VERSION=$version TINDERBOX_DEB_ARCH=$arch \
		TINDERBOX_DEB_STAGE=$stage TINDERBOX_DEB_MAINTAINER=$MAINTAINER \
		go run "$NFPM" package --config deploy/package/nfpm.yaml --packager deb --target "$out" >&2
	echo "$out"
done
