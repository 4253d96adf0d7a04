/*
 * check_backend: the pause before a failed backend connect is tried again
 * doubles with the time already spent, stays within BACKEND_RETRY_MIN_MS
 * and BACKEND_RETRY_MAX_MS, and its second half is random: from half the
 * pause (random 0) to the whole of it, never more.
 */
#define _GNU_SOURCE
#include <stdint.h>

#include "testlib.h"
#include "../../src/backend.h"

START_TEST(test_pause_bounds)
{
	/* Right after the first failure: the shortest pause, 25 to 50 ms. */
	ck_assert_uint_eq(backend_retry_pause_ms(0, 0), BACKEND_RETRY_MIN_MS / 2);
	ck_assert_uint_eq(backend_retry_pause_ms(0, BACKEND_RETRY_MIN_MS / 2),
	    BACKEND_RETRY_MIN_MS);
	/* A long outage: at most a second between attempts. */
	ck_assert_uint_eq(backend_retry_pause_ms(60000, 0), BACKEND_RETRY_MAX_MS / 2);
	ck_assert_uint_eq(backend_retry_pause_ms(60000, BACKEND_RETRY_MAX_MS / 2),
	    BACKEND_RETRY_MAX_MS);
	ck_assert_uint_eq(backend_retry_pause_ms(UINT64_MAX, UINT32_MAX) <= BACKEND_RETRY_MAX_MS,
	    1);
}
END_TEST

START_TEST(test_pause_doubles)
{
	/* As long again as has passed: 200 ms after 200 ms, with the top of its range. */
	ck_assert_uint_eq(backend_retry_pause_ms(200, 100), 200);
	ck_assert_uint_eq(backend_retry_pause_ms(400, 200), 400);
	ck_assert_uint_eq(backend_retry_pause_ms(400, 0), 200);
}
END_TEST

START_TEST(test_pause_in_range)
{
	uint64_t elapsed;
	uint32_t r, x = 12345;

	for (elapsed = 0; elapsed < 5000; elapsed += 7) {
		uint64_t want = elapsed < BACKEND_RETRY_MIN_MS ? BACKEND_RETRY_MIN_MS :
		    elapsed > BACKEND_RETRY_MAX_MS ? BACKEND_RETRY_MAX_MS : elapsed;
		unsigned ms;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		r = x;
		ms = backend_retry_pause_ms(elapsed, r);
		ck_assert_uint_ge(ms, want - want / 2);
		ck_assert_uint_le(ms, want);
	}
}
END_TEST

static Suite *
backend_suite(void)
{
	Suite *s = suite_create("backend");
	TCase *tc = tcase_create("retry pause");

	tcase_add_test(tc, test_pause_bounds);
	tcase_add_test(tc, test_pause_doubles);
	tcase_add_test(tc, test_pause_in_range);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(backend_suite());
}
