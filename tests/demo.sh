#!/bin/sh
# demo.sh BINARY SRCDIR: what `make demo` runs.
#
# Makes demo certificates in SRCDIR/certs (unless they are there and valid
# for another day), starts mosquitto on a free loopback port and tlsproxy in
# front of it on 127.0.0.1:8883 (or a free port if 8883 is taken), does one
# MQTT publish/subscribe round trip over TLS through the proxy, prints how to
# connect, and keeps tlsproxy running until Ctrl-C.  Everything it started
# and its temporary files are removed on exit.
#
# DEMO_NONINTERACTIVE=1: exit 0 right after the round trip (for tests).
# DEMO_CERTS=DIR: keep the demo certificates there instead of SRCDIR/certs.
# MOSQUITTO, OPENSSL: the programs to use (default: found on PATH).
#
# tlsproxy runs as whoever starts the demo.  Started as root, it is given
# -r, since the demo has no user to drop to; a real deployment sets user.
set -eu

usage() {
	echo "usage: demo.sh BINARY SRCDIR" >&2
	exit 64
}
[ $# -eq 2 ] || usage
bin=$1
srcdir=$2
certs=${DEMO_CERTS:-$srcdir/certs}
openssl=${OPENSSL:-openssl}
topic=tlsproxy/demo

die() {
	echo "demo: $*" >&2
	exit 1
}

# need PROGRAM PACKAGE: fail with an install hint unless PROGRAM runs.
need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 not found: apt-get install $2"
}

[ -x "$bin" ] || die "no tlsproxy at $bin: run make first"
mosquitto=${MOSQUITTO:-}
if [ -z "$mosquitto" ] || [ "$mosquitto" = no ]; then
	mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
fi
[ -x "$mosquitto" ] || die "mosquitto not found: apt-get install mosquitto"
need mosquitto_sub mosquitto-clients
need mosquitto_pub mosquitto-clients
need python3 python3
need "$openssl" openssl

tmp=
mosq_pid=
proxy_pid=
sub_pid=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	status=$?
	trap - EXIT INT TERM HUP
	for pid in $sub_pid $proxy_pid $mosq_pid; do
		kill "$pid" 2>/dev/null || :
	done
	for pid in $sub_pid $proxy_pid $mosq_pid; do
		wait "$pid" 2>/dev/null || :
	done
	[ -z "$tmp" ] || rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# port_free PORT: true if nothing holds 127.0.0.1:PORT.
