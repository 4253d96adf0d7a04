#!/usr/bin/env python3
"""Prometheus metrics (issue 6): `metrics = "127.0.0.1:PORT";` serves GET
/metrics in the text format, version 0.0.4.

The test does a known mix of connections (full TLS 1.3 handshakes, TLS 1.2
session-ID resumptions with s_client, TLS 1.3 ticket resumptions with
Python's ssl, a garbage connection, a backend that refuses, reloads that
succeed and fail), scrapes /metrics with urllib, parses the text format
itself and checks every counter against what it did: exactly, including
that nothing else moved.  Then the format's conventions, the seed
fingerprint (computed here from the seed, and as logged) and never the
seed; a scrape answered at once while 200 clients sit mid-handshake and
another keeps the only worker busy with handshakes; a metrics address that
cannot be bound is a startup error naming the setting."""

import hashlib
import hmac
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLS13, TLSPROXY, TLSClient, Daemon, EchoBackend,  # noqa: E402
                   case, check, check_eq, check_match, client_context, client_hello,
                   defer, diag, free_port, listener_conf, make_conf, run,
                   tmpfile, wait_closed, wait_until)

EX_CONFIG = 78

# ---------------------------------------------------------------- the format

SAMPLE_RX = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL_RX = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL_RX.match(text, pos)
        check(m, "bad labels {%s} at %d" % (text, pos))
        check(m.group(1) not in labels, "label %s twice in {%s}" % (m.group(1), text))
        labels[m.group(1)] = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n"
                                    else e.group(1), m.group(2))
        pos = m.end()
    return labels


class Scrape:
    """One /metrics answer, parsed: .types and .helps by family, .samples
    by (name, frozenset(labels)), .families by sample name."""

    def __init__(self, body, content_type=None):
        self.body = body
        self.content_type = content_type
        self.types, self.helps, self.samples, self.order = {}, {}, {}, []
        for n, line in enumerate(body.split("\n"), 1):
            if line == "":
                check(n == len(body.split("\n")), "empty line %d" % n)
                continue
            m = re.match(r"^# (HELP|TYPE) (\S+) (.+)$", line)
            if m:
                d = self.helps if m.group(1) == "HELP" else self.types
                check(m.group(2) not in d, "two %s lines for %s" % (m.group(1), m.group(2)))
                d[m.group(2)] = m.group(3)
                continue
            check(not line.startswith("#"), "line %d: stray comment %r" % (n, line))
            m = SAMPLE_RX.match(line)
            check(m, "line %d is not a sample: %r" % (n, line))
            key = (m.group(1), frozenset(parse_labels(m.group(2) or "").items()))
            check(key not in self.samples, "line %d: series twice: %r" % (n, line))
            self.samples[key] = float(m.group(3))
            self.order.append(key)

    def family(self, name):
        """The family a sample name belongs to (histograms: _bucket etc.)."""
        if name in self.types:
            return name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[:-len(suffix)]
            if name.endswith(suffix) and self.types.get(base) == "histogram":
                return base
        raise tplib.Failure("sample %s has no # TYPE line" % name)

    def get(self, name, **labels):
        key = (name, frozenset(labels.items()))
        check(key in self.samples, "no series %s%s in:\n%s" % (name, labels, self.body))
        return self.samples[key]

    def series(self, name):
        """[(labels dict, value)] of sample ${name}."""
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == name]


def scrape(port, path="/metrics", timeout=5):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        check_eq(r.status, 200, "HTTP status")
        return Scrape(r.read().decode("utf-8"), r.headers.get("Content-Type"))


def wait_scrape(port, timeout=10):
    def attempt():
        try:
            return scrape(port, timeout=1)
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            return None
    return wait_until(attempt, timeout, "metrics on port %d" % port)


