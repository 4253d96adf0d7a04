#!/usr/bin/env python3
"""CRLs for client certificates (crl, crl_check): a device CA made with
`openssl ca` in the test, devices revoked and CRLs regenerated as a CA
would; a revoked device is refused on a full handshake (Python ssl and
openssl s_client), logged with its subject and serial and counted as
`revoked`; a reload with a new CRL revokes without a restart; a broken CRL
is refused by -t and by SIGHUP (the old CRLs stay); a CRL past its
nextUpdate still revokes, is logged once per load and shows in the
metrics.  On resumption: tickets and TLS 1.2 session IDs of a device
revoked by a reload do not resume, while a good device's still do; and
across two nodes with one seed, a ticket from the node whose CRL does not
list the device does not resume on the node whose CRL does; with
crl_check = "chain", an intermediate CA revoked by a reload stops the
sessions of the devices under it."""

import calendar
import os
import re
import signal
import ssl
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLS12, TLS13, TLSClient, Daemon, EchoBackend, TestCA, case,  # noqa: E402
                   cert, check, check_eq, client_context, free_port, listener_conf,
                   make_conf, metric_value, run, scrape_metrics, tmpfile)

DEVICE_EXTENSIONS = """[ device ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
"""


class DeviceCA(TestCA):
    """A CA that issues device certificates, revokes them and writes CRLs."""

    def __init__(self, name):
        TestCA.__init__(self, name, DEVICE_EXTENSIONS)

    def issue(self, device):
        """issue(device): a key and certificate CN=${device}; returns its
        serial number in hex, as the log prints it."""
        return TestCA.issue(self, device, "device")

    def ctx(self, version, device):
        """A Python client context presenting ${device}'s certificate."""
        c = client_context(version)
        c.load_cert_chain(self.path(device + ".pem"), self.path(device + ".key"))
        return c


def setup(tag, crl_check=None, metrics=False, extra="", tickets='mode = "off";'):
    """A CA with devices good and bad (bad revoked in the CRL), a daemon
    that requires their certificates and checks that CRL; ${extra} goes
    into the config as it is."""
    ca = DeviceCA(tag + "-ca")
    serials = {dev: ca.issue(dev) for dev in ("good", "bad")}
    ca.revoke("bad")
    crl = ca.crl(ca.path("devices.crl"))
    backend = EchoBackend()
    port = free_port()
    mport = free_port() if metrics else None
    settings = {"client_ca": ca.pem, "verify_client": "require", "crl": crl}
    if crl_check:
        settings["crl_check"] = crl_check

    def conf(**over):
        s = dict(settings, **over)
        return make_conf(listener_conf("devs", port, backend.port, **s), tickets=tickets,
                         extra=extra + ('metrics = "127.0.0.1:%d";' % mport if mport else ""))

    d = Daemon(conf()).start()
    return ca, serials, d, port, backend, conf, mport


def works(ca, port, version, device):
    c = TLSClient(port, version, ctx=ca.ctx(version, device))
    c.roundtrip(b"hello from " + device.encode())
    c.close_notify()
    c.recv_all()


def refused(ca, port, version, device, backend, ctx=None, session=None):
    """The handshake fails (TLS 1.2), or the first read does (TLS 1.3, where
    the client is done before the server has checked it); the backend sees
    nothing.  With ${session} (from ${ctx}), it must not resume either."""
    n = backend.count()
    try:
        c = TLSClient(port, version, ctx=ctx or ca.ctx(version, device), session=session,
                      timeout=5)
        check(not c.obj.session_reused, "a refused device resumed (%s)" % version)
        c.send(b"must not arrive")
        check_eq(c.recv(), b"", "data after a revoked certificate")
    except (ssl.SSLError, ConnectionError):
        pass
    time.sleep(0.2)
    check_eq(backend.count(), n, "backend connections after a refused handshake")


def revoked_line(serials):
    return (r"devs 127\.0\.0\.1:\d+: handshake refused: client certificate revoked by the "
            r"CRL: subject CN=bad, serial %s$" % serials["bad"])


def good_works_bad_logged(ca, serials, d, port, backend):
    """Over TLS 1.2 and 1.3 (Python), the good device relays; the revoked
    one is refused with its log line."""
    for version in (TLS12, TLS13):
        works(ca, port, version, "good")
        mark = d.mark()
        refused(ca, port, version, "bad", backend)
        d.wait_log(revoked_line(serials), 5, since=mark)


