/*
 * stats: the counters behind SIGUSR1's log line (and, later, metrics).
 */
#include <stdatomic.h>
#include <stdio.h>

#include "log.h"
#include "stats.h"

static _Atomic uint64_t counters[STAT_COUNTER_MAX];

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
	[STAT_HANDSHAKE_FAILED] = "handshake_failed",
	[STAT_HANDSHAKE_TIMEOUT] = "handshake_timeout",
	[STAT_BACKEND_FAILED] = "backend_failed",
	[STAT_BYTES_CLIENT_TO_BACKEND] = "bytes_in",
	[STAT_BYTES_BACKEND_TO_CLIENT] = "bytes_out",
};

void
stats_add(enum stat_counter counter, uint64_t n)
{
	atomic_fetch_add_explicit(&counters[counter], n, memory_order_relaxed);
}

uint64_t
stats_get(enum stat_counter counter)
{
	return atomic_load_explicit(&counters[counter], memory_order_relaxed);
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
