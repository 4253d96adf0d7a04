#!/usr/bin/env python3
"""PROXY protocol to the backend: proxy_protocol = "off" | "v1" | "v2" and
proxy_protocol_client_cert, checked two ways.

An independent parser (tp_proxy.py: versions 1 and 2, every TLV, the SSL
sub-TLVs and CRC32C, from haproxy.org's proxy-protocol.txt) reads what a
backend receives first: the client's real address and source port and the
listener's address and port over IPv4 and IPv6, SNI in AUTHORITY, the
client certificate's flags, verify field and CN on full handshakes and on
TLS 1.3 ticket, TLS 1.2 ticket and TLS 1.2 session-ID resumptions, the
certificate itself in TLV 0xE0; then the client's bytes, intact.

And a real parser: Debian's HAProxy in `mode tcp` with `accept-proxy` in
front of an echo server must log the client address the test used (and,
for v2, the authority).  bootstrap installs it; where it is missing, its
cases are skipped with the reason (tests install nothing)."""

import os
import signal
import socket
import ssl
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLS12, TLS13, Daemon, EchoBackend, Skip, TLSClient, case,  # noqa: E402
                   cert, check, check_eq, client_context, defer, diag, free_port,
                   listener_conf, make_conf, pattern_chunks, run, s_client, tmpfile,
                   wait_until)
from tp_proxy import (PP2_CLIENT_CERT_CONN, PP2_CLIENT_CERT_SESS, PP2_CLIENT_SSL,  # noqa: E402
                      PP2_SUBTYPE_SSL_CIPHER, PP2_SUBTYPE_SSL_CN, PP2_SUBTYPE_SSL_KEY_ALG,
                      PP2_SUBTYPE_SSL_SIG_ALG, PP2_SUBTYPE_SSL_VERSION, PP2_TYPE_ALPN,
                      PP2_TYPE_AUTHORITY, PP2_TYPE_SSL, TLSPROXY_CLIENT_CERT, HAProxy,
                      ProxyBackend, text)

EX_CONFIG = 78

def proxy(backend, cert_name="server", tickets='mode = "off";', listen=None, **settings):
    """A daemon with one listener relaying to ${backend}; returns (d, port)."""
    port = free_port() if listen is None else listen
    conf = make_conf(listener_conf("pp", port, backend.port if hasattr(backend, "port")
                                   else backend, cert_name=cert_name, **settings),
                     tickets=tickets)
    d = Daemon(conf).start()
    return d, port


def mtls(**settings):
    return dict(verify_client="optional", client_ca=cert("ca.pem"), **settings)


def talk(c, payload=b"hello through the proxy"):
    """A round trip, then a clean close."""
    c.roundtrip(payload)
    c.close_notify()
    c.recv_all()


def client_addr(c):
    host, port = c.sock.getsockname()[:2]
    return host, port


def check_addresses(h, c, listen_port, proto="TCP4", dst="127.0.0.1"):
    src, sport = client_addr(c)
    check_eq(h["proto"], proto, "protocol")
    check_eq(h["src"], src, "source address")
    check_eq(h["sport"], sport, "source port (the client's getsockname)")
    check_eq(h["dst"], dst, "destination address (the listener's)")
    check_eq(h["dport"], listen_port, "destination port (the listener's)")


def check_ssl(h, c, client_flags, verified, cn):
    """The SSL TLV as the client saw the connection."""
    check_eq(h["crc_ok"], True, "CRC32C present and correct")
    s = h.get("ssl")
    check(s is not None, "no PP2_TYPE_SSL TLV; TLVs: %r" % [t for t, _ in h["tlvs"]])
    check_eq(s["client"], client_flags, "SSL client flags")
    if verified:
        check_eq(s["verify"], 0, "SSL verify field")
    else:
        check(s["verify"] != 0, "SSL verify field is 0 without a verified certificate")
    check_eq(text(s["sub"].get(PP2_SUBTYPE_SSL_VERSION)), c.obj.version(), "SSL_VERSION")
    check_eq(text(s["sub"].get(PP2_SUBTYPE_SSL_CIPHER)), c.obj.cipher()[0], "SSL_CIPHER")
    check_eq(text(s["sub"].get(PP2_SUBTYPE_SSL_CN)), cn, "SSL_CN")
    return s


