/*
 * metrics: the Prometheus endpoint.  GET /metrics answers with every
 * counter in the text exposition format (version 0.0.4), from a thread and
 * event base of its own, so that however busy the workers are with
 * handshakes, a scrape is answered.  The thread only reads: the counters
 * (relaxed atomics), the listeners' connection counts and services, and a
 * small state that the main thread sets under a lock.
 */
#ifndef TLSPROXY_METRICS_H
#define TLSPROXY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "listener.h"

struct metrics;

/**
 * metrics_new(addr, listeners, n, why, whylen): bind and listen on ${addr}
 * (numeric), to serve the counters of the ${n} ${listeners}, which must
 * outlive the result.  Nothing is served before metrics_start().  NULL
 * with a reason in ${why} on failure.
 */
struct metrics *metrics_new(const struct hostport *addr, struct listener **listeners,
    size_t n, char *why, size_t whylen);

/**
 * metrics_start(m): serve from a new thread, which takes no signals;
 * 0, or -1 (logged).
 */
int metrics_start(struct metrics *m);

/**
 * metrics_set_tickets(m, fingerprint, previous, period): the ticket keys
 * in force: the seed's ${fingerprint} and the ${previous} seed's ("" for
 * none), rotating every ${period} seconds; ${fingerprint} NULL when tickets
 * are not stateless.  Copied.  Nothing happens when ${m} is NULL.
 */
void metrics_set_tickets(struct metrics *m, const char *fingerprint, const char *previous,
    uint64_t period);

/**
 * metrics_set_reload(m, ok): a reload has just succeeded (${ok}) or been
 * refused.  Nothing happens when ${m} is NULL.
 */
void metrics_set_reload(struct metrics *m, int ok);

/** metrics_free(m): stop the thread, close the socket, free; NULL is fine. */
void metrics_free(struct metrics *m);

#endif
