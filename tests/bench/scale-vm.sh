#!/bin/sh
# scale-vm: `make scale` inside a qemu guest, for a machine whose own
# descriptor limit cannot hold 100,000 connections (a hard RLIMIT_NOFILE
# that nothing here may raise).  The guest has its own kernel and limits:
# as its root, the job raises fs.nr_open, fs.file-max and RLIMIT_NOFILE,
# builds the tree with -Werror and runs `make scale` once per worker count.
# The guest runs under KVM, or emulated (TCG) where KVM cannot boot
# Debian's kernel: its memory figures are the same code's allocations,
# its rates and latencies are the emulator's.
#
# What it owns: the guest's disk image and kernel, made once with
# debootstrap (Debian 12, the build and test packages that ./bootstrap
# names, Debian's linux-image-amd64 and its initramfs) and kept in
# SCALE_VM_CACHE; the job (the tree as `git ls-files` lists it, committed
# or not, and the guest's script) on a second disk as a tar; the results,
# written by the guest as a tar on a third disk and unpacked into
# SCALE_VM_OUT.  The cached image is never written: the guest's changes go
# to a throw-away overlay (snapshot=on).  qemu is killed after
# SCALE_VM_TIMEOUT seconds; every process and temporary file is gone when
# the script ends, on any exit.
#
# Usage: tests/bench/scale-vm.sh
# Settings from the environment (defaults in brackets):
#   SCALE_VM_CACHE [/var/cache/tlsproxy/scale-vm]  the image and the kernel
#   SCALE_VM_MIRROR [http://deb.debian.org/debian] for debootstrap
#   SCALE_VM_OUT [./scale-vm.out]    results: scale-wN.txt, scale-wN.json,
#                                    guest.txt, console.log
#   SCALE_VM_MEM [10G]  SCALE_VM_CPUS [2]  the guest's size
#   SCALE_VM_WORKERS ["1 2"]         one `make scale` per worker count
#   SCALE_VM_TIMEOUT                 seconds before qemu is killed [1200, and
#                                    per worker count 1500 with KVM, 5000
#                                    emulated]
#   SCALE_VM_APPEND                  more of the guest kernel's command line,
#                                    e.g. transparent_hugepage=madvise
#   SCALE_VM_ACCEL [auto]            kvm, or tcg (emulation: the memory
#                                    figures hold, the rates do not); auto
#                                    is kvm unless /dev/kvm is missing or
#                                    is PVM's (see below)
#   SCALE_CONNS [100000] and the other SCALE_* settings of scale.py are
#   passed to the guest as they are.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
cache=${SCALE_VM_CACHE:-/var/cache/tlsproxy/scale-vm}
mirror=${SCALE_VM_MIRROR:-http://deb.debian.org/debian}
out=${SCALE_VM_OUT:-$PWD/scale-vm.out}
mem=${SCALE_VM_MEM:-10G}
cpus=${SCALE_VM_CPUS:-2}
workers=${SCALE_VM_WORKERS:-1 2}
limit=${SCALE_VM_TIMEOUT:-}
accel=${SCALE_VM_ACCEL:-auto}
append=${SCALE_VM_APPEND:-}
suite=bookworm

die() { echo "scale-vm: $*" >&2; exit 1; }
say() { echo "scale-vm: $*"; }

case $limit in *[!0-9]*) die "SCALE_VM_TIMEOUT must be a number of seconds, not '$limit'" ;; esac
case $cpus in ''|*[!0-9]*) die "SCALE_VM_CPUS must be a number, not '$cpus'" ;; esac
for w in $workers; do
	case $w in ''|*[!0-9]*) die "SCALE_VM_WORKERS must be worker counts, not '$workers'" ;; esac
