/*
 * fuzz_proxy_header: arbitrary connection and TLS details through the
 * PROXY protocol header builders, each header read back by a parser of
 * this file's own (not testlib's, not the builder's) that aborts unless
 * the header says exactly what went in:
 *  - proxy_header_v1() and proxy_header_v2() with any addresses (IPv4,
 *    IPv6, other families, mixed), SNI, ALPN, CN, version, cipher,
 *    algorithms, unique ID, client certificate and verify result, into a
 *    buffer of any size (allocated to the byte, so AddressSanitizer sees
 *    a write past it): -1 exactly when the header does not fit;
 *  - v2: signature, command, family, length, addresses, each TLV in the
 *    order and with the value expected, the SSL TLV's flags, verify field
 *    and sub-TLVs filling it exactly, and the CRC32C (computed here with a
 *    table, not bit by bit);
 *  - proxy_tls_header() after a real TLS handshake (a BIO pair) whose
 *    client certificate, signed by the test CA, has a CN from the input:
 *    the CN sub-TLV is the CN in UTF-8, cut to fit but never inside a
 *    character, and the certificate TLV is the certificate's DER.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "fuzzlib.h"
#include "testlib.h"
#include "../../src/proxy_header.h"
#include "../../src/proxy_tls.h"
#include "../../src/tls_ctx.h"

#define STR_MAX 300
#define CN_MAX 255		/* what proxy_tls.c keeps of a CN, in bytes */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---------------------------------------------------------------- CRC32C */

static uint32_t crc_table[256];

static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t
crc32c(const unsigned char *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;

	while (n-- > 0)
		c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
	return c ^ 0xFFFFFFFFu;
}

/* ---------------------------------------------------------------- reader */

struct hdr {
	const unsigned char *p;
	size_t left;
};

static const unsigned char *
get(struct hdr *h, size_t n, const char *what)
{
	const unsigned char *p = h->p;

	if (n > h->left)
		fz_fail("v2 header: %s: %zu bytes wanted, %zu left", what, n, h->left);
	h->p += n;
	h->left -= n;
	return p;
}

static unsigned
get16(struct hdr *h, const char *what)
{
	const unsigned char *p = get(h, 2, what);

	return (unsigned)p[0] << 8 | p[1];
}

/* The next TLV must be ${type} with value ${value} of ${len} bytes. */
static struct hdr
expect_tlv(struct hdr *h, unsigned type, const void *value, size_t len)
{
	struct hdr v;
	unsigned t = *get(h, 1, "TLV type");
	size_t n = get16(h, "TLV length");

	if (t != type)
		fz_fail("v2 header: TLV 0x%02x where 0x%02x was expected", t, type);
	v.p = get(h, n, "TLV value");
	v.left = n;
	if (value != NULL && (n != len || memcmp(v.p, value, len) != 0))
		fz_fail("v2 header: TLV 0x%02x holds %zu bytes, not the %zu given", type, n, len);
	return v;
}

static void
expect_string_tlv(struct hdr *h, unsigned type, const char *s)
{
	if (s != NULL && s[0] != '\0')
		expect_tlv(h, type, s, strlen(s));
}

/* ---------------------------------------------------------------- v2 */

static int
family_of(const struct proxy_info *info)
{
	if (info->client->sa_family != info->local->sa_family)
		return AF_UNSPEC;
	return info->client->sa_family == AF_INET || info->client->sa_family == AF_INET6 ?
	    info->client->sa_family : AF_UNSPEC;
}

static size_t
tlv_size(size_t len)
{
	return 3 + len;
}

static size_t
string_size(const char *s)
{
	return s != NULL && s[0] != '\0' ? tlv_size(strlen(s)) : 0;
}