def check_conventions(sc):
    """HELP and TYPE for every family, Prometheus naming, complete histograms."""
    check_eq(sc.content_type, "text/plain; version=0.0.4; charset=utf-8", "Content-Type")
    check_eq(set(sc.types), set(sc.helps), "families with TYPE vs with HELP")
    for fam, typ in sc.types.items():
        check(fam.startswith("tlsproxy_"), "%s: no tlsproxy_ prefix" % fam)
        check(re.match(r"^[a-z_]+$", fam), "%s: not snake_case" % fam)
        check(typ in ("counter", "gauge", "histogram"), "%s: type %s" % (fam, typ))
        check((typ == "counter") == fam.endswith("_total"),
              "%s (%s): counters, and only counters, end in _total" % (fam, typ))
        check(not re.search(r"_(milli|micro)?seconds_total$|_ms$|_kb$", fam),
              "%s: not in base units" % fam)
        check(any(sc.family(k[0]) == fam for k in sc.samples), "%s: no samples" % fam)
    # Every family's samples are together, after its TYPE line.
    seen = []
    for name, _ in sc.order:
        fam = sc.family(name)
        if not seen or seen[-1] != fam:
            check(fam not in seen, "%s's samples are split" % fam)
            seen.append(fam)
    for fam in (f for f, t in sc.types.items() if t == "histogram"):
        groups = {}
        for labels, v in sc.series(fam + "_bucket"):
            le = labels.pop("le")
            groups.setdefault(frozenset(labels.items()), []).append((le, v))
        check(groups, "%s: no buckets" % fam)
        for labels, buckets in groups.items():
            check_eq(buckets[-1][0], "+Inf", "%s: last bucket" % fam)
            bounds = [float(le) for le, _ in buckets]
            check_eq(bounds, sorted(bounds), "%s: bucket bounds in order" % fam)
            counts = [v for _, v in buckets]
            check_eq(counts, sorted(counts), "%s: cumulative buckets" % fam)
            check_eq(sc.get(fam + "_count", **dict(labels)), counts[-1],
                     "%s: _count vs +Inf" % fam)
            sc.get(fam + "_sum", **dict(labels))


# ---------------------------------------------------------------- seeds


def fingerprint(seed):
    """The seed's fingerprint as tlsproxy.conf(5) defines it."""
    prk = hmac.new(b"tlsproxy-ticket-v1", seed, hashlib.sha256).digest()
    return hashlib.sha256(prk).digest()[:8].hex()


def new_seed(tag):
    return ("%s-%s" % (tag, os.urandom(12).hex())).encode()


# ---------------------------------------------------------------- clients


def py(port, ctx, payload, session=None):
    """A Python ssl connection (offering ${session}): one echo round trip of
    ${payload}, then close_notify.  Returns (session_reused, newest session)."""
    c = TLSClient(port, ctx=ctx, session=session)
    c.roundtrip(payload)
    reused, sess = c.obj.session_reused, c.obj.session
    c.close_notify()
    c.recv_all()
    c.close()
    return reused, sess


def s12(port, sess_in=None, sess_out=None):
    """TLS 1.2 s_client without tickets; returns "New" or "Reused"."""
    return tplib.s_client_tls12(port, sess_in=sess_in, sess_out=sess_out)[0]


def counters(sc):
    """Every counter series (histograms' _count and _sum too) -> value."""
    out = {}
    for (name, labels), v in sc.samples.items():
        fam = sc.family(name)
        if sc.types[fam] == "counter" or (sc.types[fam] == "histogram" and
                                          not name.endswith("_bucket")):
            out[(name, labels)] = v
    return out


def series_name(key):
    name, labels = key
    return "%s{%s}" % (name, ",".join('%s="%s"' % kv for kv in sorted(labels)))


