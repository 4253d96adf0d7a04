"""tp_daemon: the programs under test: config text for tlsproxy, the
daemon itself (Daemon: start, signals, log, fds, stop with its exit status
and sanitizer reports checked), its metrics endpoint, and Debian's
mosquitto as an MQTT backend.
"""

import os
import re
import signal
import subprocess
import time
import urllib.request

from tp_core import (MOSQUITTO, TLSPROXY, Failure, Skip, cert, defer, free_port,
                     port_open, show_log_on_failure, start_server, stop_process, tail,
                     tmpfile, track_process, wait_until)

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "ThreadSanitizer", "MemorySanitizer")


def listener_conf(name, port, backend, cert_name="server", extra="", **settings):
    """listener_conf(name, port, backend, cert_name, **settings): one listener
    group; ${backend} is a port or "host:port"; settings are written as
    key = value with strings quoted."""
    if isinstance(backend, int):
        backend = "127.0.0.1:%d" % backend
    lines = ['name = "%s";' % name,
             'listen = "127.0.0.1:%d";' % port,
             'backend = "%s";' % backend]
    if cert_name:
        lines += ['cert = "%s";' % cert(cert_name + ".pem"),
                  'key = "%s";' % cert(cert_name + ".key")]
    for k, v in settings.items():
        lines.append("%s = %s;" % (k, conf_value(v)))
    if extra:
        lines.append(extra)
    return "  {\n" + "".join("    %s\n" % l for l in lines) + "  }"


def certificates_conf(*entries):
    """certificates_conf(*entries): a listener's certificates setting, for
    listener_conf(..., cert_name=None, extra=...); each entry is (cert,
    key, ocsp_response or None, names or None)."""
    out = []
    for chain, key, resp, names in entries:
        e = 'cert = "%s"; key = "%s";' % (chain, key)
        if resp:
            e += ' ocsp_response = "%s";' % resp
        if names:
            e += " names = %s;" % conf_value(list(names))
        out.append("{ %s }" % e)
    return "certificates = ( %s );" % ", ".join(out)


def conf_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[ " + ", ".join(conf_value(x) for x in v) + " ]"
    return '"%s"' % v


def make_conf(listeners, workers=2, log_level="info", shutdown_timeout="10s",
              session_cache="size = 20480; timeout = \"5m\";",
              tickets='mode = "off";', extra=""):
    """make_conf(listeners, ...): a whole config file's text."""
    if isinstance(listeners, str):
        listeners = [listeners]
    return ("workers = %d;\nlog_level = \"%s\";\nshutdown_timeout = \"%s\";\n"
            "session_cache = { %s };\ntickets = { %s };\n%s"
            "listeners = (\n%s\n);\n"
            % (workers, log_level, shutdown_timeout, session_cache, tickets,
               extra + "\n" if extra else "", ",\n".join(listeners)))


