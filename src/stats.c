/*
 * stats: the counters behind SIGUSR1's log line and the metrics.
 *
 * Writers touch only their own block, with relaxed atomic adds.  The list
 * of blocks changes only at start-up and shutdown, under a mutex that
 * readers (the log line, a metrics scrape) take too; the hot path never
 * takes it.  Readers see each counter's own latest value, not a snapshot
 * of all of them at one instant; that is all counters need.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "stats.h"

/* One histogram: a count per bucket, the last one past every bound. */
struct timing {
	_Atomic uint64_t buckets[STATS_TIME_BUCKETS + 1];
	_Atomic uint64_t usec;
};

struct stats {
	_Atomic uint64_t counters[STAT_COUNTER_MAX];
	struct timing timings[STAT_TIMING_MAX];
	struct stats *next;
};

/*
 * 1 ms to 10 s: loopback and LAN brokers at the low end, a struggling one
 * (or a long wait for admission) at the top.
 */
static const uint64_t time_bounds[STATS_TIME_BUCKETS] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
	2500000, 10000000,
};

static struct stats process;
static struct stats *blocks;		/* every other block */
static pthread_mutex_t blocks_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const counter_names[STAT_COUNTER_MAX] = {
	[STAT_CONN_ACCEPTED] = "accepted",
	[STAT_CONN_REFUSED_LIMIT] = "refused_limit",
	[STAT_HANDSHAKE_FULL_TLS12] = "full_tls12",
	[STAT_HANDSHAKE_FULL_TLS13] = "full_tls13",
	[STAT_RESUMED_TLS12_TICKET_CURRENT] = "resumed_tls12_ticket_current",
	[STAT_RESUMED_TLS12_TICKET_GRACE] = "resumed_tls12_ticket_grace",
	[STAT_RESUMED_TLS12_TICKET_PREVIOUS_SEED] = "resumed_tls12_ticket_previous_seed",
	[STAT_RESUMED_TLS12_SESSION_ID] = "resumed_tls12_session_id",
	[STAT_RESUMED_TLS13_TICKET_CURRENT] = "resumed_tls13_ticket_current",
	[STAT_RESUMED_TLS13_TICKET_GRACE] = "resumed_tls13_ticket_grace",
	[STAT_RESUMED_TLS13_TICKET_PREVIOUS_SEED] = "resumed_tls13_ticket_previous_seed",
	[STAT_RESUMED_TLS13_STATEFUL] = "resumed_tls13_stateful",
	[STAT_TICKET_REJECTED_UNKNOWN] = "ticket_rejected_unknown",
	[STAT_TICKET_REJECTED_EXPIRED] = "ticket_rejected_expired",
	[STAT_TICKET_REJECTED_MALFORMED] = "ticket_rejected_malformed",
	[STAT_TICKET_REJECTED_POLICY] = "ticket_rejected_policy",
	[STAT_TICKET_REJECTED_CERT_EXPIRED] = "ticket_rejected_cert_expired",
	[STAT_TICKET_REJECTED_TOO_OLD] = "ticket_rejected_too_old",
	[STAT_TICKET_REJECTED_REVOKED] = "ticket_rejected_revoked",
	[STAT_HANDSHAKE_FAILED] = "handshake_failed",
	[STAT_HANDSHAKE_REVOKED] = "handshake_revoked",
	[STAT_HANDSHAKE_TIMEOUT] = "handshake_timeout",
	[STAT_BACKEND_FAILED] = "backend_failed",
	[STAT_BYTES_CLIENT_TO_BACKEND] = "bytes_in",
	[STAT_BYTES_BACKEND_TO_CLIENT] = "bytes_out",
	[STAT_HANDSHAKE_CLIENT_CLOSED] = "handshake_client_closed",
	[STAT_RELOAD_OK] = "reloads_ok",
	[STAT_RELOAD_FAILED] = "reloads_failed",
	[STAT_FULL_ADMITTED] = "full_admitted",
	[STAT_FULL_DEFERRED] = "full_deferred",
	[STAT_FULL_DROPPED] = "full_dropped",
	[STAT_BACKEND_DEFERRED] = "backend_deferred",
	[STAT_BACKEND_DROPPED] = "backend_dropped",
	[STAT_BACKEND_RETRIED] = "backend_retried",
	[STAT_HANDSHAKE_NO_ALPN] = "alpn_none",
};

struct stats_counter {
	atomic_int refs;
	_Atomic uint64_t n;
};