def s_client_device(ca, port, device, version_flag):
    rc, out = tplib.s_client(port, [version_flag, "-cert", ca.path(device + ".pem"),
                                    "-key", ca.path(device + ".key")], input=b"ping")
    return rc, out


def reload(d, conf):
    mark = d.mark()
    d.write_conf(conf)
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload: (configuration from .* in force|refused)|reload refused", 5, since=mark)
    time.sleep(0.3)     # every worker picks the new services up
    d.check_alive()
    return mark


def check_t(conf_text, want):
    """tlsproxy -t on ${conf_text}: exit 78 and an error matching ${want}."""
    path = tmpfile("check-%d.conf" % time.monotonic_ns(), conf_text)
    rc, out, err = run([tplib.TLSPROXY, "-t", "-c", path])
    check_eq(rc, 78, "tlsproxy -t status; output:\n" + out + err)
    check(re.search(want.replace("@CONF@", re.escape(path)), out + err),
          "no error matching %r in:\n%s" % (want, out + err))


@case("a revoked device is refused on full handshakes (TLS 1.2, 1.3, Python and "
      "s_client), logged with subject and serial, counted as revoked; the good one works")
def _():
    ca, serials, d, port, backend, conf, mport = setup("leaf", metrics=True)
    good_works_bad_logged(ca, serials, d, port, backend)
    for flag in ("-tls1_2", "-tls1_3"):
        rc, out = s_client_device(ca, port, "good", flag)
        check_eq(rc, 0, "s_client with the good device:\n" + out[-800:])
        n, mark = backend.count(), d.mark()
        rc, out = s_client_device(ca, port, "bad", flag)
        d.wait_log(revoked_line(serials), 5, since=mark)
        time.sleep(0.2)
        check_eq(backend.count(), n, "backend connections of the revoked s_client")
    body = scrape_metrics(mport)
    check_eq(metric_value(body, "tlsproxy_handshake_failures_total", listener="devs",
                          reason="revoked"), 4.0, "revoked failures in the metrics")
    check_eq(metric_value(body, "tlsproxy_handshake_failures_total", listener="devs",
                          reason="error"), 0.0, "other failures in the metrics")
    check_eq(d.count_log(r"revoked by the CRL"), 4, "log lines of revoked devices")


@case("full_handshake_priority = low: the CRLs are checked on the handshake threads too")
def _():
    ca, serials, d, port, backend, conf, _ = setup(
        "pool", extra='full_handshake_priority = "low";\n')
    good_works_bad_logged(ca, serials, d, port, backend)


@case("a reload with a new CRL revokes a device without a restart; open connections "
      "of the good device go on")
def _():
    ca, serials, d, port, backend, conf, _ = setup("reload")
    works(ca, port, TLS13, "good")
    open_conn = TLSClient(port, TLS13, ctx=ca.ctx(TLS13, "good"))
    open_conn.roundtrip(b"before the reload")
    ca.issue("later")
    works(ca, port, TLS13, "later")
    ca.revoke("later")
    ca.crl(ca.path("devices.crl"))
    works(ca, port, TLS12, "later")       # the old CRL is in force until the reload
    pid = d.pid
    mark = reload(d, conf())
    d.wait_log(r"reload: configuration from .* in force", 5, since=mark)
    check_eq(d.pid, pid, "pid after the reload")
    for version in (TLS12, TLS13):
        refused(ca, port, version, "later", backend)
        refused(ca, port, version, "bad", backend)
        works(ca, port, version, "good")
    open_conn.roundtrip(b"after the reload")


@case("a device revoked after its full handshake does not resume: a reload with a new "
      "CRL refuses its TLS 1.3 and TLS 1.2 tickets (revoked, logged, counted), and the full "
      "handshake that follows is refused; a good device still resumes")
