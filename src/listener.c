/*
 * listener: a listening socket shared by all workers.  Each worker watches
 * the same fd and accepts from it; the kernel hands each connection to one
 * of them.  The current service is swapped under a mutex so that a worker
 * always takes a reference to a complete one.
 *
 * The pacers of full handshakes and backend connects belong here, not to
 * the service: a reload changes their limits but keeps their tokens and
 * their queues, or a reload in a reconnect storm would let a burst through.
 * Each route's pacer is in its gate, which the service holds and hands on
 * to its successor (service_carry_over()); its limits are set here too,
 * when the service takes over.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "pacer.h"
#include "stats.h"

#define LISTEN_BACKLOG 4096

struct listener {
	char *name;
	struct hostport address;
	int fd;
	pthread_mutex_t lock;		/* protects service */
	struct service *service;
	atomic_long connections;
	struct stats *stats;		/* this listener's counters */
	struct pacer *admission;	/* full handshakes */
	struct pacer *backend_pacer;	/* backend connects */
	struct event_base *base;	/* where pacers keep their timers */
};

/* The limits of ${svc}'s settings, for handshakes and connects from now on. */
static void
configure_pacers(struct listener *l, const struct service *svc)
{
	const struct listener_settings *ls = &svc->settings;

	pacer_configure(l->admission, (uint64_t)ls->full_handshake_rate,
	    (uint64_t)ls->full_handshake_burst, 0);
	pacer_configure_connects(l->backend_pacer, (uint64_t)ls->backend_connect_rate,
	    (uint64_t)ls->backend_max_connecting);
	for (size_t i = 0; i < ls->nroutes; i++)
		route_gate_configure(svc->gates[i], &ls->routes[i]);
}

int
listener_bind_socket(const struct hostport *hp, char *why, size_t whylen)
{
	int fd, one = 1;

	fd = socket(hp->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		goto err0;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
		snprintf(why, whylen, "SO_REUSEADDR: %s", strerror(errno));
		goto err1;
	}
	/* An IPv6 listener means IPv6 only: say 0.0.0.0 separately for IPv4. */
	if (hp->sa.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) {
		snprintf(why, whylen, "IPV6_V6ONLY: %s", strerror(errno));
		goto err1;
	}
	/* TLS records are whole messages: never hold one back (Nagle).  Set on
	 * the listener because accepted sockets inherit it: no call per accept. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
		snprintf(why, whylen, "TCP_NODELAY: %s", strerror(errno));
		goto err1;
	}
	if (bind(fd, (const struct sockaddr *)&hp->sa, hp->salen) != 0) {
		snprintf(why, whylen, "bind: %s", strerror(errno));
		goto err1;
	}
	if (listen(fd, LISTEN_BACKLOG) != 0) {
		snprintf(why, whylen, "listen: %s", strerror(errno));
		goto err1;
	}
	return fd;

err1:
	close(fd);
err0:
	return -1;
}

struct listener *
listener_new(const struct listener_settings *ls, struct service *svc, struct event_base *base,
    char *why, size_t whylen)
{
	struct listener *l;

	if ((l = calloc(1, sizeof(*l))) == NULL || (l->name = strdup(ls->name)) == NULL ||
	    (l->stats = stats_new()) == NULL || (l->admission = pacer_new(base)) == NULL ||
	    (l->backend_pacer = pacer_new(base)) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto err1;
	}
	l->address = ls->listen;
	l->base = base;
	if (service_carry_over(svc, NULL, base) != 0) {
		snprintf(why, whylen, "out of memory");
		goto err1;
	}
	if ((l->fd = listener_bind_socket(&ls->listen, why, whylen)) < 0)
		goto err1;
	pthread_mutex_init(&l->lock, NULL);
	atomic_init(&l->connections, 0);
	l->service = svc;
	configure_pacers(l, svc);
	return l;

err1:
	if (l != NULL) {
		pacer_free(l->admission);
		pacer_free(l->backend_pacer);
		stats_free(l->stats);
		free(l->name);
	}
	free(l);
	service_unref(svc);
	return NULL;
}

void
listener_close_socket(struct listener *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

void
listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	listener_close_socket(l);
	service_unref(l->service);
	pthread_mutex_destroy(&l->lock);
	pacer_free(l->admission);
	pacer_free(l->backend_pacer);
	stats_free(l->stats);
	free(l->name);
	free(l);
}

int
listener_fd(const struct listener *l)
{
	return l->fd;
}

const char *
listener_name(const struct listener *l)
{
	return l->name;
}

const struct hostport *
listener_address(const struct listener *l)
{
	return &l->address;
}

struct service *
listener_service(struct listener *l)
{
	struct service *svc;

	pthread_mutex_lock(&l->lock);
	svc = service_ref(l->service);
	pthread_mutex_unlock(&l->lock);
	return svc;
}

int
listener_prepare_service(struct listener *l, struct service *svc)
{
	/* Only the main thread changes l->service: no lock to read it here. */
	return service_carry_over(svc, l->service, l->base);
}

