/*
 * check_asn1_time: ASN.1 UTCTime and GeneralizedTime become Unix time in
 * UTC, whatever the local time zone; NULL and an unreadable time give 0.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <time.h>

#include <openssl/asn1.h>

#include "testlib.h"
#include "../../src/asn1_time.h"

static int64_t
seconds_of(const char *text)
{
	ASN1_TIME *t = ASN1_TIME_new();
	int64_t s;

	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(ASN1_TIME_set_string(t, text), 1);
	s = asn1_time_seconds(t);
	ASN1_TIME_free(t);
	return s;
}

START_TEST(test_utc_and_generalized)
{
	/* A time zone far from UTC must change nothing. */
	setenv("TZ", "Pacific/Kiritimati", 1);
	tzset();
	ck_assert_int_eq(seconds_of("700101000000Z"), 0);
	ck_assert_int_eq(seconds_of("491231235959Z"), 2524607999LL);	/* UTCTime: 2049 */
	ck_assert_int_eq(seconds_of("20261203094000Z"), 1796290800LL);
	ck_assert_int_eq(seconds_of("20500101000000Z"), 2524608000LL);	/* GeneralizedTime */
	unsetenv("TZ");
	tzset();
}
END_TEST

START_TEST(test_unreadable)
{
	ASN1_TIME *t = ASN1_TIME_new();

	ck_assert_int_eq(asn1_time_seconds(NULL), 0);
	ck_assert_ptr_nonnull(t);
	/* A time of the right type whose text is not a time. */
	ck_assert_int_eq(ASN1_STRING_set(t, "not a time", -1), 1);
	ck_assert_int_eq(asn1_time_seconds(t), 0);
	ASN1_TIME_free(t);
}
END_TEST

static Suite *
asn1_time_suite(void)
{
	Suite *s = suite_create("asn1_time");
	TCase *tc = tcase_create("seconds");

	tcase_add_test(tc, test_utc_and_generalized);
	tcase_add_test(tc, test_unreadable);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(asn1_time_suite());
}