def _():
    ca, serials, d, port, backend, conf, _ = setup(
        "resume", tickets='mode = "stateless"; seed = "crl-resume-seed-0123456789abcdef";')
    serials["later"] = ca.issue("later")
    ctxs, sessions = {}, {}
    for dev in ("later", "good"):
        for version in (TLS13, TLS12):
            ctx = ctxs[dev, version] = ca.ctx(version, dev)
            c = TLSClient(port, version, ctx=ctx)
            c.roundtrip(b"full handshake")
            sessions[dev, version] = c.obj.session
            c.close()
            r = TLSClient(port, version, ctx=ctx, session=sessions[dev, version])
            r.roundtrip(b"resumed before")
            check(r.obj.session_reused, "%s %s not resumed before the reload" % (dev, version))
            sessions[dev, version] = r.obj.session
            r.close()
    ca.revoke("later")
    ca.crl(ca.path("devices.crl"))
    mark = reload(d, conf())
    d.wait_log(r"reload: configuration from .* in force", 5, since=mark)
    before = d.counters()[0]
    for version in (TLS13, TLS12):
        refused(ca, port, version, "later", backend, ctx=ctxs["later", version],
                session=sessions["later", version])
        g = TLSClient(port, version, ctx=ctxs["good", version], session=sessions["good", version])
        g.roundtrip(b"resumed after")
        check(g.obj.session_reused, "a good device did not resume (%s)" % version)
        g.close()
    d.wait_log(r"devs: ticket not resumed \(revoked\), client \"CN=later\", serial %s"
               % serials["later"], 5, since=mark)
    after = d.counters()[0]
    check_eq(after["ticket_rejected_revoked"] - before.get("ticket_rejected_revoked", 0), 2,
             "tickets refused as revoked")


def cached_session_revoked(tag, tickets, version=TLS12, via="session ID"):
    """A session the server caches (a TLS 1.2 session ID, or a TLS 1.3
    stateful ticket that names a cache entry), the device revoked by a
    reload with a new CRL: its session does not resume (reason revoked,
    logged, counted) and the full handshake that follows is refused; a good
    device's session, made before the same reload, still resumes (the
    cache is kept)."""
    ca, serials, d, port, backend, conf, mport = setup(tag, metrics=True, tickets=tickets)
    serials["later"] = ca.issue("later")
    ctxs, sessions = {}, {}
    for dev in ("later", "good"):
        ctx = ctxs[dev] = ca.ctx(version, dev)
        if version == TLS12:
            # A client that sends no ticket extension resumes by session ID only.
            ctx.options |= ssl.OP_NO_TICKET
        c = TLSClient(port, version, ctx=ctx)
        c.roundtrip(b"full handshake")
        if version == TLS12:
            check(not c.obj.session.has_ticket, "%s: the server issued a ticket" % dev)
            check(len(c.obj.session.id) > 0, "%s: no session ID" % dev)
        else:
            check(c.obj.session.has_ticket, "%s: no TLS 1.3 ticket" % dev)
        sessions[dev] = c.obj.session
        c.close()
        r = TLSClient(port, version, ctx=ctx, session=sessions[dev])
        r.roundtrip(b"resumed before")
        check(r.obj.session_reused, "%s: %s not resumed before the reload" % (dev, via))
        r.close()
    ca.revoke("later")
    ca.crl(ca.path("devices.crl"))
    mark = reload(d, conf())
    d.wait_log(r"reload: configuration from .* in force", 5, since=mark)
    body = scrape_metrics(mport)
    revoked = metric_value(body, "tlsproxy_ticket_rejections_total", reason="revoked")
    failed = metric_value(body, "tlsproxy_handshake_failures_total", listener="devs",
                          reason="revoked")
    refused(ca, port, version, "later", backend, ctx=ctxs["later"], session=sessions["later"])
    g = TLSClient(port, version, ctx=ctxs["good"], session=sessions["good"])
    g.roundtrip(b"resumed after the reload")
    check(g.obj.session_reused, "a good device's %s did not resume after the reload" % via)
    g.close()
    d.wait_log(r"devs: %s not resumed \(revoked\), client \"CN=later\", serial %s; "
               r"full handshake" % (via, serials["later"]), 5, since=mark)
    body = scrape_metrics(mport)
    check_eq(metric_value(body, "tlsproxy_ticket_rejections_total", reason="revoked") - revoked,
             1.0, "%ss refused as revoked" % via)
    check_eq(metric_value(body, "tlsproxy_handshake_failures_total", listener="devs",
                          reason="revoked") - failed, 1.0, "full handshakes refused as revoked")


@case('tickets mode "off": a device revoked after its full handshake does not resume its '
      "TLS 1.2 session ID after a reload with a new CRL; a good device's session ID still "
      "resumes")
def _():
    cached_session_revoked("sid-off", 'mode = "off";')


@case("a client that sends no ticket extension (stateless tickets on the server): its "
      "revoked session ID does not resume after a reload; a good one still does")
