/*
 * stats: event counters, cheap enough for the handshake path (one relaxed
 * atomic add each, no lock).  Each listener has its own block of counters
 * (struct stats), so that metrics can say which listener counted what;
 * events that belong to no listener (ticket rejections, reloads) go to one
 * process-wide block.  Blocks live as long as the daemon.
 */
#ifndef TLSPROXY_STATS_H
#define TLSPROXY_STATS_H

#include <stddef.h>
#include <stdint.h>

enum stat_counter {
	STAT_CONN_ACCEPTED,
	STAT_CONN_REFUSED_LIMIT,	/* max_connections reached */
	STAT_HANDSHAKE_FULL_TLS12,
	STAT_HANDSHAKE_FULL_TLS13,
	/* Resumptions by version and by what the session came from. */
	STAT_RESUMED_TLS12_TICKET_CURRENT,
	STAT_RESUMED_TLS12_TICKET_GRACE,
	STAT_RESUMED_TLS12_TICKET_PREVIOUS_SEED,
	STAT_RESUMED_TLS12_SESSION_ID,
	STAT_RESUMED_TLS13_TICKET_CURRENT,
	STAT_RESUMED_TLS13_TICKET_GRACE,
	STAT_RESUMED_TLS13_TICKET_PREVIOUS_SEED,
	STAT_RESUMED_TLS13_STATEFUL,	/* a ticket naming a node-local cache entry */
	/* Tickets offered but not usable: the client got a full handshake. */
	STAT_TICKET_REJECTED_UNKNOWN,	/* no key of ours has that name */
	STAT_TICKET_REJECTED_EXPIRED,	/* our key, past its grace period */
	STAT_TICKET_REJECTED_MALFORMED,	/* bad MAC, truncated or undecodable */
	/* Tickets and session IDs that session_check() refused (its reasons). */
	STAT_TICKET_REJECTED_POLICY,	/* made under another listener policy */
	STAT_TICKET_REJECTED_CERT_EXPIRED,	/* the client certificate has expired */
	STAT_TICKET_REJECTED_TOO_OLD,	/* full handshake older than max_session_age */
	STAT_TICKET_REJECTED_REVOKED,	/* the client certificate is on a CRL now loaded */
	STAT_HANDSHAKE_FAILED,		/* a TLS error: garbage, no shared cipher, ... */
	STAT_HANDSHAKE_REVOKED,		/* a client certificate revoked by a CRL */
	STAT_HANDSHAKE_TIMEOUT,
	STAT_BACKEND_FAILED,
	STAT_BYTES_CLIENT_TO_BACKEND,
	STAT_BYTES_BACKEND_TO_CLIENT,
	STAT_HANDSHAKE_CLIENT_CLOSED,	/* EOF or reset before the handshake ended */
	STAT_RELOAD_OK,
	STAT_RELOAD_FAILED,
	/* Admission of full handshakes (full_handshake_rate). */
	STAT_FULL_ADMITTED,		/* began the expensive part, at once or after waiting */
	STAT_FULL_DEFERRED,		/* had to wait for a token first */
	STAT_FULL_DROPPED,		/* waited, then closed: handshake_timeout or the client left */
	/* Pacing of backend connects (backend_connect_rate, backend_max_connecting). */
	STAT_BACKEND_DEFERRED,		/* had to wait for its turn first */
	STAT_BACKEND_DROPPED,		/* waited, then closed: connect_timeout or the client left */
	STAT_BACKEND_RETRIED,		/* a failed backend connect to be tried again (connect_retry) */
	STAT_HANDSHAKE_NO_ALPN,		/* completed with no protocol negotiated by ALPN */
	STAT_COUNTER_MAX
};

/* What a histogram times; every one has the same buckets. */
enum stat_timing {
	STAT_TIME_BACKEND_CONNECT,	/* start of a backend connect to the connection */
	STAT_TIME_FULL_WAIT,		/* a deferred full handshake's wait for admission */
	STAT_TIME_BACKEND_WAIT,		/* a deferred backend connect's wait for its turn */
	STAT_TIMING_MAX
};

/* Upper bounds (le) of the histograms' buckets. */
#define STATS_TIME_BUCKETS 12

struct stats;

/**
 * stats_new(): a block of counters at zero, included in stats_log()'s
 * totals until stats_free(); NULL if memory runs out.
 */
struct stats *stats_new(void);

/**
 * stats_new_part(): a block at zero that stats_log()'s totals leave out,
 * for counts that another block has too (a route's, within its
 * listener's); NULL if memory runs out.  Freed with stats_free().
 */
struct stats *stats_new_part(void);

/** stats_free(st): forget the block ${st}; NULL is fine. */
void stats_free(struct stats *st);

/** stats_count(st, counter, n): add ${n} to ${counter} of block ${st}. */
void stats_count(struct stats *st, enum stat_counter counter, uint64_t n);

/** stats_add(counter, n): add ${n} to ${counter} of the process-wide block. */
void stats_add(enum stat_counter counter, uint64_t n);

/** stats_value(st, counter): ${counter} of block ${st}; NULL: of the process-wide block. */
uint64_t stats_value(const struct stats *st, enum stat_counter counter);

/** stats_get(counter): ${counter} summed over every block. */
uint64_t stats_get(enum stat_counter counter);

/** stats_time(st, timing, usec): one ${timing} of ${st} took ${usec} microseconds. */
void stats_time(struct stats *st, enum stat_timing timing, uint64_t usec);

/** stats_time_bound(i): the upper bound of bucket ${i}, in microseconds. */
uint64_t stats_time_bound(size_t i);

/**
 * stats_histogram(st, timing, buckets, sum_usec, count): ${st}'s ${timing}s:
 * ${buckets}[i] took at most stats_time_bound(i) (cumulative, as
 * Prometheus wants them), ${count} in all, taking ${sum_usec} together.
 */
void stats_histogram(const struct stats *st, enum stat_timing timing,
    uint64_t buckets[STATS_TIME_BUCKETS], uint64_t *sum_usec, uint64_t *count);

/*
 * One counter on its own, shared by reference: what a listener counts by a
 * name from its configuration (the handshakes of an ALPN protocol), kept
 * across the reloads that keep the name.
 */
struct stats_counter;

/** stats_counter_new(): a counter at zero, one reference; NULL if memory runs out. */
struct stats_counter *stats_counter_new(void);

/** stats_counter_ref(sc): another reference to ${sc}; returns ${sc}. */
struct stats_counter *stats_counter_ref(struct stats_counter *sc);

/** stats_counter_unref(sc): drop a reference, freeing on the last; NULL is fine. */
void stats_counter_unref(struct stats_counter *sc);

/** stats_counter_add(sc, n): add ${n} to ${sc}. */
void stats_counter_add(struct stats_counter *sc, uint64_t n);

/** stats_counter_value(sc): what ${sc} has counted. */
uint64_t stats_counter_value(const struct stats_counter *sc);

/** stats_log(): write every counter, summed over the blocks, on one log line (SIGUSR1). */
void stats_log(void);

#endif