def settled(port, listeners, least=0):
    """A scrape once every listener's connections are closed and counted:
    nothing open, every accepted connection accounted for by a handshake
    or a failure, and at least ${least} accepted.  Right after a start,
    least=1: Daemon.start() probes each port with one TCP connection, which
    a busy worker may accept only after a first scrape."""
    def attempt():
        sc = scrape(port)
        for l in listeners:
            if sc.get("tlsproxy_connections_open", listener=l) != 0:
                return None
            if sc.get("tlsproxy_connections_total", listener=l) < least:
                return None
            done = sum(v for lb, v in sc.series("tlsproxy_handshakes_total")
                       if lb["listener"] == l)
            done += sum(v for lb, v in sc.series("tlsproxy_handshake_failures_total")
                        if lb["listener"] == l)
            if done != sc.get("tlsproxy_connections_total", listener=l):
                return None
        return sc
    return wait_until(attempt, 15, "connections closed and counted")


# ---------------------------------------------------------------- cases

N_FULL13, M_SESSION_ID, K_TICKET13 = 3, 4, 5


@case("the counters equal what the test did: handshakes by version and kind, "
      "failures, backend, bytes, reloads; fingerprints, never the seed")
def _():
    backend = EchoBackend()
    port, dead, mport, dead_backend = free_port(), free_port(), free_port(), free_port()
    seed, previous = new_seed("metrics"), new_seed("metrics-previous")
    tickets = 'seed = "%s"; previous_seed = "%s";' % (seed.decode(), previous.decode())

    def conf(max_conn=777, metrics_port=mport, broken=False):
        text = make_conf([listener_conf("mqtt", port, backend.port, max_connections=max_conn),
                          listener_conf("dead", dead, dead_backend, connect_retry=False)],
                         tickets=tickets, extra='metrics = "127.0.0.1:%d";' % metrics_port)
        return text.replace("workers = 2;", "workers = ;") if broken else text

    before_start = time.time()
    d = Daemon(conf()).start()
    after_start = time.time()
    wait_scrape(mport)
    base = settled(mport, ("mqtt", "dead"), least=1)
    d.wait_log(r"metrics: serving http://127\.0\.0\.1:%d/metrics" % mport, 5)

    # N full TLS 1.3 handshakes, each with its own context: nothing to resume.
    sent = 0
    for i in range(N_FULL13):
        payload = b"full-%d-" % i + b"x" * (100 * i)
        reused, _ = py(port, client_context(TLS13), payload)
        check(not reused, "full handshake %d resumed" % i)
        sent += len(payload)

    # One full TLS 1.2 handshake, then M resumptions by session ID.
    f = tmpfile("metrics-sess.pem")
    check_eq(s12(port, sess_out=f), "New", "TLS 1.2 first connection")
    check_eq([s12(port, sess_in=f) for _ in range(M_SESSION_ID)],
             ["Reused"] * M_SESSION_ID, "TLS 1.2 session-ID resumptions")

    # One full TLS 1.3 handshake for a ticket, then K resumptions with tickets.
    ctx = client_context(TLS13)
    reused, sess = py(port, ctx, b"first")
    check(not reused and sess is not None and sess.has_ticket, "no TLS 1.3 ticket")
    sent += len(b"first")
    for i in range(K_TICKET13):
        payload = b"resumed-%d" % i
        reused, newer = py(port, ctx, payload, sess)
        check(reused, "TLS 1.3 ticket resumption %d did not resume" % i)
        sess = newer if newer is not None and newer.has_ticket else sess
        sent += len(payload)

    # Garbage: not TLS at all.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        wait_closed(s)

    # A handshake on a listener whose backend refuses.
    c = TLSClient(dead, TLS13)
    c.wait_tcp_eof()
    c.close()

    # Reloads: one that works (max_connections changes), then a syntax
    # error and a moved metrics address, both refused.
    mark = d.mark()
    before_reload = time.time()
    d.write_conf(conf(max_conn=778))
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload: configuration from .* in force", 5, since=mark)
    after_reload = time.time()
    check_eq(scrape(mport).get("tlsproxy_max_connections", listener="mqtt"), 778,
             "max_connections after the reload")
    for bad, why in ((conf(max_conn=779, broken=True), r"syntax error"),
                     (conf(max_conn=779, metrics_port=free_port()),
                      r"metrics: 127\.0\.0\.1:\d+ instead of 127\.0\.0\.1:%d \(that needs a "
                      r"restart\)" % mport)):
        mark = d.mark()
        d.write_conf(bad)
        d.signal(signal.SIGHUP)
        d.wait_log(r"reload refused: .*" + why, 5, since=mark)
    d.check_alive()

    sc = settled(mport, ("mqtt", "dead"))
    check_conventions(sc)

    # Every counter moved by exactly what the test did, and no other did.
    want = {}

    def expect(name, value, **labels):
        want[(name, frozenset(labels.items()))] = value
    expect("tlsproxy_connections_total", N_FULL13 + 1 + M_SESSION_ID + 1 + K_TICKET13 + 1,
           listener="mqtt")
    expect("tlsproxy_connections_total", 1, listener="dead")
    expect("tlsproxy_handshakes_total", N_FULL13 + 1, listener="mqtt", version="TLSv1.3",
           kind="full")
    expect("tlsproxy_handshakes_total", K_TICKET13, listener="mqtt", version="TLSv1.3",
           kind="ticket_current")
    expect("tlsproxy_handshakes_total", 1, listener="mqtt", version="TLSv1.2", kind="full")
    expect("tlsproxy_handshakes_total", M_SESSION_ID, listener="mqtt", version="TLSv1.2",
           kind="session_id")
    expect("tlsproxy_handshakes_total", 1, listener="dead", version="TLSv1.3", kind="full")
    # Neither listener offers ALPN: every handshake negotiated none.
    expect("tlsproxy_handshakes_by_alpn_total", N_FULL13 + 1 + M_SESSION_ID + 1 + K_TICKET13,
           listener="mqtt", alpn="none")
    expect("tlsproxy_handshakes_by_alpn_total", 1, listener="dead", alpn="none")
    # Every full handshake is admitted (no full_handshake_rate: none waits).
    expect("tlsproxy_full_handshakes_admitted_total", N_FULL13 + 1 + 1, listener="mqtt")
    expect("tlsproxy_full_handshakes_admitted_total", 1, listener="dead")
    expect("tlsproxy_handshake_failures_total", 1, listener="mqtt", reason="error")
    expect("tlsproxy_backend_connect_failures_total", 1, listener="dead")
    connects = N_FULL13 + 1 + M_SESSION_ID + 1 + K_TICKET13
    expect("tlsproxy_backend_connect_seconds_count", connects, listener="mqtt")
    expect("tlsproxy_bytes_total", sent, listener="mqtt", direction="client_to_backend")
    expect("tlsproxy_bytes_total", sent, listener="mqtt", direction="backend_to_client")
    expect("tlsproxy_config_reloads_total", 1, result="ok")
    expect("tlsproxy_config_reloads_total", 2, result="failed")
    now, was = counters(sc), counters(base)
    check_eq(set(now), set(was), "counter series before and after")
    for key, v in sorted(now.items(), key=lambda kv: series_name(kv[0])):
        if key[0].endswith("_sum"):
            continue
        check_eq(v - was[key], want.pop(key, 0), "change of " + series_name(key))
    check_eq(want, {}, "expected series that were not there")
    took = sc.get("tlsproxy_backend_connect_seconds_sum", listener="mqtt") - \
        base.get("tlsproxy_backend_connect_seconds_sum", listener="mqtt")
    check(0 < took < connects * 1.0, "backend connect seconds: %r for %d" % (took, connects))
    check_eq(sc.get("tlsproxy_backend_connect_seconds_bucket", listener="dead", le="+Inf"), 0,
             "connects timed on the dead listener")
    check_eq(dict((lb["reason"], v) for lb, v in sc.series("tlsproxy_ticket_rejections_total")),
             {"unknown_key": 0, "expired": 0, "malformed": 0, "policy": 0,
              "cert_expired": 0, "too_old": 0, "revoked": 0}, "ticket rejections")

    # Gauges.
    check_eq(sc.get("tlsproxy_max_connections", listener="mqtt"), 778, "max_connections mqtt")
    check_eq(sc.get("tlsproxy_max_connections", listener="dead"), 100000,
             "max_connections dead (default)")
    check_eq(sc.get("tlsproxy_config_last_reload_successful"), 0, "last reload successful")
    t = sc.get("tlsproxy_config_last_reload_timestamp_seconds")
    check(before_reload - 0.01 <= t <= after_reload + 0.01,
          "last reload time %.3f not within the good reload [%.3f, %.3f]"
          % (t, before_reload, after_reload))
    t = sc.get("tlsproxy_start_time_seconds")
    check(before_start - 0.01 <= t <= after_start + 0.01,
          "start time %.3f not within [%.3f, %.3f]" % (t, before_start, after_start))
    epoch = sc.get("tlsproxy_ticket_epoch")
    check(int(time.time()) // 3600 - 1 <= epoch <= int(time.time()) // 3600,
          "ticket epoch %r (rotation_interval 1h)" % epoch)

    # Fingerprints: as logged, as derived here, and never the seed.
    m = d.wait_log(r"tickets: stateless, seed fingerprint ([0-9a-f]{16}), "
                   r"previous seed ([0-9a-f]{16}),", 5)
    check_eq((m.group(1), m.group(2)), (fingerprint(seed), fingerprint(previous)),
             "logged fingerprints vs derived here")
    check_eq(sorted((lb["seed"], lb["fingerprint"], v)
                    for lb, v in sc.series("tlsproxy_ticket_seed_info")),
             [("current", m.group(1), 1), ("previous", m.group(2), 1)], "ticket_seed_info")
    for s in (seed, previous):
        for text, what in ((sc.body, "/metrics"), (d.log(), "the log")):
            check(s.decode() not in text, "%s shows a seed" % what)
            check(s.hex() not in text, "%s shows a seed in hex" % what)

    # The SIGUSR1 line tells the same totals.
    mark = d.mark()
    d.signal(signal.SIGUSR1)
    line = d.wait_log(r"stats: ([^\n]*)\n", 5, since=mark).group(1)
    st = dict((k, int(v)) for k, v in (kv.split("=") for kv in line.split()))
    total = dict(("%s_%s" % (lb["version"], lb["kind"]), v)
                 for lb, v in sc.series("tlsproxy_handshakes_total") if lb["listener"] == "mqtt")
    check_eq((st["resumed_tls12_session_id"], st["resumed_tls13_ticket_current"],
              st["reloads_ok"], st["reloads_failed"], st["handshake_failed"]),
             (total["TLSv1.2_session_id"], total["TLSv1.3_ticket_current"], 1, 2, 1),
             "SIGUSR1 line vs metrics")


