/*
 * service: the reference-counted runtime form of one listener's settings.
 */
#include <stdlib.h>

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
	atomic_init(&svc->refs, 1);
	return svc;

err2:
	listener_settings_clear(&svc->settings);
err1:
	free(svc);
err0:
	return NULL;
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
	if (svc == NULL)
		return;
	if (atomic_fetch_sub_explicit(&svc->refs, 1, memory_order_acq_rel) != 1)
		return;
	SSL_CTX_free(svc->ctx);
	listener_settings_clear(&svc->settings);
	free(svc);
}
