#!/usr/bin/env python3
"""Several certificates on one listener, chosen by SNI, and ALPN, with real
clients (openssl s_client, Python ssl) against the real daemon: each name
gets its certificate (exact names, a wildcard for one label, the SAN names
or a names setting), an ECDSA and an RSA certificate for the same names
are chosen by what the client supports, no SNI or an unknown name gets the
first entry or, with sni_strict, a refusal; a session made under one
certificate does not resume under another; -t reports a key of another
certificate, two entries claiming a name with one key type, and a
certificate about to expire.  ALPN: the server's order wins, alpn_required
refuses a client that offers nothing or nothing in common."""

import os
import re
import ssl
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import (TLS12, TLS13, TLSPROXY, Daemon, EchoBackend, TLSClient, case,  # noqa: E402
                   cert, check, check_eq, client_context, free_port, listener_conf,
                   make_conf, run, s_client, tmpdir, tmpfile)
from tp_core import OPENSSL  # noqa: E402

SEED = "tlsproxy-sni-test-seed-0123456789abcdef"


def entry(name, names=None, key=None):
    e = 'cert = "%s"; key = "%s";' % (cert(name + ".pem"), cert((key or name) + ".key"))
    if names is not None:
        e += " names = [ %s ];" % ", ".join('"%s"' % n for n in names)
    return "{ %s }" % e


def certificates(*entries):
    return "certificates = ( %s );" % ", ".join(entries)


ALL = certificates(entry("server"), entry("sni-a"), entry("sni-b"), entry("sni-b-rsa"))


def node(backend, certs=ALL, tickets='mode = "stateless"; seed = "%s";' % SEED, **settings):
    port = free_port()
    d = Daemon(make_conf(listener_conf("mqtt", port, backend.port, cert_name=None,
                                       extra=certs, **settings), tickets=tickets)).start()
    d.port = port
    return d


def served(port, servername=None, args=()):
    """(subject CN, key type, output) of what s_client is served; (None, None,
    output) if the handshake fails."""
    cmd = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile",
           cert("ca.pem"), "-verify_return_error", "-brief"]
    cmd += ["-servername", servername] if servername else ["-noservername"]
    rc, out, err = run(cmd + list(args), input=b"", timeout=15)
    text = out + err
    if rc != 0 or "CONNECTION ESTABLISHED" not in text:
        return None, None, text
    cn = re.search(r"^Peer certificate: .*CN\s*=\s*([^,\n]+)", text, re.M)
    kind = re.search(r"^(?:Peer )?[Ss]ignature type: (\S+)", text, re.M)
    # OpenSSL 3.0 prints "ECDSA" or "RSA-PSS", 3.5 "ecdsa_secp256r1_sha256".
    kind = kind.group(1).lower() if kind else "?"
    kind = "ECDSA" if "ecdsa" in kind else "RSA" if "rsa" in kind else kind
    return (cn.group(1).strip() if cn else "?", kind, text)


@case("SNI picks each certificate: exact names, a wildcard for one label only, the "
      "default (first entry) without SNI or for an unknown name")
def _():
    d = node(EchoBackend())
    for name, want in (("a.example.test", "a.example.test"),
                       ("x.wild.example.test", "a.example.test"),
                       ("A.Example.Test", "a.example.test"),
                       ("b.example.test", "b.example.test"),
                       ("localhost", "localhost"),
                       ("a.b.wild.example.test", "localhost"),
                       ("wild.example.test", "localhost"),
                       ("unknown.example.test", "localhost"),
                       (None, "localhost")):
        cn, _, out = served(d.port, name, ["-verify_hostname", name] if name and
                            want != "localhost" else [])
        check_eq(cn, want, "certificate for server name %r:\n%s" % (name, out[-600:]))


@case("ECDSA and RSA certificates for the same names: each client gets the one it "
      "supports (TLS 1.3 and TLS 1.2)")
def _():
    d = node(EchoBackend())
    for version in ("-tls1_3", "-tls1_2"):
        cn, kind, out = served(d.port, "b.example.test", [version])
        check_eq((cn, kind), ("b.example.test", "ECDSA"), "default %s:\n%s" % (version, out))
        cn, kind, out = served(d.port, "b.example.test", [
            version, "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256"])
        check_eq(cn, "b.example.test", "RSA-only client %s" % version)
        check(kind == "RSA", "an RSA-only client %s got %s:\n%s"
              % (version, kind, out))


@case("names = [ ... ] overrides the certificate's SAN names")
def _():
    d = node(EchoBackend(), certs=certificates(entry("server"),
                                               entry("sni-a", names=["mqtt.example.test"])))
    check_eq(served(d.port, "mqtt.example.test")[0], "a.example.test", "listed name")
    check_eq(served(d.port, "a.example.test")[0], "localhost", "a SAN name not listed")
    check(re.search(r"names: the certificate .*sni-a\.pem is not valid for "
                    r"\"mqtt\.example\.test\"; clients that check", d.log()),
          "no warning about a name the certificate does not cover:\n" + d.log())


