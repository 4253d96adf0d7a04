#!/usr/bin/env python3
"""Relaying: TLS 1.2 and 1.3 on one listener, bytes checked both ways, a
large transfer in both directions at once, half-closes in both directions,
an RSA certificate, several listeners, many clients at once."""

import hashlib
import os
import socket
import ssl
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLS12, TLS13, TLSClient, Daemon, EchoBackend,  # noqa: E402
                   case, check, check_eq, free_port, listener_conf, make_conf)

MiB = 1 << 20


STATELESS = 'mode = "stateless"; seed = "relay-test-seed-0123456789abcdef";'


def echo_proxy(version_list=None, cert_name="server", tickets='mode = "off";', **settings):
    """An echo backend with tlsproxy in front; returns (daemon, port, backend)."""
    backend = EchoBackend()
    port = free_port()
    if version_list:
        settings["protocols"] = version_list
    d = Daemon(make_conf(listener_conf("mqtt", port, backend.port, cert_name, **settings),
                         tickets=tickets)).start()
    return d, port, backend


def roundtrips(version):
    d, port, backend = echo_proxy()
    c = TLSClient(port, version)
    check_eq(c.version, tplib.VERSION_NAME[version], "negotiated version")
    for msg in (b"x", b"hello\n", bytes(range(256)) * 64, os.urandom(16384),
                os.urandom(16385), os.urandom(100000)):
        c.roundtrip(msg)
    c.close_notify()
    check_eq(c.recv_all(), b"", "data after the echo")
    rec = backend.wait_conns(1)
    check(rec.eof.wait(5), "the backend did not get EOF after close_notify")
    check_eq(rec.nreceived, 1 + 6 + 256 * 64 + 16384 + 16385 + 100000, "bytes at the backend")
    c.wait_tcp_eof()
    d.wait_log(r"mqtt.*127\.0\.0\.1:%d.*%s" % (c.sock.getsockname()[1],
                                                tplib.VERSION_NAME[version].replace(".", r"\.")))


@case("TLS 1.3 round trips of 1 B to 100 kB, bytes checked both ways")
def _():
    roundtrips(TLS13)


@case("TLS 1.2 round trips of 1 B to 100 kB, bytes checked both ways")
def _():
    roundtrips(TLS12)


@case("TLS 1.2 and TLS 1.3 clients on one listener at the same time")
def _():
    d, port, backend = echo_proxy()
    a = TLSClient(port, TLS12)
    b = TLSClient(port, TLS13)
    check_eq((a.version, b.version), ("TLSv1.2", "TLSv1.3"), "versions")
    a.roundtrip(b"from a")
    b.roundtrip(b"from b")
    a.roundtrip(b"a again")


@case("openssl s_client completes a TLS 1.3 and a TLS 1.2 handshake")
def _():
    d, port, backend = echo_proxy()
    for flag, name in (("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")):
        rc, out = tplib.s_client(port, [flag])
        check_eq(rc, 0, "s_client %s status (output: %s)" % (flag, out[-600:]))
        tplib.check_match(r"Verify return code: 0 \(ok\)", out, "s_client output")
        tplib.check_match(r"Protocol *: *%s|New, %s" % (name, name), out, "s_client output")


@case("50 MiB each way at the same time, SHA-256 checked (TLS 1.3)")
def _():
    total = 50 * MiB
    backend = tplib.StreamBackend(total, seed=7)
    port = free_port()
    Daemon(make_conf(listener_conf("bulk", port, backend.port))).start()
    c = TLSClient(port, TLS13)
    sent = hashlib.sha256()
    got = hashlib.sha256()
    count = [0]

    def chunks():
        for chunk in tplib.pattern_chunks(3, total):
            sent.update(chunk)
            yield chunk

    def sink(data):
        got.update(data)
        count[0] += len(data)

    c.pump(chunks(), sink, timeout=45, close="notify")
    rec = backend.wait_conns(1)
    check(rec.done.wait(10), "backend still busy")
    check(rec.error is None, "backend error: %r" % rec.error)
    check_eq(count[0], total, "bytes received by the client")
    check_eq(rec.nreceived, total, "bytes received by the backend")
    check_eq(got.hexdigest(), rec.sent_sha, "backend->client SHA-256")
    check_eq(rec.sha.hexdigest(), sent.hexdigest(), "client->backend SHA-256")
    check(c.got_close_notify, "the client got no close_notify after the backend's FIN")


@case("client close_notify right after 1 MiB: backend gets EOF, all the echo still arrives")
def _():
    d, port, backend = echo_proxy()
    c = TLSClient(port, TLS13)
    data = os.urandom(MiB)
    got = bytearray()
    c.pump([data], got.extend, timeout=20, close="notify")
    check_eq(len(got), len(data), "echoed bytes after close_notify")
    check(bytes(got) == data, "echoed bytes differ")
    rec = backend.wait_conns(1)
    check(rec.eof.wait(5), "backend got no EOF")
    check(c.got_close_notify, "the backend's FIN did not become a close_notify")
    c.wait_tcp_eof()


