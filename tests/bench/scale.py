#!/usr/bin/env python3
"""scale.py: 100,000 idle TLS 1.3 connections held through one tlsproxy.

One tlsproxy in front of benchd (echo) backends; tlsbench opens the
connections (a TLS 1.3 handshake and one 100-byte echo each) from several
127.0.0.x source addresses and holds them.  At each mark (10%, 50% and
100% of SCALE_CONNS) the opening pauses, and the script reads the daemon's
RSS: RSS per connection is (RSS - RSS of the warmed, idle daemon) / open
connections, and the part of the RSS in transparent huge pages
(AnonHugePages) beside it.  With all of them open, fresh clients (Python ssl) time a
full handshake and a 100-byte round trip; then tlsbench resets them all,
and the close time is until the daemon's metrics say no connection is
open.

Why several listeners: tlsproxy connects to its backend from the address
the kernel chooses (no source address setting), so one backend address
and port take at most the ephemeral port range (about 28,000 on Debian)
of connections.  Each listener gets its own benchd port; the client's
connections are spread over the listeners and the source addresses.

Descriptors: the daemon needs two per connection, tlsbench one, each
benchd one per connection of its listener.  The script raises its own
RLIMIT_NOFILE (the children inherit it) to what the daemon needs, the hard
limit too where it may (CAP_SYS_RESOURCE), else the soft limit to the hard
one; it changes no sysctl.  When the limit (or fs.file-max,
or fs.nr_open) does not allow SCALE_CONNS, the run is scaled down to what
fits, and the output says so in its first lines.

usage: scale.py --tlsbench PATH --benchd PATH --tlsproxy PATH --srcdir DIR

Settings from the environment (defaults in brackets):
  SCALE_CONNS [100000]      connections to hold
  SCALE_MARKS [10 50]       the pauses before all are open, % of SCALE_CONNS
  SCALE_SOURCES [4]         client source addresses, 127.0.0.2 and up
  SCALE_LISTENERS           listeners, one benchd each [as many as the ephemeral
                            port range needs: one per ~25,000 connections]
  SCALE_WORKERS [1]         tlsproxy workers
  SCALE_CLIENT_THREADS [1]  tlsbench threads
  SCALE_CONCURRENCY [64]    handshakes in flight
  SCALE_PROBES [5]          fresh clients timed at the top
  SCALE_OPEN_SECONDS        most seconds to open them all, pauses at the marks
                            left out [SCALE_CONNS / 200, at least 120; at most
                            3600]: more where the machine is slow, an emulated
                            guest say
  SCALE_JSON                write the figures to this file
  SCALE_KEEP [0]            keep the temporary directory (configuration, logs)

Every process it starts is stopped when it ends, on any exit; every wait
is bounded.  Traffic stays on 127.0.0.0/8.
"""

import argparse
import json
import math
import os
import re
import resource
import select
import socket
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request

from peers import (env_int, free_port, git_describe, log, machine_info, make_certs,
                   make_tmpdir, rss_kb, setup_exit, spawn, stop_proc, wait_tls)

FD_MARGIN = 200         # descriptors besides the connections, per process
PORT_SHARE = 0.9        # of the ephemeral range one address pair may use


def read_int(path):
    with open(path) as f:
        return int(f.read().split()[0])


def huge_kb(pid):
    """AnonHugePages of ${pid} in KB: the part of its RSS in transparent
    huge pages, which can count memory never touched (THP "always")."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def port_range():
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        lo, hi = f.read().split()
    return int(hi) - int(lo) + 1


def raise_nofile(need, nr_open):
    """RLIMIT_NOFILE of this process (its children inherit it) up to
    ${need}, hard limit included where that is allowed (CAP_SYS_RESOURCE),
    never past fs.nr_open; else soft up to hard.  The limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(need, nr_open)
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (ValueError, OSError):
            pass        # not allowed here: what the hard limit allows
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def plan(want):
    """How many connections fit, and the notes that say what limits them."""
    nr_open = read_int("/proc/sys/fs/nr_open")
    nofile = raise_nofile(2 * want + FD_MARGIN, nr_open)
    file_max = read_int("/proc/sys/fs/file-max")
    with open("/proc/sys/fs/file-nr") as f:
        in_use = int(f.read().split()[0])
    notes = ["RLIMIT_NOFILE %d (hard), fs.nr_open %d, fs.file-max %d (%d in use), "
             "ephemeral ports %d" % (nofile, nr_open, file_max, in_use, port_range())]
    fit = want
    # The daemon holds two descriptors per connection: the tightest.
    by_rlimit = (min(nofile, nr_open) - FD_MARGIN) // 2
    if by_rlimit < fit:
        fit = by_rlimit
        notes.append("LIMITED: the daemon's descriptors (2 per connection) allow %d, not %d;"
                     " the hard RLIMIT_NOFILE %d could not be raised (it takes"
                     " CAP_SYS_RESOURCE, and fs.nr_open %d caps it)" % (
                         by_rlimit, want, nofile, nr_open))
    # Client, daemon and backends: four sockets per connection, machine-wide.
    by_files = (file_max - in_use - 4 * FD_MARGIN) // 4
    if by_files < fit:
        fit = by_files
        notes.append("LIMITED: fs.file-max %d allows %d connections" % (file_max, by_files))
    fit = max(0, fit - fit % 100)
    return fit, notes


