/*
 * pacer: a token bucket, a count of work in progress and one FIFO of
 * waiters under one mutex.  Only metered work takes the mutex, once to
 * enter and, with max_active, once to leave.
 *
 * Tokens are counted in millionths, so that a bucket refilled every
 * microsecond loses nothing to rounding.  The queue is served from the
 * thread whose call made room (pacer_leave(), a reconfiguration) or, when
 * tokens are what it waits for, by a timer on the pacer's own event base
 * set for when the next token is due.  libevent is set up for threads, so
 * any thread may arm that timer and wake a waiter on another thread's
 * base.  Lock order: the pacer's mutex, then a base's; libevent never
 * calls back into us holding a base lock.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "pacer.h"

#define MICRO 1000000ULL

struct pacer {
	pthread_mutex_t lock;
	struct token_bucket bucket;
	uint64_t max_active;		/* 0: no limit */
	uint64_t active;		/* started, not yet left */
	struct pacer_wait *head, *tail;
	uint64_t queued;
	struct event *timer;		/* serves the queue when a token is due */
	uint64_t timer_due;		/* µs; 0: not armed */
	atomic_int limited;		/* read without the lock by callers */
};

static uint64_t
now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * MICRO + (uint64_t)ts.tv_nsec / 1000;
}

/* --- The bucket ---------------------------------------------------------- */

/* What a bucket may hold: see token_bucket.queued. */
static uint64_t
capacity(const struct token_bucket *tb)
{
	return (tb->burst + (tb->queued ? 1 : 0)) * MICRO;
}

static void
refill(struct token_bucket *tb, uint64_t now)
{
	uint64_t cap = capacity(tb), elapsed;

	if (now <= tb->updated)
		return;
	elapsed = now - tb->updated;
	tb->updated = now;
	/* Past the time to fill it, it is full: no overflow for long gaps. */
	if (tb->rate == 0 || elapsed >= (cap - tb->micro) / tb->rate + 1)
		tb->micro = cap;
	else
		tb->micro += elapsed * tb->rate;
	if (tb->micro > cap)
		tb->micro = cap;
}

void
token_bucket_set(struct token_bucket *tb, uint64_t rate, uint64_t burst, uint64_t now)
{
	/* Unlimited until now, it holds as much as it may. */
	int first = tb->updated == 0 || tb->rate == 0;

	if (!first)
		refill(tb, now);	/* what the old rate earned until now */
	tb->rate = rate;
	tb->burst = burst > 0 ? burst : (rate > 0 ? rate : 1);
	tb->updated = now;
	if (first || tb->micro > tb->burst * MICRO)
		tb->micro = tb->burst * MICRO;
}

int
token_bucket_take(struct token_bucket *tb, uint64_t now)
{
	if (tb->rate == 0)
		return 1;
	refill(tb, now);
	if (tb->micro < MICRO)
		return 0;
	tb->micro -= MICRO;
	return 1;
}

uint64_t
token_bucket_wait(struct token_bucket *tb, uint64_t now)
{
	if (tb->rate == 0)
		return 0;
	refill(tb, now);
	if (tb->micro >= MICRO)
		return 0;
	return (MICRO - tb->micro + tb->rate - 1) / tb->rate;
}

/* --- The queue ----------------------------------------------------------- */

static int
slot_free(const struct pacer *p)
{
	return p->max_active == 0 || p->active < p->max_active;
}

/* Arm the timer for the next token unless it will fire by then anyway. */
static void
arm_timer(struct pacer *p, uint64_t now)
{
	uint64_t wait = token_bucket_wait(&p->bucket, now);
	struct timeval tv;

	if (p->timer_due != 0 && p->timer_due <= now + wait)
		return;
	/* libevent sleeps in whole milliseconds: round up, never spin. */
	wait = (wait + 999) / 1000 * 1000;
	tv.tv_sec = (time_t)(wait / MICRO);
	tv.tv_usec = (suseconds_t)(wait % MICRO);
	p->timer_due = now + wait;
	evtimer_add(p->timer, &tv);
}

/* Start waiters in order while the limits allow; the lock is held. */
static void
dispatch(struct pacer *p, uint64_t now)
{
	struct pacer_wait *w;

	while ((w = p->head) != NULL && slot_free(p)) {
		if (!token_bucket_take(&p->bucket, now)) {
			arm_timer(p, now);
			return;
		}
		p->head = w->next;
		if (p->head != NULL)
			p->head->prev = NULL;
		else
			p->tail = NULL;
		p->bucket.queued = p->head != NULL;
		w->prev = w->next = NULL;
		w->queued = 0;
		p->queued--;
		p->active++;
		w->wake(w);
	}
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pacer *p = arg;

	pthread_mutex_lock(&p->lock);
	p->timer_due = 0;
	dispatch(p, now_usec());
	pthread_mutex_unlock(&p->lock);
}

