#!/usr/bin/env python3
"""Hostile and broken peers: garbage, truncated and oversized records,
stalled handshakes, resets from either side, a backend that is down, idle
connections, running out of file descriptors.  Each must give a log line and
a clean close, never a crash or a leaked fd, and the listener keeps
accepting."""

import os
import resource
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLS12, TLS13, TLSClient, Daemon, EchoBackend, defer,  # noqa: E402
                   case, check, check_eq, free_port, listener_conf, make_conf,
                   wait_closed)

HANDSHAKE_TIMEOUT = 2
S = {}  # the daemon and backends shared by the cases of this file


def shared():
    if "d" not in S:
        raise tplib.Failure("the shared daemon did not start (see the first case)")
    return S["d"]


def connect(name):
    return socket.create_connection(("127.0.0.1", S[name]), timeout=10)


def client_port(sock):
    return sock.getsockname()[1]


def good_roundtrip(version=TLS13):
    c = TLSClient(S["main"], version)
    c.roundtrip(b"still serving")
    c.close_notify()
    c.recv_all()
    c.wait_tcp_eof()
    c.close()


def logged_about(cport, timeout=5):
    """A log line names the client 127.0.0.1:${cport}."""
    return shared().wait_log(r"127\.0\.0\.1:%d\b" % cport, timeout, since=S["mark"])


def after_each(cport=None):
    """The daemon lives, logged about the connection, has its baseline fds
    and still relays."""
    d = shared()
    d.check_alive()
    if cport is not None:
        logged_about(cport)
    d.wait_fds(S["base"])
    good_roundtrip()
    d.wait_fds(S["base"])


@case("start: four listeners, a good connection, fd baseline")
def _():
    main_b = EchoBackend(scope="file", lifetime=300)
    rst_b = tplib.ResetBackend(after=1, scope="file", lifetime=300)
    S.update(main=free_port(), rst=free_port(), idle=free_port())
    S["main_b"], S["rst_b"] = main_b, rst_b
    t = "%ds" % HANDSHAKE_TIMEOUT
    conf = make_conf([
        listener_conf("main", S["main"], main_b.port, handshake_timeout=t),
        listener_conf("rst", S["rst"], rst_b.port, handshake_timeout=t),
        listener_conf("idle", S["idle"], main_b.port, handshake_timeout=t, idle_timeout="2s"),
    ])
    d = Daemon(conf, name="shared", scope="file").start()
    S["d"] = d
    good_roundtrip(TLS12)
    good_roundtrip(TLS13)
    counts = []
    for _ in range(6):
        time.sleep(0.05)
        counts.append(d.fds())
    S["base"] = min(counts)
    S["mark"] = d.mark()
    tplib.diag("baseline: %d fds" % S["base"])


@case("an HTTP request instead of a ClientHello: closed, logged")
def _():
    s = connect("main")
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    wait_closed(s)
    after_each(client_port(s))
    s.close()


@case("4 KiB of random bytes instead of a ClientHello: closed, logged")
def _():
    s = connect("main")
    s.sendall(b"\x16\x03\x01\x00\x10" + os.urandom(4096))
    wait_closed(s)
    after_each(client_port(s))
    s.close()


