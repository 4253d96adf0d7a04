#!/usr/bin/env python3
"""Which sessions may resume, with real clients (Python ssl, openssl
s_client) against the real daemon: sessions are bound to the listener's
client-certificate policy (name, verify_client, client CAs) across a
SIGHUP and across nodes with the same seed; the same configuration on two
nodes still resumes across them; max_session_age ends a chain of TLS 1.3
resumptions on every node; a session never outlives its client
certificate, on the node that issued it or on another; the TLS 1.2
session cache survives a reload that leaves the policy alone.  Each of the
three kinds: TLS 1.3 ticket, TLS 1.2 ticket, TLS 1.2 session ID."""

import os
import re
import signal
import ssl
import sys
import time
from datetime import datetime, timedelta, timezone

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLS12, TLS13, Daemon, EchoBackend, TLSClient, case, cert,  # noqa: E402
                   check, check_eq, client_context, listener_conf, make_conf, metric_value,
                   run, s_client, scrape_metrics, tmpdir, tmpfile, free_port)
from tp_core import OPENSSL  # noqa: E402

KINDS = ("TLS 1.3 ticket", "TLS 1.2 ticket", "TLS 1.2 session ID")


def seed():
    """A new seed file of its own: a node keeps it across its reloads."""
    seed.n = getattr(seed, "n", 0) + 1
    return tmpfile("ticket%d.seed" % seed.n, os.urandom(24).hex() + "\n", mode=0o600)


def conf(port, backend, verify_client="optional", client_ca=None, max_age=None,
         extra=None, seed_file="", metrics=None):
    tickets = 'mode = "stateless"; seed_file = "%s";' % seed_file
    if max_age:
        tickets += ' max_session_age = "%s";' % max_age
    settings = {"verify_client": verify_client, "client_ca": client_ca or cert("ca.pem")}
    if extra:
        settings.update(extra)
    return make_conf(listener_conf("mqtt", port, backend.port, **settings),
                     tickets=tickets,
                     extra='metrics = "127.0.0.1:%d";' % metrics if metrics else "")


def node(backend, **kw):
    """A daemon with one listener "mqtt"; its port is d.port."""
    port = free_port()
    kw.setdefault("seed_file", seed())
    d = Daemon(conf(port, backend, **kw)).start()
    d.port = port
    d.kw = kw
    d.backend_of = backend
    return d


def reload(d, **kw):
    mark = d.mark()
    d.kw.update(kw)
    d.write_conf(conf(d.port, d.backend_of, **d.kw))
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload: configuration from .* in force", 5, since=mark)
    check(not re.search(r"reload refused", d.log_since(mark)), "reload refused:\n" +
          d.log_since(mark))


def stats(d):
    return d.counters()[0]


def rejections(d, reason):
    """tlsproxy_ticket_rejections_total{reason} on ${d}'s /metrics (a node
    made with metrics=free_port())."""
    return metric_value(scrape_metrics(d.kw["metrics"]), "tlsproxy_ticket_rejections_total",
                        reason=reason)


def ctx_of(kind, client_cert=None):
    ctx = client_context(TLS13 if kind == KINDS[0] else TLS12, client_cert=client_cert)
    if kind == KINDS[2]:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def connect(port, ctx, session=None):
    """(resumed, session) of one connection that echoes; (None, None) if the
    handshake is refused."""
    try:
        c = TLSClient(port, ctx=ctx, session=session, timeout=5)
        c.roundtrip(b"hello")
    except (ssl.SSLError, ConnectionError, OSError, tplib.Failure):
        return None, None
    return c.obj.session_reused, c.obj.session


def sessions(port, client_cert=None):
    """{kind: (ctx, session)} from one full handshake of each kind."""
    out = {}
    for kind in KINDS:
        ctx = ctx_of(kind, client_cert)
        reused, sess = connect(port, ctx)
        check_eq(reused, False, "%s: first connection resumed or refused" % kind)
        check(sess is not None, "%s: no session" % kind)
        if kind != KINDS[2]:
            check(sess.has_ticket, "%s: no ticket" % kind)
        out[kind] = (ctx, sess)
    return out


def resume_all(port, sess):
    return dict((kind, connect(port, ctx, s)[0]) for kind, (ctx, s) in sess.items())


