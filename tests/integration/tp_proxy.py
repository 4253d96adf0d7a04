"""tp_proxy: the PROXY protocol as a backend sees it, for the tests of
proxy_protocol and of routes.

An independent parser (versions 1 and 2, every TLV, the SSL sub-TLVs and
CRC32C, from haproxy.org's proxy-protocol.txt), a backend that records the
header its connections start with and echoes the rest (ProxyBackend), and
a real parser: Debian's HAProxy in `mode tcp` with `accept-proxy` in front
of an echo server, logging what it read (HAProxy).
"""

import ipaddress
import os
import re
import shutil
import socket
import struct

from tp_backends import Backend
from tp_core import (Failure, Skip, check, check_eq, free_port, run, start_server,
                     stop_process, tmpfile, wait_until)

# ---------------------------------------------------------------- the parser

V2_SIG = b"\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"
V1_MAX = 107

PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_NOOP = 0x04
PP2_TYPE_UNIQUE_ID = 0x05
PP2_TYPE_SSL = 0x20
PP2_SUBTYPE_SSL_VERSION = 0x21
PP2_SUBTYPE_SSL_CN = 0x22
PP2_SUBTYPE_SSL_CIPHER = 0x23
PP2_SUBTYPE_SSL_SIG_ALG = 0x24
PP2_SUBTYPE_SSL_KEY_ALG = 0x25
PP2_TYPE_NETNS = 0x30
TLSPROXY_CLIENT_CERT = 0xE0

PP2_CLIENT_SSL = 0x01
PP2_CLIENT_CERT_CONN = 0x02
PP2_CLIENT_CERT_SESS = 0x04


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli, reflected, as RFC 4960 appendix B)."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283
assert crc32c(bytes(32)) == 0x8A9136AA


def header_length(buf):
    """The length of the PROXY header that ${buf} starts with: 0 if it
    starts with something else, None if more bytes are needed to tell."""
    if buf[:12] == V2_SIG:
        if len(buf) < 16:
            return None
        return 16 + struct.unpack(">H", bytes(buf[14:16]))[0]
    if len(buf) < 12 and V2_SIG.startswith(bytes(buf)):
        return None
    if buf[:6] == b"PROXY ":
        end = buf.find(b"\r\n")
        if end >= 0:
            return end + 2
        return None if len(buf) < V1_MAX else 0
    if b"PROXY ".startswith(bytes(buf)):
        return None
    return 0


def parse_v1(h):
    """parse_v1(h): a version 1 line as a dict; fails on anything the
    specification does not allow."""
    check(h.endswith(b"\r\n"), "v1 header does not end in CRLF: %r" % h)
    check(len(h) <= V1_MAX, "v1 header longer than %d bytes: %r" % (V1_MAX, h))
    check(b"\r" not in h[:-2] and b"\n" not in h[:-2], "stray CR/LF in %r" % h)
    words = h[:-2].decode("ascii").split(" ")
    check_eq(words[0], "PROXY", "v1 first word")
    if words[1] == "UNKNOWN":
        return {"version": 1, "proto": "UNKNOWN"}
    check(len(words) == 6, "v1 header has %d words: %r" % (len(words), h))
    proto, src, dst, sport, dport = words[1:]
    check(proto in ("TCP4", "TCP6"), "v1 protocol %r" % proto)
    cls = ipaddress.IPv4Address if proto == "TCP4" else ipaddress.IPv6Address
    for a in (src, dst):
        try:
            cls(a)
        except ValueError:
            raise Failure("v1 address %r is not %s" % (a, proto))
    for p in (sport, dport):
        check(re.fullmatch(r"0|[1-9][0-9]{0,4}", p) and int(p) <= 65535,
              "v1 port %r" % p)
    return {"version": 1, "proto": proto, "src": src, "dst": dst,
            "sport": int(sport), "dport": int(dport)}


