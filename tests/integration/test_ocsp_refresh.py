#!/usr/bin/env python3
"""tlsproxy-ocsp-refresh against a real OCSP responder on 127.0.0.1
(`openssl ocsp` over a CA made with `openssl ca`, see tp_ocsp): certificates
whose Authority Information Access names it, responses fetched, verified,
installed by rename and tlsproxy reloaded once; a responder that replays
the same response changes nothing and reloads nothing; a responder that is
down, a revoked certificate, a response signed by the wrong key, a
certificate without responder URL or issuer each keep the old file and
fail, naming why; a delegated responder is accepted.  Without arguments,
the pairs come from the daemon's --list-ocsp, and the reloaded daemon
staples what was fetched."""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLSPROXY, Daemon, EchoBackend, OcspCA, case, certificates_conf,  # noqa: E402
                   check, check_eq, check_match, file_state, free_port, listener_conf,
                   make_conf, run, s_client_status, tmpdir, tmpfile)

SCRIPT = os.environ.get("TLSPROXY_OCSP_REFRESH") or os.path.join(
    os.path.dirname(tplib.TLSPROXY), "scripts", "tlsproxy-ocsp-refresh")
if not os.path.exists(SCRIPT):
    tplib.skip_all("no %s (run make)" % SCRIPT)


class Setup:
    """A CA, its responder, server certificates a and b, and a file that
    counts the reloads."""

    def __init__(self, tag, **responder):
        self.ca = OcspCA(tag)
        self.certs = {}
        for name in ("a", "b"):
            self.certs[name], _key = self.ca.issue(name)
        self.responder = self.ca.responder(**responder)
        self.reloads = tmpfile(tag + "-reloads.txt", "")

    def resp(self, name):
        return os.path.join(self.ca.dir, name + ".ocsp")

    def refresh(self, *names, args=(), want_rc=None):
        """Run the script for the pairs of ${names}; returns (rc, out, err)."""
        pairs = []
        for name in names:
            pairs += [self.certs[name], self.resp(name)]
        cmd = ["sh", SCRIPT, "-t", "10", "-r", "echo reload >> '%s'" % self.reloads]
        rc, out, err = run(cmd + list(args) + pairs, timeout=120,
                           env=dict(os.environ, TMPDIR=tmpdir()))
        if want_rc is not None:
            check_eq(rc, want_rc, "exit status\nstdout: %s\nstderr: %s" % (out, err))
        return rc, out, err

    def reload_count(self):
        with open(self.reloads) as f:
            return len(f.read().splitlines())


def no_leftovers(directory):
    """Nothing of the script is left: no temporary response next to the
    real ones, no working directory in TMPDIR."""
    left = [f for f in os.listdir(directory) if f.startswith(".")]
    check(not left, "left in %s: %s" % (directory, left))
    left = [f for f in os.listdir(tmpdir()) if f.startswith("tlsproxy-ocsp.")]
    check(not left, "left in TMPDIR: %s" % left)


@case("two certificates: responses fetched, verified, installed, one reload")
def _():
    s = Setup("fetch")
    rc, out, err = s.refresh("a", "b", want_rc=0)
    for name in ("a", "b"):
        check_eq(s.ca.status(name, s.resp(name)), "good", "the installed response for " + name)
        check_match(r"^%s: installed a new %s \(next update .*GMT\)$"
                    % (s.certs[name], s.resp(name)), out, "the script's output")
        check_eq(file_state(s.resp(name))[2], 0o644, "mode of a first response")
    check_eq(s.responder.requests, 2, "requests the responder served")
    check_eq(s.reload_count(), 1, "reloads")
    check_eq(err, "", "stderr")
    no_leftovers(s.ca.dir)


@case("a responder that signs afresh: the new response is installed again, with a reload")
def _():
    s = Setup("afresh")
    s.refresh("a", want_rc=0)
    os.chmod(s.resp("a"), 0o640)
    before = file_state(s.resp("a"))
    rc, out, _err = s.refresh("a", want_rc=0)
    after = file_state(s.resp("a"))
    check(after[0] != before[0], "the response was not replaced")
    check(after[1] != before[1], "replaced in place, not renamed over")
    check_eq(after[2], 0o640, "mode kept from the old file")
    check_eq(s.ca.status("a", s.resp("a")), "good", "the new response")
    check_eq(s.reload_count(), 2, "reloads after two runs")


@case("a responder that replays its response: unchanged, no reload, exit 0")
def _():
    s = Setup("replay", replay=True)
    s.refresh("a", "b", want_rc=0)
    before = file_state(s.resp("a")), file_state(s.resp("b"))
    rc, out, _err = s.refresh("a", "b", want_rc=0)
    check_eq((file_state(s.resp("a")), file_state(s.resp("b"))), before, "files after a replay")
    check_match(r"^%s: %s unchanged \(next update " % (s.certs["a"], s.resp("a")), out, "output")
    check_eq(s.responder.requests, 4, "requests the responder served")
    check_eq(s.reload_count(), 1, "reloads: the first run's only")


