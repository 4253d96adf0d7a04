/*
 * fdlimit: the descriptor limit the daemon holds its connections under.
 * Every connection takes two descriptors (client and backend), so the
 * limit, not memory, is what usually caps a node first.
 */
#ifndef TLSPROXY_FDLIMIT_H
#define TLSPROXY_FDLIMIT_H

#include <stdint.h>

#include "config.h"

/* Descriptors kept aside from the connections: standard streams, metrics
 * and the main loop (FDLIMIT_BASE); each worker's event loop, wake-up
 * pipes and EMFILE spare (FDLIMIT_PER_WORKER); one per listener.  A daemon
 * with two workers and one listener holds 27 after start-up. */
#define FDLIMIT_BASE		16
#define FDLIMIT_PER_WORKER	8

/**
 * fdlimit_room(limit, workers, nlisteners): how many connections ${limit}
 * descriptors hold, two each, after what ${workers} workers and
 * ${nlisteners} listeners keep.
 */
uint64_t fdlimit_room(uint64_t limit, uint64_t workers, size_t nlisteners);

/**
 * fdlimit_raise(s): raise the soft RLIMIT_NOFILE to the hard one (no
 * privilege needed), log the limit and how many connections it holds, and
 * warn when that is fewer than ${s}'s listeners' max_connections added up.
 * 0, or -1 (logged) when the limit could not be read or raised; the daemon
 * can still run under the limit it has.
 */
int fdlimit_raise(const struct settings *s);

#endif
