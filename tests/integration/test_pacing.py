#!/usr/bin/env python3
"""Reconnect storms: full_handshake_rate admits full handshakes at a set rate
(first come, first served; the rest wait with their socket unwatched, up to
handshake_timeout), while resumptions (TLS 1.3 ticket, TLS 1.2 ticket and
session ID) go through at once and a forged ticket or an unknown session ID
is metered like any full handshake; backend_connect_rate and
backend_max_connecting pace the connects to the broker (up to
connect_timeout); a reload keeps the bucket and the queue; the counters, the
SIGUSR1 line and the metrics say what happened.  The only timing assertions
are lower bounds that a rate limit makes certain."""

import base64
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (OPENSSL, TLS12, TLS13, TLSClient, Daemon, EchoBackend, case,  # noqa: E402
                   check, check_eq, client_context, defer, free_port, listener_conf,
                   make_conf, run, s_client_tls12, tmpfile, wait_until)

SEED = 'mode = "stateless"; seed = "pacing-test-seed-0123456789abcdef";'
LISTENER = "mqtt"


def paced_proxy(backend=None, metrics=False, top="", **settings):
    """tlsproxy (stateless tickets, 2 workers) with ${settings} on its one
    listener and ${top} among the global settings, in front of ${backend}
    (a new echo backend by default)."""
    backend = backend or EchoBackend()
    port = free_port()
    extra = 'metrics = "127.0.0.1:%d";' % free_port() if metrics else ""
    extra += top
    conf = make_conf(listener_conf(LISTENER, port, backend.port, **settings), tickets=SEED,
                     extra=extra)
    d = Daemon(conf).start()
    d.conf_text = conf
    d.port = port
    d.metrics_port = int(re.search(r'metrics = "127\.0\.0\.1:(\d+)"', extra).group(1)) \
        if metrics else None
    return d, port, backend


def park(port, version=TLS13):
    """A client that has sent its ClientHello and waits for the answer;
    .handshake() finishes it later."""
    c = TLSClient(port, version, handshake=False)
    try:
        c.obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    c._flush()
    return c


def finishes(c):
    """True if ${c}'s handshake completes and relays, False if the proxy
    closed it first."""
    try:
        c.handshake()
        c.roundtrip(b"after the wait")
        return True
    except (ConnectionError, ssl.SSLError, OSError):
        return False


def counters(d):
    return d.counters(paced=(LISTENER,))


def metric(d, name):
    """The value of sample ${name}{listener="mqtt"} on ${d}'s /metrics."""
    url = "http://127.0.0.1:%d/metrics" % d.metrics_port
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    m = re.search(r"^%s\{listener=\"%s\"\} (\S+)$" % (re.escape(name), LISTENER), text, re.M)
    check(m is not None, "no %s on /metrics" % name)
    return float(m.group(1))


# ---------------------------------------------------------------- admission


@case("full_handshake_rate = 2: 8 full handshakes at once start 2 at once, then 2 a "
      "second, and all complete; the waits are counted")
def _():
    d, port, _ = paced_proxy(metrics=True, full_handshake_rate=2, handshake_timeout="20s")
    started = time.monotonic()
    clients = [park(port) for _ in range(8)]
    parked = time.monotonic() - started
    for i, c in enumerate(clients):
        check(finishes(c), "client %d was closed" % i)
    took = time.monotonic() - started
    # Burst 2, then one every 0.5 s: the 8th cannot start before 3 s.
    check(took >= 2.5, "8 full handshakes in %.2f s at 2/s with burst 2" % took)
    counts, waiting = counters(d)
    check_eq(counts["full_admitted"], 8, "full handshakes admitted")
    # Tokens that came while the clients were parking let some through.
    least = 6 - int(parked * 2) - 1
    check(least <= counts["full_deferred"] <= 6, "deferred %d (parking took %.2f s)"
          % (counts["full_deferred"], parked))
    check_eq(counts["full_dropped"], 0, "dropped")
    check_eq(waiting[LISTENER], (0, 0), "waiting after the storm")
    check_eq(metric(d, "tlsproxy_full_handshakes_admitted_total"), 8, "admitted (metrics)")
    check_eq(metric(d, "tlsproxy_full_handshakes_deferred_total"), counts["full_deferred"],
             "deferred (metrics)")
    check_eq(metric(d, "tlsproxy_full_handshake_wait_seconds_count"),
             counts["full_deferred"], "waits in the histogram")
    check(metric(d, "tlsproxy_full_handshake_wait_seconds_sum") >= 2.0,
          "the waits add up to less than the rate allows")