def _():
    cached_session_revoked("sid-noticket",
                           'mode = "stateless"; seed = "crl-session-id-seed-0123456789ab";')


@case('tickets mode "stateful": a revoked device\'s TLS 1.3 ticket, which names a cache '
      "entry, does not resume after a reload; a good one still does")
def _():
    cached_session_revoked("stateful13", 'mode = "stateful";', TLS13, "stateful ticket")


@case("two nodes with one seed, the device revoked in node B's CRL only: its tickets from "
      "node A (TLS 1.3 and TLS 1.2) do not resume on B (revoked, logged, counted) and the "
      "full handshake there is refused; they still resume on A; a good device's resume on both")
def _():
    ca = DeviceCA("nodes-ca")
    serials = {dev: ca.issue(dev) for dev in ("good", "later")}
    crl_a = ca.crl(ca.path("a.crl"))
    ca.revoke("later")
    crl_b = ca.crl(ca.path("b.crl"))
    backend = EchoBackend()
    tickets = 'mode = "stateless"; seed = "crl-two-nodes-seed-0123456789abcd";'
    nodes = {}
    for name, crl in (("A", crl_a), ("B", crl_b)):
        port, mport = free_port(), free_port()
        d = Daemon(make_conf(listener_conf("devs", port, backend.port, client_ca=ca.pem,
                                           verify_client="require", crl=crl),
                             tickets=tickets, extra='metrics = "127.0.0.1:%d";' % mport),
                   name="node" + name).start()
        nodes[name] = (d, port, mport)
    (a, port_a, mport_a), (b, port_b, mport_b) = nodes["A"], nodes["B"]
    mark = b.mark()
    for version in (TLS13, TLS12):
        sessions = {}
        for dev in ("good", "later"):
            ctx = ca.ctx(version, dev)
            c = TLSClient(port_a, version, ctx=ctx)
            c.roundtrip(b"full handshake on A")
            check(c.obj.session.has_ticket, "%s %s: no ticket from A" % (dev, version))
            sessions[dev] = (ctx, c.obj.session)
            c.close()
        ctx, sess = sessions["good"]
        g = TLSClient(port_b, version, ctx=ctx, session=sess)
        g.roundtrip(b"A's ticket on B")
        check(g.obj.session_reused, "a good device's ticket from A did not resume on B (%s)"
              % version)
        g.close()
        ctx, sess = sessions["later"]
        refused(ca, port_b, version, "later", backend, ctx=ctx, session=sess)
        r = TLSClient(port_a, version, ctx=ctx, session=sess)
        r.roundtrip(b"A's ticket on A")
        check(r.obj.session_reused, "the device's ticket did not resume on A, whose CRL does "
              "not list it (%s)" % version)
        r.close()
    b.wait_log(r"devs: ticket not resumed \(revoked\), client \"CN=later\", serial %s"
               % serials["later"], 5, since=mark)
    body_a, body_b = scrape_metrics(mport_a), scrape_metrics(mport_b)
    check_eq(metric_value(body_b, "tlsproxy_ticket_rejections_total", reason="revoked"), 2.0,
             "B's tickets refused as revoked")
    check_eq(metric_value(body_b, "tlsproxy_handshake_failures_total", listener="devs",
                          reason="revoked"), 2.0, "B's full handshakes refused as revoked")
    check_eq(metric_value(body_a, "tlsproxy_ticket_rejections_total", reason="revoked"), 0.0,
             "A's tickets refused as revoked")
    check_eq(metric_value(body_a, "tlsproxy_handshake_failures_total", listener="devs",
                          reason="revoked"), 0.0, "A's full handshakes refused as revoked")


@case("a broken CRL file: -t reports FILE:LINE: crl, and SIGHUP is refused with the "
      "old CRLs in force")
def _():
    ca, serials, d, port, backend, conf, _ = setup("broken")
    other = DeviceCA("broken-other")
    good_crl = ca.path("devices.crl")
    with open(good_crl) as f:
        pem = f.read()
    garbled = tmpfile("garbled.crl", pem.replace(pem.splitlines()[3], "A" * 64))
    empty = tmpfile("empty.crl", "not a CRL\n")
    foreign = other.crl(other.path("devices.crl"))
    for path, why in ((garbled, r"does not parse"), (empty, r"no CRL in the file"),
                      (foreign, r"the CRL of CN=broken-other is not signed by a CA "
                                r"of client_ca")):
        check_t(conf(crl=path), r"@CONF@:\d+: crl: .*" + why)
        mark = reload(d, conf(crl=path))
        d.wait_log(r"reload refused: %s:\d+: crl: .*%s" % (re.escape(d.conf_path), why),
                   5, since=mark)
        refused(ca, port, TLS13, "bad", backend)
        works(ca, port, TLS13, "good")