done
[ "$(id -u)" = 0 ] || die "needs root (debootstrap and chroot for the image, /dev/kvm for the guest)"
# PVM (kvm_pvm, KVM without hardware virtualisation, as in some nested
# sandboxes) runs only guest kernels built with CONFIG_PVM_GUEST: Debian's
# is not, and hangs before its first message.
if [ "$accel" = auto ]; then
	if [ ! -c /dev/kvm ]; then
		accel=tcg
		say "/dev/kvm is missing: the guest is emulated (TCG); the memory figures hold, the rates and latencies do not"
	elif [ -d /sys/module/kvm_pvm ] && [ ! -d /sys/module/kvm_intel ] && [ ! -d /sys/module/kvm_amd ]; then
		accel=tcg
		say "/dev/kvm is PVM's (kvm_pvm), which boots only CONFIG_PVM_GUEST kernels, not Debian's: the guest is emulated (TCG); the memory figures hold, the rates and latencies do not"
	else
		accel=kvm
	fi
fi
case $accel in
kvm)
	[ -c /dev/kvm ] || die "/dev/kvm is missing: this machine offers no KVM (load kvm_intel or kvm_amd, enable nested virtualisation, or SCALE_VM_ACCEL=tcg)"
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || die "/dev/kvm is not readable and writable by this user"
	accel_args="-enable-kvm -cpu host" ;;
tcg)	accel_args="-accel tcg,thread=multi,tb-size=1024 -cpu max" ;;
*)	die "SCALE_VM_ACCEL must be auto, kvm or tcg, not '$accel'" ;;
esac
# An emulated guest opened 100,000 connections in 57 minutes.
if [ -z "$limit" ]; then
	limit=1200
	for w in $workers; do
		limit=$((limit + $([ "$accel" = tcg ] && echo 5000 || echo 1500)))
	done
fi
command -v git >/dev/null 2>&1 && git -C "$top" rev-parse --git-dir >/dev/null 2>&1 ||
	die "$top is not a git checkout: the tree to copy is what git lists"

need_pkg() {	# need_pkg COMMAND PACKAGE: install PACKAGE when COMMAND is missing
	command -v "$1" >/dev/null 2>&1 && return 0
	if command -v apt-get >/dev/null 2>&1; then
		say "installing $2"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$2" \
			>/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends "$2" >/dev/null; } || true
	fi
	command -v "$1" >/dev/null 2>&1 || die "$1 is missing (apt-get install $2)"
}
need_pkg qemu-system-x86_64 qemu-system-x86
need_pkg debootstrap debootstrap
need_pkg mke2fs e2fsprogs

