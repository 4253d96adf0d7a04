/*
 * check_duration: duration_parse() accepts exactly "N" and "N{s,m,h,d}"
 * within 2^31-1 seconds, and rejects everything else.
 */
#include <stdint.h>

#include "testlib.h"
#include "../../src/duration.h"

/* Parse ${text}, which must succeed with ${want} seconds. */
static void
accepts(const char *text, int64_t want)
{
	int64_t secs = -1;

	ck_assert_msg(duration_parse(text, &secs) == 0, "\"%s\" rejected", text);
	ck_assert_msg(secs == want, "\"%s\": got %lld, want %lld", text,
	    (long long)secs, (long long)want);
}

/* Parse ${text}, which must fail and leave the output alone. */
static void
rejects(const char *text)
{
	int64_t secs = 12345;

	ck_assert_msg(duration_parse(text, &secs) == -1, "\"%s\" accepted",
	    text ? text : "(null)");
	ck_assert_int_eq(secs, 12345);
}

START_TEST(test_bare_seconds)
{
	accepts("0", 0);
	accepts("30", 30);
	accepts("007", 7);
	accepts("2147483647", INT32_MAX);
}
END_TEST

START_TEST(test_units)
{
	accepts("90s", 90);
	accepts("5m", 300);
	accepts("12h", 12 * 3600);
	accepts("7d", 7 * 86400);
	accepts("0s", 0);
	accepts("0d", 0);
	accepts("1d", 86400);
}
END_TEST

START_TEST(test_largest)
{
	/* 2^31-1 seconds is the ceiling, whichever unit gets there. */
	accepts("24855d", 24855LL * 86400);
	accepts("35791394m", 35791394LL * 60);
	accepts("596523h", 596523LL * 3600);
	accepts("2147483647s", INT32_MAX);
}
END_TEST

START_TEST(test_overflow)
{
	rejects("2147483648");
	rejects("2147483648s");
	rejects("24856d");
	rejects("35791395m");
	rejects("596524h");
	rejects("99999999999999999999999999");
	rejects("99999999999999999999d");
}
END_TEST

START_TEST(test_empty_and_sign)
{
	rejects(NULL);
	rejects("");
	rejects("-1");
	rejects("-5m");
	rejects("+5");
	rejects("s");
	rejects("m");
}
END_TEST

START_TEST(test_spaces)
{
	rejects(" 5");
	rejects("5 ");
	rejects("5 m");
	rejects("\t5m");
	rejects("5m\n");
}
END_TEST

START_TEST(test_bad_units)
{
	rejects("5x");
	rejects("5M");
	rejects("5H");
	rejects("5ms");
	rejects("5sec");
	rejects("5w");
	rejects("1.5h");
	rejects("0x10");
}
END_TEST

START_TEST(test_multiple_units)
{
	rejects("1h30m");
	rejects("1d12h");
	rejects("5ss");
	rejects("5m5");
}
END_TEST

static Suite *
duration_suite(void)
{
	Suite *s = suite_create("duration");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_bare_seconds);
	tcase_add_test(tc, test_units);
	tcase_add_test(tc, test_largest);
	tcase_add_test(tc, test_overflow);
	tcase_add_test(tc, test_empty_and_sign);
	tcase_add_test(tc, test_spaces);
	tcase_add_test(tc, test_bad_units);
	tcase_add_test(tc, test_multiple_units);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(duration_suite());
}