def pem_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


# ---------------------------------------------------------------- version 1


@case("v1 over IPv4: PROXY TCP4 <client> <listener> <client port> <listener port>, "
      "then the client's bytes; echo works")
def _():
    backend = ProxyBackend()
    d, port = proxy(backend, proxy_protocol="v1")
    for version in (TLS12, TLS13):
        c = TLSClient(port, version)
        talk(c, b"v1 payload " + version.name.encode())
        h, rec = backend.header()
        check_addresses(h, c, port)
        check_eq(rec.header, ("PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n"
                              % (client_addr(c)[1], port)).encode(), "the exact v1 line")
        check_eq(bytes(rec.received[len(rec.header):]), b"v1 payload " + version.name.encode(),
                 "the client's bytes after the header")


# ---------------------------------------------------------------- version 2


@case("v2 over IPv4: signature, 0x21, TCP4, length, addresses, ports, SSL TLV "
      "(version, cipher, SIG_ALG, KEY_ALG), CRC32C; no ALPN")
def _():
    backend = ProxyBackend()
    d, port = proxy(backend, proxy_protocol="v2")
    for version in (TLS12, TLS13):
        c = TLSClient(port, version)
        talk(c)
        h, rec = backend.header()
        check_eq(h["family"], 0x11, "family/transport byte")
        check_addresses(h, c, port)
        s = check_ssl(h, c, PP2_CLIENT_SSL, False, None)
        check_eq(s["sub"].get(PP2_SUBTYPE_SSL_SIG_ALG), b"ecdsa-with-SHA256", "SIG_ALG")
        check_eq(s["sub"].get(PP2_SUBTYPE_SSL_KEY_ALG), b"EC256", "KEY_ALG")
        check(PP2_TYPE_ALPN not in h["by_type"], "ALPN TLV without a negotiated protocol")
        check(TLSPROXY_CLIENT_CERT not in h["by_type"], "certificate TLV without one")
        check_eq(bytes(rec.received[len(rec.header):]), b"hello through the proxy",
                 "the client's bytes after the header")


@case("v2 with an RSA server certificate: KEY_ALG RSA2048, SIG_ALG of its (ECDSA) CA")
def _():
    backend = ProxyBackend()
    d, port = proxy(backend, cert_name="rsa-server", proxy_protocol="v2")
    c = TLSClient(port, TLS12)
    talk(c)
    h, rec = backend.header()
    s = check_ssl(h, c, PP2_CLIENT_SSL, False, None)
    check_eq(s["sub"].get(PP2_SUBTYPE_SSL_KEY_ALG), b"RSA2048", "KEY_ALG")
    check_eq(s["sub"].get(PP2_SUBTYPE_SSL_SIG_ALG), b"ecdsa-with-SHA256", "SIG_ALG")
    check(c.obj.cipher()[0].startswith("ECDHE-RSA-"), "cipher %s" % c.obj.cipher()[0])


@case("v2: the header comes first even when data rides with the client's Finished; "
      "1 MiB after it intact")
def _():
    backend = ProxyBackend(keep=4 << 20)
    d, port = proxy(backend, proxy_protocol="v2")
    for version in (TLS12, TLS13):
        c = TLSClient(port, version, handshake=False)
        while True:
            try:
                c.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                c._flush()
                c._fill()
        first = b"sent with the Finished"
        c.obj.write(first)
        c._flush()      # TLS 1.3: our Finished and the data in one write
        big = b"".join(pattern_chunks(6, 1 << 20))
        got = bytearray()
        c.pump([big], got.extend, timeout=60)
        h, rec = backend.header()
        check_addresses(h, c, port)
        check_eq(h["crc_ok"], True, "CRC32C")
        check_eq(rec.nreceived, len(rec.header) + len(first) + len(big), "bytes at the backend")
        check(bytes(rec.received[len(rec.header):]) == first + big,
              "the client's bytes after the header differ")
        check(bytes(got) == first + big, "the echo differs")


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            return s.getsockname()[1]
    except OSError:
        return None