struct stats *
stats_new_part(void)
{
	struct stats *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	for (size_t i = 0; i < STAT_COUNTER_MAX; i++)
		atomic_init(&st->counters[i], 0);
	for (size_t t = 0; t < STAT_TIMING_MAX; t++) {
		for (size_t i = 0; i <= STATS_TIME_BUCKETS; i++)
			atomic_init(&st->timings[t].buckets[i], 0);
		atomic_init(&st->timings[t].usec, 0);
	}
	return st;
}

struct stats *
stats_new(void)
{
	struct stats *st;

	if ((st = stats_new_part()) == NULL)
		return NULL;
	pthread_mutex_lock(&blocks_lock);
	st->next = blocks;
	blocks = st;
	pthread_mutex_unlock(&blocks_lock);
	return st;
}

void
stats_free(struct stats *st)
{
	struct stats **p;

	if (st == NULL)
		return;
	pthread_mutex_lock(&blocks_lock);
	for (p = &blocks; *p != NULL; p = &(*p)->next)
		if (*p == st) {
			*p = st->next;
			break;
		}
	pthread_mutex_unlock(&blocks_lock);
	free(st);
}

void
stats_count(struct stats *st, enum stat_counter counter, uint64_t n)
{
	atomic_fetch_add_explicit(&st->counters[counter], n, memory_order_relaxed);
}

void
stats_add(enum stat_counter counter, uint64_t n)
{
	stats_count(&process, counter, n);
}

uint64_t
stats_value(const struct stats *st, enum stat_counter counter)
{
	if (st == NULL)
		st = &process;
	return atomic_load_explicit(&st->counters[counter], memory_order_relaxed);
}

uint64_t
stats_get(enum stat_counter counter)
{
	uint64_t n = stats_value(&process, counter);

	pthread_mutex_lock(&blocks_lock);
	for (const struct stats *st = blocks; st != NULL; st = st->next)
		n += stats_value(st, counter);
	pthread_mutex_unlock(&blocks_lock);
	return n;
}

void
stats_time(struct stats *st, enum stat_timing timing, uint64_t usec)
{
	struct timing *t = &st->timings[timing];
	size_t i = 0;

	while (i < STATS_TIME_BUCKETS && usec > time_bounds[i])
		i++;
	atomic_fetch_add_explicit(&t->usec, usec, memory_order_relaxed);
	atomic_fetch_add_explicit(&t->buckets[i], 1, memory_order_relaxed);
}

uint64_t
stats_time_bound(size_t i)
{
	return i < STATS_TIME_BUCKETS ? time_bounds[i] : UINT64_MAX;
}

void
stats_histogram(const struct stats *st, enum stat_timing timing,
    uint64_t buckets[STATS_TIME_BUCKETS], uint64_t *sum_usec, uint64_t *count)
{
	const struct timing *t = &st->timings[timing];
	uint64_t n = 0;

	for (size_t i = 0; i < STATS_TIME_BUCKETS; i++) {
		n += atomic_load_explicit(&t->buckets[i], memory_order_relaxed);
		buckets[i] = n;
	}
	/* The count is the buckets' total, so that +Inf always equals _count. */
	*count = n + atomic_load_explicit(&t->buckets[STATS_TIME_BUCKETS], memory_order_relaxed);
	*sum_usec = atomic_load_explicit(&t->usec, memory_order_relaxed);
}

struct stats_counter *
stats_counter_new(void)
{
	struct stats_counter *sc;

	if ((sc = calloc(1, sizeof(*sc))) == NULL)
		return NULL;
	atomic_init(&sc->refs, 1);
	atomic_init(&sc->n, 0);
	return sc;
}

struct stats_counter *
stats_counter_ref(struct stats_counter *sc)
{
	atomic_fetch_add_explicit(&sc->refs, 1, memory_order_relaxed);
	return sc;
}

void
stats_counter_unref(struct stats_counter *sc)
{
	if (sc != NULL && atomic_fetch_sub_explicit(&sc->refs, 1, memory_order_acq_rel) == 1)
		free(sc);
}

void
stats_counter_add(struct stats_counter *sc, uint64_t n)
{
	atomic_fetch_add_explicit(&sc->n, n, memory_order_relaxed);
}

uint64_t
stats_counter_value(const struct stats_counter *sc)
{
	return atomic_load_explicit(&((struct stats_counter *)sc)->n, memory_order_relaxed);
}

void
stats_log(void)
{
	char line[1536];
	size_t used = 0;
	int n;

	for (int i = 0; i < STAT_COUNTER_MAX; i++) {
		n = snprintf(line + used, sizeof(line) - used, "%s%s=%llu",
		    i ? " " : "", counter_names[i], (unsigned long long)stats_get(i));
		if (n < 0 || (size_t)n >= sizeof(line) - used)
			break;
		used += (size_t)n;
	}
	log_info("stats: %s", line);
}