@case("sni_strict = true: no SNI and an unknown name are refused with "
      "unrecognized_name; a known name is served")
def _():
    d = node(EchoBackend(), sni_strict=True)
    for name in (None, "unknown.example.test"):
        cn, _, out = served(d.port, name)
        check_eq(cn, None, "server name %r served" % name)
        check(re.search(r"unrecognized name", out), "no unrecognized_name alert:\n" + out)
    check_eq(served(d.port, "b.example.test")[0], "b.example.test", "a known name")
    check(d.alive(), "daemon died")


def connect(port, ctx, host, session=None):
    c = TLSClient(port, ctx=ctx, host=host, session=session, timeout=5)
    c.roundtrip(b"ping")
    return c.obj.session_reused, c.obj.session


@case("a session made under one certificate does not resume under another "
      "(TLS 1.3 and TLS 1.2 tickets): counted as a policy refusal; the same name resumes")
def _():
    d = node(EchoBackend())
    for version in (TLS13, TLS12):
        ctx = client_context(version)
        ctx.check_hostname = False
        reused, sess = connect(d.port, ctx, "a.example.test")
        check_eq(reused, False, "first connection")
        check_eq(connect(d.port, ctx, "a.example.test", sess)[0], True,
                 "the same name resumes (%s)" % version)
        check_eq(connect(d.port, ctx, "x.wild.example.test", sess)[0], True,
                 "another name of the same certificate resumes (%s)" % version)
        before = d.counters()[0]["ticket_rejected_policy"]
        check_eq(connect(d.port, ctx, "b.example.test", sess)[0], False,
                 "a session of a.example.test under b.example.test (%s)" % version)
        check_eq(d.counters()[0]["ticket_rejected_policy"], before + 1,
                 "ticket_rejected_policy (%s)" % version)
        # The first certificate's group is the context's own: its sessions
        # and the others' stay apart both ways.
        reused, first = connect(d.port, ctx, "localhost")
        check_eq(connect(d.port, ctx, "localhost", first)[0], True,
                 "the first certificate's session resumes (%s)" % version)
        check_eq(connect(d.port, ctx, "b.example.test", first)[0], False,
                 "the first certificate's session under b.example.test (%s)" % version)
        check_eq(connect(d.port, ctx, "unknown.example.test", sess)[0], False,
                 "a session of a.example.test under the first certificate (%s)" % version)
        check_eq(d.counters()[0]["ticket_rejected_policy"], before + 3,
                 "ticket_rejected_policy, both ways (%s)" % version)


@case("a TLS 1.2 session ID made under one certificate does not resume under another")
def _():
    d = node(EchoBackend(), tickets='mode = "off";')
    ctx = client_context(TLS12)
    ctx.check_hostname = False
    ctx.options |= ssl.OP_NO_TICKET
    c = TLSClient(d.port, ctx=ctx, host="a.example.test")
    sess = c.obj.session
    c2 = TLSClient(d.port, ctx=ctx, host="a.example.test", session=sess)
    check_eq(c2.obj.session_reused, True, "the same name resumes")
    c3 = TLSClient(d.port, ctx=ctx, host="b.example.test", session=sess)
    check_eq(c3.obj.session_reused, False, "under b.example.test")


def check_t(text):
    path = tmpfile("t%d.conf" % free_port(), text)
    rc, out, err = run([TLSPROXY, "-t", "-c", path], timeout=15)
    return path, rc, out + err


def t_conf(certs, **settings):
    return make_conf(listener_conf("mqtt", free_port(), 1883, cert_name=None, extra=certs,
                                   **settings), tickets='mode = "off";')


@case("-t: a key of another certificate, two entries claiming a name with the same key "
      "type, cert beside certificates, an unknown setting in an entry: FILE:LINE errors")
