#!/usr/bin/env python3
"""Seed-derived session tickets (issue 3), with real clients: openssl
s_client (TLS 1.2 session files; TLS 1.3 kept open until its tickets
arrive), Python's ssl (session=) and tlsproxy-probe.

Nodes with the same seed resume each other's TLS 1.2 and TLS 1.3 tickets,
another seed falls back to a full handshake; keys rotate with a decrypt-only
grace; previous_seed and a new seed through SIGHUP; modes "stateful" and
"off"; listeners never share sessions; the Node.js issue's 1 new + 5
resumed; config errors and the seed never shown.

The ticket key names are checked against the derivation of the issue,
computed here independently (HKDF-SHA256 from hmac/hashlib)."""

import hashlib
import hmac
import math
import os
import re
import signal
import ssl
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLS12, TLS13, TLSPROXY, OPENSSL, TLSClient, Daemon,  # noqa: E402
                   EchoBackend, case, cert, check, check_eq, client_context,
                   defer, free_port, listener_conf, make_conf, run,
                   tmpfile, wait_until)

PROBE = os.environ.get("TLSPROXY_PROBE") or os.path.join(tplib.TOP_SRCDIR, "tlsproxy-probe")
EX_CONFIG = 78
HOUR = 3600

# ---------------------------------------------------------------- derivation


def hkdf_prk(seed):
    return hmac.new(b"tlsproxy-ticket-v1", seed, hashlib.sha256).digest()


def key_name(seed, epoch, period):
    """The key name of ${epoch} (hex), as the issue defines it."""
    info = b"epoch" + epoch.to_bytes(8, "big") + period.to_bytes(8, "big")
    return hmac.new(hkdf_prk(seed), info + b"\x01", hashlib.sha256).digest()[:16].hex()


def fingerprint(seed):
    return hashlib.sha256(hkdf_prk(seed)).digest()[:8].hex()


# Our own derivation must give the known answers.
assert key_name(b"0123456789abcdef0123456789abcdef", 493000, 3600) == \
    "3df0736c968e09348cf41f8d715f1fe7"
assert key_name(b"your-shared-secret-here-0123456789", 29580000, 60) == \
    "d0126c9ce9ad16d8a0d4c7db6930fd36"

# ---------------------------------------------------------------- seeds

SEEDS = []      # every seed of this file: none may ever be printed


def new_seed(tag):
    s = ("%s-%s" % (tag, os.urandom(12).hex())).encode()
    SEEDS.append(s)
    return s


def seed_file(name, seed, mode=0o600):
    path = tmpfile(name, seed + b"\n")
    os.chmod(path, mode)
    return path


def check_no_seed(text, what):
    for s in SEEDS:
        check(s.decode() not in text, "%s shows a seed (%s...)" % (what, s.decode()[:5]))


def tk(**kw):
    """The tickets group's body: key = value; ..."""
    return " ".join("%s = %s;" % (k, tplib.conf_value(v)) for k, v in kw.items())


# ---------------------------------------------------------------- nodes


def node(tickets, backend, name=None, listeners=("mqtt",), **conf):
    """A daemon whose listeners (same names on every node, as in a cluster)
    relay to ${backend}; .lport maps listener name to port.  Its log is
    checked for seeds when the case ends."""
    lport = dict((l, free_port()) for l in listeners)
    def conf_for(tickets):
        return make_conf([listener_conf(l, p, backend.port) for l, p in lport.items()],
                         tickets=tickets, **conf)
    d = Daemon(conf_for(tickets), name=name)
    d.conf_for = conf_for
    d.lport = lport
    d.port = lport[listeners[0]]
    d.start()
    defer(lambda: check_no_seed(d.log(), "%s's log" % d.name))
    return d


HS_RX = re.compile(r"^\S+ \w+: (\S+) 127\.0\.0\.1:\d+: (TLSv1\.[23]) \S+ "
                   r"(full handshake|resumed \([^)]*\))", re.M)


def handshakes(d, since):
    """[(listener, version, kind)] logged after ${since}."""
    return [m.groups() for m in HS_RX.finditer(d.log_since(since))]


def observe(d, fn, *args, **kw):
    """Run fn(*args); return (its result, (version, kind)) of the one
    handshake ${d} logged meanwhile."""
    mark = d.mark()
    r = fn(*args, **kw)
    wait_until(lambda: handshakes(d, mark), 5, "a handshake line in %s's log" % d.name)
    time.sleep(0.05)
    hs = handshakes(d, mark)
    check_eq(len(hs), 1, "handshakes logged by %s" % d.name)
    return r, hs[0][1:]


def stats(d):
    """The counters of ${d}'s SIGUSR1 line."""
    return d.counters()[0]


def reload(d, conf=None):
    """(Rewrite the config and) SIGHUP; wait until the reload is in force."""
    mark = d.mark()
    if conf is not None:
        d.write_conf(conf)
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload: configuration from .* in force", 5, since=mark)
    d.check_alive()
    check(not re.search(r"reload refused", d.log_since(mark)),
          "reload refused:\n" + d.log_since(mark))
    return mark


def fingerprint_line(d, since=0):
    return d.wait_log(r"tickets: stateless, seed fingerprint ([0-9a-f]{16})"
                      r"(?:, previous seed ([0-9a-f]{16}))?,", 5, since=since)


# ---------------------------------------------------------------- clients


def tickets_in(out):
    """Key names (hex, the first 16 bytes) of every ticket s_client printed."""
    names = []
    for m in re.finditer(r"TLS session ticket:\n\s*0000 - ((?:[0-9a-f]{2}[ -]){16})", out):
        names.append(re.sub(r"[ -]", "", m.group(1)))
    return names


class Result:
    def __init__(self, status, version, out):
        self.status, self.version, self.out = status, version, out
        self.tickets = tickets_in(out)


