/*
 * check_ocsp: OCSP responses made here with the OpenSSL API and the test
 * PKI, written to files and loaded by ocsp_staple_load(): good ones
 * accepted (signed by the issuer or by its delegated responder, either
 * CertID hash, with or without nextUpdate), every other kind refused with
 * its reason; then stapled by real handshakes, TLS 1.2 and 1.3, only to
 * clients that ask and only while the response is in force.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "testlib.h"
#include "../../src/ocsp.h"
#include "../../src/tls_ctx.h"

#define HOUR 3600L

/* What one made-up response says and who signs it. */
struct resp_spec {
	X509 *cert;			/* the certificate it is about */
	enum tl_id signer;		/* its key signs the response */
	int carry_signer;		/* the signer's certificate goes in the response */
	const EVP_MD *id_md;		/* the CertID's hash */
	int status;			/* V_OCSP_CERTSTATUS_* */
	long this_update, next_update;	/* seconds from now; next_update 0: none */
	int resp_status;		/* OCSP_RESPONSE_STATUS_* */
};

/* A good response for the server certificate, signed by the test CA. */
static struct resp_spec
good_spec(void)
{
	struct resp_spec r = {
		.cert = tl_cert(TL_SERVER), .signer = TL_CA, .carry_signer = 0,
		.id_md = EVP_sha1(), .status = V_OCSP_CERTSTATUS_GOOD,
		.this_update = -HOUR, .next_update = HOUR,
		.resp_status = OCSP_RESPONSE_STATUS_SUCCESSFUL,
	};

	return r;
}

/* The response ${r} describes, DER-encoded into file ${name}; its path. */
static const char *
write_response(const char *name, const struct resp_spec *r)
{
	ASN1_TIME *this_update = X509_time_adj_ex(NULL, 0, r->this_update, NULL);
	ASN1_TIME *next_update = X509_time_adj_ex(NULL, 0, r->next_update, NULL);
	ASN1_TIME *revoked_at = X509_time_adj_ex(NULL, 0, -2 * HOUR, NULL);
	OCSP_BASICRESP *bs = NULL;
	OCSP_RESPONSE *resp;
	OCSP_CERTID *id;
	unsigned char *der = NULL;
	const char *path;
	int len;

	ck_assert(this_update != NULL && next_update != NULL && revoked_at != NULL);
	if (r->resp_status == OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		ck_assert_ptr_nonnull(bs = OCSP_BASICRESP_new());
		ck_assert_ptr_nonnull(id = OCSP_cert_to_id(r->id_md, r->cert, tl_cert(TL_CA)));
		ck_assert_ptr_nonnull(OCSP_basic_add1_status(bs, id, r->status,
		    r->status == V_OCSP_CERTSTATUS_REVOKED ? OCSP_REVOKED_STATUS_KEYCOMPROMISE :
		    -1, r->status == V_OCSP_CERTSTATUS_REVOKED ? revoked_at : NULL,
		    this_update, r->next_update != 0 ? next_update : NULL));
		OCSP_CERTID_free(id);
		ck_assert(OCSP_basic_sign(bs, tl_cert(r->signer), tl_key(r->signer),
		    EVP_sha256(), NULL, r->carry_signer ? 0 : OCSP_NOCERTS) == 1);
	}
	ck_assert_ptr_nonnull(resp = OCSP_response_create(r->resp_status, bs));
	ck_assert_int_gt(len = i2d_OCSP_RESPONSE(resp, &der), 0);
	path = tl_write_bytes(name, der, (size_t)len, 0644);
	OPENSSL_free(der);
	OCSP_RESPONSE_free(resp);
	OCSP_BASICRESP_free(bs);
	ASN1_TIME_free(this_update);
	ASN1_TIME_free(next_update);
	ASN1_TIME_free(revoked_at);
	return path;
}

/* The server certificate's chain as its file would have it: the test CA. */
static STACK_OF(X509) *
server_chain(void)
{
	STACK_OF(X509) *chain = sk_X509_new_null();

	ck_assert(chain != NULL && sk_X509_push(chain, tl_cert(TL_CA)) == 1);
	return chain;
}

/* ocsp_staple_load() of ${path} for the server certificate at ${now}. */
static struct ocsp_staple *
load_at(const char *path, int64_t now, char *why, size_t len)
{
	STACK_OF(X509) *chain = server_chain();
	struct ocsp_staple *st;

	why[0] = '\0';
	st = ocsp_staple_load(path, tl_cert(TL_SERVER), chain, now, why, len);
	sk_X509_free(chain);
	return st;
}