@case("verify_client optional -> require by SIGHUP: a certificate-less client's "
      "TLS 1.3 ticket, TLS 1.2 ticket and session ID stop resuming (policy); its "
      "full handshake is refused; a device with a certificate gets a full handshake")
def _():
    backend = EchoBackend()
    d = node(backend)
    anon = sessions(d.port)
    dev = sessions(d.port, client_cert="client")
    check_eq(resume_all(d.port, anon), dict.fromkeys(KINDS, True), "before the reload")
    before = stats(d)["ticket_rejected_policy"]
    reload(d, verify_client="require")
    mark = d.mark()
    check_eq(resume_all(d.port, anon), dict.fromkeys(KINDS, None),
             "certificate-less sessions after the reload (None: refused)")
    check_eq(resume_all(d.port, dev), dict.fromkeys(KINDS, False),
             "device sessions after the reload (False: full handshake)")
    check_eq(stats(d)["ticket_rejected_policy"], before + 6, "ticket_rejected_policy")
    log = d.log_since(mark)
    check_eq(len(re.findall(r"mqtt: ticket not resumed \(policy\), no client certificate",
                            log)), 2, "policy lines without a certificate:\n" + log)
    check_eq(len(re.findall(r"mqtt: session ID not resumed \(policy\), client "
                            r"\"CN=device1\", serial [0-9A-F]+; full handshake", log)), 1,
             "policy line of the device's session ID:\n" + log)


@case("a changed client_ca (one more CA) stops old sessions of all three kinds")
def _():
    backend = EchoBackend()
    d = node(backend, verify_client="require")
    dev = sessions(d.port, client_cert="client")
    both = tmpfile("both-cas.pem", open(cert("ca.pem")).read() +
                   open(cert("other-ca.pem")).read())
    before = stats(d)["ticket_rejected_policy"]
    reload(d, client_ca=both)
    check_eq(resume_all(d.port, dev), dict.fromkeys(KINDS, False), "after the reload")
    check_eq(stats(d)["ticket_rejected_policy"], before + 3, "ticket_rejected_policy")


@case("a SIGHUP that changes an unrelated setting: every kind still resumes, the "
      "TLS 1.2 session ID too (the cache is kept); the CA file reordered is no change")
def _():
    backend = EchoBackend()
    d = node(backend, verify_client="require")
    dev = sessions(d.port, client_cert="client")
    before = stats(d)
    reload(d, extra={"idle_timeout": "7m"})
    check_eq(resume_all(d.port, dev), dict.fromkeys(KINDS, True), "after the reload")
    # The same CAs in another order and another file: the same policy.
    a, b = open(cert("ca.pem")).read(), open(cert("other-ca.pem")).read()
    reload(d, client_ca=tmpfile("ab.pem", a + b))
    dev = sessions(d.port, client_cert="client")
    reload(d, client_ca=tmpfile("ba.pem", b + a))
    check_eq(resume_all(d.port, dev), dict.fromkeys(KINDS, True), "CAs reordered")
    after = stats(d)
    check_eq(after["ticket_rejected_policy"], before["ticket_rejected_policy"],
             "ticket_rejected_policy")
    check_eq(after["resumed_tls12_session_id"], before["resumed_tls12_session_id"] + 2,
             "resumed_tls12_session_id")


@case("two nodes, same name and seed: the same policy resumes across them (TLS 1.2 "
      "and 1.3 tickets); verify_client optional on one, require on the other does not: "
      "a certificate-less ticket from the first is refused on the second (policy, logged, "
      "counted) and still resumes where it came from")
