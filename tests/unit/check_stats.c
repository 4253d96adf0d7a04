/*
 * check_stats: blocks count on their own and add up in the totals until
 * freed; the connect time histogram puts a time in the first bucket whose
 * bound is not below it, is cumulative, and its count includes times past
 * every bound.  Totals are compared before and after, so that the tests
 * also hold with CK_FORK=no, where the process-wide block is shared.
 */
#include <stdint.h>

#include "testlib.h"
#include "../../src/stats.h"

START_TEST(test_blocks_and_totals)
{
	struct stats *a = stats_new(), *b = stats_new();
	uint64_t accepted = stats_get(STAT_CONN_ACCEPTED);
	uint64_t rejected = stats_get(STAT_TICKET_REJECTED_UNKNOWN);
	uint64_t process = stats_value(NULL, STAT_TICKET_REJECTED_UNKNOWN);

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	stats_count(a, STAT_CONN_ACCEPTED, 3);
	stats_count(b, STAT_CONN_ACCEPTED, 4);
	stats_count(b, STAT_BYTES_CLIENT_TO_BACKEND, 1 << 20);
	stats_add(STAT_TICKET_REJECTED_UNKNOWN, 2);
	ck_assert_uint_eq(stats_value(a, STAT_CONN_ACCEPTED), 3);
	ck_assert_uint_eq(stats_value(b, STAT_CONN_ACCEPTED), 4);
	ck_assert_uint_eq(stats_value(a, STAT_BYTES_CLIENT_TO_BACKEND), 0);
	ck_assert_uint_eq(stats_value(b, STAT_BYTES_CLIENT_TO_BACKEND), 1 << 20);
	ck_assert_uint_eq(stats_value(a, STAT_TICKET_REJECTED_UNKNOWN), 0);
	ck_assert_uint_eq(stats_value(NULL, STAT_TICKET_REJECTED_UNKNOWN), process + 2);
	ck_assert_uint_eq(stats_get(STAT_CONN_ACCEPTED), accepted + 7);
	ck_assert_uint_eq(stats_get(STAT_TICKET_REJECTED_UNKNOWN), rejected + 2);

	/* A freed block no longer counts; NULL is fine. */
	stats_free(a);
	ck_assert_uint_eq(stats_get(STAT_CONN_ACCEPTED), accepted + 4);
	stats_free(b);
	ck_assert_uint_eq(stats_get(STAT_CONN_ACCEPTED), accepted);
	stats_free(NULL);
	stats_log();
}
END_TEST

START_TEST(test_histogram_buckets)
{
	struct stats *st = stats_new();
	uint64_t buckets[STATS_TIME_BUCKETS], sum, count;
	size_t i;

	/* The bounds rise, from 1 ms to 10 s. */
	ck_assert_uint_eq(stats_time_bound(0), 1000);
	ck_assert_uint_eq(stats_time_bound(STATS_TIME_BUCKETS - 1), 10000000);
	for (i = 1; i < STATS_TIME_BUCKETS; i++)
		ck_assert_uint_gt(stats_time_bound(i), stats_time_bound(i - 1));

	stats_histogram(st, STAT_TIME_BACKEND_CONNECT, buckets, &sum, &count);
	ck_assert_uint_eq(count, 0);
	ck_assert_uint_eq(sum, 0);
	for (i = 0; i < STATS_TIME_BUCKETS; i++)
		ck_assert_uint_eq(buckets[i], 0);

	stats_time(st, STAT_TIME_BACKEND_CONNECT, 0);		/* le 0.001 */
	stats_time(st, STAT_TIME_BACKEND_CONNECT, 1000);		/* le 0.001: the bound is inclusive */
	stats_time(st, STAT_TIME_BACKEND_CONNECT, 1001);		/* le 0.0025 */
	stats_time(st, STAT_TIME_BACKEND_CONNECT, 10000000);	/* le 10 */
	stats_time(st, STAT_TIME_BACKEND_CONNECT, 10000001);	/* +Inf only */
	stats_histogram(st, STAT_TIME_BACKEND_CONNECT, buckets, &sum, &count);
	ck_assert_uint_eq(buckets[0], 2);
	ck_assert_uint_eq(buckets[1], 3);
	for (i = 2; i < STATS_TIME_BUCKETS - 1; i++)
		ck_assert_uint_eq(buckets[i], 3);
	ck_assert_uint_eq(buckets[STATS_TIME_BUCKETS - 1], 4);
	ck_assert_uint_eq(count, 5);
	ck_assert_uint_eq(sum, 0 + 1000 + 1001 + 10000000 + 10000001);
	stats_free(st);
}
END_TEST

static Suite *
stats_suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("counters");

	tcase_add_test(tc, test_blocks_and_totals);
	tcase_add_test(tc, test_histogram_buckets);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(stats_suite());
}
