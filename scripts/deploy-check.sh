#!/usr/bin/env bash
# Smoke tests for the ways users run tinderbox (make deploy-check, as root):
#
#   package  builds the .deb for amd64 and arm64 (from make cross), runs
#            lintian on both, runs the arm64 package's binary (under
#            qemu-user, see below), installs the amd64 one with apt-get
#            (which pulls in ipxe) into a scratch Debian bookworm root made
#            by debootstrap (kept in DEB_ROOT_CACHE and copied per run), and
#            checks: tinderbox version, the tinderbox user and its
#            directories, the iPXE directory (arm64 build and links to
#            Debian's), validate on the example profiles, systemd-analyze
#            verify and security on the installed unit, serve as the
#            tinderbox user with only CAP_NET_BIND_SERVICE in a private
#            network namespace (ports 67, 69, 4011 bound, /healthz answers);
#            then boots the root with systemd-nspawn (private network) and
#            runs the unit itself: ports bound by the service's user,
#            /healthz, TFTP downloads of the x86 and arm64 iPXE builds, the
#            exposure of the running unit, a restart on reinstall
#            (upgrade), a stop and mask on remove; then purge.
#   image    builds the multi-arch OCI image with buildah and checks the
#            archive: one manifest list holding linux/amd64 and
#            linux/arm64; the arm64 image runs tinderbox version (under
#            qemu-user); on the amd64 container: tinderbox version,
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
# Debian's archive for apt-get; lintian and qemu-user-static are installed
# with apt-get when missing. arm64 binaries run through qemu-user: as the
# kernel's binfmt_misc handler for arm64 ELF files (qemu-user-static's
# entry, registered for the run and unregistered after when it was not
# already), so the arm64 image runs as a container; where binfmt_misc
# cannot be used, the arm64 binary taken out of the image runs under
# qemu-aarch64-static directly (the script says which). Servers only ever
# listen in network namespaces this script creates and removes.
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
for a in amd64 arm64; do
	[ -x bin/linux-$a/tinderbox ] || { echo "deploy-check: bin/linux-$a/tinderbox missing: run make cross first" >&2; exit 1; }
