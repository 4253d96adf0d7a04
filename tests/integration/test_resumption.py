#!/usr/bin/env python3
"""TLS 1.2 session-ID resumption through OpenSSL's session cache, checked
with `openssl s_client -sess_out/-sess_in`: shared by the workers, kept per
listener, turned off by size = 0, bounded by its timeout; and with tickets
off no ticket is issued."""

import os
import re
import socket
import ssl
import struct
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLS13, TLSClient, Daemon, EchoBackend, case, check,  # noqa: E402
                   check_eq, free_port, listener_conf, make_conf, s_client, tmpfile)


session = tplib.s_client_tls12


def proxy(nlisteners=1, **conf):
    backend = EchoBackend()
    ports = [free_port() for _ in range(nlisteners)]
    d = Daemon(make_conf([listener_conf("l%d" % i, p, backend.port)
                          for i, p in enumerate(ports)], **conf)).start()
    return d, ports


@case("TLS 1.2 without tickets: first New, then Reused by session ID")
def _():
    d, (port,) = proxy(workers=2)
    f = tmpfile("sess-basic.pem")
    check_eq(session(port, sess_out=f)[0], "New", "first connection")
    check(os.path.getsize(f) > 0, "no session written")
    check_eq(session(port, sess_in=f)[0], "Reused", "second connection")
    d.wait_log(r"TLSv1\.2.*(resum|reuse|abbrev)", 5)


@case("a session survives its connection's reset: TLS 1.2 session ID and TLS 1.3 stateful")
def _():
    # Devices that drop off the network reset, or vanish, without a
    # close_notify; they are the ones that reconnect and want to resume.
    d, (port,) = proxy(workers=1, tickets='mode = "stateful";')
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = tplib.client_context()
        ctx.minimum_version = ctx.maximum_version = version
        ctx.options |= ssl.OP_NO_TICKET if version == ssl.TLSVersion.TLSv1_2 else 0
        sess = None
        reused = []
        for _ in range(4):
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            s = ctx.wrap_socket(raw, server_hostname="localhost", session=sess)
            s.sendall(b"x")
            check_eq(s.recv(1), b"x", "echo")
            reused.append(s.session_reused)
            sess = s.session
            # RST: no close_notify, no FIN.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            time.sleep(0.1)
        check_eq(reused, [False, True, True, True], "resumed after resets (%s)" % version.name)


@case("workers = 2: 20 reconnects with the same session all resume")
def _():
    d, (port,) = proxy(workers=2)
    f = tmpfile("sess-many.pem")
    check_eq(session(port, sess_out=f)[0], "New", "first connection")
    results = [session(port, sess_in=f)[0] for _ in range(20)]
    check_eq(results, ["Reused"] * 20, "reconnects")


@case("a session from listener A does not resume on listener B (same certificate)")
def _():
    d, (a, b) = proxy(nlisteners=2, workers=2)
    fa = tmpfile("sess-a.pem")
    fb = tmpfile("sess-b.pem")
    check_eq(session(a, sess_out=fa)[0], "New", "A first")
    check_eq(session(b, sess_in=fa)[0], "New", "A's session on B")
    check_eq(session(a, sess_in=fa)[0], "Reused", "A's session on A")
    check_eq(session(b, sess_out=fb)[0], "New", "B first")
    check_eq(session(a, sess_in=fb)[0], "New", "B's session on A")
    check_eq(session(b, sess_in=fb)[0], "Reused", "B's session on B")


@case("session_cache size = 0: every connection is New")
def _():
    d, (port,) = proxy(session_cache='size = 0; timeout = "5m";')
    f = tmpfile("sess-off.pem")
    result, out = session(port, sess_out=f)
    check_eq(result, "New", "first connection")
    if os.path.exists(f):
        check_eq([session(port, sess_in=f)[0] for _ in range(3)], ["New"] * 3, "reconnects")
    else:
        # Without a cache the server sends an empty session ID: nothing to resume.
        tplib.check_match(r"^\s*Session-ID: *$", out, "s_client output")


@case("session_cache timeout = 2s: a 3 s old session is New")
def _():
    d, (port,) = proxy(session_cache='size = 100; timeout = "2s";')
    f = tmpfile("sess-timeout.pem")
    session(port, sess_out=f)
    check_eq(session(port, sess_in=f)[0], "Reused", "at once")
    time.sleep(3.2)
    check_eq(session(port, sess_in=f)[0], "New", "after 3 s")


@case("tickets off: a TLS 1.2 client offering tickets gets none and resumes by ID")
def _():
    d, (port,) = proxy()
    f = tmpfile("sess-offer.pem")
    result, out = session(port, sess_out=f, tickets=True)
    check_eq(result, "New", "first connection")
    check(not re.search(r"TLS session ticket lifetime hint", out),
          "the server issued a ticket:\n%s" % out[-1500:])
    check_eq(session(port, sess_in=f, tickets=True)[0], "Reused", "second connection")


@case("tickets off: no TLS 1.3 session tickets, no TLS 1.3 resumption")
def _():
    d, (port,) = proxy()
    c = TLSClient(port, TLS13)
    c.roundtrip(b"let the tickets arrive")
    time.sleep(0.2)
    c.roundtrip(b"x")
    s = c.obj.session
    check(s is None or not s.has_ticket, "a TLS 1.3 ticket was issued")
    rc, out = s_client(port, ["-tls1_3", "-sess_out", tmpfile("sess13.pem")])
    check_eq(rc, 0, "s_client status")
    check(not re.search(r"TLS session ticket lifetime hint", out),
          "s_client saw a ticket:\n%s" % out[-1500:])


tplib.main()
