/*
 * service: the reference-counted runtime form of one listener's settings,
 * with what it carries over from the service it replaces.
 */
#include <stdlib.h>
#include <string.h>

#include "service.h"
#include "tls_ctx.h"

struct service *
service_new(const struct settings *s, const struct listener_settings *ls,
    struct ticket_keys *tk, struct config_errors *errs)
{
	struct service *svc;

	if ((svc = calloc(1, sizeof(*svc))) == NULL)
		goto err0;
	if (listener_settings_copy(&svc->settings, ls) != 0)
		goto err1;
	/* From ${ls}, not the copy: its errors name the file and line. */
	if ((svc->ctx = tls_ctx_new(s, ls, tk, errs)) == NULL)
		goto err2;
	svc->backend = (struct route_settings){
		.backend = ls->backend,
		.proxy_protocol = ls->proxy_protocol,
		.proxy_protocol_client_cert = ls->proxy_protocol_client_cert,
		.backend_connect_rate = ls->backend_connect_rate,
		.backend_max_connecting = ls->backend_max_connecting,
	};
	svc->proxy_protocol_any = ls->proxy_protocol != PROXY_PROTOCOL_OFF;
	for (size_t i = 0; i < ls->nroutes; i++)
		if (ls->routes[i].proxy_protocol != PROXY_PROTOCOL_OFF)
			svc->proxy_protocol_any = 1;
	atomic_init(&svc->refs, 1);
	return svc;

err2:
	listener_settings_clear(&svc->settings);
err1:
	free(svc);
err0:
	return NULL;
}

/* ${prev}'s gate for route ${i} of ${svc} if it is the same route, else a new one. */
static struct route_gate *
carried_gate(const struct service *svc, size_t i, const struct service *prev,
    struct event_base *base)
{
	if (prev != NULL && prev->gates != NULL && i < prev->settings.nroutes &&
	    route_same(&prev->settings.routes[i], &svc->settings.routes[i]))
		return route_gate_ref(prev->gates[i]);
	return route_gate_new(base);
}

/* ${prev}'s counter of protocol ${i} of ${svc} if it has the protocol, else a new one. */
static struct stats_counter *
carried_count(const struct service *svc, size_t i, const struct service *prev)
{
	const char *name = svc->settings.alpn[i];
	int j;

	if (prev != NULL && prev->alpn_counts != NULL &&
	    (j = service_alpn_index(prev, (const unsigned char *)name, strlen(name))) >= 0)
		return stats_counter_ref(prev->alpn_counts[j]);
	return stats_counter_new();
}

int
service_carry_over(struct service *svc, const struct service *prev, struct event_base *base)
{
	const struct listener_settings *ls = &svc->settings;
	size_t i;

	/* calloc(0) may be NULL: one more slot keeps NULL for "out of memory". */
	if ((svc->gates = calloc(ls->nroutes + 1, sizeof(*svc->gates))) == NULL ||
	    (svc->alpn_counts = calloc(ls->nalpn + 1, sizeof(*svc->alpn_counts))) == NULL)
		return -1;
	for (i = 0; i < ls->nroutes; i++)
		if ((svc->gates[i] = carried_gate(svc, i, prev, base)) == NULL)
			return -1;
	for (i = 0; i < ls->nalpn; i++)
		if ((svc->alpn_counts[i] = carried_count(svc, i, prev)) == NULL)
			return -1;
	return 0;
}

int
service_alpn_index(const struct service *svc, const unsigned char *proto, size_t len)
{
	const struct listener_settings *ls = &svc->settings;

	for (size_t i = 0; len > 0 && i < ls->nalpn; i++)
		if (strlen(ls->alpn[i]) == len && memcmp(ls->alpn[i], proto, len) == 0)
			return (int)i;
	return -1;
}

struct service *
service_ref(struct service *svc)
{
	atomic_fetch_add_explicit(&svc->refs, 1, memory_order_relaxed);
	return svc;
}

void
service_unref(struct service *svc)
{
	size_t i;

	if (svc == NULL)
		return;
	if (atomic_fetch_sub_explicit(&svc->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (i = 0; svc->gates != NULL && i < svc->settings.nroutes; i++)
		route_gate_unref(svc->gates[i]);
	for (i = 0; svc->alpn_counts != NULL && i < svc->settings.nalpn; i++)
		stats_counter_unref(svc->alpn_counts[i]);
	free(svc->gates);
	free(svc->alpn_counts);
	SSL_CTX_free(svc->ctx);
	listener_settings_clear(&svc->settings);
	free(svc);
}
