"""tp_clients: TLS clients driven by the tests.

TLSClient runs Python's ssl over memory BIOs on a plain socket, so that a
test can do each part of a close alone (close_notify, FIN, RST) and pump
both directions at once; s_client and s_client_tls12 run `openssl
s_client`; client_hello() gives the bytes of a real ClientHello.
"""

import re
import select
import socket
import ssl
import time

from tp_core import OPENSSL, Failure, cert, check, check_eq, defer, rst_close, run


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
