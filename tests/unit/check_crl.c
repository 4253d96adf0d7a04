/*
 * check_crl: CRLs made here with the test PKI, loaded by tls_ctx_new()
 * (which calls crl_load()) and met by real handshakes: a revoked device
 * refused and described, a good one accepted, a CRL past its nextUpdate
 * still revoking; every CRL the loader must refuse, at its line; the
 * lookup for resumptions by issuer and serial.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "testlib.h"
#include "../../src/crl.h"
#include "../../src/tls_ctx.h"

#define HOUR 3600L

/*
 * A CRL with ${issuer}'s name, signed by ${signer}'s key, listing the
 * certificates of ${revoked} (NULL-terminated), in force from ${last} to
 * ${next} seconds from now.
 */
static X509_CRL *
make_crl(enum tl_id issuer, enum tl_id signer, X509 *const *revoked, long last, long next)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *from = X509_time_adj_ex(NULL, 0, last, NULL);
	ASN1_TIME *to = X509_time_adj_ex(NULL, 0, next, NULL);
	X509_REVOKED *r;

	ck_assert(crl != NULL && from != NULL && to != NULL);
	ck_assert(X509_CRL_set_version(crl, X509_CRL_VERSION_2) == 1);
	ck_assert(X509_CRL_set_issuer_name(crl, X509_get_subject_name(tl_cert(issuer))) == 1);
	ck_assert(X509_CRL_set1_lastUpdate(crl, from) == 1);
	ck_assert(X509_CRL_set1_nextUpdate(crl, to) == 1);
	for (; *revoked != NULL; revoked++) {
		ck_assert((r = X509_REVOKED_new()) != NULL);
		ck_assert(X509_REVOKED_set_serialNumber(r,
		    (ASN1_INTEGER *)X509_get0_serialNumber(*revoked)) == 1);
		ck_assert(X509_REVOKED_set_revocationDate(r, from) == 1);
		ck_assert(X509_CRL_add0_revoked(crl, r) == 1);
	}
	ck_assert(X509_CRL_sort(crl) == 1);
	ck_assert(X509_CRL_sign(crl, tl_key(signer), EVP_sha256()) > 0);
	ASN1_TIME_free(from);
	ASN1_TIME_free(to);
	return crl;
}

/* Write ${crl} (and a second one, if not NULL) to ${name} as PEM; its path. */
static const char *
write_crls(const char *name, X509_CRL *crl, X509_CRL *crl2)
{
	const char *path = tl_write(name, "", 0644);
	BIO *out = BIO_new_file(path, "w");

	ck_assert(out != NULL);
	ck_assert(PEM_write_bio_X509_CRL(out, crl) == 1);
	ck_assert(crl2 == NULL || PEM_write_bio_X509_CRL(out, crl2) == 1);
	BIO_free(out);
	X509_CRL_free(crl);
	X509_CRL_free(crl2);
	return path;
}

/*
 * Another device of the test CA: TL_CLIENT's certificate with ${serial},
 * signed again (same key, so tl_key(TL_CLIENT) goes with it).
 */
static X509 *
device(long serial)
{
	X509 *dev = X509_dup(tl_cert(TL_CLIENT));

	ck_assert(dev != NULL);
	ck_assert(ASN1_INTEGER_set(X509_get_serialNumber(dev), serial) == 1);
	ck_assert(X509_sign(dev, tl_key(TL_CA), EVP_sha256()) > 0);
	return dev;
}

/* The listener requiring test-CA devices and checking ${crl} (${check}). */
static void
crl_settings(struct settings *s, struct listener_settings *ls, const char *crl,
    enum crl_check check)
{
	tl_tls_settings(s, ls);
	ls->client_ca = (char *)tl_path("ca.pem");
	ls->verify_client = VERIFY_CLIENT_REQUIRE;
	ls->crl = (char *)crl;
	ls->crl_check = check;
}

