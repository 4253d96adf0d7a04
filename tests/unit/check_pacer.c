/*
 * check_pacer: the token bucket's arithmetic with an injected clock (a
 * full start, refills by the microsecond, the burst cap, new limits that
 * keep the tokens), and the pacer's queue on a real event base: waiters
 * start in arrival order whichever way room is made (tokens due, a slot
 * left, new limits), a cancelled one never starts, a returned turn goes
 * to the next in line.  No test depends on how fast this machine is: the
 * clock is injected, or the only bound is a generous upper one.
 */
#include <stdint.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "testlib.h"
#include "../../src/pacer.h"

#define SEC 1000000ULL
#define T0 (1000 * SEC)		/* any time but 0, which means "never set" */

START_TEST(test_bucket_starts_full_and_refills)
{
	struct token_bucket tb = { 0 };
	int i;

	token_bucket_set(&tb, 10, 3, T0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(token_bucket_take(&tb, T0), 1);
	ck_assert_int_eq(token_bucket_take(&tb, T0), 0);
	/* 10 a second: one every 100 ms, and not a microsecond sooner. */
	ck_assert_uint_eq(token_bucket_wait(&tb, T0), 100000);
	ck_assert_int_eq(token_bucket_take(&tb, T0 + 99999), 0);
	ck_assert_uint_eq(token_bucket_wait(&tb, T0 + 99999), 1);
	ck_assert_int_eq(token_bucket_take(&tb, T0 + 100000), 1);
	ck_assert_int_eq(token_bucket_take(&tb, T0 + 100000), 0);
	/* A long pause fills it to the burst, not beyond. */
	ck_assert_uint_eq(token_bucket_wait(&tb, T0 + 3600 * SEC), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(token_bucket_take(&tb, T0 + 3600 * SEC), 1);
	ck_assert_int_eq(token_bucket_take(&tb, T0 + 3600 * SEC), 0);
	/* The clock going back takes nothing and gives nothing. */
	ck_assert_int_eq(token_bucket_take(&tb, T0), 0);
}
END_TEST

START_TEST(test_bucket_rate_over_time)
{
	struct token_bucket tb = { 0 };
	uint64_t t, taken = 0;

	/* 1000 a second, burst 1: exactly one per millisecond over 10 s. */
	token_bucket_set(&tb, 1000, 1, T0);
	for (t = T0; t < T0 + 10 * SEC; t += 250)
		taken += (uint64_t)token_bucket_take(&tb, t);
	ck_assert_uint_eq(taken, 10000);
}
END_TEST

START_TEST(test_bucket_late_consumer_keeps_the_rate)
{
	struct token_bucket tb = { 0 };
	uint64_t t, taken;

	/* A queue served every 1.1 ms (a timer a little late) at 1000 a
	 * second, burst 1: with someone waiting, the token earned before the
	 * late tick is kept, and the rate holds... */
	token_bucket_set(&tb, 1000, 1, T0);
	tb.queued = 1;
	for (taken = 0, t = T0; t < T0 + 10 * SEC; t += 1100)
		while (token_bucket_take(&tb, t))
			taken++;
	ck_assert_uint_ge(taken, 9999);
	ck_assert_uint_le(taken, 10002);
	/* ...while with nobody waiting, the burst is the burst. */
	tb = (struct token_bucket){ 0 };
	token_bucket_set(&tb, 1000, 1, T0);
	for (taken = 0, t = T0; t < T0 + 10 * SEC; t += 1100)
		while (token_bucket_take(&tb, t))
			taken++;
	ck_assert_uint_eq(taken, 9091);
}
END_TEST

START_TEST(test_bucket_defaults_and_no_limit)
{
	struct token_bucket tb = { 0 };
	int i;

	/* Burst 0 means one second's worth. */
	token_bucket_set(&tb, 5, 0, T0);
	ck_assert_uint_eq(tb.burst, 5);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(token_bucket_take(&tb, T0), 1);
	ck_assert_int_eq(token_bucket_take(&tb, T0), 0);
	/* Rate 0 is no limit. */
	token_bucket_set(&tb, 0, 0, T0);
	for (i = 0; i < 1000; i++)
		ck_assert_int_eq(token_bucket_take(&tb, T0), 1);
	ck_assert_uint_eq(token_bucket_wait(&tb, T0), 0);
}
END_TEST

START_TEST(test_bucket_reconfigured_keeps_tokens)
{
	struct token_bucket tb = { 0 };

	token_bucket_set(&tb, 10, 10, T0);
	ck_assert_int_eq(token_bucket_take(&tb, T0), 1);	/* 9 left */
	/* A reload with the same limits does not refill the bucket... */
	token_bucket_set(&tb, 10, 10, T0);
	ck_assert_uint_eq(tb.micro, 9 * SEC);
	/* ...a smaller burst caps what is held... */
	token_bucket_set(&tb, 10, 4, T0);
	ck_assert_uint_eq(tb.micro, 4 * SEC);
	/* ...and what the old rate earned until the change is kept. */
	while (token_bucket_take(&tb, T0))
		;
	token_bucket_set(&tb, 1, 4, T0 + 150000);	/* 1.5 tokens at 10/s */
	ck_assert_int_eq(token_bucket_take(&tb, T0 + 150000), 1);
	ck_assert_int_eq(token_bucket_take(&tb, T0 + 150000), 0);
	ck_assert_uint_eq(token_bucket_wait(&tb, T0 + 150000), 500000);	/* 0.5 at 1/s */
}
END_TEST

/* --- The queue, on a real event base ------------------------------------ */

struct waiter {
	struct pacer_wait w;
	int id;
	int *order, *n;
};

static void
record_turn(struct pacer_wait *w)
{
	struct waiter *wt = (struct waiter *)(void *)w;

	wt->order[(*wt->n)++] = wt->id;
}

static void
waiters_init(struct waiter *w, size_t n, int *order, int *count)
{
	for (size_t i = 0; i < n; i++) {
		w[i].w.wake = record_turn;
		w[i].id = (int)i;
		w[i].order = order;
		w[i].n = count;
	}
}

/* CLOCK_MONOTONIC in µs, the clock the daemon gives pacer_enter(). */
static uint64_t
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec / 1000;
}

/* Run ${base} until ${*count} reaches ${want}; 10 s at most. */
static void
run_until(struct event_base *base, const int *count, int want)
{
	struct timeval tick = { 0, 10000 };

	for (int i = 0; i < 1000 && *count < want; i++) {
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
	}
	ck_assert_int_eq(*count, want);
}

START_TEST(test_queue_in_order_as_tokens_come)
{
	struct event_base *base = event_base_new();
	struct pacer *p = pacer_new(base);
	struct waiter w[5];
	int order[5], count = 0;

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(pacer_limited(p), 0);
	pacer_configure(p, 20, 1, 0);		/* one every 50 ms, none saved up */
	ck_assert_int_eq(pacer_limited(p), 1);
	waiters_init(w, 5, order, &count);
	ck_assert_int_eq(pacer_enter(p, &w[0].w, mono(), 0), PACER_GO);
	for (int i = 1; i < 5; i++)
		ck_assert_int_eq(pacer_enter(p, &w[i].w, mono(), 0), PACER_WAIT);
	ck_assert_uint_eq(pacer_queued(p), 4);
	ck_assert_int_eq(count, 0);
	run_until(base, &count, 4);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(order[i], i + 1);
	ck_assert_uint_eq(pacer_queued(p), 0);
	pacer_free(p);
	event_base_free(base);
}
END_TEST

START_TEST(test_queue_refuses_a_turn_too_late)
{
	struct event_base *base = event_base_new();
	struct pacer *p = pacer_new(base);
	struct waiter w[4];
	int order[4], count = 0;
	uint64_t now = mono();

	pacer_configure(p, 10, 1, 0);		/* one every 100 ms */
	waiters_init(w, 4, order, &count);
	/* At most 250 ms: the turns at 100 and 200 ms queue, 300 ms does not. */
	ck_assert_int_eq(pacer_enter(p, &w[0].w, now, 250000), PACER_GO);
	ck_assert_int_eq(pacer_enter(p, &w[1].w, now, 250000), PACER_WAIT);
	ck_assert_int_eq(pacer_enter(p, &w[2].w, now, 250000), PACER_WAIT);
	ck_assert_int_eq(pacer_enter(p, &w[3].w, now, 250000), PACER_FULL);
	ck_assert_uint_eq(pacer_queued(p), 2);
	ck_assert_int_eq(pacer_enter(p, &w[3].w, now, 0), PACER_WAIT);	/* no bound */
	run_until(base, &count, 3);
	ck_assert_int_eq(order[2], 3);
	pacer_free(p);
	event_base_free(base);
}
END_TEST

START_TEST(test_queue_max_active_and_leave)
{
	struct event_base *base = event_base_new();
	struct pacer *p = pacer_new(base);
	struct waiter w[4];
	int order[4], count = 0;

	pacer_configure(p, 0, 0, 2);		/* no rate: two at once */
	waiters_init(w, 4, order, &count);
	ck_assert_int_eq(pacer_enter(p, &w[0].w, mono(), 0), PACER_GO);
	ck_assert_int_eq(pacer_enter(p, &w[1].w, mono(), 0), PACER_GO);
	ck_assert_int_eq(pacer_enter(p, &w[2].w, mono(), 0), PACER_WAIT);
	ck_assert_int_eq(pacer_enter(p, &w[3].w, mono(), 0), PACER_WAIT);
	/* One leaves: the first in line starts, at once, from leave(). */
	pacer_leave(p);
	ck_assert_int_eq(count, 1);
	ck_assert_int_eq(order[0], 2);
	/* A cancelled waiter never starts; one that started cannot be cancelled. */
	ck_assert_int_eq(pacer_cancel(p, &w[3].w), 1);
	ck_assert_int_eq(pacer_cancel(p, &w[2].w), 0);
	pacer_leave(p);
	pacer_leave(p);
	ck_assert_int_eq(count, 1);
	ck_assert_uint_eq(pacer_queued(p), 0);
	pacer_free(p);
	event_base_free(base);
}
END_TEST

START_TEST(test_queue_reconfigure_and_return)
{
	struct event_base *base = event_base_new();
	struct pacer *p = pacer_new(base);
	struct waiter w[4];
	int order[4], count = 0;

	pacer_configure(p, 1, 1, 0);		/* one a second */
	waiters_init(w, 4, order, &count);
	ck_assert_int_eq(pacer_enter(p, &w[0].w, mono(), 0), PACER_GO);
	ck_assert_int_eq(pacer_enter(p, &w[1].w, mono(), 0), PACER_WAIT);
	ck_assert_int_eq(pacer_enter(p, &w[2].w, mono(), 0), PACER_WAIT);
	ck_assert_int_eq(pacer_enter(p, &w[3].w, mono(), 0), PACER_WAIT);
	/* The first gives its turn back (its client left): the next starts. */
	pacer_return(p);
	ck_assert_int_eq(count, 1);
	ck_assert_int_eq(order[0], 1);
	/* A reload that lifts the limit starts every waiter, in order. */
	pacer_configure(p, 0, 0, 0);
	ck_assert_int_eq(pacer_limited(p), 0);
	ck_assert_int_eq(count, 3);
	ck_assert_int_eq(order[1], 2);
	ck_assert_int_eq(order[2], 3);
	pacer_free(p);
	event_base_free(base);
}
END_TEST

static Suite *
pacer_suite(void)
{
	Suite *s = suite_create("pacer");
	TCase *bucket = tcase_create("bucket");
	TCase *queue = tcase_create("queue");

	tcase_add_test(bucket, test_bucket_starts_full_and_refills);
	tcase_add_test(bucket, test_bucket_rate_over_time);
	tcase_add_test(bucket, test_bucket_late_consumer_keeps_the_rate);
	tcase_add_test(bucket, test_bucket_defaults_and_no_limit);
	tcase_add_test(bucket, test_bucket_reconfigured_keeps_tokens);
	tcase_add_test(queue, test_queue_in_order_as_tokens_come);
	tcase_add_test(queue, test_queue_refuses_a_turn_too_late);
	tcase_add_test(queue, test_queue_max_active_and_leave);
	tcase_add_test(queue, test_queue_reconfigure_and_return);
	tcase_set_timeout(queue, 20);
	suite_add_tcase(s, bucket);
	suite_add_tcase(s, queue);
	return s;
}

int
main(void)
{
	evthread_use_pthreads();
	return tl_run(pacer_suite());
}