/* The size the header must have, counted from the specification. */
static size_t
v2_size(const struct proxy_info *info)
{
	int fam = family_of(info);
	size_t n = 16 + (fam == AF_INET ? 12 : fam == AF_INET6 ? 36 : 0);

	if (info->alpn != NULL && info->alpn_len > 0)
		n += tlv_size(info->alpn_len);
	n += string_size(info->sni);
	if (info->unique_id != NULL && info->unique_id_len > 0 && info->unique_id_len <= 128)
		n += tlv_size(info->unique_id_len);
	n += tlv_size(5) + string_size(info->version) + string_size(info->cipher) +
	    string_size(info->sig_alg) + string_size(info->key_alg);
	if (info->cert_sess)
		n += string_size(info->cn);
	if (info->cert_der != NULL && info->cert_der_len > 0)
		n += tlv_size(info->cert_der_len);
	return n + tlv_size(4);
}

static void
check_addresses(struct hdr *h, const struct proxy_info *info)
{
	if (family_of(info) == AF_INET) {
		const struct sockaddr_in *c = (const void *)info->client, *l = (const void *)info->local;

		if (memcmp(get(h, 4, "source"), &c->sin_addr, 4) != 0 ||
		    memcmp(get(h, 4, "destination"), &l->sin_addr, 4) != 0 ||
		    memcmp(get(h, 2, "source port"), &c->sin_port, 2) != 0 ||
		    memcmp(get(h, 2, "destination port"), &l->sin_port, 2) != 0)
			fz_fail("v2 header: the IPv4 addresses are not the ones given");
	} else if (family_of(info) == AF_INET6) {
		const struct sockaddr_in6 *c = (const void *)info->client, *l = (const void *)info->local;

		if (memcmp(get(h, 16, "source"), &c->sin6_addr, 16) != 0 ||
		    memcmp(get(h, 16, "destination"), &l->sin6_addr, 16) != 0 ||
		    memcmp(get(h, 2, "source port"), &c->sin6_port, 2) != 0 ||
		    memcmp(get(h, 2, "destination port"), &l->sin6_port, 2) != 0)
			fz_fail("v2 header: the IPv6 addresses are not the ones given");
	}
}

static void
check_ssl_tlv(struct hdr *h, const struct proxy_info *info)
{
	struct hdr v = expect_tlv(h, PP2_TYPE_SSL, NULL, 0);
	unsigned client = *get(&v, 1, "SSL client"), want = PP2_CLIENT_SSL;
	const unsigned char *verify = get(&v, 4, "SSL verify");
	int verified = verify[0] == 0 && verify[1] == 0 && verify[2] == 0 && verify[3] == 0;

	if (info->cert_conn)
		want |= PP2_CLIENT_CERT_CONN;
	if (info->cert_sess)
		want |= PP2_CLIENT_CERT_SESS;
	if (client != want)
		fz_fail("v2 header: SSL client flags 0x%02x, not 0x%02x", client, want);
	if (verified != (info->cert_sess && info->verify_result == 0))
		fz_fail("v2 header: verify says %s with cert_sess %d, verify_result %ld",
		    verified ? "verified" : "not verified", info->cert_sess, info->verify_result);
	expect_string_tlv(&v, PP2_SUBTYPE_SSL_VERSION, info->version);
	if (info->cert_sess)
		expect_string_tlv(&v, PP2_SUBTYPE_SSL_CN, info->cn);
	expect_string_tlv(&v, PP2_SUBTYPE_SSL_CIPHER, info->cipher);
	expect_string_tlv(&v, PP2_SUBTYPE_SSL_SIG_ALG, info->sig_alg);
	expect_string_tlv(&v, PP2_SUBTYPE_SSL_KEY_ALG, info->key_alg);
	if (v.left != 0)
		fz_fail("v2 header: %zu bytes after the SSL sub-TLVs", v.left);
}