def s_client(port, version, sess_in=None, sess_out=None, no_ticket=False, hold=None):
    """One s_client connection; ${hold} s keeps it open (for TLS 1.3
    tickets, which come after the handshake).  Fails unless it connects
    and verifies."""
    args = ["-tls1_2" if version == TLS12 else "-tls1_3"]
    if no_ticket:
        args.append("-no_ticket")
    if sess_in:
        args += ["-sess_in", sess_in]
    if sess_out:
        args += ["-sess_out", sess_out]
    cmd = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port,
           "-servername", "localhost", "-verify_hostname", "localhost",
           "-CAfile", cert("ca.pem"), "-verify_return_error"] + args
    if hold:
        cmd = ["sh", "-c", 'sleep %s | "$@"' % hold, "sh"] + cmd
    rc, out, err = run(cmd, timeout=15)
    out += err
    check_eq(rc, 0, "s_client status; output:\n%s\n" % out[-1500:])
    m = re.search(r"^(New|Reused), (TLSv1\.\d)", out, re.M)
    check(m, "no New/Reused line in:\n%s" % out[-1500:])
    check_eq(m.group(2), tplib.VERSION_NAME[version], "protocol")
    check("Verification: OK" in out, "not verified:\n%s" % out[-1500:])
    return Result(m.group(1), m.group(2), out)


def s12(port, **kw):
    return s_client(port, TLS12, **kw)


def s13(port, **kw):
    kw.setdefault("hold", 0.6)
    return s_client(port, TLS13, **kw)


def file_tickets(path):
    rc, out, err = run([OPENSSL, "sess_id", "-in", path, "-noout", "-text"], check_rc=0)
    return tickets_in(out)


def py(port, ctx, session=None):
    """A Python ssl connection offering ${session}: one echo round trip (the
    TLS 1.3 tickets arrive before the echo), then a clean close.  Returns
    (session_reused, the newest session received)."""
    c = TLSClient(port, ctx=ctx, session=session)
    c.roundtrip(b"ping")
    reused, sess = c.obj.session_reused, c.obj.session
    c.close_notify()
    c.recv_all()
    c.close()
    return reused, sess


def py_ctx(version, no_ticket=False):
    ctx = client_context(version)
    if no_ticket:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


PROBE_LINE = re.compile(r"^(TLSv1\.2 ticket|TLSv1\.2 session ID|TLSv1\.3 ticket)\s+\S+ -> \S+"
                        r"\s+(resumed|NOT resumed|failed|node-local)", re.M)
NODE_LOCAL = ("TLSv1.2 session ID  %s -> %s  node-local: full handshake, not expected to "
              "resume across nodes (not counted)")


def probe(*endpoints, timeout=5, cases=None):
    """tlsproxy-probe on ${endpoints} (ports on 127.0.0.1, or "host:port"):
    (exit status, {case: result} in the order printed, stdout + stderr)."""
    args = ["--cases", cases] if cases is not None else []
    rc, out, err = run([PROBE, "--ca", cert("ca.pem"), "--servername", "localhost",
                        "--timeout", str(timeout)] + args +
                       [e if isinstance(e, str) else "127.0.0.1:%d" % e for e in endpoints],
                       timeout=60)
    lines = dict(m.groups() for m in PROBE_LINE.finditer(out))
    return rc, lines, out + err


def now_epoch(period):
    return int(time.time()) // period


def check_key(names, seed, period, epochs, what):
    """Every ticket key name in ${names} is that of ${seed} in one of ${epochs}."""
    check(names, "%s: no ticket" % what)
    want = dict((key_name(seed, e, period), e) for e in epochs)
    for n in names:
        check(n in want, "%s: ticket key name %s is not that of epoch(s) %s of the "
              "seed (%s)" % (what, n, list(epochs), ", ".join(want)))
    return want[names[-1]]


# ================================================================= cases


@case("same seed on two nodes: TLS 1.2 and 1.3 tickets from A resume on B; another seed: full handshake")
def _():
    backend = EchoBackend()
    seed, other = new_seed("cluster"), new_seed("other")
    a = node(tk(seed_file=seed_file("seed-a", seed)), backend, "nodeA")
    b = node(tk(seed_file=seed_file("seed-b", seed)), backend, "nodeB")
    c = node(tk(seed_file=seed_file("seed-c", other)), backend, "nodeC")
    fa, fb, fc = (fingerprint_line(d).group(1) for d in (a, b, c))
    check_eq(fa, fingerprint(seed), "A's fingerprint")
    check_eq(fb, fa, "B's fingerprint")
    check_eq(fc, fingerprint(other), "C's fingerprint")
    check(fc != fa, "C has the cluster's fingerprint")

    # -K: the same schedule on both nodes, no secret in it.
    for attempt in range(3):
        ka = run([TLSPROXY, "-K", "-c", a.conf_path], check_rc=0)
        kb = run([TLSPROXY, "-K", "-c", b.conf_path], check_rc=0)
        if ka[1].splitlines()[:1] == kb[1].splitlines()[:1]:
            break       # both within the same second
    check_eq(kb[1], ka[1], "-K output of node B (vs node A)")
    n = int(re.search(r"epoch (\d+)", ka[1]).group(1))
    check(n in (now_epoch(HOUR), now_epoch(HOUR) - 1), "-K's epoch %d is not the current one" % n)
    tplib.check_match(r"seed fingerprint %s" % fa, ka[1], "-K output")
    tplib.check_match(r"epoch %d\s+key %s\s+current" % (n, key_name(seed, n, HOUR)),
                      ka[1], "-K output")
    tplib.check_match(r"epoch %d\s+key %s\s+next" % (n + 1, key_name(seed, n + 1, HOUR)),
                      ka[1], "-K output")
    for r in (ka, kb):
        check_no_seed(r[1] + r[2], "tlsproxy -K")

    # TLS 1.2: a ticket from A resumes on B.
    f = tmpfile("c1-12.pem")
    e0 = now_epoch(HOUR)
    r, hs = observe(a, s12, a.port, sess_out=f)
    check_eq((r.status, hs), ("New", ("TLSv1.2", "full handshake")), "A, first")
    check_key(file_tickets(f), seed, HOUR, (e0, e0 + 1), "A's TLS 1.2 ticket")
    r, hs = observe(b, s12, b.port, sess_in=f)
    check_eq((r.status, hs), ("Reused", ("TLSv1.2", "resumed (ticket)")), "A's ticket on B")

    # TLS 1.3 (Python, session=): A's ticket resumes on B.
    ctx = py_ctx(TLS13)
    (reused, sa), hs = observe(a, py, a.port, ctx)
    check_eq((reused, hs), (False, ("TLSv1.3", "full handshake")), "A, first (TLS 1.3)")
    check(sa is not None and sa.has_ticket, "A sent no TLS 1.3 ticket")
    (reused, sb), hs = observe(b, py, b.port, ctx, sa)
    check_eq((reused, hs), (True, ("TLSv1.3", "resumed (ticket)")), "A's TLS 1.3 ticket on B")

    # TLS 1.3 (s_client kept open): A's ticket resumes on B.
    f13 = tmpfile("c1-13.pem")
    r, hs = observe(a, s13, a.port, sess_out=f13)
    check_eq((r.status, hs), ("New", ("TLSv1.3", "full handshake")), "A, first (s_client TLS 1.3)")
    check_key(r.tickets, seed, HOUR, (e0, e0 + 1), "A's TLS 1.3 tickets")
    r, hs = observe(b, s13, b.port, sess_in=f13)
    check_eq((r.status, hs), ("Reused", ("TLSv1.3", "resumed (ticket)")),
             "A's TLS 1.3 ticket on B (s_client)")

    # Another seed: full handshakes that work, counted as unknown tickets.
    c_mark = c.mark()
    before = stats(c)["ticket_rejected_unknown"]
    r, hs = observe(c, s12, c.port, sess_in=f)
    check_eq((r.status, hs), ("New", ("TLSv1.2", "full handshake")), "A's TLS 1.2 ticket on C")
    check_eq(stats(c)["ticket_rejected_unknown"], before + 1, "C's ticket_rejected_unknown")
    (reused, _), hs = observe(c, py, c.port, ctx, sa)
    check_eq((reused, hs), (False, ("TLSv1.3", "full handshake")), "A's TLS 1.3 ticket on C")
    check_eq(stats(c)["ticket_rejected_unknown"], before + 2, "C's ticket_rejected_unknown")
    check(not re.search(r"^(?!.* stats: ).*(error|warning|failed)", c.log_since(c_mark), re.M),
          "C logged an error:\n" + c.log_since(c_mark))