def metrics_open(port):
    """tlsproxy_connections_open summed over the listeners."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    return sum(int(m.group(1)) for m in
               re.finditer(r"^tlsproxy_connections_open\{[^}]*\} (\d+)$", text, re.M))


def probe(port, ca, payload=b"p" * 100):
    """A fresh client: (handshake ms, round trip ms) or raises OSError."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            t1 = time.monotonic()
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                chunk = s.recv(len(payload) - len(got))
                if not chunk:
                    raise OSError("the proxy closed before the echo came back")
                got += chunk
            t2 = time.monotonic()
    if got != payload:
        raise OSError("the echo came back changed")
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3


def write_config(path, listeners, metrics_port, workers, certs, per_listener):
    blocks = []
    for i, (port, backend) in enumerate(listeners):
        blocks.append("""	{
		name = "scale%d";
		listen = "127.0.0.1:%d";
		backend = "127.0.0.1:%d";
		cert = "%s";
		key = "%s";
		max_connections = %d;
	}""" % (i, port, backend, certs["cert"], certs["key"], per_listener))
    with open(path, "w") as f:
        f.write("""workers = %d;
log_level = "warning";
metrics = "127.0.0.1:%d";
tickets = { mode = "stateless"; seed = "tlsproxy-scale-benchmark-seed-0123"; };
listeners = (
%s
);
""" % (workers, metrics_port, ",\n".join(blocks)))


