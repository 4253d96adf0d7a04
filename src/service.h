/*
 * service: what one listener does with a connection, built from settings:
 * its TLS context and a copy of the listener's validated settings (backend,
 * timeouts, limits, PROXY protocol).  Immutable once built and
 * reference-counted, so a reload swaps in a new one while connections
 * accepted under the old one keep it until they close.
 */
#ifndef TLSPROXY_SERVICE_H
#define TLSPROXY_SERVICE_H

#include <stdatomic.h>

#include <openssl/ssl.h>

#include "config.h"
#include "ticket_keys.h"

struct service {
	atomic_int refs;
	/* The listener's settings, copied: they outlive a reload's struct settings. */
	struct listener_settings settings;
	SSL_CTX *ctx;			/* holds its own reference to the ticket keys */
};

/**
 * service_new(s, ls, tk, errs): build the service of listener ${ls} of
 * ${s}, holding one reference; NULL with the reasons in ${errs}.  ${tk}
 * (NULL unless tickets are stateless) is installed in the TLS context,
 * which takes its own reference.
 */
struct service *service_new(const struct settings *s, const struct listener_settings *ls,
    struct ticket_keys *tk, struct config_errors *errs);

/** service_ref(svc): take another reference; returns ${svc}. */
struct service *service_ref(struct service *svc);

/** service_unref(svc): drop a reference, freeing on the last; NULL is fine. */
void service_unref(struct service *svc);

#endif
