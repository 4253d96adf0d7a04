#!/usr/bin/env python3
"""Signals: SIGHUP re-reads the config (new certificates and backends for
new connections, open connections keep relaying, a broken config is logged
and the old one keeps serving); SIGTERM and SIGINT stop accepting, let open
connections finish (up to shutdown_timeout) and exit 0."""

import os
import re
import shutil
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLS12, TLS13, TLSClient, Daemon, EchoBackend, case,  # noqa: E402
                   cert, check, check_eq, defer, free_port, listener_conf, make_conf)


def subject(port, version=TLS13):
    c = TLSClient(port, version)
    c.roundtrip(b"which certificate?")
    s = c.peer_subject()
    c.close_notify()
    c.recv_all()
    c.close()
    return s


def reload(d, conf=None, ok=True):
    """Write ${conf} (if given), send SIGHUP, wait for the log to say so."""
    mark = d.mark()
    if conf is not None:
        d.write_conf(conf)
    d.signal(signal.SIGHUP)
    d.wait_log(r"(?i)reload", 5, since=mark)
    time.sleep(0.3)     # let every worker pick the new config up
    d.check_alive()
    return mark


def copy_cert(src, dst):
    for ext, mode in ((".pem", 0o644), (".key", 0o600)):
        tmp = dst + ext + ".tmp"
        shutil.copyfile(cert(src + ext), tmp)
        os.chmod(tmp, mode)
        os.rename(tmp, dst + ext)


@case("SIGHUP with a new certificate: new connections get it, an open one keeps relaying")
def _():
    backend = EchoBackend()
    port = free_port()
    d = Daemon(make_conf(listener_conf("mqtt", port, backend.port))).start()
    check("O=reloaded" not in subject(port), "reloaded certificate before the reload")
    old = TLSClient(port, TLS12)
    old.roundtrip(b"before the reload")
    reload(d, make_conf(listener_conf("mqtt", port, backend.port, cert_name="server2")))
    for version in (TLS13, TLS12):
        s = subject(port, version)
        check("O=reloaded" in s, "%s after SIGHUP: subject %s" % (version.name, s))
    old.roundtrip(b"after the reload " * 1000)
    old.close_notify()
    check_eq(old.recv_all(), b"", "data")
    old.wait_tcp_eof()


@case("SIGHUP after the certificate files were replaced in place")
def _():
    backend = EchoBackend()
    port = free_port()
    live = os.path.join(tplib.tmpdir(), "live")
    os.makedirs(live, exist_ok=True)
    copy_cert("server", os.path.join(live, "cert"))
    conf = make_conf(listener_conf("mqtt", port, backend.port, cert_name=None,
                                   cert=os.path.join(live, "cert.pem"),
                                   key=os.path.join(live, "cert.key")))
    d = Daemon(conf).start()
    check("O=reloaded" not in subject(port), "reloaded certificate before the reload")
    copy_cert("server2", os.path.join(live, "cert"))
    reload(d)
    s = subject(port)
    check("O=reloaded" in s, "after SIGHUP: subject %s" % s)


@case("SIGHUP with a broken config: errors logged as FILE:LINE:, the old config serves")
def _():
    backend = EchoBackend()
    port = free_port()
    good = make_conf(listener_conf("mqtt", port, backend.port))
    d = Daemon(good).start()
    old = TLSClient(port, TLS13)
    old.roundtrip(b"before")
    mark = reload(d, good.replace("workers = 2;", "workers = 2;\nbogus = ;"))
    d.wait_log(re.escape(d.conf_path) + r":\d+:", 5, since=mark)
    check("O=reloaded" not in subject(port), "wrong certificate")
    old.roundtrip(b"after a failed reload")
    # A config error in the listener, then a good config again.
    reload(d, make_conf(listener_conf("mqtt", port, backend.port, cert_name="server2",
                                      verify_client="sometimes")))
    check("O=reloaded" not in subject(port), "a rejected config was applied")
    reload(d, make_conf(listener_conf("mqtt", port, backend.port, cert_name="server2")))
    check("O=reloaded" in subject(port), "a good config after a bad one was not applied")
    old.roundtrip(b"still here")


@case("SIGHUP moving a listener of an @include'd file, dropping another: refused, "
      "each named where it stands")
