"""soak_load: the soak's clients, each a seeded-random mix of behaviours run
by a few threads until a deadline.

Every client that speaks MQTT opens with a CONNECT whose client id tells
soak_backend what to do (echo, reset after N bytes, send G bytes and FIN).
Bytes are checked end to end: whatever comes back must be exactly what was
sent (echo) or generated (bfin).  A connection may be cut only for a reason
the soak caused: the backend killed while it was open (the backend epoch,
odd while it is down, moved), or a reset asked for.  A clean end with a
byte missing, a byte wrong, or a connection that hangs past every timeout
is a failure.  Every loop is bounded by the run's deadline or a count.
"""

import random
import select
import socket
import ssl
import struct
import threading
import time

import tp_clients
from tp_clients import TLS12, TLS13, TLSClient, client_context, client_hello
from tp_core import rst_close

# The soak closes each client itself; the tests' per-case cleanup list
# would otherwise keep every client of the run alive until the end.
tp_clients.defer = lambda fn, *args: None

CONNACK = b"\x20\x02\x00\x00"
IO_TIMEOUT = 10         # seconds a client waits for the proxy before it calls it stuck
CLOSE_GRACE = 10        # seconds past handshake_timeout for the proxy to drop a stalled client

# Behaviour: weight.
KINDS = {"clean": 35, "pipelined": 8, "idle": 5, "creset": 8, "breset": 8, "bfin": 8,
         "slowloris": 4, "garbage": 6, "noread": 5}
# Behaviours that never reach the backend: a backend restart excuses nothing.
NO_BACKEND = ("slowloris", "garbage")


def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_connect(client_id):
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid
    return b"\x10" + varint(len(body)) + body


def mqtt_publish(rnd):
    """A QoS 0 PUBLISH: mostly small, now and then up to 200 KB."""
    size = rnd.randint(1, 2000) if rnd.random() < 0.9 else rnd.randint(2000, 200000)
    body = b"\x00\x06soak/t" + rnd.randbytes(size)
    return b"\x30" + varint(len(body)) + body


class Tally:
    """Outcomes by behaviour, client-side handshakes, and failures."""

    MAX_KEPT = 50

    def __init__(self):
        self.lock = threading.Lock()
        self.outcomes = {}
        self.handshakes = {"full": 0, "resumed": 0}
        self.nfailures = 0
        self.failures = []
        self.bytes_checked = 0

    def outcome(self, kind, what):
        with self.lock:
            self.outcomes[(kind, what)] = self.outcomes.get((kind, what), 0) + 1

    def handshake(self, resumed):
        with self.lock:
            self.handshakes["resumed" if resumed else "full"] += 1

    def checked(self, n):
        with self.lock:
            self.bytes_checked += n

    def fail(self, kind, msg):
        with self.lock:
            self.nfailures += 1
            if len(self.failures) < self.MAX_KEPT:
                self.failures.append((time.monotonic(), kind, msg))
        self.outcome(kind, "FAILED")


class Chaos:
    """What the soak does to the backend, as the clients see it: the epoch
    is even while the backend is up and moves at every kill and start."""

    def __init__(self):
        self.epoch = 0
        self.burst = 0      # odd while a burst holds the daemon's descriptors


