"""tp_backends: plain TCP backends for the daemon to relay to.

Each is a threaded server on 127.0.0.1 on an ephemeral port that records
what every connection received (Backend.Record), lives a bounded time and
is closed when the case ends.  The subclasses differ in what they send:
an echo, a greeting and a half-close, a reply after EOF, a reset, a
stream.
"""

import hashlib
import socket
import threading
import time

from tp_core import defer, pattern_chunks, wait_until


class Backend:
    """A threaded TCP server on 127.0.0.1:<ephemeral>; handle(conn, rec) per
    connection in a daemon thread.  Lives at most ${lifetime} seconds and is
    closed when the case ends.  .conns lists one Record per connection."""

    class Record:
        def __init__(self, peer):
            self.peer = peer
            self.accepted = time.monotonic()     # when accept() returned it
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

    def echo_to_eof(self, conn, rec):
        """echo_to_eof(conn, rec): send back everything read, then FIN at EOF."""
        while True:
            data = self.read_some(conn, rec)
            if not data:
                break
            conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)

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
        self.echo_to_eof(conn, rec)


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


def full_accept_queue():
    """A listening socket whose accept queue is full, so that the kernel
    drops further SYNs and a connect to it stays in progress; returns
    (listening socket, the connection filling its queue)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    defer(lsock.close)
    filler = socket.create_connection(lsock.getsockname(), timeout=5)
    defer(filler.close)
    return lsock, filler
