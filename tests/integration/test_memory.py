#!/usr/bin/env python3
"""Memory after a flood: connections that never finish a handshake (silent,
half a ClientHello, garbage) raise the daemon's RSS while they are open;
once they are closed, and the good clients after them too, the memory goes
back to the kernel instead of staying with the workers, round after round,
and every descriptor is closed.

The bounds are generous and nothing is timed: RSS must come down to the
baseline plus half of what the flood added (it stays at all of it when the
workers keep their freed heap), within 30 s.  A sanitizer build has an
allocator of its own, so there only the descriptors are checked."""

import os
import select
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLS13, TLSClient, Daemon, EchoBackend, case, check, free_port,  # noqa: E402
                   listener_conf, make_conf)

FLOOD = 600             # connections that never finish a handshake, per round:
                        # with GOOD, within the usual limit of 1024 descriptors
GOOD = 150              # TLS 1.3 clients open at once after each flood
MIN_RISE_KB = 8 * 1024  # what a flood must add for the test to show anything
SETTLE_S = 30           # how long the memory may take to come back
S = {}


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise tplib.Failure("no VmRSS for pid %d" % pid)


def sanitized():
    with open(tplib.TLSPROXY, "rb") as f:
        return b"__asan_init" in f.read()


def flood(port):
    """FLOOD connections that never finish a handshake, held until the
    daemon closes every one; returns the most RSS the daemon had meanwhile
    (read on every wait, so a slow machine does not hide it)."""
    hello = tplib.client_hello(TLS13)
    kinds = [b"", hello[:len(hello) // 2], b"\x16\x03\x01\x00\x10" + os.urandom(512)]
    socks = []
    try:
        for i in range(FLOOD):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(s)
            if kinds[i % 3]:
                s.sendall(kinds[i % 3])
        peak = rss_kb(S["d"].pid)
        left = {s.fileno(): s for s in socks}
        poller = select.poll()
        for fd in left:
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            peak = max(peak, rss_kb(S["d"].pid))
            for fd, _ in poller.poll(200):
                try:
                    if left[fd].recv(4096):
                        continue    # an alert before the close
                except OSError:
                    pass            # a reset closes too
                poller.unregister(fd)
                del left[fd]
        check(not left, "%d flood connections still open after 30 s" % len(left))
        return peak
    finally:
        for s in socks:
            s.close()


def good_clients(port):
    clients = [TLSClient(port, TLS13) for _ in range(GOOD)]
    for c in clients:
        c.roundtrip(b"after the flood")
    for c in clients:
        c.close()


def wait_rss_below(limit):
    """Wait up to SETTLE_S for the daemon's RSS to fall to ${limit} KB."""
    deadline = time.monotonic() + SETTLE_S
    rss = rss_kb(S["d"].pid)
    while rss > limit and time.monotonic() < deadline:
        time.sleep(0.2)
        rss = rss_kb(S["d"].pid)
    return rss


@case("start: 2 workers, handshake_timeout 1s, baseline fds and RSS")
def _():
    backend = EchoBackend(scope="file", lifetime=300)
    S["port"] = free_port()
    conf = make_conf([listener_conf("main", S["port"], backend.port, handshake_timeout="1s")],
                     log_level="warning")
    d = Daemon(conf, name="memory", scope="file").start()
    S["d"] = d
    good_clients(S["port"])
    time.sleep(0.5)
    S["fds"] = d.fds()
    S["rss"] = rss_kb(d.pid)
    tplib.diag("baseline: %d fds, %d KB" % (S["fds"], S["rss"]))


def flood_round(n):
    if "d" not in S:
        raise tplib.Failure("the daemon did not start (see the first case)")
    d = S["d"]
    peak = flood(S["port"])
    good_clients(S["port"])
    d.wait_fds(S["fds"], timeout=10)
    rise = peak - S["rss"]
    tplib.diag("round %d: %d KB at most during the flood (+%d KB)" % (n, peak, rise))
    if sanitized():
        raise tplib.Skip("descriptors checked; RSS not: a sanitizer build has its own allocator")
    check(rise >= MIN_RISE_KB, "the flood added only %d KB: nothing to give back" % rise)
    limit = S["rss"] + rise // 2
    rss = wait_rss_below(limit)
    tplib.diag("round %d: %d KB after the flood (limit %d KB)" % (n, rss, limit))
    check(rss <= limit, "RSS %d KB %d s after the flood: kept %d of the %d KB it added"
          % (rss, SETTLE_S, rss - S["rss"], rise))
    d.check_alive()


@case("round 1: the flood's memory goes back, its descriptors are closed")
def _():
    flood_round(1)


@case("round 2: again, so nothing piles up")
def _():
    flood_round(2)


@case("round 3: again")
def _():
    flood_round(3)


@case("the daemon exits 0 on SIGTERM, no sanitizer report")
def _():
    S["d"].stop()


tplib.main()
