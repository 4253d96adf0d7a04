#!/bin/sh
# gen-certs.sh OUTDIR: make a fresh, short-lived set of test and demo
# certificates in OUTDIR with nothing but the openssl command ($OPENSSL, or
# the one on $PATH).
#
#   ca.pem ca.key                   the test CA
#   server.pem server.key           CN=localhost, SAN DNS:localhost IP:127.0.0.1, serverAuth
#   server2.pem server2.key         the same names with O=reloaded (tells certificates apart after a reload)
#   rsa-server.pem rsa-server.key   the same names, RSA 2048
#   client.pem client.key           CN=device1, clientAuth
#   sni-a.pem sni-a.key             CN=a.example.test, SAN DNS:a.example.test DNS:*.wild.example.test
#   sni-b.pem sni-b.key             CN=b.example.test, SAN DNS:b.example.test
#   sni-b-rsa.pem sni-b-rsa.key     the same names as sni-b, RSA 2048
#   other-ca.pem other-ca.key       a second CA that nothing trusts
#   other-client.pem other-client.key   CN=device1, clientAuth, signed by other-ca
#
# Every key is ECDSA P-256 except rsa-server.key.  Certificates last 30 days
# ($CERT_DAYS); keys are mode 600.  Running it again replaces every file.
# Quiet unless something fails; exit status 0 on success.
set -eu

usage() {
	echo "usage: gen-certs.sh OUTDIR" >&2
	exit 64
}
[ $# -eq 1 ] || usage
out=$1
openssl=${OPENSSL:-openssl}
days=${CERT_DAYS:-30}

mkdir -p "$out"
work=$(mktemp -d "$out/.gen-certs.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM
log=$work/openssl.log

# run CMD...: run one openssl step; on failure show its output and stop.
run() {
	if ! "$@" >>"$log" 2>&1; then
		cat "$log" >&2
		echo "gen-certs.sh: failed: $*" >&2
		exit 1
	fi
}

cat >"$work/openssl.cnf" <<'EOF'
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
[ ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ server ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ server_a ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:a.example.test, DNS:*.wild.example.test
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ server_b ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:b.example.test
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

# key NAME [rsa]: a new private key in $work/NAME.key.
key() {
	if [ "${2:-}" = rsa ]; then
		run "$openssl" genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
		    -out "$work/$1.key"
	else
		run "$openssl" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		    -pkeyopt ec_param_enc:named_curve -out "$work/$1.key"
	fi
}

# ca NAME SUBJECT: a self-signed CA certificate.
ca() {
	key "$1"
	run "$openssl" req -config "$work/openssl.cnf" -new -x509 -sha256 \
	    -key "$work/$1.key" -subj "$2" -days "$days" \
	    -set_serial "0x$("$openssl" rand -hex 16)" \
	    -extensions ca -out "$work/$1.pem"
}

# leaf NAME SUBJECT PROFILE CA [rsa]: a certificate signed by CA.
leaf() {
	key "$1" "${5:-}"
	run "$openssl" req -config "$work/openssl.cnf" -new -sha256 \
	    -key "$work/$1.key" -subj "$2" -out "$work/$1.csr"
	run "$openssl" x509 -req -sha256 -in "$work/$1.csr" -days "$days" \
	    -CA "$work/$4.pem" -CAkey "$work/$4.key" \
	    -set_serial "0x$("$openssl" rand -hex 16)" \
	    -extfile "$work/openssl.cnf" -extensions "$3" -out "$work/$1.pem"
	rm -f "$work/$1.csr"
	# Profiles server_a, server_b, ... are server certificates too.
	run "$openssl" verify -CAfile "$work/$4.pem" -purpose "ssl${3%%_*}" "$work/$1.pem"
}

umask 077
ca ca "/O=tlsproxy test/CN=tlsproxy test CA"
leaf server "/CN=localhost" server ca
leaf server2 "/O=reloaded/CN=localhost" server ca
leaf rsa-server "/CN=localhost" server ca rsa
leaf client "/CN=device1" client ca
leaf sni-a "/CN=a.example.test" server_a ca
leaf sni-b "/CN=b.example.test" server_b ca
leaf sni-b-rsa "/CN=b.example.test" server_b ca rsa
ca other-ca "/O=somebody else/CN=untrusted test CA"
leaf other-client "/CN=device1" client other-ca

for f in ca server server2 rsa-server client sni-a sni-b sni-b-rsa other-ca other-client; do
	chmod 600 "$work/$f.key"
	chmod 644 "$work/$f.pem"
	# Each file appears whole: a rename within one directory.
	mv -f "$work/$f.key" "$out/$f.key"
	mv -f "$work/$f.pem" "$out/$f.pem"
done
