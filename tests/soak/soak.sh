#!/bin/sh
# soak.sh: what `make soak` runs.  The soak (tests/soak/soak.py) against the
# release build, then against an AddressSanitizer/UBSan build made from a
# copy of the sources in BUILDDIR/soak-asan (configure --enable-sanitizers),
# so that the release build is left as it is.  Both runs get the same seed.
#
# Usage: soak.sh SRCDIR BUILDDIR SECONDS [SEED]
# SOAK_BUILDS="release asan" (the default) says which builds, in order.
# Exit 0 only if every run passed.
set -u
srcdir=$1 builddir=$2 seconds=$3 seed=${4:-}
builds=${SOAK_BUILDS:-release asan}
[ -n "$seed" ] || seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
python=${PYTHON3:-python3}

# The sanitizer build: sources copied with their times, so make rebuilds
# only what changed; configured once.
asan_build() {
	dir=$builddir/soak-asan
	mkdir -p "$dir/src" "$dir/m4" "$dir/build-aux" || return 1
	cp -p "$srcdir/configure.ac" "$srcdir/Makefile.am" "$dir/" || return 1
	cp -p "$srcdir"/src/*.c "$srcdir"/src/*.h "$dir/src/" || return 1
	if [ ! -f "$dir/Makefile" ]; then
		(cd "$dir" && autoreconf -fi >autoreconf.log 2>&1 &&
			./configure --enable-sanitizers --enable-werror >configure.log 2>&1) || {
			echo "soak: configuring the sanitizer build in $dir failed; see $dir/*.log" >&2
			return 1
		}
	fi
	make -C "$dir" tlsproxy >"$dir/make.log" 2>&1 || {
		echo "soak: the sanitizer build failed:" >&2
		tail -n 30 "$dir/make.log" >&2
		return 1
	}
}

status=0
summary=""
for b in $builds; do
	case $b in
	release)
		bin=$builddir/tlsproxy ;;
	asan)
		asan_build || { status=1; summary="$summary asan=BUILD-FAILED"; continue; }
		bin=$builddir/soak-asan/tlsproxy ;;
	*)
		echo "soak: unknown build '$b' in SOAK_BUILDS (release, asan)" >&2
		exit 2 ;;
	esac
	echo "soak: $b build, $seconds s, seed $seed: $bin"
	# A small quarantine keeps the sanitizer build's RSS a measure of the
	# daemon, not of ASan's 256 MiB default; leaks are reported at exit.
	ASAN_OPTIONS='detect_leaks=1:abort_on_error=0:exitcode=86:quarantine_size_mb=16' \
	UBSAN_OPTIONS='print_stacktrace=1:halt_on_error=1' \
	PYTHONDONTWRITEBYTECODE=1 \
		"$python" "$srcdir/tests/soak/soak.py" --tlsproxy "$bin" --seconds "$seconds" \
		--seed "$seed" --label "$b"
	rc=$?
	if [ "$rc" -eq 0 ]; then
		summary="$summary $b=PASS"
	else
		summary="$summary $b=FAIL"
		status=1
	fi
	[ "$rc" -ge 128 ] && break      # interrupted
done
echo "soak:$summary (seed $seed, SOAK_SEED=$seed replays it)"
exit "$status"