def probe_nodes(tag):
    """Nodes A and B with one seed and C with another, for tlsproxy-probe."""
    backend = EchoBackend()
    seed = new_seed(tag)
    a = node(tk(seed=seed.decode()), backend, tag + "A")
    b = node(tk(seed=seed.decode()), backend, tag + "B")
    c = node(tk(seed=new_seed(tag + "-other").decode()), backend, tag + "C")
    return a, b, c


@case("tlsproxy-probe A B, same seed: tickets resume, the session-ID case is node-local and "
      "not counted: exit 0; A A and A alone count it: exit 0; another seed: exit 1")
def _():
    a, b, c = probe_nodes("probe")
    rc, lines, out = probe(a.port, b.port)
    check_eq(lines, {"TLSv1.2 ticket": "resumed", "TLSv1.2 session ID": "node-local",
                     "TLSv1.3 ticket": "resumed"}, "probe A B:\n" + out)
    tplib.check_match("^" + re.escape(NODE_LOCAL % ("127.0.0.1:%d" % a.port,
                                                    "127.0.0.1:%d" % b.port)) + "$",
                      out, "probe A B")
    check("NOT resumed" not in out, "probe A B says NOT resumed:\n" + out)
    check_eq(rc, 0, "probe A B exit status:\n" + out)
    rc, lines, out = probe(a.port, a.port)
    check_eq(lines, {"TLSv1.2 ticket": "resumed", "TLSv1.2 session ID": "resumed",
                     "TLSv1.3 ticket": "resumed"}, "probe A A:\n" + out)
    check_eq(rc, 0, "probe A A exit status:\n" + out)
    rc, lines, out = probe(a.port)
    check_eq((rc, set(lines.values())), (0, {"resumed"}), "probe A:\n" + out)
    rc, lines, out = probe(a.port, c.port)
    check_eq(lines, {"TLSv1.2 ticket": "NOT resumed", "TLSv1.2 session ID": "node-local",
                     "TLSv1.3 ticket": "NOT resumed"}, "probe A C (other seed):\n" + out)
    check_eq(rc, 1, "probe A C exit status:\n" + out)
    check_no_seed(out, "probe output")
    hs = [k for (_, v, k) in handshakes(b, 0)]
    check_eq(sorted(hs), sorted(["full handshake", "resumed (ticket)", "resumed (ticket)"]),
             "handshakes on B during probe A B")


@case("tlsproxy-probe --cases: a subset, in the usual order; id12 counts on one address; "
      "--cases id12 across two addresses, unknown and empty names: usage errors, exit 2")
def _():
    a, b, c = probe_nodes("cases")
    rc, lines, out = probe(a.port, cases="id12")
    check_eq((rc, lines), (0, {"TLSv1.2 session ID": "resumed"}), "probe --cases id12 A:\n" + out)
    rc, lines, out = probe(a.port, a.port, cases="id12")
    check_eq((rc, lines), (0, {"TLSv1.2 session ID": "resumed"}),
             "probe --cases id12 A A:\n" + out)
    rc, lines, out = probe(a.port, b.port, cases="ticket13,ticket12")
    check_eq((rc, list(lines.items())), (0, [("TLSv1.2 ticket", "resumed"),
                                             ("TLSv1.3 ticket", "resumed")]),
             "probe --cases ticket13,ticket12 A B:\n" + out)
    rc, lines, out = probe(a.port, c.port, cases="ticket13")
    check_eq((rc, lines), (1, {"TLSv1.3 ticket": "NOT resumed"}),
             "probe --cases ticket13 A C (other seed):\n" + out)
    rc, lines, out = probe(a.port, c.port, cases="id12,ticket12")
    check_eq((rc, lines), (1, {"TLSv1.2 ticket": "NOT resumed",
                               "TLSv1.2 session ID": "node-local"}),
             "probe --cases id12,ticket12 A C (other seed):\n" + out)

    # Two spellings of one node are two addresses to the probe: its
    # session ID resumes, which the line points out, and still does not count.
    rc, lines, out = probe("localhost:%d" % a.port, a.port, cases="id12,ticket13")
    check_eq((rc, lines), (0, {"TLSv1.2 session ID": "node-local", "TLSv1.3 ticket": "resumed"}),
             "probe localhost:A 127.0.0.1:A:\n" + out)
    tplib.check_match(r"node-local: resumed, though not expected to across nodes: do both "
                      r"addresses reach one node\? \(not counted\)$", out, "probe output")

    # Refused before any connection.
    marks = dict((d, d.mark()) for d in (a, b))
    for cases, endpoints, want in (
            ("id12", (a.port, b.port), r"--cases id12 across two addresses counts nothing: "
             r"session IDs are node-local.*add ticket12 or ticket13, or probe one address"),
            ("id13", (a.port,), r'--cases id13: unknown case "id13" \(one or more of '
             r"ticket12, id12, ticket13, separated by commas\)"),
            ("ticket12,,id12", (a.port,), r"--cases ticket12,,id12: an empty name "
             r"\(one or more of ticket12, id12, ticket13"),
            ("", (a.port,), r"--cases : an empty name \(one or more of")):
        rc, lines, out = probe(*endpoints, cases=cases)
        check_eq((rc, lines), (2, {}), "probe --cases '%s':\n%s" % (cases, out))
        tplib.check_match(r"^tlsproxy-probe: " + want, out, "probe --cases '%s'" % cases)
        tplib.check_match(r"^usage: tlsproxy-probe .*\[--cases LIST\]", out,
                          "probe --cases '%s'" % cases)
    time.sleep(0.2)
    for d, mark in marks.items():
        check_eq(handshakes(d, mark), [], "handshakes on %s after refused command lines" % d.name)


