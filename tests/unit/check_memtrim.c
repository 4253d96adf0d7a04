/*
 * check_memtrim: a trim is due only once the connections have fallen to
 * half of their peak and by MEMTRIM_MIN_DROP, and then the peak starts
 * again; the timer makes that decision on its own; and memtrim_run()
 * really gives back what another thread's arena freed, even with blocks
 * still in use above it, where free() alone keeps it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "testlib.h"
#include "../../src/memtrim.h"

#define BLOCKS 4096
#define BLOCK_LEN (8 * 1024)	/* below the mmap threshold: from the arena */
#define KEEP_EVERY 64		/* blocks kept in use, spread over the arena */

/* Each test's trimmer, on an event base of its own, with its count. */
static struct event_base *base;
static size_t count;
static struct memtrim *m;

static void
setup(void)
{
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	count = 0;
	m = memtrim_new(base, &count, 0);
	ck_assert_ptr_nonnull(m);
}

static void
teardown(void)
{
	memtrim_free(m);
	event_base_free(base);
}

START_TEST(test_due_at_half_the_peak)
{
	/* Nothing opened, nothing to give back. */
	ck_assert_int_eq(memtrim_due(m, 0), 0);

	memtrim_note(m, 400);
	memtrim_note(m, 300);		/* the peak stays 400 */
	ck_assert_int_eq(memtrim_due(m, 201), 0);
	ck_assert_int_eq(memtrim_due(m, 200), 1);
	/* The peak is now 200: the same count is not due again. */
	ck_assert_int_eq(memtrim_due(m, 200), 0);
	ck_assert_int_eq(memtrim_due(m, 100), 1);
	ck_assert_int_eq(memtrim_due(m, 0), 1);

	/* Half the peak but fewer than MEMTRIM_MIN_DROP gone: not worth it. */
	memtrim_note(m, MEMTRIM_MIN_DROP - 1);
	ck_assert_int_eq(memtrim_due(m, 0), 0);
	memtrim_note(m, MEMTRIM_MIN_DROP);
	ck_assert_int_eq(memtrim_due(m, 0), 1);

	/* A big count that falls by MEMTRIM_MIN_DROP but not to half: no. */
	memtrim_note(m, 10000);
	ck_assert_int_eq(memtrim_due(m, 5001), 0);
	ck_assert_int_eq(memtrim_due(m, 5000), 1);
	memtrim_free(NULL);
}
END_TEST

START_TEST(test_timer_trims_after_a_burst)
{
	memtrim_note(m, 500);
	count = 10;
	/* The first check comes after MEMTRIM_CHECK_MS and trims. */
	ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 0);
	/* It started the peak again from 10: nothing more is due. */
	ck_assert_int_eq(memtrim_due(m, 0), 0);

	/* A steady count is never due, check after check. */
	memtrim_note(m, 500);
	count = 500;
	ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 0);
	ck_assert_int_eq(memtrim_due(m, 250), 1);
}
END_TEST

/* Resident memory of this process in KB. */
static long
rss_kb(void)
{
	long size, resident;
	FILE *f = fopen("/proc/self/statm", "r");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%ld %ld", &size, &resident), 2);
	fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* A worker's burst: many blocks, touched, then all freed but a few. */
static void *
burst(void *arg)
{
	void **kept = arg;
	static void *blocks[BLOCKS];

	for (size_t i = 0; i < BLOCKS; i++) {
		blocks[i] = malloc(BLOCK_LEN);
		ck_assert_ptr_nonnull(blocks[i]);
		memset(blocks[i], 0x5a, BLOCK_LEN);
	}
	for (size_t i = 0; i < BLOCKS; i++) {
		if (i % KEEP_EVERY == KEEP_EVERY - 1)
			kept[i / KEEP_EVERY] = blocks[i];
		else
			free(blocks[i]);
	}
	return NULL;
}

START_TEST(test_run_gives_freed_heap_back)
{
#if defined(__SANITIZE_ADDRESS__)
	/* AddressSanitizer's allocator is not glibc's: nothing to measure. */
	return;
#endif
	static void *kept[BLOCKS / KEEP_EVERY];
	long before, after_burst, after_trim, burst_kb = BLOCKS * (BLOCK_LEN / 1024);
	pthread_t t;

	before = rss_kb();
	ck_assert_int_eq(pthread_create(&t, NULL, burst, kept), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	after_burst = rss_kb();
	/* free() alone kept the pages: the arena's top is still in use. */
	ck_assert_int_ge(after_burst - before, burst_kb / 2);
	memtrim_run();
	after_trim = rss_kb();
	fprintf(stderr, "# RSS %ld KB, %ld KB after a %ld KB burst, %ld KB after memtrim_run()\n",
	    before, after_burst, burst_kb, after_trim);
	/* What stays in use is 1/KEEP_EVERY of the burst, and a page each. */
	ck_assert_int_le(after_trim - before, burst_kb / 4);
	for (size_t i = 0; i < BLOCKS / KEEP_EVERY; i++)
		free(kept[i]);
}
END_TEST

static Suite *
memtrim_suite(void)
{
	Suite *s = suite_create("memtrim");
	TCase *tc = tcase_create("trim");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_due_at_half_the_peak);
	tcase_add_test(tc, test_timer_trims_after_a_burst);
	tcase_add_test(tc, test_run_gives_freed_heap_back);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(memtrim_suite());
}
