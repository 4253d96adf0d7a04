#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets (but ticket_keys, whose seeds
the target writes itself: FUZZ_SEEDS_DIR=dir tests/fuzz/fuzz_ticket_keys).

    python3 tests/fuzz/seeds.py tests/fuzz/corpus

ClientHellos are real ones, from Python's ssl (OpenSSL) over memory BIOs:
TLS 1.2 and 1.3, with and without SNI and ALPN, and resuming a session
(ticket, PSK, session ID) got from a full handshake with a throw-away
certificate made by the openssl command.
"""
import os
import ssl
import struct
import subprocess
import sys
import tempfile


def write(root, target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pump(client, server, cin, cout, sin, sout):
    """Run a handshake between two SSLObjects until both are done."""
    for _ in range(20):
        done = 0
        for obj in (client, server):
            try:
                obj.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
        sin.write(cout.read())
        cin.write(sout.read())
        if done == 2:
            return
    raise RuntimeError("the seed handshake did not finish")


def hello(cctx, host=None, session=None):
    """The first flight of a client of ${cctx}."""
    cin, cout = ssl.MemoryBIO(), ssl.MemoryBIO()
    c = cctx.wrap_bio(cin, cout, server_hostname=host, session=session)
    try:
        c.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return cout.read()


def session_of(cctx, sctx, host):
    """A session from a full handshake, after reading the server's tickets."""
    cin, cout, sin, sout = (ssl.MemoryBIO() for _ in range(4))
    c = cctx.wrap_bio(cin, cout, server_hostname=host)
    s = sctx.wrap_bio(sin, sout, server_side=True)
    pump(c, s, cin, cout, sin, sout)
    s.write(b"x")
    cin.write(sout.read())
    c.read(1)
    return c.session


def client_hellos(tmp):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                    os.path.join(tmp, "k.pem"), "-out", os.path.join(tmp, "c.pem"),
                    "-subj", "/CN=localhost", "-days", "1"],
                   check=True, capture_output=True)
    out = {}
    for version in ("tls12", "tls13"):
        v = ssl.TLSVersion.TLSv1_2 if version == "tls12" else ssl.TLSVersion.TLSv1_3
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem"))
        sctx.maximum_version = v
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cctx.check_hostname = False
        cctx.verify_mode = ssl.CERT_NONE
        cctx.maximum_version = v
        out[version + "-plain"] = hello(cctx)
        out[version + "-sni"] = hello(cctx, "mqtt.example.com")
        cctx.set_alpn_protocols(["mqtt", "x-amzn-mqtt-ca"])
        out[version + "-alpn"] = hello(cctx, "localhost")
        out[version + "-sni-wild"] = hello(cctx, "x.b.example")
        out[version + "-resume"] = hello(cctx, "localhost",
                                         session_of(cctx, sctx, "localhost"))
        if version == "tls12":
            sctx.options |= ssl.OP_NO_TICKET
            cctx.options |= ssl.OP_NO_TICKET
            out[version + "-session-id"] = hello(cctx, "localhost",
                                                 session_of(cctx, sctx, "localhost"))
    return out


CONFIGS = {
    "minimal": """tickets = { seed_file = "@DIR@/ticket.seed"; };
listeners = ( { name = "mqtt"; listen = "0.0.0.0:8883"; backend = "127.0.0.1:1883";
  cert = "@DIR@/server.pem"; key = "@DIR@/server.key"; } );
""",
    "every-setting": """user = "nobody"; group = "nogroup"; workers = 2; log_level = "debug";
shutdown_timeout = "30s"; session_cache_size = 1000; session_cache_timeout = "5m";
metrics = "127.0.0.1:9100";
tickets = { mode = "stateless"; seed = "0123456789abcdef0123456789abcdef";
  previous_seed_file = "@DIR@/ticket.seed"; rotation_interval = "1h";
  decrypt_grace = "12h"; session_lifetime = "12h"; tls13_tickets = 2; };
listeners = (
  { name = "mqtt"; listen = "[::1]:8883"; backend = "broker.example:1883";
    cert = "@DIR@/server.pem"; key = "@DIR@/server.key"; client_ca = "@DIR@/ca.pem";
    verify_client = "optional"; protocols = [ "TLSv1.2", "TLSv1.3" ];
    ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256"; ciphersuites = "TLS_AES_128_GCM_SHA256";
    handshake_timeout = "10s"; connect_timeout = 5; idle_timeout = "1d";
    max_connections = 100000; proxy_protocol = "v2"; proxy_protocol_client_cert = true;
    full_handshake_rate = 500; full_handshake_burst = 1000;
    backend_connect_rate = 200; backend_max_connecting = 64; },
  { name = "second"; listen = "127.0.0.1:8884"; backend = "127.0.0.1:1884";
    cert = "@DIR@/server.pem"; key = "@DIR@/server.key"; proxy_protocol = "v1"; }
);
""",
    "sni-alpn-routes": """tickets = { seed_file = "@DIR@/ticket.seed"; };
listeners = ( { name = "mqtt"; listen = "0.0.0.0:443"; backend = "127.0.0.1:1883";
  certificates = ( { cert = "@DIR@/server.pem"; key = "@DIR@/server.key"; },
    { cert = "@DIR@/server.pem"; names = [ "a.example", "*.b.example" ];
      ocsp_response = "@DIR@/a.ocsp"; } );
  sni_strict = false; alpn = [ "mqtt", "http/1.1" ]; alpn_required = true;
  routes = ( { alpn = "http/1.1"; backend = "127.0.0.1:8080"; proxy_protocol = "v2"; },
    { sni = "*.b.example"; backend = "[::1]:1884"; backend_connect_rate = 10; } ); } );
""",
    "stateful": """tickets = { mode = "stateful"; tls13_tickets = 1; };
listeners = ( { name = "a"; listen = "127.0.0.1:1"; backend = "127.0.0.1:2";
  cert = "@DIR@/server.pem"; key = "@DIR@/ca.key"; } );
""",
    "include": """@include "@DIR@/seed.conf"
workers = 1;
""",
    "errors": """tickets = { mode = "sometimes"; seed = "short"; seed_file = "/nonexistent"; };
listeners = ( { name = 5; listen = "*:8883"; backend = "10.0.0.256:1"; bogus = 1; } );
unknown = [ 1, 2 ];
""",
    "duration-1": "90s",
    "duration-2": "2147483647",
    "duration-3": "24855d",
    "address-1": "[::ffff:1.2.3.4]:65535",
    "address-2": "broker-1.example.com:1883",
    "address-3": "127.0.0.1:8883",
    "seed-crlf": "0123456789abcdef0123456789abcdef\r\n",
}

