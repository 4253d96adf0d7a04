#!/usr/bin/env python3
"""soak: tlsproxy under a mixed, seeded-random load for a given time, with
its backend killed, its configuration reloaded (good and broken) and its
descriptors run out, checked as it goes and at the end.

    soak.py --tlsproxy PATH [--seconds N] [--seed S] [--label NAME] [--nofile N]

The parts: soak_load.py (the clients and their checks), soak_chaos.py (the
backend process, reloads, fd bursts), soak_backend.py (the echo backend).
Every 10 s a line: the daemon's fds and RSS (/proc), open connections,
handshakes full/resumed and errors by kind (its metrics endpoint), and the
time a fresh client takes for a TLS handshake and an echo round trip.

It passes when: the daemon never died; no sanitizer report is in its
stderr and it exits 0 on SIGTERM; no client saw a corrupted or lost byte on
a connection the soak did not cut; its fds come back to the baseline after
the load; its RSS after the first minute stays flat (check_rss: within
RSS_TOLERANCE); every latency sample is under LATENCY_LIMIT.  The
last line is "soak LABEL: PASS ..." or "soak LABEL: FAIL: reasons", exit 0
or 1.  Everything it starts is stopped, and its temporary directory
removed, on every way out, Ctrl-C included.
"""

import argparse
import os
import re
import resource
import signal
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

import tp_core  # noqa: E402
from tp_backends import EchoBackend  # noqa: E402
from tp_clients import TLS13, TLSClient  # noqa: E402
from tp_core import cert, free_port, tmpfile  # noqa: E402
from tp_daemon import SANITIZER_MARKS, Daemon, listener_conf, make_conf  # noqa: E402
from soak_chaos import BackendProcess, ChaosThread  # noqa: E402
from soak_load import Chaos, Load  # noqa: E402

SAMPLE_EVERY = 10               # seconds
LATENCY_LIMIT = 0.100           # seconds for a fresh handshake + echo round trip
RSS_SETTLE = 60                 # seconds before RSS must be flat
RSS_TOLERANCE = (8 << 20, 0.10)  # RSS may grow by 8 MiB + 10% past its level at 60 s
HANDSHAKE_TIMEOUT = 3           # seconds, the daemon's handshake_timeout
FD_SETTLE = 30                  # seconds for fds to return to the baseline


