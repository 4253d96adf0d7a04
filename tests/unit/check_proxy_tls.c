/*
 * check_proxy_tls: the PROXY header of a real connection.  A client
 * connects over TCP on 127.0.0.1 to a listener's context from
 * tls_ctx_new(), and the header is built from the server's end as conn.c
 * builds it.  What it should say is read from the client's end: its
 * address and the one it reached, the version and cipher it agreed, the
 * name it asked for, the certificate it sent.
 *
 * Version 1: the addresses and ports.  Version 2: the same, SNI as
 * AUTHORITY, and the SSL TLV with its client flags (CERT_CONN only on a
 * full handshake, CERT_SESS also on a resumed one, TLS 1.2 and 1.3, by
 * session ID and by tickets), the verify field, version, cipher, CN and
 * the server key's algorithms; the certificate's DER in 0xE0 only when
 * asked for.  And -1 when the buffer is too small or the fd no socket.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "testlib.h"
#include "../../src/proxy_header.h"
#include "../../src/proxy_tls.h"
#include "../../src/ticket_keys.h"

#define SNI "mqtt.example.com"
#define PP2_SIG "\r\n\r\n\0\r\nQUIT\n"

static const int versions[] = { TLS1_2_VERSION, TLS1_3_VERSION };

/* A TLS connection over TCP, asking for ${sni} if not NULL; it must succeed. */
static struct tl_tls *
connect_tcp(SSL_CTX *cctx, SSL_CTX *sctx, const char *sni, SSL_SESSION *offer)
{
	struct tl_tls *t = tl_tls_new(cctx, sctx, TL_LINK_TCP);

	if (sni != NULL)
		ck_assert(SSL_set_tlsext_host_name(t->client, sni) == 1);
	if (offer != NULL)
		tl_tls_offer(t, offer);
	ck_assert_msg(tl_tls_handshake(t), "client: %s; server: %s", t->client_error,
	    t->server_error);
	tl_tls_settle(t);
	return t;
}

/* A listener, a client, and a connection between them. */
struct world {
	struct ticket_keys *tk;
	SSL_CTX *sctx, *cctx;
	struct tl_tls *t;
};

/*
 * A listener with ${mode} client verification and ${tickets}, and a client
 * of ${version} with the test client's certificate if ${cert}, connected,
 * asking for ${sni} if not NULL.
 */
static void
world_start(struct world *w, enum verify_client mode, enum tickets_mode tickets,
    int version, int cert, const char *sni)
{
	static const unsigned char alpn[] = "\x04mqtt";
	struct settings s;
	struct listener_settings ls;

	tl_tls_settings(&s, &ls);
	ls.verify_client = mode;
	if (mode != VERIFY_CLIENT_NONE)
		ls.client_ca = (char *)tl_path("ca.pem");
	ls.proxy_protocol = PROXY_PROTOCOL_V2;
	s.tickets.mode = tickets;
	w->sctx = tl_server_ctx(&s, &ls, &w->tk);
	w->cctx = tl_client_ctx(version);
	if (cert) {
		ck_assert(SSL_CTX_use_certificate(w->cctx, tl_cert(TL_CLIENT)) == 1);
		ck_assert(SSL_CTX_use_PrivateKey(w->cctx, tl_key(TL_CLIENT)) == 1);
	}
	/* As MQTT clients do; the listener takes up no ALPN protocol. */
	ck_assert_int_eq(SSL_CTX_set_alpn_protos(w->cctx, alpn, sizeof(alpn) - 1), 0);
	w->t = connect_tcp(w->cctx, w->sctx, sni, NULL);
}

static void
world_end(struct world *w)
{
	tl_tls_free(w->t);
	SSL_CTX_free(w->cctx);
	tl_server_ctx_free(w->sctx, w->tk);
}

