#!/usr/bin/env bash
# The README's first screen on a fresh Debian 12, as a new user runs it
# (make firstscreen, as root): in a scratch Debian bookworm root made
# by debootstrap (the same cache as scripts/deploy-check.sh, DEB_ROOT_CACHE,
# copied per run), with a user who has sudo, a clone of this repository's
# HEAD in their home, and nothing else: no Go, no make.
#
#   1. The set-up line (`sudo apt-get install …`) and the block's commands
#      are read from README.md, so this check cannot drift from it.
#   2. With the network: the set-up line as written, then make run's own
#      set-up (scripts/deps.sh run: iPXE and, on Debian 12, a Go from
#      bookworm-backports; then make build, which fetches the Go toolchain
#      go.mod names and the modules) and make test's (scripts/deps.sh test).
#   3. In a network namespace of its own (no way out: everything it needs
#      must be there by now; a veth with 10.77.98.2/24 stands in
#      for the LAN): `make run` exactly as written; it must
#      answer /readyz with 200 on its boot HTTP port, then it is stopped.
# `make test` itself runs in CI as it does today (.ci/run); here its
# packages install and the block must still name it.
#
# apt-get is told yes (APT::Get::Assume-Yes), as the user would answer.
# Prints the seconds each step took. Needs root, debootstrap, git, curl,
# iproute2, and Debian's archive and the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

[ "$(id -u)" -eq 0 ] || { echo "firstscreen-check: needs root (chroot, network namespaces)" >&2; exit 1; }
for t in debootstrap git curl ip; do
	command -v "$t" >/dev/null || { echo "firstscreen-check: $t missing: apt-get install debootstrap git curl iproute2" >&2; exit 1; }
