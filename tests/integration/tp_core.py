"""tp_core: the part of the integration-test harness every other part uses.

It owns the TAP output and the case registry (case, check*, defer, main),
this test file's temporary directory and certificates, loopback socket
helpers, and child processes (run, popen, start_server, stop_process):
whatever a case starts is stopped when it ends, and everything at exit.
The paths of the programs under test come from the environment (see
tplib).
"""

import atexit
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("TOP_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
TLSPROXY = os.environ.get("TLSPROXY") or os.path.join(TOP_SRCDIR, "tlsproxy")
OPENSSL = os.environ.get("OPENSSL") or shutil.which("openssl") or "openssl"
MOSQUITTO = os.environ.get("MOSQUITTO") or shutil.which(
    "mosquitto", path=os.environ.get("PATH", "") + ":/usr/sbin") or "no"


# ---------------------------------------------------------------- TAP


class Skip(Exception):
    """Raise from a case to report it as "ok N - name # SKIP reason"."""


class Failure(AssertionError):
    """A check that did not hold."""


_cases = []
_case_cleanups = []     # callables to run when the current case ends (LIFO)
_case_daemons = []      # Daemons started by the current case, for diagnostics
_file_daemons = []      # Daemons that live across cases (scope="file")
_all_procs = []         # every Popen ever started, killed at exit
_tmpdir = None
_certdir = None
_out_lock = threading.Lock()


def _emit(line):
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def diag(msg):
    """diag(msg): print ${msg} as TAP comment lines."""
    for line in str(msg).splitlines() or [""]:
        _emit("# " + line)


def case(name):
    """@case(name): register the decorated function as the next test case."""
    def register(fn):
        _cases.append((name, fn))
        return fn
    return register


def defer(fn, *args):
    """defer(fn, *args): call fn(*args) when the current case ends."""
    _case_cleanups.append((fn, args))


def check(cond, msg="check failed"):
    if not cond:
        raise Failure(msg)


def check_eq(got, want, what="value"):
    if got != want:
        g, w = repr(got), repr(want)
        if len(g) > 300:
            g = g[:300] + "..."
        if len(w) > 300:
            w = w[:300] + "..."
        raise Failure("%s: got %s, want %s" % (what, g, w))


def check_match(regex, text, what="text"):
    m = re.search(regex, text, re.M)
    if not m:
        raise Failure("%s does not match /%s/:\n%s" % (what, regex, tail(text, 30)))
    return m


def tail(text, n):
    """tail(text, n): the last ${n} lines of ${text}."""
    lines = text.splitlines()
    return "\n".join(lines[-n:])


def _run_cleanups():
    errors = []
    while _case_cleanups:
        fn, args = _case_cleanups.pop()
        try:
            fn(*args)
        except Exception as e:  # keep cleaning up
            errors.append(e)
    return errors


def main():
    """main(): run every registered case, print TAP, exit 0 if all passed."""
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *a: sys.exit(129))
    if not os.access(TLSPROXY, os.X_OK):
        _emit("Bail out! no daemon at TLSPROXY=%s (build it first)" % TLSPROXY)
        sys.exit(99)
    _emit("1..%d" % len(_cases))
    failed = 0
    only = os.environ.get("TPLIB_ONLY")
    for n, (name, fn) in enumerate(_cases, 1):
        if only and not re.search(only, name):
            _emit("ok %d - %s # SKIP not selected by TPLIB_ONLY" % (n, name))
            continue
        started = time.monotonic()
        marks = dict((d, d.mark()) for d in _file_daemons)
        status, reason, tb = "ok", "", None
        try:
            fn()
        except Skip as e:
            status, reason = "skip", str(e)
        except BaseException as e:  # noqa: B036 - report, then carry on
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                _run_cleanups()
                raise
            status, tb = "fail", traceback.format_exc()
        for e in _run_cleanups():
            if status != "fail":
                status = "fail"
                tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            else:
                tb += "also at cleanup: %s\n" % e
        if status == "fail":
            diag(tb.rstrip())
            for d in _case_daemons:
                diag("--- %s log (last 40 lines) ---" % d.name)
                diag(tail(d.log(), 40))
            for d in _file_daemons:
                diag("--- %s log during this case (last 40 lines) ---" % d.name)
                diag(tail(d.log_since(marks.get(d, 0)), 40))
        _case_daemons.clear()
        took = time.monotonic() - started
        if status == "ok":
            _emit("ok %d - %s" % (n, name))
        elif status == "skip":
            _emit("ok %d - %s # SKIP %s" % (n, name, reason))
        else:
            failed += 1
            _emit("not ok %d - %s" % (n, name))
        if took > 5:
            diag("%s took %.1f s" % (name, took))
    sys.exit(1 if failed else 0)


def skip_all(reason):
    """skip_all(reason): report the whole file as skipped and exit 0."""
    _emit("1..0 # SKIP %s" % reason)
    sys.exit(0)


# ---------------------------------------------------------------- files


def tmpdir():
    """tmpdir(): this file's temporary directory, removed at exit."""
    global _tmpdir
    if _tmpdir is None:
        _tmpdir = tempfile.mkdtemp(prefix="tlsproxy-test-")
        os.chmod(_tmpdir, 0o700)
    return _tmpdir


