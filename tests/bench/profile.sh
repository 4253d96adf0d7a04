#!/bin/sh
# profile.sh TOOL MODE [SECONDS]: run tlsproxy under TOOL while tlsbench
# drives one load MODE at it, and print where the time goes, per handshake.
#
#   TOOL  callgrind  valgrind --tool=callgrind; counters zeroed after
#                    start-up, dumped after the load: instructions per
#                    handshake and the top functions (inclusive, self)
#         strace     strace -c -f over the load: syscalls per handshake
#         perf       perf record -e cpu-clock (software sampling; this
#                    machine has no hardware counters): the top symbols
#   MODE  a tlsbench mode and its options as one word, e.g. "full",
#         "mqtt", "mqtt --resume", "resume12-ticket --close clean"
#
# Environment: TLSPROXY, TLSBENCH, BENCHD (the programs; default: the
# build tree of this source tree), TLSPROXY_WORKERS (default 1),
# TLS13_TICKETS (tickets.tls13_tickets, default 1, as in tlsproxy),
# CONCURRENCY (default 4), KEEP=1 (keep the directory with the raw output).
# Everything runs on 127.0.0.1 and is stopped when the script ends.
set -eu

usage() {
	echo "usage: profile.sh callgrind|strace|perf MODE [SECONDS]" >&2
	exit 64
}
[ $# -ge 2 ] || usage
tool=$1
mode=$2
secs=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
TLSPROXY=${TLSPROXY:-$top/tlsproxy}
TLSBENCH=${TLSBENCH:-$top/tests/bench/tlsbench}
BENCHD=${BENCHD:-$top/tests/bench/benchd}
workers=${TLSPROXY_WORKERS:-1}
tickets13=${TLS13_TICKETS:-1}
conc=${CONCURRENCY:-4}
case $tool in
callgrind) secs=${secs:-20} ;;
strace) secs=${secs:-5} ;;
perf) secs=${secs:-10} ;;
*) usage ;;
esac

dir=$(mktemp -d /tmp/tlsproxy-profile.XXXXXX)
bd_pid= tp_pid=
cleanup() {
	for p in $tp_pid $bd_pid; do
		kill "$p" 2>/dev/null || :
	done
	sleep 0.2
	for p in $tp_pid $bd_pid; do
		kill -9 "$p" 2>/dev/null || :
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "kept $dir" >&2
	else
		rm -rf "$dir"
	fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

sh "$top/certs/gen-certs.sh" "$dir/certs"
"$BENCHD" -p 0 -t 3600 >"$dir/benchd.out" 2>&1 &
bd_pid=$!
i=0
while ! grep -q '^port ' "$dir/benchd.out" 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "benchd did not start" >&2; exit 1; }
	sleep 0.05
done
bport=$(awk '/^port /{print $2}' "$dir/benchd.out")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/tlsproxy.conf" <<EOF
workers = $workers;
log_level = "warning";
session_cache = { size = 20480; timeout = "5m"; };
tickets = { mode = "stateless"; seed = "tlsproxy-benchmark-seed-0123456789";
	tls13_tickets = $tickets13; };
listeners = ( {
	name = "bench";
	listen = "127.0.0.1:$port";
	backend = "127.0.0.1:$bport";
	cert = "$dir/certs/server.pem";
	key = "$dir/certs/server.key";
	max_connections = 100000;
} );
EOF

case $tool in
callgrind)
	valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
	    "$TLSPROXY" -r -c "$dir/tlsproxy.conf" >"$dir/tlsproxy.log" 2>&1 &
	;;
strace)
	"$TLSPROXY" -r -c "$dir/tlsproxy.conf" >"$dir/tlsproxy.log" 2>&1 &
	;;
perf)
	perf record -q -e cpu-clock -F 2000 -g -o "$dir/perf.data" \
	    "$TLSPROXY" -r -c "$dir/tlsproxy.conf" >"$dir/tlsproxy.log" 2>&1 &
	;;
esac
tp_pid=$!

# Ready when a TLS handshake works (slow under valgrind).
i=0
until python3 - "$port" <<'EOF' 2>/dev/null
import socket, ssl, sys
c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
c.check_hostname = False
c.verify_mode = ssl.CERT_NONE
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
    c.wrap_socket(s, server_hostname="localhost").close()
EOF
do
	i=$((i + 1)); [ $i -lt 120 ] || { echo "tlsproxy did not start" >&2; exit 1; }
	sleep 0.5
done

# shellcheck disable=SC2086 # MODE is a mode and its options
run_load() {
	"$TLSBENCH" $mode --port "$port" --insecure --duration "$secs" --concurrency "$conc" \
	    --ciphersuites TLS_AES_128_GCM_SHA256 --ciphers ECDHE-ECDSA-AES128-GCM-SHA256 \
	    --timeout 60 | tee "$dir/tlsbench.out"
}
handshakes() {
	sed -n 's/.* handshakes=\([0-9]*\).*/\1/p' "$dir/tlsbench.out"
}

case $tool in
callgrind)
	callgrind_control -z "$tp_pid" >/dev/null
	run_load
	sleep 1
	callgrind_control -d "$tp_pid" >/dev/null
	sleep 1
	kill "$tp_pid"; wait "$tp_pid" 2>/dev/null || :; tp_pid=
	dump=$(ls -t "$dir"/callgrind.out.* 2>/dev/null | grep -v '\.out$' | head -1)
	[ -n "$dump" ] || dump=$(ls -t "$dir"/callgrind.out* | head -1)
	n=$(handshakes)
	python3 "$here/cgsummary.py" "$dump" "$n"
	[ "${KEEP:-0}" = 1 ] && echo "dump: $dump" || :
	;;
strace)
	strace -c -f -q -p "$tp_pid" -o "$dir/strace.out" &
	st_pid=$!
	sleep 1
	run_load
	sleep 0.5
	kill -INT "$st_pid"; wait "$st_pid" 2>/dev/null || :
	n=$(handshakes)
	echo "syscalls per handshake ($n handshakes):"
	awk -v n="$n" '/^ *[0-9]/ && $NF != "total" { printf "  %-16s %8.2f\n", $NF, $4 / n;
	    tot += $4 } END { printf "  %-16s %8.2f\n", "total", tot / n }' "$dir/strace.out" |
	    sort -k2 -rn
	;;
perf)
	run_load
	sleep 0.5
	kill "$tp_pid"; wait "$tp_pid" 2>/dev/null || :; tp_pid=
	sleep 1
	echo "samples by object:"
	perf report -i "$dir/perf.data" --no-children --sort dso -g none --stdio 2>/dev/null |
	    grep '%' | grep -v '^#' | head -10
	echo "top symbols:"
	perf report -i "$dir/perf.data" --no-children --sort dso,symbol -g none --stdio \
	    2>/dev/null | grep '%' | grep -v '^#' | head -30
	;;
esac