@case("client close_notify: backend sees EOF, then its reply still reaches the client")
def _():
    reply = os.urandom(200000)
    backend = tplib.ReplyAfterEOFBackend(reply)
    port = free_port()
    Daemon(make_conf(listener_conf("halfclose", port, backend.port))).start()
    for version in (TLS12, TLS13):
        c = TLSClient(port, version)
        c.send(b"request")
        c.close_notify()
        got = c.recv_all()
        check_eq(len(got), len(reply), "%s: reply bytes after close_notify" % version.name)
        check(got == reply, "reply bytes differ")
        check(c.got_close_notify, "%s: no close_notify at the end" % version.name)
        c.wait_tcp_eof()
    check_eq(bytes(backend.conns[0].received), b"request", "bytes at the backend")
    check(backend.conns[1].eof.is_set(), "second backend connection saw no EOF")


@case("client TCP FIN without close_notify: backend sees EOF, its reply still arrives")
def _():
    reply = b"late reply " * 1000
    backend = tplib.ReplyAfterEOFBackend(reply)
    port = free_port()
    Daemon(make_conf(listener_conf("fin", port, backend.port))).start()
    c = TLSClient(port, TLS13)
    c.send(b"request")
    rec = backend.wait_conns(1)
    tplib.wait_until(lambda: rec.nreceived >= 7, 5, "the request at the backend")
    c.shutdown_wr()
    check(rec.eof.wait(5), "backend got no EOF after the client's FIN")
    check_eq(bytes(rec.received), b"request", "bytes at the backend")
    got = c.recv_all()
    check_eq(got, reply, "reply after the client's FIN")
    c.wait_tcp_eof()


@case("backend FIN: client gets close_notify, then can still send to the backend")
def _():
    backend = tplib.GreetHalfCloseBackend(b"greeting\n")
    port = free_port()
    Daemon(make_conf(listener_conf("bfin", port, backend.port))).start()
    for version in (TLS12, TLS13):
        n = backend.count()
        c = TLSClient(port, version)
        check_eq(c.recv_all(), b"greeting\n", "greeting")
        check(c.got_close_notify, "%s: backend FIN gave no close_notify" % version.name)
        check(not c.tcp_eof, "%s: the proxy closed TCP while the client still sends" % version.name)
        rec = backend.wait_conns(n + 1)
        c.send(b"after the backend's FIN " * 100)
        c.send(b"end")
        c.close_notify()
        check(rec.eof.wait(5), "%s: backend got no EOF" % version.name)
        check_eq(bytes(rec.received), b"after the backend's FIN " * 100 + b"end",
                 "%s: bytes at the backend" % version.name)
        c.wait_tcp_eof()


@case("connection ends when both directions are done; fds return to the baseline")
def _():
    d, port, backend = echo_proxy()
    c0 = TLSClient(port, TLS13)
    c0.roundtrip(b"x")
    c0.close_notify()
    c0.recv_all()
    c0.wait_tcp_eof()
    base = d.fds()
    d.wait_fds(base)
    for i in range(10):
        c = TLSClient(port, TLS12 if i % 2 else TLS13)
        c.roundtrip(b"message %d" % i)
        c.close_notify()
        check_eq(c.recv_all(), b"", "extra data")
        c.wait_tcp_eof()
        c.close()
    d.wait_fds(base)


def finish_handshake_unsent(c):
    """Run ${c}'s handshake until only its Finished is left to send."""
    while True:
        try:
            c.obj.do_handshake()
            return
        except ssl.SSLWantReadError:
            c._flush()
            c._fill()


@case("client resets right after its TLS 1.3 Finished: no backend connection, logged")
def _():
    # The RST makes the proxy's session ticket writes fail: that is how it
    # knows.  The daemon is stopped while the Finished and the RST go out,
    # so that the RST is there before the tickets, every time.
    d, port, backend = echo_proxy(tickets=STATELESS)
    tries = 5
    for i in range(tries):
        c = TLSClient(port, TLS13, handshake=False)
        finish_handshake_unsent(c)
        d.freeze()
        try:
            c._flush()
            c.rst()
        finally:
            d.thaw()
    spared = r"closed by the client right after the handshake"
    tplib.wait_until(lambda: d.count_log(spared) >= tries, 10,
                     "%d log lines /%s/" % (tries, spared))
    check_eq(backend.count(), 0, "backend connections")
    c = TLSClient(port, TLS13)
    c.roundtrip(b"still relaying")
    check_eq(backend.count(), 1, "backend connections")


@case("client sends and leaves at once: its data still reaches the backend (x20)")
def _():
    d, port, backend = echo_proxy(tickets=STATELESS)
    for i in range(20):
        version = TLS13 if i % 2 == 0 else TLS12
        c = TLSClient(port, version)
        msg = b"fire and forget %d" % i
        c.send(msg)
        c.close_notify()
        c.close()
        rec = backend.wait_conns(i + 1)
        check(rec.eof.wait(5), "%d: the backend got no EOF" % i)
        check_eq(bytes(rec.received), msg, "%d (%s): bytes at the backend" % (i, version.name))