def session_id_of(out):
    m = re.search(r"Session-ID: ([0-9A-F]+)", out)
    check(m is not None and m.group(1), "no session ID in s_client's output")
    return m.group(1)


def forge_ticket(src, dst):
    """Copy session file ${src} to ${dst} with one byte of its ticket's
    encrypted part changed: the key name still matches, the MAC does not."""
    rc, out, _ = run([OPENSSL, "sess_id", "-in", src, "-noout", "-text"], check_rc=0)
    m = re.search(r"TLS session ticket:\n\s*0000 - ((?:[0-9a-f]{2}[ -]){16})", out)
    check(m is not None, "no ticket in %s" % src)
    name = bytes.fromhex(re.sub(r"[ -]", "", m.group(1)))
    with open(src) as f:
        pem = f.read()
    body = "".join(l for l in pem.splitlines() if not l.startswith("-----"))
    der = bytearray(base64.b64decode(body))
    at = der.find(name)
    check(at >= 0, "the ticket's key name is not in the session's DER")
    der[at + 40] ^= 0x5a        # past the name and the IV: the ciphertext
    text = base64.encodebytes(bytes(der)).decode()
    with open(dst, "w") as f:
        f.write("-----BEGIN SSL SESSION PARAMETERS-----\n%s-----END SSL SESSION "
                "PARAMETERS-----\n" % text)


@case("while full handshakes wait, TLS 1.3 and TLS 1.2 tickets and a session ID resume at "
      "once; a forged ticket and an unknown session ID wait like any full handshake")
def _():
    d, port, backend = paced_proxy(full_handshake_rate=1, full_handshake_burst=1,
                                   handshake_timeout="30s")
    other, oport, _ = paced_proxy(backend)     # same seed, its own session cache
    ctx = client_context(TLS13)
    c = TLSClient(port, ctx=ctx)
    c.roundtrip(b"a TLS 1.3 session")
    s13 = c.obj.session
    f12t, f12id, fother, forged = (tmpfile(n) for n in ("t12.pem", "id12.pem", "other.pem",
                                                       "forged.pem"))
    check_eq(s_client_tls12(port, sess_out=f12t, tickets=True)[0], "New", "TLS 1.2 ticket")
    check_eq(s_client_tls12(port, sess_out=f12id)[0], "New", "TLS 1.2 session ID")
    check_eq(s_client_tls12(oport, sess_out=fother)[0], "New", "a session ID of another node")
    forge_ticket(f12t, forged)

    # Five full handshakes take the next five seconds' tokens.
    parked = [park(port) for _ in range(5)]
    # Sent is not yet read: the workers may not have peeked them all.
    wait_until(lambda: counters(d)[1][LISTENER][0] >= 2, 10, "2 full handshakes waiting")
    before, waiting = counters(d)

    r = TLSClient(port, ctx=ctx, session=s13)
    r.roundtrip(b"resumed")
    check(r.obj.session_reused, "TLS 1.3 ticket not resumed")
    check_eq(s_client_tls12(port, sess_in=f12t, tickets=True)[0], "Reused", "TLS 1.2 ticket")
    check_eq(s_client_tls12(port, sess_in=f12id)[0], "Reused", "TLS 1.2 session ID")
    after, waiting = counters(d)
    check(waiting[LISTENER][0] >= 1, "the resumptions waited behind the full handshakes")
    check_eq(after["full_deferred"], before["full_deferred"], "resumptions deferred")
    check_eq(after["full_admitted"], before["full_admitted"], "resumptions admitted")

    # Not resumable: metered, behind the five in line.
    result = {}

    def offer(what, sess, tickets):
        result[what] = s_client_tls12(port, sess_in=sess, tickets=tickets)[0]
    threads = [threading.Thread(target=offer, args=a) for a in
               (("forged", forged, True), ("unknown", fother, False))]
    for t in threads:
        t.start()
    wait_until(lambda: counters(d)[0]["full_deferred"] >= before["full_deferred"] + 2, 10,
               "the forged ticket and the unknown session ID deferred")
    for i, p in enumerate(parked):
        check(finishes(p), "parked client %d was closed" % i)
    for t in threads:
        t.join(30)
    check_eq(result, {"forged": "New", "unknown": "New"}, "the unresumable sessions")
    final, _ = counters(d)
    check_eq(final["full_admitted"], before["full_admitted"] + 7, "admitted")
    check_eq(final["ticket_rejected_malformed"], before["ticket_rejected_malformed"] + 1,
             "the forged ticket rejected")
    check_eq(final["resumed_tls12_session_id"], 1, "session-ID resumptions")