def _():
    backend = EchoBackend()
    s = seed()
    a = node(backend, seed_file=s)
    b = node(backend, seed_file=s)
    strict = node(backend, seed_file=s, verify_client="require", metrics=free_port())
    dev = sessions(a.port, client_cert="client")
    del dev[KINDS[2]]   # session IDs are node-local
    check_eq(resume_all(b.port, dev), dict.fromkeys(KINDS[:2], True), "A's tickets on B")
    before = rejections(strict, "policy")
    check_eq(resume_all(strict.port, dev), dict.fromkeys(KINDS[:2], False),
             "A's tickets on the stricter node")
    check_eq(rejections(strict, "policy"), before + 2, "policy rejections of device tickets")
    anon = sessions(a.port)
    del anon[KINDS[2]]
    mark = strict.mark()
    check_eq(resume_all(strict.port, anon), dict.fromkeys(KINDS[:2], None),
             "certificate-less tickets on the stricter node: refused")
    check_eq(rejections(strict, "policy"), before + 4,
             "policy rejections after the certificate-less tickets")
    log = strict.log_since(mark)
    check_eq(len(re.findall(r"mqtt: ticket not resumed \(policy\), no client certificate; "
                            r"full handshake", log)), 2, "policy lines:\n" + log)
    check_eq(resume_all(a.port, anon), dict.fromkeys(KINDS[:2], True),
             "certificate-less tickets on the node that issued them")


@case("max_session_age: a chain of TLS 1.3 resumptions on node A keeps the time of "
      "its full handshake; node B (max_session_age 2s) refuses it as too_old")
def _():
    backend = EchoBackend()
    s = seed()
    a = node(backend, seed_file=s, max_age="1h")
    b = node(backend, seed_file=s, max_age="2s")
    ctx = ctx_of(KINDS[0], "client")
    reused, sess = connect(a.port, ctx)
    check_eq(reused, False, "full handshake on A")
    start = time.monotonic()
    chain = []
    # Ages are whole seconds: past 3 s the age is at least 3 > 2.
    while time.monotonic() - start < 3.1:
        time.sleep(0.5)
        reused, sess = connect(a.port, ctx, sess)
        chain.append(reused)
    check_eq(set(chain), {True}, "the chain on A")
    before = stats(b)["ticket_rejected_too_old"]
    mark = b.mark()
    reused, _ = connect(b.port, ctx, sess)
    check_eq(reused, False, "a ticket A issued a moment ago, on B")
    check_eq(stats(b)["ticket_rejected_too_old"], before + 1, "B's ticket_rejected_too_old")
    b.wait_log(r"mqtt: ticket not resumed \(too_old\), client \"CN=device1\", serial", 5,
               since=mark)


@case("max_session_age = 2s on one node: no kind resumes after 3 s, and TLS 1.3 "
      "tickets carry a lifetime hint of at most 2 s")
def _():
    backend = EchoBackend()
    d = node(backend, max_age="2s")
    dev = sessions(d.port, client_cert="client")
    check(dev[KINDS[0]][1].ticket_lifetime_hint <= 2,
          "lifetime hint %d" % dev[KINDS[0]][1].ticket_lifetime_hint)
    check_eq(resume_all(d.port, dev), dict.fromkeys(KINDS, True), "at once")
    time.sleep(3.2)
    check_eq(resume_all(d.port, dev), dict.fromkeys(KINDS, False), "after 3 s")