def v6_client(port, payload):
    """A TLS 1.3 round trip to [::1]:port; returns (source address, port)."""
    ctx = client_context(TLS13)
    s = socket.create_connection(("::1", port), timeout=10)
    defer(s.close)
    tls = ctx.wrap_socket(s, server_hostname="localhost")
    tls.sendall(payload)
    got = b""
    while len(got) < len(payload):
        data = tls.recv(65536)
        check(data, "EOF after %d bytes of the echo" % len(got))
        got += data
    check_eq(got, payload, "echo over IPv6")
    addr = tls.getsockname()[:2]
    tls.close()
    return addr


@case("v1 and v2 over IPv6 ([::1] listener): TCP6 with the client's address and port")
def _():
    if ipv6_loopback() is None:
        raise Skip("no IPv6 loopback")
    backend = ProxyBackend()
    p1, p2 = ipv6_loopback(), ipv6_loopback()
    conf = make_conf([listener_conf("v1six", p1, backend.port, proxy_protocol="v1"),
                      listener_conf("v2six", p2, backend.port, proxy_protocol="v2")])
    conf = conf.replace('"127.0.0.1:%d"' % p1, '"[::1]:%d"' % p1)
    conf = conf.replace('"127.0.0.1:%d"' % p2, '"[::1]:%d"' % p2)
    d = Daemon(conf).start()

    def listening(p):
        try:
            socket.create_connection(("::1", p), timeout=1).close()
            return True
        except OSError:
            d.check_alive()
            return False
    for p in (p1, p2):
        wait_until(lambda: listening(p), 10, "tlsproxy on [::1]:%d" % p)
    n0 = backend.count()
    for i, (p, want) in enumerate(((p1, 1), (p2, 2))):
        src, sport = v6_client(p, b"over IPv6 %d" % want)
        h, rec = backend.header(n0 + i)
        check_eq(h["version"], want, "header version")
        check_eq((h["proto"], h["src"], h["sport"], h["dst"], h["dport"]),
                 ("TCP6", src, sport, "::1", p), "(proto, src, sport, dst, dport)")
        if want == 1:
            check_eq(rec.header, ("PROXY TCP6 ::1 ::1 %d %d\r\n" % (sport, p)).encode(),
                     "the exact v1 line")
        else:
            check_eq(h["family"], 0x21, "family/transport byte")
            check_eq(h["crc_ok"], True, "CRC32C")
            check_eq(h["by_type"].get(PP2_TYPE_AUTHORITY), b"localhost", "AUTHORITY")
        check_eq(bytes(rec.received[len(rec.header):]), b"over IPv6 %d" % want, "client bytes")


@case("v2 AUTHORITY: the SNI when the client sends one, absent when it does not")
def _():
    backend = ProxyBackend()
    d, port = proxy(backend, proxy_protocol="v2")
    for version in (TLS12, TLS13):
        c = TLSClient(port, version, host="localhost")
        talk(c)
        h, _ = backend.header()
        check_eq(h["by_type"].get(PP2_TYPE_AUTHORITY), b"localhost", "AUTHORITY with SNI")
        # By IP address, no server_hostname: Python sends no SNI.
        c = TLSClient(port, version, host=None, check_hostname=False)
        talk(c)
        h, _ = backend.header()
        check(PP2_TYPE_AUTHORITY not in h["by_type"],
              "AUTHORITY %r without SNI" % h["by_type"].get(PP2_TYPE_AUTHORITY))
        check_eq(h["crc_ok"], True, "CRC32C")


@case("v2 mTLS (verify_client optional) with a client certificate: "
      "CERT_CONN|CERT_SESS, verify 0, CN device1")