@case("handshake_timeout = 2s at 1 a second: a handshake whose turn would come after half "
      "of it is closed at once, the rest in time; each closed one has a log line")
def _():
    d, port, _ = paced_proxy(full_handshake_rate=1, full_handshake_burst=1,
                             handshake_timeout="2s")
    clients = [park(port) for _ in range(6)]
    done = [finishes(c) for c in clients]
    counts, waiting = counters(d)
    dropped = done.count(False)
    # One at once, one a second, none later than 1 s: 2 (a third just in time).
    check(2 <= done.count(True) <= 3, "completed: %s" % done)
    check_eq(counts["full_dropped"], dropped, "dropped")
    check_eq(counts["full_admitted"], done.count(True), "admitted")
    refused = d.count_log(r"mqtt 127\.0\.0\.1:\d+: full handshake refused: it could not "
                          r"begin within half of handshake_timeout \(2s\) at "
                          r"full_handshake_rate \(1/s\)")
    waited_out = d.count_log(r"mqtt 127\.0\.0\.1:\d+: full handshake not begun within "
                             r"handshake_timeout \(2s\): full_handshake_rate \(1/s\) reached; "
                             r"closed")
    check(refused >= 2, "refused at once: %d" % refused)
    check_eq(refused + waited_out, dropped, "log lines")
    check_eq(counts["handshake_timeout"], 0, "counted as handshake timeouts too")
    check_eq(waiting[LISTENER], (0, 0), "waiting")


@case("a client that leaves while it waits is closed when its turn comes, without the "
      "work, and the turn goes to the next in line")
def _():
    d, port, _ = paced_proxy(full_handshake_rate=1, full_handshake_burst=1,
                             handshake_timeout="20s")
    # One at a time, so that the workers take them in this order.
    first = park(port)
    wait_until(lambda: counters(d)[0]["full_admitted"] == 1, 5, "the first admitted")
    leaver = park(port)
    wait_until(lambda: counters(d)[0]["full_deferred"] == 1, 5, "the leaver waiting")
    last = park(port)
    wait_until(lambda: counters(d)[0]["full_deferred"] == 2, 5, "the last waiting")
    leaver.rst()
    check(finishes(first), "the first was closed")
    check(finishes(last), "the one after the leaver was closed")
    d.wait_log(r"mqtt 127\.0\.0\.1:\d+: closed by the client while waiting for "
               r"full_handshake_rate", 5)
    counts, _ = counters(d)
    check_eq((counts["full_admitted"], counts["full_deferred"], counts["full_dropped"]),
             (2, 2, 1), "admitted, deferred, dropped")
    check_eq(counts["full_tls13"], 2, "full handshakes done")


# ---------------------------------------------------------------- backend