def wait_epoch_start(period, offset=0.05):
    """Sleep until ${offset} s into the next epoch; returns its start time."""
    now = time.time()
    start = (math.floor(now / period) + 1) * period
    time.sleep(start + offset - now)
    return start


def sleep_until(t):
    left = t - time.time()
    if left > 0:
        time.sleep(left)


@case("rotation 2 s, grace 5 s: a ticket resumes 2 epochs later under a grace key and is "
      "re-issued under the current key; its key decrypts until (m+1)*2+5, not after")
def _():
    P, G, L = 2, 5, 5
    backend = EchoBackend()
    seed = new_seed("rotation")
    d = node(tk(seed_file=seed_file("seed-rot", seed), rotation_interval=P,
                decrypt_grace=G, session_lifetime=L), backend, "rot")
    f12, f13, f12late = tmpfile("rot-12.pem"), tmpfile("rot-13.pem"), tmpfile("rot-12-late.pem")
    ctx = py_ctx(TLS13)

    # Epoch m = [T, T+2): "early" tickets at T+0.05, "late" ones at T+1.2.
    T = wait_epoch_start(P)
    m = int(T) // P
    r, hs = observe(d, s12, d.port, sess_out=f12)
    check_eq((r.status, hs[1]), ("New", "full handshake"), "epoch m, TLS 1.2")
    (reused, s_py), hs = observe(d, py, d.port, ctx)
    check_eq((reused, hs[1]), (False, "full handshake"), "epoch m, TLS 1.3 (Python)")
    r, hs = observe(d, s13, d.port, sess_out=f13, hold=0.5)
    check_eq((r.status, hs[1]), ("New", "full handshake"), "epoch m, TLS 1.3 (s_client)")
    check_key(r.tickets, seed, P, (m,), "TLS 1.3 tickets of epoch m")
    check_key(file_tickets(f12), seed, P, (m,), "TLS 1.2 ticket of epoch m")
    sleep_until(T + 1.2)
    r, hs = observe(d, s12, d.port, sess_out=f12late)
    check_eq((r.status, hs[1]), ("New", "full handshake"), "epoch m, late TLS 1.2")
    (reused, s_pylate), hs = observe(d, py, d.port, ctx)
    check_eq((reused, hs[1]), (False, "full handshake"), "epoch m, late TLS 1.3")
    check(time.time() < T + P, "issuing the tickets took longer than an epoch")
    check_key(file_tickets(f12late), seed, P, (m,), "late TLS 1.2 ticket of epoch m")

    # Epoch m+2, within the grace of epoch m's key: resumed, re-issued.
    sleep_until(T + 2 * P + 0.05)
    r, hs = observe(d, s12, d.port, sess_in=f12)
    check_eq((r.status, hs), ("Reused", ("TLSv1.2", "resumed (ticket, grace key)")),
             "TLS 1.2 ticket of epoch m in epoch m+2")
    check_key(r.tickets, seed, P, (m + 2,), "the TLS 1.2 ticket re-issued in epoch m+2")
    (reused, s_py2), hs = observe(d, py, d.port, ctx, s_py)
    check_eq((reused, hs), (True, ("TLSv1.3", "resumed (ticket, grace key)")),
             "TLS 1.3 ticket of epoch m in epoch m+2 (Python)")
    check(s_py2 is not None and s_py2.has_ticket and s_py2.id != s_py.id,
          "no new TLS 1.3 ticket after the resumption")
    r, hs = observe(d, s13, d.port, sess_in=f13, hold=0.4)
    check_eq((r.status, hs), ("Reused", ("TLSv1.3", "resumed (ticket, grace key)")),
             "TLS 1.3 ticket of epoch m in epoch m+2 (s_client)")
    check_key(r.tickets, seed, P, (m + 2,), "TLS 1.3 tickets re-issued in epoch m+2")
    (reused, _), hs = observe(d, py, d.port, ctx, s_py2)
    check_eq((reused, hs), (True, ("TLSv1.3", "resumed (ticket)")),
             "the re-issued TLS 1.3 ticket (current key)")
    check(time.time() < T + 3 * P, "the epoch m+2 checks took longer than an epoch")

    # T+5.6: the late tickets (issued at T+1.2) near the end of their
    # lifetime still resume under the grace key.  A ticket carries its
    # session's time in whole seconds (T+1), so the session ends at T+6:
    # OpenSSL 3.0 compares whole seconds and resumes it until T+6.99,
    # 3.5 compares exact times and stops at T+6.0.  Checked before T+6 so
    # that both agree.
    sleep_until(T + P + G - 1.4)
    r, hs = observe(d, s12, d.port, sess_in=f12late)
    check_eq((r.status, hs), ("Reused", ("TLSv1.2", "resumed (ticket, grace key)")),
             "late TLS 1.2 ticket at the end of its lifetime")
    (reused, _), hs = observe(d, py, d.port, ctx, s_pylate)
    check_eq((reused, hs), (True, ("TLSv1.3", "resumed (ticket, grace key)")),
             "late TLS 1.3 ticket at the end of its lifetime")
    check(time.time() < T + P + G - 1, "the checks before the end of the late sessions took "
          "too long")

    # T+6.05: the last second of epoch m's grace (time() = T+6 < (m+1)P + G).
    # The early ticket (session time T, lifetime 5 s) is past its lifetime
    # under either comparison: its key still decrypts it, so the full
    # handshake that follows is not a ticket rejection.
    sleep_until(T + P + G - 0.95)
    before = stats(d)
    r, hs = observe(d, s12, d.port, sess_in=f12)
    check_eq((r.status, hs[1]), ("New", "full handshake"), "early TLS 1.2 ticket after its lifetime")
    check(time.time() < T + P + G, "the checks of the last grace second took too long")
    after = stats(d)
    for k in ("ticket_rejected_expired", "ticket_rejected_unknown", "ticket_rejected_malformed"):
        check_eq(after[k], before[k], k + " within the grace")

    # T+7.05: (m+1)P + G has passed: epoch m's key no longer decrypts.
    # First the late TLS 1.3 ticket, which Python still offers while
    # time() <= T+7 (its age, minus OpenSSL's 1 s, within the 5 s lifetime).
    sleep_until(T + P + G + 0.05)
    for what, fn, arg in (("late TLS 1.3", py, dict(ctx=ctx, session=s_pylate)),
                          ("late TLS 1.2", s12, dict(sess_in=f12late)),
                          ("early TLS 1.2", s12, dict(sess_in=f12))):
        before = stats(d)
        r, hs = observe(d, fn, d.port, **arg)
        check_eq(hs[1], "full handshake", what + " ticket after its key's grace")
        check(not (r[0] if fn is py else r.status == "Reused"), what + ": the client resumed")
        check_eq(stats(d)["ticket_rejected_expired"], before["ticket_rejected_expired"] + 1,
                 "ticket_rejected_expired after the %s ticket (%.2f s after T)"
                 % (what, time.time() - T))