@case("crl needs client_ca and verify_client; crl_check needs crl and is leaf or chain")
def _():
    ca = DeviceCA("settings-ca")
    crl = ca.crl(ca.path("devices.crl"))
    port = free_port()

    def conf(**s):
        return make_conf(listener_conf("devs", port, 1, **s))
    check_t(conf(crl=crl), r"@CONF@:\d+: listeners\[0\]\.crl: needs client_ca and "
                           r"verify_client = \"optional\" or \"require\"")
    check_t(conf(crl=crl, client_ca=ca.pem), r"@CONF@:\d+: listeners\[0\]\.crl: needs")
    check_t(conf(client_ca=ca.pem, verify_client="require", crl_check="chain"),
            r"@CONF@:\d+: listeners\[0\]\.crl_check: has no effect without crl")
    check_t(conf(client_ca=ca.pem, verify_client="require", crl=crl, crl_check="all"),
            r"@CONF@:\d+: listeners\[0\]\.crl_check: \"all\" is not allowed "
            r"\(one of \"leaf\", \"chain\"\)")
    check_t(conf(client_ca=ca.pem, verify_client="require", crl=ca.path("nothing.crl")),
            r"@CONF@:\d+: listeners\[0\]\.crl: ")
    path = tmpfile("ok.conf", conf(client_ca=ca.pem, verify_client="optional", crl=crl))
    rc, out, err = run([tplib.TLSPROXY, "-t", "-c", path])
    check_eq(rc, 0, "tlsproxy -t on a good CRL:\n" + out + err)


@case("a CRL past its nextUpdate still revokes, is logged once per load, and the "
      "metric shows its nextUpdate")
def _():
    ca, serials, d, port, backend, conf, mport = setup("expired", metrics=True)
    now = int(time.time())
    last, nxt = now - 7200, now - 3600
    expired = ca.crl(ca.path("expired.crl"), last, nxt)
    mark = reload(d, conf(crl=expired))
    d.wait_log(r"reload: configuration from .* in force", 5, since=mark)
    warn = (r"devs: crl %s: the CRL of CN=expired-ca is past its nextUpdate \(%s\); it "
            r"still revokes" % (re.escape(expired),
                                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(nxt))))
    d.wait_log(warn, 5, since=mark)
    for version in (TLS12, TLS13, TLS12, TLS13):
        works(ca, port, version, "good")
        refused(ca, port, version, "bad", backend)
    check_eq(len(re.findall(warn, d.log_since(mark))), 1, "expired-CRL warnings in one load")
    body = scrape_metrics(mport)
    check_eq(metric_value(body, "tlsproxy_crl_next_update_timestamp_seconds", listener="devs"),
             float(nxt), "the metric's nextUpdate")
    check_eq(metric_value(body, "tlsproxy_handshake_failures_total", listener="devs",
                          reason="revoked"), 4.0, "revoked failures")
    # Another load warns again, once; a fresh CRL silences it.
    mark = reload(d, conf(crl=expired))
    works(ca, port, TLS13, "good")
    refused(ca, port, TLS13, "bad", backend)
    check_eq(len(re.findall(warn, d.log_since(mark))), 1, "warnings after a second load")
    fresh = ca.crl(ca.path("fresh.crl"))
    mark = reload(d, conf(crl=fresh))
    works(ca, port, TLS13, "good")
    refused(ca, port, TLS13, "bad", backend)
    check("past its nextUpdate" not in d.log_since(mark), "a fresh CRL logged as expired")
    got = metric_value(scrape_metrics(mport), "tlsproxy_crl_next_update_timestamp_seconds",
                       listener="devs")
    check(got is not None and now + 86400 - 60 <= got <= time.time() + 86400 + 60,
          "the metric after a fresh CRL: %r" % got)


@case("a CRL that expires while loaded: the first verification that meets it warns, "
      "once, and it still revokes")