def _():
    backend = EchoBackend()
    mqtt, other = free_port(), free_port()
    d = Daemon(make_conf([listener_conf("mqtt", mqtt, backend.port),
                          listener_conf("other", other, backend.port)])).start()
    inc = os.path.join(os.path.dirname(d.conf_path), "%s-listeners.conf" % d.name)
    with open(inc, "w") as f:
        f.write("# listeners\n" + listener_conf("mqtt", free_port(), backend.port) + "\n")
    defer(os.unlink, inc)
    mark = reload(d, make_conf('@include "%s"' % os.path.basename(inc)))
    moved = d.wait_log(r"reload refused: (\S+):(\d+): listeners\[0\]: listener \"mqtt\": listen "
                       r"address changed \(that needs a restart\)", 5, since=mark)
    check_eq(moved.group(1), inc, "the file named for the moved listener")
    check_eq(int(moved.group(2)), 2, "the line of the moved listener in its file")
    d.wait_log(r"reload refused: %s: listeners: listener \"other\" on 127\.0\.0\.1:%d is gone "
               r"\(removing a listener needs a restart\)" % (re.escape(d.conf_path), other),
               5, since=mark)
    for port in (mqtt, other):
        TLSClient(port, TLS13).roundtrip(b"the old config serves")


@case("SIGHUP with a certificate that does not match its key: old config serves")
def _():
    backend = EchoBackend()
    port = free_port()
    d = Daemon(make_conf(listener_conf("mqtt", port, backend.port))).start()
    mark = reload(d, make_conf(listener_conf("mqtt", port, backend.port, cert_name=None,
                                             cert=cert("server2.pem"), key=cert("client.key"))))
    d.wait_log(r"(?i)(key|match|error|fail)", 5, since=mark)
    s = subject(port)
    check("O=reloaded" not in s, "a certificate that does not match its key was applied")


@case("SIGHUP with a new backend: new connections go there, the open one stays")
def _():
    b1 = EchoBackend(greeting=b"1")
    b2 = EchoBackend(greeting=b"2")
    port = free_port()
    d = Daemon(make_conf(listener_conf("mqtt", port, b1.port))).start()
    old = TLSClient(port, TLS13)
    check_eq(old.recv_exactly(1), b"1", "first backend")
    reload(d, make_conf(listener_conf("mqtt", port, b2.port)))
    new = TLSClient(port, TLS13)
    check_eq(new.recv_exactly(1), b"2", "backend after the reload")
    old.roundtrip(b"old connection")
    new.roundtrip(b"new connection")


@case("10 SIGHUPs in a row during traffic")
def _():
    backend = EchoBackend()
    port = free_port()
    d = Daemon(make_conf(listener_conf("mqtt", port, backend.port))).start()
    c = TLSClient(port, TLS13)
    for i in range(10):
        d.signal(signal.SIGHUP)
        c.roundtrip(b"traffic %d " % i * 100)
        time.sleep(0.05)
    time.sleep(0.5)
    d.check_alive()
    for i in range(5):
        TLSClient(port, TLS12).roundtrip(b"new %d" % i)
    c.roundtrip(b"end")


@case("SIGTERM: stops accepting, an open connection finishes, then exit 0")
def _():
    backend = EchoBackend()
    port = free_port()
    d = Daemon(make_conf(listener_conf("mqtt", port, backend.port),
                         shutdown_timeout="30s")).start()
    c = TLSClient(port, TLS13)
    c.roundtrip(b"before SIGTERM")
    d.signal(signal.SIGTERM)
    tplib.wait_until(lambda: not tplib.port_open(port), 5, "the listener to close")
    check(d.alive(), "exited with a connection still open")
    for i in range(3):
        c.roundtrip(b"draining %d " % i * 1000)
        time.sleep(0.2)
    check(d.alive(), "exited with a connection still open")
    c.close_notify()
    check_eq(c.recv_all(), b"", "data")
    rc = d.wait_exit(5)
    check_eq(rc, 0, "exit status within 5 s of the last connection closing")


@case("SIGINT with no connections: exit 0 within 5 s")
def _():
    backend = EchoBackend()
    port = free_port()
    d = Daemon(make_conf(listener_conf("mqtt", port, backend.port))).start()
    c = TLSClient(port, TLS13)
    c.roundtrip(b"x")
    c.close_notify()
    c.recv_all()
    c.wait_tcp_eof()
    t0 = time.monotonic()
    d.stop(sig=signal.SIGINT, timeout=5)
    tplib.diag("exited after %.2f s" % (time.monotonic() - t0))


@case("shutdown_timeout = 2s: an idle open connection is cut, exit 0")
def _():
    backend = EchoBackend()
    port = free_port()
    d = Daemon(make_conf(listener_conf("mqtt", port, backend.port),
                         shutdown_timeout="2s")).start()
    c = TLSClient(port, TLS13)
    c.roundtrip(b"then idle")
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    rc = d.wait_exit(10)
    took = time.monotonic() - t0
    check(rc is not None, "still running 10 s after SIGTERM")
    check_eq(rc, 0, "exit status")
    check(1.5 <= took, "exited after %.1f s, before shutdown_timeout" % took)
    c.sock.settimeout(5)
    check_eq(c.recv_all(), b"", "data")


tplib.main()
