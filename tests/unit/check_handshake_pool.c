/*
 * check_handshake_pool: jobs run once each, the newest waiting first, on
 * threads at the priority asked for; a job withdrawn while it waits never
 * runs; a running one is reported as running and waited for by cancel;
 * done() comes after run() with the job already DONE.  Jobs that block on
 * a gate make every state observable without sleeping for it.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include "testlib.h"
#include "../../src/handshake_pool.h"

struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int open;
	int entered;		/* jobs that have started */
};

static struct gate gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };

struct test_job {
	struct handshake_job job;	/* first */
	int wait_at_gate;
	int ran, done_seen, nice;
	enum handshake_job_state state_in_done;
	int *order;			/* where to record the run's rank */
};

static int run_count;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;

static void
test_run(struct handshake_job *job)
{
	struct test_job *t = (struct test_job *)(void *)job;

	t->nice = getpriority(PRIO_PROCESS, (id_t)gettid());
	pthread_mutex_lock(&count_lock);
	if (t->order != NULL)
		*t->order = run_count;
	run_count++;
	pthread_mutex_unlock(&count_lock);
	t->ran++;
	if (t->wait_at_gate) {
		pthread_mutex_lock(&gate.lock);
		gate.entered++;
		pthread_cond_broadcast(&gate.cond);
		while (!gate.open)
			pthread_cond_wait(&gate.cond, &gate.lock);
		pthread_mutex_unlock(&gate.lock);
	}
}

static void
test_done(struct handshake_job *job)
{
	struct test_job *t = (struct test_job *)(void *)job;

	t->state_in_done = job->state;
	t->done_seen++;
}

static void
job_init(struct test_job *t, int wait_at_gate, int *order)
{
	memset(t, 0, sizeof(*t));
	t->job.run = test_run;
	t->job.done = test_done;
	t->wait_at_gate = wait_at_gate;
	t->order = order;
}

static void
gate_reset(void)
{
	pthread_mutex_lock(&gate.lock);
	gate.open = 0;
	gate.entered = 0;
	pthread_mutex_unlock(&gate.lock);
}

static void
gate_wait_entered(int n)
{
	pthread_mutex_lock(&gate.lock);
	while (gate.entered < n)
		pthread_cond_wait(&gate.cond, &gate.lock);
	pthread_mutex_unlock(&gate.lock);
}

static void
gate_open(void)
{
	pthread_mutex_lock(&gate.lock);
	gate.open = 1;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
}

START_TEST(test_jobs_run_once_newest_first_at_low_priority)
{
	struct handshake_pool *p = handshake_pool_new(1, 19);
	struct test_job first, jobs[20];
	int order[20], first_order;

	ck_assert_ptr_nonnull(p);
	run_count = 0;
	gate_reset();
	/* The thread is busy with the first while the others queue up. */
	job_init(&first, 1, &first_order);
	handshake_pool_submit(p, &first.job);
	gate_wait_entered(1);
	for (int i = 0; i < 20; i++) {
		job_init(&jobs[i], 0, &order[i]);
		handshake_pool_submit(p, &jobs[i].job);
	}
	gate_open();
	/* Freeing runs what is queued, then joins the thread. */
	handshake_pool_free(p);
	ck_assert_int_eq(first_order, 0);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(jobs[i].ran, 1);
		ck_assert_int_eq(jobs[i].done_seen, 1);
		ck_assert_int_eq(jobs[i].state_in_done, HANDSHAKE_JOB_DONE);
		ck_assert_int_eq(jobs[i].job.state, HANDSHAKE_JOB_DONE);
		ck_assert_int_eq(order[i], 20 - i);	/* newest first */
		ck_assert_int_eq(jobs[i].nice, 19);
	}
}
END_TEST

START_TEST(test_withdraw_running_queued_and_done)
{
	struct handshake_pool *p = handshake_pool_new(1, 10);
	struct test_job busy, queued, last;

	ck_assert_ptr_nonnull(p);
	gate_reset();
	job_init(&busy, 1, NULL);
	job_init(&queued, 0, NULL);
	job_init(&last, 0, NULL);
	handshake_pool_submit(p, &busy.job);
	gate_wait_entered(1);
	handshake_pool_submit(p, &queued.job);
	handshake_pool_submit(p, &last.job);
	ck_assert_int_eq(handshake_pool_withdraw(p, &busy.job), HANDSHAKE_JOB_RUNNING);
	ck_assert_int_eq(busy.done_seen, 0);
	/* Withdrawn from the middle of the queue: it never runs, the one behind it does. */
	ck_assert_int_eq(handshake_pool_withdraw(p, &queued.job), HANDSHAKE_JOB_QUEUED);
	ck_assert_int_eq(queued.job.state, HANDSHAKE_JOB_IDLE);
	ck_assert_int_eq(handshake_pool_withdraw(p, &queued.job), HANDSHAKE_JOB_IDLE);
	gate_open();
	handshake_pool_cancel(p, &busy.job);
	ck_assert_int_eq(busy.done_seen, 1);
	ck_assert_int_eq(handshake_pool_withdraw(p, &busy.job), HANDSHAKE_JOB_DONE);
	handshake_pool_cancel(p, &last.job);
	ck_assert_int_eq(last.ran, 1);
	ck_assert_int_eq(last.nice, 10);
	handshake_pool_free(p);
	ck_assert_int_eq(queued.ran, 0);
	ck_assert_int_eq(queued.done_seen, 0);
}
END_TEST

START_TEST(test_threads_share_the_queue)
{
	struct handshake_pool *p = handshake_pool_new(3, 19);
	struct test_job blocked[3], after;

	ck_assert_ptr_nonnull(p);
	gate_reset();
	/* Three jobs that hold their threads at once: three threads serve the queue. */
	for (int i = 0; i < 3; i++) {
		job_init(&blocked[i], 1, NULL);
		handshake_pool_submit(p, &blocked[i].job);
	}
	gate_wait_entered(3);
	job_init(&after, 0, NULL);
	handshake_pool_submit(p, &after.job);
	ck_assert_int_eq(handshake_pool_withdraw(p, &after.job), HANDSHAKE_JOB_QUEUED);
	handshake_pool_submit(p, &after.job);	/* a withdrawn job may come back */
	gate_open();
	handshake_pool_free(p);		/* runs it first */
	ck_assert_int_eq(after.ran, 1);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(blocked[i].ran, 1);
}
END_TEST

static Suite *
handshake_pool_suite(void)
{
	Suite *s = suite_create("handshake_pool");
	TCase *tc = tcase_create("jobs");

	tcase_add_test(tc, test_jobs_run_once_newest_first_at_low_priority);
	tcase_add_test(tc, test_withdraw_running_queued_and_done);
	tcase_add_test(tc, test_threads_share_the_queue);
	tcase_set_timeout(tc, 20);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(handshake_pool_suite());
}