@case("previous_seed_file + SIGHUP: an old ticket resumes ('previous seed') and is re-issued "
      "under the new seed; after removing it, a full handshake")
def _():
    backend = EchoBackend()
    s1, s2 = new_seed("old"), new_seed("new")
    p1, p2 = seed_file("prev-s1", s1), seed_file("prev-s2", s2)
    a = node(tk(seed_file=p1), backend, "prevA")
    b = node(tk(seed_file=p2), backend, "prevB")        # knows S2 only
    ctx = py_ctx(TLS13)
    f1, f2 = tmpfile("prev-12-s1.pem"), tmpfile("prev-12-s2.pem")
    e = now_epoch(HOUR)
    r, hs = observe(a, s12, a.port, sess_out=f1)
    check_eq((r.status, hs[1]), ("New", "full handshake"), "S1 ticket, TLS 1.2")
    check_key(file_tickets(f1), s1, HOUR, (e, e + 1), "TLS 1.2 ticket under S1")
    (reused, t13), hs = observe(a, py, a.port, ctx)
    check_eq((reused, hs[1]), (False, "full handshake"), "S1 ticket, TLS 1.3")

    mark = reload(a, a.conf_for(tk(seed_file=p2, previous_seed_file=p1)))
    check_eq(fingerprint_line(a, mark).groups(), (fingerprint(s2), fingerprint(s1)),
             "fingerprints logged at the reload (seed, previous seed)")
    k = run([TLSPROXY, "-K", "-c", a.conf_path], check_rc=0)
    check_no_seed(k[1] + k[2], "tlsproxy -K")
    n = int(re.search(r"epoch (\d+)", k[1]).group(1))
    tplib.check_match(r"^previous seed fingerprint %s$" % fingerprint(s1), k[1], "-K output")
    tplib.check_match(r"epoch %d\s+key %s\s+decrypt-only" % (n, key_name(s1, n, HOUR)),
                      k[1], "-K output")

    r, hs = observe(a, s12, a.port, sess_in=f1)
    check_eq((r.status, hs), ("Reused", ("TLSv1.2", "resumed (ticket, previous seed)")),
             "S1 TLS 1.2 ticket with previous_seed_file = S1")
    check_key(r.tickets, s2, HOUR, (e, e + 1), "the TLS 1.2 ticket re-issued")
    (reused, t13b), hs = observe(a, py, a.port, ctx, t13)
    check_eq((reused, hs), (True, ("TLSv1.3", "resumed (ticket, previous seed)")),
             "S1 TLS 1.3 ticket with previous_seed_file = S1")
    check(t13b is not None and t13b.has_ticket and t13b.id != t13.id, "no TLS 1.3 ticket re-issued")
    # The re-issued ticket, and new ones, are under S2: B (S2 only) resumes them.
    (reused, _), hs = observe(b, py, b.port, ctx, t13b)
    check_eq((reused, hs), (True, ("TLSv1.3", "resumed (ticket)")), "re-issued TLS 1.3 ticket on B")
    r, hs = observe(a, s12, a.port, sess_out=f2)
    check_eq((r.status, hs[1]), ("New", "full handshake"), "new TLS 1.2 ticket")
    check_key(file_tickets(f2), s2, HOUR, (e, e + 1), "new TLS 1.2 ticket")
    r, hs = observe(b, s12, b.port, sess_in=f2)
    check_eq((r.status, hs), ("Reused", ("TLSv1.2", "resumed (ticket)")), "new TLS 1.2 ticket on B")
    r, hs = observe(b, s12, b.port, sess_in=f1)
    check_eq((r.status, hs[1]), ("New", "full handshake"), "S1 ticket on B")

    mark = reload(a, a.conf_for(tk(seed_file=p2)))
    check_eq(fingerprint_line(a, mark).groups(), (fingerprint(s2), None),
             "fingerprints logged at the second reload")
    before = stats(a)
    r, hs = observe(a, s12, a.port, sess_in=f1)
    check_eq((r.status, hs[1]), ("New", "full handshake"), "S1 TLS 1.2 ticket without previous seed")
    (reused, _), hs = observe(a, py, a.port, ctx, t13)
    check_eq((reused, hs[1]), (False, "full handshake"), "S1 TLS 1.3 ticket without previous seed")
    check_eq(stats(a)["ticket_rejected_unknown"], before["ticket_rejected_unknown"] + 2,
             "ticket_rejected_unknown")
    r, hs = observe(a, s12, a.port, sess_in=f2)
    check_eq((r.status, hs[1]), ("Reused", "resumed (ticket)"), "S2 ticket still resumes")
    check(not re.search(r"^(?!.* stats: ).*(error|warning|failed)", a.log_since(mark), re.M),
          "A logged an error:\n" + a.log_since(mark))