def tmpfile(name, content=None, mode=None):
    """tmpfile(name, content): a path in tmpdir(), written when content is given."""
    path = os.path.join(tmpdir(), name)
    if content is not None:
        with open(path, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
    if mode is not None:
        os.chmod(path, mode)
    return path


def cert(name):
    """cert(name): path of a certificate file ("ca.pem", "server.key", ...),
    generated once per test file by certs/gen-certs.sh."""
    global _certdir
    if _certdir is None:
        d = os.path.join(tmpdir(), "certs")
        script = os.path.join(TOP_SRCDIR, "certs", "gen-certs.sh")
        r = subprocess.run(["sh", script, d], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=dict(os.environ, OPENSSL=OPENSSL), timeout=60)
        if r.returncode != 0:
            raise Failure("gen-certs.sh failed:\n" + r.stdout.decode(errors="replace"))
        _certdir = d
    path = os.path.join(_certdir, name)
    if not os.path.exists(path):
        raise Failure("no such certificate file: " + name)
    return path


@atexit.register
def _cleanup_at_exit():
    for p in _all_procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except Exception:
                pass
    if _tmpdir and not os.environ.get("TPLIB_KEEP"):
        shutil.rmtree(_tmpdir, ignore_errors=True)
    elif _tmpdir:
        sys.stderr.write("tplib: kept %s\n" % _tmpdir)


# ---------------------------------------------------------------- sockets


_ports_given = set()    # every port free_port() returned in this process


def free_port():
    """free_port(): a TCP port on 127.0.0.1 that was free a moment ago and
    that no earlier call returned: the port is free again once the probing
    socket closes, so two calls (a listener's and the metrics') could
    otherwise get the same one."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise Failure("no port on 127.0.0.1 that free_port() had not returned, in 100 tries")


def port_open(port):
    """port_open(port): True if something accepts TCP connections on it."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_until(pred, timeout, what, interval=0.05):
    """wait_until(pred, timeout, what): poll pred() until true; fail after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Failure("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def rst_close(sock):
    """rst_close(sock): close ${sock} with a TCP RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    sock.close()


def wait_closed(sock, timeout=5):
    """wait_closed(sock, timeout): read and discard until the peer closes;
    returns "eof" or "rst"; fails if still open after ${timeout} s."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("connection still open after %s s" % timeout)
            sock.settimeout(left)
            try:
                if not sock.recv(65536):
                    return "eof"
            except socket.timeout:
                continue
    except (ConnectionResetError, BrokenPipeError):
        return "rst"


def pattern_chunks(seed, total, size=65536):
    """pattern_chunks(seed, total): yield ${total} pseudo-random bytes in chunks."""
    rnd = random.Random(seed)
    left = total
    while left > 0:
        n = min(size, left)
        yield rnd.randbytes(n)
        left -= n


# ---------------------------------------------------------------- processes


def run(cmd, input=None, timeout=20, env=None, check_rc=None):
    """run(cmd, input, timeout): run a command to completion; returns
    (rc, stdout, stderr) as text; a timeout kills it and fails."""
    try:
        r = subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, env=env,
                           stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Failure("timed out after %s s: %s" % (timeout, " ".join(cmd)))
    out = r.stdout.decode(errors="replace")
    err = r.stderr.decode(errors="replace")
    if check_rc is not None and r.returncode != check_rc:
        raise Failure("%s: exit %d, want %d\nstdout: %s\nstderr: %s"
                      % (" ".join(cmd), r.returncode, check_rc, out, err))
    return r.returncode, out, err


def popen(cmd, **kw):
    """popen(cmd): Popen that is killed when the case ends (and at exit)."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.Popen(cmd, **kw)
    _all_procs.append(p)

    def reap():
        if p.poll() is None:
            p.kill()
        try:
            p.communicate(timeout=5)
        except (subprocess.TimeoutExpired, ValueError, OSError):
            pass
    defer(reap)
    return p


def track_process(proc):
    """track_process(proc): kill ${proc} at exit if it is still running."""
    _all_procs.append(proc)


def show_log_on_failure(daemon, scope):
    """show_log_on_failure(daemon, scope): print the end of ${daemon}.log()
    when a case fails: of this case only (scope "case"), or of every case
    while it runs (scope "file", from daemon.mark() on)."""
    (_case_daemons if scope == "case" else _file_daemons).append(daemon)


def stop_process(proc, what, timeout=5):
    """stop_process(proc, what): SIGTERM, then SIGKILL after ${timeout} s;
    fails if ${what} is still running after that."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    check(proc.poll() is not None, "%s still running" % what)


def start_server(cmd, port, log_path, what, timeout=10):
    """start_server(cmd, port, log_path, what): popen(${cmd}) in its own
    session with stdout and stderr to ${log_path}; returns the Popen once
    127.0.0.1:${port} accepts, failing with the log if it exits first or
    does not listen within ${timeout} s.  Stopped when the case ends."""
    with open(log_path, "wb") as logf:
        proc = popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    defer(stop_process, proc, what)
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            with open(log_path, "rb") as f:
                raise Failure("%s did not start:\n%s" % (what, f.read().decode(errors="replace")))
        time.sleep(0.05)
    return proc
