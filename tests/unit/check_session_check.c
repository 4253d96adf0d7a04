/*
 * check_session_check: the pure rules of session_check.c: the policy
 * fingerprint (stable, and sensitive to each input), the ticket appdata
 * (versions and garbage), the verdict and the lifetime cap with an
 * injected clock; and session_cache.c's bounds and expiry.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "testlib.h"
#include "../../src/config.h"
#include "../../src/session_cache.h"
#include "../../src/session_check.h"

#define DAY 86400

static STACK_OF(X509) *
cas_of(int n, const enum tl_id *ids)
{
	STACK_OF(X509) *cas = sk_X509_new_null();

	ck_assert_ptr_nonnull(cas);
	for (int i = 0; i < n; i++)
		ck_assert_int_gt(sk_X509_push(cas, tl_cert(ids[i])), 0);
	return cas;	/* borrowed certificates: sk_X509_free() only */
}

static void
fingerprint(const char *name, int vc, int n, const enum tl_id *ids,
    unsigned char out[SESSION_FINGERPRINT_LEN])
{
	STACK_OF(X509) *cas = cas_of(n, ids);

	ck_assert_int_eq(session_fingerprint(name, vc, cas, NULL, 0, out), 0);
	sk_X509_free(cas);
}

START_TEST(test_fingerprint_stable)
{
	static const enum tl_id ab[] = { TL_CA, TL_OTHER_CA }, ba[] = { TL_OTHER_CA, TL_CA };
	unsigned char x[SESSION_FINGERPRINT_LEN], y[SESSION_FINGERPRINT_LEN];

	fingerprint("mqtt", VERIFY_CLIENT_REQUIRE, 2, ab, x);
	fingerprint("mqtt", VERIFY_CLIENT_REQUIRE, 2, ab, y);
	ck_assert_mem_eq(x, y, sizeof(x));
	/* The order of the CA file does not matter. */
	fingerprint("mqtt", VERIFY_CLIENT_REQUIRE, 2, ba, y);
	ck_assert_mem_eq(x, y, sizeof(x));
	/* No CA: NULL and an empty stack agree. */
	fingerprint("mqtt", VERIFY_CLIENT_NONE, 0, NULL, x);
	ck_assert_int_eq(session_fingerprint("mqtt", VERIFY_CLIENT_NONE, NULL, NULL, 0, y), 0);
	ck_assert_mem_eq(x, y, sizeof(x));
}
END_TEST

/*
 * The server names of the certificate group: a session made under one
 * certificate does not resume under another, whatever the order or case
 * the names are written in.
 */
START_TEST(test_fingerprint_names)
{
	char *ab[] = { "a.example", "B.example" }, *ba[] = { "b.example", "a.example" };
	char *a[] = { "a.example" }, *wild[] = { "*.example" }, *framed[] = { "a.exampleb.example" };
	unsigned char x[SESSION_FINGERPRINT_LEN], y[SESSION_FINGERPRINT_LEN];

	ck_assert_int_eq(session_fingerprint("mqtt", VERIFY_CLIENT_NONE, NULL, ab, 2, x), 0);
	ck_assert_int_eq(session_fingerprint("mqtt", VERIFY_CLIENT_NONE, NULL, ba, 2, y), 0);
	ck_assert_mem_eq(x, y, sizeof(x));
	ck_assert_int_eq(session_fingerprint("mqtt", VERIFY_CLIENT_NONE, NULL, a, 1, y), 0);
	ck_assert_mem_ne(x, y, sizeof(x));
	ck_assert_int_eq(session_fingerprint("mqtt", VERIFY_CLIENT_NONE, NULL, wild, 1, y), 0);
	ck_assert_mem_ne(x, y, sizeof(x));
	ck_assert_int_eq(session_fingerprint("mqtt", VERIFY_CLIENT_NONE, NULL, framed, 1, y), 0);
	ck_assert_mem_ne(x, y, sizeof(x));
	ck_assert_int_eq(session_fingerprint("mqtt", VERIFY_CLIENT_NONE, NULL, NULL, 0, y), 0);
	ck_assert_mem_ne(x, y, sizeof(x));
}
END_TEST