@case("SIGHUP after the seed file changed: new tickets are under the new seed at once")
def _():
    backend = EchoBackend()
    s1, s2 = new_seed("before"), new_seed("after")
    pa = seed_file("hup-a", s1)
    a = node(tk(seed_file=pa), backend, "hupA")
    b = node(tk(seed_file=seed_file("hup-b", s2)), backend, "hupB")
    check_eq(fingerprint_line(a).group(1), fingerprint(s1), "A's fingerprint at start")
    ctx = py_ctx(TLS13)
    fold = tmpfile("hup-old.pem")
    check_eq(s12(a.port, sess_out=fold).status, "New", "S1 ticket")
    (reused, old13) = py(a.port, ctx)

    tmp = seed_file("hup-a.new", s2)
    os.rename(tmp, pa)
    mark = reload(a)
    check_eq(fingerprint_line(a, mark).groups(), (fingerprint(s2), None),
             "A's fingerprint after SIGHUP")
    e = now_epoch(HOUR)
    for i in range(4):      # through both workers
        f = tmpfile("hup-new-%d.pem" % i)
        check_eq(s12(a.port, sess_out=f).status, "New", "new TLS 1.2 ticket %d" % i)
        check_key(file_tickets(f), s2, HOUR, (e, e + 1), "new TLS 1.2 ticket %d" % i)
        r, hs = observe(b, s12, b.port, sess_in=f)
        check_eq((r.status, hs[1]), ("Reused", "resumed (ticket)"), "A's new TLS 1.2 ticket on B")
        r = s13(a.port, hold=0.3)
        check_key(r.tickets, s2, HOUR, (e, e + 1), "new TLS 1.3 tickets %d" % i)
        (reused, t), hs = observe(a, py, a.port, ctx)
        (reused, _), hs = observe(b, py, b.port, ctx, t)
        check_eq((reused, hs), (True, ("TLSv1.3", "resumed (ticket)")),
                 "A's new TLS 1.3 ticket on B")
    r, hs = observe(a, s12, a.port, sess_in=fold)
    check_eq((r.status, hs[1]), ("New", "full handshake"), "S1 TLS 1.2 ticket after the change")
    (reused, _), hs = observe(a, py, a.port, ctx, old13)
    check_eq((reused, hs[1]), (False, "full handshake"), "S1 TLS 1.3 ticket after the change")


STATEFUL_CACHE = 'size = 1000; timeout = "5m";'


@case("mode stateful: TLS 1.2 (session ID) and TLS 1.3 (stateful ticket) resume on the same "
      "node, not on another node with the same config")
def _():
    backend = EchoBackend()
    a = node(tk(mode="stateful"), backend, "sfA", session_cache=STATEFUL_CACHE)
    b = node(tk(mode="stateful"), backend, "sfB", session_cache=STATEFUL_CACHE)
    a.wait_log(r"tickets: stateful", 5)
    f = tmpfile("sf-12.pem")
    r, hs = observe(a, s12, a.port, sess_out=f)
    check_eq((r.status, hs[1]), ("New", "full handshake"), "TLS 1.2 on A")
    check_eq(r.tickets, [], "TLS 1.2 tickets issued in mode stateful")
    r, hs = observe(b, s12, b.port, sess_in=f)
    check_eq((r.status, hs[1]), ("New", "full handshake"), "A's TLS 1.2 session on B")
    r, hs = observe(a, s12, a.port, sess_in=f)
    check_eq((r.status, hs), ("Reused", ("TLSv1.2", "resumed (session ID)")),
             "A's TLS 1.2 session on A")

    ctx = py_ctx(TLS13)
    (reused, t), hs = observe(a, py, a.port, ctx)
    check_eq((reused, hs[1]), (False, "full handshake"), "TLS 1.3 on A")
    check(t is not None and t.has_ticket, "no TLS 1.3 ticket in mode stateful")
    (reused, _), hs = observe(b, py, b.port, ctx, t)
    check_eq((reused, hs[1]), (False, "full handshake"), "A's TLS 1.3 ticket on B")
    (reused, _), hs = observe(a, py, a.port, ctx, t)
    check_eq((reused, hs), (True, ("TLSv1.3", "resumed (stateful ticket)")),
             "A's TLS 1.3 ticket on A")

    # (The "TLSv1.2 ticket" case, with no ticket issued, is not asserted:
    # tlsproxy-probe(1) says it resumes by session ID, the probe reports
    # "NOT resumed (... issued no ticket)".)
    rc, lines, out = probe(a.port, a.port)
    check_eq((lines.get("TLSv1.2 session ID"), lines.get("TLSv1.3 ticket")),
             ("resumed", "resumed"), "probe A A:\n" + out)
    check_eq(rc, 0 if lines.get("TLSv1.2 ticket") == "resumed" else 1, "probe A A exit status")
    rc, lines, out = probe(a.port, b.port)
    check_eq(lines, {"TLSv1.2 ticket": "NOT resumed", "TLSv1.2 session ID": "node-local",
                     "TLSv1.3 ticket": "NOT resumed"}, "probe A B:\n" + out)
    check_eq(rc, 1, "probe A B exit status")


@case("mode off: no tickets, TLS 1.3 never resumes, TLS 1.2 resumes by session ID; "
      "with session_cache size = 0 nothing resumes")