def _():
    backend = ProxyBackend()
    d, port = proxy(backend, proxy_protocol="v2", **mtls())
    for version in (TLS12, TLS13):
        c = TLSClient(port, version, client_cert="client")
        talk(c)
        h, _ = backend.header()
        check_addresses(h, c, port)
        check_ssl(h, c, PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS,
                  True, "device1")
        check(TLSPROXY_CLIENT_CERT not in h["by_type"],
              "certificate TLV although proxy_protocol_client_cert is off")


@case("v2 mTLS (verify_client optional) without a client certificate: "
      "flags SSL only, verify non-zero, no CN")
def _():
    backend = ProxyBackend()
    d, port = proxy(backend, proxy_protocol="v2", **mtls(proxy_protocol_client_cert=True))
    for version in (TLS12, TLS13):
        c = TLSClient(port, version)
        talk(c)
        h, _ = backend.header()
        check_ssl(h, c, PP2_CLIENT_SSL, False, None)
        check(TLSPROXY_CLIENT_CERT not in h["by_type"], "certificate TLV without a certificate")


@case("proxy_protocol_client_cert = true: TLV 0xE0 is client.pem's DER")
def _():
    backend = ProxyBackend()
    d, port = proxy(backend, proxy_protocol="v2", **mtls(proxy_protocol_client_cert=True))
    want = pem_der(cert("client.pem"))
    for version in (TLS12, TLS13):
        c = TLSClient(port, version, client_cert="client")
        talk(c)
        h, _ = backend.header()
        check_ssl(h, c, PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS,
                  True, "device1")
        check_eq(h["by_type"].get(TLSPROXY_CLIENT_CERT), want, "certificate TLV")


# ---------------------------------------------------------------- resumption


def stateless():
    seed = tmpfile("ticket.seed", os.urandom(24).hex() + "\n", mode=0o600)
    return 'mode = "stateless"; seed_file = "%s";' % seed


HS_RX = r"pp 127\.0\.0\.1:%d: (TLSv1\.[23]) \S+ (full handshake|resumed \([^)]*\))"


def handshake_kind(d, c, since):
    m = d.wait_log(HS_RX % client_addr(c)[1], 5, since=since)
    return m.group(1), m.group(2)


def check_resumed_identity(h, c, cert_tlv=None):
    check_ssl(h, c, PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS, True, "device1")
    if cert_tlv is not None:
        check_eq(h["by_type"].get(TLSPROXY_CLIENT_CERT), cert_tlv, "certificate TLV")


def resume_python(version):
    backend = ProxyBackend()
    d, port = proxy(backend, tickets=stateless(), proxy_protocol="v2",
                    **mtls(proxy_protocol_client_cert=True))
    der = pem_der(cert("client.pem"))
    ctx = client_context(version, client_cert="client")
    c = TLSClient(port, ctx=ctx)
    talk(c)             # the echo comes after the TLS 1.3 tickets
    h, _ = backend.header()
    check_ssl(h, c, PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS,
              True, "device1")
    sess = c.obj.session
    check(sess is not None and sess.has_ticket, "no ticket from the full handshake")
    for i in range(2):
        mark = d.mark()
        r = TLSClient(port, ctx=ctx, session=sess)
        talk(r)
        check(r.obj.session_reused, "connection %d was not resumed" % (i + 1))
        check_eq(handshake_kind(d, r, mark), (r.obj.version(), "resumed (ticket)"),
                 "the daemon's handshake line")
        h, _ = backend.header()
        check_addresses(h, r, port)
        check_resumed_identity(h, r, der)
        sess = r.obj.session


@case("resumed TLS 1.3 ticket (stateless): CN device1, CERT_SESS without CERT_CONN, verify 0")
def _():
    resume_python(TLS13)


@case("resumed TLS 1.2 ticket (stateless): CN device1, CERT_SESS without CERT_CONN, verify 0")
def _():
    resume_python(TLS12)


@case("resumed TLS 1.2 session ID (tickets off, s_client -no_ticket): CN device1, "
      "CERT_SESS without CERT_CONN, verify 0")