START_TEST(test_fingerprint_sensitive)
{
	static const enum tl_id a[] = { TL_CA }, b[] = { TL_OTHER_CA }, ab[] = { TL_CA, TL_OTHER_CA };
	unsigned char base[SESSION_FINGERPRINT_LEN], x[SESSION_FINGERPRINT_LEN];

	fingerprint("mqtt", VERIFY_CLIENT_OPTIONAL, 1, a, base);
	fingerprint("mqtt2", VERIFY_CLIENT_OPTIONAL, 1, a, x);
	ck_assert_mem_ne(base, x, sizeof(x));
	fingerprint("mqtt", VERIFY_CLIENT_REQUIRE, 1, a, x);
	ck_assert_mem_ne(base, x, sizeof(x));
	fingerprint("mqtt", VERIFY_CLIENT_NONE, 1, a, x);
	ck_assert_mem_ne(base, x, sizeof(x));
	fingerprint("mqtt", VERIFY_CLIENT_OPTIONAL, 1, b, x);
	ck_assert_mem_ne(base, x, sizeof(x));
	fingerprint("mqtt", VERIFY_CLIENT_OPTIONAL, 2, ab, x);
	ck_assert_mem_ne(base, x, sizeof(x));
	fingerprint("mqtt", VERIFY_CLIENT_OPTIONAL, 0, NULL, x);
	ck_assert_mem_ne(base, x, sizeof(x));
	/* Lengths are framed: "ab" + "c" is not "a" + "bc". */
	fingerprint("mqt", VERIFY_CLIENT_OPTIONAL, 1, a, x);
	ck_assert_mem_ne(base, x, sizeof(x));
}
END_TEST

START_TEST(test_appdata)
{
	unsigned char buf[SESSION_APPDATA_LEN + 1];
	int64_t t = 0;

	ck_assert_uint_eq(session_appdata_encode(1700000000, buf), SESSION_APPDATA_LEN);
	ck_assert_int_eq(buf[0], SESSION_APPDATA_VERSION);
	ck_assert_int_eq(session_appdata_decode(buf, SESSION_APPDATA_LEN, &t), 0);
	ck_assert_int_eq(t, 1700000000);
	session_appdata_encode(INT64_MAX, buf);
	ck_assert_int_eq(session_appdata_decode(buf, SESSION_APPDATA_LEN, &t), 0);
	ck_assert_int_eq(t, INT64_MAX);

	/* Another version, length, or nothing: not ours, t untouched. */
	t = 42;
	session_appdata_encode(1700000000, buf);
	buf[0] = SESSION_APPDATA_VERSION + 1;
	ck_assert_int_eq(session_appdata_decode(buf, SESSION_APPDATA_LEN, &t), -1);
	buf[0] = 0;
	ck_assert_int_eq(session_appdata_decode(buf, SESSION_APPDATA_LEN, &t), -1);
	buf[0] = SESSION_APPDATA_VERSION;
	ck_assert_int_eq(session_appdata_decode(buf, SESSION_APPDATA_LEN - 1, &t), -1);
	ck_assert_int_eq(session_appdata_decode(buf, SESSION_APPDATA_LEN + 1, &t), -1);
	ck_assert_int_eq(session_appdata_decode(buf, 0, &t), -1);
	ck_assert_int_eq(session_appdata_decode(NULL, SESSION_APPDATA_LEN, &t), -1);
	ck_assert_int_eq(t, 42);
}
END_TEST

START_TEST(test_verdict)
{
	const int64_t now = 1800000000, age = 7 * DAY;

	ck_assert_int_eq(session_verdict(1, now - 10, now + DAY, now, age), SESSION_RESUME);
	ck_assert_int_eq(session_verdict(1, now - 10, INT64_MAX, now, age), SESSION_RESUME);
	/* Policy first: it says the most. */
	ck_assert_int_eq(session_verdict(0, now - 10, now - 1, now, 1), SESSION_REFUSED_POLICY);
	/* notAfter: the last valid second is the one before. */
	ck_assert_int_eq(session_verdict(1, now - 10, now + 1, now, age), SESSION_RESUME);
	ck_assert_int_eq(session_verdict(1, now - 10, now, now, age),
	    SESSION_REFUSED_CERT_EXPIRED);
	ck_assert_int_eq(session_verdict(1, now - 10, now - 1, now, 1),
	    SESSION_REFUSED_CERT_EXPIRED);
	/* max_session_age: exactly that old still resumes. */
	ck_assert_int_eq(session_verdict(1, now - age, now + DAY, now, age), SESSION_RESUME);
	ck_assert_int_eq(session_verdict(1, now - age - 1, now + DAY, now, age),
	    SESSION_REFUSED_TOO_OLD);
	/* A node whose clock runs ahead: a full handshake "in the future". */
	ck_assert_int_eq(session_verdict(1, now + 30, now + DAY, now, 1), SESSION_RESUME);
	ck_assert_str_eq(session_verdict_name(SESSION_REFUSED_POLICY), "policy");
	ck_assert_str_eq(session_verdict_name(SESSION_REFUSED_CERT_EXPIRED), "cert_expired");
	ck_assert_str_eq(session_verdict_name(SESSION_REFUSED_TOO_OLD), "too_old");
}
END_TEST

