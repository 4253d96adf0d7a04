#!/usr/bin/env python3
"""Routes: a listener's connections sent to a backend of their own by the
protocol ALPN negotiated and/or the client's server name, with real
clients (Python ssl, openssl s_client) and the real daemon.

Every backend greets with its own name, so each case reads where a
connection went from its first bytes: a route by alpn, by sni, by both;
the first route that matches wins; no match goes to the listener's
backend.  A route with proxy_protocol = "v2" under a listener without one
sends a PROXY v2 header carrying the ALPN TLV (parsed here, and read by
HAProxy's accept-proxy).  A route's backend_max_connecting holds back its
own connects only.  SIGHUP moves a route to another backend for new
connections and leaves open ones be; a route that did not change keeps
its counters.  The log line and the metrics name the protocol and the
route; tlsproxy -t reports bad routes with FILE:LINE."""

import os
import re
import signal
import socket
import sys
import time
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLSPROXY, Daemon, EchoBackend, TLSClient, case, check,  # noqa: E402
                   check_eq, client_context, diag, free_port, full_accept_queue,
                   listener_conf, make_conf, run, s_client, tmpfile, wait_until)
from tp_proxy import PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, HAProxy, ProxyBackend  # noqa: E402

EX_CONFIG = 78
ALPN = ["mqtt", "x-http", "h2"]


def backend(name):
    """An echo backend that says ${name} first, so a client knows where it went."""
    b = EchoBackend(greeting=b"[%s]" % name.encode())
    b.name = name
    return b


def route(backend_addr, alpn=None, sni=None, **settings):
    """One route group; ${backend_addr} is a backend object, a port or host:port."""
    if hasattr(backend_addr, "addr"):
        backend_addr = backend_addr.addr
    elif isinstance(backend_addr, int):
        backend_addr = "127.0.0.1:%d" % backend_addr
    parts = []
    if alpn is not None:
        parts.append('alpn = "%s";' % alpn)
    if sni is not None:
        parts.append('sni = "%s";' % sni)
    parts.append('backend = "%s";' % backend_addr)
    for k, v in settings.items():
        parts.append("%s = %s;" % (k, tplib.conf_value(v)))
    return "{ %s }" % " ".join(parts)


def conf(port, default, routes, alpn=ALPN, metrics=None, **settings):
    extra = "routes = ( %s );" % ", ".join(routes) if routes else ""
    return make_conf(listener_conf("edge", port, default.port, extra=extra, alpn=alpn,
                                   **settings),
                     extra='metrics = "127.0.0.1:%d";' % metrics if metrics else "")


def node(default, routes, **kw):
    port = free_port()
    d = Daemon(conf(port, default, routes, **kw)).start()
    d.port = port
    return d


def reached(port, alpn=None, sni="localhost"):
    """Connect offering ${alpn} (a list, or None) with server name ${sni}
    (None: no SNI); returns (the backend's greeting, the protocol
    negotiated, the client) after a round trip."""
    ctx = client_context(check_hostname=False)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    c = TLSClient(port, ctx=ctx, host=sni)
    greeting = c.recv()
    m = re.fullmatch(rb"\[([^\]]*)\]", greeting)
    check(m, "a backend greeting, got %r" % greeting)
    c.roundtrip(b"ping")
    return m.group(1).decode(), c.obj.selected_alpn_protocol(), c


def goes(port, want, alpn=None, sni="localhost", what=""):
    got, proto, c = reached(port, alpn, sni)
    check_eq(got, want, "backend for alpn %r sni %r %s" % (alpn, sni, what))
    c.close()
    return proto


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        return r.read().decode()


def series(text, name, **labels):
    """The value of the series ${name} with exactly ${labels}; None if absent."""
    want = ",".join('%s="%s"' % kv for kv in labels.items())
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(want)), text, re.M)
    return float(m.group(1)) if m else None


