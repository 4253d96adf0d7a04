#!/usr/bin/env python3
"""compare.py: tlsproxy against HAProxy, nginx (stream), hitch and stunnel.

Each proxy terminates TLS on its own loopback port, with the same ECDSA
P-256 certificate, one worker, in front of the same backend (benchd).  The
same loads (tlsbench) run against each, in interleaved rounds, and the
script prints medians with min-max.  The headline is the proxy's own CPU
time per handshake: utime+stime of all its processes (each process's
/proc/PID/stat, which counts all its threads, the exited ones too), read
before and after each run, divided by the handshakes the client counted.
Memory per idle connection is the growth of VmRSS (summed over the
proxy's processes) over N held TLS 1.3 connections, divided by N, on a
freshly started proxy.

usage: compare.py --tlsbench PATH --benchd PATH --tlsproxy PATH --srcdir DIR

Settings come from the environment (defaults in brackets):
  BENCH_ROUNDS [3]          interleaved rounds
  BENCH_DURATION [4]        seconds per load run
  BENCH_CONCURRENCY [16]    client connections in flight
  BENCH_IDLE_CONNS [9000]   held connections for the memory figure
  BENCH_IDLE_HOLD [2]       seconds they are held
  BENCH_PROXIES [tlsproxy haproxy nginx hitch stunnel]
  BENCH_MODES [all]         keys: mqtt mqtt-resumed full13 resume12-ticket
                            resume12-id resume13 bulk idle
  BENCH_PIN [1]             proxies on CPU 1, client and backend on CPU 0
  BENCH_SCALING [1]         also tlsproxy workers=1 vs 2 with 4 client threads
  BENCH_CHECKS [1]          also: does a client reset evict TLS 1.2 session IDs
  BENCH_INSTALL [1]         apt-get install missing proxies when root
  BENCH_JSON                write every run's figures to this file
  BENCH_KEEP [0]            keep the temporary directory (configs, logs)

Every process it starts is stopped when it ends, on any exit; every wait
is bounded.  Traffic stays on 127.0.0.1.
"""

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time

from peers import (ALL_PROXIES, CLIENT_CIPHERS, PROXY_CLASSES, Proxy, TlsProxy, cpu_seconds,
                   env_float, env_int, forget, git_describe, install_missing, linked_libssl,
                   loadavg, log, machine_info, make_certs, make_tmpdir, rss_kb, setup_exit,
                   spawn, stop_proc, threads_of)

# key: (row title, tlsbench arguments)
MODES = {
    "mqtt": ("MQTT-like: full TLS 1.3 + 100 B echo + clean close", ["mqtt"]),
    "mqtt-resumed": ("MQTT-like: resumed TLS 1.3 + 100 B echo + clean close",
                     ["mqtt", "--resume"]),
    "full13": ("full TLS 1.3 (client resets after the handshake)",
               ["full", "--tls", "1.3", "--close", "rst"]),
    "resume12-ticket": ("resumed TLS 1.2 ticket (clean close)",
                        ["resume12-ticket", "--close", "clean"]),
    "resume12-id": ("resumed TLS 1.2 session ID (clean close)",
                    ["resume12-id", "--close", "clean"]),
    "resume13": ("resumed TLS 1.3 ticket (client resets after the handshake)",
                 ["resume13", "--close", "rst"]),
    "bulk": ("bulk MB/s, one TLS 1.3 connection, both ways at once", ["bulk"]),
    "idle": ("KB RSS per idle TLS 1.3 connection", ["idle"]),
}
RESUMING = {"mqtt-resumed", "resume12-ticket", "resume12-id", "resume13"}

_tmpdir = None


# ---------------------------------------------------------------- the client

def parse_line(text):
    """The key=value figures of tlsbench's last "tlsbench" line."""
    line = ""
    for ln in text.splitlines():
        if ln.startswith("tlsbench "):
            line = ln
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


