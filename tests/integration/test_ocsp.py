#!/usr/bin/env python3
"""OCSP stapling (a certificate's ocsp_response) against the real daemon,
with responses made by `openssl ocsp` as the CA's responder (tp_ocsp):
`openssl s_client -status` gets the good response stapled, TLS 1.2 and
1.3; an expired, revoked or foreign response is not stapled, with a
warning naming FILE:LINE and the setting (at start, by -t and on SIGHUP);
SIGHUP picks a new file up; two certificates chosen by SNI staple their
own; the metrics give each certificate's notAfter and its staple's
nextUpdate."""

import calendar
import os
import re
import shutil
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (OPENSSL, TLSPROXY, Daemon, EchoBackend, OcspCA, case, check,  # noqa: E402
                   certificates_conf, check_eq, check_match, free_port, make_conf,
                   metric_value, run, s_client_status, scrape_metrics)

FAKETIME = shutil.which("faketime")


class Setup:
    """A CA with a server certificate "server", a response file for it
    made by ${make_response}(ca, path) (by default the responder's good
    one), and a daemon whose listener staples it, with metrics; ${more}
    certificate entries after it."""

    def __init__(self, tag, make_response=None, more=()):
        self.ca = OcspCA(tag)
        self.chain, self.key = self.ca.issue("server")
        self.resp = self.ca.path("server.ocsp")
        if make_response:
            make_response(self.ca, self.resp)
        else:
            self.good(self.resp)
        self.backend = EchoBackend()
        self.port, self.mport = free_port(), free_port()
        self.entries = [(self.chain, self.key, self.resp, None)] + list(more)
        self.conf = make_conf(tplib.listener_conf(
            "mqtt", self.port, self.backend.port, cert_name=None,
            extra=certificates_conf(*self.entries)),
            extra='metrics = "127.0.0.1:%d";' % self.mport)
        self.d = Daemon(self.conf).start()

    def good(self, out):
        return self.ca.response("server", out)

    def reload(self):
        mark = self.d.mark()
        self.d.signal(signal.SIGHUP)
        self.d.wait_log(r"reload: (configuration from .* in force|refused)|reload refused", 5,
                        since=mark)
        time.sleep(0.3)     # every worker picks the new services up
        return mark

    def refused_on_reload(self, why):
        """SIGHUP; the response is refused with ${why} (a regex) and not stapled."""
        mark = self.reload()
        self.d.wait_log(warning_re(self, why), 5, since=mark)
        check_eq(s_client_status(self.port, self.ca.pem)[0], "", "stapled after the reload")


def expired_response(ca, name, out):
    """A response for ${name} made by the responder two hours ago, valid for
    an hour: past its nextUpdate now."""
    if not FAKETIME:
        raise tplib.Skip("faketime is not installed (apt-get install faketime)")
    reqout = ca.path(name + ".req")
    ca.openssl("ocsp", "-issuer", ca.pem, "-cert", ca.path(name + ".pem"), "-no_nonce",
               "-reqout", reqout)
    run([FAKETIME, "-f", "-2h", OPENSSL, "ocsp", "-index", ca.path("index.txt"), "-CA", ca.pem,
         "-rsigner", ca.pem, "-rkey", ca.key, "-reqin", reqout, "-respout", out,
         "-nmin", "60"], timeout=30, check_rc=0)
    return out


def next_update(ca, name, resp):
    """The nextUpdate of ${resp}, as `openssl ocsp` prints it, in epoch seconds."""
    rc, out, err = run([OPENSSL, "ocsp", "-respin", resp, "-issuer", ca.pem, "-cert",
                        ca.path(name + ".pem"), "-CAfile", ca.pem], timeout=30, check_rc=0)
    m = check_match(r"Next Update: (\w+ +\d+ \d+:\d+:\d+ \d+) GMT", out, "openssl ocsp")
    return calendar.timegm(time.strptime(m.group(1), "%b %d %H:%M:%S %Y"))


