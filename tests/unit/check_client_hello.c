/*
 * check_client_hello: real ClientHellos from OpenSSL clients, fresh or
 * offering a TLS 1.3 ticket (PSK), a TLS 1.2 ticket or a TLS 1.2 session
 * ID, sorted the way full_handshake_rate relies on: only a ClientHello
 * that cannot resume is NEW.  Every prefix of one is PARTIAL or OTHER,
 * and every one-byte change of one is read within its bounds (ASan and
 * valgrind see any overread).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "testlib.h"
#include "../../src/client_hello.h"
#include "../../src/config.h"
#include "../../src/ticket_keys.h"

#define HELLO_MAX 4096

struct hello {
	unsigned char b[HELLO_MAX];
	size_t len;
};

/* The first flight of a client of ${cctx} offering ${sess} (or none). */
static void
hello_of(SSL_CTX *cctx, SSL_SESSION *sess, struct hello *h)
{
	SSL *ssl = SSL_new(cctx);
	BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
	int n;

	ck_assert_ptr_nonnull(ssl);
	SSL_set_bio(ssl, in, out);
	SSL_set_tlsext_host_name(ssl, "localhost");
	if (sess != NULL)
		ck_assert_int_eq(SSL_set_session(ssl, sess), 1);
	ck_assert_int_eq(SSL_connect(ssl), -1);
	ck_assert_int_eq(SSL_get_error(ssl, -1), SSL_ERROR_WANT_READ);
	n = BIO_read(out, h->b, sizeof(h->b));
	ck_assert_int_gt(n, 0);
	h->len = (size_t)n;
	SSL_free(ssl);
}

/* A session of a client of ${version} from a server in tickets ${mode}. */
static SSL_SESSION *
session_from(int version, enum tickets_mode mode)
{
	struct settings s;
	struct listener_settings ls;
	struct ticket_keys *tk;
	SSL_CTX *sctx, *cctx = tl_client_ctx(version);
	struct tl_tls *t;
	SSL_SESSION *sess;

	tl_tls_settings(&s, &ls);
	s.tickets.mode = mode;
	sctx = tl_server_ctx(&s, &ls, &tk);
	t = tl_tls_new(cctx, sctx, TL_LINK_MEMORY);
	ck_assert_int_eq(tl_tls_handshake(t), 1);
	tl_tls_settle(t);
	sess = SSL_get1_session(t->client);
	ck_assert_ptr_nonnull(sess);
	ck_assert_int_eq(SSL_SESSION_is_resumable(sess), 1);
	tl_tls_free(t);
	tl_server_ctx_free(sctx, tk);
	SSL_CTX_free(cctx);
	return sess;
}

static enum client_hello_kind
kind_of(int version, SSL_SESSION *sess, int tls13, struct hello *h)
{
	SSL_CTX *cctx = tl_client_ctx(version);

	hello_of(cctx, sess, h);
	SSL_CTX_free(cctx);
	return client_hello_kind(h->b, h->len, tls13);
}

START_TEST(test_fresh_hellos_are_new)
{
	struct hello h;

	/* TLS 1.3 and 1.2 offered: TLS 1.3 is negotiated, its random legacy
	 * session ID resumes nothing... */
	ck_assert_int_eq(kind_of(0, NULL, 1, &h), CLIENT_HELLO_NEW);
	/* ...unless the listener is TLS 1.2 only: then it could be a session ID. */
	ck_assert_int_eq(kind_of(0, NULL, 0, &h), CLIENT_HELLO_RESUMING);
	ck_assert_int_eq(kind_of(TLS1_3_VERSION, NULL, 1, &h), CLIENT_HELLO_NEW);
	/* A TLS 1.2 client with no session: an empty ID and an empty ticket. */
	ck_assert_int_eq(kind_of(TLS1_2_VERSION, NULL, 1, &h), CLIENT_HELLO_NEW);
	ck_assert_int_eq(kind_of(TLS1_2_VERSION, NULL, 0, &h), CLIENT_HELLO_NEW);
}
END_TEST

START_TEST(test_offered_sessions_are_resuming)
{
	SSL_SESSION *s13 = session_from(TLS1_3_VERSION, TICKETS_STATELESS);
	SSL_SESSION *t12 = session_from(TLS1_2_VERSION, TICKETS_STATELESS);
	SSL_SESSION *id12 = session_from(TLS1_2_VERSION, TICKETS_OFF);
	struct hello h;

	ck_assert_int_eq(kind_of(TLS1_3_VERSION, s13, 1, &h), CLIENT_HELLO_RESUMING);
	ck_assert_int_eq(kind_of(0, s13, 1, &h), CLIENT_HELLO_RESUMING);
	ck_assert_int_eq(kind_of(TLS1_2_VERSION, t12, 1, &h), CLIENT_HELLO_RESUMING);
	ck_assert_int_eq(kind_of(TLS1_2_VERSION, id12, 1, &h), CLIENT_HELLO_RESUMING);
	ck_assert_int_eq(kind_of(TLS1_2_VERSION, id12, 0, &h), CLIENT_HELLO_RESUMING);
	SSL_SESSION_free(s13);
	SSL_SESSION_free(t12);
	SSL_SESSION_free(id12);
}
END_TEST