/* The header of ${t}'s server end, as conn.c asks for it. */
static int
header(struct tl_tls *t, enum proxy_protocol version, int with_cert, unsigned char *buf,
    size_t len)
{
	return proxy_tls_header(version, with_cert, t->server, t->server_fd,
	    (const struct sockaddr *)&t->peer, buf, len);
}

/* The client's address and the one it connected to, from the client's end. */
static void
client_view(struct tl_tls *t, struct sockaddr_in *src, struct sockaddr_in *dst)
{
	socklen_t len = sizeof(*src);

	ck_assert_int_eq(getsockname(t->client_fd, (struct sockaddr *)src, &len), 0);
	len = sizeof(*dst);
	ck_assert_int_eq(getpeername(t->client_fd, (struct sockaddr *)dst, &len), 0);
	ck_assert_int_eq(src->sin_family, AF_INET);
}

START_TEST(test_v1_addresses)
{
	struct world w;
	struct sockaddr_in src, dst;
	unsigned char buf[PROXY_HEADER_V1_MAX];
	char want[PROXY_HEADER_V1_MAX + 1], a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];
	int n;

	world_start(&w, VERIFY_CLIENT_NONE, TICKETS_OFF, versions[_i], 0, SNI);
	client_view(w.t, &src, &dst);
	ck_assert_ptr_nonnull(inet_ntop(AF_INET, &src.sin_addr, a, sizeof(a)));
	ck_assert_ptr_nonnull(inet_ntop(AF_INET, &dst.sin_addr, b, sizeof(b)));
	snprintf(want, sizeof(want), "PROXY TCP4 %s %s %u %u\r\n", a, b, ntohs(src.sin_port),
	    ntohs(dst.sin_port));
	ck_assert_uint_ne(src.sin_port, dst.sin_port);
	n = header(w.t, PROXY_PROTOCOL_V1, 1, buf, sizeof(buf));
	ck_assert_int_eq(n, (int)strlen(want));
	ck_assert_mem_eq(buf, want, (size_t)n);
	/* Every shorter buffer: -1. */
	for (size_t len = 0; len < (size_t)n; len++)
		ck_assert_msg(header(w.t, PROXY_PROTOCOL_V1, 0, buf, len) == -1,
		    "%zu bytes accepted", len);
	world_end(&w);
}
END_TEST

struct want {
	unsigned flags;			/* PP2_CLIENT_* */
	const char *sni, *cn;		/* NULL: absent */
	int cert_der;			/* the client certificate in 0xE0 */
};

/* The string sub-TLV ${type} of the SSL TLV at ${v} equals ${want}. */
static void
assert_sub(const unsigned char *v, size_t vlen, unsigned type, const char *want)
{
	size_t len;
	int off = tl_pp2_sub(v, vlen, type, &len);

	if (want == NULL) {
		ck_assert_msg(off < 0, "sub-TLV 0x%02x present", type);
		return;
	}
	ck_assert_msg(off >= 0, "sub-TLV 0x%02x missing, want \"%s\"", type, want);
	ck_assert_msg(len == strlen(want) && memcmp(v + off, want, len) == 0,
	    "sub-TLV 0x%02x is \"%.*s\", want \"%s\"", type, (int)len, v + off, want);
}

