"""soak_chaos: what the soak does to the daemon around its clients: the
backend killed and started again, SIGHUP with a good then a broken
configuration, and bursts of connections that run the daemon out of file
descriptors.  One thread, seeded, until the deadline; every event is
checked (a reload refused or accepted as it should be, EMFILE logged).
"""

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

from tp_core import Failure, port_open, rst_close, track_process

HERE = os.path.dirname(os.path.abspath(__file__))

KILL_EVERY = (3.0, 8.0)         # seconds between backend kills
DOWN_FOR = (0.1, 1.0)           # seconds the backend stays down
RELOAD_EVERY = (2.0, 5.0)       # seconds between SIGHUPs
BURST_EVERY = (12.0, 25.0)      # seconds between fd-exhaustion bursts
BURST_CONNS = 600               # connections a burst opens at most
BURST_HOLD = 1.5                # seconds a burst holds them
BURST_LOG_LINES = 20 * BURST_CONNS  # more in one burst is a daemon spinning on a socket
EMFILE_RX = r"accept: (Too many open files|Too many open files in system)"


class BackendProcess:
    """soak_backend.py on a fixed port, killed with SIGKILL and started again."""

    def __init__(self, port, log_path):
        self.port = port
        self.log_path = log_path
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "soak_backend.py"), str(self.port)],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True)
        track_process(self.proc)
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise Failure("the soak backend did not start on port %d" % self.port)
            time.sleep(0.02)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


class ChaosThread:
    """Runs the events until ${soak}'s deadline against its daemon, backend,
    metrics and "soak" port.  Reloads alternate ${soak}.good and
    ${soak}.broken configurations, the broken ones in turn.  A burst holds
    ${soak}.probe_lock, so that a latency sample never lands in one (a
    burst is the daemon refusing connections on purpose).  What goes wrong
    is appended to ${soak}.failures."""

    def __init__(self, soak, chaos, deadline):
        self.soak = soak
        self.rnd = random.Random("%s/chaos" % soak.args.seed)
        self.deadline = deadline
        self.chaos = chaos
        self.counts = {"backend_kills": 0, "reloads_good": 0, "reloads_broken": 0,
                       "bursts": 0, "bursts_emfile": 0}
        self.events = []    # (time.monotonic(), what), to explain failures
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="soak-chaos")
        self.error = None

    def start(self):
        self.thread.start()

    def join(self, timeout):
        self.stop.set()
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def _in(self, span):
        return time.monotonic() + self.rnd.uniform(*span)

    def _run(self):
        nkill, nreload, nburst = self._in(KILL_EVERY), self._in(RELOAD_EVERY), \
            self._in(BURST_EVERY)
        nth = 0
        try:
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                now = time.monotonic()
                if now >= nkill:
                    self._restart_backend()
                    nkill = self._in(KILL_EVERY)
                if now >= nreload:
                    self._reload(nth)
                    nth += 1
                    nreload = self._in(RELOAD_EVERY)
                if now >= nburst:
                    self._burst()
                    nburst = self._in(BURST_EVERY)
                self.stop.wait(0.05)
        except Exception as e:      # reported by the soak as a failure
            self.error = "%s: %s" % (type(e).__name__, e)

    def _event(self, what):
        self.events.append((time.monotonic(), what))

    def recent(self, t, span=10):
        """The events in the ${span} seconds up to ${t}, as text."""
        return ", ".join("%s %.1f s before" % (what, t - at)
                         for at, what in self.events if t - span <= at <= t) or "none"

    def _restart_backend(self):
        self._event("backend killed")
        self.chaos.epoch += 1       # odd: down
        self.soak.backend.kill()
        self.counts["backend_kills"] += 1
        time.sleep(self.rnd.uniform(*DOWN_FOR))
        self.soak.backend.start()
        self.chaos.epoch += 1       # even: up

    def _reload(self, nth):
        """Even turns a good configuration, odd ones a broken one (each
        broken kind in turn): the daemon must accept the first and refuse
        the second, and keep serving either way."""
        good = nth % 2 == 0
        confs = self.soak.good if good else self.soak.broken
        conf = confs[(nth // 2) % len(confs)]
        before = self.soak.metrics.reloads()
        self._event("SIGHUP (%s configuration)" % ("good" if good else "broken"))
        self.soak.daemon.write_conf(conf)
        self.soak.daemon.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            after = self.soak.metrics.reloads()
            if after != before:
                break
            if time.monotonic() > deadline:
                raise Failure("SIGHUP: no reload counted within 10 s")
            time.sleep(0.05)
        ok = after["ok"] > before["ok"]
        self.counts["reloads_good" if good else "reloads_broken"] += 1
        if ok != good:
            self.soak.failures.append("a %s configuration was %s on SIGHUP (reload %d)" % (
                "good" if good else "broken", "accepted" if ok else "refused", nth))

    def _burst(self):
        """Connections, without a byte of TLS, until the daemon runs out of
        descriptors; held, then reset.  A scrape is sent while they are
        held: it must be answered after, and the daemon must not have
        spun on its metrics socket (a flood of log lines)."""
        soak = self.soak
        with soak.probe_lock:
            mark = soak.daemon.mark()
            socks = []
            scrape = None
            self.chaos.burst += 1
            self._event("fd burst started")
            try:
                for _ in range(BURST_CONNS):
                    if self.stop.is_set():
                        break
                    try:
                        s = socket.create_connection(("127.0.0.1", soak.ports["soak"]), timeout=1)
                    except OSError:
                        break
                    socks.append(s)
                scrape = socket.create_connection(("127.0.0.1", soak.ports["metrics"]), timeout=5)
                scrape.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
                time.sleep(BURST_HOLD)
            finally:
                for s in socks:
                    rst_close(s)
            try:
                answer = scrape.recv(64)
            except OSError as e:
                answer = repr(e).encode()
            finally:
                scrape.close()
            # The daemon closes its side of them as it notices.
            time.sleep(0.5)
            self.chaos.burst += 1
            self._event("fd burst ended")
            self.counts["bursts"] += 1
            if soak.daemon.count_log(EMFILE_RX, since=mark):
                self.counts["bursts_emfile"] += 1
            if not answer.startswith(b"HTTP/1.1 200") and not answer.startswith(b"HTTP/1.0 200"):
                soak.failures.append("a scrape sent during an fd burst got %r" % answer[:40])
            lines = soak.daemon.log_since(mark).count("\n")
            if lines > BURST_LOG_LINES:
                soak.failures.append("%d log lines in one fd burst (at most %d)"
                                     % (lines, BURST_LOG_LINES))
