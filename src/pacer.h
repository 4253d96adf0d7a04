/*
 * pacer: lets work start at a set rate and at most so many at once,
 * shared by every worker thread, and queues the rest in arrival order.
 *
 * A listener has two: one for full handshakes (full_handshake_rate and
 * full_handshake_burst) and one for backend connects
 * (backend_connect_rate, backend_max_connecting).  The rate is a token
 * bucket; the queue is one FIFO for all workers, so a waiter that came
 * first starts first whichever thread it lives on.  A waiter is woken
 * through its own callback, called with the pacer's lock held from
 * whichever thread found it a token: it must only hand the news to its
 * own thread (event_active()), and must not call the pacer back.
 *
 * The pacer never runs on the resumption path: only work that the
 * caller decided to meter calls it, and a pacer without limits lets
 * everything through at once.
 */
#ifndef TLSPROXY_PACER_H
#define TLSPROXY_PACER_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

/*
 * A token bucket: ${rate} tokens a second, holding at most ${burst}.
 * Plain data so that its arithmetic can be tested with any clock.
 */
struct token_bucket {
	uint64_t rate;		/* tokens per second; 0: no limit */
	uint64_t burst;		/* at most this many saved up, >= 1 */
	uint64_t micro;		/* tokens held, in millionths of a token */
	uint64_t updated;	/* µs (CLOCK_MONOTONIC) when ${micro} was right */
	/*
	 * Someone waits for the next token: the bucket may then hold one more
	 * than ${burst}, so that a token earned just before a late timer is
	 * kept, not capped away (with a burst of 1 that would lose the time
	 * the timer was late on every token, 15-20% of a small rate).
	 */
	int queued;
};

/**
 * token_bucket_set(tb, rate, burst, now): give ${tb} a new rate and size
 * (${burst} 0: the same as ${rate}), keeping the tokens it holds, at most
 * the new size.  A bucket set for the first time (all zero), or without a
 * limit until now, starts full.
 */
void token_bucket_set(struct token_bucket *tb, uint64_t rate, uint64_t burst, uint64_t now);

/** token_bucket_take(tb, now): take one token if there is one; 1 if taken, else 0. */
int token_bucket_take(struct token_bucket *tb, uint64_t now);

/**
 * token_bucket_wait(tb, now): microseconds until a token will be there
 * (0 if one is, or if there is no limit).
 */
uint64_t token_bucket_wait(struct token_bucket *tb, uint64_t now);

/* A waiter, kept in the waiting thing (a connection): no allocation. */
struct pacer_wait {
	struct pacer_wait *prev, *next;
	uint64_t since;		/* µs when it began waiting */
	int queued;		/* in the queue; only the pacer changes it */
	void (*wake)(struct pacer_wait *w);	/* see above */
};

enum pacer_result {
	PACER_GO,		/* started: a token (and a slot) was taken */
	PACER_WAIT,		/* queued: ${wake} will say when it started */
	PACER_FULL,		/* not queued: its turn would come too late */
};

struct pacer;

/**
 * pacer_new(base): a pacer without limits, whose queue is served by a
 * timer on ${base} (a loop that runs as long as the pacer: the main
 * thread's).  NULL if memory runs out.
 */
struct pacer *pacer_new(struct event_base *base);

/** pacer_free(p): free ${p}, which must have no waiter left; NULL is fine. */
void pacer_free(struct pacer *p);

/**
 * pacer_configure(p, rate, burst, max_active): the limits, 0 meaning none
 * for each.  Tokens held, work started and the queue are kept, so a
 * reload neither refills the bucket nor loses a waiter.
 */
void pacer_configure(struct pacer *p, uint64_t rate, uint64_t burst, uint64_t max_active);

/**
 * pacer_configure_connects(p, rate, max_active): pacer_configure() for
 * backend connects (backend_connect_rate, backend_max_connecting): the
 * burst is 10 ms worth of ${rate}, at least 1.
 */
void pacer_configure_connects(struct pacer *p, uint64_t rate, uint64_t max_active);

/** pacer_limited(p): 0 when ${p} has no limit, so that callers can skip it. */
int pacer_limited(const struct pacer *p);

/**
 * pacer_enter(p, w, now, max_wait): start now (a token taken, and a slot
 * when max_active is set) if nothing waits before ${w} and the limits
 * allow; otherwise queue ${w}, whose wake() is called once it has started
 * -- unless the rate alone (one token for each waiter ahead) says its turn
 * would come more than ${max_wait} µs from now (0: no bound): then
 * PACER_FULL, and nothing changed.  Under sustained overload a queue
 * served in order grows until every waiter has waited out its client;
 * refusing at once keeps the waits short and the work useful.
 */
enum pacer_result pacer_enter(struct pacer *p, struct pacer_wait *w, uint64_t now,
    uint64_t max_wait);

/**
 * pacer_cancel(p, w): take ${w} out of the queue.  Returns 1 if it was
 * there, 0 if it had started already (its wake() was called or is about to
 * be handled): then it holds a slot, to give back with pacer_leave().
 */
int pacer_cancel(struct pacer *p, struct pacer_wait *w);

/**
 * pacer_leave(p): work started by ${p} is over; its slot may go to a
 * waiter.  Only pacers with max_active count slots: work started by one
 * that never has max_active need not leave.
 */
void pacer_leave(struct pacer *p);

/**
 * pacer_return(p): work started by ${p} will not be done after all (its
 * client left while it waited): its token and its slot go to the next
 * waiter, so that the clients that left do not use up the rate.
 */
void pacer_return(struct pacer *p);

/** pacer_queued(p): how many wait now. */
uint64_t pacer_queued(struct pacer *p);

#endif