@case("backend_connect_rate = 4: 12 clients at once reach the backend at most 4 a second "
      "(evenly), all relay")
def _():
    backend = EchoBackend()
    d, port, _ = paced_proxy(backend, metrics=True, backend_connect_rate=4,
                             connect_timeout="10s")
    ok = []

    def client(i):
        c = TLSClient(port, TLS13)
        c.roundtrip(b"client %d" % i)
        ok.append(i)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    check_eq(sorted(ok), list(range(12)), "clients that relayed")
    times = sorted(rec.accepted for rec in backend.conns)
    # One every 250 ms: a second holds 5 (both ends), 6 after a late tick.
    busiest = max(sum(1 for u in times if t <= u <= t + 1.0) for t in times)
    check(busiest <= 6, "%d backend connects within one second at 4/s" % busiest)
    check(times[-1] - times[0] >= 2.5, "12 connects at 4/s in %.2f s" % (times[-1] - times[0]))
    counts, waiting = counters(d)
    check(counts["backend_deferred"] >= 8, "deferred: %d" % counts["backend_deferred"])
    check_eq(counts["backend_dropped"], 0, "dropped")
    check_eq(waiting[LISTENER], (0, 0), "waiting")
    check_eq(metric(d, "tlsproxy_backend_connect_wait_seconds_count"),
             counts["backend_deferred"], "waits in the histogram")


@case("backend_max_connecting = 1 against a backend slow to accept: the second connect "
      "waits for the first, then both relay")
def _():
    lsock, filler = tplib.full_accept_queue()
    d, port, _ = paced_proxy(backend=None, backend_max_connecting=1, connect_timeout="10s")
    d.write_conf(d.conf_text.replace('backend = "127.0.0.1:%d"' % int(
        re.search(r'backend = "127\.0\.0\.1:(\d+)"', d.conf_text).group(1)),
        'backend = "127.0.0.1:%d"' % lsock.getsockname()[1]))
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload: configuration from .* in force", 5, since=mark)
    clients = [TLSClient(port, TLS13), TLSClient(port, TLS13)]
    wait_until(lambda: counters(d)[1][LISTENER][1] == 1, 5, "one backend connect waiting")
    for i, c in enumerate(clients):
        c.send(b"client %d" % i)
    lsock.settimeout(10)
    lsock.accept()[0].close()           # the filler: the first connect gets through
    got = set()
    for _ in range(2):
        conn, _ = lsock.accept()
        defer(conn.close)
        conn.settimeout(5)
        got.add(conn.recv(100))         # whichever client's connect came first
    check_eq(got, {b"client 0", b"client 1"}, "bytes at the backend")
    counts, waiting = counters(d)
    check_eq(counts["backend_deferred"], 1, "deferred")
    check_eq(waiting[LISTENER], (0, 0), "waiting")


@case("backend_connect_rate = 1, connect_timeout = 1s: connections whose turn would not "
      "come in time get a close_notify and one log line")
def _():
    d, port, backend = paced_proxy(backend_connect_rate=1, connect_timeout="1s")
    clients = [TLSClient(port, TLS13) for _ in range(5)]
    relayed = []
    for c in clients:
        try:
            c.roundtrip(b"x")
            relayed.append(True)
        except (ConnectionError, tplib.Failure, OSError):
            relayed.append(False)
            check(c.got_close_notify, "closed without close_notify")
    counts, _ = counters(d)
    check(1 <= relayed.count(True) <= 2, "relayed: %s" % relayed)
    check_eq(counts["backend_dropped"], relayed.count(False), "dropped")
    lines = d.count_log(r"backend connect not begun within connect_timeout \(1s\): "
                        r"backend_connect_rate \(1/s\) or backend_max_connecting \(0\) "
                        r"reached; closed") + \
        d.count_log(r"backend connect refused: it could not begin within half of "
                    r"connect_timeout \(1s\) at backend_connect_rate \(1/s\)")
    check_eq(lines, relayed.count(False), "log lines")
    check_eq(backend.count(), relayed.count(True), "backend connections")