METRICS = {
    "get": b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "head": b"HEAD /metrics HTTP/1.0\r\n\r\n",
    "not-found": b"GET /other?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
    "post": b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    "pipelined": b"GET /metrics HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"
                 b"GET /metrics HTTP/1.1\r\n\r\n",
    "chunked": b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "absolute": b"GET http://127.0.0.1:9100/metrics HTTP/1.1\r\n\r\n",
}


def proxy_header_seeds():
    """Inputs in fuzz_proxy_header's layout (see its LLVMFuzzerTestOneInput)."""
    def s(b):
        return bytes([len(b)]) + b

    def long(b):
        return struct.pack(">H", len(b)) + b

    details = (b"\x00" + s(b"mqtt.example.com") + s(b"TLSv1.3") + s(b"device1") +
               s(b"TLS_AES_128_GCM_SHA256") + s(b"ecdsa-with-SHA256") + s(b"EC256") +
               s(b"mqtt") + s(b"\x01" * 16) + long(b"\x30\x82" + b"\x00" * 300))
    v4 = bytes([4]) + bytes([10, 0, 0, 1]) + b"\x04\xd2" + bytes([4]) + bytes(
        [127, 0, 0, 1]) + b"\x22\xb3"
    v6 = bytes([16]) + bytes(range(16)) + b"\x04\xd2" + bytes([16]) + bytes(
        range(16, 32)) + b"\x22\xb3"
    return {
        "v4-cert": bytes([0x30]) + b"\x02\x00" + v4 + details,
        "v6-nocert": bytes([0x05]) + b"\x01\x00" + v6 + details,
        "mixed": bytes([0x04]) + b"\x00\x40" + v4 + details,
        "small-buffer": bytes([0x20]) + b"\x00\x20" + v4 + details,
        "unix": bytes([0x0a]) + b"\x10\x00" + details,
        "tls-v2": bytes([0xf0]) + b"\x02\x00" + v4 + b"\x02\x00\x00" + long(b"device1") + b"\x01",
        "tls-v1": bytes([0x70]) + b"\x01\x00" + v4 + b"\x02\x00\x00" + long(b"device1") + b"\x00",
        "tls-v2-long-cn": bytes([0xf0]) + b"\x02\x00" + v4 + b"\x08\x00\x01" + long(
            "é".encode("latin-1") * 200) + b"\x01",
    }


def main():
    root = sys.argv[1]
    for name, text in CONFIGS.items():
        write(root, "config", name, text.encode())
    for name, data in METRICS.items():
        write(root, "metrics", name, data)
    for name, data in proxy_header_seeds().items():
        write(root, "proxy_header", name, data)
    with tempfile.TemporaryDirectory() as tmp:
        hellos = client_hellos(tmp)
    for name, data in hellos.items():
        for tls13 in (0, 1):
            write(root, "client_hello", "%s-%d" % (name, tls13), bytes([tls13]) + data)
        for listener in range(5):
            write(root, "handshake", "%s-%d" % (name, listener),
                  bytes([listener]) + struct.pack(">H", len(data)) + data)
        cut = len(data) // 2
        write(root, "handshake", name + "-split",
              b"\x00" + struct.pack(">H", cut) + data[:cut] +
              struct.pack(">H", len(data) - cut) + data[cut:])


if __name__ == "__main__":
    main()