def _():
    backend = ProxyBackend()
    d, port = proxy(backend, tickets='mode = "off";', proxy_protocol="v2", **mtls())
    f = tmpfile("sess-id.pem")
    args = ["-tls1_2", "-no_ticket", "-cert", cert("client.pem"), "-key", cert("client.key")]
    headers = []
    for i, sess in enumerate((["-sess_out", f], ["-sess_in", f], ["-sess_in", f])):
        n = backend.count()
        rc, out = s_client(port, args + sess, input=b"ping\n")
        check_eq(rc, 0, "s_client status:\n" + out[-1500:])
        m = tplib.check_match(r"^(New|Reused), (TLSv1\.\d), Cipher is (\S+)", out, "s_client")
        check_eq(m.group(1), "New" if i == 0 else "Reused", "s_client connection %d" % i)
        h, _ = backend.header(n)
        headers.append((h, m.group(2), m.group(3)))
    for i, (h, version, cipher) in enumerate(headers):
        s = h["ssl"]
        check_eq(h["crc_ok"], True, "CRC32C")
        flags = PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS | (PP2_CLIENT_CERT_CONN if i == 0 else 0)
        check_eq(s["client"], flags, "SSL client flags of connection %d" % i)
        check_eq(s["verify"], 0, "verify of connection %d" % i)
        check_eq(text(s["sub"].get(PP2_SUBTYPE_SSL_CN)), "device1", "CN of connection %d" % i)
        check_eq(text(s["sub"].get(PP2_SUBTYPE_SSL_VERSION)), version, "SSL_VERSION")
        check_eq(text(s["sub"].get(PP2_SUBTYPE_SSL_CIPHER)), cipher, "SSL_CIPHER")
    check_eq(d.count_log(r"TLSv1\.2 \S+ resumed \(session ID\)"), 2,
             "session-ID resumptions in the daemon's log")


@case("v2 identity under the session rules: a resumption carries CN device1 with "
      "CERT_SESS only; a session refused for policy (verify_client optional -> "
      "require) or max_session_age gives a full handshake whose header has CERT_CONN "
      "again; TLS 1.3 ticket, TLS 1.2 ticket, TLS 1.2 session ID")
def _():
    backend = ProxyBackend()
    port = free_port()
    seed_file = stateless()
    settings = dict(proxy_protocol="v2", **mtls())

    def conf(**more):
        ls = dict(settings, **more)
        return make_conf(listener_conf("pp", port, backend.port, **ls),
                         tickets=seed_file + ' max_session_age = "2s";')

    d = Daemon(conf()).start()
    sess_flags = PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS
    full_flags = sess_flags | PP2_CLIENT_CERT_CONN
    kinds = (("TLS 1.3 ticket", TLS13, False), ("TLS 1.2 ticket", TLS12, False),
             ("TLS 1.2 session ID", TLS12, True))

    ctxs = {}
    for label, version, no_ticket in kinds:
        ctxs[label] = client_context(version, client_cert="client")
        if no_ticket:
            ctxs[label].options |= ssl.OP_NO_TICKET

    def connect(label, sess):
        c = TLSClient(port, ctx=ctxs[label], session=sess)
        talk(c)
        h, _ = backend.header()
        return c, h

    def round_of(sessions, want_reused, what):
        for label, version, no_ticket in kinds:
            c, h = connect(label, sessions.get(label))
            check_eq(c.obj.session_reused, want_reused, "%s %s: resumed" % (what, label))
            check_ssl(h, c, sess_flags if want_reused else full_flags, True, "device1")
            sessions[label] = c.obj.session

    sessions = {}
    round_of(sessions, False, "first")
    round_of(sessions, True, "again")
    mark = d.mark()
    d.write_conf(conf(verify_client="require"))
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload: configuration from .* in force", 5, since=mark)
    round_of(sessions, False, "after optional -> require")
    round_of(sessions, True, "resumed under require")
    time.sleep(3.5)     # whole seconds: at least 3 > 2 since the full handshake
    round_of(sessions, False, "past max_session_age")
    check_eq(d.count_log(r"pp: (ticket|session ID) not resumed \(policy\), client "
                         r"\"CN=device1\"", since=mark), 3, "policy refusals logged")


