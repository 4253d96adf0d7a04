/*
 * stats: process-wide event counters, shared by every worker thread.
 * Cheap enough for the handshake path (one relaxed atomic add each).
 */
#ifndef TLSPROXY_STATS_H
#define TLSPROXY_STATS_H

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
	STAT_HANDSHAKE_FAILED,
	STAT_HANDSHAKE_TIMEOUT,
	STAT_BACKEND_FAILED,
	STAT_BYTES_CLIENT_TO_BACKEND,
	STAT_BYTES_BACKEND_TO_CLIENT,
	STAT_COUNTER_MAX
};

/** stats_add(counter, n): add ${n} to ${counter}. */
void stats_add(enum stat_counter counter, uint64_t n);

/** stats_get(counter): the current value of ${counter}. */
uint64_t stats_get(enum stat_counter counter);

/** stats_log(): write every counter on one log line (for SIGUSR1). */
void stats_log(void);

#endif
