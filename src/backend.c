/*
 * backend: resolution (for host names) and a non-blocking connect(), tried
 * on each resolved address in turn until one answers; and the pause before
 * a connect that failed is tried again (the connection decides whether).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/util.h>

#include "backend.h"

struct backend_connect {
	struct event_base *base;
	backend_connected_fn *cb;
	void *arg;
	struct evdns_getaddrinfo_request *dns_req;
	struct evutil_addrinfo *addrs;	/* from evdns, NULL for numeric */
	struct evutil_addrinfo *next;	/* next address to try */
	int fd;
	int dns_result;			/* evdns's answer, once it came */
	int failed_at_start;		/* report bc->why from the loop */
	struct event *connect_ev;	/* connect completion */
	struct event *defer_ev;		/* runs the next step from the loop */
	char why[128];
};

static void try_next(struct backend_connect *bc);

static void
bc_free(struct backend_connect *bc)
{
	if (bc->fd >= 0)
		close(bc->fd);
	if (bc->connect_ev != NULL)
		event_free(bc->connect_ev);
	if (bc->defer_ev != NULL)
		event_free(bc->defer_ev);
	if (bc->addrs != NULL)
		evutil_freeaddrinfo(bc->addrs);
	free(bc);
}

static void
finish(struct backend_connect *bc, int fd, const char *why)
{
	backend_connected_fn *cb = bc->cb;
	void *arg = bc->arg;
	char reason[sizeof(bc->why)];

	/* ${why} may point into ${bc}, which is gone before the callback runs. */
	snprintf(reason, sizeof(reason), "%s", why != NULL ? why : "");
	bc_free(bc);
	cb(fd, fd < 0 ? reason : NULL, arg);
}

static void
on_connect(evutil_socket_t fd, short what, void *arg)
{
	struct backend_connect *bc = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err == 0) {
		bc->fd = -1;
		finish(bc, fd, NULL);
		return;
	}
	snprintf(bc->why, sizeof(bc->why), "%s", strerror(err));
	close(fd);
	bc->fd = -1;
	try_next(bc);
}

/*
 * A non-blocking connect() to this host (loopback, a container bridge)
 * still says EINPROGRESS, but the handshake has completed by the time it
 * returns.  One getsockopt() then saves registering for writability,
 * waiting for it, and asking for SO_ERROR.  Elsewhere it costs one call
 * against a network round trip.
 */
static int
connected_already(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
	    ti.tcpi_state == TCP_ESTABLISHED;
}

/*
 * Start a connect to one address: 1 if it connected at once (the socket is
 * in bc->fd), 0 if under way, -1 with bc->why set.
 */
static int
connect_to(struct backend_connect *bc, const struct sockaddr *sa, socklen_t salen)
{
	int fd, one = 1;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(bc->why, sizeof(bc->why), "socket: %s", strerror(errno));
		return -1;
	}
	/* MQTT traffic is small messages: never hold them back. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, sa, salen) != 0 && errno != EINPROGRESS) {
		snprintf(bc->why, sizeof(bc->why), "%s", strerror(errno));
		close(fd);
		return -1;
	}
	if (connected_already(fd)) {
		bc->fd = fd;
		return 1;
	}
	if (bc->connect_ev != NULL)
		event_free(bc->connect_ev);
	bc->connect_ev = event_new(bc->base, fd, EV_WRITE, on_connect, bc);
	if (bc->connect_ev == NULL || event_add(bc->connect_ev, NULL) != 0) {
		snprintf(bc->why, sizeof(bc->why), "cannot watch the socket");
		close(fd);
		return -1;
	}
	bc->fd = fd;
	return 0;
}

static void
try_next(struct backend_connect *bc)
{
	int fd;

	while (bc->next != NULL) {
		struct evutil_addrinfo *ai = bc->next;

		bc->next = ai->ai_next;
		switch (connect_to(bc, ai->ai_addr, (socklen_t)ai->ai_addrlen)) {
		case 1:
			fd = bc->fd;
			bc->fd = -1;
			finish(bc, fd, NULL);
			return;
		case 0:
			return;
		}
	}
	finish(bc, -1, bc->why[0] ? bc->why : "no address");
}

/*
 * evdns may answer from inside evdns_getaddrinfo() (cached or local names),
 * so the answer is only recorded here and acted on from the loop.
 */
static void
on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct backend_connect *bc = arg;

	bc->dns_req = NULL;
	if (bc->cb == NULL) {		/* cancelled */
		if (res != NULL)
			evutil_freeaddrinfo(res);
		bc_free(bc);
		return;
	}
	bc->dns_result = result;
	bc->addrs = bc->next = res;
	event_active(bc->defer_ev, 0, 0);
}

static void
on_deferred(evutil_socket_t fd, short what, void *arg)
{
	struct backend_connect *bc = arg;

	if (bc->failed_at_start) {
		finish(bc, -1, bc->why);
		return;
	}
	if (bc->dns_result != 0) {
		snprintf(bc->why, sizeof(bc->why), "cannot resolve: %s",
		    evutil_gai_strerror(bc->dns_result));
		finish(bc, -1, bc->why);
		return;
	}
	try_next(bc);
}

struct backend_connect *
backend_connect_start(struct event_base *base, struct evdns_base *dns,
    const struct hostport *hp, backend_connected_fn *cb, void *arg, int *connected_fd)
{
	struct backend_connect *bc;
	struct evutil_addrinfo hints;
	char port[8];

	*connected_fd = -1;
	if ((bc = calloc(1, sizeof(*bc))) == NULL)
		return NULL;
	bc->base = base;
	bc->cb = cb;
	bc->arg = arg;
	bc->fd = -1;
	if ((bc->defer_ev = event_new(base, -1, 0, on_deferred, bc)) == NULL)
		goto fail;
	if (hp->numeric) {
		switch (connect_to(bc, (const struct sockaddr *)&hp->sa, hp->salen)) {
		case 1:
			*connected_fd = bc->fd;
			bc->fd = -1;
			bc_free(bc);
			return NULL;
		case -1:
			bc->failed_at_start = 1;
			event_active(bc->defer_ev, 0, 0);
			break;
		}
		return bc;
	}
	if (dns == NULL)
		goto fail;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	snprintf(port, sizeof(port), "%u", hp->port);
	bc->dns_req = evdns_getaddrinfo(dns, hp->host, port, &hints, on_resolved, bc);
	return bc;

fail:
	bc_free(bc);
	return NULL;
}

void
backend_connect_cancel(struct backend_connect *bc)
{
	if (bc == NULL)
		return;
	if (bc->dns_req != NULL) {
		/* evdns calls on_resolved with EVUTIL_EAI_CANCEL: make it a no-op. */
		bc->cb = NULL;
		evdns_getaddrinfo_cancel(bc->dns_req);
		return;
	}
	bc_free(bc);
}

/*
 * A broker that restarts refuses for as long as it is down, and every
 * connection held meanwhile tries it again.  Pauses that double keep a
 * long outage from costing more than one attempt per connection a second,
 * and a short one from keeping anybody much longer than it lasted.  Half
 * of each pause is random: connections that failed at the same moment do
 * not all come back in the same one.
 */
unsigned
backend_retry_pause_ms(uint64_t elapsed_ms, uint32_t random)
{
	uint64_t pause = elapsed_ms;

	if (pause < BACKEND_RETRY_MIN_MS)
		pause = BACKEND_RETRY_MIN_MS;
	if (pause > BACKEND_RETRY_MAX_MS)
		pause = BACKEND_RETRY_MAX_MS;
	return (unsigned)(pause - pause / 2 + random % (pause / 2 + 1));
}