# ---------------------------------------------------------------- cleanup
work=""
qpid=""
tpid=""
mounted=""
cleanup() {
	# timeout passes the TERM on to qemu
	for p in $qpid $tpid; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	# debootstrap's own mounts too, should it have been killed
	for m in $mounted "$cache/root.tmp/proc" "$cache/root.tmp/sys"; do
		if mountpoint -q "$m" 2>/dev/null; then umount -l "$m" || true; fi
	done
	[ -n "$work" ] && rm -rf "$work"
	rm -rf "$cache/root.tmp" "$cache/image.tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- the image
# PID 1 of the guest: mounts what the job needs, unpacks the job from the
# second disk and runs it.  Should the job end without powering off, PID 1
# exits and the kernel's panic reboots, which ends qemu (-no-reboot).
INIT='#!/bin/sh
# tlsproxy-vm-init: PID 1 of the scale-vm guest (tests/bench/scale-vm.sh).
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mountpoint -q /run || mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/job
if tar -xf /dev/vdb -C /run/job && [ -f /run/job/guest.sh ]; then
	exec /bin/sh /run/job/guest.sh
fi
echo "tlsproxy-vm-init: no job on /dev/vdb"
sync
echo o >/proc/sysrq-trigger'

# The packages ./bootstrap installs, so that it installs nothing in the
# guest (which has no network), and what the guest boots with.
packages="$(sed -n '/^PACKAGES="/,/"$/p' "$top/bootstrap" | sed 's/^PACKAGES="//; s/"$//' | tr '\n' ' ')"
[ -n "$packages" ] || die "cannot read PACKAGES from $top/bootstrap"
packages="$packages linux-image-amd64 initramfs-tools iproute2 kmod"
# The image is made again when what goes into it changes.
image_id=$(printf '%s\n%s\n%s\n' "$suite" "$packages" "$INIT" | sha256sum | cut -c1-16)

if [ "$(cat "$cache/image.id" 2>/dev/null)" != "$image_id" ]; then
	say "making the guest image in $cache (once; it is kept): debootstrap $suite"
	mkdir -p "$cache"
	rm -rf "$cache/root.tmp" "$cache/image.tmp" "$cache/image.id"
	timeout 1800 debootstrap --variant=minbase "$suite" "$cache/root.tmp" "$mirror" \
		>"$cache/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$cache/debootstrap.log" >&2; die "debootstrap failed (log: $cache/debootstrap.log)"; }
	root=$cache/root.tmp
	mount -t proc proc "$root/proc" || die "cannot mount proc in $root"
	mounted="$root/proc"
	cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
	# No service starts in the chroot: it shares this machine's network.
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"
	say "installing into the image: $packages"
	# shellcheck disable=SC2086
	timeout 1800 chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
		apt-get install -y -q --no-install-recommends $packages \
		>"$cache/apt.log" 2>&1 ||
		{ tail -n 20 "$cache/apt.log" >&2; die "apt-get install in the image failed (log: $cache/apt.log)"; }
	umount "$root/proc" || die "cannot unmount $root/proc"
	mounted=""
	rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
	kernel=$(ls "$root"/boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
	initrd=$(ls "$root"/boot/initrd.img-* 2>/dev/null | sort -V | tail -n 1)
	[ -n "$kernel" ] && [ -n "$initrd" ] || die "the image has no kernel or no initramfs in /boot"
	printf '%s\n' "$INIT" >"$root/sbin/tlsproxy-vm-init"
	chmod 755 "$root/sbin/tlsproxy-vm-init"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n' >"$root/etc/hosts"
	echo tlsproxy-scale >"$root/etc/hostname"
	cp "$kernel" "$cache/vmlinuz"
	cp "$initrd" "$cache/initrd.img"
	# Room for the tree and its build besides the packages.
	size=$(( $(du -sm "$root" | cut -f1) + 2048 ))
	mke2fs -q -t ext4 -L tlsproxy-scale -d "$root" "$cache/image.tmp" "${size}M" >/dev/null ||
		die "mke2fs -d failed"
	mv "$cache/image.tmp" "$cache/root.img"
	rm -rf "$root"
	echo "$image_id" >"$cache/image.id"
	say "image ready: $(basename "$kernel"), ${size} MB"
fi

# ---------------------------------------------------------------- the job
work=$(mktemp -d "${TMPDIR:-/tmp}/tlsproxy-scale-vm.XXXXXX")
mkdir "$work/job"
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
	xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
	tar --null -T - -cf "$work/job/src.tar")
{
	echo "commit=$(git -C "$top" describe --always --dirty)"
	echo "workers='$workers'"
	echo "accel=$accel"
	# scale.py's own bound on the opening (SCALE_CONNS / 200 s) is for
	# a machine that is not emulated.
	[ "$accel" = tcg ] && [ -z "${SCALE_OPEN_SECONDS:-}" ] && echo "export SCALE_OPEN_SECONDS=3600"
	env | grep '^SCALE_[A-Z_]*=' | grep -v '^SCALE_VM_\|^SCALE_JSON=\|^SCALE_WORKERS=' |
		sed "s/'/'\\\\''/g; s/=\(.*\)/='\1'/; s/^/export /" || true
} >"$work/job/env.sh"
cat >"$work/job/guest.sh" <<'EOF'
# The guest's job: limits, build, `make scale` per worker count, results
# onto /dev/vdc as a tar, power off.  Its output is the serial console.
. /run/job/env.sh
out=/run/out
mkdir -p "$out" /build
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
ip link set lo up
hostname tlsproxy-scale
# Root in the guest may: room for 100,000 connections' descriptors.
sysctl -q -w fs.nr_open=1048576 fs.file-max=4194304
ulimit -Hn 1048576 && ulimit -Sn 1048576
{
	echo "kernel: $(uname -r) ($(uname -v))"
	echo "vCPUs: $(nproc); $(grep MemTotal /proc/meminfo)"
	echo "cpu: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)"
	echo "RLIMIT_NOFILE: $(ulimit -Sn) soft, $(ulimit -Hn) hard; fs.nr_open $(cat /proc/sys/fs/nr_open); fs.file-max $(cat /proc/sys/fs/file-max)"
	echo "ephemeral ports: $(cat /proc/sys/net/ipv4/ip_local_port_range)"
	echo "transparent hugepages: $(cat /sys/kernel/mm/transparent_hugepage/enabled)"
	echo "OpenSSL: $(openssl version); libevent $(pkg-config --modversion libevent); Debian $(cat /etc/debian_version)"
	echo "source tree: $commit; accelerator: $accel"
} >"$out/guest.txt"
cat "$out/guest.txt"
status=0
cd /build && tar -xf /run/job/src.tar || status=1
if [ "$status" = 0 ]; then
	echo "scale-vm guest: ./bootstrap --enable-werror && make"
	{ ./bootstrap --enable-werror && make -j"$(nproc)"; } >"$out/build.log" 2>&1 ||
		{ tail -n 40 "$out/build.log"; status=1; }
