"""tplib: the shared harness of tlsproxy's integration tests.

Each tests/integration/test_*.py is an automake test, run as `python3 FILE`
with TLSPROXY (the daemon), TOP_SRCDIR, OPENSSL and MOSQUITTO (a path or
"no") in the environment, and prints TAP for build-aux/tap-driver.sh:

    import tplib
    from tplib import case, check, check_eq

    @case("TLS 1.3 round trip")
    def _():
        ...

    tplib.main()

Cases run in order; an exception fails its case (traceback as "# " lines)
and the next case runs.  Everything a case starts (daemons, backends,
child processes) is stopped when the case ends; a daemon that does not stop
on SIGTERM within 15 s, exits non-zero, or logged a sanitizer report fails
the case.  Every wait is bounded.  Servers bind 127.0.0.1 only, on
ephemeral ports.

TPLIB_KEEP=1 keeps the temporary directory (configs, daemon logs);
TPLIB_ONLY=REGEX runs only the cases whose name matches (the rest SKIP).
"""

import atexit
import hashlib
import os
import random
import re
import select
import shutil
import signal
import socket
import ssl
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

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "ThreadSanitizer", "MemorySanitizer")


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
        raise Failure("%s does not match /%s/:\n%s" % (what, regex, _tail(text, 30)))
    return m


def _tail(text, n):
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
                diag(_tail(d.log(), 40))
            for d in _file_daemons:
                diag("--- %s log during this case (last 40 lines) ---" % d.name)
                diag(_tail(d.log_since(marks.get(d, 0)), 40))
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


def free_port():
    """free_port(): a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


class Backend:
    """A threaded TCP server on 127.0.0.1:<ephemeral>; handle(conn, rec) per
    connection in a daemon thread.  Lives at most ${lifetime} seconds and is
    closed when the case ends.  .conns lists one Record per connection."""

    class Record:
        def __init__(self, peer):
            self.peer = peer
            self.received = bytearray()
            self.nreceived = 0
            self.sha = hashlib.sha256()
            self.eof = threading.Event()     # read EOF from the proxy
            self.reset = threading.Event()   # read failed (RST)
            self.done = threading.Event()    # handler returned
            self.sent_sha = None
            self.error = None

    def __init__(self, lifetime=120, keep=1 << 20, port=0, scope="case"):
        self.keep = keep        # bytes of received data kept in Record.received
        self.lifetime = lifetime
        self.conns = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.closed = threading.Event()
        self._deadline = time.monotonic() + lifetime
        self._open = set()
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        if scope == "case":
            defer(self.close)

    def _accept_loop(self):
        while not self.closed.is_set() and time.monotonic() < self._deadline:
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conn.settimeout(max(1, self._deadline - time.monotonic()))
            rec = Backend.Record(peer)
            with self.lock:
                self.conns.append(rec)
                self._open.add(conn)
            threading.Thread(target=self._serve, args=(conn, rec), daemon=True).start()
        self.sock.close()

    def _serve(self, conn, rec):
        try:
            self.handle(conn, rec)
        except (ConnectionResetError, BrokenPipeError) as e:
            rec.reset.set()
            rec.error = e
        except Exception as e:
            rec.error = e
        finally:
            with self.lock:
                self._open.discard(conn)
            try:
                conn.close()
            except OSError:
                pass
            rec.done.set()

    def read_some(self, conn, rec, n=65536):
        """read_some(conn, rec): one recv, recorded in ${rec}; b"" at EOF."""
        data = conn.recv(n)
        if not data:
            rec.eof.set()
            return data
        rec.nreceived += len(data)
        rec.sha.update(data)
        if len(rec.received) < self.keep:
            rec.received += data[:self.keep - len(rec.received)]
        return data

    def read_to_eof(self, conn, rec):
        while self.read_some(conn, rec):
            pass

    def handle(self, conn, rec):
        raise NotImplementedError

    def count(self):
        with self.lock:
            return len(self.conns)

    def wait_conns(self, n, timeout=10):
        wait_until(lambda: self.count() >= n, timeout, "%d backend connection(s)" % n)
        return self.conns[n - 1]

    def close(self):
        self.closed.set()
        with self.lock:
            for c in list(self._open):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        try:
            self.sock.close()
        except OSError:
            pass


class EchoBackend(Backend):
    """Echoes; on EOF from the proxy (everything echoed by then) it shuts down
    its write side and closes.  ${greeting}, if given, is sent first."""

    def __init__(self, greeting=b"", **kw):
        self.greeting = greeting
        super().__init__(**kw)

    def handle(self, conn, rec):
        if self.greeting:
            conn.sendall(self.greeting)
        while True:
            data = self.read_some(conn, rec)
            if not data:
                break
            conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)


class GreetHalfCloseBackend(Backend):
    """Sends ${greeting}, shuts down its write side (FIN), then reads until EOF."""

    def __init__(self, greeting=b"hello from the backend\n", **kw):
        self.greeting = greeting
        super().__init__(**kw)

    def handle(self, conn, rec):
        conn.sendall(self.greeting)
        conn.shutdown(socket.SHUT_WR)
        self.read_to_eof(conn, rec)


class ReplyAfterEOFBackend(Backend):
    """Reads until EOF, then sends ${reply} and closes: data that can only
    reach the client if the proxy relays after the client's half-close."""

    def __init__(self, reply, **kw):
        self.reply = reply
        super().__init__(**kw)

    def handle(self, conn, rec):
        self.read_to_eof(conn, rec)
        time.sleep(0.2)
        conn.sendall(self.reply)
        conn.shutdown(socket.SHUT_WR)