port_free() {
	python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

# free_port: print a port on 127.0.0.1 that is free right now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID NAME LOG: wait up to 10 s for PORT to accept; fail
# with NAME's LOG if PID exits first.
wait_port() {
	i=0
	while ! python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null; do
		if ! kill -0 "$2" 2>/dev/null; then
			cat "$4" >&2
			die "$3 exited before listening on port $1"
		fi
		i=$((i + 1))
		[ $i -lt 100 ] || die "$3 is not listening on port $1 after 10 s"
		sleep 0.1
	done
}

# 1. Certificates: made unless all are there and good for another day.
certs_ok() {
	for f in ca.pem server.pem server.key client.pem client.key; do
		[ -s "$certs/$f" ] || return 1
	done
	for f in ca.pem server.pem client.pem; do
		"$openssl" x509 -checkend 86400 -noout -in "$certs/$f" >/dev/null 2>&1 || return 1
	done
}
if ! certs_ok; then
	echo "demo: making demo certificates in $certs"
	OPENSSL=$openssl sh "$srcdir/certs/gen-certs.sh" "$certs"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tlsproxy-demo.XXXXXX")

# 2. mosquitto on a free loopback port.
mqtt_port=$(free_port)
cat >"$tmp/mosquitto.conf" <<EOF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
EOF
"$mosquitto" -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
mosq_pid=$!
wait_port "$mqtt_port" "$mosq_pid" mosquitto "$tmp/mosquitto.log"
echo "demo: mosquitto (plain MQTT) on 127.0.0.1:$mqtt_port"

# 3. tlsproxy in front of it, with ticket keys derived from a fresh seed.
(umask 077 && head -c 32 /dev/urandom | base64 >"$tmp/ticket.seed")
tls_port=8883
port_free $tls_port || tls_port=$(free_port)
cat >"$tmp/tlsproxy.conf" <<EOF
# tlsproxy demo: TLS on 127.0.0.1:$tls_port -> mosquitto on 127.0.0.1:$mqtt_port
workers = 2;
log_level = "info";
shutdown_timeout = "5s";
session_cache = { size = 20480; timeout = "5m"; };
tickets = {
  mode = "stateless";
  seed_file = "$tmp/ticket.seed";
  rotation_interval = "1h";
  decrypt_grace = "12h";
  session_lifetime = "12h";
};
listeners = (
  {
    name = "mqtt";
    listen = "127.0.0.1:$tls_port";
    backend = "127.0.0.1:$mqtt_port";
    cert = "$certs/server.pem";
    key = "$certs/server.key";
    client_ca = "$certs/ca.pem";
    verify_client = "optional";
  }
);
EOF
"$bin" -t -c "$tmp/tlsproxy.conf" || die "the demo config does not pass tlsproxy -t"
stay_root=
[ "$(id -u)" != 0 ] || stay_root=-r
# shellcheck disable=SC2086 # stay_root is empty or one word
"$bin" -c "$tmp/tlsproxy.conf" $stay_root &
proxy_pid=$!
wait_port "$tls_port" "$proxy_pid" tlsproxy /dev/null

# 4. One round trip over TLS through the proxy: subscribe, then publish
# until the subscriber has the message (it may not be subscribed at once).
# tls PROGRAM ARGS...: run a mosquitto client against the proxy over TLS.
tls() {
	prog=$1
	shift
	"$prog" -h localhost -p "$tls_port" --cafile "$certs/ca.pem" "$@"
}
message="hello through tlsproxy at $(date '+%H:%M:%S')"
tls mosquitto_sub -t "$topic" -C 1 -W 10 >"$tmp/received" 2>"$tmp/sub.err" &
sub_pid=$!
i=0
while kill -0 "$sub_pid" 2>/dev/null && [ $i -lt 20 ]; do
	sleep 0.3
	tls mosquitto_pub -t "$topic" -m "$message" || die "mosquitto_pub failed"
	i=$((i + 1))
done
sub_status=0
wait "$sub_pid" || sub_status=$?
sub_pid=
if [ $sub_status -ne 0 ]; then
	cat "$tmp/sub.err" >&2
	die "mosquitto_sub failed (status $sub_status)"
fi
received=$(cat "$tmp/received")
[ "$received" = "$message" ] || die "sent \"$message\", received \"$received\""
cat <<EOF

demo: round trip OK: published "$message"
demo:   and received it on $topic over TLS via tlsproxy 127.0.0.1:$tls_port -> mosquitto 127.0.0.1:$mqtt_port

EOF

# 5. Session resumption: a full handshake, then a resumed one, per kind.
probe=$(dirname "$bin")/tlsproxy-probe
if [ -x "$probe" ]; then
	echo "demo: session resumption (tlsproxy-probe):"
	"$probe" --ca "$certs/ca.pem" --servername localhost "127.0.0.1:$tls_port" ||
		die "session resumption did not work"
	echo
fi

if [ "${DEMO_NONINTERACTIVE:-0}" = 1 ]; then
	exit 0
fi

cat <<EOF
Try it from another terminal:

  mosquitto_sub -h localhost -p $tls_port --cafile $certs/ca.pem -t '#' -v
  mosquitto_pub -h localhost -p $tls_port --cafile $certs/ca.pem -t $topic -m hi

  with a client certificate (logged as CN=device1):
  mosquitto_pub -h localhost -p $tls_port --cafile $certs/ca.pem \\
      --cert $certs/client.pem --key $certs/client.key -t $topic -m hi

  check session resumption:  $probe --ca $certs/ca.pem 127.0.0.1:$tls_port
  reload the config and certificates:  kill -HUP $proxy_pid

tlsproxy runs in the foreground; Ctrl-C stops it and mosquitto.
EOF
status=0
wait "$proxy_pid" || status=$?
proxy_pid=
exit "$status"