def route_counts(d):
    """{index: {counter: n}} from the routes' SIGUSR1 lines."""
    mark = d.mark()
    d.signal(signal.SIGUSR1)
    # The routes' lines come after the stats line: wait for the first whole
    # one, then give any others a moment to follow.
    d.wait_log(r"listener edge: routes\[0\] [^\n]*waiting=\d+\n", 5, since=mark)
    time.sleep(0.1)
    out = {}
    for m in re.finditer(r"listener edge: routes\[(\d+)\] \S+: ([^\n]*)\n", d.log_since(mark)):
        out[int(m.group(1))] = dict((k, int(v)) for k, v in
                                    (kv.split("=") for kv in m.group(2).split()))
    return out


@case("a route by alpn reaches its own backend; the log line names the protocol and "
      "the route; another protocol, or none, goes to the listener's backend")
def _():
    default, mqtt = backend("default"), backend("mqtt")
    d = node(default, [route(mqtt, alpn="mqtt")])
    mark = d.mark()
    check_eq(goes(d.port, "mqtt", ["mqtt"]), "mqtt", "negotiated")
    d.wait_log(r"edge 127\.0\.0\.1:\d+: TLSv1\.3 \S+ full handshake, alpn mqtt, "
               r"routes\[0\] backend 127\.0\.0\.1:%d\n" % mqtt.port, since=mark)
    check_eq(goes(d.port, "default", ["x-http"]), "x-http", "negotiated")
    d.wait_log(r"full handshake, alpn x-http\n", since=mark)
    check_eq(goes(d.port, "default", None), None, "negotiated without ALPN")
    check_eq(goes(d.port, "default", ["spdy/1"]), None, "negotiated with nothing in common")
    check(not re.search(r"alpn x-http, routes", d.log_since(mark)), "x-http logged as routed")
    check_eq((mqtt.count(), default.count()), (1, 3), "connections (route, listener)")


@case("a route by sni (exact and wildcard, any case), by alpn and sni together; "
      "the first route that matches wins; no match goes to the listener's backend")
def _():
    names = ["default", "both", "mqtt", "wild", "http", "late"]
    b = dict((n, backend(n)) for n in names)
    d = node(b["default"], [
        route(b["both"], alpn="mqtt", sni="iot.example.test"),
        route(b["mqtt"], alpn="mqtt"),
        route(b["wild"], sni="*.web.example.test"),
        route(b["http"], alpn="x-http"),
        route(b["late"], alpn="x-http", sni="late.example.test")])
    for alpn, sni, want in (
            (["mqtt"], "iot.example.test", "both"),
            (["mqtt"], "IoT.Example.Test", "both"),
            (["mqtt"], "other.example.test", "mqtt"),
            (["mqtt"], None, "mqtt"),
            (["x-http"], "a.web.example.test", "wild"),
            (None, "a.web.example.test", "wild"),
            (["mqtt"], "a.web.example.test", "mqtt"),
            (["x-http"], "late.example.test", "http"),
            (["h2"], "a.b.web.example.test", "default"),
            (["h2"], "web.example.test", "default"),
            (None, None, "default"),
            (["h2", "mqtt"], "iot.example.test", "both")):
        goes(d.port, want, alpn, sni)
    check_eq(b["late"].count(), 0, "a route behind one that takes all it would")


@case('`openssl s_client -alpn mqtt` negotiates mqtt, and a route with proxy_protocol '
      '"v2" under a listener without one sends a PROXY v2 header with the ALPN TLV '
      "\"mqtt\" (the listener's backend gets none)")