class ResetBackend(Backend):
    """Reads ${after} bytes (0: none), then closes with an RST."""

    def __init__(self, after=1, **kw):
        self.after = after
        super().__init__(**kw)

    def handle(self, conn, rec):
        while rec.nreceived < self.after:
            if not self.read_some(conn, rec):
                break
        rec.reset.set()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")


class StreamBackend(Backend):
    """Sends ${total} bytes of pattern_chunks(seed) then FIN, while hashing
    everything it receives until EOF, both at once."""

    def __init__(self, total, seed=2, **kw):
        self.total, self.seed = total, seed
        super().__init__(**kw)

    def handle(self, conn, rec):
        def send():
            h = hashlib.sha256()
            try:
                for chunk in pattern_chunks(self.seed, self.total):
                    conn.sendall(chunk)
                    h.update(chunk)
                conn.shutdown(socket.SHUT_WR)
                rec.sent_sha = h.hexdigest()
            except OSError as e:
                rec.error = e
        t = threading.Thread(target=send, daemon=True)
        t.start()
        self.read_to_eof(conn, rec)
        t.join(max(1, self._deadline - time.monotonic()))


# ---------------------------------------------------------------- TLS clients

TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
VERSION_NAME = {TLS12: "TLSv1.2", TLS13: "TLSv1.3"}