def not_after(pem):
    rc, out, _err = run([OPENSSL, "x509", "-in", pem, "-noout", "-enddate"], check_rc=0)
    return calendar.timegm(time.strptime(out.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y GMT"))


def serial_of(pem):
    rc, out, _err = run([OPENSSL, "x509", "-in", pem, "-noout", "-serial"], check_rc=0)
    return out.strip().split("=", 1)[1]


def warning_re(s, why):
    """The warning for ${s}'s refused response: FILE:LINE, setting, file, why."""
    return (r"warning: %s:\d+: certificates\[0\]\.ocsp_response: %s: .*%s.*; the certificate "
            r"is served without a staple" % (re.escape(s.d.conf_path), re.escape(s.resp), why))


@case("s_client -status: the good response stapled, TLS 1.2 and 1.3; none unasked")
def _():
    s = Setup("good")
    for version in ("-tls1_2", "-tls1_3"):
        text, _all = s_client_status(s.port, s.ca.pem, version)
        check_match(r"OCSP Response Status: successful \(0x0\)", text, "stapled " + version)
        check_match(r"Cert Status: good", text, "stapled " + version)
        check_match(r"Serial Number: %s" % serial_of(s.ca.path("server.pem")), text,
                    "the certificate the response is about")
    s_client_status(s.port, s.ca.pem, ask=False)


@case("an expired response: not stapled, a warning with FILE:LINE and setting, -t says it")
def _():
    s = Setup("expired", make_response=lambda ca, out: expired_response(ca, "server", out))
    s.d.wait_log(warning_re(s, r"expired: its nextUpdate .* has passed"), 5)
    text, _all = s_client_status(s.port, s.ca.pem)
    check_eq(text, "", "what is stapled")
    rc, _out, err = run([TLSPROXY, "-t", "-c", s.d.conf_path])
    check_eq(rc, 0, "tlsproxy -t: a refused response is no configuration error\n" + err)
    check_match(warning_re(s, "expired: its nextUpdate"), err, "tlsproxy -t")
    body = scrape_metrics(s.mport)
    check_eq(metric_value(body, "tlsproxy_ocsp_next_update_timestamp_seconds", listener="mqtt",
                          certificate=s.chain), 0.0, "nextUpdate metric with nothing stapled")


@case("SIGHUP re-reads the file: a good one is stapled, then a revoked one is not")
def _():
    s = Setup("reload", make_response=lambda ca, out: open(out, "wb").close())
    s.d.wait_log(warning_re(s, r"the file is empty"), 5)
    check_eq(s_client_status(s.port, s.ca.pem)[0], "", "stapled before the reload")
    # As the refresh script does: a new file renamed over the old one.
    s.good(s.resp + ".new")
    os.rename(s.resp + ".new", s.resp)
    mark = s.reload()
    check(not re.search(r"ocsp_response", s.d.log_since(mark)), "a warning for a good response")
    check_match(r"Cert Status: good", s_client_status(s.port, s.ca.pem)[0],
                "stapled after the reload")
    s.ca.revoke("server")
    s.good(s.resp)
    s.refused_on_reload(r"the certificate is revoked \(since .*reason")


@case("a forged response, another CA's, another certificate's: not stapled, with the reason")
def _():
    other = OcspCA("foreign-other")
    other.issue("server")
    # Our certificate's CertID, signed by another CA's key.
    s = Setup("foreign", make_response=lambda ca, out: ca.response(
        "server", out, signer=(other.pem, other.key)))
    s.d.wait_log(warning_re(s, r"not signed by the certificate's issuer CN=foreign nor by an "
                            r"OCSP responder it delegated"), 5)
    check_eq(s_client_status(s.port, s.ca.pem)[0], "", "stapled")
    # The other CA's good response for its own certificate; ours for a sibling.
    s.ca.issue("sibling")
    for make in (lambda: other.response("server", s.resp),
                 lambda: s.ca.response("sibling", s.resp)):
        make()
        s.refused_on_reload(r"not a response for this certificate")


@case("two certificates by SNI: each staples its own response")
def _():
    ca_b = OcspCA("sni-b")
    chain_b, key_b = ca_b.issue("server")
    resp_b = ca_b.response("server", ca_b.path("server.ocsp"))
    s = Setup("sni-a", more=[(chain_b, key_b, resp_b, ["b.example"])])
    for name, ca in (("localhost", s.ca), ("b.example", ca_b)):
        text, _all = s_client_status(s.port, ca.pem, servername=name)
        check_match(r"Cert Status: good", text, "stapled for " + name)
        check_match(r"Serial Number: %s" % serial_of(ca.path("server.pem")), text,
                    "the response stapled for " + name)
        check_match(r"Responder Id: CN = %s" % ca.name, text, "the responder for " + name)


@case("metrics: each certificate's notAfter, the stapled response's nextUpdate")
def _():
    ca_b = OcspCA("metrics-b")
    chain_b, key_b = ca_b.issue("server")
    s = Setup("metrics", more=[(chain_b, key_b, None, ["b.example"])])
    body = scrape_metrics(s.mport)
    for chain, pem in ((s.chain, s.ca.path("server.pem")), (chain_b, ca_b.path("server.pem"))):
        check_eq(metric_value(body, "tlsproxy_certificate_not_after_timestamp_seconds",
                              listener="mqtt", certificate=chain), float(not_after(pem)),
                 "notAfter of " + chain)
    check_eq(metric_value(body, "tlsproxy_ocsp_next_update_timestamp_seconds", listener="mqtt",
                          certificate=s.chain), float(next_update(s.ca, "server", s.resp)),
             "nextUpdate of the stapled response")
    check_eq(metric_value(body, "tlsproxy_ocsp_next_update_timestamp_seconds", listener="mqtt",
                          certificate=chain_b), None, "a series for a certificate without "
             "ocsp_response")
    check_match(r"^# TYPE tlsproxy_ocsp_next_update_timestamp_seconds gauge$", body, "metrics")


tplib.main()