# ---------------------------------------------------------------- reload


@case("a reload keeps the bucket (no free tokens) and the queue; lifting the limit lets "
      "every waiter through")
def _():
    d, port, _ = paced_proxy(full_handshake_rate=1, full_handshake_burst=3,
                             handshake_timeout="20s")
    for i in range(3):          # the three tokens of the burst
        check(finishes(park(port)), "full handshake %d" % i)
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload: configuration from .* in force", 5, since=mark)
    # A reload that refilled the bucket would let 3 through at once; kept,
    # it has earned about one since.
    before, _ = counters(d)
    clients = [park(port) for _ in range(3)]
    wait_until(lambda: counters(d)[0]["full_deferred"] >= before["full_deferred"] + 1, 5,
               "a full handshake after the reload deferred")
    for c in clients:
        check(finishes(c), "deferred after the reload, then closed")
    # Six waiting at 1/s would take 5 s or more; the limit lifted by a
    # reload lets them all through at once.
    clients = [park(port) for _ in range(6)]
    mark = d.mark()
    d.write_conf(d.conf_text.replace("full_handshake_rate = 1;", "full_handshake_rate = 0;")
                 .replace("full_handshake_burst = 3;", ""))
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload: configuration from .* in force", 5, since=mark)
    lifted = time.monotonic()
    check_eq([finishes(c) for c in clients], [True] * 6, "completed after the limit was lifted")
    check(time.monotonic() - lifted < 4.0, "6 waiting handshakes took %.1f s after the "
          "limit was lifted" % (time.monotonic() - lifted))
    check_eq(d.counters()[0]["full_dropped"], 0, "dropped")


@case("a ClientHello in two pieces waits for its second; one that stops half-way and "
      "closes is closed at once; neither makes the daemon spin")
