/*
 * route: the choice of a route by the negotiated protocol and the server
 * name, and route gates: a pacer and a block of counters under one
 * reference count.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cert_store.h"
#include "pacer.h"
#include "route.h"
#include "stats.h"

struct route_gate {
	atomic_int refs;
	struct pacer *pacer;
	struct stats *stats;
};

/* Does route ${r} take a connection with ${proto} and ${servername}? */
static int
matches(const struct route_settings *r, const unsigned char *proto, size_t protolen,
    const char *servername)
{
	if (r->alpn != NULL && (protolen != strlen(r->alpn) ||
	    memcmp(r->alpn, proto, protolen) != 0))
		return 0;
	if (r->sni != NULL && (servername == NULL ||
	    !cert_store_name_matches(r->sni, servername)))
		return 0;
	return 1;
}

int
route_match(const struct route_settings *routes, size_t n, const unsigned char *proto,
    size_t protolen, const char *servername)
{
	for (size_t i = 0; i < n; i++)
		if (matches(&routes[i], proto, protolen, servername))
			return (int)i;
	return -1;
}

int
route_same(const struct route_settings *a, const struct route_settings *b)
{
	/* Host names compare without case, as DNS does. */
	return a->backend.port == b->backend.port &&
	    strcasecmp(a->backend.host, b->backend.host) == 0;
}

struct route_gate *
route_gate_new(struct event_base *base)
{
	struct route_gate *g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		goto err0;
	if ((g->pacer = pacer_new(base)) == NULL)
		goto err1;
	if ((g->stats = stats_new_part()) == NULL)
		goto err2;
	atomic_init(&g->refs, 1);
	return g;

err2:
	pacer_free(g->pacer);
err1:
	free(g);
err0:
	return NULL;
}

struct route_gate *
route_gate_ref(struct route_gate *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	return g;
}

void
route_gate_unref(struct route_gate *g)
{
	if (g == NULL)
		return;
	if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
		return;
	pacer_free(g->pacer);
	stats_free(g->stats);
	free(g);
}

void
route_gate_configure(struct route_gate *g, const struct route_settings *r)
{
	pacer_configure_connects(g->pacer, (uint64_t)r->backend_connect_rate,
	    (uint64_t)r->backend_max_connecting);
}

struct pacer *
route_gate_pacer(const struct route_gate *g)
{
	return g->pacer;
}

struct stats *
route_gate_stats(const struct route_gate *g)
{
	return g->stats;
}
