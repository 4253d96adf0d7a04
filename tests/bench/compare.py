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
import atexit
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
CLIENT_CIPHERS = ["--ciphersuites", "TLS_AES_128_GCM_SHA256",
                  "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"]
ALL_PROXIES = ["tlsproxy", "haproxy", "nginx", "hitch", "stunnel"]
APT_PACKAGES = {"haproxy": ["haproxy"], "nginx": ["nginx", "libnginx-mod-stream"],
                "hitch": ["hitch"], "stunnel": ["stunnel4"]}
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

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

_procs = []          # every Popen started, stopped at exit
_tmpdir = None


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


def env_float(name, default):
    v = os.environ.get(name, "")
    return float(v) if v.strip() else default


def log(msg):
    sys.stderr.write("compare: %s\n" % msg)
    sys.stderr.flush()


# ---------------------------------------------------------------- processes

def stop_proc(p, grace=10):
    """SIGTERM p's process group (it has its own), then SIGKILL after grace."""
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=5)


def cleanup():
    for p in reversed(_procs):
        try:
            stop_proc(p, grace=5)
        except Exception:   # noqa: BLE001 - best effort at exit
            pass
    if _tmpdir and os.environ.get("BENCH_KEEP", "0") in ("", "0"):
        shutil.rmtree(_tmpdir, ignore_errors=True)


def on_signal(sig, frame):
    sys.exit(128 + sig)


