/*
 * fuzz_client_hello: arbitrary bytes as the start of a connection, through
 * client_hello_kind() and client_hello_wanted(), for a listener with and
 * without TLS 1.3 (the first byte chooses).  Checks:
 *  - PARTIAL exactly while the 5-byte header or the record it announces
 *    is not all there, and then "wanted" is more than was given;
 *  - the verdict depends on the first record only: the same for the
 *    record alone as for the record with anything after it;
 *  - against OpenSSL's own ClientHello parser (a server SSL's client
 *    hello callback, fed the same record): whenever OpenSSL reads a
 *    ClientHello out of that one record, the verdict is NEW or RESUMING,
 *    and RESUMING exactly when OpenSSL sees a non-empty session_ticket,
 *    a pre_shared_key, or a session ID that TLS 1.2 would resume.
 */
#include <stdint.h>
#include <string.h>

#include <openssl/ssl.h>

#include "fuzzlib.h"
#include "../../src/client_hello.h"

#define EXT_SESSION_TICKET	35
#define EXT_PRE_SHARED_KEY	41
#define EXT_SUPPORTED_VERSIONS	43

/* What OpenSSL's parser saw of the ClientHello. */
struct seen {
	int called;
	int ticket, psk, tls13, sid;
};

static SSL_CTX *ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * 1 if the supported_versions list ${p} names TLS 1.3, 0 if not, -1 if it
 * is malformed (OpenSSL then fails the handshake, whatever we said).
 */
static int
offers_tls13(const unsigned char *p, size_t len)
{
	if (len < 1 || p[0] != len - 1 || (len - 1) % 2 != 0)
		return -1;
	for (size_t i = 1; i + 1 < len; i += 2)
		if (p[i] == 3 && p[i + 1] == 4)
			return 1;
	return 0;
}

static int
on_hello(SSL *ssl, int *alert, void *arg)
{
	struct seen *seen = SSL_get_app_data(ssl);
	const unsigned char *p, *sid;
	size_t len;

	seen->called = 1;
	seen->ticket = SSL_client_hello_get0_ext(ssl, EXT_SESSION_TICKET, &p, &len) == 1 &&
	    len > 0;
	seen->psk = SSL_client_hello_get0_ext(ssl, EXT_PRE_SHARED_KEY, &p, &len) == 1;
	seen->tls13 = SSL_client_hello_get0_ext(ssl, EXT_SUPPORTED_VERSIONS, &p, &len) == 1 ?
	    offers_tls13(p, len) : 0;
	seen->sid = SSL_client_hello_get0_session_id(ssl, &sid) > 0;
	/* Seen all that is needed: stop the handshake here. */
	*alert = SSL_AD_INTERNAL_ERROR;
	return SSL_CLIENT_HELLO_ERROR;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		fz_fail("SSL_CTX_new");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_client_hello_cb(ctx, on_hello, NULL);
	return 0;
}

/* OpenSSL's reading of ${len} bytes: the first record only. */
static void
openssl_reads(const uint8_t *rec, size_t len, struct seen *seen)
{
	SSL *ssl = SSL_new(ctx);
	BIO *in = BIO_new_mem_buf(rec, (int)len), *out = BIO_new(BIO_s_mem());

	if (ssl == NULL || in == NULL || out == NULL)
		fz_fail("out of memory");
	BIO_set_mem_eof_return(in, -1);
	SSL_set_bio(ssl, in, out);
	SSL_set_app_data(ssl, seen);
	SSL_set_accept_state(ssl);
	SSL_do_handshake(ssl);
	SSL_free(ssl);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *buf = data + 1;
	size_t len = size > 0 ? size - 1 : 0, rec_len, wanted;
	int tls13 = size > 0 && (data[0] & 1);
	enum client_hello_kind kind, alone;
	struct seen seen = { 0 };

	if (size == 0)
		return 0;
	kind = client_hello_kind(buf, len, tls13);
	wanted = client_hello_wanted(buf, len);
	if (len < 5) {
		if (kind != CLIENT_HELLO_PARTIAL || wanted != 5)
			fz_fail("%zu bytes: kind %d, wanted %zu (PARTIAL, 5 expected)", len,
			    kind, wanted);
		return 0;
	}
	rec_len = (size_t)buf[3] << 8 | buf[4];
	if (buf[0] != 22 || buf[1] != 3) {
		if (kind != CLIENT_HELLO_OTHER)
			fz_fail("a record of type %u version %u.%u is kind %d, not OTHER",
			    buf[0], buf[1], buf[2], kind);
		return 0;
	}
	if (wanted != 5 + rec_len)
		fz_fail("wanted %zu for a record of %zu bytes", wanted, rec_len);
	if (len < wanted) {
		if (kind != CLIENT_HELLO_PARTIAL)
			fz_fail("%zu of %zu bytes: kind %d, not PARTIAL", len, wanted, kind);
		return 0;
	}
	if (kind == CLIENT_HELLO_PARTIAL)
		fz_fail("PARTIAL with all %zu bytes of the record there", wanted);
	alone = client_hello_kind(buf, wanted, tls13);
	if (alone != kind)
		fz_fail("kind %d for the record alone, %d with %zu bytes after it", alone, kind,
		    len - wanted);

	/* OpenSSL on the record alone, and only if it holds the whole message. */
	if (wanted < 9 || buf[5] != 1 ||
	    ((size_t)buf[6] << 16 | (size_t)buf[7] << 8 | buf[8]) + 4 > rec_len)
		return 0;
	openssl_reads(buf, wanted, &seen);
	if (!seen.called)
		return 0;
	if (kind != CLIENT_HELLO_NEW && kind != CLIENT_HELLO_RESUMING)
		fz_fail("OpenSSL read a ClientHello that is kind %d", kind);
	if (seen.tls13 == -1 && seen.sid && tls13 && !seen.ticket && !seen.psk)
		return 0;	/* a broken version list: OpenSSL refuses it either way */
	if ((kind == CLIENT_HELLO_RESUMING) !=
	    (seen.ticket || seen.psk || (seen.sid && !(tls13 && seen.tls13))))
		fz_fail("kind %d, but OpenSSL saw ticket %d psk %d session ID %d TLS 1.3 %d "
		    "(listener TLS 1.3 %d)", kind, seen.ticket, seen.psk, seen.sid, seen.tls13,
		    tls13);
	return 0;
}
