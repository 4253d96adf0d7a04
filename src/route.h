/*
 * route: which backend a connection goes to, and what each route keeps
 * while it runs.  A listener's routes are tried in order once the
 * handshake is done: the first whose alpn (if set) is the protocol
 * negotiated and whose sni (if set) matches the client's server name
 * wins; a connection no route matches goes to the listener's backend.
 *
 * A route's gate is its runtime part: the pacer of its backend connects
 * (backend_connect_rate, backend_max_connecting, the same FIFO as the
 * listener's) and its counters.  Gates are shared by reference between
 * the services of successive reloads, so that a route that did not
 * change keeps its tokens, its queue and its counts, like the listener's
 * own pacers.  A route is the same across a reload when it stands at the
 * same position in the list with the same backend (route_same()).
 */
#ifndef TLSPROXY_ROUTE_H
#define TLSPROXY_ROUTE_H

#include <stddef.h>

#include "config.h"

struct event_base;
struct pacer;
struct stats;

/**
 * route_match(routes, n, proto, protolen, servername): the index of the
 * first of ${routes}[0..${n}) that matches a connection which negotiated
 * ${proto} (${protolen} bytes; 0: no ALPN) and sent ${servername} (NULL:
 * no SNI); -1 when none does.  A route's sni matches as certificate names
 * do: exactly or "*.rest" for one label, ignoring case.
 */
int route_match(const struct route_settings *routes, size_t n, const unsigned char *proto,
    size_t protolen, const char *servername);

/**
 * route_same(a, b): 1 if route ${b} of a new configuration carries on
 * route ${a} at the same position (the same backend, host and port), so
 * that its gate is kept; else 0.
 */
int route_same(const struct route_settings *a, const struct route_settings *b);

struct route_gate;

/**
 * route_gate_new(base): a gate with a pacer without limits, whose queue is
 * served by a timer on ${base} (the main thread's loop), and counters at
 * zero; one reference.  NULL if memory runs out.
 */
struct route_gate *route_gate_new(struct event_base *base);

/** route_gate_ref(g): another reference to ${g}; returns ${g}. */
struct route_gate *route_gate_ref(struct route_gate *g);

/**
 * route_gate_unref(g): drop a reference, freeing ${g} on the last (no
 * connection waits in its pacer then: each holds a reference through its
 * service); NULL is fine.
 */
void route_gate_unref(struct route_gate *g);

/**
 * route_gate_configure(g, r): pace ${g}'s backend connects by route
 * ${r}'s backend_connect_rate and backend_max_connecting from now on,
 * keeping its tokens and its queue.
 */
void route_gate_configure(struct route_gate *g, const struct route_settings *r);

/** route_gate_pacer(g): the pacer of the route's backend connects. */
struct pacer *route_gate_pacer(const struct route_gate *g);

/**
 * route_gate_stats(g): the route's counters: STAT_CONN_ACCEPTED counts
 * the connections that took the route, the STAT_BACKEND_* counters and
 * the backend timings are its backend's.  The listener's block counts
 * them too: this one is not in stats_log()'s totals.
 */
struct stats *route_gate_stats(const struct route_gate *g);

#endif