static void
check_v2(unsigned char *buf, size_t n, const struct proxy_info *info)
{
	static const unsigned char sig[12] = "\r\n\r\n\0\r\nQUIT\n";
	struct hdr h = { buf, n }, crc;
	int fam = family_of(info);
	unsigned want_fam = fam == AF_INET ? 0x11 : fam == AF_INET6 ? 0x21 : 0x00;
	uint32_t stored;

	if (memcmp(get(&h, 12, "signature"), sig, 12) != 0)
		fz_fail("v2 header: bad signature");
	if (*get(&h, 1, "version") != 0x21)
		fz_fail("v2 header: not version 2, command PROXY");
	if (*get(&h, 1, "family") != want_fam)
		fz_fail("v2 header: family byte is not 0x%02x", want_fam);
	if (get16(&h, "length") != n - 16)
		fz_fail("v2 header: length field is not %zu", n - 16);
	check_addresses(&h, info);
	if (info->alpn != NULL && info->alpn_len > 0)
		expect_tlv(&h, PP2_TYPE_ALPN, info->alpn, info->alpn_len);
	expect_string_tlv(&h, PP2_TYPE_AUTHORITY, info->sni);
	if (info->unique_id != NULL && info->unique_id_len > 0 && info->unique_id_len <= 128)
		expect_tlv(&h, PP2_TYPE_UNIQUE_ID, info->unique_id, info->unique_id_len);
	check_ssl_tlv(&h, info);
	if (info->cert_der != NULL && info->cert_der_len > 0)
		expect_tlv(&h, PP2_TYPE_TLSPROXY_CLIENT_CERT, info->cert_der, info->cert_der_len);
	crc = expect_tlv(&h, PP2_TYPE_CRC32C, NULL, 0);
	if (crc.left != 4 || h.left != 0)
		fz_fail("v2 header: CRC32C of %zu bytes, %zu bytes after it", crc.left, h.left);
	stored = (uint32_t)crc.p[0] << 24 | (uint32_t)crc.p[1] << 16 |
	    (uint32_t)crc.p[2] << 8 | crc.p[3];
	memset((unsigned char *)crc.p, 0, 4);
	if (crc32c(buf, n) != stored)
		fz_fail("v2 header: CRC32C 0x%08x, computed 0x%08x", stored, crc32c(buf, n));
}

static void
v2(const struct proxy_info *info, size_t buflen)
{
	unsigned char *buf = malloc(buflen > 0 ? buflen : 1);
	size_t want = v2_size(info);
	int n;

	if (buf == NULL)
		fz_fail("out of memory");
	n = proxy_header_v2(info, buf, buflen);
	if (want > buflen || want - 16 > 0xFFFF) {
		if (n != -1)
			fz_fail("v2 header of %zu bytes (%d written) in a buffer of %zu", want, n,
			    buflen);
	} else if (n < 0 || (size_t)n != want)
		fz_fail("v2 header: %d bytes, %zu expected, buffer %zu", n, want, buflen);
	else
		check_v2(buf, (size_t)n, info);
	free(buf);
}

/* ---------------------------------------------------------------- v1 */

static void
addr_text(const struct sockaddr *sa, char *buf, unsigned *port)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, buf, INET6_ADDRSTRLEN);
		*port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, buf, INET6_ADDRSTRLEN);
		*port = ntohs(in6->sin6_port);
	}
}

static void
v1(const struct proxy_info *info, size_t buflen)
{
	char want[PROXY_HEADER_V1_MAX + 1], src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
	unsigned char *buf = malloc(buflen > 0 ? buflen : 1);
	int fam = family_of(info), n;
	unsigned sport, dport;
	size_t wlen;

	if (buf == NULL)
		fz_fail("out of memory");
	if (fam == AF_UNSPEC)
		snprintf(want, sizeof(want), "PROXY UNKNOWN\r\n");
	else {
		addr_text(info->client, src, &sport);
		addr_text(info->local, dst, &dport);
		snprintf(want, sizeof(want), "PROXY TCP%c %s %s %u %u\r\n",
		    fam == AF_INET ? '4' : '6', src, dst, sport, dport);
	}
	wlen = strlen(want);
	if (wlen > PROXY_HEADER_V1_MAX)
		fz_fail("v1 header of %zu bytes, over the specification's %d", wlen,
		    PROXY_HEADER_V1_MAX);
	n = proxy_header_v1(info, buf, buflen);
	/* The builder writes a NUL after the line, so it needs one byte more. */
	if (wlen + 1 > buflen) {
		if (n != -1)
			fz_fail("v1 header of %zu bytes written (%d) in a buffer of %zu", wlen, n,
			    buflen);
	} else if (n < 0 || (size_t)n != wlen || memcmp(buf, want, wlen) != 0)
		fz_fail("v1 header is \"%.*s\" (%d), not \"%s\"", n > 0 ? n : 0, buf, n, want);
	free(buf);
}

