#!/usr/bin/env python3
"""The command line and configuration checking: -t, -V, -h, usage errors,
every config error reported as FILE:LINE: in one pass, exit 78 on a bad
config at startup without ever listening."""

import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLSPROXY, Daemon, case, cert, check, check_eq,  # noqa: E402
                   free_port, listener_conf, make_conf, run, tmpfile)

EX_USAGE, EX_CONFIG = 64, 78


def check_t(name, text, rc_want):
    """Write ${text} as NAME.conf, run -t on it; return (path, stderr)."""
    path = tmpfile(name + ".conf", text)
    rc, out, err = run([TLSPROXY, "-t", "-c", path], timeout=15)
    check_eq(rc, rc_want, "exit status of -t (stderr: %s)" % (err.strip()[-800:]))
    return path, err


def error_lines(path, err):
    """The stderr lines; each must name the file and a line number."""
    lines = [l for l in err.splitlines() if l.strip()]
    check(lines, "no error output")
    rx = re.compile(re.escape(path) + r":(\d+): ")
    summary = re.compile(re.escape(path) + r": (\d+) errors?$")
    bad = [l for l in lines if not rx.search(l) and not summary.search(l)]
    check(not bad, "lines without %s:LINE: :\n%s" % (path, "\n".join(bad)))
    errors = [l for l in lines if rx.search(l)]
    for l in lines:
        m = summary.search(l)
        if m:
            check_eq(int(m.group(1)), len(errors), "the count in '%s'" % l)
    return errors, sorted({int(rx.search(l).group(1)) for l in errors})


@case("-V prints 'tlsproxy VERSION' and exits 0")
def _():
    rc, out, err = run([TLSPROXY, "-V"])
    check_eq(rc, 0, "exit status")
    tplib.check_match(r"^tlsproxy \d+\.\d+", out + err, "-V output")


@case("-h prints the usage and exits 0")
def _():
    rc, out, err = run([TLSPROXY, "-h"])
    check_eq(rc, 0, "exit status")
    tplib.check_match(r"-c", out + err, "-h output")
    tplib.check_match(r"-t", out + err, "-h output")


@case("an unknown option exits 64 with a usage message")
def _():
    rc, out, err = run([TLSPROXY, "-Z"])
    check_eq(rc, EX_USAGE, "exit status")
    check(err.strip(), "nothing on stderr")
    rc, out, err = run([TLSPROXY, "-c"])
    check_eq(rc, EX_USAGE, "exit status of -c without a file")


@case("a stray argument exits 64")
def _():
    rc, out, err = run([TLSPROXY, "-t", "stray"])
    check_eq(rc, EX_USAGE, "exit status")