/* The response of ${r} must load, with its nextUpdate; then it is freed. */
static void
accepted(const struct resp_spec *r)
{
	char why[512];
	struct ocsp_staple *st;
	int64_t now = time(NULL), next;

	st = load_at(write_response("good.der", r), now, why, sizeof(why));
	ck_assert_msg(st != NULL, "refused: %s", why);
	next = ocsp_staple_next_update(st);
	if (r->next_update == 0)
		ck_assert_int_eq(next, 0);
	else
		ck_assert_msg(next >= now + r->next_update - 2 && next <= now + r->next_update + 2,
		    "nextUpdate %lld, expected about %lld", (long long)next,
		    (long long)(now + r->next_update));
	ocsp_staple_free(st);
}

/* ${path} must be refused, with ${reason} in what it says. */
static void
refused(const char *path, const char *reason)
{
	char why[512];
	struct ocsp_staple *st = load_at(path, time(NULL), why, sizeof(why));

	ck_assert_msg(st == NULL, "%s: accepted, expected \"%s\"", path, reason);
	ck_assert_msg(strstr(why, reason) != NULL, "%s: \"%s\", expected \"%s\"", path, why,
	    reason);
	ck_assert_msg(strchr(why, '\n') == NULL, "not one line: %s", why);
}

START_TEST(test_good_accepted)
{
	struct resp_spec r = good_spec();

	accepted(&r);
	r.id_md = EVP_sha256();		/* a responder may use another hash */
	accepted(&r);
	r.next_update = 0;		/* none: newer status is always available */
	accepted(&r);
}
END_TEST

START_TEST(test_delegated_responder_accepted)
{
	struct resp_spec r = good_spec();

	r.signer = TL_OCSP;
	r.carry_signer = 1;
	accepted(&r);
}
END_TEST

START_TEST(test_wrong_certificate_refused)
{
	struct resp_spec r = good_spec();

	r.cert = tl_cert(TL_CLIENT);	/* another certificate of the same CA */
	refused(write_response("client.der", &r), "not a response for this certificate");
}
END_TEST

START_TEST(test_wrong_signer_refused)
{
	struct resp_spec r = good_spec();
	STACK_OF(X509) *chain = sk_X509_new_null();
	struct ocsp_staple *st;
	X509 *trusted;
	char why[512];

	r.signer = TL_OTHER_CA;
	r.carry_signer = 1;
	refused(write_response("other-ca.der", &r), "not signed by the certificate's issuer "
	    "CN=tlsproxy test CA nor by an OCSP responder it delegated");
	/* Issued by the CA, but not for OCSP signing (clientAuth only). */
	r.signer = TL_CLIENT;
	refused(write_response("no-eku.der", &r), "nor by an OCSP responder it delegated");
	/*
	 * Still refused when the issuer is marked trusted for OCSP signing (as
	 * a "TRUSTED CERTIFICATE" can be): the issuer itself or its delegate,
	 * nothing else it issued.
	 */
	ck_assert_ptr_nonnull(trusted = X509_dup(tl_cert(TL_CA)));
	ck_assert(X509_add1_trust_object(trusted, OBJ_nid2obj(NID_OCSP_sign)) == 1);
	ck_assert(chain != NULL && sk_X509_push(chain, trusted) == 1);
	st = ocsp_staple_load(tl_path("no-eku.der"), tl_cert(TL_SERVER), chain, time(NULL), why,
	    sizeof(why));
	ck_assert_msg(st == NULL, "signed by a certificate without OCSPSigning: accepted");
	ck_assert_msg(strstr(why, "nor by an OCSP responder it delegated") != NULL, "%s", why);
	sk_X509_pop_free(chain, X509_free);
	/* The delegated responder, but without its certificate to check it by. */
	r.signer = TL_OCSP;
	r.carry_signer = 0;
	refused(write_response("no-cert.der", &r), "nor by an OCSP responder it delegated");
}
END_TEST

START_TEST(test_stale_refused)
{
	struct resp_spec r = good_spec();

	r.this_update = -2 * HOUR;
	r.next_update = -HOUR;
	refused(write_response("expired.der", &r), "expired: its nextUpdate");
	r.this_update = HOUR;
	r.next_update = 2 * HOUR;
	refused(write_response("future.der", &r), "is ahead of this host's clock");
	/* Within the skew allowed for the responder's clock. */
	r.this_update = OCSP_STAPLE_SKEW / 2;
	accepted(&r);
}
END_TEST