def _():
    ca, serials, d, port, backend, conf, mport = setup("expiring", metrics=True)
    now = int(time.time())
    soon = ca.crl(ca.path("soon.crl"), now - 60, now + 3)
    mark = reload(d, conf(crl=soon))
    check("past its nextUpdate" not in d.log_since(mark), "warned before it expired")
    time.sleep(max(0.0, now + 4 - time.time()))
    for version in (TLS13, TLS12, TLS13):
        refused(ca, port, version, "bad", backend)
        works(ca, port, version, "good")
    check_eq(d.log_since(mark).count("past its nextUpdate"), 1, "warnings")


@case('crl_check = "chain": the CA is checked too; a client CA without a CRL is an error')
def _():
    ca, serials, d, port, backend, conf, _ = setup("chain", crl_check="chain")
    works(ca, port, TLS13, "good")
    works(ca, port, TLS12, "good")
    refused(ca, port, TLS13, "bad", backend)
    other = DeviceCA("chain-other")
    both = tmpfile("both-cas.pem", open(ca.pem).read() + open(other.pem).read())
    check_t(conf(client_ca=both), r"@CONF@:\d+: crl: no CRL of client CA CN=chain-other: "
                                  r"with crl_check = \"chain\"")
    # With "leaf" the same file loads, with a warning for the other CA's devices.
    mark = reload(d, conf(client_ca=both, crl_check="leaf"))
    d.wait_log(r"reload: configuration from .* in force", 5, since=mark)
    d.wait_log(r"devs: crl .*: no CRL of client CA CN=chain-other: devices whose "
               r"certificate it issued are refused", 5, since=mark)
    other.issue("stranger")
    mark = d.mark()
    refused(other, port, TLS13, "stranger", backend)
    d.wait_log(r"handshake failed: .*unable to get certificate CRL", 5, since=mark)
    works(ca, port, TLS13, "good")


INTERMEDIATE_EXTENSIONS = DEVICE_EXTENSIONS + """[ intermediate ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@case('crl_check = "chain": an intermediate CA revoked after a device\'s full handshake '
      "stops its TLS 1.3 and TLS 1.2 tickets from resuming (revoked), and the full "
      "handshake that follows is refused")
def _():
    root = TestCA("chain-root", INTERMEDIATE_EXTENSIONS)
    root.issue("inter", "intermediate")
    inter = DeviceCA("chain-inter")
    # The intermediate signs from here on: openssl ca reads ca.pem and ca.key.
    for name in ("pem", "key"):
        with open(root.path("inter." + name)) as f, open(inter.path("ca." + name), "w") as o:
            o.write(f.read())
    inter.issue("dev")
    cas = tmpfile("chain-cas.pem", open(root.pem).read() + open(inter.pem).read())
    crls = tmpfile("chain.crl", "")

    def write_crls():
        text = "".join(open(ca.crl(ca.path("ca.crl"))).read() for ca in (root, inter))
        with open(crls, "w") as o:
            o.write(text)

    write_crls()
    backend = EchoBackend()
    port = free_port()

    def conf():
        return make_conf(listener_conf("devs", port, backend.port, client_ca=cas,
                                       verify_client="require", crl=crls, crl_check="chain"),
                         tickets='mode = "stateless"; seed = "crl-chain-seed-0123456789abcdef";')

    d = Daemon(conf()).start()
    ctxs, sessions = {}, {}
    for version in (TLS13, TLS12):
        ctxs[version] = inter.ctx(version, "dev")
        c = TLSClient(port, version, ctx=ctxs[version])
        c.roundtrip(b"first")
        sessions[version] = c.obj.session
        c2 = TLSClient(port, version, ctx=ctxs[version], session=sessions[version])
        check(c2.obj.session_reused, "resumes before the revocation (%s)" % version)
        c2.roundtrip(b"resumed")
    before = d.counters()[0]["ticket_rejected_revoked"]
    root.revoke("inter")
    write_crls()
    mark = reload(d, conf())
    d.wait_log(r"reload: configuration from .* in force", 5, since=mark)
    for version in (TLS13, TLS12):
        refused(inter, port, version, "dev", backend, ctx=ctxs[version],
                session=sessions[version])
    check_eq(d.counters()[0]["ticket_rejected_revoked"], before + 2,
             "ticket_rejected_revoked")
    check_eq(d.count_log(r"devs: ticket not resumed \(revoked\), client \"CN=dev\"",
                         since=mark), 2, "log lines:\n" + d.log_since(mark))


tplib.main()
