/*
 * handshake_pool: one FIFO of jobs under a mutex, served by threads whose
 * priority is lowered once, when they start (setpriority() on a thread id
 * is per thread on Linux, and lowering needs no privilege).
 *
 * Newest first.  Jobs queue up only when full handshakes come faster than
 * the CPU left over completes them; served in order, every one would then
 * wait until it is nearly too late, and a storm would get no handshake
 * done in time.  Served newest first, those that get a turn get it at
 * once, and the oldest, whose devices are about to give up, wait out
 * their handshake_timeout instead.
 *
 * A job is QUEUED, then RUNNING while its run() executes without the
 * lock, then DONE, and its done() is called in the same hold of the lock:
 * an owner that finds it DONE knows its news is already on the way, and
 * one that finds it RUNNING knows the news will come.  Lock order: the
 * pool's lock, then an event base's (done() calls event_active()).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "handshake_pool.h"
#include "log.h"
#include "ticket_keys.h"

struct handshake_pool {
	pthread_mutex_t lock;
	pthread_cond_t work;		/* a job was queued, or stop */
	pthread_cond_t done;		/* a job left RUNNING */
	struct handshake_job *head, *tail;
	int stopping;
	int nice;
	unsigned nthreads;		/* started */
	pthread_t *threads;
};

static void
unlink_job(struct handshake_pool *p, struct handshake_job *job)
{
	if (job->prev != NULL)
		job->prev->next = job->next;
	else
		p->head = job->next;
	if (job->next != NULL)
		job->next->prev = job->prev;
	else
		p->tail = job->prev;
	job->prev = job->next = NULL;
}

static void *
pool_main(void *arg)
{
	struct handshake_pool *p = arg;
	struct handshake_job *job;

	if (setpriority(PRIO_PROCESS, (id_t)gettid(), p->nice) != 0)
		log_warning("full_handshake_priority: cannot lower a thread's priority: %s",
		    strerror(errno));
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->head == NULL && !p->stopping)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->head == NULL)
			break;
		job = p->tail;	/* the newest: see the top of the file */
		unlink_job(p, job);
		job->state = HANDSHAKE_JOB_RUNNING;
		pthread_mutex_unlock(&p->lock);

		job->run(job);

		pthread_mutex_lock(&p->lock);
		job->state = HANDSHAKE_JOB_DONE;
		job->done(job);
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	ticket_keys_thread_end();
	OPENSSL_thread_stop();
	return NULL;
}

struct handshake_pool *
handshake_pool_new(unsigned threads, int nice)
{
	struct handshake_pool *p;
	sigset_t all, old;
	int err = 0;

	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->threads = calloc(threads, sizeof(*p->threads))) == NULL) {
		log_error("full_handshake_priority: out of memory");
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	p->nice = nice;
	/* The main loop takes the signals, not these threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	while (p->nthreads < threads &&
	    (err = pthread_create(&p->threads[p->nthreads], NULL, pool_main, p)) == 0)
		p->nthreads++;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		log_error("full_handshake_priority: cannot start a thread: %s", strerror(err));
		handshake_pool_free(p);
		return NULL;
	}
	return p;
}

void
handshake_pool_free(struct handshake_pool *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->done);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}

void
handshake_pool_submit(struct handshake_pool *p, struct handshake_job *job)
{
	pthread_mutex_lock(&p->lock);
	job->next = NULL;
	job->prev = p->tail;
	job->state = HANDSHAKE_JOB_QUEUED;
	if (p->tail != NULL)
		p->tail->next = job;
	else
		p->head = job;
	p->tail = job;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
}

static enum handshake_job_state
withdraw_locked(struct handshake_pool *p, struct handshake_job *job)
{
	enum handshake_job_state state = job->state;

	if (state == HANDSHAKE_JOB_QUEUED) {
		unlink_job(p, job);
		job->state = HANDSHAKE_JOB_IDLE;
	}
	return state;
}

enum handshake_job_state
handshake_pool_withdraw(struct handshake_pool *p, struct handshake_job *job)
{
	enum handshake_job_state state;

	pthread_mutex_lock(&p->lock);
	state = withdraw_locked(p, job);
	pthread_mutex_unlock(&p->lock);
	return state;
}

void
handshake_pool_cancel(struct handshake_pool *p, struct handshake_job *job)
{
	pthread_mutex_lock(&p->lock);
	withdraw_locked(p, job);
	while (job->state == HANDSHAKE_JOB_RUNNING)
		pthread_cond_wait(&p->done, &p->lock);
	pthread_mutex_unlock(&p->lock);
}