def parse_tlvs(data, what):
    """parse_tlvs(data): [(type, value, offset of value)] covering all of
    ${data} exactly."""
    out, off = [], 0
    while off < len(data):
        check(off + 3 <= len(data), "%s: truncated TLV header at %d" % (what, off))
        t = data[off]
        n = struct.unpack(">H", data[off + 1:off + 3])[0]
        check(off + 3 + n <= len(data), "%s: TLV 0x%02x of %d bytes runs past the end"
              % (what, t, n))
        out.append((t, data[off + 3:off + 3 + n], off + 3))
        off += 3 + n
    return out


def parse_v2(h):
    """parse_v2(h): a version 2 header as a dict, with its TLVs, the SSL TLV
    broken down and the CRC32C checked; fails on anything malformed."""
    check(len(h) >= 16, "v2 header of %d bytes" % len(h))
    check_eq(h[:12], V2_SIG, "v2 signature")
    check_eq(h[12], 0x21, "v2 version/command byte (version 2, PROXY)")
    fam = h[13]
    length = struct.unpack(">H", h[14:16])[0]
    check_eq(len(h), 16 + length, "v2 header length")
    r = {"version": 2, "family": fam}
    if fam == 0x11:
        check(length >= 12, "TCP4 address block")
        r.update(proto="TCP4", src=socket.inet_ntop(socket.AF_INET, h[16:20]),
                 dst=socket.inet_ntop(socket.AF_INET, h[20:24]),
                 sport=struct.unpack(">H", h[24:26])[0],
                 dport=struct.unpack(">H", h[26:28])[0])
        tlv_start = 28
    elif fam == 0x21:
        check(length >= 36, "TCP6 address block")
        r.update(proto="TCP6", src=socket.inet_ntop(socket.AF_INET6, h[16:32]),
                 dst=socket.inet_ntop(socket.AF_INET6, h[32:48]),
                 sport=struct.unpack(">H", h[48:50])[0],
                 dport=struct.unpack(">H", h[50:52])[0])
        tlv_start = 52
    elif fam == 0x00:
        r["proto"] = "UNSPEC"
        tlv_start = 16
    else:
        raise Failure("v2 family/transport byte 0x%02x" % fam)
    tlvs = parse_tlvs(h[tlv_start:], "v2 TLVs")
    r["tlvs"] = [(t, v) for t, v, _ in tlvs]
    types = [t for t, _, _ in tlvs]
    for t in set(types):
        check(types.count(t) == 1, "TLV 0x%02x appears %d times" % (t, types.count(t)))
    r["by_type"] = dict((t, v) for t, v, _ in tlvs)
    # CRC32C: over the whole header with the field zeroed.
    r["crc_ok"] = None
    for t, v, off in tlvs:
        if t == PP2_TYPE_CRC32C:
            check_eq(len(v), 4, "CRC32C TLV length")
            at = tlv_start + off
            zeroed = h[:at] + b"\0\0\0\0" + h[at + 4:]
            r["crc"] = struct.unpack(">I", v)[0]
            r["crc_ok"] = crc32c(zeroed) == r["crc"]
    if PP2_TYPE_UNIQUE_ID in r["by_type"]:
        check(len(r["by_type"][PP2_TYPE_UNIQUE_ID]) <= 128, "UNIQUE_ID over 128 bytes")
    ssl_v = r["by_type"].get(PP2_TYPE_SSL)
    if ssl_v is not None:
        check(len(ssl_v) >= 5, "SSL TLV of %d bytes" % len(ssl_v))
        subs = parse_tlvs(ssl_v[5:], "SSL sub-TLVs")
        st = [t for t, _, _ in subs]
        for t in set(st):
            check(st.count(t) == 1, "SSL sub-TLV 0x%02x appears %d times" % (t, st.count(t)))
        r["ssl"] = {"client": ssl_v[0], "verify": struct.unpack(">I", ssl_v[1:5])[0],
                    "sub": dict((t, v) for t, v, _ in subs)}
    return r


def parse(h):
    return parse_v2(h) if h[:12] == V2_SIG else parse_v1(h)


def text(v):
    return v.decode("utf-8") if v is not None else None


# ---------------------------------------------------------------- the backend


