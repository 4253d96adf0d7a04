/*
 * listener: one bound listening socket, shared by every worker, and the
 * service that currently answers on it.  The service can be swapped by a
 * reload; the socket, the connection count and the counters (stats) live
 * as long as the daemon.
 */
#ifndef TLSPROXY_LISTENER_H
#define TLSPROXY_LISTENER_H

#include <stddef.h>

#include "config.h"
#include "service.h"

struct event_base;
struct pacer;
struct stats;

struct listener;

/**
 * listener_new(ls, svc, base, why, whylen): bind and listen on
 * ${ls}->listen (non-blocking, close-on-exec) and answer with ${svc},
 * whose reference is taken over.  Its pacers keep their timers on ${base},
 * which must run as long as the listener lives.  NULL with a reason in
 * ${why} on failure.
 */
struct listener *listener_new(const struct listener_settings *ls, struct service *svc,
    struct event_base *base, char *why, size_t whylen);

/**
 * listener_bind_socket(hp, why, whylen): a non-blocking, close-on-exec TCP
 * socket listening on ${hp} (IPv6 only for an IPv6 address); -1 with a
 * reason in ${why}.  Also used for the metrics endpoint.
 */
int listener_bind_socket(const struct hostport *hp, char *why, size_t whylen);

/** listener_free(l): close the socket and drop the service; NULL is fine. */
void listener_free(struct listener *l);

/**
 * listener_close_socket(l): stop listening (new connections are refused by
 * the kernel); only once no worker watches the socket any more.
 */
void listener_close_socket(struct listener *l);

/** listener_fd(l): the listening socket, -1 once closed. */
int listener_fd(const struct listener *l);

/** listener_name(l): the listener's name from the config. */
const char *listener_name(const struct listener *l);

/** listener_address(l): the address it is bound to, for comparisons on reload. */
const struct hostport *listener_address(const struct listener *l);

/** listener_service(l): the current service, with a new reference for the caller. */
struct service *listener_service(struct listener *l);

/**
 * listener_prepare_service(l, svc): make ${svc}, built by a reload, ready
 * to take over from the current service: its routes' gates and its ALPN
 * counters carried over where the same (service_carry_over()).  0, or -1
 * if memory runs out.
 */
int listener_prepare_service(struct listener *l, struct service *svc);

/**
 * listener_set_service(l, svc): answer new connections with ${svc}
 * (prepared, reference taken over), and pace them, and its routes, with
 * its limits.
 */
void listener_set_service(struct listener *l, struct service *svc);

/**
 * listener_conn_acquire(l, max): count one more connection unless ${max}
 * are already open; returns 0, or -1 when at the limit.
 */
int listener_conn_acquire(struct listener *l, int64_t max);

/** listener_conn_release(l): one connection fewer. */
void listener_conn_release(struct listener *l);

/** listener_connections(l): connections open now. */
long listener_connections(const struct listener *l);

/** listener_stats(l): the listener's counters, which live as long as it does. */
struct stats *listener_stats(const struct listener *l);

/** listener_admission(l): the pacer of full handshakes (full_handshake_rate). */
struct pacer *listener_admission(const struct listener *l);

/**
 * listener_backend_pacer(l): the pacer of backend connects
 * (backend_connect_rate, backend_max_connecting).
 */
struct pacer *listener_backend_pacer(const struct listener *l);

/**
 * listener_log_routes(l): log the handshakes by ALPN protocol (where the
 * listener offers some) and each route's counters and queue (SIGUSR1).
 */
void listener_log_routes(struct listener *l);

#endif