def _():
    d, port, _ = paced_proxy(full_handshake_rate=1, full_handshake_burst=1,
                             handshake_timeout="10s")
    hello = tplib.client_hello(TLS13)
    cpu = d.cpu_seconds()
    half = socket.create_connection(("127.0.0.1", port))
    defer(half.close)
    half.sendall(hello[:len(hello) // 2])
    time.sleep(0.5)
    half.shutdown(socket.SHUT_WR)
    half.settimeout(5)
    check_eq(half.recv(100), b"", "an answer to half a ClientHello")
    # A real client whose ClientHello comes in two segments, 0.5 s apart.
    c = TLSClient(port, TLS13, handshake=False)
    try:
        c.obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    first = c.out.read()
    c.sock.sendall(first[:100])
    time.sleep(0.5)
    c.sock.sendall(first[100:])
    check(finishes(c), "the ClientHello in two pieces")
    check(d.cpu_seconds() - cpu < 0.5, "the daemon used %.2f s of CPU in about 1 s"
          % (d.cpu_seconds() - cpu))


# ---------------------------------------------------------------- priority

LOW = 'full_handshake_priority = "low";'


def threads(d):
    """{tid: (nice, ns on the CPU)} of ${d}'s threads."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % d.pid):
        try:
            with open("/proc/%d/task/%s/stat" % (d.pid, tid)) as f:
                nice = int(f.read().rsplit(")", 1)[1].split()[16])
            with open("/proc/%d/task/%s/schedstat" % (d.pid, tid)) as f:
                ns = int(f.read().split()[0])
        except OSError:
            continue
        out[tid] = (nice, ns)
    return out


def pool_ns(d):
    """CPU time (ns) of ${d}'s nice-19 threads, and how many there are."""
    low = [ns for nice, ns in threads(d).values() if nice == 19]
    return sum(low), len(low)


@case("full_handshake_priority = low: full handshakes (TLS 1.3, TLS 1.2, with a client "
      "certificate) run on as many nice-19 threads as workers; resumptions never reach them")
def _():
    backend = EchoBackend()
    d, port, _ = paced_proxy(backend, top=LOW, verify_client="optional",
                             client_ca=tplib.cert("ca.pem"))
    ns0, n = pool_ns(d)
    check_eq(n, 2, "nice-19 threads (2 workers)")
    check_eq(sum(1 for nice, _ in threads(d).values() if nice == 0) >= 3, True,
             "the main thread and the workers at normal priority")
    sessions, plain = {}, {}
    for v in (TLS13, TLS12):
        plain[v] = client_context(v)
        with_cert = client_context(v, client_cert="client")
        for i in range(20):
            c = TLSClient(port, ctx=with_cert if i % 2 else plain[v])
            c.roundtrip(b"full handshake %d" % i)
            check(not c.obj.session_reused, "resumed without a session")
            if not i % 2:
                sessions[v] = c.obj.session
            c.close()
    ns1, _ = pool_ns(d)
    check(ns1 > ns0, "the pool's threads did not run (%d ns before, %d after)" % (ns0, ns1))
    for v in (TLS13, TLS12):
        for i in range(20):
            c = TLSClient(port, ctx=plain[v], session=sessions[v])
            c.roundtrip(b"resumed %d" % i)
            check(c.obj.session_reused, "not resumed (%s, %d)" % (v, i))
            sessions[v] = c.obj.session
            c.close()
    ns2, _ = pool_ns(d)
    counts = d.counters()[0]
    check_eq((counts["full_tls13"], counts["full_tls12"]), (20, 20), "full handshakes")
    check_eq(counts["resumed_tls13_ticket_current"] + counts["resumed_tls12_ticket_current"],
             40, "resumptions")
    # Waking a thread costs a few µs; a full handshake costs far more.
    full_ns = (ns1 - ns0) / 40.0
    check(ns2 - ns1 < full_ns, "the pool ran during resumptions: %d ns, a full "
          "handshake takes %d" % (ns2 - ns1, full_ns))


@case("full_handshake_priority = low with full_handshake_rate: deferred handshakes run on "
      "the pool once admitted; a client that leaves mid-handshake and one with a bad "
      "certificate are closed with their log line, and no fd is left")
def _():
    d, port, _ = paced_proxy(top=LOW, full_handshake_rate=2, handshake_timeout="20s",
                             verify_client="optional", client_ca=tplib.cert("ca.pem"))
    base_fds = d.fds()
    clients = [park(port) for _ in range(6)]
    for i, c in enumerate(clients):
        check(finishes(c), "client %d was closed" % i)
        c.close()
    counts = d.counters()[0]
    check_eq(counts["full_admitted"], 6, "admitted")
    check(counts["full_deferred"] >= 3, "deferred: %d" % counts["full_deferred"])
    # The ClientHello, then gone: waiting, on the pool or after it.
    mark = d.mark()
    for _ in range(4):
        p = park(port)
        p.rst()
    bad = tplib.TLSClient(port, TLS13, handshake=False, client_cert="other-client")
    try:
        bad.handshake()
        bad.roundtrip(b"should not pass")
        check(False, "a certificate of another CA was accepted")
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    d.wait_log(r"handshake failed: .*(certificate|unknown ca)", 10, since=mark)
    d.wait_fds(base_fds, 15)
    d.check_alive()


@case("full_handshake_priority: SIGTERM while full handshakes are with the pool exits "
      "cleanly; a reload that changes it says it takes a restart; -t names the values")
def _():
    d, port, _ = paced_proxy(top=LOW)
    stop = threading.Event()

    def flood():
        while not stop.is_set():
            try:
                c = TLSClient(port, TLS13, timeout=5)
                c.close()
            except (ConnectionError, ssl.SSLError, OSError):
                pass
    workers = [threading.Thread(target=flood) for _ in range(4)]
    for t in workers:
        t.start()
    defer(stop.set)
    time.sleep(0.5)
    mark = d.mark()
    d.write_conf(d.conf_text.replace(LOW, ""))
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload: full_handshake_priority changed; that takes a restart", 5, since=mark)
    check_eq(pool_ns(d)[1], 2, "nice-19 threads after the reload")
    time.sleep(0.3)
    d.stop(timeout=15)
    stop.set()
    for t in workers:
        t.join(10)

    conf = make_conf(listener_conf(LISTENER, free_port(), 1), tickets=SEED,
                     extra='full_handshake_priority = "lowest";')
    path = tmpfile("bad-priority.conf", conf)
    rc, out, err = run([tplib.TLSPROXY, "-t", "-c", path])
    check_eq(rc, 78, "exit status")
    check(re.search(r"%s:\d+: full_handshake_priority: .*normal.*low" % re.escape(path), err),
          "no error for full_handshake_priority:\n%s" % err)


# ---------------------------------------------------------------- backend retry


class NoBackend:
    """A port where nothing listens (yet): a broker that is down."""

    def __init__(self):
        self.port = free_port()


def client_port(c):
    return c.sock.getsockname()[1]


def retry_lines(d, mark, cport):
    """The log lines since ${mark} about the client on port ${cport}."""
    return [l for l in d.log_since(mark).splitlines() if "127.0.0.1:%d:" % cport in l]


@case("connect_retry (the default): the backend refuses, then comes up within "
      "connect_timeout; each client's first bytes reach it and its answer comes back; "
      "the retries are counted, and no failure")
def _():
    down = NoBackend()
    d, port, _ = paced_proxy(backend=down, metrics=True, connect_timeout="10s")
    mark = d.mark()
    clients = []
    for i, version in enumerate((TLS12, TLS13, TLS13)):
        c = TLSClient(port, version)
        c.send(b"sent while the broker is down %d" % i)
        clients.append(c)
    time.sleep(1.2)
    backend = EchoBackend(port=down.port)
    for i, c in enumerate(clients):
        c.sock.settimeout(10)
        want = b"sent while the broker is down %d" % i
        check_eq(c.recv_exactly(len(want)), want, "client %d: the echo" % i)
        c.roundtrip(b"and after")
    check_eq(backend.count(), 3, "backend connections")
    counts, _ = d.counters()
    check_eq(counts["backend_failed"], 0, "backend_failed")
    check(counts["backend_retried"] >= 3, "backend_retried %d, want at least one per client"
          % counts["backend_retried"])
    check_eq(metric(d, "tlsproxy_backend_connect_retries_total"), counts["backend_retried"],
             "retries on /metrics")
    check(not re.search(r"warning|Connection refused", d.log_since(mark)),
          "a client that got through was logged as failing:\n" + d.log_since(mark))
    for c in clients:
        c.close_notify()
        c.recv_all()


@case("connect_retry: a backend that stays down closes the client cleanly once "
      "connect_timeout has passed since the first attempt, with one log line, and one failure")
def _():
    down = NoBackend()
    d, port, _ = paced_proxy(backend=down, connect_timeout="2s")
    base = d.fds()
    mark = d.mark()
    c = TLSClient(port, TLS13)
    cport = client_port(c)
    started = time.monotonic()
    c.sock.settimeout(15)
    try:
        check_eq(c.recv_all(), b"", "data")
    except ConnectionResetError:
        raise tplib.Failure("RST instead of a clean close")
    waited = time.monotonic() - started
    tplib.diag("closed after %.2f s" % waited)
    check(waited >= 1.0, "closed after %.2f s: the retries did not last" % waited)
    check(c.got_close_notify, "no close_notify")
    d.wait_log(r"tried for", 5, since=mark)
    lines = retry_lines(d, mark, cport)
    tplib.diag("\n".join(lines))
    ends = [l for l in lines if "refused" in l]
    check_eq(len(ends), 1, "lines about the refusal")
    check(re.search(r"backend 127\.0\.0\.1:%d: Connection refused; tried for [12]\.\d s "
                    r"\(connect_timeout 2s\), closed" % down.port, ends[0]),
          "the line says what happened: " + ends[0])
    counts, _ = d.counters()
    check_eq(counts["backend_failed"], 1, "backend_failed")
    check(counts["backend_retried"] >= 3, "backend_retried %d" % counts["backend_retried"])
    d.wait_fds(base)


@case("connect_retry = false: the first refusal closes the client, as before")
def _():
    down = NoBackend()
    d, port, _ = paced_proxy(backend=down, connect_timeout="20s", connect_retry=False)
    mark = d.mark()
    c = TLSClient(port, TLS12)
    cport = client_port(c)
    started = time.monotonic()
    c.sock.settimeout(25)
    check_eq(c.recv_all(), b"", "data")
    waited = time.monotonic() - started
    check(waited < 10, "closed after %.1f s: it waited for connect_timeout" % waited)
    d.wait_log(r"efused", 5, since=mark)
    lines = retry_lines(d, mark, cport)
    check_eq(len([l for l in lines if "refused" in l]), 1, "lines about the refusal")
    check(not any("tried for" in l for l in lines), "a retry was logged: %s" % lines)
    counts, _ = d.counters()
    check_eq((counts["backend_failed"], counts["backend_retried"]), (1, 0),
             "backend_failed, backend_retried")


@case("connect_retry: clients that leave while their backend connect waits, one with a "
      "reset, one with its request, close_notify and a FIN, are closed and counted dropped; "
      "the backend, once up, never sees them")
def _():
    down = NoBackend()
    d, port, _ = paced_proxy(backend=down, connect_timeout="10s")
    base = d.fds()
    mark = d.mark()
    reset = TLSClient(port, TLS13)
    fin = TLSClient(port, TLS13)
    ports = (client_port(reset), client_port(fin))
    time.sleep(0.3)
    reset.rst()
    fin.send(b"a request the client no longer waits for")
    fin.close_notify()
    fin.shutdown_wr()
    for cport in ports:
        d.wait_log(r"127\.0\.0\.1:%d: closed by the client while waiting for its backend "
                   r"connect" % cport, 8, since=mark)
    backend = EchoBackend(port=down.port)
    fin.close()
    d.wait_fds(base)
    time.sleep(1.5)
    check_eq(backend.count(), 0, "backend connections")
    counts, _ = d.counters()
    check_eq((counts["backend_dropped"], counts["backend_failed"]), (2, 0),
             "backend_dropped, backend_failed")


@case("connect_retry with backend_max_connecting = 1: each retry takes a new turn, so "
      "clients held while the backend is down all get through once it is up")
def _():
    down = NoBackend()
    d, port, _ = paced_proxy(backend=down, connect_timeout="10s", backend_max_connecting=1)
    clients = [TLSClient(port, TLS13) for _ in range(4)]
    time.sleep(1.0)
    backend = EchoBackend(port=down.port)
    for i, c in enumerate(clients):
        c.sock.settimeout(10)
        c.roundtrip(b"client %d" % i)
    check_eq(backend.count(), 4, "backend connections")
    counts, waiting = counters(d)
    check_eq((counts["backend_failed"], waiting[LISTENER][1]), (0, 0),
             "backend_failed, still waiting")
    for c in clients:
        c.close_notify()
        c.recv_all()


@case("-t: full_handshake_burst without full_handshake_rate, and rates out of range, are "
      "errors at their line")
def _():
    conf = make_conf(listener_conf(LISTENER, free_port(), 1, full_handshake_burst=10,
                                   backend_connect_rate=-1, backend_max_connecting=2000000),
                     tickets=SEED)
    path = tmpfile("bad-pacing.conf", conf)
    rc, out, err = run([tplib.TLSPROXY, "-t", "-c", path])
    check_eq(rc, 78, "exit status")
    for setting, what in (("full_handshake_burst", "has no effect without "
                           "full_handshake_rate"),
                          ("backend_connect_rate", r"0 to 1000000"),
                          ("backend_max_connecting", r"0 to 1000000")):
        check(re.search(r"%s:\d+: listeners\[0\]\.%s: .*%s" % (re.escape(path), setting, what),
                        err), "no error for %s:\n%s" % (setting, err))


tplib.main()
