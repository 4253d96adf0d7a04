#!/usr/bin/env python3
"""rss_flood.py: does tlsproxy give its memory back after a flood?

tlsproxy (2 workers by default) runs on an ephemeral loopback port in front
of benchd (echo).  Each round opens a flood of connections that never finish
a handshake: a third stall without sending a byte, a third send half of a
real ClientHello and stall, a third send garbage.  The proxy closes them
(handshake_timeout for the stalled ones); the round waits for every one to
be closed by the proxy.  Then good TLS 1.3 clients connect, all at once,
echo 100 bytes each and close.  After each round, once the proxy's
descriptors are back to their baseline, the script waits RSS_SETTLE seconds
and prints the proxy's descriptors and VmRSS; at the end a line
"rss_flood: ..." with the RSS at start, warm (after one batch of good
clients, before any flood), at the peak and after the last round.

usage: rss_flood.py --tlsproxy PATH --benchd PATH --srcdir DIR

Settings come from the environment (defaults in brackets):
  RSS_ROUNDS [4]              rounds of flood then good clients
  RSS_FLOOD [1200]            connections that never finish a handshake
  RSS_GOOD [300]              good TLS 1.3 clients after each flood
  RSS_WORKERS [2]             tlsproxy's workers
  RSS_HANDSHAKE_TIMEOUT [2]   seconds: the listener's handshake_timeout
  RSS_SETTLE [3]              seconds between the last close and the reading
  RSS_KEEP [0]                keep the temporary directory (config, log)

The exit status is 1 when the descriptors did not come back to their
baseline after a round or a connection failed, 0 otherwise; the RSS figures
are reported, not judged.  Every process it starts is stopped when it ends,
on any exit; every wait is bounded.  Traffic stays on 127.0.0.1.
"""

import argparse
import os
import resource
import select
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import (TlsProxy, env_float, env_int, log, make_certs,  # noqa: E402
                   make_tmpdir, rss_kb, setup_exit, spawn)

GOOD_THREADS = 16
MESSAGE = b"x" * 100


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def wait_fds(pid, want, timeout):
    """Wait until the process has ${want} descriptors; the last count."""
    end = time.time() + timeout
    n = fd_count(pid)
    while n != want and time.time() < end:
        time.sleep(0.1)
        n = fd_count(pid)
    return n


