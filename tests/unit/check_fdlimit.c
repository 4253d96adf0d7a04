/*
 * check_fdlimit: how many connections a descriptor limit holds, and the
 * soft limit raised to the hard one: descriptors past the old soft limit
 * can really be opened afterwards.
 */
#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>

#include "testlib.h"
#include "../../src/fdlimit.h"

#define LOW_SOFT 64	/* a soft limit for the test, far under any hard one */
#define PAST_IT 100	/* descriptors opened past it once raised */

START_TEST(test_room)
{
	uint64_t two = FDLIMIT_BASE + 2 * FDLIMIT_PER_WORKER;

	/* Two descriptors per connection, after the workers' and the listeners'. */
	ck_assert_uint_eq(fdlimit_room(two + 1 + 200, 2, 1), 100);
	ck_assert_uint_eq(fdlimit_room(two + 3 + 201, 2, 3), 100);
	ck_assert_uint_eq(fdlimit_room(1048576, 2, 1), (1048576 - two - 1) / 2);
	ck_assert_uint_eq(fdlimit_room(1048576, 4, 1), (1048576 - two - 1) / 2 -
	    FDLIMIT_PER_WORKER);
	ck_assert_uint_eq(fdlimit_room(two + 1, 2, 1), 0);
	ck_assert_uint_eq(fdlimit_room(10, 1, 1), 0);
	ck_assert_uint_eq(fdlimit_room(0, 0, 0), 0);
}
END_TEST

START_TEST(test_raise)
{
	struct listener_settings ls = { .max_connections = 10 };
	struct settings s = { .listeners = &ls, .nlisteners = 1, .workers = 2 };
	struct rlimit old, rl;
	int fds[LOW_SOFT + PAST_IT];
	int n = 0, opened;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	if (old.rlim_max < LOW_SOFT + PAST_IT + 16)
		ck_abort_msg("hard RLIMIT_NOFILE %llu is too low for this test",
		    (unsigned long long)old.rlim_max);
	rl = (struct rlimit){ .rlim_cur = LOW_SOFT, .rlim_max = old.rlim_max };
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	/* Under the low soft limit, dup() fails with EMFILE before LOW_SOFT. */
	while (n < LOW_SOFT && (fds[n] = dup(0)) >= 0)
		n++;
	ck_assert_int_lt(n, LOW_SOFT);
	ck_assert_int_eq(errno, EMFILE);
	opened = n;

	ck_assert_int_eq(fdlimit_raise(&s), 0);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_uint_eq(rl.rlim_cur, old.rlim_max);
	ck_assert_uint_eq(rl.rlim_max, old.rlim_max);
	while (n < opened + PAST_IT && (fds[n] = dup(0)) >= 0)
		n++;
	ck_assert_int_eq(n, opened + PAST_IT);

	while (n > 0)
		close(fds[--n]);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
}
END_TEST

START_TEST(test_already_raised)
{
	struct listener_settings ls[2] = { { .max_connections = 5 }, { .max_connections = 5 } };
	struct settings s = { .listeners = ls, .nlisteners = 2, .workers = 1 };
	struct rlimit before, after;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &before), 0);
	before.rlim_cur = before.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &before), 0);
	ck_assert_int_eq(fdlimit_raise(&s), 0);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &after), 0);
	ck_assert_uint_eq(after.rlim_cur, before.rlim_cur);
	ck_assert_uint_eq(after.rlim_max, before.rlim_max);
}
END_TEST

static Suite *
fdlimit_suite(void)
{
	Suite *s = suite_create("fdlimit");
	TCase *tc = tcase_create("limit");

	tcase_add_test(tc, test_room);
	tcase_add_test(tc, test_raise);
	tcase_add_test(tc, test_already_raised);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(fdlimit_suite());
}