/* Header ${h} of ${t} says what the client's end knows, and ${w}. */
static void
assert_v2(struct tl_tls *t, unsigned char *h, int n, const struct want *w)
{
	struct sockaddr_in src, dst;
	unsigned char *der = NULL;
	size_t len;
	int v, derlen;

	ck_assert_int_gt(n, 16 + 12);
	ck_assert_mem_eq(h, PP2_SIG, 12);
	ck_assert_int_eq(h[12], 0x21);		/* version 2, PROXY */
	ck_assert_int_eq(h[13], 0x11);		/* TCP over IPv4 */
	client_view(t, &src, &dst);
	ck_assert_mem_eq(h + 16, &src.sin_addr, 4);
	ck_assert_mem_eq(h + 20, &dst.sin_addr, 4);
	ck_assert_mem_eq(h + 24, &src.sin_port, 2);
	ck_assert_mem_eq(h + 26, &dst.sin_port, 2);

	v = tl_pp2_tlv(h, n, PP2_TYPE_AUTHORITY, &len);
	if (w->sni != NULL) {
		ck_assert_msg(v >= 0, "no AUTHORITY");
		ck_assert_uint_eq(len, strlen(w->sni));
		ck_assert_mem_eq(h + v, w->sni, len);
	} else
		ck_assert_int_lt(v, 0);
	/* The client offers one, tls_ctx takes up none. */
	ck_assert_int_lt(tl_pp2_tlv(h, n, PP2_TYPE_ALPN, &len), 0);

	v = tl_pp2_tlv(h, n, PP2_TYPE_SSL, &len);
	ck_assert_msg(v >= 0, "no SSL TLV");
	ck_assert_uint_eq(h[v], w->flags);
	/* Verified (0) only with a certificate: without one, nothing was. */
	if (w->flags & PP2_CLIENT_CERT_SESS)
		ck_assert_uint_eq(tl_be32(h + v + 1), 0);
	else
		ck_assert_uint_ne(tl_be32(h + v + 1), 0);
	assert_sub(h + v, len, PP2_SUBTYPE_SSL_VERSION, SSL_get_version(t->client));
	assert_sub(h + v, len, PP2_SUBTYPE_SSL_CIPHER, SSL_get_cipher_name(t->client));
	assert_sub(h + v, len, PP2_SUBTYPE_SSL_CN, w->cn);
	assert_sub(h + v, len, PP2_SUBTYPE_SSL_SIG_ALG, "ecdsa-with-SHA256");
	assert_sub(h + v, len, PP2_SUBTYPE_SSL_KEY_ALG, "EC256");

	v = tl_pp2_tlv(h, n, PP2_TYPE_TLSPROXY_CLIENT_CERT, &len);
	if (w->cert_der) {
		ck_assert_msg(v >= 0, "no client certificate TLV");
		ck_assert_int_gt(derlen = i2d_X509(tl_cert(TL_CLIENT), &der), 0);
		ck_assert_uint_eq(len, (size_t)derlen);
		ck_assert_mem_eq(h + v, der, len);
		OPENSSL_free(der);
	} else
		ck_assert_msg(v < 0, "client certificate TLV present");
	tl_pp2_assert_crc(h, n);
}

START_TEST(test_v2_full_handshake)
{
	struct world w;
	struct want want = { PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS,
	    SNI, "device1", 0 };
	unsigned char buf[4096];
	int n;

	world_start(&w, VERIFY_CLIENT_REQUIRE, TICKETS_OFF, versions[_i], 1, SNI);
	ck_assert(!SSL_session_reused(w.t->server));
	n = header(w.t, PROXY_PROTOCOL_V2, 0, buf, sizeof(buf));
	assert_v2(w.t, buf, n, &want);
	want.cert_der = 1;
	n = header(w.t, PROXY_PROTOCOL_V2, 1, buf, sizeof(buf));
	assert_v2(w.t, buf, n, &want);
	world_end(&w);
}
END_TEST

/* Resumption of either version, by session ID (stateful) or by a ticket (stateless). */
static const struct {
	int version;
	enum tickets_mode tickets;
} resumptions[] = {
	{ TLS1_2_VERSION, TICKETS_STATEFUL },
	{ TLS1_2_VERSION, TICKETS_STATELESS },
	{ TLS1_3_VERSION, TICKETS_STATEFUL },
	{ TLS1_3_VERSION, TICKETS_STATELESS },
};
#define NRESUMPTIONS (sizeof(resumptions) / sizeof(resumptions[0]))