def client_context(version=None, ca="ca.pem", client_cert=None, check_hostname=True):
    """client_context(version, ca, client_cert): a verifying client context;
    ${version} pins TLS12 or TLS13; ${client_cert} is a cert() base name
    ("client") whose .pem and .key are presented."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=cert(ca))
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if client_cert:
        ctx.load_cert_chain(cert(client_cert + ".pem"), cert(client_cert + ".key"))
    return ctx


class TLSClient:
    """A TLS client over a plain socket through memory BIOs, so that each
    part of a close can be done alone: close_notify() without closing TCP,
    shutdown_wr() (a FIN without close_notify), rst()."""

    def __init__(self, port, version=None, ctx=None, host="localhost",
                 timeout=10, session=None, handshake=True, **ctxkw):
        self.ctx = ctx or client_context(version, **ctxkw)
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        # No Nagle delay between our Finished and the first application data.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = self.ctx.wrap_bio(self.inc, self.out, server_hostname=host,
                                     session=session)
        self.tcp_eof = False
        self.got_close_notify = False
        defer(self.close)
        if handshake:
            self.handshake()

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _fill(self):
        try:
            data = self.sock.recv(262144)
        except socket.timeout:
            raise Failure("timed out after %s s waiting for the proxy" % self.timeout)
        if not data:
            self.tcp_eof = True
            self.inc.write_eof()
        else:
            self.inc.write(data)

    def handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if self.tcp_eof:
                    raise ConnectionError("EOF during the handshake")
                self._fill()

    @property
    def version(self):
        return self.obj.version()

    def send(self, data):
        self.obj.write(data)
        self._flush()

    def recv(self, n=262144):
        """recv(): some application data; b"" at close_notify or EOF."""
        while True:
            try:
                data = self.obj.read(n)
                self._flush()
                if not data:
                    self.got_close_notify = True
                return data
            except ssl.SSLWantReadError:
                self._flush()
                if self.tcp_eof:
                    return b""
                self._fill()
            except ssl.SSLZeroReturnError:
                self.got_close_notify = True
                return b""
            except ssl.SSLEOFError:
                return b""

    def recv_exactly(self, n):
        buf = bytearray()
        while len(buf) < n:
            data = self.recv(min(262144, n - len(buf)))
            if not data:
                raise Failure("EOF after %d of %d bytes" % (len(buf), n))
            buf += data
        return bytes(buf)

    def recv_all(self):
        """recv_all(): everything until close_notify or EOF."""
        buf = bytearray()
        while True:
            data = self.recv()
            if not data:
                return bytes(buf)
            buf += data

    def roundtrip(self, data):
        """roundtrip(data): send, then read back as many bytes (echo backend)."""
        self.send(data)
        got = self.recv_exactly(len(data))
        if got != data:
            raise Failure("echo differs: sent %d bytes, got back different bytes" % len(data))
        return got

    def close_notify(self):
        """close_notify(): send close_notify; reading still works."""
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        self._flush()

    def shutdown_wr(self):
        """shutdown_wr(): a TCP FIN without close_notify."""
        self.sock.shutdown(socket.SHUT_WR)

    def wait_tcp_eof(self, timeout=5):
        """wait_tcp_eof(): fail unless the proxy closes TCP within ${timeout} s;
        application data still arriving is discarded."""
        deadline = time.monotonic() + timeout
        while not self.tcp_eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("the proxy did not close the connection within %s s" % timeout)
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                self.tcp_eof = True
        self.sock.settimeout(self.timeout)

    def rst(self):
        rst_close(self.sock)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def peer_subject(self):
        """peer_subject(): the server certificate's subject as "O=..,CN=.."."""
        c = self.obj.getpeercert()
        return ",".join("%s=%s" % (k, v) for rdn in c["subject"] for (k, v) in rdn) \
            .replace("organizationName", "O").replace("commonName", "CN")

    def pump(self, chunks, sink, timeout=60, close="notify"):
        """pump(chunks, sink, timeout, close): send every chunk while passing
        everything received to sink(data), both at once without threads;
        after the last chunk send close_notify (close="notify"), a FIN
        ("fin") or nothing (None).  Returns when the peer has closed its side."""
        sock = self.sock
        sock.setblocking(False)
        deadline = time.monotonic() + timeout
        pending = bytearray()
        src = iter(chunks)
        src_done = False
        peer_done = False
        fin_sent = False
        try:
            while True:
                while not src_done and len(pending) < 1 << 20:
                    chunk = next(src, None)
                    if chunk is None:
                        src_done = True
                        if close == "notify":
                            try:
                                self.obj.unwrap()
                            except ssl.SSLWantReadError:
                                pass
                    else:
                        self.obj.write(chunk)
                    pending += self.out.read()
                if src_done and not pending and close == "fin" and not fin_sent:
                    sock.shutdown(socket.SHUT_WR)
                    fin_sent = True
                if src_done and not pending and peer_done:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure("pump timed out after %s s (%d bytes unsent, peer %s)"
                                  % (timeout, len(pending), "done" if peer_done else "open"))
                r, w, _ = select.select([sock] if not peer_done else [],
                                        [sock] if pending else [], [], min(left, 1))
                if w:
                    try:
                        n = sock.send(pending[:1 << 18])
                        del pending[:n]
                    except BlockingIOError:
                        pass
                if r:
                    try:
                        data = sock.recv(1 << 18)
                    except BlockingIOError:
                        continue
                    if not data:
                        self.tcp_eof = True
                        self.inc.write_eof()
                    else:
                        self.inc.write(data)
                    while True:
                        try:
                            plain = self.obj.read(1 << 18)
                        except ssl.SSLWantReadError:
                            if self.tcp_eof:
                                peer_done = True
                            break
                        except ssl.SSLZeroReturnError:
                            self.got_close_notify = True
                            peer_done = True
                            break
                        except ssl.SSLEOFError:
                            peer_done = True
                            break
                        if not plain:
                            self.got_close_notify = True
                            peer_done = True
                            break
                        sink(plain)
                    pending += self.out.read()
        finally:
            sock.setblocking(True)
            sock.settimeout(self.timeout)


