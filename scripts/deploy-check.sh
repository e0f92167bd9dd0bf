#!/usr/bin/env bash
# Smoke tests for the ways users run tinderbox (make deploy-check, as root):
#
#   package  builds the .deb, installs it with apt-get (which pulls in ipxe)
#            into a scratch Debian bookworm root made by debootstrap (kept in
#            DEB_ROOT_CACHE and copied per run), and checks: tinderbox
#            version, the tinderbox user and its directories, validate on the
#            example profiles, systemd-analyze verify and security on the
#            installed unit, serve as the tinderbox user with only
#            CAP_NET_BIND_SERVICE in a private network namespace (ports 67,
#            69, 4011 bound, /healthz answers); then boots the root with
#            systemd-nspawn (private network) and runs the unit itself:
#            ports bound by the service's user, /healthz, a TFTP download,
#            the exposure of the running unit, a clean stop; then purge.
#   image    builds the OCI image with buildah and checks, on a container
#            made from the exported archive: tinderbox version,
#            validate on the example profiles, serve as user 65532 in a
#            private network namespace (ports bound, /healthz answers).
#   containerfile
#            builds Containerfile with buildah bud (on locally made stand-ins
#            for its two base images: no registry is reachable here) and
#            serves the result as user 65532 in a private network namespace.
#   all      all three (the default).
#
# Needs: root, debootstrap, buildah, libcap2-bin, systemd (for
# systemd-analyze), systemd-container (systemd-nspawn), curl, iproute2, and
# Debian's archive for apt-get. Servers
# only ever listen in network namespaces this script creates and removes.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
[ "$(id -u)" -eq 0 ] || { echo "deploy-check: needs root (chroot, network namespaces, buildah)" >&2; exit 1; }
for t in debootstrap buildah setcap systemd-analyze systemd-nspawn curl ip ss; do
	command -v "$t" >/dev/null || {
		echo "deploy-check: $t missing: apt-get install debootstrap buildah libcap2-bin systemd systemd-container curl iproute2" >&2
		exit 1
	}
done
[ -x bin/tinderbox ] || { echo "deploy-check: bin/tinderbox missing: run make build first" >&2; exit 1; }