@case("v2 AUTHORITY on resumed connections: the SNI the client sent "
      "(TLS 1.3 ticket, TLS 1.2 ticket, TLS 1.2 session ID)")
def _():
    backend = ProxyBackend()
    got, want = {}, {}
    for label, version, tickets in (("TLS 1.3 ticket", TLS13, stateless()),
                                    ("TLS 1.2 ticket", TLS12, stateless()),
                                    ("TLS 1.2 session ID", TLS12, 'mode = "off";')):
        d, port = proxy(backend, tickets=tickets, proxy_protocol="v2")
        ctx = client_context(version)
        if tickets == 'mode = "off";':
            ctx.options |= ssl.OP_NO_TICKET
        c = TLSClient(port, ctx=ctx, host="localhost")
        talk(c)
        full = backend.header()[0]["by_type"].get(PP2_TYPE_AUTHORITY)
        r = TLSClient(port, ctx=ctx, host="localhost", session=c.obj.session)
        talk(r)
        check(r.obj.session_reused, "%s: not resumed" % label)
        resumed = backend.header()[0]["by_type"].get(PP2_TYPE_AUTHORITY)
        got[label] = (full, resumed)
        want[label] = (b"localhost", b"localhost")
        d.stop()
    check_eq(got, want, "AUTHORITY (full handshake, resumption)")


# ---------------------------------------------------------------- off


@case("proxy_protocol off (the default, and said explicitly): the backend gets "
      "exactly the client's bytes")
def _():
    for settings in ({}, {"proxy_protocol": "off"}):
        backend = EchoBackend()
        d, port = proxy(backend, **mtls(**settings))
        payload = b"".join(pattern_chunks(9, 200000))
        c = TLSClient(port, TLS13, client_cert="client")
        got = bytearray()
        c.pump([payload], got.extend, timeout=30)
        wait_until(lambda: backend.count() and backend.conns[0].eof.is_set(), 5,
                   "EOF at the backend")
        check(bytes(backend.conns[0].received) == payload,
              "the backend got %d bytes, starting %r" % (backend.conns[0].nreceived,
                                                         bytes(backend.conns[0].received[:16])))
        check(bytes(got) == payload, "echo differs")
        d.stop()


@case("SIGHUP switches proxy_protocol off -> v2 -> v1 for new connections; "
      "an open one never gets a header mid-stream")
def _():
    backend = ProxyBackend()
    port = free_port()

    def conf(pp):
        return make_conf(listener_conf("pp", port, backend.port, proxy_protocol=pp))
    d = Daemon(conf("off")).start()
    a = TLSClient(port, TLS13)
    a.roundtrip(b"before the reloads")
    check_eq(wait_until(lambda: backend.count() == 1 and getattr(backend.conns[0], "header",
                                                                 None) is not None,
                        5, "connection A at the backend") and backend.conns[0].header,
             b"", "connection A's header with proxy_protocol off")
    for pp, version in (("v2", 2), ("v1", 1)):
        mark = d.mark()
        d.write_conf(conf(pp))
        d.signal(signal.SIGHUP)
        d.wait_log(r"(?i)reload", 5, since=mark)
        time.sleep(0.3)
        n = backend.count()
        c = TLSClient(port, TLS12)
        talk(c)
        h, _ = backend.header(n)
        check_eq(h["version"], version, "header version after the reload to %s" % pp)
        check_addresses(h, c, port)
        a.roundtrip(b"A still relays after the reload to " + pp.encode())
    talk(a, b"A closes")
    check_eq(bytes(backend.conns[0].received),
             b"before the reloads" b"A still relays after the reload to v2"
             b"A still relays after the reload to v1" b"A closes",
             "everything connection A's backend side received")


