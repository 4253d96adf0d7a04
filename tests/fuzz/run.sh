#!/bin/sh
# run.sh SECONDS BUILDDIR CORPUSDIR TARGET...: what `make fuzz` runs.
#
# Runs each target (BUILDDIR/fuzz_TARGET) for SECONDS, one after the
# other, from its seed corpus (CORPUSDIR/TARGET, never written to) and its
# working corpus (BUILDDIR/work/TARGET, where it adds what it finds and
# where the next run starts), and prints one line per target with
# libFuzzer's figures.  A
# finding (crash, leak, sanitizer report, failed check, timeout) leaves
# its input in BUILDDIR/findings/ and a line naming the target and that
# file; the script then exits 1, after running the other targets.
# LeakSanitizer reads the suppressions in lsan.supp beside this script.
set -u
seconds=$1 builddir=$2 corpus=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
work=$builddir/work
findings=$builddir/findings
mkdir -p "$findings" || exit 1
failed=""
for target in "$@"; do
	prog=$builddir/fuzz_$target
	log=$builddir/fuzz_$target.log
	if [ ! -x "$prog" ]; then
		echo "fuzz: $target: no program $prog" >&2
		failed="$failed $target"
		continue
	fi
	rm -rf "$work/tmp-$target"
	mkdir -p "$work/$target" "$work/tmp-$target" || exit 1
	had=$(ls "$work/$target" | wc -l)
	before=$(ls "$findings" | wc -l)
	TMPDIR=$work/tmp-$target \
	LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0" \
	UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
	    "$prog" -max_total_time="$seconds" -timeout=120 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix="$findings/$target-" \
	    "$work/$target" "$corpus/$target" >"$log" 2>&1
	rc=$?
	rm -rf "$work/tmp-$target"
	stats=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1 |
	    sed -n 's/^#\([0-9]*\).*cov: \([0-9]*\) ft: \([0-9]*\).*/runs \1, cov \2, ft \3/p')
	if [ "$rc" -ne 0 ] || [ "$(ls "$findings" | wc -l)" -ne "$before" ]; then
		crash=$(sed -n "s/.*Test unit written to \(.*\)$/\1/p" "$log" | tail -n 1)
		echo "fuzz: $target: FAILED (exit $rc): crash file ${crash:-none}; log $log" >&2
		echo "fuzz: reproduce: LSAN_OPTIONS=suppressions=$here/lsan.supp $prog ${crash:-}" >&2
		failed="$failed $target"
	else
		echo "fuzz: $target: ok in ${seconds}s (${stats:-no figures}); $(($(ls "$work/$target" | wc -l) - had)) new inputs, $(ls "$work/$target" | wc -l) in $work/$target"
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz: findings in:$failed" >&2
	exit 1
fi