def _():
    backend = EchoBackend()
    for cache, ids in (('size = 1000; timeout = "5m";', True), ('size = 0; timeout = "5m";', False)):
        d = node(tk(mode="off"), backend, "off%d" % ids, session_cache=cache)
        d.wait_log(r"tickets: off", 5)
        f = tmpfile("off-12-%d.pem" % ids)
        r, hs = observe(d, s12, d.port, sess_out=f)         # offers tickets
        check_eq((r.status, hs[1]), ("New", "full handshake"), "TLS 1.2")
        check_eq(r.tickets, [], "TLS 1.2 tickets")
        check("TLS session ticket lifetime hint" not in r.out, "a TLS 1.2 ticket:\n" + r.out[-1500:])
        if ids:
            for i in range(2):
                r, hs = observe(d, s12, d.port, sess_in=f)
                check_eq((r.status, hs), ("Reused", ("TLSv1.2", "resumed (session ID)")),
                         "TLS 1.2 by session ID through session_cache")
        else:
            tplib.check_match(r"^\s*Session-ID: *$", r.out, "s_client output (no session ID)")
            if os.path.exists(f) and os.path.getsize(f):
                r, hs = observe(d, s12, d.port, sess_in=f)
                check_eq((r.status, hs[1]), ("New", "full handshake"), "TLS 1.2, size = 0")
        f13 = tmpfile("off-13-%d.pem" % ids)
        r, hs = observe(d, s13, d.port, sess_out=f13, hold=0.5)
        check_eq((r.status, hs[1]), ("New", "full handshake"), "TLS 1.3 (s_client)")
        check("New Session Ticket arrived" not in r.out and r.tickets == [],
              "a TLS 1.3 ticket arrived:\n" + r.out[-1500:])
        ctx = py_ctx(TLS13)
        sess = None
        for i in range(3):
            (reused, t), hs = observe(d, py, d.port, ctx, sess)
            check_eq((reused, hs[1]), (False, "full handshake"), "TLS 1.3 connection %d" % i)
            check(t is None or not t.has_ticket, "a TLS 1.3 ticket")
            sess = t
        # No TLS 1.3 ticket: the probe's TLS 1.3 case "failed" (exit 2),
        # as tlsproxy-probe(1) documents.
        rc, lines, out = probe(d.port, timeout=1)
        check_eq((lines.get("TLSv1.2 session ID"), lines.get("TLSv1.3 ticket")),
                 ("resumed" if ids else "NOT resumed", "failed"), "probe:\n" + out)
        if not ids:
            check_eq(lines.get("TLSv1.2 ticket"), "NOT resumed", "probe:\n" + out)
        check_eq(rc, 2, "probe exit status:\n" + out)
        st = stats(d)
        check_eq([k for k, v in st.items() if v and k.startswith("resumed_")],
                 ["resumed_tls12_session_id"] if ids else [], "resumption counters")


@case("a session from one listener never resumes on another listener of the daemon "
      "(stateless, same seed)")
def _():
    backend = EchoBackend()
    d = node(tk(seed=new_seed("listeners").decode()), backend, "lsn", listeners=("alpha", "beta"))
    pa, pb = d.lport["alpha"], d.lport["beta"]
    for src, dst in ((pa, pb), (pb, pa)):
        f = tmpfile("lsn-%d.pem" % src)
        r, hs = observe(d, s12, src, sess_out=f)
        check_eq((r.status, hs[1]), ("New", "full handshake"), "TLS 1.2 first")
        check(r.tickets, "no TLS 1.2 ticket")
        r, hs = observe(d, s12, dst, sess_in=f)
        check_eq((r.status, hs[1]), ("New", "full handshake"), "TLS 1.2 on the other listener")
        r, hs = observe(d, s12, src, sess_in=f)
        check_eq((r.status, hs[1]), ("Reused", "resumed (ticket)"), "TLS 1.2 on the same listener")
        ctx = py_ctx(TLS13)
        (reused, t), hs = observe(d, py, src, ctx)
        check_eq((reused, hs[1]), (False, "full handshake"), "TLS 1.3 first")
        (reused, _), hs = observe(d, py, dst, ctx, t)
        check_eq((reused, hs[1]), (False, "full handshake"), "TLS 1.3 on the other listener")
        (reused, _), hs = observe(d, py, src, ctx, t)
        check_eq((reused, hs[1]), (True, "resumed (ticket)"), "TLS 1.3 on the same listener")
    rc, lines, out = probe(pa, pb)
    check_eq(lines, {"TLSv1.2 ticket": "NOT resumed", "TLSv1.2 session ID": "node-local",
                     "TLSv1.3 ticket": "NOT resumed"}, "probe alpha beta:\n" + out)
    check_eq(rc, 1, "probe alpha beta exit status:\n" + out)


def nodejs_scenario(d, stateful, tag):
    """Six sequential connections per client, each offering the newest
    session its client received: TLS 1.2 with s_client (-no_ticket when
    ${stateful}), TLS 1.3 with Python's ssl and with s_client -sess_out
    (kept open until the tickets arrive).  TLS 1.3 tickets are used once
    (RFC 8446 C.4): a resumption that brings no new ticket leaves nothing
    to offer next time.  Each gives 1 new + 5 resumed, for the client and
    in the daemon's log."""
    before = stats(d)
    kind = {"TLSv1.2": "resumed (session ID)" if stateful else "resumed (ticket)",
            "TLSv1.3": "resumed (stateful ticket)" if stateful else "resumed (ticket)"}

    def s_client_leg(version, i, offer):
        out = tmpfile("node-%s-%s-%d.pem" % (tag, version.name, i))
        if os.path.exists(out):
            os.unlink(out)
        r = s_client(d.port, version, sess_in=offer, sess_out=out, no_ticket=stateful,
                     hold=0.3 if version == TLS13 else None)
        if version == TLS12 and stateful:
            check_eq(r.tickets, [], "TLS 1.2 ticket with -no_ticket")
        # Only a session received on this connection is offered next.
        newest = out if os.path.exists(out) and os.path.getsize(out) else None
        if version == TLS12 and newest is None:
            newest = offer      # TLS 1.2 sessions (and tickets) are reusable
        return r.status, newest

    ctx = py_ctx(TLS13, no_ticket=stateful)

    def python_leg(version, i, offer):
        reused, s = py(d.port, ctx, offer)
        fresh = s is not None and s.has_ticket and (offer is None or s.id != offer.id)
        return ("Reused" if reused else "New"), (s if fresh else None)

    for what, version, leg in (("TLS 1.2 (s_client)", TLS12, s_client_leg),
                               ("TLS 1.3 (Python)", TLS13, python_leg),
                               ("TLS 1.3 (s_client -sess_out)", TLS13, s_client_leg)):
        mark = d.mark()
        got, offer = [], None
        for i in range(6):
            status, offer = leg(version, i, offer)
            got.append(status)
        ver = tplib.VERSION_NAME[version]
        check_eq(got, ["New"] + ["Reused"] * 5, "%s as the client saw it" % what)
        wait_until(lambda: len(handshakes(d, mark)) >= 6, 5, "6 handshake lines")
        check_eq([(v, k) for (_, v, k) in handshakes(d, mark)],
                 [(ver, "full handshake")] + [(ver, kind[ver])] * 5, "%s in the log" % what)
    after = stats(d)
    delta = dict((k, after[k] - before[k]) for k in after
                 if after[k] != before[k] and k.startswith(("full_", "resumed_")))
    want = {"full_tls12": 1, "full_tls13": 2, "full_admitted": 3}  # resumptions never are
    if stateful:
        want.update(resumed_tls12_session_id=5, resumed_tls13_stateful=10)
    else:
        want.update(resumed_tls12_ticket_current=5, resumed_tls13_ticket_current=10)
    check_eq(delta, want, "counters")