START_TEST(test_bad_status_refused)
{
	struct resp_spec r = good_spec();

	r.status = V_OCSP_CERTSTATUS_REVOKED;
	refused(write_response("revoked.der", &r), "the certificate is revoked (since ");
	refused(tl_path("revoked.der"), "reason: keyCompromise");
	r.status = V_OCSP_CERTSTATUS_UNKNOWN;
	refused(write_response("unknown.der", &r), "status is unknown, not good");
	r = good_spec();
	r.resp_status = OCSP_RESPONSE_STATUS_TRYLATER;
	refused(write_response("trylater.der", &r), "answered \"trylater\", not successful");
}
END_TEST

START_TEST(test_bad_files_refused)
{
	struct resp_spec r = good_spec();
	unsigned char *der;
	const char *good;
	size_t len;
	FILE *f;

	refused(tl_path("missing.der"), "cannot open the file: No such file or directory");
	refused(tl_write("empty.der", "", 0644), "the file is empty");
	refused(tl_write("garbage.der", "this is not DER\n", 0644), "not a DER OCSP response");
	/* A good response with a byte more: not what the responder signed. */
	good = write_response("good.der", &r);
	ck_assert_ptr_nonnull(der = malloc(OCSP_STAPLE_MAX_BYTES + 1));
	ck_assert_ptr_nonnull(f = fopen(good, "rb"));
	len = fread(der, 1, OCSP_STAPLE_MAX_BYTES, f);
	fclose(f);
	der[len] = 0;
	refused(tl_write_bytes("trailing.der", der, len + 1, 0644), "data after its end");
	memset(der, 0, OCSP_STAPLE_MAX_BYTES + 1);
	refused(tl_write_bytes("huge.der", der, OCSP_STAPLE_MAX_BYTES + 1, 0644),
	    "larger than");
	free(der);
}
END_TEST

/* A certificate file without its chain: the issuer is needed to check. */
START_TEST(test_issuer_missing_refused)
{
	struct resp_spec r = good_spec();
	STACK_OF(X509) *wrong = sk_X509_new_null();
	struct ocsp_staple *st;
	const char *path = write_response("good.der", &r);
	char why[512];

	st = ocsp_staple_load(path, tl_cert(TL_SERVER), NULL, time(NULL), why, sizeof(why));
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(why, "issuer is not in its file") != NULL, "%s", why);
	ck_assert(wrong != NULL && sk_X509_push(wrong, tl_cert(TL_OTHER_CA)) == 1);
	st = ocsp_staple_load(path, tl_cert(TL_SERVER), wrong, time(NULL), why, sizeof(why));
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(why, "issuer is not in its file") != NULL, "%s", why);
	sk_X509_free(wrong);
}
END_TEST

/* ------------------------------------------------------------ stapling */

/*
 * A handshake of ${version} with the server context ${sctx}; the client
 * asks for the status if ${ask}.  Returns the stapled response's length
 * (0: none) and its bytes in ${buf}.
 */
static long
stapled(SSL_CTX *sctx, int version, int ask, unsigned char *buf, size_t len)
{
	SSL_CTX *cctx = tl_client_ctx(version);
	const unsigned char *resp;
	struct tl_tls *t;
	long n;

	t = tl_tls_new(cctx, sctx, TL_LINK_MEMORY);
	if (ask)
		ck_assert(SSL_set_tlsext_status_type(t->client, TLSEXT_STATUSTYPE_ocsp) == 1);
	ck_assert_msg(tl_tls_handshake(t), "handshake failed: %s / %s", t->client_error,
	    t->server_error);
	n = SSL_get_tlsext_status_ocsp_resp(t->client, &resp);
	if (n > 0) {
		ck_assert_int_le(n, (long)len);
		memcpy(buf, resp, (size_t)n);
	} else
		n = 0;
	tl_tls_free(t);
	SSL_CTX_free(cctx);
	return n;
}

/* The bytes of file ${path} in ${buf}; their count. */
static long
file_bytes(const char *path, unsigned char *buf, size_t len)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, len, f);
	fclose(f);
	return (long)n;
}