class ProxyBackend(Backend):
    """Records the PROXY header its connections start with (rec.header,
    b"" when there is none), then echoes everything after it."""

    def handle(self, conn, rec):
        buf = bytearray()
        while True:
            n = header_length(buf)
            if n is not None and len(buf) >= n:
                break
            data = self.read_some(conn, rec)
            if not data:
                rec.header = bytes(buf)
                rec.incomplete = True
                return
            buf += data
        rec.header = bytes(buf[:n])
        rec.incomplete = False
        if len(buf) > n:
            conn.sendall(bytes(buf[n:]))
        self.echo_to_eof(conn, rec)

    def header(self, i=-1, timeout=10):
        """header(i): the parsed header of connection ${i} (the latest by
        default), once it has arrived."""
        def ready():
            with self.lock:
                conns = list(self.conns)
            if not conns or (i >= 0 and len(conns) <= i):
                return None
            rec = conns[i]
            return rec if hasattr(rec, "header") else None
        rec = wait_until(ready, timeout, "a PROXY header at the backend")
        check(not rec.incomplete, "the connection closed within the header: %r" % rec.header)
        check(rec.header, "no PROXY header; the backend got %r first" % bytes(rec.received[:60]))
        check_eq(bytes(rec.received[:len(rec.header)]), rec.header, "first bytes")
        return parse(rec.header), rec


# ---------------------------------------------------------------- HAProxy


def haproxy_binary():
    """The haproxy command; Skip naming the package when it is missing."""
    exe = shutil.which("haproxy", path=os.environ.get("PATH", "") + ":/usr/sbin")
    if exe is None:
        raise Skip("haproxy is not installed (apt-get install haproxy, or run ./bootstrap "
                   "as root)")
    return exe


class HAProxy:
    """haproxy -db in mode tcp: accept-proxy on a free port in front of
    ${echo_port}, logging one "PPLOG ..." line per connection to stdout.
    Where HAProxy can fetch a TLV by type (fc_pp_tlv, 2.9 and newer), the
    line also has alpn= (the PP2_TYPE_ALPN TLV) and .reads_alpn is True.
    Killed when the case ends."""

    FIELDS = ('ci=%ci cp=%cp fi=%fi fp=%fp dst=%[dst]:%[dst_port] '
              'rcvd=%[fc_rcvd_proxy] authority=%[fc_pp_authority] '
              'uid=%[fc_pp_unique_id] bytes=%B')

    def __init__(self, echo_port):
        exe = haproxy_binary()
        self.port = free_port()
        self.conf = tmpfile("haproxy-%d.cfg" % self.port, self.config(echo_port, True))
        rc, out, err = run([exe, "-c", "-f", self.conf])
        self.reads_alpn = rc == 0
        if not self.reads_alpn:
            self.conf = tmpfile("haproxy-%d.cfg" % self.port, self.config(echo_port, False))
            rc, out, err = run([exe, "-c", "-f", self.conf])
        check_eq(rc, 0, "haproxy -c:\n%s%s" % (out, err))
        self.log_path = tmpfile("haproxy-%d.log" % self.port)
        self.proc = start_server([exe, "-db", "-f", self.conf], self.port,
                                 self.log_path, "haproxy")

    def config(self, echo_port, alpn):
        fields = self.FIELDS + (" alpn=%[fc_pp_tlv(0x01)]" if alpn else "")
        return "\n".join([
            "global",
            "    log stdout format raw local0",
            "    maxconn 100",
            "defaults",
            "    mode tcp",
            "    log global",
            "    option dontlognull",
            "    timeout connect 5s",
            "    timeout client 30s",
            "    timeout server 30s",
            "frontend pp",
            "    bind 127.0.0.1:%d accept-proxy" % self.port,
            '    log-format "PPLOG %s"' % fields,
            "    default_backend echo",
            "backend echo",
            "    server echo 127.0.0.1:%d" % echo_port,
            ""])

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_line(self, sport, timeout=10):
        """The PPLOG line of the connection from client port ${sport}."""
        rx = re.compile(r"^PPLOG ci=(\S+) cp=%d .*$" % sport, re.M)
        m = wait_until(lambda: rx.search(self.log()), timeout,
                       "haproxy's log line for client port %d" % sport)
        return dict(kv.split("=", 1) for kv in m.group(0).split()[1:])

    def stop(self):
        stop_process(self.proc, "haproxy")