START_TEST(test_lifetime_cap)
{
	const int64_t t0 = 1800000000;

	/* Nothing closer: the timeout stands. */
	ck_assert_int_eq(session_lifetime_cap(t0, 3600, t0, INT64_MAX, 7 * DAY), 3600);
	/* The certificate ends first. */
	ck_assert_int_eq(session_lifetime_cap(t0, 3600, t0, t0 + 100, 7 * DAY), 100);
	/* max_session_age after a full handshake of yesterday ends first. */
	ck_assert_int_eq(session_lifetime_cap(t0, 12 * 3600, t0 - DAY, INT64_MAX,
	    DAY + 600), 600);
	/* Already over: 1, never 0 or negative (OpenSSL 3.0 fails a ticket
	 * with timeout 0); session_verdict() refuses such a session. */
	ck_assert_int_eq(session_lifetime_cap(t0, 3600, t0 - 2 * DAY, INT64_MAX, DAY), 1);
	ck_assert_int_eq(session_lifetime_cap(t0, 3600, t0, t0 - 5, DAY), 1);
	ck_assert_int_eq(session_lifetime_cap(t0, 3600, t0 - DAY, INT64_MAX, DAY), 1);
	/* Times out of any range, as a forged or ancient ticket may carry
	 * (fuzz_ticket_keys): no overflow, the same answers. */
	ck_assert_int_eq(session_lifetime_cap(-1877932053, 3600, t0, INT64_MAX, 7 * DAY), 3600);
	ck_assert_int_eq(session_lifetime_cap(INT64_MIN, 3600, INT64_MAX, INT64_MAX, INT64_MAX),
	    3600);
	ck_assert_int_eq(session_lifetime_cap(INT64_MAX, 3600, INT64_MIN, INT64_MIN, DAY), 1);
	ck_assert_int_eq(session_verdict(1, INT64_MIN, INT64_MAX, t0, 7 * DAY),
	    SESSION_REFUSED_TOO_OLD);
	ck_assert_int_eq(session_verdict(1, INT64_MAX, INT64_MAX, t0, 7 * DAY), SESSION_RESUME);
}
END_TEST

/* A server-side session with ID ${id}, made at ${t} for ${timeout} s. */
static SSL_SESSION *
session_with_id(unsigned char id, int64_t t, long timeout)
{
	SSL_SESSION *sess = SSL_SESSION_new();
	unsigned char sid[32];

	ck_assert_ptr_nonnull(sess);
	memset(sid, id, sizeof(sid));
	ck_assert(SSL_SESSION_set1_id(sess, sid, sizeof(sid)) == 1);
	tl_session_set_time(sess, t);
	ck_assert(SSL_SESSION_set_timeout(sess, timeout) != 0);
	return sess;
}

static int
has(struct session_cache *sc, unsigned char id, int64_t now)
{
	unsigned char sid[32];
	SSL_SESSION *sess;

	memset(sid, id, sizeof(sid));
	if ((sess = session_cache_get(sc, sid, sizeof(sid), now)) == NULL)
		return 0;
	SSL_SESSION_free(sess);
	return 1;
}

START_TEST(test_cache_bounds_and_expiry)
{
	const long t0 = 1800000000;
	struct session_cache *sc = session_cache_new(3);
	unsigned char sid[32];
	SSL_SESSION *sess;

	ck_assert_ptr_nonnull(sc);
	ck_assert_ptr_null(session_cache_new(0));
	for (unsigned char i = 1; i <= 4; i++) {
		sess = session_with_id(i, t0, i == 2 ? 10 : 100);
		session_cache_add(sc, sess);
		SSL_SESSION_free(sess);	/* the cache holds its own reference */
	}
	/* Full at 3: the oldest went. */
	ck_assert_uint_eq(session_cache_count(sc), 3);
	ck_assert(!has(sc, 1, t0));
	ck_assert(has(sc, 2, t0) && has(sc, 3, t0) && has(sc, 4, t0));
	/* The same ID again replaces, it does not add. */
	sess = session_with_id(4, t0, 100);
	session_cache_add(sc, sess);
	SSL_SESSION_free(sess);
	ck_assert_uint_eq(session_cache_count(sc), 3);
	/* Session 2 timed out at t0 + 10: gone on lookup, and on expiry. */
	session_cache_expire(sc, t0 + 9);
	ck_assert_uint_eq(session_cache_count(sc), 3);
	session_cache_expire(sc, t0 + 10);
	ck_assert_uint_eq(session_cache_count(sc), 2);
	ck_assert(!has(sc, 3, t0 + 100));
	ck_assert_uint_eq(session_cache_count(sc), 1);
	memset(sid, 4, sizeof(sid));
	session_cache_remove(sc, sid, sizeof(sid));
	ck_assert_uint_eq(session_cache_count(sc), 0);
	session_cache_unref(sc);
}
END_TEST

static Suite *
session_check_suite(void)
{
	Suite *s = suite_create("session_check");
	TCase *tc = tl_tls_tcase("rules");

	tcase_add_test(tc, test_fingerprint_stable);
	tcase_add_test(tc, test_fingerprint_names);
	tcase_add_test(tc, test_fingerprint_sensitive);
	tcase_add_test(tc, test_appdata);
	tcase_add_test(tc, test_verdict);
	tcase_add_test(tc, test_lifetime_cap);
	tcase_add_test(tc, test_cache_bounds_and_expiry);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(session_check_suite());
}