def client_hello(version=None, host="localhost"):
    """client_hello(): the bytes of a real ClientHello, for truncating."""
    ctx = client_context(version)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=host)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


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


def s_client(port, args=(), input=b"", timeout=15, host="localhost"):
    """s_client(port, args): `openssl s_client` against 127.0.0.1:port that
    verifies the server against ca.pem; returns (rc, stdout+stderr)."""
    cmd = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port,
           "-servername", host, "-verify_hostname", host,
           "-CAfile", cert("ca.pem"), "-verify_return_error"] + list(args)
    rc, out, err = run(cmd, input=input, timeout=timeout)
    return rc, out + err


def s_client_tls12(port, sess_in=None, sess_out=None, tickets=False):
    """s_client_tls12(port): one TLS 1.2 s_client connection (without tickets
    unless asked), offering/saving a session file; returns ("New"|"Reused",
    output)."""
    args = ["-tls1_2"] + ([] if tickets else ["-no_ticket"])
    if sess_out:
        args += ["-sess_out", sess_out]
    if sess_in:
        args += ["-sess_in", sess_in]
    rc, out = s_client(port, args)
    check_eq(rc, 0, "s_client status; output:\n%s\n" % out[-1500:])
    m = re.search(r"^(New|Reused), (TLSv1\.\d)", out, re.M)
    check(m, "no New/Reused line in:\n%s" % out[-1500:])
    check_eq(m.group(2), "TLSv1.2", "protocol")
    return m.group(1), out


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

    def __init__(self, conf, name=None, args=(), nofile=None, scope="case", env=None):
        Daemon._seq += 1
        self.name = name or "tlsproxy%d" % Daemon._seq
        self.conf_path = tmpfile(self.name + ".conf", conf)
        self.log_path = tmpfile(self.name + ".log")
        self.args = list(args)
        self.nofile = nofile
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
        if self.nofile:
            # The shell sets the limit and execs the daemon (same pid); no
            # preexec_fn, which is unsafe with the backends' threads.
            cmd = ["/bin/sh", "-c", 'ulimit -n %d && exec "$0" "$@"' % self.nofile] + cmd
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                env=self.env, start_new_session=True)
        finally:
            logf.close()
        _all_procs.append(self.proc)
        if self.scope == "case":
            _case_daemons.append(self)
            defer(self.stop)
        else:
            _file_daemons.append(self)
        if wait:
            for port in self.ports:
                self.wait_port(port)
        return self

    def wait_port(self, port, timeout=10):
        deadline = time.monotonic() + timeout
        while not port_open(port):
            if self.proc.poll() is not None:
                raise Failure("%s exited with status %d before listening on %d:\n%s"
                              % (self.name, self.proc.returncode, port, _tail(self.log(), 30)))
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
                              % (self.name, mark, _tail(log, 60)))

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
        with open(self.log_path, "wb") as logf:
            self.proc = popen([MOSQUITTO, "-c", self.conf], stdout=logf,
                              stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(self.log_path) as f:
                    raise Failure("mosquitto did not start:\n" + f.read())
            time.sleep(0.05)
        defer(self.stop)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