@case("config: proxy_protocol_client_cert needs v2; an unknown proxy_protocol is refused")
def _():
    for settings, msg in (({"proxy_protocol": "v1", "proxy_protocol_client_cert": True},
                           r"proxy_protocol_client_cert.*v2"),
                          ({"proxy_protocol_client_cert": True}, r"proxy_protocol_client_cert"),
                          ({"proxy_protocol": "v3"}, r"proxy_protocol"),
                          ({"proxy_protocol": True}, r"proxy_protocol")):
        path = tmpfile("bad.conf", make_conf(listener_conf("pp", free_port(), 1883,
                                                           **settings)))
        rc, out, err = run([tplib.TLSPROXY, "-t", "-c", path])
        check_eq(rc, EX_CONFIG, "-t status for %r (stderr %s)" % (settings, err.strip()))
        tplib.check_match(msg, err, "-t stderr")
    path = tmpfile("good.conf", make_conf(listener_conf(
        "pp", free_port(), 1883, proxy_protocol="v2", proxy_protocol_client_cert=True)))
    rc, out, err = run([tplib.TLSPROXY, "-t", "-c", path])
    check_eq(rc, 0, "-t status of a good config (stderr %s)" % err.strip())


# ---------------------------------------------------------------- HAProxy


def through_haproxy(version_setting):
    echo = EchoBackend()
    hap = HAProxy(echo.port)
    d, port = proxy(hap.port, proxy_protocol=version_setting)
    lines = []
    for version in (TLS12, TLS13):
        c = TLSClient(port, version)
        payload = b"through haproxy " + version.name.encode()
        talk(c, payload)
        src, sport = client_addr(c)
        f = hap.wait_line(sport)
        check_eq((f["ci"], f["cp"]), (src, str(sport)), "haproxy's %ci %cp")
        check_eq(f["dst"], "127.0.0.1:%d" % port, "haproxy's dst (the listener)")
        check_eq(f["rcvd"], "1", "haproxy's fc_rcvd_proxy")
        check_eq(f["bytes"], str(len(payload)), "bytes haproxy relayed back (%B)")
        lines.append(f)
    diag("haproxy logged: %s" % " | ".join(
        " ".join("%s=%s" % kv for kv in sorted(f.items())) for f in lines))
    return lines


@case("HAProxy accept-proxy reads v1: logs the client address and port the test used")
def _():
    for f in through_haproxy("v1"):
        check_eq(f["authority"], "-", "authority over v1")


@case("HAProxy accept-proxy reads v2 (its CRC32C check included): client address, "
      "port and the authority")
def _():
    for f in through_haproxy("v2"):
        check_eq(f["authority"], "localhost", "haproxy's fc_pp_authority")


@case("HAProxy checks the CRC32C: a header tlsproxy sent, replayed, is accepted; "
      "the same with one CRC bit flipped is refused")
def _():
    echo = EchoBackend()
    hap = HAProxy(echo.port)
    capture = ProxyBackend()
    d, port = proxy(capture, proxy_protocol="v2", **mtls())
    c = TLSClient(port, TLS13, client_cert="client")
    talk(c)
    h, rec = capture.header()
    check_eq(h["crc_ok"], True, "CRC32C (our parser)")
    sport = client_addr(c)[1]
    bad = bytearray(rec.header)
    bad[-1] ^= 0x01                     # the CRC32C TLV is last

    def replay(header):
        s = socket.create_connection(("127.0.0.1", hap.port), timeout=5)
        defer(s.close)
        got = b""
        try:           # haproxy may reset before the FIN is even sent
            s.sendall(bytes(header) + b"replayed")
            s.shutdown(socket.SHUT_WR)
            while True:
                data = s.recv(4096)
                if not data:
                    break
                got += data
        except (ConnectionResetError, BrokenPipeError, OSError):
            pass
        s.close()
        return got
    check_eq(replay(rec.header), b"replayed", "echo through haproxy of the replayed header")
    f = hap.wait_line(sport)
    check_eq((f["ci"], f["authority"]), ("127.0.0.1", "localhost"), "haproxy's ci, authority")
    check_eq(replay(bad), b"", "echo through haproxy with a wrong CRC32C")
    wait_until(lambda: "invalid PROXY protocol header" in hap.log(), 5,
               "haproxy to refuse the header with a wrong CRC32C")


tplib.main()