START_TEST(test_v2_resumed)
{
	struct world w;
	/* The certificate of the full handshake, from the session. */
	struct want want = { PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS, SNI, "device1", 1 };
	SSL_SESSION *sess;
	unsigned char buf[4096];
	int n;

	world_start(&w, VERIFY_CLIENT_REQUIRE, resumptions[_i].tickets,
	    resumptions[_i].version, 1, SNI);
	ck_assert_ptr_nonnull(sess = SSL_get1_session(w.t->client));
	tl_tls_free(w.t);
	w.t = connect_tcp(w.cctx, w.sctx, SNI, sess);
	ck_assert_msg(SSL_session_reused(w.t->server), "not resumed");
	n = header(w.t, PROXY_PROTOCOL_V2, 1, buf, sizeof(buf));
	assert_v2(w.t, buf, n, &want);
	want.cert_der = 0;
	n = header(w.t, PROXY_PROTOCOL_V2, 0, buf, sizeof(buf));
	assert_v2(w.t, buf, n, &want);
	SSL_SESSION_free(sess);
	world_end(&w);
}
END_TEST

START_TEST(test_v2_without_client_cert)
{
	struct world w;
	struct want want = { PP2_CLIENT_SSL, NULL, NULL, 0 };
	unsigned char buf[4096];
	int n;

	/* Optional, and none sent; no SNI either. */
	world_start(&w, VERIFY_CLIENT_OPTIONAL, TICKETS_OFF, versions[_i], 0, NULL);
	ck_assert_ptr_null(SSL_get0_peer_certificate(w.t->server));
	/* Nothing to send even when the certificate is asked for. */
	n = header(w.t, PROXY_PROTOCOL_V2, 1, buf, sizeof(buf));
	assert_v2(w.t, buf, n, &want);
	world_end(&w);
}
END_TEST

START_TEST(test_v2_too_small)
{
	struct world w;
	struct tl_tls *t;
	unsigned char buf[4096];
	int plain, with_cert;

	world_start(&w, VERIFY_CLIENT_REQUIRE, TICKETS_OFF, versions[_i], 1, SNI);
	t = w.t;

	plain = header(t, PROXY_PROTOCOL_V2, 0, buf, sizeof(buf));
	with_cert = header(t, PROXY_PROTOCOL_V2, 1, buf, sizeof(buf));
	ck_assert_int_gt(plain, 16);
	ck_assert_int_gt(with_cert, plain);
	for (size_t len = 0; len < (size_t)plain; len += len < 32 ? 1 : 7)
		ck_assert_msg(header(t, PROXY_PROTOCOL_V2, 0, buf, len) == -1,
		    "%zu bytes accepted", len);
	ck_assert_int_eq(header(t, PROXY_PROTOCOL_V2, 0, buf, (size_t)plain - 1), -1);
	ck_assert_int_eq(header(t, PROXY_PROTOCOL_V2, 0, buf, (size_t)plain), plain);
	/* Room for the header, not for the certificate too. */
	ck_assert_int_eq(header(t, PROXY_PROTOCOL_V2, 1, buf, (size_t)plain), -1);
	ck_assert_int_eq(header(t, PROXY_PROTOCOL_V2, 1, buf, (size_t)with_cert - 1), -1);
	ck_assert_int_eq(header(t, PROXY_PROTOCOL_V2, 1, buf, (size_t)with_cert), with_cert);
	world_end(&w);
}
END_TEST

/*
 * A CN longer than the header keeps (255 bytes of UTF-8) is cut at a
 * character boundary: found by fuzz_proxy_header with 200 times "é" as a
 * T61String, which is 400 bytes in UTF-8 and was cut after 255, half-way
 * through a character.  The certificate is the fuzzer's: the test CA's,
 * with the CN set as is (OpenSSL would refuse to build a CN over 64
 * characters, but a certificate made elsewhere may have one).
 */