def _():
    text = t_conf(certificates(entry("server"), entry("sni-a", key="sni-b")))
    path, rc, out = check_t(text)
    check_eq(rc, 78, "exit status:\n" + out)
    check(re.search(re.escape(path) + r":\d+: certificates\[1\]\.key: the private key "
                    r"does not match the certificate", out), "mismatch error:\n" + out)

    text = t_conf(certificates(entry("server"), entry("sni-b"),
                               entry("sni-a", names=["b.example.test"])))
    path, rc, out = check_t(text)
    check_eq(rc, 78, "exit status:\n" + out)
    check(re.search(re.escape(path) + r":\d+: certificates: entry 2 serves "
                    r"\"b.example.test\" with a EC key, as entry 1 at .*:\d+ does", out),
          "conflict error:\n" + out)
    # The same name with another key type is what lets clients choose.
    path, rc, out = check_t(t_conf(ALL))
    check_eq(rc, 0, "ECDSA and RSA for one name:\n" + out)

    text = t_conf(certificates(entry("server")) + '\ncert = "%s";' % cert("server.pem"))
    path, rc, out = check_t(text)
    check_eq(rc, 78, "exit status:\n" + out)
    check(re.search(r":\d+: listeners\[0\]\.cert: cannot be used with certificates", out),
          "cert beside certificates:\n" + out)

    text = t_conf('certificates = ( { cert = "%s"; colour = "blue"; } );' % cert("server.pem"))
    path, rc, out = check_t(text)
    check_eq(rc, 78, "exit status:\n" + out)
    check(re.search(r":\d+: listeners\[0\]\.certificates\[0\]\.colour: unknown setting "
                    r"\(allowed: cert, key, ocsp_response, names\)", out), "unknown:\n" + out)

    text = t_conf(certificates(entry("server", names=["*.com", "bad_name.example"])))
    path, rc, out = check_t(text)
    check_eq(rc, 78, "exit status:\n" + out)
    check(re.search(r"certificates\[0\]\.names\[0\]: \"\*\.com\" has a wildcard over a "
                    r"top-level domain", out), "wildcard error:\n" + out)
    check(re.search(r"certificates\[0\]\.names\[1\]: \"bad_name\.example\" is not a DNS "
                    r"name", out), "name error:\n" + out)


@case("-t and the start warn about a certificate that expires within 14 days")
def _():
    d = tmpdir()
    key, pem = os.path.join(d, "soon.key"), os.path.join(d, "soon.pem")
    rc, out, err = run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", pem,
                        "-days", "3", "-subj", "/CN=soon.example.test"])
    check_eq(rc, 0, "openssl req: " + err)
    text = t_conf("certificates = ( %s, { cert = \"%s\"; key = \"%s\"; "
                  "names = [ \"soon.example.test\" ]; } );" % (entry("server"), pem, key))
    path, rc, out = check_t(text)
    check_eq(rc, 0, "an expiring certificate is a warning, not an error:\n" + out)
    check(re.search(re.escape(path) + r":\d+: cert: .*soon\.pem expires in [23] days", out),
          "expiry warning:\n" + out)
    check_eq(len(re.findall(r"soon\.pem expires in", out)), 1, "warnings of -t:\n" + out)
    d = Daemon(text).start()
    check_eq(d.count_log(r"soon\.pem expires in [23] days"), 1,
             "expiry warnings at start (the check before it warns no more):\n" + d.log())


@case("--list-ocsp prints CERT<TAB>OCSP_RESPONSE of each entry with an ocsp_response "
      "(a file that does not exist yet is fine: the refresh script makes it)")
def _():
    ocsp = os.path.join(tmpdir(), "b.ocsp")
    e = entry("sni-b")[:-1] + 'ocsp_response = "%s"; }' % ocsp
    path = tmpfile("ocsp-list.conf", t_conf(certificates(entry("server"), e)))
    rc, out, err = run([TLSPROXY, "--list-ocsp", "-c", path], timeout=15)
    check_eq(rc, 0, "exit status: " + err)
    check_eq(out, "%s\t%s\n" % (cert("sni-b.pem"), ocsp), "output")


def alpn_of(port, offer):
    rc, out = s_client(port, ["-alpn", offer] if offer else [])
    if rc != 0:
        return None, out
    m = re.search(r"^ALPN protocol: (\S+)", out, re.M)
    return (m.group(1) if m else ""), out


@case("alpn: the server's order of preference wins; a client that offers none of them "
      "gets no ALPN; one that offers none gets no ALPN")
def _():
    d = node(EchoBackend(), alpn=["mqtt", "http/1.1"])
    check_eq(alpn_of(d.port, "http/1.1,mqtt")[0], "mqtt", "server preference")
    check_eq(alpn_of(d.port, "http/1.1")[0], "http/1.1", "the client's only one")
    check_eq(alpn_of(d.port, "h2")[0], "", "nothing in common")
    check_eq(alpn_of(d.port, None)[0], "", "no ALPN offered")


@case("alpn_required: a client offering no ALPN, or none of the listener's, is refused "
      "with no_application_protocol; one offering mqtt is served")
def _():
    d = node(EchoBackend(), alpn=["mqtt"], alpn_required=True)
    for offer in (None, "h2"):
        proto, out = alpn_of(d.port, offer)
        check_eq(proto, None, "offer %r served:\n%s" % (offer, out[-600:]))
        check(re.search(r"no application protocol", out), "alert:\n" + out[-600:])
    check_eq(alpn_of(d.port, "mqtt")[0], "mqtt", "mqtt")
    check(d.alive(), "daemon died")


if __name__ == "__main__":
    tplib.main()