class SmallWritesBackend(tplib.Backend):
    """Sends ${count} 100-byte messages, each its own write, then FIN."""

    def __init__(self, count, **kw):
        self.count = count
        super().__init__(**kw)

    @staticmethod
    def message(i):
        return (b"message %08d " % i).ljust(100, b".")

    def handle(self, conn, rec):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(self.count):
            conn.sendall(self.message(i))
        conn.shutdown(socket.SHUT_WR)
        self.read_to_eof(conn, rec)


@case("100,000 small backend writes to a client that reads late: all arrive, in order")
def _():
    # Small records are held and sent together (sockbio.h); the client not
    # reading at first makes the proxy hold them against a full socket.
    count = 100000
    backend = SmallWritesBackend(count)
    port = free_port()
    d = Daemon(make_conf(listener_conf("small", port, backend.port))).start()
    for version in (TLS13, TLS12):
        c = TLSClient(port, version)
        time.sleep(1)
        got = c.recv_all()
        check(c.got_close_notify, "%s: no close_notify after the data" % version.name)
        check_eq(len(got), 100 * count, "%s: bytes" % version.name)
        check(got == b"".join(SmallWritesBackend.message(i) for i in range(count)),
              "%s: the messages differ or are out of order" % version.name)
        c.close_notify()
        c.wait_tcp_eof()
    d.wait_log(r"small .*closed after .*\(0 bytes in, %d out\)" % (100 * count))


@case("RSA certificate: TLS 1.2 (ECDHE-RSA) and TLS 1.3 round trips")
def _():
    d, port, backend = echo_proxy(cert_name="rsa-server")
    c = TLSClient(port, TLS12)
    check("ECDHE-RSA" in c.obj.cipher()[0], "TLS 1.2 cipher %s is not ECDHE-RSA" % c.obj.cipher()[0])
    c.roundtrip(b"rsa 1.2")
    c = TLSClient(port, TLS13)
    c.roundtrip(b"rsa 1.3")
    rc, out = tplib.s_client(port, ["-tls1_3"])
    check_eq(rc, 0, "s_client status")
    tplib.check_match(r"(Peer signature type: RSA-PSS|Server public key is 2048 bit)", out,
                      "s_client output")


@case("two listeners, each relaying to its own backend")
def _():
    ba = EchoBackend(greeting=b"A")
    bb = EchoBackend(greeting=b"B")
    pa, pb = free_port(), free_port()
    d = Daemon(make_conf([listener_conf("alpha", pa, ba.port),
                          listener_conf("beta", pb, bb.port, "rsa-server")])).start()
    ca = TLSClient(pa, TLS13)
    cb = TLSClient(pb, TLS12)
    check_eq(ca.recv_exactly(1), b"A", "listener alpha's backend")
    check_eq(cb.recv_exactly(1), b"B", "listener beta's backend")
    ca.roundtrip(b"to alpha")
    cb.roundtrip(b"to beta")
    d.wait_log(r"alpha")
    d.wait_log(r"beta")


@case("backend given by host name (localhost) is resolved without blocking and relays")
def _():
    b = EchoBackend(greeting=b"N")
    port = free_port()
    d = Daemon(make_conf(listener_conf("named", port, "localhost:%d" % b.port))).start()
    for version in (TLS13, TLS12):
        c = TLSClient(port, version)
        check_eq(c.recv_exactly(1), b"N", "greeting through the named backend")
        c.roundtrip(b"resolved")
    # (No test of an unresolvable name: it would send a DNS query off this machine.)
    d.wait_log(r"named")


@case("protocols = [TLSv1.3] refuses TLS 1.2; [TLSv1.2] refuses TLS 1.3")
def _():
    b = EchoBackend()
    p13, p12 = free_port(), free_port()
    Daemon(make_conf([listener_conf("only13", p13, b.port, protocols=["TLSv1.3"]),
                      listener_conf("only12", p12, b.port, protocols=["TLSv1.2"])])).start()
    TLSClient(p13, TLS13).roundtrip(b"ok")
    TLSClient(p12, TLS12).roundtrip(b"ok")
    for port, version in ((p13, TLS12), (p12, TLS13)):
        try:
            TLSClient(port, version, timeout=5)
        except (tplib.ssl.SSLError, ConnectionError):
            continue
        raise tplib.Failure("%s handshake succeeded on port %d" % (version.name, port))
    check_eq(b.count(), 2, "backend connections")


@case("20 clients at once, 200 kB each, workers = 2")
def _():
    d, port, backend = echo_proxy()
    errors = []

    def one(i):
        try:
            c = TLSClient(port, TLS12 if i % 2 else TLS13, timeout=20)
            data = os.urandom(200000)
            got = bytearray()
            c.pump([data], got.extend, timeout=30)
            if bytes(got) != data:
                errors.append("client %d: echo differs (%d bytes)" % (i, len(got)))
        except Exception as e:
            errors.append("client %d: %r" % (i, e))
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    check(not any(t.is_alive() for t in threads), "clients still running")
    check(not errors, "\n".join(errors))


tplib.main()