START_TEST(test_prefixes_and_trailing_bytes)
{
	SSL_SESSION *t12 = session_from(TLS1_2_VERSION, TICKETS_STATELESS);
	struct hello fresh, resuming, *hs[] = { &fresh, &resuming };
	unsigned char buf[HELLO_MAX + 16];
	enum client_hello_kind k;

	kind_of(0, NULL, 1, &fresh);
	kind_of(TLS1_2_VERSION, t12, 1, &resuming);
	for (size_t i = 0; i < 2; i++) {
		struct hello *h = hs[i];

		/* Short of the whole record it is not yet anything, and what it
		 * wants is the whole record. */
		for (size_t len = 0; len < h->len; len++) {
			unsigned char *cut = malloc(len > 0 ? len : 1);

			memcpy(cut, h->b, len);
			k = client_hello_kind(cut, len, 1);
			ck_assert_msg(k == CLIENT_HELLO_PARTIAL,
			    "hello %zu cut at %zu of %zu: %d", i, len, h->len, (int)k);
			ck_assert_uint_eq(client_hello_wanted(cut, len), len < 5 ? 5 : h->len);
			free(cut);
		}
		/* What follows the first record changes nothing. */
		memcpy(buf, h->b, h->len);
		memset(buf + h->len, 0x16, 16);
		ck_assert_int_eq(client_hello_kind(buf, h->len + 16, 1),
		    i == 0 ? CLIENT_HELLO_NEW : CLIENT_HELLO_RESUMING);
	}
	SSL_SESSION_free(t12);
}
END_TEST

START_TEST(test_not_a_hello)
{
	static const unsigned char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	/* A ServerHello header, and a ClientHello longer than its record. */
	static const unsigned char server_hello[] = { 22, 3, 3, 0, 4, 2, 0, 0, 0 };
	static const unsigned char too_long[] = { 22, 3, 1, 0, 4, 1, 0, 0, 200 };
	struct hello h;

	ck_assert_int_eq(client_hello_kind(http, sizeof(http) - 1, 1), CLIENT_HELLO_OTHER);
	ck_assert_int_eq(client_hello_kind(server_hello, sizeof(server_hello), 1),
	    CLIENT_HELLO_OTHER);
	ck_assert_int_eq(client_hello_kind(too_long, sizeof(too_long), 1),
	    CLIENT_HELLO_OTHER);
	/* A ClientHello with a byte after its extensions (both lengths grown). */
	kind_of(0, NULL, 1, &h);
	ck_assert_int_eq(client_hello_kind(h.b, h.len, 1), CLIENT_HELLO_NEW);
	h.b[h.len++] = 0;
	h.b[3] = (unsigned char)((h.len - 5) >> 8);
	h.b[4] = (unsigned char)((h.len - 5) & 0xff);
	h.b[7] = (unsigned char)((h.len - 9) >> 8);
	h.b[8] = (unsigned char)((h.len - 9) & 0xff);
	ck_assert_int_eq(h.b[6], 0);
	ck_assert_int_eq(client_hello_kind(h.b, h.len, 1), CLIENT_HELLO_OTHER);
}
END_TEST

START_TEST(test_every_byte_changed)
{
	SSL_SESSION *s13 = session_from(TLS1_3_VERSION, TICKETS_STATELESS);
	struct hello h;
	unsigned char *b;
	enum client_hello_kind k;

	kind_of(0, s13, 1, &h);
	/* Each byte set to each of a few values, in a buffer of exactly its
	 * length: a read out of bounds is the sanitizers' and valgrind's to see. */
	for (size_t i = 0; i < h.len; i++) {
		static const unsigned char values[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };

		for (size_t v = 0; v < sizeof(values); v++) {
			b = malloc(h.len);
			memcpy(b, h.b, h.len);
			b[i] = values[v];
			k = client_hello_kind(b, h.len, 1);
			ck_assert(k >= CLIENT_HELLO_PARTIAL && k <= CLIENT_HELLO_OTHER);
			free(b);
		}
	}
	SSL_SESSION_free(s13);
}
END_TEST

static Suite *
client_hello_suite(void)
{
	Suite *s = suite_create("client_hello");
	TCase *tc = tl_tls_tcase("client_hello");

	tcase_add_test(tc, test_fresh_hellos_are_new);
	tcase_add_test(tc, test_offered_sessions_are_resuming);
	tcase_add_test(tc, test_prefixes_and_trailing_bytes);
	tcase_add_test(tc, test_not_a_hello);
	tcase_add_test(tc, test_every_byte_changed);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(client_hello_suite());
}