void
listener_set_service(struct listener *l, struct service *svc)
{
	struct service *old;

	configure_pacers(l, svc);
	pthread_mutex_lock(&l->lock);
	old = l->service;
	l->service = svc;
	pthread_mutex_unlock(&l->lock);
	service_unref(old);
}

int
listener_conn_acquire(struct listener *l, int64_t max)
{
	long n = atomic_fetch_add_explicit(&l->connections, 1, memory_order_relaxed);

	if (n >= max) {
		atomic_fetch_sub_explicit(&l->connections, 1, memory_order_relaxed);
		return -1;
	}
	return 0;
}

void
listener_conn_release(struct listener *l)
{
	atomic_fetch_sub_explicit(&l->connections, 1, memory_order_relaxed);
}

long
listener_connections(const struct listener *l)
{
	return atomic_load_explicit(&((struct listener *)l)->connections, memory_order_relaxed);
}

struct stats *
listener_stats(const struct listener *l)
{
	return l->stats;
}

struct pacer *
listener_admission(const struct listener *l)
{
	return l->admission;
}

struct pacer *
listener_backend_pacer(const struct listener *l)
{
	return l->backend_pacer;
}

void
listener_log_routes(struct listener *l)
{
	struct service *svc = listener_service(l);
	const struct listener_settings *ls = &svc->settings;
	char line[1024];
	size_t used = 0;
	int n;

	for (size_t i = 0; i < ls->nalpn && used < sizeof(line); i++) {
		n = snprintf(line + used, sizeof(line) - used, " %s=%llu", ls->alpn[i],
		    (unsigned long long)stats_counter_value(svc->alpn_counts[i]));
		used += n > 0 ? (size_t)n : 0;
	}
	if (ls->nalpn > 0)
		log_info("listener %s: alpn%s none=%llu", l->name, line,
		    (unsigned long long)stats_value(l->stats, STAT_HANDSHAKE_NO_ALPN));
	for (size_t i = 0; i < ls->nroutes; i++) {
		const struct stats *st = route_gate_stats(svc->gates[i]);

		log_info("listener %s: routes[%zu] %s:%u: connections=%llu backend_failed=%llu "
		    "backend_retried=%llu backend_deferred=%llu backend_dropped=%llu waiting=%llu",
		    l->name, i, ls->routes[i].backend.host, ls->routes[i].backend.port,
		    (unsigned long long)stats_value(st, STAT_CONN_ACCEPTED),
		    (unsigned long long)stats_value(st, STAT_BACKEND_FAILED),
		    (unsigned long long)stats_value(st, STAT_BACKEND_RETRIED),
		    (unsigned long long)stats_value(st, STAT_BACKEND_DEFERRED),
		    (unsigned long long)stats_value(st, STAT_BACKEND_DROPPED),
		    (unsigned long long)pacer_queued(route_gate_pacer(svc->gates[i])));
	}
	service_unref(svc);
}