def tlsbench(args, mode_args, port, extra, timeout, cpu, on_ready=None):
    """Run tlsbench; returns (figures, client CPU seconds, raw output)."""
    argv = [args.tlsbench] + mode_args + ["--port", str(port), "--insecure"] + \
        CLIENT_CIPHERS + extra
    p = spawn(argv, cpu=cpu, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
              stdin=subprocess.DEVNULL, text=True)
    killer = threading.Timer(timeout, lambda: stop_proc(p, grace=2))
    killer.start()
    out = []
    try:
        for line in p.stdout:
            out.append(line)
            if line.startswith("ready") and on_ready is not None:
                on_ready(line)
        _, _, ru = os.wait4(p.pid, 0)
        p.returncode = 0
    finally:
        killer.cancel()
        p.stdout.close()
        forget(p)
    text = "".join(out)
    return parse_line(text), ru.ru_utime + ru.ru_stime, text


# ---------------------------------------------------------------- measuring

def measure_load(args, proxy, key, cfg, threads=1):
    """One load run; the figures with the proxy's CPU per handshake."""
    extra = ["--duration", str(cfg["duration"]), "--concurrency", str(cfg["concurrency"]),
             "--threads", str(threads)]
    load = loadavg()
    u0, s0 = cpu_seconds(proxy.pids())
    fig, client_cpu, raw = tlsbench(args, MODES[key][1], proxy.port, extra,
                                    cfg["duration"] + 60, cfg["client_cpu"])
    time.sleep(0.3)     # the proxy finishes closing what the client left
    u1, s1 = cpu_seconds(proxy.pids())
    c0, c1 = u0 + s0, u1 + s1
    res = {"proxy": proxy.name, "mode": key, "proxy_cpu_s": c1 - c0,
           "proxy_user_s": u1 - u0, "proxy_sys_s": s1 - s0, "client_cpu_s": client_cpu,
           "loadavg": load}
    if not fig or "handshakes" not in fig:
        res["failed"] = raw.strip()[-300:]
        return res
    hs = int(fig["handshakes"])
    res["figures"] = fig
    res["handshakes"] = hs
    res["rate"] = float(fig["rate"])
    res["errors"] = int(fig.get("errors", 0))
    res["resumed"] = int(fig.get("resumed", 0))
    if key == "bulk":
        total_mb = float(fig["total_MBps"]) * float(fig["seconds"])
        res["value"] = float(fig["total_MBps"])
        res["cpu_ns_per_byte"] = (c1 - c0) * 1e9 / (total_mb * 1e6) if total_mb else None
    elif hs > 0:
        res["value"] = (c1 - c0) * 1e6 / hs
        res["user_us"] = (u1 - u0) * 1e6 / hs
        res["sys_us"] = (s1 - s0) * 1e6 / hs
        res["client_us_per_hs"] = client_cpu * 1e6 / hs
    return res


def measure_idle(args, proxy, cfg):
    """RSS growth per held TLS 1.3 connection, on a freshly started proxy."""
    proxy.restart()
    # Warm-up: lazy initialisation and allocator arenas, then settle.
    tlsbench(args, ["mqtt"], proxy.port, ["--duration", "0.5", "--concurrency", "16"], 60,
             cfg["client_cpu"])
    time.sleep(1.0)
    before = rss_kb(proxy.pids())
    seen = {}

    def on_ready(line):
        time.sleep(1.0)
        pids = proxy.pids()
        seen["rss"] = rss_kb(pids)
        seen["threads"] = threads_of(pids)
        seen["open"] = int(re.search(r"open=(\d+)", line).group(1))

    n = cfg["idle_conns"]
    fig, _, raw = tlsbench(args, ["idle"], proxy.port,
                           ["--connections", str(n), "--hold", str(cfg["idle_hold"]),
                            "--concurrency", "64", "--duration", "300", "--timeout", "30"],
                           420, cfg["client_cpu"], on_ready=on_ready)
    res = {"proxy": proxy.name, "mode": "idle", "rss_before_kb": before}
    if "rss" not in seen or seen["open"] == 0:
        res["failed"] = raw.strip()[-300:]
        return res
    res.update({"rss_after_kb": seen["rss"], "open": seen["open"], "threads": seen["threads"],
                "errors": int(fig.get("errors", 0)) if fig else 0,
                "value": (seen["rss"] - before) / seen["open"]})
    if seen["open"] < n:
        res["errors"] = res.get("errors", 0) + (n - seen["open"])
    proxy.restart()     # the next loads meet a fresh proxy again
    return res


# ---------------------------------------------------------------- reporting