@case("-t on a good config exits 0 and does not listen")
def _():
    port = free_port()
    path, err = check_t("good", make_conf(listener_conf("mqtt", port, 1883,
                                                         client_ca=cert("ca.pem"),
                                                         verify_client="optional",
                                                         protocols=["TLSv1.2", "TLSv1.3"],
                                                         handshake_timeout="10s",
                                                         connect_timeout="5s",
                                                         idle_timeout="0",
                                                         max_connections=100000)), 0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # still free
    check(not re.search(r"(?i)error", err), "errors on a good config: %s" % err)


@case("-t reports every error of a config, each as FILE:LINE:, exit 78")
def _():
    text = "\n".join([
        'workers = 0;',                                 # 1
        'log_level = "loud";',                          # 2
        'shutdown_timeout = "30s";',                    # 3
        'session_cache = { size = 20480; timeout = "5m"; };',  # 4
        'tickets = { mode = "off"; };',                 # 5
        'bogus_setting = 1;',                           # 6
        'listeners = (',                                # 7
        '  { name = "mqtt";',                           # 8
        '    listen = "127.0.0.1:notaport";',           # 9
        '    backend = "127.0.0.1:1883";',              # 10
        '    cert = "%s";' % cert("server.pem"),        # 11
        '    key = "%s";' % cert("server.key"),         # 12
        '    verify_client = "maybe";',                 # 13
        '    handshake_timeout = "10 parsecs";',        # 14
        '  }',                                          # 15
        ');', ''])                                      # 16
    path, err = check_t("many-errors", text, EX_CONFIG)
    lines, numbers = error_lines(path, err)
    for n, setting in ((1, "workers"), (2, "log_level"), (6, "bogus_setting"),
                       (9, "listen"), (13, "verify_client"), (14, "handshake_timeout")):
        check(any(("%s:%d:" % (path, n)) in l and setting in l for l in lines),
              "no error for line %d (%s); got:\n%s" % (n, setting, err))
    check(set(numbers) <= {1, 2, 6, 7, 8, 9, 13, 14}, "errors for good lines: %s" % numbers)


@case("-t reports a syntax error as FILE:LINE:, exit 78")
def _():
    path, err = check_t("syntax", 'workers = 2;\nlog_level = "info"\nlisteners = (;\n', EX_CONFIG)
    lines, numbers = error_lines(path, err)
    check(numbers and numbers[0] in (2, 3), "syntax error line: %s" % numbers)


@case("-t on a missing file exits 78 and names it")
def _():
    path = os.path.join(tplib.tmpdir(), "no-such.conf")
    rc, out, err = run([TLSPROXY, "-t", "-c", path])
    check_eq(rc, EX_CONFIG, "exit status")
    check(path in err, "the error does not name %s: %s" % (path, err))


@case("-t: certificate and key that do not match -> 78 at FILE:LINE")
def _():
    port = free_port()
    text = make_conf(listener_conf("mqtt", port, 1883, cert_name=None,
                                   cert=cert("server.pem"), key=cert("client.key")))
    path, err = check_t("mismatch", text, EX_CONFIG)
    lines, numbers = error_lines(path, err)
    tplib.check_match(r"(?i)(match|mismatch|key)", err, "mismatch error")
    conf = open(path).read().splitlines()
    wanted = {i + 1 for i, l in enumerate(conf) if re.match(r"\s*(cert|key) =", l)}
    check(set(numbers) & wanted, "error lines %s are not the cert/key lines %s" % (numbers, wanted))


@case("-t: missing certificate, key and CA files -> 78, each at its line")
def _():
    port = free_port()
    missing = os.path.join(tplib.tmpdir(), "missing")
    text = make_conf(listener_conf("mqtt", port, 1883, cert_name=None,
                                   cert=missing + ".pem", key=missing + ".key",
                                   client_ca=missing + "-ca.pem", verify_client="require"))
    path, err = check_t("missing-files", text, EX_CONFIG)
    lines, numbers = error_lines(path, err)
    conf = open(path).read().splitlines()
    for setting in ("cert", "key", "client_ca"):
        n = [i + 1 for i, l in enumerate(conf) if l.strip().startswith(setting + " =")][0]
        check(n in numbers, "no error at line %d (%s): got\n%s" % (n, setting, err))


@case("-t: verify_client = require without client_ca -> 78")
def _():
    text = make_conf(listener_conf("mqtt", free_port(), 1883, verify_client="require"))
    path, err = check_t("require-no-ca", text, EX_CONFIG)
    error_lines(path, err)


@case("starting on an invalid config exits 78 and never listens")
def _():
    port = free_port()
    bad = make_conf(listener_conf("mqtt", port, 1883), workers=0)
    d = Daemon(bad, name="bad-start")
    d.start(wait=False)
    deadline = time.monotonic() + 10
    while d.alive() and time.monotonic() < deadline:
        check(not tplib.port_open(port), "listening on %d despite the bad config" % port)
        time.sleep(0.02)
    rc = d.wait_exit(1)
    check(rc is not None, "still running 10 s after start with a bad config")
    d.stop(expect=EX_CONFIG)
    tplib.check_match(re.escape(d.conf_path) + r":\d+: ", d.log(), "startup error")


@case("starting on a missing certificate exits 78 and never listens")
def _():
    port = free_port()
    bad = make_conf(listener_conf("mqtt", port, 1883, cert_name=None,
                                  cert=os.path.join(tplib.tmpdir(), "nope.pem"),
                                  key=cert("server.key")))
    d = Daemon(bad, name="bad-cert")
    d.start(wait=False)
    rc = d.wait_exit(10)
    check(rc is not None, "still running with a missing certificate")
    check(not tplib.port_open(port), "port %d open" % port)
    d.stop(expect=EX_CONFIG)


@case("-d starts the daemon with debug logging and it serves")
def _():
    backend = tplib.EchoBackend()
    port = free_port()
    d = Daemon(make_conf(listener_conf("mqtt", port, backend.port)), args=["-d"]).start()
    tplib.TLSClient(port).roundtrip(b"debug")
    d.wait_log(r"(?i)debug")


tplib.main()