fi
if [ "$status" = 0 ]; then
	for w in $workers; do
		echo "scale-vm guest: SCALE_WORKERS=$w make scale"
		# Through tee: the marks reach the console as they come.
		{ SCALE_WORKERS=$w SCALE_JSON=$out/scale-w$w.json make scale 2>&1; echo $? >"$out/rc"; } |
			tee "$out/scale-w$w.txt"
		[ "$(cat "$out/rc")" = 0 ] || status=1
		rm -f "$out/rc"
	done
fi
echo "$status" >"$out/status"
tar -cf /dev/vdc -C "$out" . && sync
echo "scale-vm guest: done, status $status"
echo o >/proc/sysrq-trigger
# The power-off is under way: PID 1 must not exit before it (a panic).
sleep 60
EOF
(cd "$work/job" && tar -cf "$work/job.tar" guest.sh env.sh src.tar)
truncate -s 64M "$work/out.img"

# ---------------------------------------------------------------- the guest
mkdir -p "$out"
: >"$out/console.log"
say "booting the guest ($accel, $cpus vCPUs, $mem; killed after $limit s); console in $out/console.log"
# shellcheck disable=SC2086
TMPDIR=$work timeout --kill-after=30 "$limit" qemu-system-x86_64 \
	$accel_args -smp "$cpus" -m "$mem" \
	-nodefaults -no-user-config -display none -no-reboot \
	-kernel "$cache/vmlinuz" -initrd "$cache/initrd.img" \
	-append "root=/dev/vda rw console=ttyS0 quiet panic=-1 init=/sbin/tlsproxy-vm-init $append" \
	-drive "file=$cache/root.img,format=raw,if=virtio,snapshot=on" \
	-drive "file=$work/job.tar,format=raw,if=virtio,readonly=on" \
	-drive "file=$work/out.img,format=raw,if=virtio" \
	-serial "file:$out/console.log" -monitor none \
	</dev/null >"$work/qemu.log" 2>&1 &
qpid=$!
# In the background: a signal to this script is handled at once, in wait.
tail -n +1 -f --pid="$qpid" "$out/console.log" &
tpid=$!
qstatus=0
wait "$qpid" || qstatus=$?
qpid=""
wait "$tpid" || true
tpid=""
if [ "$qstatus" = 124 ] || [ "$qstatus" = 137 ]; then
	die "the guest did not finish within $limit s and was killed (SCALE_VM_TIMEOUT); console: $out/console.log"
fi
[ "$qstatus" = 0 ] || { cat "$work/qemu.log" >&2; die "qemu failed with status $qstatus"; }

# ---------------------------------------------------------------- results
tar -xf "$work/out.img" -C "$out" 2>/dev/null ||
	die "the guest wrote no results (see $out/console.log)"
status=$(cat "$out/status" 2>/dev/null || echo 1)
say "results in $out: $(cd "$out" && ls | tr '\n' ' ')"
[ "$status" = 0 ] || die "a run in the guest failed (see $out/console.log)"