done
# lintian (the package check) and qemu-user-static (arm64 binaries), from
# the system's own apt sources.
missing=()
command -v lintian >/dev/null || missing+=(lintian)
[ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
if [ ${#missing[@]} -gt 0 ]; then
	echo "deploy-check: installing ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The worst systemd-analyze security exposure accepted ("OK" is below 4.0;
# the unit scores 1.6).
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
DEB_ROOT_CACHE=${DEB_ROOT_CACHE:-/var/tmp/tinderbox-deb-root/bookworm}
# The Debian mirror this host's apt uses (deb822 or one-line sources).
MIRROR=${MIRROR:-$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-$(awk '/^deb / && !/security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)}

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

# arm64_binfmt makes the kernel run arm64 ELF files with qemu-user for the
# rest of the run, registering qemu-user-static's own binfmt_misc entry
# (its flag F has the kernel open the interpreter once, so it works inside
# a container's root too); it returns non-zero where binfmt_misc cannot be
# used (a container without it).
arm64_binfmt_ok=
arm64_binfmt() {
	if [ -z "$arm64_binfmt_ok" ]; then
		arm64_binfmt_ok=no
		local bm=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
		if [ ! -e $bm/register ] && mount -t binfmt_misc binfmt_misc $bm 2>/dev/null; then
			cleanups+=("umount $bm")
		fi
		if [ "$(head -1 $bm/qemu-aarch64 2>/dev/null)" = enabled ]; then
			arm64_binfmt_ok=yes
		elif [ -e $bm/register ] && [ ! -e $bm/qemu-aarch64 ] && [ -r $conf ] &&
			grep -v '^#' $conf | head -1 | tr -d '\n' >$bm/register 2>/dev/null; then
			cleanups+=("echo -1 >$bm/qemu-aarch64")
			arm64_binfmt_ok=yes
		fi
	fi
	[ "$arm64_binfmt_ok" = yes ]
}

# run_arm64 runs the arm64 program file $1 with arguments: through binfmt
# where it works, else under qemu-aarch64-static.
run_arm64() {
	if arm64_binfmt; then "$@"; else /usr/bin/qemu-aarch64-static "$@"; fi
}

check_package() {
	step "package: build (amd64, arm64)"
	local debs deb deb_arm64 made
	made=$(scripts/package.sh bin/linux-amd64/tinderbox bin/linux-arm64/tinderbox) || fail "package.sh failed (its message is above)"
	mapfile -t debs <<<"$made"
	deb=${debs[0]} deb_arm64=${debs[1]}
	[[ $deb == *_amd64.deb && $deb_arm64 == *_arm64.deb ]] || fail "package.sh made ${debs[*]}"
	for d in "${debs[@]}"; do echo "$d: $(du -h "$d" | cut -f1)"; done

	step "package: lintian"
	# Every tag of level info and above fails the check; pedantic ones are
	# shown. The overrides the package ships are in
	# deploy/package/lintian-overrides, each with its reason. Not as root:
	# lintian unpacks what it is given.
	setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp TMPDIR=/tmp \
		lintian --pedantic --fail-on error,warning,info "${debs[@]}" || fail "lintian"
	echo "lintian: no errors, warnings or infos on $(basename "$deb") and $(basename "$deb_arm64")"

	step "package: the arm64 package's binary (qemu-user)"
	arm64_binfmt || true # here: the command substitution below is a subshell
	local tmpbin
	tmpbin=$(mktemp)
	cleanups+=("rm -f $tmpbin")
	dpkg-deb --fsys-tarfile "$deb_arm64" | tar -xO ./usr/bin/tinderbox >"$tmpbin"
	chmod 0755 "$tmpbin"
	local out
	out=$(run_arm64 "$tmpbin" version)
	if [ "$arm64_binfmt_ok" = yes ]; then
		echo "$out (ran through binfmt_misc)"
	else
		echo "$out (binfmt_misc unavailable here: ran under qemu-aarch64-static)"
	fi
	[[ $out == *" linux/arm64)" ]] || fail "the arm64 package's binary is not linux/arm64"

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
	# ipxe.dir of the packaged config: the arm64 build, and Debian's x86
	# builds through links that must resolve.
	local f
	for f in ipxe-arm64.efi undionly.kpxe snponly.efi ipxe.efi; do
		"${in[@]}" test -s "/usr/lib/tinderbox/ipxe/$f" || fail "/usr/lib/tinderbox/ipxe/$f missing or dangling"
	done
	grep -q '^  dir: /usr/lib/tinderbox/ipxe$' "$root/etc/tinderbox/tinderbox.yaml" || fail "the config's ipxe.dir is not /usr/lib/tinderbox/ipxe"
	echo "ipxe.dir /usr/lib/tinderbox/ipxe: ipxe-arm64.efi ($(cat "$root/usr/share/doc/tinderbox/ipxe-arm64.version")), undionly.kpxe, snponly.efi, ipxe.efi"

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
	# systemctl reaches the container's systemd only once it listens on
	# /run/systemd/private; asked earlier it fails at once ("Failed to
	# connect to bus"). Then wait for the boot to finish.
	local booted=
	for _ in $(seq 300); do
		booted=$(timeout 60 "${sys[@]}" systemctl is-system-running --wait 2>/dev/null || true)
		[ -n "$booted" ] && break
		sleep 0.1
	done
	[ -n "$booted" ] || fail "no systemd in the booted root: $(tail -5 "$root/tmp/boot.log")"
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
	for f in undionly.kpxe ipxe-arm64.efi; do
		"${net[@]}" curl -fsS --max-time 5 -o "$root/tmp/$f" "tftp://127.0.0.1/$f" || fail "TFTP $f from the service"
		cmp -s "$root/tmp/$f" "$("${in[@]}" readlink -f "/usr/lib/tinderbox/ipxe/$f" | sed "s|^|$root|")" ||
			fail "TFTP sent a different $f"
	done
	echo "service running as uid $uid: ports 67, 69, 4011 bound, /healthz ok, undionly.kpxe and ipxe-arm64.efi over TFTP"
	"${sys[@]}" systemd-analyze security tinderbox.service --no-pager | tail -1

	# An upgrade (here a reinstall of the same package) restarts the
	# running service through postinst (deb-systemd-invoke try-restart).
	# The booted container has its own /tmp: the package goes in /var/tmp.
	local before after
	cp "$deb" "$root/var/tmp/"
	before=$("${sys[@]}" systemctl show -p MainPID --value tinderbox)
	DEBIAN_FRONTEND=noninteractive "${sys[@]}" dpkg -i "/var/tmp/$(basename "$deb")" >"$root/var/tmp/reinstall.log" 2>&1 ||
		fail "reinstall in the running system: $(tail -5 "$root/var/tmp/reinstall.log")"
	after=$("${sys[@]}" systemctl show -p MainPID --value tinderbox)
	[ "$("${sys[@]}" systemctl is-active tinderbox)" = active ] && [ "$after" != "$before" ] && [ "$after" != 0 ] ||
		fail "reinstall did not restart the service (main PID $before, then $after)"
	ns_healthz || fail "no /healthz after the restart"
	echo "reinstall (upgrade) restarted the running service: main PID $before, then $after"

	# remove: prerm stops the service (deb-systemd-invoke stop) and postrm
	# masks the unit while its config is kept.
	"${sys[@]}" systemctl enable tinderbox >/dev/null 2>&1
	"${sys[@]}" dpkg --remove tinderbox >/dev/null
	local state
	state=$("${sys[@]}" systemctl show -p Result -p ExecMainStatus -p ActiveState tinderbox | tr '\n' ' ')
	[ "$state" = "Result=success ExecMainStatus=0 ActiveState=inactive " ] || fail "remove: $state"
	[ "$("${sys[@]}" systemctl is-enabled tinderbox 2>/dev/null)" = masked ] || fail "remove did not mask the unit"
	echo "remove: stopped cleanly on SIGTERM, unit masked"
	"${sys[@]}" systemctl poweroff >/dev/null 2>&1 || true
	wait "$nspawn" 2>/dev/null || true

	step "package: purge"
	"${in[@]}" dpkg --purge tinderbox >/dev/null
	for p in /usr/bin/tinderbox /var/lib/tinderbox /var/cache/tinderbox /usr/lib/systemd/system/tinderbox.service \
		/etc/systemd/system/tinderbox.service /etc/systemd/system/multi-user.target.wants/tinderbox.service; do
		[ ! -e "$root$p" ] && [ ! -L "$root$p" ] || fail "$p left after purge"
	done
	echo "purged: binary, unit, its mask and enablement, state and cache removed"
}

check_image() {
	step "image: build (amd64, arm64)"
	local archive
	archive=$(scripts/image.sh bin/linux-amd64/tinderbox bin/linux-arm64/tinderbox)
	local b=(buildah --storage-driver "${STORAGE_DRIVER:-vfs}")
	echo "$archive: $(du -h "$archive" | cut -f1)"

	step "image: one manifest list, linux/amd64 and linux/arm64"
	# The archive's index names one manifest list (an OCI image index)
	# whose manifests are one image per architecture.
	local index list a
	index=$(tar -xOf "$archive" index.json)
	[ "$(grep -o '"mediaType":"[^"]*"' <<<"$index")" = '"mediaType":"application/vnd.oci.image.index.v1+json"' ] ||
		fail "the archive's index.json does not name one manifest list: $index"
	grep -q '"org.opencontainers.image.ref.name":"localhost/tinderbox:latest"' <<<"$index" || fail "the archive is not named localhost/tinderbox:latest: $index"
	list=$(tar -xOf "$archive" "blobs/sha256/$(grep -o '"digest":"sha256:[0-9a-f]*"' <<<"$index" | cut -d: -f3 | tr -d '"')")
	[ "$(grep -o '"architecture":"[a-z0-9]*","os":"linux"' <<<"$list" | sort | tr '\n' ' ')" = '"architecture":"amd64","os":"linux" "architecture":"arm64","os":"linux" ' ] ||
		fail "the manifest list is not linux/amd64 + linux/arm64: $list"
	echo "manifest list localhost/tinderbox:latest: linux/amd64, linux/arm64"

	# From the archive users import (k3s ctr images import), not from
	# buildah's storage: the file capability must survive the export.
	local ctr ctr_arm64
	for a in amd64 arm64; do
		local c
		c=$("${b[@]}" from --quiet --arch $a --os linux "oci-archive:$archive")
		cleanups+=("${b[*]} rm $c >/dev/null")
		[ "$("${b[@]}" inspect --format '{{.OCIv1.Architecture}}' "$c")" = $a ] || fail "the $a pick of the list is not $a"
		if [ $a = amd64 ]; then ctr=$c; else ctr_arm64=$c; fi
	done

	step "image: arm64 tinderbox version (qemu-user)"
	arm64_binfmt || true
	local out how
	if [ "$arm64_binfmt_ok" = yes ]; then
		out=$("${b[@]}" run --isolation chroot "$ctr_arm64" -- /usr/bin/tinderbox version)
		how="the arm64 container ran through binfmt_misc"
	else
		local mnt
		mnt=$("${b[@]}" mount "$ctr_arm64")
		cleanups+=("${b[*]} umount $ctr_arm64 >/dev/null")
		out=$(/usr/bin/qemu-aarch64-static "$mnt/usr/bin/tinderbox" version)
		how="binfmt_misc unavailable here: the arm64 image's binary ran under qemu-aarch64-static"
	fi
	echo "$out ($how)"
	[[ $out == *" linux/arm64)" ]] || fail "the arm64 image's tinderbox is not linux/arm64"

	local run=("${b[@]}" run --isolation chroot --env TINDERBOX_PROFILES_DIR=/usr/share/doc/tinderbox/examples/profiles "$ctr" --)
	step "image: amd64 tinderbox version, validate, iPXE binaries"
	"${run[@]}" /usr/bin/tinderbox version
	"${run[@]}" /usr/bin/tinderbox validate
	local mnt_amd64 f
	mnt_amd64=$("${b[@]}" mount "$ctr")
	cleanups+=("${b[*]} umount $ctr >/dev/null")
	for f in undionly.kpxe snponly.efi ipxe.efi ipxe-arm64.efi; do
		[ -s "$mnt_amd64/usr/lib/ipxe/$f" ] && [ ! -L "$mnt_amd64/usr/lib/ipxe/$f" ] || fail "image: /usr/lib/ipxe/$f missing"
	done
	echo "/usr/lib/ipxe: undionly.kpxe, snponly.efi, ipxe.efi, ipxe-arm64.efi"

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
	# Debian 12's buildah does not set BUILDPLATFORM, which the Containerfile's
	# build stages run on. The host's Go module and build caches are lent to
	# the build stage (the stand-in's Go is the host's): it then compiles
	# what changed instead of fetching and compiling every module again.
	"${b[@]}" bud --pull=false --isolation chroot --layers=false -f Containerfile \
		--build-arg BUILDPLATFORM="linux/$(go env GOHOSTARCH)" \
		--volume "$(go env GOMODCACHE):/root/go/pkg/mod" --volume "$(go env GOCACHE):/root/.cache/go-build" \
		--build-arg VERSION=containerfile --build-arg COMMIT="$(git rev-parse --short HEAD)" \
		-t localhost/tinderbox-containerfile . >"$log" 2>&1 || fail "buildah bud: $(tail -5 "$log")"
	c=$("${b[@]}" from --quiet localhost/tinderbox-containerfile)
	cleanups+=("${b[*]} rm $c >/dev/null")
	"${b[@]}" run --isolation chroot "$c" -- /usr/bin/tinderbox version
	local mnt f
	mnt=$("${b[@]}" mount "$c")
	cleanups+=("${b[*]} umount $c >/dev/null")
	for f in undionly.kpxe snponly.efi ipxe.efi ipxe-arm64.efi; do
		[ -s "$mnt/usr/lib/ipxe/$f" ] || fail "containerfile: /usr/lib/ipxe/$f missing"
	done
	echo "/usr/lib/ipxe: undionly.kpxe, snponly.efi, ipxe.efi, ipxe-arm64.efi"

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
