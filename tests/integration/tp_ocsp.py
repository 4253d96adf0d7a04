"""tp_ocsp: a CA whose server certificates name an OCSP responder on
127.0.0.1, and that responder: `openssl ocsp` acting as the CA's responder
over its `openssl ca` index, behind a small HTTP server of the test's own.

OpenSSL 3.0's `openssl ocsp -port` listens on every address; the harness
binds 127.0.0.1 only, so the HTTP part is Python's and each request is
answered by `openssl ocsp -index ... -reqin ... -respout ...`: the same
responder code, one process per request.  The server can also replay the
first response it made for a request, as CDNs in front of real responders
do, and be stopped to play a responder that is down.
"""

import http.server
import os
import tempfile
import threading

from tp_ca import TestCA
from tp_core import OPENSSL, check, check_eq, check_match, defer, free_port, run

OCSP_EXTENSIONS = """[ server ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
authorityKeyIdentifier = keyid
authorityInfoAccess = OCSP;URI:{url}
[ server_no_aia ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[ responder ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
"""


class OcspCA(TestCA):
    """A CA whose server certificates carry the URL of its responder,
    http://127.0.0.1:PORT/ (PORT chosen now, served by responder())."""

    def __init__(self, name):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        TestCA.__init__(self, name, OCSP_EXTENSIONS.format(url=self.url))

    def issue(self, name, extensions="server"):
        """issue(name): a key ${name}.key and a certificate ${name}.pem for
        CN=${name} (extensions "server", "server_no_aia" or "responder"),
        and ${name}-chain.pem: the leaf, then the CA.  Returns the paths of
        the chain file and the key."""
        TestCA.issue(self, name, extensions)
        chain = self.path(name + "-chain.pem")
        with open(chain, "w") as out:
            for part in (self.path(name + ".pem"), self.pem):
                with open(part) as f:
                    out.write(f.read())
        return chain, self.path(name + ".key")

    def answer(self, request, signer=None, minutes=60):
        """answer(request): the DER response `openssl ocsp` as this CA's
        responder gives to the DER ${request}, signed by the CA or by
        ${signer} (a (cert, key) pair), valid for ${minutes}."""
        cert, key = signer or (self.pem, self.key)
        fd, reqin = tempfile.mkstemp(dir=self.dir, suffix=".req")
        os.write(fd, request)
        os.close(fd)
        fd, respout = tempfile.mkstemp(dir=self.dir, suffix=".resp")
        os.close(fd)
        try:
            self.openssl("ocsp", "-index", self.path("index.txt"), "-CA", self.pem,
                         "-rsigner", cert, "-rkey", key, "-reqin", reqin, "-respout", respout,
                         "-nmin", str(minutes))
            with open(respout, "rb") as f:
                return f.read()
        finally:
            os.unlink(reqin)
            os.unlink(respout)

    def response(self, name, out, **kw):
        """response(name, out): the responder's answer for certificate
        ${name}, made offline (-reqout, then answer()), written to ${out}."""
        reqout = self.path(name + ".req")
        self.openssl("ocsp", "-issuer", self.pem, "-cert", self.path(name + ".pem"),
                     "-no_nonce", "-reqout", reqout)
        with open(reqout, "rb") as f:
            der = self.answer(f.read(), **kw)
        with open(out, "wb") as f:
            f.write(der)
        return out

    def status(self, name, response):
        """status(name, response): what `openssl ocsp` says of the DER file
        ${response} for certificate ${name}, verified against this CA:
        "good", "revoked", ...; "" if it does not verify."""
        rc, out, err = run([OPENSSL, "ocsp", "-respin", response, "-issuer", self.pem,
                            "-cert", self.path(name + ".pem"), "-CAfile", self.pem],
                           timeout=30)
        if rc != 0 or "Response verify OK" not in err:
            return ""
        for line in out.splitlines():
            if line.startswith(self.path(name + ".pem") + ": "):
                return line.split(": ", 1)[1].strip()
        return ""

    def responder(self, **kw):
        """responder(...): an OcspResponder for this CA on its port,
        stopped when the case ends."""
        r = OcspResponder(self, **kw)
        defer(r.stop)
        return r


class OcspResponder:
    """HTTP POST (RFC 6960 appendix A) on 127.0.0.1:${ca}.port, answered
    by ${ca}.answer().  With ${replay}, the first response made for a
    request is sent again for the same request.  ${signer}: a (cert, key)
    pair that signs instead of the CA.  requests counts what it served."""

    def __init__(self, ca, replay=False, signer=None):
        self.ca, self.replay, self.signer = ca, replay, signer
        self.requests = 0
        self.cache = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    der = outer.serve(body)
                    code = 200
                except Exception as e:  # the client sees a failure, the test the reason
                    der, code = str(e).encode(), 500
                self.send_response(code)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(der)))
                self.end_headers()
                self.wfile.write(der)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", ca.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, request):
        with self.lock:
            self.requests += 1
            if self.replay and request in self.cache:
                return self.cache[request]
            der = self.ca.answer(request, signer=self.signer)
            self.cache[request] = der
            return der

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)
            self.server = None


def s_client_status(port, ca_pem, version="-tls1_3", servername="localhost", ask=True):
    """s_client_status(port, ca_pem): `openssl s_client -status` (or
    without -status, ${ask} False) against 127.0.0.1:${port}, verifying the
    server against ${ca_pem}; (the stapled response as it prints it, or ""
    when none was sent, and the whole output)."""
    cmd = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", servername,
           "-CAfile", ca_pem, "-verify_return_error", version] + (["-status"] if ask else [])
    rc, out, err = run(cmd, input=b"", timeout=15)
    text = out + err
    check_eq(rc, 0, "openssl s_client exit status\n" + text[-2000:])
    check_match(r"Verify return code: 0 \(ok\)", text, "s_client")
    if not ask:
        check("OCSP response" not in text, "an OCSP response for a client that did not ask")
        return "", text
    if "OCSP response: no response sent" in text:
        return "", text
    m = check_match(r"(?s)^OCSP response: \n=+\n(.*?)^=+$", text.replace("\r", ""),
                    "s_client -status")
    return m.group(1), text


def file_state(path):
    """file_state(path): (bytes, inode, mode) of ${path}, to tell whether
    it was replaced."""
    st = os.stat(path)
    with open(path, "rb") as f:
        return f.read(), st.st_ino, st.st_mode & 0o7777


__all__ = ["OcspCA", "OcspResponder", "file_state", "s_client_status"]
