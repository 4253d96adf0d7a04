/*
 * service: what one listener does with a connection, built from settings:
 * its TLS context and a copy of the listener's validated settings (backend,
 * timeouts, limits, PROXY protocol, routes).  Built in two steps, then
 * immutable: service_new() from the settings, and service_carry_over()
 * for what it shares with the service it replaces (its routes' gates, its
 * ALPN counters).  Reference-counted, so a reload swaps in a new one while
 * connections accepted under the old one keep it until they close.
 */
#ifndef TLSPROXY_SERVICE_H
#define TLSPROXY_SERVICE_H

#include <stdatomic.h>

#include <openssl/ssl.h>

struct event_base;

#include "config.h"
#include "route.h"
#include "stats.h"
#include "ticket_keys.h"

struct service {
	atomic_int refs;
	/* The listener's settings, copied: they outlive a reload's struct settings. */
	struct listener_settings settings;
	SSL_CTX *ctx;			/* holds its own reference to the ticket keys */
	/* The listener's own backend, PROXY protocol and pacing, in a route's
	 * form, for the connections that no route takes. */
	struct route_settings backend;
	int proxy_protocol_any;		/* the listener or a route sends a PROXY header */
	/* From service_carry_over(); NULL in a service that never runs (-t). */
	struct route_gate **gates;	/* one per settings.routes */
	struct stats_counter **alpn_counts;	/* handshakes, one per settings.alpn */
};

/**
 * service_new(s, ls, tk, errs): build the service of listener ${ls} of
 * ${s}, holding one reference; NULL with the reasons in ${errs}.  ${tk}
 * (NULL unless tickets are stateless) is installed in the TLS context,
 * which takes its own reference.
 */
struct service *service_new(const struct settings *s, const struct listener_settings *ls,
    struct ticket_keys *tk, struct config_errors *errs);

/**
 * service_carry_over(svc, prev, base): give ${svc} its routes' gates and
 * its ALPN protocols' counters before it answers: those of ${prev} (NULL:
 * none) where a route is the same (route_same(), at the same position) or
 * a protocol has the same name, shared; new ones for the rest, their
 * pacers on ${base}.  The limits of the gates are set by the listener when
 * ${svc} takes over.  0, or -1 if memory runs out (service_unref() then
 * frees what ${svc} got).
 */
int service_carry_over(struct service *svc, const struct service *prev,
    struct event_base *base);

/**
 * service_alpn_index(svc, proto, len): the position of ${proto} (${len}
 * bytes) in ${svc}'s alpn, -1 if it is not there (or ${len} is 0).
 */
int service_alpn_index(const struct service *svc, const unsigned char *proto, size_t len);

/** service_ref(svc): take another reference; returns ${svc}. */
struct service *service_ref(struct service *svc);

/** service_unref(svc): drop a reference, freeing on the last; NULL is fine. */
void service_unref(struct service *svc);

#endif