def _():
    default, capture = backend("default"), ProxyBackend()
    d = node(default, [route(capture, alpn="mqtt", proxy_protocol="v2")])
    rc, out = s_client(d.port, ["-alpn", "mqtt"], input=b"hello mqtt")
    check_eq(rc, 0, "s_client:\n" + out[-800:])
    check(re.search(r"^ALPN protocol: mqtt$", out, re.M), "negotiated:\n" + out[-800:])
    h, rec = capture.header()
    check_eq(h["version"], 2, "PROXY version")
    check_eq(h["crc_ok"], True, "CRC32C")
    check_eq(h["by_type"].get(PP2_TYPE_ALPN), b"mqtt", "PP2_TYPE_ALPN")
    check_eq(h["by_type"].get(PP2_TYPE_AUTHORITY), b"localhost", "PP2_TYPE_AUTHORITY")
    wait_until(lambda: bytes(rec.received[len(rec.header):]) == b"hello mqtt", 5,
               "the client's bytes after the header")
    check_eq(goes(d.port, "default", ["x-http"]), "x-http", "negotiated")
    check_eq(bytes(default.conns[0].received), b"ping", "the listener's backend got no header")
    # The addresses too: the client's, and the listener's (the route's own header).
    ctx = client_context()
    ctx.set_alpn_protocols(["mqtt"])
    c = TLSClient(d.port, ctx=ctx)
    c.roundtrip(b"addresses")
    h, _ = capture.header(1)
    check_eq((h["src"], h["sport"], h["dst"], h["dport"]),
             c.sock.getsockname()[:2] + ("127.0.0.1", d.port), "addresses in the header")


@case("HAProxy accept-proxy reads the route's PROXY v2 header with the ALPN TLV: the "
      "client's address and port, and the ALPN where it can show TLVs (2.9 and newer)")
def _():
    echo = EchoBackend()
    hap = HAProxy(echo.port)
    d = node(backend("default"), [route(hap.port, alpn="mqtt", proxy_protocol="v2")])
    ctx = client_context()
    ctx.set_alpn_protocols(["mqtt"])
    c = TLSClient(d.port, ctx=ctx)
    c.roundtrip(b"through haproxy")
    src, sport = c.sock.getsockname()[:2]
    c.close_notify()
    c.recv_all()
    f = hap.wait_line(sport)
    check_eq((f["ci"], f["cp"], f["rcvd"]), (src, str(sport), "1"),
             "haproxy's %ci %cp fc_rcvd_proxy")
    check_eq(f["authority"], "localhost", "haproxy's fc_pp_authority")
    if hap.reads_alpn:
        check_eq(f["alpn"], "mqtt", "haproxy's fc_pp_tlv(0x01)")
    else:
        diag("this HAProxy has no fc_pp_tlv (2.9 and newer): the ALPN TLV is accepted "
             "with the header, not shown")


@case("route pacing: backend_max_connecting = 1 on a route whose backend does not "
      "accept holds back the route's second connect only; the listener's backend "
      "connects at once; metrics and SIGUSR1 show the route's queue, which moves on "
      "once the first connect fails")
def _():
    lsock, _filler = full_accept_queue()
    stuck = "127.0.0.1:%d" % lsock.getsockname()[1]
    default = backend("default")
    mport = free_port()
    # Without connect_retry: a failed connect ends its client, and the next
    # in the queue begins.
    d = node(default, [route(stuck, alpn="mqtt", backend_max_connecting=1)],
             metrics=mport, connect_timeout="20s", connect_retry=False)
    ctx = client_context()
    ctx.set_alpn_protocols(["mqtt"])
    held = [TLSClient(d.port, ctx=ctx) for _ in range(2)]
    wait_until(lambda: series(scrape(mport), "tlsproxy_route_backend_connects_waiting",
                              listener="edge", route="0", backend=stuck) == 1, 10,
               "one connect waiting in the route's queue")
    for i in range(3):
        check_eq(goes(d.port, "default", ["x-http"], what="(while the route is full)"),
                 "x-http", "negotiated")
    text = scrape(mport)
    check_eq(series(text, "tlsproxy_route_backend_connects_deferred_total", listener="edge",
                    route="0", backend=stuck), 1.0, "route deferred")
    check_eq(series(text, "tlsproxy_backend_connects_deferred_total", listener="edge"), 1.0,
             "the listener's deferred (its routes' included)")
    check_eq(series(text, "tlsproxy_backend_connects_waiting", listener="edge"), 0.0,
             "the listener's own queue")
    check_eq(series(text, "tlsproxy_route_connections_total", listener="edge", route="0",
                    backend=stuck), 2.0, "connections that took the route")
    counts = route_counts(d)
    check_eq((counts[0]["waiting"], counts[0]["connections"], counts[0]["backend_deferred"]),
             (1, 2, 1), "SIGUSR1 routes[0] line")
    # The backend goes away: the connect in flight fails (refused at its
    # next SYN), which lets the waiting one begin, and fail at once.
    lsock.close()
    wait_until(lambda: route_counts(d)[0]["backend_failed"] == 2, 15,
               "both of the route's connects failed, one after the other")
    check_eq(route_counts(d)[0]["waiting"], 0, "the route's queue at the end")
    for c in held:
        check_eq(c.recv(), b"", "a client of the failed backend closed")