done
DEB_ROOT_CACHE=${DEB_ROOT_CACHE:-/var/tmp/tinderbox-deb-root/bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

fail() { echo "firstscreen-check: FAIL: $*" >&2; exit 1; }
t0=$SECONDS
step() { printf '\n== [%4ds] %s\n' $((SECONDS - t0)) "$*"; }

# The first screen: the first ```sh block of README.md (its commands, less
# comments) and the set-up line after it.
block=$(awk '/^```sh$/ && !n { on = 1; n = 1; next } on && /^```$/ { exit } on' README.md | sed 's/ *#.*//; /^$/d')
setup=$(awk '/^```sh$/ { n++ } n == 1 && /sudo apt-get install/' README.md | grep -o '`sudo apt-get install [^`]*`' | head -n 1 | tr -d '`')
[ -n "$setup" ] || fail "README.md's first screen has no \`sudo apt-get install …\` line after its first block"
grep -qx 'make run' <<<"$block" || fail "README.md's first block lacks make run: $block"
grep -qx 'make test' <<<"$block" || fail "README.md's first block lacks make test: $block"
echo "first screen: $setup; then: $(paste -sd ';' <<<"$block")"

root=$(mktemp -d /var/tmp/tinderbox-firstscreen.XXXXXX)
ns=tbxfs-$$
server=
# stop_server ends make run and what it started: every process in the
# namespace (make, sudo, tinderbox), by its ID.
stop_server() {
	local pids
	pids=$(ip netns pids "$ns" 2>/dev/null || true)
	# shellcheck disable=SC2086 # one ID a word
	[ -z "$pids" ] || kill $pids 2>/dev/null || true
	[ -z "$server" ] || wait "$server" 2>/dev/null || true
	server=
}
cleanup() {
	stop_server
	ip netns del "$ns" 2>/dev/null || true
	umount "$root/proc" 2>/dev/null || true
	umount "$root" 2>/dev/null || true
	if grep -q " $root[/ ]" /proc/mounts; then
		echo "firstscreen-check: $root is still mounted; not removing it" >&2
		return
	fi
	rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "a fresh Debian 12 root (debootstrap, cached in $DEB_ROOT_CACHE)"
if [ ! -x "$DEB_ROOT_CACHE/usr/bin/apt-get" ]; then
	rm -rf "$DEB_ROOT_CACHE"
	mkdir -p "$(dirname "$DEB_ROOT_CACHE")"
	# The same root as scripts/deploy-check.sh makes, so the two share it.
	debootstrap --variant=minbase --include=systemd bookworm "$DEB_ROOT_CACHE" "$MIRROR" >/dev/null
fi
# On a tmpfs: the set-up writes about 2 GB (toolchain, modules, build
# cache, chromium) that a disk would take a minute to write and delete.
mount -t tmpfs -o size=8g,mode=0755 tmpfs "$root"
cp -a "$DEB_ROOT_CACHE/." "$root/"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
in=(chroot "$root")
# What a fresh install with a clone has that a debootstrap root lacks:
# sudo, git, a user allowed to use sudo, package lists, its host name in
# /etc/hosts, and the clone. And this host's local CAs
# (/usr/local/share/ca-certificates: a TLS-inspecting proxy's, where one
# stands between this host and the Internet), as a user's machine behind
# the same proxy has them: ca-certificates, installed by the set-up,
# trusts them.
"${in[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${in[@]}" apt-get install -y -qq --no-install-recommends sudo git >/dev/null
echo "127.0.1.1 $(cat "$root/etc/hostname" 2>/dev/null || hostname)" >>"$root/etc/hosts"
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
	mkdir -p "$root/usr/local/share/ca-certificates"
	cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
"${in[@]}" useradd -m -s /bin/bash user
echo 'user ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/user"
echo 'APT::Get::Assume-Yes "true";' >"$root/etc/apt/apt.conf.d/90firstscreen-yes"
git clone -q "$repo" "$root/home/user/tinderbox"
"${in[@]}" chown -R user:user /home/user/tinderbox
as_user() { "${in[@]}" su - user -c "cd ~/tinderbox && $1"; }

step "as written: $setup"
as_user "$setup" >/dev/null
as_user "go version"

step "make run's set-up, with the network: scripts/deps.sh run, make build"
as_user "scripts/deps.sh run && make build" >"$root/tmp/build.log" 2>&1 || { tail -n 30 "$root/tmp/build.log" >&2; fail "make run's set-up"; }
as_user "go version && bin/tinderbox version"

step "make test's set-up: scripts/deps.sh test"
as_user "scripts/deps.sh test" >"$root/tmp/deps-test.log" 2>&1 || { tail -n 30 "$root/tmp/deps-test.log" >&2; fail "make test's set-up"; }

step "as written, with no network: make run (until /readyz answers)"
ip netns add "$ns"
ip -n "$ns" link set lo up
# A host on a LAN has an address there; one end of a veth pair whose both
# ends stay in the namespace stands in (no packet leaves it).
ip -n "$ns" link add lan0 type veth peer name lan1
ip -n "$ns" link set lan1 up
ip -n "$ns" addr add 10.77.98.2/24 dev lan0
ip -n "$ns" link set lan0 up
ip netns exec "$ns" chroot "$root" su - user -c "cd ~/tinderbox && exec make run" >"$root/tmp/run.log" 2>&1 &
server=$!
ok=
for _ in $(seq 300); do
	if ip netns exec "$ns" curl -fsS --max-time 1 -o "$root/tmp/readyz.json" http://127.0.0.1:8080/readyz 2>/dev/null; then
		ok=1
		break
	fi
	kill -0 "$server" 2>/dev/null || break
	sleep 0.2
done
[ -n "$ok" ] || { cat "$root/tmp/run.log" >&2; fail "make run did not answer /readyz"; }
cat "$root/tmp/readyz.json"
echo
grep -q "run: proxyDHCP is off" "$root/tmp/run.log" || fail "make run without IFACE did not say proxyDHCP is off"
stop_server
step "done: make run started and answered /readyz on a fresh Debian 12"
