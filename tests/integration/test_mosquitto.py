#!/usr/bin/env python3
"""The real job: Debian's mosquitto as the backend, tlsproxy in front, and
mosquitto_sub/mosquitto_pub talking MQTT over TLS through it."""

import os
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (Daemon, Mosquitto, case, cert, check, check_eq,  # noqa: E402
                   free_port, listener_conf, make_conf)

SUB = shutil.which("mosquitto_sub")
PUB = shutil.which("mosquitto_pub")


def proxy(**settings):
    m = Mosquitto()
    port = free_port()
    d = Daemon(make_conf(listener_conf("mqtt", port, m.port, **settings))).start()
    return d, port


def tls_args(port, host="localhost", version=None, client=None):
    args = ["-h", host, "-p", str(port), "--cafile", cert("ca.pem")]
    if version:
        args += ["--tls-version", version]
    if client:
        args += ["--cert", cert(client + ".pem"), "--key", cert(client + ".key")]
    return args


def pubsub(port, message, topic="tlsproxy/test", **kw):
    """Subscribe (-C 1 -W 10), publish until the subscriber has the message;
    returns what it printed."""
    # stdout to a file: a big message must not block the subscriber on a full pipe.
    outpath = tplib.tmpfile("sub-%d.out" % time.monotonic_ns())
    with open(outpath, "wb") as outf:
        sub = tplib.popen([SUB] + tls_args(port, **kw) + ["-t", topic, "-C", "1", "-W", "10"],
                          stdout=outf)
    time.sleep(0.3)
    deadline = time.monotonic() + 10
    pub_cmd = [PUB] + tls_args(port, **kw) + ["-t", topic]
    if isinstance(message, bytes):
        pub_cmd += ["-s"]
    else:
        pub_cmd += ["-m", message]
    while sub.poll() is None and time.monotonic() < deadline:
        rc, out, err = tplib.run(pub_cmd, input=message if isinstance(message, bytes) else None,
                                 timeout=10)
        check_eq(rc, 0, "mosquitto_pub status (%s)" % err.strip())
        try:
            sub.wait(0.5)
        except subprocess.TimeoutExpired:
            pass
    try:
        _, err = sub.communicate(timeout=12)
    except subprocess.TimeoutExpired:
        raise tplib.Failure("mosquitto_sub did not finish")
    check_eq(sub.returncode, 0, "mosquitto_sub status (%s)" % err.decode(errors="replace").strip())
    with open(outpath, "rb") as f:
        return f.read()


@case("MQTT over TLS 1.3: mosquitto_sub gets what mosquitto_pub sent through tlsproxy")
def _():
    d, port = proxy()
    out = pubsub(port, "hello through tlsproxy")
    check_eq(out, b"hello through tlsproxy\n", "message")
    d.wait_log(r"TLSv1\.3")


@case("MQTT over TLS 1.2 (--tls-version tlsv1.2, listener protocols = [TLSv1.2])")
def _():
    # --tls-version only sets the client's minimum in libmosquitto 2.0, so
    # the listener is what pins TLS 1.2.
    d, port = proxy(protocols=["TLSv1.2"])
    out = pubsub(port, "hello over TLS 1.2", version="tlsv1.2")
    check_eq(out, b"hello over TLS 1.2\n", "message")
    d.wait_log(r"TLSv1\.2")


@case("MQTT to 127.0.0.1 verified against the IP SAN")
def _():
    d, port = proxy()
    out = pubsub(port, "by address", host="127.0.0.1")
    check_eq(out, b"by address\n", "message")


@case("a 256 KiB MQTT message")
def _():
    d, port = proxy()
    payload = bytes(os.urandom(128 * 1024)).hex().encode()
    out = pubsub(port, payload, topic="tlsproxy/big")
    check_eq(len(out), len(payload) + 1, "message length")
    check(out[:-1] == payload, "message differs")


@case("MQTT with client certificates (verify_client = require)")
def _():
    d, port = proxy(client_ca=cert("ca.pem"), verify_client="require")
    out = pubsub(port, "with a client certificate", client="client")
    check_eq(out, b"with a client certificate\n", "message")
    d.wait_log(r"CN ?= ?device1")
    rc, out, err = tplib.run([PUB] + tls_args(port) + ["-t", "x", "-m", "no cert"], timeout=15)
    check(rc != 0, "mosquitto_pub without a client certificate succeeded")


@case("make demo's script: mosquitto behind tlsproxy, one message through, exit 0")
def _():
    env = dict(os.environ, DEMO_NONINTERACTIVE="1", MOSQUITTO=tplib.MOSQUITTO,
               DEMO_CERTS=tplib.tmpfile("demo-certs"))
    rc, out, err = tplib.run(["sh", os.path.join(tplib.TOP_SRCDIR, "tests", "demo.sh"),
                              tplib.TLSPROXY, tplib.TOP_SRCDIR], timeout=90, env=env)
    check_eq(rc, 0, "demo.sh status; output:\n%s%s\n" % (out[-1500:], err[-1500:]))
    tplib.check_match(r"received it on \S+ over TLS via tlsproxy", out, "demo output")


if tplib.MOSQUITTO == "no" or not os.access(tplib.MOSQUITTO, os.X_OK):
    tplib.skip_all("mosquitto is not installed (MOSQUITTO=%s)" % tplib.MOSQUITTO)
if not SUB or not PUB:
    tplib.skip_all("mosquitto_sub/mosquitto_pub are not installed (mosquitto-clients)")
tplib.main()
