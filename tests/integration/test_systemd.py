#!/usr/bin/env python3
"""systemd: the sd_notify protocol on a datagram socket the test owns
(READY=1 only once the port accepts, RELOADING=1 then READY=1 on SIGHUP, the
refusal in STATUS= when a reload fails, STOPPING=1 on SIGTERM), dropping root
for the configured user, refusing to stay root without -r, syslog priority
prefixes when stderr is the journal, and the unit itself:
`systemd-analyze verify` clean and `systemd-analyze security` at most 2.0."""

import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLS13, TLSClient, Daemon, EchoBackend, Skip, case, check,  # noqa: E402
                   check_eq, check_match, defer, diag, free_port, listener_conf,
                   make_conf, run)

BUILDDIR = os.environ.get("TP_BUILDDIR") or os.path.dirname(tplib.TLSPROXY)
ANALYZE = shutil.which("systemd-analyze")
SYSUSERS = shutil.which("systemd-sysusers")
MAX_EXPOSURE = 2.0


def built_with_libsystemd():
    """Without libsystemd the daemon sends nothing: the build says so by
    not linking sd_notify."""
    with open(tplib.TLSPROXY, "rb") as f:
        return b"sd_notify" in f.read()


def need_notify():
    if not built_with_libsystemd():
        raise Skip("built without libsystemd (configure --without-systemd)")


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root")


