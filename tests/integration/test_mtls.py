#!/usr/bin/env python3
"""Client certificates: verify_client = require / optional / none with
client_ca; the client's subject in the log; refused handshakes never reach
the backend."""

import os
import ssl
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLS12, TLS13, TLSClient, Daemon, EchoBackend, case,  # noqa: E402
                   cert, check, check_eq, free_port, listener_conf, make_conf)


def proxy(verify):
    backend = EchoBackend()
    port = free_port()
    settings = {"verify_client": verify}
    if verify != "none":
        settings["client_ca"] = cert("ca.pem")
    d = Daemon(make_conf(listener_conf("mtls", port, backend.port, **settings))).start()
    return d, port, backend


def works(port, version, client_cert):
    c = TLSClient(port, version, client_cert=client_cert)
    c.roundtrip(b"hello from %s" % (client_cert or "nobody").encode())
    c.close_notify()
    c.recv_all()
    return c


def refused(port, version, client_cert, backend):
    """The handshake fails (TLS 1.2) or the first read does (TLS 1.3, where
    the client finishes before the server has checked its certificate), and
    the backend never sees a connection."""
    n = backend.count()
    try:
        c = TLSClient(port, version, client_cert=client_cert, timeout=5)
        c.send(b"must not arrive")
        data = c.recv()
        check_eq(data, b"", "data after a refused client certificate")
    except (ssl.SSLError, ConnectionError):
        pass
    time.sleep(0.3)
    check_eq(backend.count(), n, "backend connections after a refused handshake")


@case("require: a client certificate from client_ca works; the log names CN=device1")
def _():
    d, port, backend = proxy("require")
    for version in (TLS12, TLS13):
        mark = d.mark()
        c = works(port, version, "client")
        d.wait_log(r"127\.0\.0\.1:%d\b.*CN ?= ?device1" % c.sock.getsockname()[1], 5, since=mark)
    check_eq(bytes(backend.conns[0].received), b"hello from client", "bytes at the backend")


@case("require: no client certificate -> refused (TLS 1.2 and 1.3), backend untouched")
def _():
    d, port, backend = proxy("require")
    refused(port, TLS12, None, backend)
    refused(port, TLS13, None, backend)
    works(port, TLS13, "client")
    d.check_alive()


@case("require: a certificate from an untrusted CA -> refused, logged")
def _():
    d, port, backend = proxy("require")
    mark = d.mark()
    refused(port, TLS12, "other-client", backend)
    refused(port, TLS13, "other-client", backend)
    d.wait_log(r"(?i)(verif|certificate|unknown ca)", 5, since=mark)


@case("require: openssl s_client with -cert/-key works, without is refused")
def _():
    d, port, backend = proxy("require")
    rc, out = tplib.s_client(port, ["-cert", cert("client.pem"), "-key", cert("client.key")],
                             input=b"")
    check_eq(rc, 0, "s_client with a certificate:\n" + out[-800:])
    rc, out = tplib.s_client(port, ["-tls1_2"], input=b"")
    check(rc != 0, "s_client without a certificate succeeded:\n" + out[-800:])


@case("optional: works with a client certificate (subject logged) and without one")
def _():
    d, port, backend = proxy("optional")
    mark = d.mark()
    c = works(port, TLS13, "client")
    d.wait_log(r"127\.0\.0\.1:%d\b.*CN ?= ?device1" % c.sock.getsockname()[1], 5, since=mark)
    works(port, TLS13, None)
    works(port, TLS12, None)
    works(port, TLS12, "client")
    check_eq(backend.count(), 4, "backend connections")


@case("optional: a certificate from an untrusted CA is still refused")
def _():
    d, port, backend = proxy("optional")
    refused(port, TLS13, "other-client", backend)
    refused(port, TLS12, "other-client", backend)


@case("none: no certificate is asked for; a client that has one still works")
def _():
    d, port, backend = proxy("none")
    works(port, TLS13, "client")
    works(port, TLS12, None)
    check("CN=device1" not in d.log().replace(" = ", "="),
          "the log names a client certificate that was never asked for")


def big_client_cert(name, names):
    """A client certificate from the test CA with ${names} DNS names, so
    large that it cannot go into a PROXY v2 header (at most 64 KiB)."""
    d = os.path.dirname(cert("ca.pem"))
    conf = os.path.join(d, name + ".cnf")
    with open(conf, "w") as f:
        f.write("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = %s\n"
                "[ext]\nextendedKeyUsage = clientAuth\nsubjectAltName = @alt\n[alt]\n" % name)
        for i in range(names):
            f.write("DNS.%d = device-%05d.clients.example.com\n" % (i + 1, i))
    key, csr, pem = (os.path.join(d, name + ext) for ext in (".key", ".csr", ".pem"))
    for cmd in (["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", key],
                ["req", "-new", "-config", conf, "-key", key, "-out", csr],
                ["x509", "-req", "-in", csr, "-CA", cert("ca.pem"), "-CAkey", cert("ca.key"),
                 "-days", "2", "-extfile", conf, "-extensions", "ext", "-out", pem]):
        tplib.run([tplib.OPENSSL] + cmd, check_rc=0)
    return pem


@case("PROXY v2 with the client certificate, one too large for the header: "
      "close_notify, logged, nothing sent to the backend")
def _():
    pem = big_client_cert("bigclient", 2400)
    size = os.path.getsize(pem) * 3 // 4
    check(size > 65536, "the certificate is only about %d bytes" % size)
    backend = EchoBackend()
    port = free_port()
    d = Daemon(make_conf(listener_conf("big", port, backend.port, verify_client="require",
                                       client_ca=cert("ca.pem"), proxy_protocol="v2",
                                       proxy_protocol_client_cert=True))).start()
    c = TLSClient(port, TLS13, client_cert="bigclient")
    c.send(b"must not arrive")
    check_eq(c.recv_all(), b"", "data")
    check(c.got_close_notify, "closed without a close_notify")
    d.wait_log(r"big 127\.0\.0\.1:%d: cannot build the PROXY protocol header"
               % c.sock.getsockname()[1])
    time.sleep(0.3)
    for rec in backend.conns:
        check_eq(rec.nreceived, 0, "bytes at the backend")
    # A client with a normal certificate goes through, header and all.
    c = TLSClient(port, TLS13, client_cert="client")
    c.send(b"normal")
    tplib.wait_until(lambda: backend.conns and
                     bytes(backend.conns[-1].received).endswith(b"normal"), 5,
                     "the normal client's bytes at the backend")
    check(bytes(backend.conns[-1].received).startswith(b"\r\n\r\n\0\r\nQUIT\n"),
          "no PROXY v2 signature before them")


tplib.main()
