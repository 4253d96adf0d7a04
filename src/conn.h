/*
 * conn: one client connection from accept() to close: the TLS handshake,
 * the backend connect, the relay, the timeouts and the log lines.
 *
 * Connections live on one worker thread and never leave it.  The worker
 * hands each accepted socket to conn_accept() together with its conn_env,
 * the per-thread things every connection of that thread shares.
 */
#ifndef TLSPROXY_CONN_H
#define TLSPROXY_CONN_H

#include <stddef.h>
#include <sys/socket.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "listener.h"

struct conn;
struct handshake_pool;

struct conn_env {
	struct event_base *base;
	struct evdns_base *dns;
	unsigned char *scratch;		/* relay buffer shared by the thread's connections */
	size_t scratch_len;
	struct conn *head;		/* every open connection of the thread */
	size_t count;
	void (*on_empty)(void *arg);	/* called when count drops to 0 */
	void *on_empty_arg;
	/* full_handshake_priority = "low": where full handshakes' expensive
	 * step runs; NULL: on this thread. */
	struct handshake_pool *handshakes;
};

/**
 * conn_accept(env, l, fd, peer, peerlen): take over the accepted socket
 * ${fd} of listener ${l}: count it against the listener's limit (closing
 * it at once, with a log line, when full) and start the handshake.
 */
void conn_accept(struct conn_env *env, struct listener *l, int fd,
    const struct sockaddr *peer, socklen_t peerlen);

/** conn_close_all(env): end every connection of ${env} now (shutdown_timeout). */
void conn_close_all(struct conn_env *env);

#endif