class Daemon:
    """tlsproxy running on a config: Daemon(conf_text).start() writes the
    config, starts `$TLSPROXY -c conf` with stdout and stderr to a log file,
    and waits until every listen port accepts TCP (10 s), failing at once if
    the process exits.  Stopped (and checked) when the case ends unless
    ${scope}="file"."""

    _seq = 0

    def __init__(self, conf, name=None, args=(), nofile=None, scope="case", env=None,
                 soft_nofile=None):
        Daemon._seq += 1
        self.name = name or "tlsproxy%d" % Daemon._seq
        self.conf_path = tmpfile(self.name + ".conf", conf)
        self.log_path = tmpfile(self.name + ".log")
        self.args = list(args)
        self.nofile = nofile            # soft and hard RLIMIT_NOFILE
        self.soft_nofile = soft_nofile  # the soft one only
        self.scope = scope
        self.env = env
        self.proc = None
        self.ports = self.ports_of(conf)

    @staticmethod
    def ports_of(conf):
        return [int(p) for p in re.findall(r'listen\s*=\s*"127\.0\.0\.1:(\d+)"', conf)]

    @property
    def pid(self):
        return self.proc.pid

    def write_conf(self, conf):
        """write_conf(text): replace the config file (for a later SIGHUP)."""
        tmp = self.conf_path + ".new"
        with open(tmp, "w") as f:
            f.write(conf)
        os.rename(tmp, self.conf_path)

    def start(self, wait=True):
        # Tests run as root with no user setting: say that is intended.
        root = ["-r"] if os.geteuid() == 0 else []
        cmd = [TLSPROXY, "-c", self.conf_path] + root + self.args
        if self.nofile or self.soft_nofile:
            # The shell sets the limit and execs the daemon (same pid); no
            # preexec_fn, which is unsafe with the backends' threads.
            lim = "-n %d" % self.nofile if self.nofile else "-Sn %d" % self.soft_nofile
            cmd = ["/bin/sh", "-c", 'ulimit %s && exec "$0" "$@"' % lim] + cmd
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                env=self.env, start_new_session=True)
        finally:
            logf.close()
        track_process(self.proc)
        show_log_on_failure(self, self.scope)
        if self.scope == "case":
            defer(self.stop)
        if wait:
            for port in self.ports:
                self.wait_port(port)
        return self

    def wait_port(self, port, timeout=10):
        deadline = time.monotonic() + timeout
        while not port_open(port):
            if self.proc.poll() is not None:
                raise Failure("%s exited with status %d before listening on %d:\n%s"
                              % (self.name, self.proc.returncode, port, tail(self.log(), 30)))
            if time.monotonic() > deadline:
                raise Failure("%s not listening on %d after %s s" % (self.name, port, timeout))
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            raise Failure("%s died with status %s" % (self.name, self.proc.returncode))

    def signal(self, sig):
        self.check_alive()
        self.proc.send_signal(sig)

    def counters(self, paced=()):
        """The counters of the SIGUSR1 stats line, and what waits in the
        pacers of each listener named in ${paced} (one with a limit, which
        logs a line after it): ({name: n}, {listener: (full handshakes,
        backend connects)})."""
        mark = self.mark()
        self.signal(signal.SIGUSR1)
        m = self.wait_log(r"stats: ([^\n]*)\n", 5, since=mark)   # a whole line
        counts = dict((k, int(v)) for k, v in (kv.split("=") for kv in m.group(1).split()))
        waiting = {}
        for name in paced:
            w = self.wait_log(r"listener %s: waiting: full_handshakes=(\d+) "
                              r"backend_connects=(\d+)\n" % re.escape(name), 5, since=mark)
            waiting[name] = (int(w.group(1)), int(w.group(2)))
        return counts, waiting

    def freeze(self):
        """freeze(): SIGSTOP, then wait until every thread has stopped:
        kill(2) returns before a running thread has taken the signal."""
        self.signal(signal.SIGSTOP)
        tasks = "/proc/%d/task" % self.pid

        def state(tid):
            try:
                with open("%s/%s/stat" % (tasks, tid)) as f:
                    return f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                return "T"      # gone: not running either
        wait_until(lambda: all(state(t) in ("T", "t") for t in os.listdir(tasks)), 5,
                   "every thread of %s stopped" % self.name)

    def thaw(self):
        """thaw(): SIGCONT after freeze()."""
        self.signal(signal.SIGCONT)

    def wait_exit(self, timeout):
        """wait_exit(timeout): the exit status, or None if still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=None, timeout=15, expect=0):
        """stop(): SIGTERM, wait up to ${timeout} s (then SIGKILL and fail);
        fail unless the status is ${expect} and the log is free of sanitizer
        reports.  Does nothing the second time."""
        if self.proc is None or getattr(self, "_stopped", False):
            return
        self._stopped = True
        sig = sig or signal.SIGTERM
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            rc = self.wait_exit(timeout)
            if rc is None:
                self.proc.kill()
                self.proc.wait(5)
                raise Failure("%s did not exit within %s s of signal %d; killed"
                              % (self.name, timeout, sig))
        rc = self.proc.returncode
        self.check_sanitizers()
        if expect is not None and rc != expect:
            raise Failure("%s exited with status %d, want %d" % (self.name, rc, expect))
        return rc

    def check_sanitizers(self):
        log = self.log()
        for mark in SANITIZER_MARKS:
            if mark in log:
                raise Failure("%s: sanitizer report in the log (%s):\n%s"
                              % (self.name, mark, tail(log, 60)))

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def mark(self):
        """mark(): a position in the log; wait_log(.., since=mark) looks after it."""
        return os.path.getsize(self.log_path)

    def log_since(self, since):
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")

    def wait_log(self, regex, timeout=10, since=0):
        """wait_log(regex, timeout, since): the first match in the log after
        ${since}; fail after ${timeout} s or if the daemon exits."""
        rx = re.compile(regex, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_since(since))
            if m:
                return m
            if time.monotonic() > deadline:
                raise Failure("no log line matching /%s/ within %s s" % (regex, timeout))
            if not self.alive() and self.proc is not None:
                m = rx.search(self.log_since(since))
                if m:
                    return m
                raise Failure("%s exited (%s) before logging /%s/"
                              % (self.name, self.proc.returncode, regex))
            time.sleep(0.05)

    def count_log(self, regex, since=0):
        return len(re.findall(regex, self.log_since(since), re.M))

    def fds(self):
        """fds(): how many file descriptors the daemon has open."""
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def wait_fds(self, want, timeout=5):
        """wait_fds(n): wait until the daemon has at most ${n} fds open."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.fds()
            if n <= want:
                return n
            if time.monotonic() > deadline:
                fdl = []
                for fd in sorted(os.listdir("/proc/%d/fd" % self.pid), key=int):
                    try:
                        fdl.append("%s -> %s" % (fd, os.readlink("/proc/%d/fd/%s" % (self.pid, fd))))
                    except OSError:
                        pass
                raise Failure("fd leak: %d open, want <= %d after %s s:\n%s"
                              % (n, want, timeout, "\n".join(fdl)))
            time.sleep(0.05)

    def cpu_seconds(self):
        """cpu_seconds(): user + system CPU time the daemon has used."""
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape_metrics(port):
    """scrape_metrics(port): the text of GET /metrics on 127.0.0.1:${port}."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        return r.read().decode()


def metric_value(body, name, **labels):
    """metric_value(body, name, **labels): the value of sample ${name} whose
    labels are exactly ${labels} (any order) in the scrape ${body}; None if
    there is none."""
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in body.splitlines():
        m = re.match(r"^%s\{([^}]*)\} (\S+)$" % re.escape(name), line)
        if m and ",".join(sorted(m.group(1).split(","))) == want:
            return float(m.group(2))
    return None


class Mosquitto:
    """Debian's mosquitto on a free loopback port with its own config file
    (no persistence, anonymous allowed); stopped when the case ends."""

    def __init__(self):
        if MOSQUITTO == "no" or not os.access(MOSQUITTO, os.X_OK):
            raise Skip("mosquitto is not installed")
        self.port = free_port()
        n = self.port
        self.conf = tmpfile("mosquitto-%d.conf" % n,
                            "listener %d 127.0.0.1\nallow_anonymous true\n"
                            "persistence false\nlog_dest stderr\n" % n)
        os.chmod(self.conf, 0o644)
        self.log_path = tmpfile("mosquitto-%d.log" % n)
        self.proc = start_server([MOSQUITTO, "-c", self.conf], self.port, self.log_path,
                                 "mosquitto")

    def stop(self):
        stop_process(self.proc, "mosquitto", timeout=10)