/* A handshake of ${version} by a client with ${cert} (key: TL_CLIENT's). */
static int
handshake(SSL_CTX *sctx, int version, X509 *cert, char *refusal, size_t len)
{
	SSL_CTX *cctx = tl_client_ctx(version);
	struct tl_tls *t;
	int ok;

	ck_assert(SSL_CTX_use_certificate(cctx, cert) == 1);
	ck_assert(SSL_CTX_use_PrivateKey(cctx, tl_key(TL_CLIENT)) == 1);
	t = tl_tls_new(cctx, sctx, TL_LINK_MEMORY);
	ok = tl_tls_handshake(t);
	refusal[0] = '\0';
	if (!ok)
		crl_refusal(t->server, refusal, len);
	tl_tls_free(t);
	SSL_CTX_free(cctx);
	return ok;
}

/* TL_CLIENT (serial 3), as crl_refusal() describes it. */
#define DEVICE1_REVOKED "subject CN=device1, serial 03"

static const int versions[] = { TLS1_2_VERSION, TLS1_3_VERSION };

/*
 * A CRL revoking TL_CLIENT, in force from ${last} to ${next} seconds from
 * now, checked for ${check}: TL_CLIENT is refused on a handshake of
 * ${version} and described, another device of the CA accepted, and the
 * lookup and the nextUpdate agree.
 */
static void
revocation_case(long last, long next, enum crl_check check, int version)
{
	X509 *good = device(77);
	X509 *revoked[] = { tl_cert(TL_CLIENT), NULL };
	struct settings s;
	struct listener_settings ls;
	struct ticket_keys *tk;
	char why[256];
	SSL_CTX *ctx;
	time_t now = time(NULL);

	crl_settings(&s, &ls, write_crls("devices.crl",
	    make_crl(TL_CA, TL_CA, revoked, last, next), NULL), check);
	ctx = tl_server_ctx(&s, &ls, &tk);
	ck_assert_msg(!handshake(ctx, version, tl_cert(TL_CLIENT), why, sizeof(why)),
	    "a revoked device was accepted");
	ck_assert_str_eq(why, DEVICE1_REVOKED);
	ck_assert_msg(handshake(ctx, version, good, why, sizeof(why)),
	    "a good device was refused");
	ck_assert_str_eq(why, "");
	ck_assert(crl_is_revoked(ctx, tl_cert(TL_CLIENT)));
	ck_assert(!crl_is_revoked(ctx, good));
	ck_assert(llabs((long long)crl_next_update(ctx) - (long long)(now + next)) <= 2);
	tl_server_ctx_free(ctx, tk);
	X509_free(good);
}

START_TEST(test_revoked_refused_good_accepted)
{
	revocation_case(-HOUR, 24 * HOUR, _i < 2 ? CRL_CHECK_LEAF : CRL_CHECK_CHAIN,
	    versions[_i % 2]);
}
END_TEST

/* Without crl, the same certificate is accepted: the refusal is the CRL's. */
START_TEST(test_no_crl_no_revocation)
{
	struct settings s;
	struct listener_settings ls;
	struct ticket_keys *tk;
	char why[256];
	SSL_CTX *ctx;

	crl_settings(&s, &ls, NULL, CRL_CHECK_LEAF);
	ctx = tl_server_ctx(&s, &ls, &tk);
	ck_assert(handshake(ctx, TLS1_3_VERSION, tl_cert(TL_CLIENT), why, sizeof(why)));
	ck_assert(!crl_is_revoked(ctx, tl_cert(TL_CLIENT)));
	ck_assert_int_eq((long long)crl_next_update(ctx), 0);
	tl_server_ctx_free(ctx, tk);
}
END_TEST

/*
 * verify_client = "optional": a revoked certificate is refused all the
 * same, and a device without one is not the CRL's business.
 */