@case("SIGHUP keeps an unchanged route's pacer: raising its backend_max_connecting "
      "from 1 to 2 lets the connect waiting in its queue begin, and its counts go on")
def _():
    lsock, _filler = full_accept_queue()
    stuck = "127.0.0.1:%d" % lsock.getsockname()[1]
    default, port = backend("default"), free_port()

    def text(n):
        return conf(port, default, [route(stuck, alpn="mqtt", backend_max_connecting=n)],
                    connect_timeout="20s", connect_retry=False)
    d = Daemon(text(1)).start()
    ctx = client_context()
    ctx.set_alpn_protocols(["mqtt"])
    held = [TLSClient(port, ctx=ctx) for _ in range(2)]
    wait_until(lambda: route_counts(d)[0]["waiting"] == 1, 10, "one connect waiting")
    d.write_conf(text(2))
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload: configuration from .* in force", since=mark)
    wait_until(lambda: route_counts(d)[0]["waiting"] == 0, 10,
               "the waiting connect begun under the new limit")
    counts = route_counts(d)
    check_eq((counts[0]["connections"], counts[0]["backend_deferred"]), (2, 1),
             "the route's counts after the reload")
    lsock.close()
    wait_until(lambda: route_counts(d)[0]["backend_failed"] == 2, 15,
               "both connects, in flight at once, failed")
    for c in held:
        check_eq(c.recv(), b"", "a client of the failed backend closed")


@case("metrics: handshakes by ALPN protocol, one series per protocol the listener "
      "offers and one for none; the routes' series; a client's protocol not offered "
      "makes no series")
def _():
    default, mqtt = backend("default"), backend("mqtt")
    mport = free_port()
    d = node(default, [route(mqtt, alpn="mqtt")], metrics=mport)
    for offer in (["mqtt"], ["mqtt"], ["x-http"], None, ["made-up"]):
        goes(d.port, "mqtt" if offer == ["mqtt"] else "default", offer)
    text = scrape(mport)
    for proto, n in (("mqtt", 2), ("x-http", 1), ("h2", 0), ("none", 2)):
        check_eq(series(text, "tlsproxy_handshakes_by_alpn_total", listener="edge",
                        alpn=proto), float(n), "handshakes with alpn %s" % proto)
    check(not re.search(r'alpn="made-up"', text), "a client's protocol became a label")
    labels = dict(listener="edge", route="0", backend=mqtt.addr)
    check_eq(series(text, "tlsproxy_route_connections_total", **labels), 2.0, "route")
    check_eq(series(text, "tlsproxy_route_backend_connect_failures_total", **labels), 0.0,
             "route failures")
    check_eq(series(text, "tlsproxy_route_backend_connect_wait_seconds_count", **labels),
             0.0, "route wait histogram")
    check_eq(d.counters()[0]["alpn_none"], 2, "SIGUSR1 alpn_none")
    mark = d.mark()
    d.signal(signal.SIGUSR1)
    d.wait_log(r"listener edge: alpn mqtt=2 x-http=1 h2=0 none=2\n", 5, since=mark)