@case("bytes_total and the closing log line count the client's bytes, not the PROXY header")
def _():
    # The backend sends nothing and half-closes at once; the client still sends.
    backend = tplib.GreetHalfCloseBackend(b"")
    port, mport = free_port(), free_port()
    d = Daemon(make_conf(listener_conf("pp", port, backend.port, proxy_protocol="v2"),
                         extra='metrics = "127.0.0.1:%d";' % mport)).start()
    base = counters(settled(mport, ("pp",), least=1))
    payload = b"publish " * 500
    c = TLSClient(port, TLS13)
    check_eq(c.recv_all(), b"", "data from the backend")
    c.send(payload)
    c.close_notify()
    c.wait_tcp_eof()
    rec = backend.wait_conns(1)
    check(rec.eof.wait(5), "the backend got no EOF")
    header = rec.nreceived - len(payload)
    check(header > 16 and bytes(rec.received[header:]) == payload,
          "the backend did not get a PROXY header followed by the payload")
    now = counters(settled(mport, ("pp",)))
    for direction, want in (("client_to_backend", len(payload)), ("backend_to_client", 0)):
        key = ("tlsproxy_bytes_total",
               frozenset({"listener": "pp", "direction": direction}.items()))
        check_eq(now.get(key, 0) - base.get(key, 0), want, "bytes_total " + direction)
    d.wait_log(r"pp .*closed after \d+s \(%d bytes in, 0 out\)" % len(payload))