def start_benchd(path):
    p = spawn([path, "-p", "0", "-t", "7200"], stdout=subprocess.PIPE,
              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if not line.startswith("port "):
        sys.exit("scale: benchd did not start")
    return p, int(line.split()[1])


class Client:
    """tlsbench in idle mode with marks, driven line by line."""

    def __init__(self, argv):
        self.p = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
        self.lines = []
        self.buf = b""

    def next_line(self, prefixes, timeout):
        """The next line starting with one of ${prefixes}; None at EOF or timeout."""
        end = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                raw, self.buf = self.buf.split(b"\n", 1)
                line = raw.decode(errors="replace")
                self.lines.append(line + "\n")
                if line.startswith(prefixes):
                    return line
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.p.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if not chunk:
                return None
            self.buf += chunk

    def go(self):
        self.p.stdin.write(b"\n")
        self.p.stdin.flush()


def figures(line):
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for a in ("--tlsbench", "--benchd", "--tlsproxy", "--srcdir"):
        ap.add_argument(a, required=True)
    args = ap.parse_args()
    setup_exit("scale")

    want = env_int("SCALE_CONNS", 100000)
    marks_pct = [float(x) for x in os.environ.get("SCALE_MARKS", "10 50").split()]
    nsources = env_int("SCALE_SOURCES", 4)
    workers = env_int("SCALE_WORKERS", 1)
    threads = env_int("SCALE_CLIENT_THREADS", 1)
    concurrency = env_int("SCALE_CONCURRENCY", 64)
    nprobes = env_int("SCALE_PROBES", 5)
    open_s = env_int("SCALE_OPEN_SECONDS", max(120, want // 200))
    if want < 100 or not 1 <= nsources <= 64 or not marks_pct or \
            any(not 0 < m < 100 for m in marks_pct) or not 1 <= open_s <= 3600:
        sys.exit("scale: SCALE_CONNS >= 100, SCALE_SOURCES 1-64, SCALE_MARKS one or more"
                 " in (0, 100), SCALE_OPEN_SECONDS 1-3600")

    n, notes = plan(want)
    if n < 100:
        sys.exit("scale: room for %d connections only: %s" % (n, "; ".join(notes)))
    marks = sorted({int(n * m / 100) for m in marks_pct} - {0})
    per_pair = int(port_range() * PORT_SHARE)
    nlisteners = env_int("SCALE_LISTENERS", math.ceil(n / per_pair))
    if nlisteners < 1:
        sys.exit("scale: SCALE_LISTENERS must be 1 or more")
    sources = ["127.0.0.%d" % (2 + i) for i in range(nsources)]
    if n / (nlisteners * nsources) > per_pair:
        sys.exit("scale: too few source addresses for %d connections" % n)

    tmp = make_tmpdir("tlsproxy-scale.",
                      keep=os.environ.get("SCALE_KEEP", "0") not in ("", "0"))
    certs = make_certs(args.srcdir, tmp)
    backends = [start_benchd(args.benchd) for _ in range(nlisteners)]
    # free_port() may hand out a port twice (it is free again once
    # returned): with a narrow ephemeral range that is likely.
    ports = set()
    for _ in range(100 * (nlisteners + 1)):
        if len(ports) == nlisteners + 1:
            break
        ports.add(free_port())
    if len(ports) < nlisteners + 1:
        sys.exit("scale: no %d distinct free ports" % (nlisteners + 1))
    ports = sorted(ports)
    listeners = [(ports[i], port) for i, (_, port) in enumerate(backends)]
    metrics_port = ports[-1]
    conf = os.path.join(tmp, "tlsproxy.conf")
    # Room for the share of each listener, and the fresh clients at the top.
    write_config(conf, listeners, metrics_port, workers, certs,
                 math.ceil(n / nlisteners) + 2 * nprobes)
    logf = open(os.path.join(tmp, "tlsproxy.log"), "ab")
    daemon = spawn([args.tlsproxy, "-r", "-c", conf], stdout=logf, stderr=subprocess.STDOUT,
                   stdin=subprocess.DEVNULL)
    logf.close()
    for port, _ in listeners:
        if not wait_tls(port):
            sys.exit("scale: tlsproxy did not come up; see %s" % tmp)

    info = machine_info()
    print("# tlsproxy scale: %d idle TLS 1.3 connections (%d wanted), marks %s" % (
        n, want, " ".join(str(m) for m in marks)))
    print("machine: %(nproc)s CPUs, %(cpu)s, kernel %(kernel)s; %(openssl)s; libevent "
          "%(libevent)s" % info)
    print("source tree: %s; workers %d; %d listener(s), one benchd each; sources %s" % (
        git_describe(args.srcdir), workers, nlisteners, ",".join(sources)))
    for note in notes:
        print(note)
    sys.stdout.flush()

    # Warm-up, as compare.py's idle figure: lazy initialisation and
    # allocator arenas, then settle.
    warm = subprocess.run([args.tlsbench, "mqtt", "--port", str(listeners[0][0]), "--ca",
                           certs["ca"], "--duration", "0.5", "--concurrency", "16"],
                          capture_output=True, text=True, timeout=60)
    if warm.returncode != 0:
        log("the warm-up had errors: %s" % warm.stdout.strip()[-300:])
    time.sleep(1.0)
    base = rss_kb([daemon.pid])
    log("daemon RSS %d KB warmed and idle" % base)

    client = Client([args.tlsbench, "idle", "--ca", certs["ca"],
                     "--port", ",".join(str(p) for p, _ in listeners),
                     "--source", ",".join(sources), "--connections", str(n),
                     "--marks", ",".join(str(m) for m in marks),
                     "--concurrency", str(concurrency), "--threads", str(threads),
                     "--duration", str(int(open_s)), "--timeout", "30"])
    rows, res = [], {"wanted": want, "connections": n, "notes": notes, "base_rss_kb": base,
                     "workers": workers, "listeners": nlisteners, "sources": sources}
    failed = None
    for _ in range(len(marks) + 1):
        line = client.next_line(("mark ", "ready "), open_s + 60)
        if line is None:
            failed = "tlsbench stopped before all were open"
            break
        fig = figures(line)
        time.sleep(1.0)     # handshakes in flight finish, the daemon settles
        rss = rss_kb([daemon.pid])
        opened = metrics_open(metrics_port)
        row = {"open": int(fig["open"]), "daemon_open": opened, "rss_kb": rss,
               "anon_huge_kb": huge_kb(daemon.pid),
               "kb_per_conn": (rss - base) / opened if opened else None,
               "seconds": float(fig.get("seconds", "nan"))}
        rows.append(row)
        log("%s: %d open (daemon: %d), RSS %d KB (%d KB in huge pages), %.2f KB per"
            " connection" % (line.split()[0], row["open"], opened, rss, row["anon_huge_kb"],
                             row["kb_per_conn"] or 0))
        if line.startswith("ready"):
            break
        client.go()
    res["marks"] = rows

    if failed is None:
        lat = []
        for _ in range(nprobes):
            try:
                lat.append(probe(listeners[0][0], certs["ca"]))
            except (OSError, ssl.SSLError) as e:
                failed = "a fresh client at the top was not served: %s" % e
                break
        res["probes_ms"] = lat
        t0 = time.monotonic()
        client.go()
        closed = client.next_line(("closed ",), 300)
        left, err = None, None
        while time.monotonic() - t0 < 300:
            # A slow (emulated) machine may not answer within the request's
            # 10 s while the daemon closes them all: ask again.
            try:
                left = metrics_open(metrics_port)
            except OSError as e:
                err = e
                continue
            if left == 0:
                break
            time.sleep(0.05)
        res["close_s"] = time.monotonic() - t0 if left == 0 else None
        res["client_close_s"] = float(figures(closed)["seconds"]) if closed else None
        if left != 0:
            failed = "%s connections still open 300 s after the reset%s" % (
                "?" if left is None else left, " (metrics: %s)" % err if err else "")
        time.sleep(1.0)
        res["rss_after_close_kb"] = rss_kb([daemon.pid])
    final = client.next_line(("tlsbench ",), 60)
    stop_proc(client.p, grace=5)
    res["tlsbench"] = figures(final) if final else {}

    print_summary(res, rows, failed)
    if os.environ.get("SCALE_JSON"):
        with open(os.environ["SCALE_JSON"], "w") as f:
            json.dump(res, f, indent=1)
    stop_proc(daemon)
    for p, _ in backends:
        stop_proc(p)
    errors = int(res["tlsbench"].get("errors", "1"))
    if failed or errors:
        print("FAILED: %s" % (failed or "tlsbench counted %d errors" % errors))
        sys.stdout.write("".join(client.lines[-10:]))
        return 1
    return 0


def print_summary(res, rows, failed):
    # The growth from the last mark, per connection opened since: what one
    # more connection costs, free of the daemon's fixed start-up memory.
    print("\n| open | daemon RSS, KB | of which huge pages, KB | KB per connection | KB per "
          "connection since the last mark | opened in, s | accepts/s |")
    print("|---|---|---|---|---|---|---|")
    prev, prev_rss = 0, res["base_rss_kb"]
    for r in rows:
        rate = (r["open"] - prev) / r["seconds"] if r["seconds"] > 0 else 0
        kb = "%.2f" % r["kb_per_conn"] if r["kb_per_conn"] is not None else "-"
        step = "%.2f" % ((r["rss_kb"] - prev_rss) / (r["open"] - prev)) if r["open"] > prev \
            else "-"
        print("| %d | %d | %d | %s | %s | %.1f | %.0f |" % (
            r["open"], r["rss_kb"], r["anon_huge_kb"], kb, step, r["seconds"], rate))
        prev, prev_rss = r["open"], r["rss_kb"]
    print("\ndaemon RSS warmed and idle: %d KB" % res["base_rss_kb"])
    tb = res.get("tlsbench", {})
    if tb.get("open_rate"):
        print("accept rate, whole run: %s connections/s (%s s opening; %s handshakes, "
              "%s errors)" % (tb["open_rate"], tb.get("open_seconds"), tb.get("handshakes"),
                              tb.get("errors")))
    lat = res.get("probes_ms") or []
    if lat:
        hs = [a for a, _ in lat]
        rt = [b for _, b in lat]
        print("fresh client at the top (%d): handshake median %.2f ms (max %.2f), "
              "round trip median %.2f ms (max %.2f)" % (
                  len(lat), statistics.median(hs), max(hs), statistics.median(rt), max(rt)))
    if res.get("close_s") is not None:
        print("close: all %d reset by the client in %.2f s; the daemon had none open "
              "%.2f s after the start" % (rows[-1]["open"], res["client_close_s"] or 0,
                                          res["close_s"]))
    if "rss_after_close_kb" in res:
        print("daemon RSS after the close: %d KB" % res["rss_after_close_kb"])
    if failed:
        print("run failed: %s" % failed)
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