class NotifySocket:
    """An AF_UNIX datagram socket like systemd's, for NOTIFY_SOCKET; with
    ${world}, in a directory anyone can enter and writable by anyone, for a
    daemon that is no longer root."""

    def __init__(self, world=False):
        self.dir = tempfile.mkdtemp(prefix="tlsproxy-notify-")
        defer(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        defer(self.sock.close)
        self.sock.bind(self.path)
        if world:
            os.chmod(self.dir, 0o755)
            os.chmod(self.path, 0o777)
        self.messages = []

    def env(self, **extra):
        return dict(os.environ, NOTIFY_SOCKET=self.path, **extra)

    def recv(self, timeout=10):
        """recv(): the next message as a dict (with "_raw" and "_time"), or
        None after ${timeout} s."""
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return None
        data = self.sock.recv(65536).decode()
        msg = {"_raw": data, "_time": time.monotonic()}
        for line in data.split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                msg[k] = v
        self.messages.append(msg)
        return msg

    def wait_for(self, key, value=None, timeout=10, d=None):
        """wait_for(key, value): the first message with ${key} (= ${value});
        fails after ${timeout} s, or at once if daemon ${d} exits."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise tplib.Failure("no %s%s within %s s; got: %r"
                                    % (key, "=" + value if value else "", timeout,
                                       [m["_raw"] for m in self.messages]))
            msg = self.recv(min(left, 0.5))
            if msg is None:
                if d is not None and not d.alive():
                    raise tplib.Failure("%s exited (%s) before sending %s"
                                        % (d.name, d.proc.returncode, key))
                continue
            if key in msg and (value is None or msg[key] == value):
                return msg


def start_notified(conf, notify, **kw):
    """Start a daemon with NOTIFY_SOCKET; return (daemon, READY message)
    after checking that the port accepted when READY=1 arrived."""
    d = Daemon(conf, env=notify.env(), **kw).start(wait=False)
    ready = notify.wait_for("READY", "1", 10, d)
    for port in d.ports:
        check(tplib.port_open(port), "READY=1 before port %d accepts" % port)
    return d, ready


@case("READY=1 with STATUS=serving, sent once the listener accepts")
def _():
    need_notify()
    notify = NotifySocket()
    backend = EchoBackend()
    port = free_port()
    d, ready = start_notified(make_conf(listener_conf("mqtt", port, backend.port)), notify)
    check_eq(ready.get("STATUS"), "serving", "STATUS with READY=1")
    d.wait_log(r"ready")
    TLSClient(port, TLS13).roundtrip(b"after READY=1")
    # Nothing that claims readiness came before it.
    early = [m["_raw"] for m in notify.messages[:-1] if "READY" in m]
    check(not early, "READY before the last one: %r" % early)


@case("SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 with STATUS=reloaded")
def _():
    need_notify()
    notify = NotifySocket()
    backend = EchoBackend()
    port = free_port()
    conf = make_conf(listener_conf("mqtt", port, backend.port))
    d, _ready = start_notified(conf, notify)
    before = time.clock_gettime(time.CLOCK_MONOTONIC)
    d.write_conf(make_conf(listener_conf("mqtt", port, backend.port, cert_name="server2")))
    d.signal(signal.SIGHUP)
    reloading = notify.wait_for("RELOADING", "1", 10, d)
    check("MONOTONIC_USEC" in reloading, "RELOADING=1 without MONOTONIC_USEC: %r"
          % reloading["_raw"])
    usec = int(reloading["MONOTONIC_USEC"])
    after = time.clock_gettime(time.CLOCK_MONOTONIC)
    check(before * 1e6 - 1e6 <= usec <= after * 1e6 + 1e6,
          "MONOTONIC_USEC=%d is not CLOCK_MONOTONIC now (%.0f..%.0f)"
          % (usec, before * 1e6, after * 1e6))
    ready = notify.wait_for("READY", "1", 10, d)
    check_match(r"^reloaded", ready.get("STATUS", ""), "STATUS after the reload")
    c = TLSClient(port, TLS13)
    check("O=reloaded" in c.peer_subject(), "the reload did not take: %s" % c.peer_subject())
    c.roundtrip(b"reloaded")


@case("SIGHUP with a broken config: READY=1 with STATUS=reload refused: ...")
def _():
    need_notify()
    notify = NotifySocket()
    backend = EchoBackend()
    port = free_port()
    good = make_conf(listener_conf("mqtt", port, backend.port))
    d, _ready = start_notified(good, notify)
    d.write_conf(good.replace("workers = 2;", "workers = 0;"))
    d.signal(signal.SIGHUP)
    notify.wait_for("RELOADING", "1", 10, d)
    ready = notify.wait_for("READY", "1", 10, d)
    status = ready.get("STATUS", "")
    check_match(r"^reload refused: .*workers", status, "STATUS after a refused reload")
    TLSClient(port, TLS13).roundtrip(b"the old config serves")


@case("SIGHUP moving a listener: STATUS=reload refused: FILE:LINE: names the listener")
def _():
    need_notify()
    notify = NotifySocket()
    backend = EchoBackend()
    port = free_port()
    d, _ready = start_notified(make_conf(listener_conf("mqtt", port, backend.port)), notify)
    d.write_conf(make_conf(listener_conf("mqtt", free_port(), backend.port)))
    d.signal(signal.SIGHUP)
    notify.wait_for("RELOADING", "1", 10, d)
    status = notify.wait_for("READY", "1", 10, d).get("STATUS", "")
    check_match(r"^reload refused: %s:\d+: listeners\[0\]: listener \"mqtt\": listen "
                r"address changed \(that needs a restart\); serving the previous configuration$"
                % re.escape(d.conf_path), status, "STATUS after a refused reload")
    TLSClient(port, TLS13).roundtrip(b"the old config serves")


@case("SIGTERM: STOPPING=1, then exit 0")
def _():
    need_notify()
    notify = NotifySocket()
    backend = EchoBackend()
    port = free_port()
    d, _ready = start_notified(make_conf(listener_conf("mqtt", port, backend.port)), notify)
    d.signal(signal.SIGTERM)
    notify.wait_for("STOPPING", "1", 10, d)
    check_eq(d.wait_exit(15), 0, "exit status after SIGTERM")


@case("root without user and without -r: exit 78, naming the user setting")
def _():
    need_root()
    backend = EchoBackend()
    port = free_port()
    conf = tplib.tmpfile("root.conf", make_conf(listener_conf("mqtt", port, backend.port)))
    rc, out, err = run([tplib.TLSPROXY, "-c", conf], timeout=10)
    check_eq(rc, 78, "exit status\n" + out + err)
    check_match(r"\buser\b", err, "the refusal")
    check(not tplib.port_open(port), "it listened before refusing")
    # -t only checks: no refusal there.
    run([tplib.TLSPROXY, "-t", "-c", conf], check_rc=0)


@case('user = "nobody": binds as root, runs as uid 65534, serves and notifies')
def _():
    need_root()
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        raise Skip("no user nobody")
    notify = NotifySocket(world=True)
    backend = EchoBackend()
    port = free_port()
    conf = make_conf(listener_conf("mqtt", port, backend.port), extra='user = "nobody";')
    if built_with_libsystemd():
        # READY=1 is sent after the switch: as nobody.
        d, _ready = start_notified(conf, notify)
    else:
        d = Daemon(conf).start()
    d.wait_log(r"running as user nobody")
    with open("/proc/%d/status" % d.pid) as f:
        status = f.read()
    uid = check_match(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", status, "/proc status")
    check_eq(set(uid.groups()), {str(nobody.pw_uid)}, "real, effective, saved and fs uid")
    gid = check_match(r"^Gid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", status, "/proc status")
    check_eq(set(gid.groups()), {str(nobody.pw_gid)}, "real, effective, saved and fs gid")
    groups = check_match(r"^Groups:\s*(.*)$", status, "/proc status").group(1).split()
    check(set(groups) <= {str(nobody.pw_gid)}, "supplementary groups: %s" % groups)
    check_match(r"^CapEff:\s+0+$", status, "/proc status")
    TLSClient(port, TLS13).roundtrip(b"served by nobody")


def journal_daemon(conf, stream):
    """A daemon whose stderr is its log file, with JOURNAL_STREAM naming
    that file (${stream}=True) or another one."""
    d = Daemon(conf)
    open(d.log_path, "ab").close()
    st = os.stat(d.log_path if stream else tplib.TLSPROXY)
    d.env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
    return d.start()


@case("JOURNAL_STREAM naming stderr: every line starts with <6>, <4> or <3>")
def _():
    backend = EchoBackend()
    port = free_port()
    dead = free_port()     # nothing listens there: a backend failure warning
    good = make_conf([listener_conf("mqtt", port, backend.port),
                      listener_conf("dead", free_port(), dead)])
    d = journal_daemon(good, True)
    for p in d.ports[1:]:
        c = TLSClient(p, TLS13)
        c.recv_all()
    d.wait_log(r"^<4>.*backend")
    mark = d.mark()
    d.write_conf(good.replace("workers = 2;", "workers = 0;"))
    d.signal(signal.SIGHUP)
    d.wait_log(r"^<3>reload refused", since=mark)
    d.stop()
    lines = d.log().splitlines()
    bad = [l for l in lines if not re.match(r"<[3467]>\S", l)]
    check(not bad, "lines without a priority prefix:\n" + "\n".join(bad[:10]))
    check_match(r"^<6>.*ready", d.log(), "the log")
    check(not re.search(r"^<\d>\d{4}-\d\d-\d\dT", d.log(), re.M), "a time stamp after <N>")


@case("JOURNAL_STREAM naming another file: time stamps, no priority prefix")
def _():
    backend = EchoBackend()
    port = free_port()
    d = journal_daemon(make_conf(listener_conf("mqtt", port, backend.port)), False)
    d.wait_log(r"ready")
    d.stop()
    log = d.log()
    check(not re.search(r"^<\d>", log, re.M), "priority prefix without the journal:\n" + log)
    check_match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info: .*ready", log, "the log")


# ---------------------------------------------------------------- the unit


SERVICE_TYPE = os.environ.get("TP_SERVICE_TYPE", "notify")


def unit_copy():
    """The unit as built (what make install puts in place), with this
    build's paths: ExecStart= runs the tlsproxy just built, so that verify
    finds an executable."""
    with open(os.path.join(BUILDDIR, "systemd", "tlsproxy.service")) as f:
        text = f.read()
    check(not re.search(r"@[A-Za-z_]+@", text), "unsubstituted @names@ in the built unit")
    etc = os.path.join(tplib.tmpdir(), "etc")
    sbindir = os.environ.get("TP_SBINDIR", "/usr/local/sbin")
    sysconfdir = os.environ.get("TP_SYSCONFDIR", "/usr/local/etc")
    text = text.replace(sbindir + "/tlsproxy", os.path.join(os.path.dirname(tplib.TLSPROXY),
                                                            "tlsproxy"))
    text = text.replace(sysconfdir + "/tlsproxy/", etc + "/tlsproxy/")
    d = os.path.join(tplib.tmpdir(), "unit")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "tlsproxy.service")
    with open(path, "w") as f:
        f.write(text)
    return path


def man_path():
    """A man directory with the generated pages, for verify's check of
    Documentation=man:... lines."""
    d = os.path.join(tplib.tmpdir(), "man")
    for page, sec in (("tlsproxy.8", "man8"), ("tlsproxy.conf.5", "man5")):
        src = os.path.join(BUILDDIR, "man", page)
        check(os.path.exists(src), "%s was not generated (run make)" % src)
        os.makedirs(os.path.join(d, sec), exist_ok=True)
        shutil.copyfile(src, os.path.join(d, sec, page))
    return d


def need_analyze():
    if not ANALYZE:
        raise Skip("systemd-analyze is not installed")


@case("the unit: Type=notify(-reload), -t before start and reload, hardening, paths")
def _():
    with open(unit_copy()) as f:
        text = f.read()
    sbin = os.path.dirname(tplib.TLSPROXY)
    conf = os.path.join(tplib.tmpdir(), "etc", "tlsproxy", "tlsproxy.conf")
    # notify-reload: systemd sends SIGHUP itself; notify: ExecReload does.
    reload_lines = ["ExecReload=%s/tlsproxy -t -c %s" % (sbin, conf)]
    if SERVICE_TYPE == "notify":
        reload_lines.append("ExecReload=/bin/kill -HUP $MAINPID")
    want = [
        "Type=%s" % SERVICE_TYPE,
        "ExecStartPre=%s/tlsproxy -t -c %s" % (sbin, conf),
        "ExecStart=%s/tlsproxy -c %s" % (sbin, conf),
    ] + reload_lines + [
        "Restart=on-failure", "LimitNOFILE=1048576",
        "User=tlsproxy", "Group=tlsproxy",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
        "PrivateTmp=yes", "PrivateDevices=yes", "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service", "UMask=0077",
    ]
    lines = [l.strip() for l in text.splitlines()]
    missing = [w for w in want if w not in lines]
    check(not missing, "missing from the unit: %s" % missing)
    # The -t check comes before the signal, and nothing else reloads.
    reloads = [l for l in lines if l.startswith("ExecReload=")]
    check_eq(reloads, reload_lines, "ExecReload lines in order")


@case("the unit: systemd-analyze verify is clean")
def _():
    need_analyze()
    unit = unit_copy()
    # verify fails on a command that is not there: name it, and its package.
    with open(unit) as f:
        commands = re.findall(r"^Exec\w+=[-@:+!]*(/\S+)", f.read(), re.M)
    absent = sorted(set(c for c in commands if not os.access(c, os.X_OK)))
    if absent:
        raise Skip("verify needs %s on this machine (/bin/kill: apt-get install procps)"
                   % ", ".join(absent))
    env = dict(os.environ, MANPATH=man_path(), SYSTEMD_LOG_COLOR="0")
    args = [ANALYZE, "verify"]
    if not shutil.which("man"):
        args.append("--man=no")
        diag("no man(1): verify does not check the Documentation= pages")
    rc, out, err = run(args + [unit], env=env, timeout=60)
    ours = [l for l in (out + err).splitlines() if "tlsproxy" in l]
    others = [l for l in (out + err).splitlines() if "tlsproxy" not in l]
    if others:
        diag("about other units (ignored):\n" + "\n".join(others[:20]))
    check(rc == 0 and not ours, "systemd-analyze verify: exit %d\n%s%s" % (rc, out, err))


@case("the unit: systemd-analyze security --offline=true scores at most 2.0")
def _():
    need_analyze()
    unit = unit_copy()
    rc, out, err = run([ANALYZE, "security", "--offline=true", "--no-pager", unit],
                       env=dict(os.environ, SYSTEMD_COLORS="0"), timeout=60)
    m = re.search(r"Overall exposure level for tlsproxy\.service: (\d+(?:\.\d+)?) (\w+)", out)
    check(m is not None, "no overall exposure level: exit %d\n%s%s" % (rc, out, err))
    score = float(m.group(1))
    diag("exposure %s %s" % (m.group(1), m.group(2)))
    check(score <= MAX_EXPOSURE, "exposure %s > %s:\n%s"
          % (score, MAX_EXPOSURE, "\n".join(l for l in out.splitlines() if "✗" in l)))


def child_of(ppid):
    """The pid of the (only) child of ${ppid}."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == ppid:
                return int(entry)
    raise tplib.Failure("no child of %d" % ppid)


def syscall_set(names, seen=None):
    """The system calls of ${names} (calls and @groups), groups expanded by
    systemd-analyze syscall-filter."""
    seen = set() if seen is None else seen
    out = set()
    for name in names:
        if not name.startswith("@"):
            out.add(name)
            continue
        if name in seen:
            continue
        seen.add(name)
        _rc, text, _err = run([ANALYZE, "syscall-filter", "--no-pager", name], check_rc=0)
        members = [l.strip() for l in text.splitlines()[1:]
                   if l.strip() and not l.strip().startswith("#")]
        out |= syscall_set(members, seen)
    return out


@case("the unit's SystemCallFilter allows every system call the daemon makes")
def _():
    need_analyze()
    strace = shutil.which("strace")
    if not strace:
        raise Skip("strace is not installed")
    with open(tplib.TLSPROXY, "rb") as f:
        if b"__asan_init" in f.read():
            raise Skip("a sanitizer build makes system calls of its own")
    rc, _out, err = run([strace, "-qq", "-o", os.devnull, "true"], timeout=20)
    if rc != 0:
        raise Skip("strace cannot trace here: " + err.strip()[:200])
    allow, deny = set(), set()
    with open(unit_copy()) as f:
        unit = f.read()
    for line in unit.splitlines():
        m = re.match(r"SystemCallFilter=(~?)(.*)$", line.strip())
        if m:
            (deny if m.group(1) else allow).update(m.group(2).split())
    check(allow, "no SystemCallFilter= allow list in the unit")
    allowed = syscall_set(allow) - syscall_set(deny)

    backend = EchoBackend()
    port = free_port()
    conf = tplib.tmpfile("strace.conf", make_conf(
        listener_conf("mqtt", port, backend.port),
        tickets='mode = "stateless"; seed = "0123456789abcdef0123456789abcdef";'))
    trace = tplib.tmpfile("strace.out")
    log = open(tplib.tmpfile("strace.log"), "wb")
    defer(log.close)
    root = ["-r"] if os.geteuid() == 0 else []
    notify = NotifySocket()
    p = tplib.popen([strace, "-f", "-qq", "-o", trace, tplib.TLSPROXY, "-c", conf] + root,
                    stdout=log, stderr=subprocess.STDOUT, env=notify.env())
    tplib.wait_until(lambda: tplib.port_open(port) or p.poll() is not None, 20,
                     "the traced daemon to listen")
    check(p.poll() is None, "strace exited with %s" % p.returncode)
    pid = child_of(p.pid)
    for version in (TLS13, tplib.TLS12):
        c = TLSClient(port, version)
        c.roundtrip(b"traced")
        c.close_notify()
        c.recv_all()
    os.kill(pid, signal.SIGHUP)
    if built_with_libsystemd():
        notify.wait_for("READY", "1", 10)
        notify.wait_for("READY", "1", 10)
    else:
        time.sleep(1)
    os.kill(pid, signal.SIGUSR1)
    time.sleep(0.3)
    os.kill(pid, signal.SIGTERM)
    try:
        rc = p.wait(20)
    except Exception:
        raise tplib.Failure("the traced daemon did not exit")
    check_eq(rc, 0, "exit status under strace")
    used = set()
    with open(trace) as f:
        for line in f:
            m = re.match(r"\d+\s+([a-z0-9_]+)\(", line)
            if m:
                used.add(m.group(1))
    check(len(used) > 10, "strace saw only %s" % sorted(used))
    # execve is strace starting the daemon, before any filter would apply.
    refused = sorted(used - allowed - {"execve"})
    check(not refused, "system calls the unit's filter refuses: %s" % refused)
    diag("%d distinct system calls, all allowed" % len(used))


@case("the sysusers file creates the user and group tlsproxy")
def _():
    if not SYSUSERS:
        raise Skip("systemd-sysusers is not installed")
    need_root()     # --root writes files owned by root
    root = os.path.join(tplib.tmpdir(), "sysroot")
    os.makedirs(os.path.join(root, "etc"), exist_ok=True)
    src = os.path.join(tplib.TOP_SRCDIR, "systemd", "tlsproxy.sysusers")
    run([SYSUSERS, "--root=" + root, src], check_rc=0, timeout=30)
    with open(os.path.join(root, "etc", "passwd")) as f:
        passwd = f.read()
    with open(os.path.join(root, "etc", "group")) as f:
        group = f.read()
    u = check_match(r"^tlsproxy:x:(\d+):(\d+):[^:]*:/nonexistent:(\S*)$", passwd, "passwd")
    g = check_match(r"^tlsproxy:x:(\d+):", group, "group")
    check_eq(u.group(2), g.group(1), "the user's group")
    check(int(u.group(1)) < 1000, "not a system uid: %s" % u.group(1))
    check("nologin" in u.group(3) or u.group(3).endswith("false"),
          "a login shell: %s" % u.group(3))


tplib.main()