@case("tls13_renew: \"always\" (the default) follows each TLS 1.3 resumption with a new "
      "ticket; \"rotation\" does not while the key is current, and the client resumes again "
      "with the ticket it has (Python)")
def _():
    backend = EchoBackend()
    ctx = py_ctx(TLS13)
    for renew in ("always", "rotation"):
        d = node(tk(seed=new_seed("renew-" + renew).decode(), tls13_renew=renew), backend,
                 "renew_" + renew)
        reused, first = py(d.port, ctx)
        check(not reused, "%s: the first connection resumed" % renew)
        for i in range(3):
            reused, now = py(d.port, ctx, session=first)
            check(reused, "%s: resumption %d with the first ticket" % (renew, i + 1))
            check_eq(now.id != first.id, renew == "always",
                     "%s: resumption %d brought a new ticket" % (renew, i + 1))
        check_eq(stats(d)["resumed_tls13_ticket_current"], 3, "%s: resumptions" % renew)
        d.stop()


@case("Node.js issue #60847 scenario with tickets (stateless): 1 new + 5 resumed for TLS 1.2 "
      "and TLS 1.3 (Python and s_client)")
def _():
    backend = EchoBackend()
    d = node(tk(seed_file=seed_file("seed-node", new_seed("node"))), backend, "nodejsStateless")
    nodejs_scenario(d, False, "stateless")


@case("Node.js issue #60847 scenario without tickets (stateful, -no_ticket): 1 new + 5 resumed "
      "for TLS 1.2 and TLS 1.3 (Python and s_client)")
def _():
    backend = EchoBackend()
    d = node(tk(mode="stateful"), backend, "nodejsStateful", session_cache=STATEFUL_CACHE)
    nodejs_scenario(d, True, "stateful")


def check_t(name, tickets, rc_want):
    """`tlsproxy -t` on a config with ${tickets}; returns its output."""
    path = tmpfile(name + ".conf", make_conf(listener_conf("mqtt", free_port(), free_port()),
                                             tickets=tickets))
    rc, out, err = run([TLSPROXY, "-t", "-c", path], timeout=15)
    check_eq(rc, rc_want, "exit status of -t on %s (stderr: %s)" % (name, err.strip()[-800:]))
    check_no_seed(out + err, "tlsproxy -t")
    if rc_want == EX_CONFIG:
        tplib.check_match(re.escape(path) + r":\d+: tickets\.", err, "-t errors")
    return path, out + err


@case("config errors: seed file readable by others, short seed, session_lifetime > "
      "decrypt_grace: exit 78 with the reason; the seed is never shown")
def _():
    seed = new_seed("cfg")
    for mode in (0o644, 0o640, 0o604):
        f = seed_file("cfg-seed-%o" % mode, seed, mode)
        path, out = check_t("cfg-mode-%o" % mode, tk(seed_file=f), EX_CONFIG)
        tplib.check_match(r"chmod 600", out, "-t output for mode %o" % mode)
        rc, o, e = run([TLSPROXY, "-K", "-c", path], timeout=15)
        check_eq(rc, EX_CONFIG, "-K on it")
        check_no_seed(o + e, "tlsproxy -K")
    # The daemon itself refuses it, before listening.
    port = free_port()
    path = tmpfile("cfg-start.conf", make_conf(listener_conf("mqtt", port, free_port()),
                                               tickets=tk(seed_file=f)))
    rc, o, e = run([TLSPROXY, "-c", path], timeout=15)
    check_eq(rc, EX_CONFIG, "daemon exit status")
    tplib.check_match(r"chmod 600", o + e, "daemon output")
    check_no_seed(o + e, "the daemon's output")
    os.chmod(f, 0o600)
    check_t("cfg-mode-600", tk(seed_file=f), 0)

    short = ("sh0rt-" + os.urandom(8).hex())[:15].encode()
    SEEDS.append(short)
    sixteen = ("s16-" + os.urandom(8).hex())[:16].encode()
    SEEDS.append(sixteen)
    path, out = check_t("cfg-short-inline", tk(seed=short.decode()), EX_CONFIG)
    tplib.check_match(r"too short: 15 bytes", out, "-t output")
    path, out = check_t("cfg-short-file", tk(seed_file=seed_file("cfg-short", short)), EX_CONFIG)
    tplib.check_match(r"too short: 15 bytes", out, "-t output")
    check_t("cfg-16-inline", tk(seed=sixteen.decode()), 0)
    check_t("cfg-16-file", tk(seed_file=seed_file("cfg-16", sixteen)), 0)
    path, out = check_t("cfg-short-previous", tk(seed=seed.decode(), previous_seed=short.decode()),
                        EX_CONFIG)
    tplib.check_match(r"previous_seed.*too short", out, "-t output")

    path, out = check_t("cfg-lifetime", tk(seed=seed.decode(), rotation_interval=2,
                                           decrypt_grace="5s", session_lifetime="6s"), EX_CONFIG)
    tplib.check_match(r"session_lifetime.*decrypt_grace.*no node can still decrypt", out,
                      "-t output")
    path, out = check_t("cfg-lifetime-eq", tk(seed=seed.decode(), rotation_interval=2,
                                              decrypt_grace="5s", session_lifetime="5s"), 0)
    rc, o, e = run([TLSPROXY, "-K", "-c", path], check_rc=0)
    check_no_seed(o + e, "tlsproxy -K")
    tplib.check_match(r"seed fingerprint %s" % fingerprint(seed), o, "-K output")


tplib.main()