@case("a route's backend that refuses: logged with the route's backend, counted for "
      "the route and the listener")
def _():
    dead = free_port()
    mport = free_port()
    d = node(backend("default"), [route(dead, alpn="mqtt")], metrics=mport)
    mark = d.mark()
    ctx = client_context()
    ctx.set_alpn_protocols(["mqtt"])
    c = TLSClient(d.port, ctx=ctx)
    check_eq(c.recv(), b"", "the client's connection ends")
    d.wait_log(r"edge 127\.0\.0\.1:\d+: backend 127\.0\.0\.1:%d: " % dead, since=mark)
    text = scrape(mport)
    check_eq(series(text, "tlsproxy_route_backend_connect_failures_total", listener="edge",
                    route="0", backend="127.0.0.1:%d" % dead), 1.0, "route failures")
    check_eq(series(text, "tlsproxy_backend_connect_failures_total", listener="edge"), 1.0,
             "listener failures")


@case("SIGHUP moving a route to another backend: new connections go to the new one, "
      "an open connection goes on with the old one; an unchanged route keeps its "
      "counters, a moved one starts afresh")
def _():
    default, old, new, web = (backend(n) for n in ("default", "old", "new", "web"))
    port = free_port()
    routes = [route(web, sni="*.web.example.test"), route(old, alpn="mqtt")]
    d = Daemon(conf(port, default, routes)).start()
    goes(port, "web", ["x-http"], "a.web.example.test")
    got, _, held = reached(port, ["mqtt"])
    check_eq(got, "old", "before the reload")
    before = route_counts(d)
    check_eq((before[0]["connections"], before[1]["connections"]), (1, 1), "before")
    d.write_conf(conf(port, default, [route(web, sni="*.web.example.test"),
                                      route(new, alpn="mqtt")]))
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload: configuration from .* in force", since=mark)
    goes(port, "new", ["mqtt"], what="after the reload")
    goes(port, "web", ["mqtt"], "b.web.example.test", "after the reload")
    held.roundtrip(b"still here after the reload")
    check_eq(bytes(old.conns[0].received), b"ping" + b"still here after the reload",
             "the old backend got the open connection's bytes")
    after = route_counts(d)
    check_eq(after[0]["connections"], 2, "the unchanged route's count goes on")
    check_eq(after[1]["connections"], 1, "the moved route counts afresh")
    held.close_notify()
    check_eq(held.recv_all(), b"", "the open connection closes cleanly")


@case("-t: a route whose alpn the listener does not offer, one with neither alpn nor "
      "sni, one without a backend: each FILE:LINE, exit 78")
def _():
    text = make_conf(listener_conf("edge", free_port(), 1883, alpn=["mqtt"], extra=(
        "routes = (\n"
        '      { alpn = "x-http"; backend = "127.0.0.1:8080"; },\n'
        '      { backend = "127.0.0.1:8081"; },\n'
        '      { alpn = "mqtt"; }\n'
        "    );")))
    path = tmpfile("bad-routes.conf", text)
    lines = text.split("\n")

    def line_of(needle):
        return 1 + next(i for i, t in enumerate(lines) if needle in t)
    rc, out, err = run([TLSPROXY, "-t", "-c", path], timeout=15)
    out += err
    check_eq(rc, EX_CONFIG, "exit status:\n" + out)
    for n, (needle, msg) in enumerate((
            ('"x-http"', r'alpn: "x-http" is not in the listener\'s alpn'),
            ('8081', r'alpn: a route needs alpn, sni or both'),
            ('{ alpn = "mqtt"; }', r'backend: missing required setting'))):
        rx = r"%s:%d: listeners\[0\]\.routes\[%d\]\.%s" % (re.escape(path), line_of(needle),
                                                           n, msg)
        check(re.search(rx, out), "no /%s/ in:\n%s" % (rx, out))


tplib.main()