@case("a truncated ClientHello then FIN: closed, logged")
def _():
    hello = tplib.client_hello()
    s = connect("main")
    s.sendall(hello[:len(hello) // 2])
    s.shutdown(socket.SHUT_WR)
    wait_closed(s)
    after_each(client_port(s))
    s.close()


@case("a truncated ClientHello then silence: closed after handshake_timeout")
def _():
    hello = tplib.client_hello(TLS12)
    s = connect("main")
    t0 = time.monotonic()
    s.sendall(hello[:40])
    wait_closed(s, HANDSHAKE_TIMEOUT + 8)
    took = time.monotonic() - t0
    check(took >= HANDSHAKE_TIMEOUT - 0.5, "closed after %.1f s, before the timeout" % took)
    after_each(client_port(s))
    s.close()


@case("connect and say nothing: closed after handshake_timeout")
def _():
    s = connect("main")
    t0 = time.monotonic()
    wait_closed(s, HANDSHAKE_TIMEOUT + 8)
    took = time.monotonic() - t0
    check(took >= HANDSHAKE_TIMEOUT - 0.5, "closed after %.1f s, before the timeout" % took)
    after_each()
    s.close()


@case("an oversized record (64 KiB) instead of a ClientHello: closed, logged")
def _():
    s = connect("main")
    try:
        s.sendall(b"\x16\x03\x01\xff\xff" + os.urandom(65535))
    except (BrokenPipeError, ConnectionResetError):
        pass
    wait_closed(s)
    after_each(client_port(s))
    s.close()


@case("an oversized application record after the handshake: closed, backend closed")
def _():
    b = S["main_b"]
    n = b.count()
    c = TLSClient(S["main"], TLS13)
    c.roundtrip(b"first")
    rec = b.wait_conns(n + 1)
    try:
        c.sock.sendall(b"\x17\x03\x03\xff\xff" + os.urandom(65535))
    except (BrokenPipeError, ConnectionResetError):
        pass
    wait_closed(c.sock)
    check(rec.done.wait(5), "the backend connection is still open")
    after_each(client_port(c.sock))


@case("an oversized record header in TLS 1.2 after the handshake: closed")
def _():
    c = TLSClient(S["main"], TLS12)
    c.roundtrip(b"first")
    c.sock.sendall(struct.pack("!BHH", 23, 0x0303, 20000) + os.urandom(100))
    wait_closed(c.sock)
    after_each(client_port(c.sock))


@case("client RST in the middle of the handshake")
def _():
    hello = tplib.client_hello()
    s = connect("main")
    cport = client_port(s)
    s.sendall(hello)
    time.sleep(0.2)
    tplib.rst_close(s)
    after_each(cport)


@case("client RST after the handshake with data in flight: backend closed too")
def _():
    b = S["main_b"]
    n = b.count()
    c = TLSClient(S["main"], TLS13)
    c.roundtrip(b"hello")
    rec = b.wait_conns(n + 1)
    c.send(os.urandom(300000))
    cport = client_port(c.sock)
    c.rst()
    check(rec.done.wait(5), "the backend connection is still open after the client's RST")
    after_each(cport)


@case("backend RST: the client gets a clean close, not a hang")
def _():
    c = TLSClient(S["rst"], TLS13)
    c.send(b"this makes the backend reset")
    t0 = time.monotonic()
    c.sock.settimeout(5)
    try:
        data = c.recv_all()
    except ConnectionResetError:
        raise tplib.Failure("the proxy passed the backend's RST on as an RST")
    except socket.timeout:
        raise tplib.Failure("no close within 5 s of the backend's RST")
    check_eq(data, b"", "data from the resetting backend")
    tplib.diag("closed after %.2f s, %s" % (time.monotonic() - t0,
               "close_notify" if c.got_close_notify else "EOF without close_notify"))
    after_each(client_port(c.sock))


@case("backend refused: handshake, then a clean close, one log line, daemon goes on")
def _():
    down_port = free_port()     # nothing listens there (yet)
    port = free_port()
    d = Daemon(make_conf([listener_conf("down", port, down_port, connect_timeout="3s")]),
               name="down").start()
    time.sleep(0.3)
    base = d.fds()
    mark = d.mark()
    c = TLSClient(port, TLS13)
    cport = client_port(c.sock)
    c.sock.settimeout(8)
    try:
        data = c.recv_all()
    except ConnectionResetError:
        raise tplib.Failure("RST instead of a clean close when the backend is down")
    except socket.timeout:
        raise tplib.Failure("no close within 8 s when the backend is down")
    check_eq(data, b"", "data")
    d.wait_log(r"(?i)refused", 5, since=mark)
    time.sleep(0.3)
    lines = [l for l in d.log_since(mark).splitlines() if "127.0.0.1:%d" % cport in l
             or "127.0.0.1:%d" % down_port in l]
    tplib.diag("\n".join(lines))
    refused = [l for l in lines if "efused" in l]
    check(len(refused) == 1, "want one line about the refusal, got %d" % len(refused))
    d.wait_fds(base)
    # The backend comes up: the next connection goes through.
    EchoBackend(port=down_port)
    c = TLSClient(port, TLS12)
    c.roundtrip(b"backend is back")
    c.close_notify()
    c.recv_all()
    c.wait_tcp_eof()
    d.wait_fds(base)


@case("backend slow to accept: the proxy waits for its connect, then relays")
def _():
    lsock, filler = tplib.full_accept_queue()
    port = free_port()
    Daemon(make_conf([listener_conf("slow", port, lsock.getsockname()[1],
                                    connect_timeout="10s")])).start()
    c = TLSClient(port, TLS13)
    time.sleep(0.5)     # the proxy's SYN is dropped; its connect is in progress
    lsock.settimeout(5)
    lsock.accept()[0].close()   # the filler: frees the queue
    conn, _ = lsock.accept()    # the proxy's SYN, retransmitted after 1 s
    defer(conn.close)
    c.send(b"through a slow backend")
    conn.settimeout(5)
    check_eq(conn.recv(100), b"through a slow backend", "bytes at the backend")
    conn.sendall(b"answer")
    check_eq(c.recv_exactly(6), b"answer", "bytes at the client")


@case("backend never accepts: connect_timeout closes cleanly, logged")
def _():
    lsock, filler = tplib.full_accept_queue()
    port = free_port()
    d = Daemon(make_conf([listener_conf("blackhole", port, lsock.getsockname()[1],
                                        connect_timeout="1s")])).start()
    base = d.fds()
    c = TLSClient(port, TLS13)
    cport = client_port(c.sock)
    started = time.monotonic()
    c.sock.settimeout(8)
    check_eq(c.recv_all(), b"", "data")
    check(c.got_close_notify, "no close_notify after the connect timed out")
    check(time.monotonic() - started > 0.8, "closed before connect_timeout")
    d.wait_log(r"blackhole 127\.0\.0\.1:%d: backend .*connect timed out after 1s" % cport)
    d.wait_fds(base)


@case("idle_timeout = 2s: an idle relayed connection is closed")
def _():
    c = TLSClient(S["idle"], TLS13)
    c.roundtrip(b"then idle")
    t0 = time.monotonic()
    c.sock.settimeout(10)
    try:
        data = c.recv_all()
    except socket.timeout:
        raise tplib.Failure("not closed within 10 s")
    took = time.monotonic() - t0
    check_eq(data, b"", "data")
    check(1.5 <= took <= 6, "closed after %.1f s, want about 2" % took)
    after_each(client_port(c.sock))


@case("no fd leak after all of the above; 30 good connections")
def _():
    d = shared()
    for i in range(30):
        good_roundtrip(TLS12 if i % 2 else TLS13)
    d.wait_fds(S["base"])
    d.check_alive()


@case("the shared daemon exits 0 on SIGTERM, no sanitizer report")
def _():
    shared().stop()


@case("EMFILE (RLIMIT_NOFILE 40, 80 connections): no busy loop, accepts again after")
def _():
    backend = EchoBackend()
    port = free_port()
    d = Daemon(make_conf(listener_conf("emfile", port, backend.port, handshake_timeout="30s")),
               name="emfile", nofile=40).start()
    c = TLSClient(port, TLS13)
    c.roundtrip(b"before")
    c.close_notify()
    c.recv_all()
    c.close()
    time.sleep(0.3)
    base = d.fds()
    socks = []
    try:
        for _ in range(80):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        tplib.wait_until(lambda: d.fds() >= 38, 10, "the daemon to reach its fd limit")
        time.sleep(0.5)
        cpu0 = d.cpu_seconds()
        time.sleep(2)
        cpu = d.cpu_seconds() - cpu0
        tplib.diag("fds %d (baseline %d), CPU %.2f s in 2 s at the limit" % (d.fds(), base, cpu))
        check(cpu < 1.0, "busy loop at EMFILE: %.2f s CPU in 2 s" % cpu)
        d.check_alive()
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 15
    while True:
        try:
            c = TLSClient(port, TLS13, timeout=3)
            c.roundtrip(b"after")
            break
        except (OSError, tplib.Failure) as e:
            if time.monotonic() > deadline:
                raise tplib.Failure("no good connection within 15 s after EMFILE: %r" % e)
            time.sleep(0.2)
    c.close_notify()
    c.recv_all()
    c.close()
    d.wait_fds(base, timeout=10)
    d.wait_log(r"(?i)(too many open files|EMFILE)", 1)
    # Said at start-up, before any client met the limit.
    d.wait_log(r"warning: descriptor limit 40 holds about \d connections, fewer than "
               r"max_connections allows \(100000\)", 1)


@case("soft RLIMIT_NOFILE 64 under a higher hard one: raised, 100 connections held at once")
def _():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard < 1000:
        raise tplib.Skip("hard RLIMIT_NOFILE %d leaves no room above 64" % hard)
    backend = EchoBackend()
    port = free_port()
    d = Daemon(make_conf(listener_conf("soft", port, backend.port)), name="softlimit",
               soft_nofile=64).start()
    d.wait_log(r"info: descriptor limit raised from 64 to the hard limit %d$" % hard, 1)
    clients = []
    try:
        for i in range(100):
            c = TLSClient(port, TLS13)
            clients.append(c)
            c.roundtrip(b"held %d" % i)
        # A client socket and a backend socket each: far past the old 64.
        check(d.fds() >= 200, "only %d descriptors with 100 connections open" % d.fds())
        for i, c in enumerate(clients):
            c.roundtrip(b"still %d" % i)
    finally:
        for c in clients:
            c.close()
    check(d.count_log(r"(?i)too many open files|EMFILE") == 0, "EMFILE under the hard limit")


tplib.main()