def short_lived_client(name, seconds):
    """A client certificate (CN=name, by the test CA) whose notAfter is
    ${seconds} from now, made with `openssl ca -enddate`; its base name."""
    d = os.path.join(tmpdir(), name + "-ca")
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        # openssl ca reads an even number of hex digits only.
        f.write("%s\n" % os.urandom(8).hex().upper())
    cnf = tmpfile(name + "-ca.cnf", """
[ ca ]
default_ca = this
[ this ]
dir = %s
database = $dir/index.txt
new_certs_dir = $dir
serial = $dir/serial
default_md = sha256
policy = any
unique_subject = no
x509_extensions = client
[ any ]
commonName = supplied
[ client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
""" % d)
    key, csr, pem = (os.path.join(os.path.dirname(cert("ca.pem")), name + ext)
                     for ext in (".key", ".csr", ".pem"))
    now = datetime.now(timezone.utc)
    fmt = "%Y%m%d%H%M%SZ"
    run([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", key], check_rc=0)
    run([OPENSSL, "req", "-new", "-key", key, "-subj", "/CN=" + name, "-out", csr], check_rc=0)
    run([OPENSSL, "ca", "-batch", "-config", cnf, "-cert", cert("ca.pem"),
         "-keyfile", cert("ca.key"), "-in", csr, "-out", pem, "-notext",
         "-startdate", (now - timedelta(hours=1)).strftime(fmt),
         "-enddate", (now + timedelta(seconds=seconds)).strftime(fmt)], check_rc=0)
    return name


@case("a client certificate that expires in 4 s: the session's lifetime is capped "
      "at it (TLS 1.2 and 1.3 ticket hints), and after it no kind resumes and the "
      "full handshake is refused")
def _():
    backend = EchoBackend()
    d = node(backend, verify_client="require")
    name = short_lived_client("brief", 4)
    dev = sessions(d.port, client_cert=name)
    f = tmpfile("brief12.pem")
    args = ["-tls1_2", "-cert", cert(name + ".pem"), "-key", cert(name + ".key")]
    rc, out = s_client(d.port, args + ["-sess_out", f])
    check_eq(rc, 0, "s_client status:\n" + out[-1500:])
    for kind in KINDS[:2]:
        hint = dev[kind][1].ticket_lifetime_hint
        check(0 < hint <= 4, "%s lifetime hint %d" % (kind, hint))
    check_eq(resume_all(d.port, dev), dict.fromkeys(KINDS, True), "at once")
    time.sleep(5)
    check_eq(resume_all(d.port, dev), dict.fromkeys(KINDS, None), "after the certificate")
    # openssl s_client offers a TLS 1.2 ticket past its hint: the server refuses it.
    before = stats(d)["ticket_rejected_cert_expired"]
    mark = d.mark()
    rc, out = s_client(d.port, args + ["-sess_in", f])
    check(rc != 0, "an expired certificate's handshake succeeded:\n" + out[-1500:])
    check_eq(stats(d)["ticket_rejected_cert_expired"], before + 1,
             "ticket_rejected_cert_expired")
    d.wait_log(r"mqtt: ticket not resumed \(cert_expired\), client \"CN=brief\", serial", 5,
               since=mark)



@case("a client certificate that expires in 3 s, two nodes with one seed: node A's TLS 1.2 "
      "and TLS 1.3 tickets resume on node B before its notAfter; after it, B refuses A's "
      "TLS 1.2 ticket (cert_expired, logged, counted) and the full handshake")
def _():
    backend = EchoBackend()
    s = seed()
    a = node(backend, seed_file=s, verify_client="require")
    b = node(backend, seed_file=s, verify_client="require", metrics=free_port())
    name = short_lived_client("brief2", 3)
    not_after = time.time() + 3
    args = ["-tls1_2", "-cert", cert(name + ".pem"), "-key", cert(name + ".key")]
    f = tmpfile("brief2-12.pem")
    rc, out = s_client(a.port, args + ["-sess_out", f])
    check_eq(rc, 0, "s_client on A:\n" + out[-1500:])
    ctx13 = ctx_of(KINDS[0], name)
    reused, sess13 = connect(a.port, ctx13)
    check_eq(reused, False, "TLS 1.3 full handshake on A")
    check(0 < sess13.ticket_lifetime_hint <= 3, "A's TLS 1.3 lifetime hint %d"
          % sess13.ticket_lifetime_hint)
    rc, out = s_client(b.port, args + ["-sess_in", f])
    check(rc == 0 and re.search(r"^Reused, TLSv1\.2", out, re.M),
          "A's TLS 1.2 ticket on B before the notAfter:\n" + out[-1500:])
    check_eq(connect(b.port, ctx13, sess13)[0], True, "A's TLS 1.3 ticket on B before")
    time.sleep(max(0.0, not_after + 1.2 - time.time()))
    before = rejections(b, "cert_expired")
    mark = b.mark()
    # openssl s_client offers a TLS 1.2 ticket past its hint; B must refuse it.
    rc, out = s_client(b.port, args + ["-sess_in", f])
    check(rc != 0, "an expired certificate's handshake succeeded on B:\n" + out[-1500:])
    check_eq(rejections(b, "cert_expired"), before + 1, "B's cert_expired rejections")
    b.wait_log(r"mqtt: ticket not resumed \(cert_expired\), client \"CN=brief2\", serial "
               r"[0-9A-F]+; full handshake", 5, since=mark)
    check_eq(connect(b.port, ctx13, sess13)[0], None, "A's TLS 1.3 session on B after")

tplib.main()