@case("only GET/HEAD /metrics: other paths are 404; tickets off: no ticket series")
def _():
    backend = EchoBackend()
    port, mport = free_port(), free_port()
    Daemon(make_conf(listener_conf("mqtt", port, backend.port),
                     extra='metrics = "127.0.0.1:%d";' % mport)).start()
    sc = wait_scrape(mport)
    check_conventions(sc)
    for fam in ("tlsproxy_ticket_epoch", "tlsproxy_ticket_seed_info"):
        check(fam not in sc.types, "%s without stateless tickets" % fam)
    for path in ("/", "/metrics/x", "/favicon.ico"):
        try:
            scrape(mport, path)
            raise tplib.Failure("%s answered 200" % path)
        except urllib.error.HTTPError as e:
            check_eq(e.code, 404, "status of " + path)
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % mport, method="HEAD")
    with urllib.request.urlopen(req, timeout=5) as r:
        check_eq((r.status, r.read()), (200, b""), "HEAD /metrics")
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % mport, data=b"x",
                                 method="POST")
    try:
        urllib.request.urlopen(req, timeout=5)
        raise tplib.Failure("POST answered 200")
    except urllib.error.HTTPError as e:
        check(e.code >= 400, "POST status %d" % e.code)
    # A scraper that connects and says nothing does not block the next one.
    with socket.create_connection(("127.0.0.1", mport), timeout=5):
        scrape(mport)