START_TEST(test_v2_long_cn)
{
	unsigned char cn[200], buf[4096];
	X509 *cert = X509_new();
	struct world w;
	size_t len, sublen;
	int v, sub, n;

	memset(cn, 0xE9, sizeof(cn));		/* "é" in Latin-1 (T61String) */
	ck_assert_ptr_nonnull(cert);
	ck_assert(X509_set_version(cert, 2) == 1);
	ck_assert(ASN1_INTEGER_set(X509_get_serialNumber(cert), 99) == 1);
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(cert), -3600));
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(cert), 86400));
	ck_assert(X509_NAME_add_entry_by_NID(X509_get_subject_name(cert), NID_commonName,
	    V_ASN1_T61STRING, cn, sizeof(cn), -1, 0) == 1);
	ck_assert(X509_set_issuer_name(cert, X509_get_subject_name(tl_cert(TL_CA))) == 1);
	ck_assert(X509_set_pubkey(cert, tl_key(TL_CLIENT)) == 1);
	ck_assert(X509_sign(cert, tl_key(TL_CA), EVP_sha256()) > 0);

	world_start(&w, VERIFY_CLIENT_OPTIONAL, TICKETS_OFF, versions[_i], 0, NULL);
	tl_tls_free(w.t);
	ck_assert(SSL_CTX_use_certificate(w.cctx, cert) == 1);
	ck_assert(SSL_CTX_use_PrivateKey(w.cctx, tl_key(TL_CLIENT)) == 1);
	w.t = connect_tcp(w.cctx, w.sctx, NULL, NULL);
	n = header(w.t, PROXY_PROTOCOL_V2, 0, buf, sizeof(buf));
	ck_assert_int_gt(n, 16);
	v = tl_pp2_tlv(buf, n, PP2_TYPE_SSL, &len);
	ck_assert_int_ge(v, 0);
	sub = tl_pp2_sub(buf + v, len, PP2_SUBTYPE_SSL_CN, &sublen);
	ck_assert_int_ge(sub, 0);
	/* 127 whole characters of two bytes: 254 bytes, not 255. */
	ck_assert_uint_eq(sublen, 254);
	for (size_t i = 0; i < sublen; i += 2)
		ck_assert_msg(buf[v + sub + i] == 0xC3 && buf[v + sub + i + 1] == 0xA9,
		    "byte %zu of the CN is not \"é\" in UTF-8", i);
	X509_free(cert);
	world_end(&w);
}
END_TEST

START_TEST(test_not_a_socket)
{
	struct world w;
	unsigned char buf[4096];
	int p[2];

	world_start(&w, VERIFY_CLIENT_NONE, TICKETS_OFF, 0, 0, SNI);
	/* Its local address is unknown: no header, rather than a wrong one. */
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(proxy_tls_header(PROXY_PROTOCOL_V1, 0, w.t->server, p[0],
	    (const struct sockaddr *)&w.t->peer, buf, sizeof(buf)), -1);
	ck_assert_int_eq(proxy_tls_header(PROXY_PROTOCOL_V2, 0, w.t->server, p[0],
	    (const struct sockaddr *)&w.t->peer, buf, sizeof(buf)), -1);
	close(p[0]);
	close(p[1]);
	world_end(&w);
}
END_TEST

static Suite *
proxy_tls_suite(void)
{
	Suite *s = suite_create("proxy_tls");
	TCase *tc = tl_tls_tcase("header");

	tcase_add_loop_test(tc, test_v1_addresses, 0, 2);
	tcase_add_loop_test(tc, test_v2_full_handshake, 0, 2);
	tcase_add_loop_test(tc, test_v2_resumed, 0, NRESUMPTIONS);
	tcase_add_loop_test(tc, test_v2_without_client_cert, 0, 2);
	tcase_add_loop_test(tc, test_v2_too_small, 0, 2);
	tcase_add_loop_test(tc, test_v2_long_cn, 0, 2);
	tcase_add_test(tc, test_not_a_socket);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(proxy_tls_suite());
}