/* ---------------------------------------------------------------- inputs */

/* A socket address of a family chosen by ${sel}, filled from the input. */
static void
make_addr(struct fz_in *in, unsigned sel, struct sockaddr_storage *ss)
{
	size_t n;
	const uint8_t *b;

	memset(ss, 0, sizeof(*ss));
	switch (sel & 3) {
	case 0: {
		struct sockaddr_in *a = (void *)ss;

		a->sin_family = AF_INET;
		b = fz_bytes(in, 4, &n);
		memcpy(&a->sin_addr, b, n);
		a->sin_port = htons((uint16_t)fz_u16(in));
		break;
	}
	case 1: {
		struct sockaddr_in6 *a = (void *)ss;

		a->sin6_family = AF_INET6;
		b = fz_bytes(in, 16, &n);
		memcpy(&a->sin6_addr, b, n);
		a->sin6_port = htons((uint16_t)fz_u16(in));
		break;
	}
	case 2:
		ss->ss_family = AF_UNIX;
		break;
	default:
		ss->ss_family = AF_UNSPEC;
		break;
	}
}

/* ---------------------------------------------------------------- TLS */

static SSL_CTX *server_ctx, *client_ctx;
static struct ticket_keys *server_keys;
static EVP_PKEY *client_key, *ca_key;
static X509 *ca_cert;
static int local_fd = -1;