@case("/metrics answers at once while 200 clients are mid-handshake and the only "
      "worker is busy with full handshakes")
def _():
    backend = EchoBackend()
    port, fport, mport = free_port(), free_port(), free_port()
    d = Daemon(make_conf([listener_conf("mqtt", port, backend.port, handshake_timeout="60s"),
                          listener_conf("flood", fport, backend.port)],
                         workers=1, extra='metrics = "127.0.0.1:%d";' % mport)).start()
    wait_scrape(mport)
    base = settled(mport, ("mqtt", "flood"), least=1)

    socks = []

    def close_all():
        for s in socks:
            s.close()
    defer(close_all)
    hello = client_hello(TLS13)
    for i in range(200):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 2:
            s.sendall(hello)    # the proxy answers and waits for the client's Finished
        socks.append(s)

    # Meanwhile keep the worker busy with full handshakes, on another listener.
    stop = threading.Event()
    done = [0]

    def flood():
        while not stop.is_set():
            try:
                c = TLSClient(fport, TLS13, timeout=10)
                c.close()
                done[0] += 1
            except Exception:
                pass
    threads = [threading.Thread(target=flood, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()

    def stop_flood():
        stop.set()
        for t in threads:
            t.join(15)
    defer(stop_flood)

    sc = wait_until(lambda: (lambda s: s if s.get("tlsproxy_connections_open",
                                                  listener="mqtt") >= 200 else None)(
        scrape(mport)), 10, "200 connections open")
    slowest = 0
    for _ in range(20):
        t0 = time.monotonic()
        sc = scrape(mport, timeout=5)
        slowest = max(slowest, time.monotonic() - t0)
        check(sc.get("tlsproxy_connections_open", listener="mqtt") >= 200,
              "fewer than 200 connections open during the scrape")
        time.sleep(0.05)
    stop_flood()
    diag("slowest of 20 scrapes: %.3f s, with %d flood handshakes meanwhile"
         % (slowest, done[0]))
    check(slowest < 1.0, "a scrape took %.3f s" % slowest)
    check(done[0] > 0, "the flood made no handshakes")

    close_all()
    sc = settled(mport, ("mqtt",))
    got = dict((lb["reason"], v - base.get("tlsproxy_handshake_failures_total", **lb))
               for lb, v in sc.series("tlsproxy_handshake_failures_total")
               if lb["listener"] == "mqtt")
    check_eq(got, {"client_closed": 200, "error": 0, "revoked": 0, "timeout": 0},
             "handshake failures of the 200 closed mid-handshake")
    d.check_alive()


@case("EMFILE with a scrape waiting: the metrics thread pauses instead of spinning "
      "and flooding the log, and answers once descriptors are free")
def _():
    backend = EchoBackend()
    port, mport = free_port(), free_port()
    d = Daemon(make_conf(listener_conf("mqtt", port, backend.port, handshake_timeout="30s"),
                         extra='metrics = "127.0.0.1:%d";' % mport), nofile=40).start()
    wait_scrape(mport)
    socks = []

    def close_all():
        for s in socks:
            s.close()
        del socks[:]
    defer(close_all)
    for _ in range(60):
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    wait_until(lambda: d.fds() >= 38, 10, "the daemon to reach its fd limit")
    time.sleep(0.3)
    mark = d.mark()
    m = socket.create_connection(("127.0.0.1", mport), timeout=5)
    defer(m.close)
    m.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    cpu0 = d.cpu_seconds()
    time.sleep(2)
    cpu = d.cpu_seconds() - cpu0
    lines = d.log_since(mark).splitlines()
    diag("at the fd limit with a scrape waiting: %.2f s CPU in 2 s, %d log lines"
         % (cpu, len(lines)))
    check(cpu < 0.5, "busy loop on the metrics socket at EMFILE: %.2f s CPU in 2 s" % cpu)
    check(len(lines) < 20, "%d log lines in 2 s at EMFILE, e.g. %r" % (len(lines), lines[-1]))
    check_match(r"error: metrics: accept: Too many open files", "\n".join(lines), "the log")
    close_all()
    m.settimeout(5)
    check_match(r"^HTTP/1\.[01] 200", m.recv(100).decode(errors="replace"),
                "the waiting scrape's answer")
    d.check_alive()


@case("a metrics address that cannot be bound stops the start-up, naming the setting")
def _():
    backend = EchoBackend()
    port = free_port()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    defer(holder.close)
    mport = holder.getsockname()[1]
    d = Daemon(make_conf(listener_conf("mqtt", port, backend.port),
                         extra='metrics = "127.0.0.1:%d";' % mport))
    d.start(wait=False)
    rc = d.wait_exit(10)
    check(rc is not None, "still running with its metrics address taken")
    d.stop(expect=1)
    line = [n for n, l in enumerate(open(d.conf_path).read().split("\n"), 1)
            if l.startswith("metrics")][0]
    check_match(r"error: %s:%d: metrics: cannot listen on 127\.0\.0\.1:%d: bind: "
                % (re.escape(d.conf_path), line, mport), d.log(), "the log")
    check(not tplib.port_open(port), "listener port %d open" % port)


@case("-t: a metrics host name or a listener's address is a config error (78)")
def _():
    port = free_port()
    for value, msg in (("localhost:9464", r'metrics: "localhost:9464": host names are not '
                        r'allowed here'),
                       ("127.0.0.1:%d" % port, r"metrics: 127\.0\.0\.1:%d is also the address "
                        r"of listeners\[0\]" % port)):
        path = tmpfile("bad-metrics.conf", make_conf(listener_conf("mqtt", port, 1883),
                                                     extra='metrics = "%s";' % value))
        rc, out, err = run([TLSPROXY, "-t", "-c", path])
        check_eq(rc, EX_CONFIG, "exit status; stderr:\n" + err)
        check_match(re.escape(path) + r":\d+: " + msg, err, "stderr")


tplib.main()