struct pacer *
pacer_new(struct event_base *base)
{
	struct pacer *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		goto err0;
	if ((p->timer = evtimer_new(base, on_timer, p)) == NULL)
		goto err1;
	if (pthread_mutex_init(&p->lock, NULL) != 0)
		goto err2;
	atomic_init(&p->limited, 0);
	return p;

err2:
	event_free(p->timer);
err1:
	free(p);
err0:
	return NULL;
}

void
pacer_free(struct pacer *p)
{
	if (p == NULL)
		return;
	event_free(p->timer);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void
pacer_configure(struct pacer *p, uint64_t rate, uint64_t burst, uint64_t max_active)
{
	uint64_t now = now_usec();

	pthread_mutex_lock(&p->lock);
	token_bucket_set(&p->bucket, rate, burst, now);
	p->max_active = max_active;
	atomic_store_explicit(&p->limited, rate > 0 || max_active > 0, memory_order_relaxed);
	dispatch(p, now);	/* the new limits may let some start */
	pthread_mutex_unlock(&p->lock);
}

void
pacer_configure_connects(struct pacer *p, uint64_t rate, uint64_t max_active)
{
	/* Connects are spread evenly: at most 10 ms worth start together (the
	 * timer's resolution is 1 ms), never a second's worth at once. */
	pacer_configure(p, rate, rate / 100 > 0 ? rate / 100 : 1, max_active);
}

int
pacer_limited(const struct pacer *p)
{
	return atomic_load_explicit(&p->limited, memory_order_relaxed);
}

enum pacer_result
pacer_enter(struct pacer *p, struct pacer_wait *w, uint64_t now, uint64_t max_wait)
{
	enum pacer_result r = PACER_GO;
	uint64_t turn;

	pthread_mutex_lock(&p->lock);
	if (p->head == NULL && slot_free(p) && token_bucket_take(&p->bucket, now)) {
		p->active++;
		goto done;
	}
	if (max_wait > 0 && p->bucket.rate > 0) {
		turn = token_bucket_wait(&p->bucket, now) + p->queued * MICRO / p->bucket.rate;
		if (turn > max_wait) {
			r = PACER_FULL;
			goto done;
		}
	}
	w->since = now;
	w->queued = 1;
	w->next = NULL;
	w->prev = p->tail;
	if (p->tail != NULL)
		p->tail->next = w;
	else
		p->head = w;
	p->tail = w;
	p->queued++;
	p->bucket.queued = 1;
	if (slot_free(p))
		arm_timer(p, now);	/* tokens are what it waits for */
	r = PACER_WAIT;
done:
	pthread_mutex_unlock(&p->lock);
	return r;
}

int
pacer_cancel(struct pacer *p, struct pacer_wait *w)
{
	int was_queued;

	pthread_mutex_lock(&p->lock);
	if ((was_queued = w->queued) != 0) {
		if (w->prev != NULL)
			w->prev->next = w->next;
		else
			p->head = w->next;
		if (w->next != NULL)
			w->next->prev = w->prev;
		else
			p->tail = w->prev;
		w->prev = w->next = NULL;
		w->queued = 0;
		p->queued--;
		p->bucket.queued = p->head != NULL;
	}
	pthread_mutex_unlock(&p->lock);
	return was_queued;
}

void
pacer_leave(struct pacer *p)
{
	pthread_mutex_lock(&p->lock);
	if (p->active > 0)
		p->active--;
	dispatch(p, now_usec());
	pthread_mutex_unlock(&p->lock);
}

void
pacer_return(struct pacer *p)
{
	struct token_bucket *tb = &p->bucket;

	pthread_mutex_lock(&p->lock);
	if (tb->rate > 0) {
		refill(tb, now_usec());
		tb->micro = tb->micro + MICRO < capacity(tb) ? tb->micro + MICRO : capacity(tb);
	}
	if (p->active > 0)
		p->active--;
	dispatch(p, now_usec());
	pthread_mutex_unlock(&p->lock);
}

uint64_t
pacer_queued(struct pacer *p)
{
	uint64_t n;

	pthread_mutex_lock(&p->lock);
	n = p->queued;
	pthread_mutex_unlock(&p->lock);
	return n;
}