class Metrics:
    """The daemon's /metrics, summed over labels as asked."""

    LINE = re.compile(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", re.M)

    def __init__(self, port):
        self.url = "http://127.0.0.1:%d/metrics" % port

    def scrape(self):
        with urllib.request.urlopen(self.url, timeout=5) as r:
            text = r.read().decode()
        out = []
        for name, labels, value in self.LINE.findall(text):
            out.append((name, dict(re.findall(r'(\w+)="([^"]*)"', labels or "")),
                        float(value)))
        return out

    @staticmethod
    def total(rows, name, **match):
        return int(sum(v for n, l, v in rows if n == name
                       and all(l.get(k) == want for k, want in match.items())))

    @staticmethod
    def by(rows, name, label):
        out = {}
        for n, l, v in rows:
            if n == name and v:
                out[l.get(label)] = out.get(l.get(label), 0) + int(v)
        return out

    def reloads(self):
        rows = self.scrape()
        return {k: self.total(rows, "tlsproxy_config_reloads_total", result=k)
                for k in ("ok", "failed")}


def median(values):
    return sorted(values)[len(values) // 2]


def proc_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) << 10


def probe(port):
    """Seconds for a fresh TLS 1.3 handshake and a 64-byte echo round trip."""
    t0 = time.monotonic()
    c = TLSClient(port, TLS13, timeout=5)
    try:
        c.roundtrip(os.urandom(64))
    finally:
        c.close()
    return time.monotonic() - t0


def configs(ports, seed_file, backend_port, probe_port):
    """(good configurations, broken ones): the good ones differ in a timeout,
    so that every good reload builds new contexts."""
    def conf(idle, extra_listener="", soak_cert="server", listen=None):
        soak = listener_conf("soak", listen or ports["soak"], backend_port,
                             cert_name=soak_cert, handshake_timeout="%ds" % HANDSHAKE_TIMEOUT,
                             connect_timeout="2s", idle_timeout=idle,
                             full_handshake_rate=2000)
        probe_l = listener_conf("probe", ports["probe"], probe_port)
        return make_conf([soak, probe_l] + ([extra_listener] if extra_listener else []),
                         workers=2,
                         tickets='seed_file = "%s"; rotation_interval = "3s"; '
                                 'decrypt_grace = "60s"; session_lifetime = "60s";' % seed_file,
                         extra='metrics = "127.0.0.1:%d";' % ports["metrics"])
    good = [conf("30s"), conf("31s")]
    broken = [conf("30s") + "\nthis is not libconfig {\n",
              conf("30s").replace(cert("server.pem"), cert("server.pem") + ".missing"),
              conf("30s", listen=ports["moved"]),
              conf("-5s")]
    return good, broken


class Soak:
    def __init__(self, args):
        self.args = args
        self.failures = []
        self.samples = []
        self.t0 = None
        self.probe_lock = threading.Lock()

    def say(self, msg):
        print("soak %s: %s" % (self.args.label, msg), flush=True)

    def setup(self):
        a = self.args
        tp_core.TLSPROXY = a.tlsproxy
        import tp_daemon
        tp_daemon.TLSPROXY = a.tlsproxy
        ports = {k: free_port() for k in ("soak", "probe", "metrics", "moved", "backend")}
        self.ports = ports
        seed_file = tmpfile("ticket.seed", os.urandom(32).hex() + "\n", mode=0o600)
        self.probe_backend = EchoBackend(lifetime=a.seconds + 900, keep=0, scope="file")
        self.backend = BackendProcess(ports["backend"], tmpfile("backend.log"))
        self.backend.start()
        good, broken = configs(ports, seed_file, ports["backend"], self.probe_backend.port)
        self.good, self.broken = good, broken
        self.daemon = Daemon(good[0], name="tlsproxy-" + a.label, nofile=a.nofile,
                             scope="file").start()
        self.metrics = Metrics(ports["metrics"])
        tp_core.wait_until(lambda: tp_core.port_open(ports["metrics"]), 10, "metrics port")
        probe(ports["probe"])
        time.sleep(0.5)
        self.baseline_fds = self.daemon.fds()
        self.say("daemon pid %d, fd limit %d, baseline %d fds, RSS %.1f MiB, seed %s, %d s"
                 % (self.daemon.pid, a.nofile, self.baseline_fds,
                    proc_rss(self.daemon.pid) / 1048576, a.seed, a.seconds))

    def sample(self):
        """One 10 s line; returns the sample."""
        d = self.daemon
        if not d.alive():
            raise RuntimeError("the daemon died with status %s" % d.proc.returncode)
        with self.probe_lock:
            try:
                lat = probe(self.ports["probe"])
            except Exception as e:      # a failed probe is a failed sample
                lat = None
                self.failures.append("%.0f s: probe failed: %s" % (self.elapsed(), e))
        rows = self.metrics.scrape()
        hs = Metrics.by(rows, "tlsproxy_handshakes_total", "kind")
        s = {"t": self.elapsed(), "fds": d.fds(), "rss": proc_rss(d.pid),
             "open": Metrics.total(rows, "tlsproxy_connections_open"),
             "full": hs.get("full", 0), "resumed": sum(v for k, v in hs.items() if k != "full"),
             "latency": lat,
             "errors": {
                 **{"hs_" + k: v for k, v in Metrics.by(
                     rows, "tlsproxy_handshake_failures_total", "reason").items()},
                 "backend_connect": Metrics.total(rows, "tlsproxy_backend_connect_failures_total"),
                 "refused": Metrics.total(rows, "tlsproxy_connections_refused_total"),
                 "emfile_log": d.count_log(r"accept: Too many open files"),
                 "reload_failed": Metrics.total(rows, "tlsproxy_config_reloads_total",
                                                result="failed")}}
        if lat is not None and lat > LATENCY_LIMIT:
            self.failures.append("%.0f s: a fresh client took %.0f ms" % (s["t"], lat * 1000))
        self.samples.append(s)
        tally = self.load.tally
        self.say("t=%4.0fs fds=%d rss=%.1fMiB open=%d hs full=%d resumed=%d probe=%s "
                 "errors %s clients ok=%d failed=%d"
                 % (s["t"], s["fds"], s["rss"] / 1048576, s["open"], s["full"], s["resumed"],
                    "%.1fms" % (lat * 1000) if lat is not None else "FAILED",
                    " ".join("%s=%d" % kv for kv in sorted(s["errors"].items())),
                    sum(v for (k, w), v in tally.outcomes.items() if w == "ok"),
                    tally.nfailures))
        return s

    def elapsed(self):
        return time.monotonic() - self.t0

    def run(self):
        a = self.args
        self.t0 = time.monotonic()
        deadline = self.t0 + a.seconds
        chaos = Chaos()
        self.load = Load(self.ports["soak"], a.seed, deadline, chaos, HANDSHAKE_TIMEOUT)
        self.chaos = ChaosThread(self, chaos, deadline)
        self.load.start()
        self.chaos.start()
        next_sample = self.t0 + SAMPLE_EVERY
        while time.monotonic() < deadline:
            time.sleep(max(0, min(next_sample, deadline) - time.monotonic()))
            if time.monotonic() >= next_sample:
                self.sample()
                next_sample += SAMPLE_EVERY
        self.finish(chaos)

    def finish(self, chaos):
        stuck = self.load.join(60)
        if stuck:
            self.failures.append("client threads still running 60 s after the end: %s"
                                 % ", ".join(stuck))
        if not self.chaos.join(30):
            self.failures.append("the chaos thread did not stop")
        if self.chaos.error:
            self.failures.append("chaos: " + self.chaos.error)
        if chaos.epoch % 2:
            self.backend.start()
        self.sample()
        # Every client has gone: the daemon must be back to its baseline.
        end = time.monotonic() + FD_SETTLE
        while self.daemon.fds() > self.baseline_fds and time.monotonic() < end:
            time.sleep(0.2)
        self.end_fds = self.daemon.fds()
        if self.end_fds > self.baseline_fds:
            fds = sorted(os.listdir("/proc/%d/fd" % self.daemon.pid), key=int)
            self.failures.append("fds: %d open %d s after the load, baseline %d: %s" % (
                self.end_fds, FD_SETTLE, self.baseline_fds, " ".join(
                    self._readlink(f) for f in fds[self.baseline_fds - 3:][:20])))
        self.check_rss()
        self.stop_daemon()

    def _readlink(self, fd):
        try:
            return os.readlink("/proc/%d/fd/%s" % (self.daemon.pid, fd))
        except OSError:
            return "?"

    def check_rss(self):
        """RSS is judged by its level, the median of a minute of samples
        (one sample swings by several MiB in the sanitizer build): the
        level of the last minute against that of the minute after the
        first, and every sample against twice that tolerance."""
        later = [s for s in self.samples if s["t"] >= RSS_SETTLE]
        if len(later) < 2:
            self.rss_line = "RSS: run shorter than %d s, not judged" % (RSS_SETTLE + SAMPLE_EVERY)
            return
        first = [s["rss"] for s in later if s["t"] < RSS_SETTLE + 60]
        last = [s["rss"] for s in later if s["t"] >= later[-1]["t"] - 60]
        ref, end = median(first), median(last)
        top = max(s["rss"] for s in later)
        slack = RSS_TOLERANCE[0] + ref * RSS_TOLERANCE[1]
        mib = 1048576
        self.rss_line = "RSS level %.1f MiB at %d-%d s, %.1f MiB in the last minute " \
            "(limit %.1f), highest sample %.1f MiB (limit %.1f)" % (
                ref / mib, RSS_SETTLE, RSS_SETTLE + 60, end / mib, (ref + slack) / mib,
                top / mib, (ref + 2 * slack) / mib)
        if end > ref + slack or top > ref + 2 * slack:
            self.failures.append("RSS not flat: " + self.rss_line)

    def stop_daemon(self):
        log = self.daemon.log()
        for mark in SANITIZER_MARKS:
            if mark in log:
                self.failures.append("sanitizer report in the daemon's stderr (%s)" % mark)
        try:
            self.daemon.stop(timeout=30)
        except tp_core.Failure as e:
            self.failures.append(str(e).splitlines()[0])

    def report(self):
        t = self.load.tally
        lat = [s["latency"] for s in self.samples if s["latency"] is not None]
        self.say("clients: " + ", ".join("%s %s=%d" % (k, w, v)
                                          for (k, w), v in sorted(t.outcomes.items())))
        self.say("client handshakes: full=%d resumed=%d; %.1f MiB echoed and checked"
                 % (t.handshakes["full"], t.handshakes["resumed"], t.bytes_checked / 1048576))
        self.say("chaos: " + ", ".join("%s=%d" % kv for kv in self.chaos.counts.items()))
        if lat:
            lat.sort()
            self.say("probe latency over %d samples: median %.1f ms, max %.1f ms (limit %d ms)"
                     % (len(lat), lat[len(lat) // 2] * 1000, lat[-1] * 1000,
                        LATENCY_LIMIT * 1000))
        self.say(self.rss_line)
        self.say("fds: baseline %d, at the end %d" % (self.baseline_fds, self.end_fds))
        for at, kind, msg in t.failures:
            self.failures.append("client %s at %.1f s: %s (chaos in the 10 s before: %s)" % (
                kind, at - self.t0, msg, self.chaos.recent(at)))
        if t.nfailures > len(t.failures):
            self.failures.append("... %d client failures in all" % t.nfailures)
        s = self.samples[-1]
        if not self.failures:
            self.say("PASS: %d s, seed %s, %d connections, %d full + %d resumed handshakes, "
                     "max probe %.1f ms" % (self.args.seconds, self.args.seed,
                                            sum(t.outcomes.values()), s["full"], s["resumed"],
                                            max(lat) * 1000))
            return 0
        for f in self.failures:
            self.say("failure: " + f)
        self.say("FAIL: %d problem(s), seed %s (SOAK_SEED=%s replays it)"
                 % (len(self.failures), self.args.seed, self.args.seed))
        return 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tlsproxy", required=True)
    p.add_argument("--seconds", type=int, default=600)
    p.add_argument("--seed", default=None)
    p.add_argument("--label", default="release")
    p.add_argument("--nofile", type=int, default=256)
    a = p.parse_args()
    if a.seed in (None, ""):
        a.seed = str(int.from_bytes(os.urandom(4), "big"))
    if a.seconds < SAMPLE_EVERY:
        p.error("--seconds must be at least %d" % SAMPLE_EVERY)
    # SIGTERM and Ctrl-C both unwind through the finally below and atexit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # Even where SIGINT came ignored (a background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    soak = Soak(a)
    try:
        soak.setup()
        soak.run()
        return soak.report()
    except KeyboardInterrupt:
        soak.say("interrupted")
        return 130
    except Exception as e:
        soak.say("FAIL: %s: %s" % (type(e).__name__, e))
        if getattr(soak, "daemon", None) is not None:
            soak.say("daemon log, last lines:\n" + tp_core.tail(soak.daemon.log(), 40))
        return 1
    finally:
        if getattr(soak, "daemon", None) is not None and soak.daemon.alive():
            soak.daemon.proc.kill()
            soak.daemon.proc.wait(5)
        if getattr(soak, "backend", None) is not None:
            soak.backend.stop()
        if getattr(soak, "probe_backend", None) is not None:
            soak.probe_backend.close()


if __name__ == "__main__":
    sys.exit(main())
