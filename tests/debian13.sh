#!/bin/sh
# check-debian13: build the source tree and run the whole suite inside a
# Debian 13 (trixie) root, so that a Debian 12 machine proves the code on
# the current stable too (OpenSSL 3.5, systemd 257, mosquitto 2.0.21).
#
# The root is made once with debootstrap from Debian's registry and kept
# (DEBIAN13_ROOT, default /var/cache/tlsproxy/debian13); the project's own
# bootstrap installs the packages into it, so a second run only copies the
# tree, builds and tests.  The copy is what `git ls-files` lists, committed
# or not, so uncommitted work is tested as it stands.  Needs root (chroot,
# mount).  The chroot shares this machine's network namespace: the tests'
# servers bind loopback as they do here.
#
# Usage: tests/debian13.sh [make-arguments for `make check`]
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
root=${DEBIAN13_ROOT:-/var/cache/tlsproxy/debian13}
mirror=${DEBIAN13_MIRROR:-http://deb.debian.org/debian}
jobs=$(nproc 2>/dev/null || echo 2)
build=/build/tlsproxy

die() { echo "check-debian13: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mount)"
command -v git >/dev/null 2>&1 && git -C "$top" rev-parse --git-dir >/dev/null 2>&1 ||
	die "$top is not a git checkout: the tree to copy is what git lists"

# ---------------------------------------------------------------- the root
if [ ! -e "$root/.tlsproxy-debootstrap-done" ]; then
	if ! command -v debootstrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
		echo "check-debian13: installing debootstrap"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			debootstrap >/dev/null || { apt-get update -q >/dev/null &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends debootstrap >/dev/null; } || true
	fi
	command -v debootstrap >/dev/null 2>&1 ||
		die "debootstrap is missing (apt-get install debootstrap)"
	echo "check-debian13: making a trixie root in $root (once; it is kept)"
	rm -rf "$root.tmp"
	mkdir -p "$(dirname "$root")"
	debootstrap --variant=minbase trixie "$root.tmp" "$mirror" ||
		die "debootstrap failed (see above); nothing was kept"
	rm -rf "$root"
	mv "$root.tmp" "$root"
	touch "$root/.tlsproxy-debootstrap-done"
fi

# ---------------------------------------------------------------- mounts
mounted=""
cleanup() {
	for m in $mounted; do
		umount -l "$m" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_in() {	# mount_in TARGET ARGS...: mount, and remember to unmount
	target=$1
	shift
	mountpoint -q "$target" && umount -l "$target"
	mount "$@" "$target" || die "cannot mount $target"
	mounted="$target $mounted"
}
mount_in "$root/proc" -t proc proc
mount_in "$root/sys" -t sysfs sysfs
mount_in "$root/dev" --bind /dev
mount_in "$root/dev/pts" -t devpts -o newinstance,ptmxmode=0666 devpts
mount_in "$root/dev/shm" -t tmpfs -o mode=1777 tmpfs
mount_in "$root/tmp" -t tmpfs -o mode=1777 tmpfs
# apt needs names; nothing else in the root comes from this machine.
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

# ---------------------------------------------------------------- the tree
rm -rf "$root$build"
mkdir -p "$root$build"
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
	xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
	tar --null -T - -cf -) | tar -xf - -C "$root$build"

# ---------------------------------------------------------------- build, test
echo "check-debian13: $(cat "$root/etc/debian_version" 2>/dev/null || echo '?') in $root"
status=0
chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root LANG=C.UTF-8 TERM=dumb /bin/sh -c '
	set -e
	cd "$1"
	jobs=$2
	shift 2
	./bootstrap --enable-werror >bootstrap.log 2>&1 || { tail -n 40 bootstrap.log; exit 1; }
	echo "OpenSSL $(openssl version | cut -d" " -f2), systemd $(systemctl --version 2>/dev/null | sed -n "1s/^systemd \([0-9]*\).*/\1/p"), mosquitto $(dpkg-query -W -f="\${Version}" mosquitto)"
	make -j"$jobs" >build.log 2>&1 || { tail -n 40 build.log; exit 1; }
	make -j"$jobs" check "$@"
' sh "$build" "$jobs" "$@" || status=$?

# The same summary line as .ci/run, from the TAP results inside the root.
results() { cat "$root$build"/tests/unit/*.trs "$root$build"/tests/integration/*.trs 2>/dev/null |
	grep -c "^:test-result: \($1\)" || true; }
passed=$(results 'PASS\|XFAIL')
failed=$(results 'FAIL\|XPASS\|ERROR')
skipped=$(results 'SKIP')
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
	for trs in "$root$build"/tests/unit/*.trs "$root$build"/tests/integration/*.trs; do
		grep -q '^:global-test-result: \(FAIL\|ERROR\)' "$trs" 2>/dev/null || continue
		echo "=== debian13: ${trs#"$root"}"
		tail -n 60 "${trs%.trs}.log"
	done
	[ "$failed" -eq 0 ] && failed=1
	status=1
fi
echo "debian13: $passed passed, $failed failed, $skipped skipped"
exit "$status"