def spawn(argv, cpu=None, **kw):
    if cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(cpu)] + argv
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    _procs.append(p)
    return p


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def descendants(root):
    """root and every process below it, from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids):
    """(utime, stime) of the processes in seconds, all threads included.

    A process's /proc/PID/stat counts all its threads, the exited ones
    too; summing /proc/PID/task/*/stat instead would miss exited threads
    (stunnel's, one per connection)."""
    user = system = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return user / CLK_TCK, system / CLK_TCK


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def rss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def threads_of(pids):
    n = 0
    for pid in pids:
        try:
            n += len(os.listdir("/proc/%d/task" % pid))
        except OSError:
            pass
    return n


def wait_tls(port, timeout=15):
    """Wait until a TLS handshake on port succeeds; True if it did."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                with ctx.wrap_socket(s, server_hostname="localhost"):
                    return True
        except (OSError, ssl.SSLError):
            time.sleep(0.1)
    return False


def run_cmd(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return "(%s)" % e


# ---------------------------------------------------------------- proxies

class Proxy:
    """One TLS terminator: its config, its process tree, its figures."""

    name = "?"
    binary = "?"
    nofile = 20000      # the descriptor limit it runs under

    def __init__(self, tmp, certs, backend_port, cpu):
        self.tmp = os.path.join(tmp, self.name)
        os.makedirs(self.tmp, exist_ok=True)
        self.certs = certs
        self.backend_port = backend_port
        self.cpu = cpu
        self.port = free_port()
        self.proc = None
        self.notes = []

    def available(self):
        return shutil.which(self.binary) is not None

    def argv(self):
        raise NotImplementedError

    def start(self):
        self.write_config()
        logf = open(os.path.join(self.tmp, "stderr.log"), "ab")
        self.proc = spawn(self.argv(), cpu=self.cpu, stdout=logf, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL)
        logf.close()
        if not wait_tls(self.port):
            self.stop()
            raise RuntimeError("%s did not come up; see %s" % (self.name, self.tmp))
        time.sleep(0.3)   # workers forked after the listener may still start

    def stop(self):
        if self.proc is not None:
            stop_proc(self.proc)
            self.proc = None

    def restart(self):
        self.stop()
        self.port = free_port()
        self.start()

    def pids(self):
        return descendants(self.proc.pid) if self.proc else []

    def version(self):
        return "?"

    def write_config(self):
        raise NotImplementedError


class TlsProxy(Proxy):
    name = "tlsproxy"

    def __init__(self, *a, path, workers=1, label="tlsproxy", tls13_tickets=1, **kw):
        self.path = path
        self.workers = workers
        self.binary = path
        self.name = label
        self.tls13_tickets = tls13_tickets
        super().__init__(*a, **kw)
        self.notes.append("workers = %d; tickets stateless with a seed, tls13_tickets %d; "
                          "session_cache 20480; log_level warning" % (workers, tls13_tickets))

    def available(self):
        return os.access(self.path, os.X_OK)

    def write_config(self):
        self.conf = os.path.join(self.tmp, "tlsproxy.conf")
        with open(self.conf, "w") as f:
            f.write("""workers = %d;
log_level = "warning";
session_cache = { size = 20480; timeout = "5m"; };
tickets = { mode = "stateless"; seed = "tlsproxy-benchmark-seed-0123456789";
	tls13_tickets = %d; };
listeners = ( {
	name = "bench";
	listen = "127.0.0.1:%d";
	backend = "127.0.0.1:%d";
	cert = "%s";
	key = "%s";
	max_connections = 100000;
} );
""" % (self.workers, self.tls13_tickets, self.port, self.backend_port, self.certs["cert"],
                self.certs["key"]))

    def argv(self):
        return [self.path, "-r", "-c", self.conf]

    def version(self):
        return run_cmd([self.path, "-V"]).splitlines()[0]


class HAProxy(Proxy):
    name = "haproxy"
    binary = "haproxy"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.notes.append("nbthread 1; tune.ssl.cachesize 20000; tickets on (default); no log")

    def write_config(self):
        self.conf = os.path.join(self.tmp, "haproxy.cfg")
        with open(self.conf, "w") as f:
            f.write("""global
    nbthread 1
    maxconn %d
    tune.ssl.cachesize 20000
    tune.ssl.lifetime 300
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend tls
    bind 127.0.0.1:%d ssl crt %s ssl-min-ver TLSv1.2
    default_backend plain
backend plain
    server b1 127.0.0.1:%d
""" % (min(30000, (self.nofile - 100) // 2), self.port, self.certs["combined"],
                self.backend_port))

    def argv(self):
        return ["haproxy", "-db", "-f", self.conf]

    def version(self):
        return run_cmd(["haproxy", "-v"]).splitlines()[0]


class Nginx(Proxy):
    name = "nginx"
    binary = "nginx"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.notes.append("worker_processes 1; stream module; ssl_session_cache shared:SSL:10m;"
                          " ssl_session_tickets on; no access log")

    def available(self):
        return shutil.which("nginx") is not None and os.path.exists(NGINX_STREAM_MODULE)

    def write_config(self):
        self.conf = os.path.join(self.tmp, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write("""load_module %s;
worker_processes 1;
daemon off;
master_process on;
pid %s/nginx.pid;
error_log %s/error.log warn;
worker_rlimit_nofile %d;
events { worker_connections %d; }
stream {
    upstream plain { server 127.0.0.1:%d; }
    server {
        listen 127.0.0.1:%d ssl;
        proxy_pass plain;
        proxy_connect_timeout 5s;
        proxy_timeout 60s;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 5m;
        ssl_session_tickets on;
    }
}
""" % (NGINX_STREAM_MODULE, self.tmp, self.tmp, self.nofile, self.nofile - 100,
                self.backend_port, self.port,
                self.certs["cert"], self.certs["key"]))

    def argv(self):
        return ["nginx", "-p", self.tmp, "-e", os.path.join(self.tmp, "error.log"),
                "-c", self.conf]

    def version(self):
        return run_cmd(["nginx", "-v"]).splitlines()[0]


class Hitch(Proxy):
    name = "hitch"
    binary = "hitch"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.notes.append("workers 1; Debian's build has no session-cache (needs "
                          "--enable-sessioncache): OpenSSL's per-process cache, default tickets")

    def write_config(self):
        self.conf = os.path.join(self.tmp, "hitch.conf")
        os.makedirs(os.path.join(self.tmp, "ocsp"), exist_ok=True)
        with open(self.conf, "w") as f:
            f.write("""frontend = "[127.0.0.1]:%d"
backend = "[127.0.0.1]:%d"
pem-file = "%s"
workers = 1
backlog = 1024
daemon = off
tls-protos = TLSv1.2 TLSv1.3
log-level = 1
ocsp-dir = "%s/ocsp"
user = "%s"
""" % (self.port, self.backend_port, self.certs["combined"], self.tmp, self.user()))

    @staticmethod
    def user():
        """hitch refuses to run its workers as root."""
        import pwd
        for name in ("_hitch", "hitch", "nobody"):
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                continue
        return "nobody"

    def argv(self):
        return ["hitch", "--config=" + self.conf]

    def version(self):
        return run_cmd(["hitch", "--version"]).splitlines()[0]


class Stunnel(Proxy):
    name = "stunnel"
    binary = "stunnel4"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.notes.append("a thread per connection (no worker setting); sessionCacheSize "
                          "20000; debug = 3; TCP_NODELAY both sides")

    def available(self):
        return shutil.which("stunnel4") is not None or shutil.which("stunnel") is not None

    def write_config(self):
        self.conf = os.path.join(self.tmp, "stunnel.conf")
        with open(self.conf, "w") as f:
            f.write("""foreground = yes
pid =
debug = 3
output = %s/stunnel.log
syslog = no
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
[tls]
accept = 127.0.0.1:%d
connect = 127.0.0.1:%d
cert = %s
key = %s
sslVersionMin = TLSv1.2
sessionCacheSize = 20000
sessionCacheTimeout = 300
TIMEOUTclose = 0
""" % (self.tmp, self.port, self.backend_port, self.certs["cert"], self.certs["key"]))

    def argv(self):
        return [shutil.which("stunnel4") or "stunnel", self.conf]

    def version(self):
        out = run_cmd([self.argv()[0], "-version"])
        m = re.search(r"^stunnel \S+", out, re.M)
        return m.group(0) if m else out.splitlines()[0]


PROXY_CLASSES = {"tlsproxy": TlsProxy, "haproxy": HAProxy, "nginx": Nginx, "hitch": Hitch,
                 "stunnel": Stunnel}


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
        if p in _procs:
            _procs.remove(p)
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


# ---------------------------------------------------------------- setup

def install_missing(wanted):
    if os.geteuid() != 0 or os.environ.get("BENCH_INSTALL", "1") == "0":
        return
    need = []
    for name in wanted:
        if name == "tlsproxy":
            continue
        cls = PROXY_CLASSES[name]
        probe = cls.__new__(cls)
        if not cls.available(probe):
            need.extend(APT_PACKAGES[name])
    if not need:
        return
    log("installing " + " ".join(need))
    envv = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # policy-rc.d keeps the packages' services from starting on install.
    policy = "/usr/sbin/policy-rc.d"
    made_policy = not os.path.exists(policy)
    if made_policy:
        with open(policy, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        subprocess.run(["apt-get", "update", "-qq"], env=envv, timeout=600,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq"] + need, env=envv, timeout=900,
                       stdout=subprocess.DEVNULL)
    finally:
        if made_policy:
            os.unlink(policy)


def make_certs(srcdir, tmp):
    d = os.path.join(tmp, "certs")
    subprocess.run(["sh", os.path.join(srcdir, "certs", "gen-certs.sh"), d], check=True,
                   timeout=120)
    combined = os.path.join(d, "server-combined.pem")
    with open(combined, "w") as out:
        for part in ("server.pem", "server.key"):
            with open(os.path.join(d, part)) as f:
                out.write(f.read())
    os.chmod(combined, 0o600)
    return {"cert": os.path.join(d, "server.pem"), "key": os.path.join(d, "server.key"),
            "combined": combined, "ca": os.path.join(d, "ca.pem")}


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": os.uname().release,
            "openssl": run_cmd(["openssl", "version"]),
            "libevent": run_cmd(["pkg-config", "--modversion", "libevent"])}


def git_describe(srcdir):
    """The source tree's commit, or what it is when it is not a checkout
    (a `git archive` export, say)."""
    try:
        r = subprocess.run(["git", "-C", srcdir, "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "%s (git: %s)" % (srcdir, e)
    if r.returncode != 0:
        return "%s (not a git checkout)" % srcdir
    return r.stdout.strip()


def linked_libssl(binary):
    path = shutil.which(binary) or binary
    out = run_cmd(["ldd", path])
    m = re.search(r"libssl\.so\S*\s*=>\s*(\S+)", out)
    return m.group(1) if m else "?"


# ---------------------------------------------------------------- main

def main():
    global _tmpdir
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tlsbench", required=True)
    ap.add_argument("--benchd", required=True)
    ap.add_argument("--tlsproxy", required=True)
    ap.add_argument("--srcdir", required=True)
    args = ap.parse_args()

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

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

    install_missing(wanted)
    _tmpdir = tempfile.mkdtemp(prefix="tlsproxy-bench.")
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