/* A server context whose certificate carries the response of ${r}, loaded at ${now}. */
static SSL_CTX *
stapling_ctx(const struct resp_spec *r, int64_t now, struct ticket_keys **tk)
{
	struct settings s;
	struct listener_settings ls;
	struct ocsp_staple *st;
	SSL_CTX *ctx;
	char why[512];

	tl_tls_settings(&s, &ls);
	ctx = tl_server_ctx(&s, &ls, tk);
	st = load_at(write_response("staple.der", r), now, why, sizeof(why));
	ck_assert_msg(st != NULL, "refused: %s", why);
	ck_assert_int_eq(ocsp_staple_attach(SSL_CTX_get0_certificate(ctx), st), 0);
	ck_assert(ocsp_staple_of(SSL_CTX_get0_certificate(ctx)) == st);
	ck_assert_int_eq(ocsp_stapling_install(ctx), 0);
	return ctx;
}

static const int versions[] = { TLS1_2_VERSION, TLS1_3_VERSION };

START_TEST(test_stapled_when_asked)
{
	struct resp_spec r = good_spec();
	unsigned char want[8192], got[8192];
	struct ticket_keys *tk;
	SSL_CTX *ctx = stapling_ctx(&r, time(NULL), &tk);
	long n = file_bytes(tl_path("staple.der"), want, sizeof(want));

	ck_assert_int_eq(stapled(ctx, versions[_i], 1, got, sizeof(got)), n);
	ck_assert(memcmp(got, want, (size_t)n) == 0);
	ck_assert_int_eq(stapled(ctx, versions[_i], 0, got, sizeof(got)), 0);
	/* Dropped from the certificate: nothing stapled any more. */
	ck_assert_int_eq(ocsp_staple_attach(SSL_CTX_get0_certificate(ctx), NULL), 0);
	ck_assert_ptr_null(ocsp_staple_of(SSL_CTX_get0_certificate(ctx)));
	ck_assert_int_eq(stapled(ctx, versions[_i], 1, got, sizeof(got)), 0);
	tl_server_ctx_free(ctx, tk);
}
END_TEST

/*
 * Good when loaded half an hour ago (the test CA is an hour old), past its
 * nextUpdate now: not stapled.
 */
START_TEST(test_expired_since_load_not_stapled)
{
	struct resp_spec r = good_spec();
	unsigned char got[8192];
	struct ticket_keys *tk;
	SSL_CTX *ctx;

	r.this_update = -HOUR;
	r.next_update = -HOUR / 6;
	ctx = stapling_ctx(&r, time(NULL) - HOUR / 2, &tk);
	ck_assert_int_eq(stapled(ctx, versions[_i], 1, got, sizeof(got)), 0);
	ck_assert_int_eq(stapled(ctx, versions[_i], 1, got, sizeof(got)), 0);
	tl_server_ctx_free(ctx, tk);
}
END_TEST

/* A context whose certificate has no staple: the callback sends nothing. */
START_TEST(test_no_staple_nothing_sent)
{
	struct settings s;
	struct listener_settings ls;
	struct ticket_keys *tk;
	unsigned char got[8192];
	SSL_CTX *ctx;

	tl_tls_settings(&s, &ls);
	ctx = tl_server_ctx(&s, &ls, &tk);
	ck_assert_int_eq(ocsp_stapling_install(ctx), 0);
	ck_assert_int_eq(stapled(ctx, versions[_i], 1, got, sizeof(got)), 0);
	tl_server_ctx_free(ctx, tk);
}
END_TEST

static Suite *
ocsp_suite(void)
{
	Suite *s = suite_create("ocsp");
	TCase *tc;

	tc = tl_tls_tcase("loading");
	tcase_add_test(tc, test_good_accepted);
	tcase_add_test(tc, test_delegated_responder_accepted);
	tcase_add_test(tc, test_wrong_certificate_refused);
	tcase_add_test(tc, test_wrong_signer_refused);
	tcase_add_test(tc, test_stale_refused);
	tcase_add_test(tc, test_bad_status_refused);
	tcase_add_test(tc, test_bad_files_refused);
	tcase_add_test(tc, test_issuer_missing_refused);
	suite_add_tcase(s, tc);

	tc = tl_tls_tcase("stapling");
	tcase_add_loop_test(tc, test_stapled_when_asked, 0, 2);
	tcase_add_loop_test(tc, test_expired_since_load_not_stapled, 0, 2);
	tcase_add_loop_test(tc, test_no_staple_nothing_sent, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(ocsp_suite());
}