START_TEST(test_optional_revoked_refused)
{
	X509 *revoked[] = { tl_cert(TL_CLIENT), NULL };
	struct settings s;
	struct listener_settings ls;
	struct ticket_keys *tk;
	struct tl_tls *t;
	SSL_CTX *ctx, *cctx;
	char why[256];

	crl_settings(&s, &ls, write_crls("devices.crl",
	    make_crl(TL_CA, TL_CA, revoked, -HOUR, HOUR), NULL), CRL_CHECK_LEAF);
	ls.verify_client = VERIFY_CLIENT_OPTIONAL;
	ctx = tl_server_ctx(&s, &ls, &tk);
	ck_assert(!handshake(ctx, versions[_i], tl_cert(TL_CLIENT), why, sizeof(why)));
	ck_assert_str_eq(why, DEVICE1_REVOKED);
	cctx = tl_client_ctx(versions[_i]);
	t = tl_tls_new(cctx, ctx, TL_LINK_MEMORY);
	ck_assert_msg(tl_tls_handshake(t), "a device without a certificate was refused: %s",
	    t->server_error);
	ck_assert(!crl_refusal(t->server, why, sizeof(why)));
	tl_tls_free(t);
	SSL_CTX_free(cctx);
	tl_server_ctx_free(ctx, tk);
}
END_TEST

/*
 * A CRL past its nextUpdate: OpenSSL alone would refuse every device
 * (X509_V_ERR_CRL_HAS_EXPIRED); here it still revokes what it lists and
 * accepts the rest, in both modes.
 */
START_TEST(test_expired_crl_still_revokes)
{
	revocation_case(-48 * HOUR, -HOUR, _i < 2 ? CRL_CHECK_LEAF : CRL_CHECK_CHAIN,
	    versions[_i % 2]);
}
END_TEST

/* cas.pem: the test CA and the other CA, for a client_ca of two CAs. */
static const char *
write_two_cas(void)
{
	const char *path = tl_write("cas.pem", "", 0644);
	BIO *out = BIO_new_file(path, "w");

	ck_assert(out != NULL);
	ck_assert(PEM_write_bio_X509(out, tl_cert(TL_CA)) == 1);
	ck_assert(PEM_write_bio_X509(out, tl_cert(TL_OTHER_CA)) == 1);
	BIO_free(out);
	return path;
}

/* The lookup for resumptions: issuer and serial, no time, no signature. */
START_TEST(test_is_revoked_lookup)
{
	X509 *good = device(77);
	X509 *revoked[] = { tl_cert(TL_CLIENT), NULL };
	X509 *other_revoked[] = { tl_cert(TL_OTHER_CLIENT), NULL };
	X509 *same_serial = device(5);
	struct settings s;
	struct listener_settings ls;
	struct ticket_keys *tk;
	SSL_CTX *ctx;
	time_t soonest = time(NULL) + 2 * HOUR;

	/* Two CRLs in one file: the test CA's and one of a CA also in client_ca. */
	crl_settings(&s, &ls, write_crls("two.crl",
	    make_crl(TL_CA, TL_CA, revoked, -HOUR, 24 * HOUR),
	    make_crl(TL_OTHER_CA, TL_OTHER_CA, other_revoked, -HOUR, 2 * HOUR)), CRL_CHECK_CHAIN);
	ls.client_ca = (char *)write_two_cas();
	ctx = tl_server_ctx(&s, &ls, &tk);
	ck_assert(crl_is_revoked(ctx, tl_cert(TL_CLIENT)));
	ck_assert(crl_is_revoked(ctx, tl_cert(TL_OTHER_CLIENT)));
	ck_assert(!crl_is_revoked(ctx, good));
	ck_assert(!crl_is_revoked(ctx, tl_cert(TL_SERVER)));
	/* Serial 5 is revoked by the other CA, not by the test CA. */
	ck_assert(!crl_is_revoked(ctx, same_serial));
	X509_free(same_serial);
	ck_assert(llabs((long long)crl_next_update(ctx) - (long long)soonest) <= 2);
	tl_server_ctx_free(ctx, tk);
	X509_free(good);
}
END_TEST

/* A file the loader must refuse, and the reason it must give at the crl line. */
static void
load_fails(const char *crl, enum crl_check check, const char *client_ca, const char *why)
{
	struct config_errors errs = { 0 };
	struct settings s;
	struct listener_settings ls;

	crl_settings(&s, &ls, crl, check);
	if (client_ca != NULL)
		ls.client_ca = (char *)client_ca;
	ck_assert_ptr_null(tls_ctx_new(&s, &ls, NULL, &errs));
	tl_assert_error(&errs, TL_LINE_CRL, why);
	ck_assert_msg(errs.count == 1, "want 1 error:\n%s", tl_dump(&errs));
	ck_assert_msg(ERR_peek_error() == 0, "OpenSSL errors left on the queue");
	config_errors_clear(&errs);
}