# The worst systemd-analyze security exposure accepted ("OK" is below 4.0;
# the unit scores 1.6).
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
DEB_ROOT_CACHE=${DEB_ROOT_CACHE:-/var/tmp/tinderbox-deb-root/bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

cleanups=()
cleanup() {
	local i
	for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do eval "${cleanups[i]}" || true; done
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
fail() { echo "deploy-check: FAIL: $*" >&2; exit 1; }

# netns makes a network namespace with only lo, up; removed on exit.
netns() {
	local ns=$1
	ip netns add "$ns"
	cleanups+=("ip netns del $ns")
	ip -n "$ns" link set lo up
}

# wait_healthz waits up to 10 s for /healthz in namespace ns.
wait_healthz() {
	local ns=$1 i
	for i in $(seq 50); do
		if ip netns exec "$ns" curl -fsS --max-time 1 http://127.0.0.1:8080/healthz >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	return 1
}

# check_ports fails unless ns has tinderbox's UDP ports 67, 69, 4011 bound
# by a process of uid.
check_ports() {
	local ns=$1 uid=$2 p
	for p in 67 69 4011; do
		ip netns exec "$ns" ss -Hlunpe "sport = :$p" 2>/dev/null | grep -q "uid:$uid " ||
			fail "port $p not bound by uid $uid in $ns: $(ip netns exec "$ns" ss -Hlunpe 2>/dev/null)"
	done
	echo "ports 67, 69, 4011 bound by uid $uid; /healthz ok"
}

check_package() {
	step "package: build"
	local deb
	deb=$(scripts/package.sh)
	echo "$deb: $(du -h "$deb" | cut -f1)"

	step "package: scratch Debian root"
	if [ ! -x "$DEB_ROOT_CACHE/usr/bin/apt-get" ]; then
		rm -rf "$DEB_ROOT_CACHE"
		mkdir -p "$(dirname "$DEB_ROOT_CACHE")"
		# systemd only for systemd-analyze verify against the installed unit.
		debootstrap --variant=minbase --include=systemd bookworm "$DEB_ROOT_CACHE" "$MIRROR" >/dev/null
	fi
	local root
	root=$(mktemp -d /var/tmp/tinderbox-deb-check.XXXXXX)
	cleanups+=("rm -rf $root")
	cp -a "$DEB_ROOT_CACHE/." "$root/"
	cp /etc/resolv.conf "$root/etc/resolv.conf"
	cp "$deb" "$root/tmp/"
	local in=(chroot "$root")

	step "package: apt-get install $(basename "$deb")"
	"${in[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${in[@]}" apt-get install -y -qq --no-install-recommends "/tmp/$(basename "$deb")" |
		grep -v '^\(Selecting\|Preparing\|Unpacking\|(Reading\)' || true
	"${in[@]}" dpkg -s ipxe >/dev/null || fail "ipxe not installed as a dependency"
	"${in[@]}" tinderbox version
	"${in[@]}" getent passwd tinderbox | grep -q ':/var/lib/tinderbox:/usr/sbin/nologin$' || fail "tinderbox user: $("${in[@]}" getent passwd tinderbox)"
	[ "$("${in[@]}" stat -c %U:%a /var/lib/tinderbox)" = tinderbox:750 ] || fail "/var/lib/tinderbox: $("${in[@]}" stat -c %U:%a /var/lib/tinderbox)"
	[ "$("${in[@]}" stat -c %U /var/cache/tinderbox)" = tinderbox ] || fail "/var/cache/tinderbox not owned by tinderbox"
	[ "$("${in[@]}" stat -c %G:%a /etc/tinderbox/profiles)" = tinderbox:750 ] || fail "/etc/tinderbox/profiles: $("${in[@]}" stat -c %G:%a /etc/tinderbox/profiles)"
	grep -qx /etc/tinderbox/tinderbox.yaml "$root/var/lib/dpkg/info/tinderbox.conffiles" || fail "tinderbox.yaml is not a conffile"
	[ -s "$root/usr/share/man/man1/tinderbox.1.gz" ] && [ -s "$root/usr/share/man/man1/tinderbox-serve.1.gz" ] ||
		fail "man pages not installed: $(ls "$root/usr/share/man/man1" 2>&1 | head -3)"

	step "package: validate the example profiles as the tinderbox user"
	cp -r "$root/usr/share/doc/tinderbox/examples/profiles/." "$root/etc/tinderbox/profiles/"
	# As the unit runs it: the user, CAP_NET_BIND_SERVICE alone, no_new_privs.
	# shellcheck disable=SC2054 # the commas are setpriv's capability lists
	local as_user=(setpriv --reuid=tinderbox --regid=tinderbox --init-groups --no-new-privs
		--inh-caps=-all,+net_bind_service --ambient-caps=+net_bind_service --bounding-set=-all,+net_bind_service)
	"${in[@]}" "${as_user[@]}" tinderbox validate

	step "package: the installed unit"
	"${in[@]}" systemd-analyze verify /usr/lib/systemd/system/tinderbox.service
	local sec exposure
	sec=$("${in[@]}" systemd-analyze security --offline=true /usr/lib/systemd/system/tinderbox.service)
	echo "$sec" | tail -1
	exposure=$(echo "$sec" | tail -1 | grep -oE '[0-9]+\.[0-9]+' | head -1)
	awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }' || fail "exposure $exposure above $MAX_EXPOSURE"

	step "package: serve as the tinderbox user with CAP_NET_BIND_SERVICE only"
	local ns=tbx-deb-$$
	netns "$ns"
	ip netns exec "$ns" "${in[@]}" "${as_user[@]}" tinderbox serve --config /etc/tinderbox/tinderbox.yaml \
		--dhcp-interface lo >"$root/tmp/serve.log" 2>&1 &
	local pid=$!
	cleanups+=("kill $pid 2>/dev/null; wait $pid 2>/dev/null")
	wait_healthz "$ns" || fail "no /healthz: $(cat "$root/tmp/serve.log")"
	check_ports "$ns" "$("${in[@]}" id -u tinderbox)"
	kill -TERM "$pid"
	wait "$pid" || fail "serve did not stop cleanly on SIGTERM: $(tail -3 "$root/tmp/serve.log")"
	grep -q "tinderbox stopped" "$root/tmp/serve.log" || fail "no clean shutdown in the log"

	step "package: the unit under systemd (systemd-nspawn boots the scratch root)"
	# What an admin sets for a host with one LAN; here the container's lo.
	printf 'TINDERBOX_ADVERTISE=127.0.0.1\nTINDERBOX_DHCP_INTERFACE=lo\n' >"$root/etc/default/tinderbox"
	systemd-nspawn -q -D "$root" --private-network --register=no --keep-unit --boot >"$root/tmp/boot.log" 2>&1 &
	local nspawn=$! init=
	cleanups+=("kill $nspawn 2>/dev/null; wait $nspawn 2>/dev/null")
	for _ in $(seq 50); do
		init=$(pgrep -P "$nspawn" -x systemd || true)
		[ -n "$init" ] && break
		sleep 0.2
	done
	[ -n "$init" ] || fail "the scratch root did not boot: $(tail -5 "$root/tmp/boot.log")"
	local sys=(nsenter -t "$init" -a) net=(nsenter -t "$init" -n)
	timeout 60 "${sys[@]}" systemctl is-system-running --wait >/dev/null || true
	"${net[@]}" ip link set lo up
	"${sys[@]}" systemctl start tinderbox
	ns_healthz() {
		local i
		for i in $(seq 50); do
			"${net[@]}" curl -fsS --max-time 1 http://127.0.0.1:8080/healthz >/dev/null 2>&1 && return 0
			sleep 0.2
		done
		return 1
	}
	ns_healthz || fail "the service does not answer /healthz: $("${sys[@]}" journalctl -u tinderbox --no-pager | tail -5)"
	local p uid
	uid=$("${in[@]}" id -u tinderbox)
	for p in 67 69 4011; do
		"${net[@]}" ss -Hlunpe "sport = :$p" 2>/dev/null | grep -q "uid:$uid .*tinderbox.service" ||
			fail "port $p not bound by the service as uid $uid: $("${net[@]}" ss -Hlunpe 2>/dev/null)"
	done
	"${net[@]}" curl -fsS --max-time 5 -o "$root/tmp/undionly.kpxe" tftp://127.0.0.1/undionly.kpxe ||
		fail "TFTP from the service"
	cmp -s "$root/tmp/undionly.kpxe" "$root/usr/lib/ipxe/undionly.kpxe" || fail "TFTP sent a different undionly.kpxe"
	echo "service running as uid $uid: ports 67, 69, 4011 bound, /healthz ok, undionly.kpxe over TFTP"
	"${sys[@]}" systemd-analyze security tinderbox.service --no-pager | tail -1
	"${sys[@]}" systemctl stop tinderbox
	local result
	result=$("${sys[@]}" systemctl show -p Result -p ExecMainStatus tinderbox | tr '\n' ' ')
	[ "$result" = "Result=success ExecMainStatus=0 " ] || fail "stop: $result"
	echo "stopped cleanly on SIGTERM"
	"${sys[@]}" systemctl poweroff >/dev/null 2>&1 || true
	wait "$nspawn" 2>/dev/null || true

	step "package: purge"
	"${in[@]}" dpkg --purge tinderbox >/dev/null
	for p in /usr/bin/tinderbox /var/lib/tinderbox /var/cache/tinderbox /usr/lib/systemd/system/tinderbox.service; do
		[ ! -e "$root$p" ] || fail "$p left after purge"
	done
	echo "purged: binary, unit, state and cache removed"
}

check_image() {
	step "image: build"
	local archive
	archive=$(scripts/image.sh)
	local b=(buildah --storage-driver "${STORAGE_DRIVER:-vfs}")
	echo "$archive: $(du -h "$archive" | cut -f1); $("${b[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' tinderbox:latest)"

	# From the archive users import (k3s ctr images import), not from
	# buildah's storage: the file capability must survive the export.
	local ctr
	ctr=$("${b[@]}" from --quiet "docker-archive:$archive")
	cleanups+=("${b[*]} rm $ctr >/dev/null")
	local run=("${b[@]}" run --isolation chroot --env TINDERBOX_PROFILES_DIR=/usr/share/doc/tinderbox/examples/profiles "$ctr" --)

	step "image: tinderbox version, validate"
	"${run[@]}" /usr/bin/tinderbox version
	"${run[@]}" /usr/bin/tinderbox validate

	step "image: serve as user 65532 (file capability cap_net_bind_service)"
	local ns=tbx-img-$$ log
	log=$(mktemp)
	cleanups+=("rm -f $log")
	netns "$ns"
	ip netns exec "$ns" "${b[@]}" run --isolation chroot --env TINDERBOX_PROFILES_DIR=/usr/share/doc/tinderbox/examples/profiles \
		--env TINDERBOX_DHCP_INTERFACE=lo "$ctr" -- /usr/bin/tinderbox serve >"$log" 2>&1 &
	local pid=$!
	cleanups+=("kill $pid 2>/dev/null; wait $pid 2>/dev/null")
	wait_healthz "$ns" || fail "no /healthz: $(cat "$log")"
	check_ports "$ns" 65532
}

# check_containerfile builds Containerfile with buildah as docker users
# would, and runs the result. No registry is reachable here, so the two base
# images are stand-ins made locally: debian:bookworm-slim from the scratch
# Debian root, golang:1.26-bookworm from it plus this host's Go toolchain
# and CA certificates (Go modules come through the module proxy as usual).
check_containerfile() {
	local b=(buildah --storage-driver "${STORAGE_DRIVER:-vfs}") c
	step "containerfile: stand-in base images"
	[ -x "$DEB_ROOT_CACHE/usr/bin/apt-get" ] || fail "no Debian root in $DEB_ROOT_CACHE: run $0 package first"
	if ! "${b[@]}" inspect --type image docker.io/library/debian:bookworm-slim >/dev/null 2>&1; then
		c=$("${b[@]}" from scratch)
		"${b[@]}" copy --quiet "$c" "$DEB_ROOT_CACHE" / >/dev/null
		"${b[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c"
		"${b[@]}" commit --quiet --rm "$c" docker.io/library/debian:bookworm-slim >/dev/null
	fi
	if ! "${b[@]}" inspect --type image docker.io/library/golang:1.26-bookworm >/dev/null 2>&1; then
		c=$("${b[@]}" from docker.io/library/debian:bookworm-slim)
		"${b[@]}" copy --quiet "$c" "$(go env GOROOT)" /usr/local/go >/dev/null
		"${b[@]}" copy --quiet "$c" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
		"${b[@]}" config --env PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			--env GOTOOLCHAIN=local "$c"
		"${b[@]}" commit --quiet --rm "$c" docker.io/library/golang:1.26-bookworm >/dev/null
	fi

	step "containerfile: buildah bud -f Containerfile"
	local log
	log=$(mktemp)
	cleanups+=("rm -f $log")
	"${b[@]}" bud --pull=false --isolation chroot --layers=false -f Containerfile \
		--build-arg VERSION=containerfile --build-arg COMMIT="$(git rev-parse --short HEAD)" \
		-t localhost/tinderbox-containerfile . >"$log" 2>&1 || fail "buildah bud: $(tail -5 "$log")"
	c=$("${b[@]}" from --quiet localhost/tinderbox-containerfile)
	cleanups+=("${b[*]} rm $c >/dev/null")
	"${b[@]}" run --isolation chroot "$c" -- /usr/bin/tinderbox version

	step "containerfile: serve as user 65532"
	local ns=tbx-cf-$$
	netns "$ns"
	ip netns exec "$ns" "${b[@]}" run --isolation chroot --env TINDERBOX_PROFILES_DIR=/usr/share/doc/tinderbox/examples/profiles \
		--env TINDERBOX_DHCP_INTERFACE=lo "$c" -- /usr/bin/tinderbox serve >"$log" 2>&1 &
	local pid=$!
	cleanups+=("kill $pid 2>/dev/null; wait $pid 2>/dev/null")
	wait_healthz "$ns" || fail "no /healthz: $(cat "$log")"
	check_ports "$ns" 65532
}

start=$SECONDS
case "$what" in
package) check_package ;;
image) check_image ;;
containerfile) check_containerfile ;;
all)
	check_package
	check_image
	check_containerfile
	;;
*) echo "usage: $0 [package|image|containerfile|all]" >&2; exit 2 ;;
esac
printf '\ndeploy-check: %s ok in %ds\n' "$what" $((SECONDS - start))