def cell(results, key):
    vals = [r["value"] for r in results if r.get("value") is not None]
    if not vals:
        fails = [r for r in results if "failed" in r]
        return "failed" if fails else "n/a"
    med = statistics.median(vals)
    fmt = "%.1f" if key in ("bulk", "idle") else "%.0f"
    s = fmt % med
    if len(vals) > 1:
        s += " (" + fmt % min(vals) + "-" + fmt % max(vals) + ")"
    hs = sum(r.get("handshakes", 0) for r in results)
    if key in RESUMING and hs:
        resumed = sum(r.get("resumed", 0) for r in results)
        if resumed < 0.99 * hs:
            return "n/a: resumed %d%%" % (100 * resumed // hs)
    errs = sum(r.get("errors", 0) for r in results)
    if errs:
        s += " !%d err" % errs
    return s


def print_table(title, rows, proxies, results, value_of=None, out=sys.stdout):
    out.write("\n%s\n\n" % title)
    out.write("| | " + " | ".join(proxies) + " |\n")
    out.write("|---|" + "---|" * len(proxies) + "\n")
    for key in rows:
        cells = []
        for p in proxies:
            rs = [r for r in results if r["proxy"] == p and r["mode"] == key]
            cells.append(value_of(rs, key) if value_of else cell(rs, key))
        out.write("| %s | %s |\n" % (MODES[key][0] if key in MODES else key, " | ".join(cells)))


def rate_cell(rs, key):
    vals = [r["rate"] for r in rs if "rate" in r and key not in ("bulk", "idle")]
    if key == "bulk":
        vals = [r["cpu_ns_per_byte"] for r in rs if r.get("cpu_ns_per_byte")]
        return "%.2f ns/B" % statistics.median(vals) if vals else "n/a"
    if key == "idle":
        vals = [r["threads"] for r in rs if "threads" in r]
        return "%d threads" % max(vals) if vals else "n/a"
    return "%.0f/s" % statistics.median(vals) if vals else "n/a"


def split_cell(rs, key):
    us = [r["user_us"] for r in rs if "user_us" in r]
    sy = [r["sys_us"] for r in rs if "sys_us" in r]
    if not us:
        return "-"
    return "%.0f + %.0f" % (statistics.median(us), statistics.median(sy))


def client_cell(rs, key):
    vals = [r["client_us_per_hs"] for r in rs if r.get("client_us_per_hs")]
    return "%.0f" % statistics.median(vals) if vals else "-"


# ---------------------------------------------------------------- main

def main():
    global _tmpdir
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tlsbench", required=True)
    ap.add_argument("--benchd", required=True)
    ap.add_argument("--tlsproxy", required=True)
    ap.add_argument("--srcdir", required=True)
    args = ap.parse_args()

    setup_exit("compare")

    pin = os.environ.get("BENCH_PIN", "1") != "0" and (os.cpu_count() or 1) >= 2
    cfg = {
        "rounds": env_int("BENCH_ROUNDS", 3),
        "duration": env_float("BENCH_DURATION", 4),
        "concurrency": env_int("BENCH_CONCURRENCY", 16),
        "idle_conns": env_int("BENCH_IDLE_CONNS", 9000),
        "idle_hold": env_float("BENCH_IDLE_HOLD", 2),
        "client_cpu": 0 if pin else None,
        "proxy_cpu": 1 if pin else None,
    }
    wanted = os.environ.get("BENCH_PROXIES", " ".join(ALL_PROXIES)).split()
    modes = os.environ.get("BENCH_MODES", "").split() or list(MODES)
    for m in modes:
        if m not in MODES:
            sys.exit("compare: unknown mode %s (one of %s)" % (m, " ".join(MODES)))
    for p in wanted:
        if p not in PROXY_CLASSES:
            sys.exit("compare: unknown proxy %s" % p)

    # Sockets for 9,000 client connections, and twice that in each proxy.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for want in (200000, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
            break
        except (ValueError, OSError):
            continue
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    Proxy.nofile = nofile
    if nofile < 2 * cfg["idle_conns"] + 100:
        log("descriptor limit %d is low for %d idle connections" % (nofile, cfg["idle_conns"]))

    install_missing(wanted, enabled=os.environ.get("BENCH_INSTALL", "1") != "0")
    _tmpdir = make_tmpdir("tlsproxy-bench.",
                          keep=os.environ.get("BENCH_KEEP", "0") not in ("", "0"))
    certs = make_certs(args.srcdir, _tmpdir)

    bd = spawn([args.benchd, "-p", "0", "-t", "7200"], cpu=cfg["client_cpu"],
               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
               text=True)
    line = bd.stdout.readline()
    if not line.startswith("port "):
        sys.exit("compare: benchd did not start")
    backend_port = int(line.split()[1])

    proxies, skipped = [], {}
    # BENCH_TLSPROXY_ALT="LABEL=PATH[,tls13_tickets=N] ...": more tlsproxy
    # columns (another build, another ticket count), measured like the rest.
    alts = {}
    for spec in os.environ.get("BENCH_TLSPROXY_ALT", "").split():
        label, _, rest = spec.partition("=")
        path, *opts = rest.split(",")
        kw = {"path": path or args.tlsproxy, "label": label}
        for o in opts:
            k, _, v = o.partition("=")
            if k == "tls13_tickets":
                kw["tls13_tickets"] = int(v)
        alts[label] = kw
        wanted.append(label)
    for name in wanted:
        cls = PROXY_CLASSES.get(name, TlsProxy)
        kw = {"path": args.tlsproxy} if name == "tlsproxy" else alts.get(name, {})
        p = cls(_tmpdir, certs, backend_port, cfg["proxy_cpu"], **kw)
        if not p.available():
            skipped[name] = "not installed"
            continue
        try:
            p.start()
        except RuntimeError as e:
            skipped[name] = str(e)
            continue
        proxies.append(p)
    names = [p.name for p in proxies]

    info = machine_info()
    info["git"] = git_describe(args.srcdir)
    print("# tlsproxy benchmark: %d rounds, %.0f s per run, concurrency %d, %d idle connections"
          % (cfg["rounds"], cfg["duration"], cfg["concurrency"], cfg["idle_conns"]))
    print("machine: %(nproc)s CPUs, %(cpu)s, kernel %(kernel)s; %(openssl)s; libevent "
          "%(libevent)s" % info)
    print("source tree: %s; pinning: %s" % (info["git"], "proxies on CPU 1, client and "
                                             "backend on CPU 0" if pin else "none"))
    for p in proxies:
        print("%-9s %s (libssl %s); %s" % (p.name, p.version(), linked_libssl(p.binary),
                                          "; ".join(p.notes)))
    for n, why in skipped.items():
        print("%-9s skipped: %s" % (n, why))
    sys.stdout.flush()

    # Warm-up: every proxy does some of everything once, untimed.
    for p in proxies:
        tlsbench(args, ["mqtt"], p.port, ["--duration", "0.5"], 60, cfg["client_cpu"])
        tlsbench(args, ["resume12-id"], p.port, ["--duration", "0.3"], 60, cfg["client_cpu"])

    results = []
    load_modes = [m for m in modes if m != "idle"]
    t_start = time.time()
    for rnd in range(cfg["rounds"]):
        order = proxies[rnd % len(proxies):] + proxies[:rnd % len(proxies)] if proxies else []
        for key in load_modes:
            for p in order:
                r = measure_load(args, p, key, cfg)
                r["round"] = rnd
                results.append(r)
                log("round %d %-15s %-9s %s" % (rnd + 1, key, p.name, short(r)))
        if "idle" in modes:
            for p in order:
                r = measure_idle(args, p, cfg)
                r["round"] = rnd
                results.append(r)
                log("round %d %-15s %-9s %s" % (rnd + 1, "idle", p.name, short(r)))

    extra = []
    if os.environ.get("BENCH_CHECKS", "1") != "0":
        extra += reset_check(args, proxies, cfg)
    scaling = []
    if os.environ.get("BENCH_SCALING", "1") != "0" and os.access(args.tlsproxy, os.X_OK):
        scaling = scaling_check(args, certs, backend_port, cfg)

    rows = [m for m in MODES if m in modes]
    print_table("Proxy CPU per handshake, µs (bulk: MB/s both ways; idle: KB RSS per "
                "connection); median (min-max) of %d rounds" % cfg["rounds"],
                rows, names, results)
    print_table("Handshakes per second, client-bound (bulk: proxy CPU ns per byte; idle: "
                "proxy threads)", rows, names, results, value_of=rate_cell)
    print_table("Proxy CPU per handshake split, µs: user + system (median)",
                [m for m in rows if m not in ("bulk", "idle")], names, results,
                value_of=split_cell)
    print_table("Client CPU per handshake, µs (the client shares the machine)",
                [m for m in rows if m not in ("bulk", "idle")], names, results,
                value_of=client_cell)
    if extra:
        print("\nTLS 1.2 session ID after a client reset (resume12-id --close rst), "
              "share of handshakes resumed:\n")
        for name, pct in extra:
            print("  %-9s %s" % (name, pct))
    if scaling:
        print("\nScaling, tlsproxy, 4 client threads, no pinning: median rate (proxy CPU µs "
              "per handshake; resumed share)\n")
        for line in scaling:
            print("  " + line)
    loads = [r["loadavg"] for r in results if "loadavg" in r]
    if loads:
        print("\nload average at the start of the runs: median %.2f, max %.2f"
              % (statistics.median(loads), max(loads)))
    print("total time %.0f s" % (time.time() - t_start))
    if os.environ.get("BENCH_JSON"):
        with open(os.environ["BENCH_JSON"], "w") as f:
            json.dump({"config": cfg, "machine": info, "skipped": skipped,
                       "versions": {p.name: p.version() for p in proxies},
                       "results": results, "reset_check": extra, "scaling": scaling}, f,
                      indent=1)
    for p in proxies:
        p.stop()
    return 0


def short(r):
    if "failed" in r:
        return "FAILED: " + r["failed"].replace("\n", " ")[-200:]
    if r["mode"] == "idle":
        return "%.1f KB/conn (%d open, %d threads)" % (r["value"], r["open"], r["threads"])
    if r["mode"] == "bulk":
        return "%.0f MB/s, %.2f ns/B" % (r["value"], r.get("cpu_ns_per_byte") or 0)
    return "%.0f us/hs, %.0f hs/s, resumed %d/%d, errors %d" % (
        r.get("value", 0), r["rate"], r["resumed"], r["handshakes"], r["errors"])


def reset_check(args, proxies, cfg):
    """Does a client's reset evict its TLS 1.2 session-ID session?"""
    out = []
    for p in proxies:
        fig, _, _ = tlsbench(args, ["resume12-id", "--close", "rst"], p.port,
                             ["--duration", "2", "--concurrency", "4"], 60, cfg["client_cpu"])
        hs = int(fig.get("handshakes", 0) or 0)
        res = int(fig.get("resumed", 0) or 0)
        out.append((p.name, "%d%% of %d" % (100 * res // hs, hs) if hs else "failed"))
    return out


def scaling_check(args, certs, backend_port, cfg):
    """tlsproxy with 1 and 2 workers under 4 client threads, unpinned."""
    lines = []
    for key in ("full13", "resume12-id"):
        per = {1: [], 2: []}
        insts = {}
        for w in (1, 2):
            insts[w] = TlsProxy(_tmpdir, certs, backend_port, None, path=args.tlsproxy,
                                workers=w)
            insts[w].tmp = os.path.join(_tmpdir, "tlsproxy-w%d" % w)
            os.makedirs(insts[w].tmp, exist_ok=True)
            insts[w].start()
        try:
            c = dict(cfg, client_cpu=None)
            for rnd in range(cfg["rounds"]):
                for w in ((1, 2) if rnd % 2 == 0 else (2, 1)):
                    per[w].append(measure_load(args, insts[w], key, c, threads=4))
        finally:
            for inst in insts.values():
                inst.stop()
        for w in (1, 2):
            rs = [r for r in per[w] if "rate" in r]
            if not rs:
                lines.append("%-12s workers=%d: failed" % (key, w))
                continue
            hs = sum(r["handshakes"] for r in rs)
            lines.append("%-12s workers=%d: %.0f/s (%.0f µs; resumed %d%%)" % (
                key, w, statistics.median(r["rate"] for r in rs),
                statistics.median(r["value"] for r in rs),
                100 * sum(r["resumed"] for r in rs) // hs if hs else 0))
    return lines


if __name__ == "__main__":
    sys.exit(main())