@case("a responder that is down: the old file is kept, no reload, exit 1")
def _():
    s = Setup("down")
    s.refresh("a", want_rc=0)
    before = file_state(s.resp("a"))
    s.responder.stop()
    rc, _out, err = s.refresh("a", args=("-t", "2"), want_rc=1)
    check_match(r"^tlsproxy-ocsp-refresh: %s: fetching from %s failed; keeping %s: "
                % (s.certs["a"], s.ca.url, s.resp("a")), err, "stderr")
    check_match(r"1 of 1 failed", err, "stderr")
    check_eq(file_state(s.resp("a")), before, "the old response")
    check_eq(s.reload_count(), 1, "reloads: the first run's only")
    no_leftovers(s.ca.dir)


@case("a revoked certificate: its old response kept, the other installed, one reload, exit 1")
def _():
    s = Setup("revoked")
    s.refresh("a", "b", want_rc=0)
    before = file_state(s.resp("b"))
    s.ca.revoke("b")
    rc, out, err = s.refresh("a", "b", want_rc=1)
    check_match(r"^tlsproxy-ocsp-refresh: %s: %s answered \"revoked\", not a good response"
                % (s.certs["b"], s.ca.url), err, "stderr")
    check_eq(file_state(s.resp("b")), before, "b's old response")
    check_eq(s.ca.status("b", s.resp("b")), "good", "b's old response")
    check_match(r"^%s: installed a new " % s.certs["a"], out, "a refreshed")
    check_eq(s.reload_count(), 2, "reloads: one per run that installed")


@case("a response signed by a key the issuer did not delegate to: refused, old file kept")
def _():
    s = Setup("forged")
    s.refresh("a", want_rc=0)
    before = file_state(s.resp("a"))
    other = OcspCA("forged-other")
    # Another CA; and a certificate of the same CA without OCSPSigning.
    for signer in ((other.pem, other.key), (s.ca.path("b.pem"), s.ca.path("b.key"))):
        s.responder.stop()
        s.responder = s.ca.responder(signer=signer)
        rc, _out, err = s.refresh("a", want_rc=1)
        check_match(r"fetching from %s failed; keeping %s: .*Response Verify Failure"
                    % (s.ca.url, s.resp("a")), err, "stderr with %s signing" % signer[0])
        check_eq(file_state(s.resp("a")), before, "the old response")
    check_eq(s.reload_count(), 1, "reloads")


@case("a delegated responder (OCSPSigning, issued by the CA): accepted")
def _():
    ca = OcspCA("delegated")
    cert, _key = ca.issue("a")
    ca.issue("responder", extensions="responder")
    ca.responder(signer=(ca.path("responder.pem"), ca.path("responder.key")))
    resp = ca.path("a.ocsp")
    run(["sh", SCRIPT, "-n", cert, resp], timeout=120, check_rc=0)
    check_eq(ca.status("a", resp), "good", "the installed response")


@case("no responder URL, no issuer in the file, no certificate: each fails with its reason")
def _():
    ca = OcspCA("broken")
    no_aia, _key = ca.issue("plain", extensions="server_no_aia")
    leaf_only = ca.path("a.pem")
    ca.issue("a")
    resp = ca.path("x.ocsp")
    missing = os.path.join(ca.dir, "missing.pem")
    rc, _out, err = run(["sh", SCRIPT, "-n", no_aia, resp, leaf_only, resp, missing, resp],
                        timeout=60)
    check_eq(rc, 1, "exit status\n" + err)
    check_match(r"%s: the certificate names no OCSP responder" % no_aia, err, "stderr")
    check_match(r"%s: the issuer \(CN=broken\) is not in the file after the leaf" % leaf_only,
                err, "stderr")
    check_match(r"%s: cannot read the certificate file" % missing, err, "stderr")
    check_match(r"3 of 3 failed", err, "stderr")
    check(not os.path.exists(resp), "a response file was made")


@case("usage errors exit 64 before any fetch")
def _():
    for args in (["only-one"], ["-t", "soon", "a", "b"], ["-x"]):
        rc, _out, err = run(["sh", SCRIPT] + args, timeout=30)
        check_eq(rc, 64, "exit status of %s\n%s" % (args, err))


@case("no arguments: the pairs of tlsproxy --list-ocsp; the daemon reloaded staples the new one")
def _():
    s = Setup("listed")
    backend = EchoBackend()
    port = free_port()
    entries = certificates_conf((s.certs["a"], s.ca.path("a.key"), s.resp("a"), None),
                                (s.certs["b"], s.ca.path("b.key"), None, ["b.example"]))
    d = Daemon(make_conf(listener_conf("mqtt", port, backend.port, cert_name=None,
                                       extra=entries))).start()
    d.wait_log(r"certificates\[0\]\.ocsp_response: %s: cannot open the file" % s.resp("a"), 5)
    check_eq(s_client_status(port, s.ca.pem)[0], "", "stapled before the refresh")
    mark = d.mark()
    rc, out, err = run(["sh", SCRIPT, "-t", "10", "-c", d.conf_path, "-r",
                        "kill -HUP %d" % d.pid], timeout=120,
                       env=dict(os.environ, TLSPROXY=TLSPROXY, TMPDIR=tmpdir()))
    check_eq(rc, 0, "exit status\n%s%s" % (out, err))
    check_eq(s.responder.requests, 1, "requests: certificate b has no ocsp_response")
    d.wait_log(r"reload: configuration from .* in force", 5, since=mark)
    time.sleep(0.3)     # every worker picks the new services up
    check_match(r"Cert Status: good", s_client_status(port, s.ca.pem)[0], "stapled")


tplib.main()