def client_hello_bytes():
    """A real TLS 1.3 ClientHello, as a client would send it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def flood(port, n, timeout):
    """${n} connections that never complete a handshake, kept open until the
    proxy closes each; returns how many it did not close in ${timeout}."""
    hello = client_hello_bytes()
    payloads = [b"", hello[:len(hello) // 2], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 4]
    socks = []
    try:
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            data = payloads[i % len(payloads)]
            if data:
                s.sendall(data)
            s.setblocking(False)
            socks.append(s)
        end = time.time() + timeout
        open_ = {s.fileno(): s for s in socks}
        poller = select.poll()
        for fd in open_:
            poller.register(fd, select.POLLIN)
        while open_ and time.time() < end:
            for fd, _ in poller.poll(200):
                s = open_.get(fd)
                if s is None:
                    continue
                try:
                    if s.recv(65536):
                        continue        # an alert before the close
                except BlockingIOError:
                    continue
                except OSError:
                    pass                # a reset is a close too
                poller.unregister(fd)
                del open_[fd]
        return len(open_)
    finally:
        for s in socks:
            s.close()


def good_clients(port, n, ca):
    """${n} TLS 1.3 clients open at once, each echoing MESSAGE, then all
    closed; returns the number that failed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    conns, failed, lock = [], [0], threading.Lock()
    todo = list(range(n))

    def run():
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            try:
                raw = socket.create_connection(("127.0.0.1", port), timeout=20)
                s = ctx.wrap_socket(raw, server_hostname="localhost")
                s.sendall(MESSAGE)
                got = b""
                while len(got) < len(MESSAGE):
                    chunk = s.recv(len(MESSAGE) - len(got))
                    if not chunk:
                        break
                    got += chunk
                with lock:
                    conns.append(s)
                    if got != MESSAGE:
                        failed[0] += 1
            except (OSError, ssl.SSLError) as e:
                with lock:
                    failed[0] += 1
                log("good client: %s" % e)

    threads = [threading.Thread(target=run) for _ in range(GOOD_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for s in conns:
        try:
            s.unwrap()
        except (OSError, ssl.SSLError):
            pass
        s.close()
    return failed[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tlsproxy", required=True)
    ap.add_argument("--benchd", required=True)
    ap.add_argument("--srcdir", required=True)
    args = ap.parse_args()
    setup_exit("rss_flood")
    cfg = {k: env_int("RSS_" + k.upper(), d) for k, d in
           (("rounds", 4), ("flood", 1200), ("good", 300), ("workers", 2),
            ("handshake_timeout", 2))}
    settle = env_float("RSS_SETTLE", 3)

    want = 4 * (cfg["flood"] + cfg["good"]) + 200
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
        except (ValueError, OSError) as e:
            sys.exit("rss_flood: cannot raise the descriptor limit to %d: %s" % (want, e))
    TlsProxy.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    tmp = make_tmpdir("tlsproxy-rss.", keep=os.environ.get("RSS_KEEP", "0") not in ("", "0"))
    certs = make_certs(args.srcdir, tmp)
    bd = spawn([args.benchd, "-p", "0", "-t", "3600"], stdout=subprocess.PIPE,
               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    line = bd.stdout.readline()
    if not line.startswith("port "):
        sys.exit("rss_flood: benchd did not start")
    proxy = TlsProxy(tmp, certs, int(line.split()[1]), None, path=args.tlsproxy,
                     workers=cfg["workers"])
    proxy.extra_listener = "\thandshake_timeout = %d;\n" % cfg["handshake_timeout"]
    proxy.start()
    pid = proxy.proc.pid

    base_fds = fd_count(pid)
    base_rss = rss_kb(proxy.pids())
    print("# tlsproxy %d workers; per round: %d stalled, half-ClientHello or garbage "
          "connections, then %d TLS 1.3 clients; handshake_timeout %ds; reading %.1fs after"
          % (cfg["workers"], cfg["flood"], cfg["good"], cfg["handshake_timeout"], settle))
    print("start:    fds %d  rss %.1f MB" % (base_fds, base_rss / 1024))
    # The first handshakes initialise OpenSSL and each worker's arena:
    # memory that stays whatever comes next, and that no flood adds to.
    bad = good_clients(proxy.port, cfg["good"], certs["ca"])
    wait_fds(pid, base_fds, 20)
    time.sleep(settle)
    warm_rss = rss_kb(proxy.pids())
    print("warm:     fds %d  rss %.1f MB  (after %d TLS 1.3 clients; %d failed)"
          % (fd_count(pid), warm_rss / 1024, cfg["good"], bad))
    sys.stdout.flush()
    status, peak, rss = (1 if bad else 0), warm_rss, warm_rss
    for rnd in range(1, cfg["rounds"] + 1):
        left = flood(proxy.port, cfg["flood"], cfg["handshake_timeout"] + 20)
        flood_rss = rss_kb(proxy.pids())
        bad = good_clients(proxy.port, cfg["good"], certs["ca"])
        fds = wait_fds(pid, base_fds, 20)
        time.sleep(settle)
        fds = fd_count(pid)
        rss = rss_kb(proxy.pids())
        peak = max(peak, flood_rss, rss)
        print("round %d:  fds %d  rss %.1f MB  (after the flood %.1f MB; %d not closed by the "
              "proxy, %d good clients failed)" % (rnd, fds, rss / 1024, flood_rss / 1024, left, bad))
        sys.stdout.flush()
        if fds != base_fds or left or bad:
            status = 1
        if proxy.proc.poll() is not None:
            print("rss_flood: tlsproxy exited with status %d" % proxy.proc.returncode)
            return 1
    print("rss_flood: rounds=%d baseline_fds=%d final_fds=%d start_rss_mb=%.1f warm_rss_mb=%.1f "
          "peak_rss_mb=%.1f final_rss_mb=%.1f final_over_warm_mb=%.1f %s"
          % (cfg["rounds"], base_fds, fd_count(pid), base_rss / 1024, warm_rss / 1024,
             peak / 1024, rss / 1024, (rss - warm_rss) / 1024,
             "ok" if status == 0 else "FAILED"))
    return status


if __name__ == "__main__":
    sys.exit(main())
