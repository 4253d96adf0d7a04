"""tp_ca: a CA made in the test's directory with `openssl ca` and its
minimal database (index.txt, serial, crlnumber): it issues certificates
with the extensions of its configuration, revokes them and writes CRLs.
Tests add their own extension sections (test_crl's devices, tp_ocsp's
servers and responders)."""

import os
import time

from tp_core import OPENSSL, check_eq, run, tmpdir, tmpfile

CA_CONF_HEAD = """[ ca ]
default_ca = testca
[ testca ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
crlnumber = $dir/crlnumber
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
default_days = 2
default_crl_days = 1
policy = any
unique_subject = no
[ any ]
commonName = supplied
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = {name}
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""


def asn1_time(t):
    """asn1_time(t): epoch seconds ${t} as openssl ca's YYYYMMDDHHMMSSZ."""
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(t))


class TestCA:
    """A CA named ${name} in tmpdir()/${name}, whose configuration is
    CA_CONF_HEAD followed by ${extensions} (openssl.cnf sections that
    issue() names); its key and certificate are ca.key and ca.pem there."""

    def __init__(self, name, extensions):
        self.name = name
        self.dir = os.path.join(tmpdir(), name)
        os.makedirs(os.path.join(self.dir, "issued"))
        self.conf = tmpfile(os.path.join(name, "ca.cnf"),
                            CA_CONF_HEAD.format(dir=self.dir, name=name) + extensions)
        tmpfile(os.path.join(name, "index.txt"), "")
        tmpfile(os.path.join(name, "serial"), "1000\n")
        tmpfile(os.path.join(name, "crlnumber"), "01\n")
        self.key, self.pem = self.path("ca.key"), self.path("ca.pem")
        self.genkey(self.key)
        self.openssl("req", "-x509", "-new", "-config", self.conf, "-key", self.key,
                     "-extensions", "v3_ca", "-days", "2", "-out", self.pem)

    def path(self, name):
        return os.path.join(self.dir, name)

    def openssl(self, *args):
        rc, out, err = run([OPENSSL] + list(args), timeout=30)
        check_eq(rc, 0, "openssl %s: %s" % (args[0], (out + err)[-800:]))
        return out

    def genkey(self, path):
        self.openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-out", path)

    def issue(self, name, extensions):
        """issue(name, extensions): a key ${name}.key and a certificate
        ${name}.pem for CN=${name} with the section ${extensions}; returns
        its serial number in hex, as OpenSSL prints it."""
        key, csr, pem = (self.path(name + ext) for ext in (".key", ".csr", ".pem"))
        self.genkey(key)
        self.openssl("req", "-new", "-key", key, "-subj", "/CN=" + name, "-out", csr)
        self.openssl("ca", "-batch", "-config", self.conf, "-extensions", extensions,
                     "-notext", "-in", csr, "-out", pem)
        return self.openssl("x509", "-in", pem, "-noout", "-serial").strip().split("=")[1]

    def revoke(self, name):
        self.openssl("ca", "-config", self.conf, "-revoke", self.path(name + ".pem"))

    def crl(self, out, last=None, next_=None):
        """crl(out, last, next_): the CA's CRL in ${out}; by default valid
        from now for a day, else from ${last} to ${next_} (epoch seconds)."""
        args = ["ca", "-config", self.conf, "-gencrl", "-out", out]
        if last is not None:
            args += ["-crl_lastupdate", asn1_time(last), "-crl_nextupdate", asn1_time(next_)]
        self.openssl(*args)
        return out


__all__ = ["TestCA", "asn1_time"]