class Load:
    """${threads} client threads against 127.0.0.1:${port}, seeded from
    ${seed}, until ${deadline} (time.monotonic())."""

    def __init__(self, port, seed, deadline, chaos, handshake_timeout, threads=12):
        self.port = port
        self.seed = seed
        self.deadline = deadline
        self.chaos = chaos
        self.hs_timeout = handshake_timeout
        self.nthreads = threads
        self.tally = Tally()
        self.stop = threading.Event()
        self.threads = []
        self.ctx13 = client_context(TLS13)
        self.ctx12 = client_context(TLS12)
        self.ctx12_sid = client_context(TLS12)
        self.ctx12_sid.options |= ssl.OP_NO_TICKET
        self.hellos = [client_hello(TLS12), client_hello(TLS13)]

    def start(self):
        for i in range(self.nthreads):
            t = threading.Thread(target=self._run, args=(i,), daemon=True,
                                 name="soak-client-%d" % i)
            t.start()
            self.threads.append(t)

    def join(self, timeout):
        """join(timeout): stop and wait; the names of threads still running."""
        self.stop.set()
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, end - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]

    def running(self):
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def _run(self, i):
        rnd = random.Random("%s/%d" % (self.seed, i))
        sessions = {}
        kinds, weights = list(KINDS), list(KINDS.values())
        n = 0
        while self.running():
            kind = rnd.choices(kinds, weights)[0]
            n += 1
            e0, b0 = self.chaos.epoch, self.chaos.burst
            try:
                getattr(self, "_" + kind)(rnd, sessions, "%d.%d" % (i, n))
                self.tally.outcome(kind, "ok")
            except Exception as e:   # every client error is classified here
                self._classify(kind, e0, b0, e)

    def _classify(self, kind, e0, b0, err):
        if isinstance(err, Corrupt):
            self.tally.fail(kind, str(err))
        elif kind in NO_BACKEND:
            self.tally.fail(kind, "%s: %s" % (type(err).__name__, err))
        elif e0 % 2 == 1 or self.chaos.epoch != e0:
            self.tally.outcome(kind, "cut by a backend restart")
        elif isinstance(err, NotEstablished) and (b0 % 2 == 1 or self.chaos.burst != b0):
            self.tally.outcome(kind, "refused in an fd burst")
        else:
            self.tally.fail(kind, "%s: %s" % (type(err).__name__, err))

    # ------------------------------------------------------------ behaviours

    def _open(self, rnd, sessions):
        """A TLS client after its handshake, resuming now and then; the
        key its session is kept under once it has one."""
        which = rnd.choice(("t13", "t12t", "t12s"))
        ctx = {"t13": self.ctx13, "t12t": self.ctx12, "t12s": self.ctx12_sid}[which]
        offer = sessions.get(which) if rnd.random() < 0.7 else None
        try:
            c = TLSClient(self.port, ctx=ctx, session=offer, timeout=IO_TIMEOUT)
        except Exception as e:
            raise NotEstablished("%s: %s" % (type(e).__name__, e))
        self.tally.handshake(c.obj.session_reused)
        return c, which

    def _connect(self, rnd, sessions, mode):
        """A TLS client through CONNACK."""
        c, which = self._open(rnd, sessions)
        try:
            c.send(mqtt_connect(mode))
            ack = c.recv_exactly(len(CONNACK))
            if ack != CONNACK:
                raise Corrupt("CONNACK %r" % ack)
            # A TLS 1.3 ticket arrives after the handshake: read by now.
            if c.obj.session is not None:
                sessions[which] = c.obj.session
        except Corrupt:
            c.close()
            raise
        except Exception as e:
            c.close()
            raise NotEstablished("%s: %s" % (type(e).__name__, e))
        return c

    def _echo(self, c, rnd, count):
        for _ in range(count):
            pkt = mqtt_publish(rnd)
            c.send(pkt)
            got = c.recv_exactly(len(pkt))
            if got != pkt:
                raise Corrupt("echo of %d bytes differs" % len(pkt))
            self.tally.checked(len(pkt))

    def _clean(self, rnd, sessions, tag, idle=0.0):
        c = self._connect(rnd, sessions, "soak/echo/%s" % tag)
        try:
            if idle:
                time.sleep(idle)
            self._echo(c, rnd, rnd.randint(1, 20))
            # The end: close_notify or a bare FIN, with echoes still in
            # flight behind it (a half-close) or none.
            tail = b"".join(mqtt_publish(rnd) for _ in range(rnd.randint(0, 4)))
            if tail:
                c.send(tail)
            if rnd.random() < 0.5:
                c.close_notify()
            else:
                c.shutdown_wr()
            rest = c.recv_all()
            if rest != tail[:len(rest)]:
                raise Corrupt("echo after the half-close differs")
            if len(rest) != len(tail):
                raise Lost("%d of %d bytes echoed after the half-close"
                           % (len(rest), len(tail)))
            if not c.got_close_notify:
                raise Lost("no close_notify at the end")
            self.tally.checked(len(tail))
            c.wait_tcp_eof(IO_TIMEOUT)
        finally:
            c.close()

    def _pipelined(self, rnd, sessions, tag):
        """Everything at once right after the handshake, while the daemon
        may still be connecting to the backend: the CONNECT, publishes and
        close_notify.  The CONNACK and every publish must come back, then
        close_notify."""
        publishes = b"".join(mqtt_publish(rnd) for _ in range(rnd.randint(1, 8)))
        c, _ = self._open(rnd, sessions)
        try:
            # Read while sending: an echo that is not read stops the sender.
            got = bytearray()
            try:
                c.pump([mqtt_connect("soak/echo/%s" % tag) + publishes], got.extend,
                       timeout=3 * IO_TIMEOUT, close="notify")
            except Exception as e:
                if len(got) < len(CONNACK):
                    raise NotEstablished("%s: %s" % (type(e).__name__, e))
                raise
            got = bytes(got)
            want = CONNACK + publishes
            if got != want[:len(got)]:
                raise Corrupt("pipelined echo differs")
            if len(got) < len(CONNACK):
                raise NotEstablished("EOF after %d bytes of the CONNACK" % len(got))
            if len(got) != len(want) or not c.got_close_notify:
                raise Lost("%d of %d pipelined bytes echoed%s" % (
                    len(got) - len(CONNACK), len(publishes),
                    "" if c.got_close_notify else ", no close_notify"))
            self.tally.checked(len(publishes))
            c.wait_tcp_eof(IO_TIMEOUT)
        finally:
            c.close()

    def _idle(self, rnd, sessions, tag):
        self._clean(rnd, sessions, tag, idle=rnd.uniform(1, 6))

    def _creset(self, rnd, sessions, tag):
        c = self._connect(rnd, sessions, "soak/echo/%s" % tag)
        for _ in range(rnd.randint(0, 5)):
            c.send(mqtt_publish(rnd))
        rst_close(c.sock)

    def _breset(self, rnd, sessions, tag):
        limit = rnd.randint(1, 50000)
        c = self._connect(rnd, sessions, "soak/breset/%d/%s" % (limit, tag))
        try:
            sent, got = bytearray(), bytearray()
            # Bounded: the backend resets after ${limit} bytes.
            for _ in range(1000):
                pkt = mqtt_publish(rnd)
                try:
                    c.send(pkt)
                except OSError:
                    break
                sent += pkt
                data = c.recv(len(pkt))
                got += data
                if not data or len(sent) > limit + 65536:
                    break
            data = b"x"
            while data and len(got) <= len(sent):
                data = c.recv()
                got += data
            if bytes(got) != bytes(sent[:len(got)]):
                raise Corrupt("bytes before the backend's reset differ")
            self.tally.checked(len(got))
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            c.close()

    def _bfin(self, rnd, sessions, tag):
        size, seed = rnd.randint(0, 200000), rnd.randrange(1 << 30)
        c = self._connect(rnd, sessions, "soak/bfin/%d/%d/%s" % (size, seed, tag))
        try:
            want = random.Random(seed).randbytes(size)
            got = c.recv_all()
            if got != want[:len(got)]:
                raise Corrupt("bytes before the backend's FIN differ")
            if len(got) != size or not c.got_close_notify:
                raise Lost("%d of %d bytes before the backend's FIN%s" % (
                    len(got), size, "" if c.got_close_notify else ", no close_notify"))
            self.tally.checked(size)
            # The backend's FIN closed one direction only: ours still works.
            c.send(mqtt_publish(rnd))
            c.close_notify()
            c.wait_tcp_eof(IO_TIMEOUT)
        finally:
            c.close()

    def _noread(self, rnd, sessions, tag):
        c = self._connect(rnd, sessions, "soak/echo/%s" % tag)
        try:
            c.sock.settimeout(1)
            for _ in range(rnd.randint(10, 200)):
                c.send(mqtt_publish(rnd))
        except (TimeoutError, socket.timeout):
            pass        # the proxy stopped reading: backpressure works
        finally:
            time.sleep(rnd.uniform(0, 3))
            rst_close(c.sock)

    def _raw(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=IO_TIMEOUT)
        return s

    def _wait_dropped(self, s, kind, what, feed=None):
        """The proxy must drop ${s} within handshake_timeout + CLOSE_GRACE;
        ${feed}() is called between waits to trickle bytes."""
        end = time.monotonic() + self.hs_timeout + CLOSE_GRACE
        try:
            while time.monotonic() < end:
                r, _, _ = select.select([s], [], [], 0.5)
                if r and not s.recv(65536):
                    return
                if feed:
                    feed()
            raise Lost("%s still open after %s s" % (what, self.hs_timeout + CLOSE_GRACE))
        except ConnectionError:
            return
        finally:
            s.close()

    def _slowloris(self, rnd, sessions, tag):
        hello = rnd.choice(self.hellos)
        s = self._raw()
        pos = [0]

        def trickle():
            if pos[0] < len(hello) - 1:
                s.send(hello[pos[0]:pos[0] + 1])
                pos[0] += 1
        self._wait_dropped(s, "slowloris", "a ClientHello sent a byte at a time", trickle)

    def _garbage(self, rnd, sessions, tag):
        s = self._raw()
        junk = rnd.randbytes(rnd.randint(1, 4000))
        if rnd.random() < 0.3:
            junk = b"\x16\x03\x01" + junk      # a record header, then nonsense
        try:
            s.sendall(junk)
        except ConnectionError:
            s.close()
            return
        self._wait_dropped(s, "garbage", "a connection that sent garbage")


class Corrupt(Exception):
    """A byte came back different: a failure whatever else happened."""


class Lost(Exception):
    """A byte or a close missing: a failure unless the backend was restarted."""


class NotEstablished(Exception):
    """The client never got its CONNACK: refused, or cut in the handshake."""