static void
tls_init(void)
{
	static struct settings s;
	static struct listener_settings ls;
	struct sockaddr_in sin = { .sin_family = AF_INET };

	fz_setup(1);
	tl_tls_settings(&s, &ls);
	ls.client_ca = (char *)tl_path("ca.pem");
	ls.verify_client = VERIFY_CLIENT_OPTIONAL;
	server_ctx = tl_server_ctx(&s, &ls, &server_keys);
	/* testlib's getters only here: they report to check at every call. */
	ca_cert = tl_cert(TL_CA);
	ca_key = tl_key(TL_CA);
	if ((client_ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    (client_key = EVP_EC_gen("P-256")) == NULL)
		fz_fail("cannot set up the TLS client");
	SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
	/* Where proxy_tls_header() finds "the local address": any socket. */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((local_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(local_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		fz_fail("cannot make a socket on 127.0.0.1");
}

static void
tls_free(void)
{
	SSL_CTX_free(client_ctx);
	tl_server_ctx_free(server_ctx, server_keys);
	EVP_PKEY_free(client_key);
	if (local_fd >= 0)
		close(local_fd);
}

/*
 * A client certificate by the test CA with CN ${cn} (${len} bytes, any) as
 * ASN.1 string type ${type}: set as given, past the checks (such as 64
 * characters at most) that OpenSSL makes of names it builds itself, since
 * a certificate from elsewhere need not have passed them.
 */
static X509 *
client_cert(const uint8_t *cn, size_t len, int type)
{
	X509 *cert = X509_new();
	X509_NAME *name = cert != NULL ? X509_get_subject_name(cert) : NULL;

	if (name == NULL || X509_set_version(cert, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(cert), 7) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(cert), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(cert), 86400) == NULL ||
	    X509_set_issuer_name(cert, X509_get_subject_name(ca_cert)) != 1 ||
	    X509_set_pubkey(cert, client_key) != 1)
		fz_fail("cannot make a client certificate");
	/* Whole characters of 4 and 2 bytes; no CN at all when it is empty. */
	if (type == V_ASN1_UNIVERSALSTRING)
		len -= len % 4;
	else if (type == V_ASN1_BMPSTRING)
		len -= len % 2;
	if (len > 0 && X509_NAME_add_entry_by_NID(name, NID_commonName, type, cn, (int)len,
	    -1, 0) != 1)
		fz_fail("cannot set a CN of %zu bytes, type %d: %s", len, type,
		    ERR_reason_error_string(ERR_peek_error()));
	/* OpenSSL cannot encode a name it cannot convert to UTF-8 (code points
	 * past U+10FFFF in a UniversalString), nor would it read one from a
	 * client: no certificate, no connection. */
	if (X509_sign(cert, ca_key, EVP_sha256()) <= 0) {
		ERR_clear_error();
		X509_free(cert);
		return NULL;
	}
	return cert;
}

/* Run both ends until neither moves; 1 if both handshakes are done. */
static int
handshake(SSL *client, SSL *server)
{
	for (int round = 0; round < 16; round++) {
		int c = SSL_do_handshake(client), s = SSL_do_handshake(server);

		if (c == 1 && s == 1)
			return 1;
		if ((c != 1 && SSL_get_error(client, c) != SSL_ERROR_WANT_READ) ||
		    (s != 1 && SSL_get_error(server, s) != SSL_ERROR_WANT_READ))
			return 0;
	}
	fz_fail("the handshake did not end in 16 rounds");
}

/* Find the TLV ${type} at the top level of a checked v2 header. */
static struct hdr
find_tlv(const unsigned char *buf, size_t n, unsigned type)
{
	size_t addr = buf[13] == 0x11 ? 12 : buf[13] == 0x21 ? 36 : 0;
	struct hdr h = { buf + 16 + addr, n - 16 - addr }, v = { NULL, 0 };

	while (h.left > 0) {
		unsigned t = *get(&h, 1, "TLV type");
		size_t len = get16(&h, "TLV length");
		const unsigned char *p = get(&h, len, "TLV value");

		if (t == type) {
			v.p = p;
			v.left = len;
		}
	}
	return v;
}

static void
check_cn(const unsigned char *buf, size_t n, X509 *cert)
{
	struct hdr ssl = find_tlv(buf, n, PP2_TYPE_SSL), sub;
	X509_NAME *name = X509_get_subject_name(cert);
	int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	int full = -1;
	size_t got = 0;
	const unsigned char *cn = NULL;

	if (ssl.p == NULL)
		fz_fail("proxy_tls_header: no SSL TLV");
	get(&ssl, 5, "SSL client and verify");
	while (ssl.left > 0) {
		unsigned t = *get(&ssl, 1, "sub-TLV type");

		sub.left = get16(&ssl, "sub-TLV length");
		sub.p = get(&ssl, sub.left, "sub-TLV value");
		if (t == PP2_SUBTYPE_SSL_CN) {
			cn = sub.p;
			got = sub.left;
		}
	}
	if (i >= 0)
		full = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(
		    X509_NAME_get_entry(name, i)));
	if (full <= 0 || memchr(utf8, '\0', (size_t)full) != NULL) {
		if (cn != NULL)
			fz_fail("proxy_tls_header: a CN sub-TLV for a CN that has none to give");
	} else if (cn == NULL || got > (size_t)full || memcmp(cn, utf8, got) != 0 ||
	    ((size_t)full <= CN_MAX ? got != (size_t)full : got + 3 < CN_MAX || got > CN_MAX))
		fz_fail("proxy_tls_header: CN sub-TLV of %zu bytes for a CN of %d", got, full);
	else if (got < (size_t)full && (utf8[got] & 0xC0) == 0x80)
		fz_fail("proxy_tls_header: the CN (%d bytes of UTF-8) cut inside a character, "
		    "at %zu bytes", full, got);
	OPENSSL_free(utf8);
}

static void
tls(struct fz_in *in, const struct sockaddr *peer, int version)
{
	static const int types[] = { V_ASN1_UTF8STRING, V_ASN1_T61STRING, V_ASN1_BMPSTRING,
		V_ASN1_PRINTABLESTRING, V_ASN1_IA5STRING, V_ASN1_UNIVERSALSTRING };
	size_t cnlen, buflen = 16 + (size_t)fz_u16(in);
	int type = types[fz_u8(in) % (sizeof(types) / sizeof(types[0]))];
	const uint8_t *cn = fz_bytes(in, 1024, &cnlen);
	X509 *cert = client_cert(cn, cnlen, type), *peer_cert;
	SSL *client, *server;
	BIO *cb = NULL, *sb = NULL;
	unsigned char *buf, *der = NULL;
	int with_cert = fz_u8(in) & 1, n, dlen;
	struct hdr tlv;

	if (cert == NULL)
		return;
	client = SSL_new(client_ctx);
	server = SSL_new(server_ctx);
	buf = malloc(buflen);
	if (client == NULL || server == NULL || buf == NULL ||
	    BIO_new_bio_pair(&cb, 0, &sb, 0) != 1 || SSL_use_certificate(client, cert) != 1 ||
	    SSL_use_PrivateKey(client, client_key) != 1)
		fz_fail("cannot set up a TLS connection");
	SSL_set_bio(client, cb, cb);
	SSL_set_bio(server, sb, sb);
	SSL_set_connect_state(client);
	SSL_set_accept_state(server);
	if (!handshake(client, server))
		fz_fail("the TLS handshake failed: %s",
		    ERR_reason_error_string(ERR_peek_error()));
	if ((peer_cert = SSL_get0_peer_certificate(server)) == NULL)
		fz_fail("the server has no client certificate");
	n = proxy_tls_header(version ? PROXY_PROTOCOL_V2 : PROXY_PROTOCOL_V1, with_cert, server,
	    local_fd, peer, buf, buflen);
	if (n > 0 && version) {
		/* The structure is checked by check_v2() in other runs; here the
		 * values only this path makes. */
		check_cn(buf, (size_t)n, peer_cert);
		tlv = find_tlv(buf, (size_t)n, PP2_TYPE_TLSPROXY_CLIENT_CERT);
		dlen = i2d_X509(peer_cert, &der);
		if (with_cert != (tlv.p != NULL) || (tlv.p != NULL &&
		    (dlen < 0 || tlv.left != (size_t)dlen || memcmp(tlv.p, der, tlv.left) != 0)))
			fz_fail("proxy_tls_header: the certificate TLV is not the DER certificate");
		OPENSSL_free(der);
	}
	ERR_clear_error();
	SSL_free(client);
	SSL_free(server);
	X509_free(cert);
	free(buf);
}

/* ---------------------------------------------------------------- entry */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	crc_init();
	tls_init();
	atexit(tls_free);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct sockaddr_storage client, local;
	struct proxy_info info = { 0 };
	char sni[STR_MAX + 1], version[STR_MAX + 1], cn[STR_MAX + 1], cipher[STR_MAX + 1];
	char sig[STR_MAX + 1], key[STR_MAX + 1];
	unsigned flags = fz_u8(&in);
	size_t buflen = fz_u16(&in) + (flags & 0x80 ? 0x10000 : 0);

	make_addr(&in, flags, &client);
	make_addr(&in, flags >> 2, &local);
	if ((flags & 0x70) == 0x70) {	/* the TLS connection path */
		tls(&in, (const struct sockaddr *)&client, flags & 0x80);
		return 0;
	}
	info.client = (const struct sockaddr *)&client;
	info.local = (const struct sockaddr *)&local;
	info.cert_conn = (flags >> 4) & 1;
	info.cert_sess = (flags >> 5) & 1;
	info.verify_result = (long)fz_u8(&in) - 1;
	info.sni = fz_string(&in, STR_MAX, sni, sizeof(sni));
	info.version = fz_string(&in, STR_MAX, version, sizeof(version));
	info.cn = fz_string(&in, STR_MAX, cn, sizeof(cn));
	info.cipher = fz_string(&in, STR_MAX, cipher, sizeof(cipher));
	info.sig_alg = fz_string(&in, STR_MAX, sig, sizeof(sig));
	info.key_alg = fz_string(&in, STR_MAX, key, sizeof(key));
	info.alpn = fz_bytes(&in, STR_MAX, &info.alpn_len);
	info.unique_id = fz_bytes(&in, 255, &info.unique_id_len);
	info.cert_der = fz_bytes(&in, 0x1FFFF, &info.cert_der_len);
	v1(&info, buflen);
	v2(&info, buflen);
	return 0;
}