START_TEST(test_bad_crl_files)
{
	X509 *none[] = { NULL };
	X509_CRL *crl;
	BIO *mem;
	char *pem, *bad;
	long len;

	load_fails(tl_write("empty.crl", "", 0644), CRL_CHECK_LEAF, NULL,
	    "crl: no CRL in the file");
	load_fails(tl_path("ca.pem"), CRL_CHECK_LEAF, NULL, "crl: no CRL in the file");

	/* A good CRL with one base64 line of its body changed. */
	crl = make_crl(TL_CA, TL_CA, none, -HOUR, HOUR);
	ck_assert((mem = BIO_new(BIO_s_mem())) != NULL);
	ck_assert(PEM_write_bio_X509_CRL(mem, crl) == 1);
	len = BIO_get_mem_data(mem, &pem);
	bad = strndup(pem, (size_t)len);
	memset(strchr(bad, '\n') + 1, 'A', 20);
	load_fails(tl_write("garbled.crl", bad, 0644), CRL_CHECK_LEAF, NULL,
	    "crl: CRL number 1 of the file does not parse");
	free(bad);
	BIO_free(mem);
	X509_CRL_free(crl);

	/* Another CA's CRL, and a forgery: our CA's name, another CA's key. */
	load_fails(write_crls("other.crl", make_crl(TL_OTHER_CA, TL_OTHER_CA, none, -HOUR, HOUR),
	    NULL), CRL_CHECK_LEAF, NULL, "crl: the CRL of CN=untrusted test CA is not signed "
	    "by a CA of client_ca");
	load_fails(write_crls("forged.crl", make_crl(TL_CA, TL_OTHER_CA, none, -HOUR, HOUR),
	    NULL), CRL_CHECK_LEAF, NULL, "crl: the CRL of CN=tlsproxy test CA is not signed");

	/* Not in force yet: it would refuse every device until then. */
	load_fails(write_crls("future.crl", make_crl(TL_CA, TL_CA, none, HOUR, 2 * HOUR), NULL),
	    CRL_CHECK_LEAF, NULL, "crl: the CRL of CN=tlsproxy test CA is not valid before");
}
END_TEST

/* "chain" with a client CA that has no CRL: refused; "leaf" loads it. */
START_TEST(test_chain_needs_every_ca)
{
	X509 *none[] = { NULL };
	struct settings s;
	struct listener_settings ls;
	struct ticket_keys *tk;
	const char *crl, *cas = write_two_cas();
	SSL_CTX *ctx;

	crl = write_crls("one.crl", make_crl(TL_CA, TL_CA, none, -HOUR, HOUR), NULL);
	load_fails(crl, CRL_CHECK_CHAIN, cas,
	    "crl: no CRL of client CA CN=untrusted test CA: with crl_check = \"chain\"");

	crl_settings(&s, &ls, crl, CRL_CHECK_LEAF);
	ls.client_ca = (char *)cas;
	ctx = tl_server_ctx(&s, &ls, &tk);
	tl_server_ctx_free(ctx, tk);
}
END_TEST

static Suite *
crl_suite(void)
{
	Suite *s = suite_create("crl");
	TCase *tc;

	tc = tl_tls_tcase("handshakes");
	tcase_add_loop_test(tc, test_revoked_refused_good_accepted, 0, 4);
	tcase_add_test(tc, test_no_crl_no_revocation);
	tcase_add_loop_test(tc, test_optional_revoked_refused, 0, 2);
	tcase_add_loop_test(tc, test_expired_crl_still_revokes, 0, 4);
	tcase_add_test(tc, test_is_revoked_lookup);
	suite_add_tcase(s, tc);

	tc = tl_tls_tcase("loading");
	tcase_add_test(tc, test_bad_crl_files);
	tcase_add_test(tc, test_chain_needs_every_ca);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(crl_suite());
}
