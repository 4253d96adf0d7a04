/*
 * conn: the life of one client connection.
 *
 *   HANDSHAKE  -> SSL_do_handshake until done (handshake_timeout).  A full
 *                 handshake over full_handshake_rate waits its turn in the
 *                 listener's admission queue with its socket unwatched:
 *                 before OpenSSL reads its ClientHello when that cannot
 *                 resume (client_hello.h), or else suspended in the
 *                 certificate callback, before its key exchange and its
 *                 signature, once resumption has failed.  With
 *                 full_handshake_priority = "low", the step that does
 *                 that key exchange and signature then runs on the
 *                 handshake pool's low-priority threads, the socket still
 *                 unwatched, and comes back here when done.
 *   CONNECTING -> the first of the listener's routes that matches the
 *                 protocol negotiated and the server name (route.h) says
 *                 which backend, PROXY header and pacing apply; none:
 *                 the listener's own.  Over backend_connect_rate or
 *                 backend_max_connecting, first a turn in that backend
 *                 queue (connect_timeout); then the backend connect
 *                 (connect_timeout).  A connect that fails is tried again
 *                 after a pause, with a new turn, until connect_timeout
 *                 has passed since the first (connect_retry).  The client
 *                 is not read meanwhile, so its data waits in the kernel.
 *                 Its event stays armed, and is disarmed only if it fires:
 *                 the relay arms it again right after the connect.
 *   RELAYING   -> relay_run() on every readiness (idle_timeout)
 *
 * One timer serves whichever timeout applies to the current state, and
 * also carries a pacer's news that a waiting connection's turn came, and
 * the handshake pool's that a step is done: both come from other threads,
 * and the timer is the one event of a connection that is never
 * re-assigned, so activating it from there is safe.  Every way out goes through conn_free(), which releases everything
 * the connection holds: socket, SSL, backend, events, its place in a
 * queue, its slot in the listener's count and its reference to the
 * service.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include <event2/event_struct.h>

#include "backend.h"
#include "client_hello.h"
#include "conn.h"
#include "crl.h"
#include "handshake_pool.h"
#include "pacer.h"
#include "proxy_tls.h"
#include "log.h"
#include "relay.h"
#include "route.h"
#include "service.h"
#include "sockbio.h"
#include "stats.h"
#include "ticket_keys.h"

enum conn_state {
	CONN_HANDSHAKE,
	CONN_CONNECTING,
	CONN_RELAYING,
};

struct conn {
	struct conn_env *env;
	struct conn *prev, *next;
	struct listener *listener;
	struct service *service;
	enum conn_state state;
	unsigned char client_events, backend_events;	/* EV_READ|EV_WRITE armed now */
	unsigned char retry_wait;	/* connect_retry: the timer ends a pause, not a timeout */
	unsigned char admitted;		/* the full handshake may go on */
	unsigned char hello_peeked;	/* hello_waits() has looked at the ClientHello */
	unsigned char hello_lowat;	/* SO_RCVLOWAT raised until the ClientHello is in */
	unsigned char refused;		/* admit_full_handshake() refused it: logged */
	unsigned char backend_slot;	/* counts in backend_max_connecting until connected */
	unsigned char offload;		/* OFFLOAD_*: the full handshake's step on the pool */
	/* Index in settings.routes (at most 1000 of them, config_routes.c);
	 * -1: the listener's backend.  16 bits fit a hole: no byte more. */
	int16_t route;
	struct pacer *waiting_in;	/* the pacer whose queue holds ${wait}, or NULL */
	struct sockbio_state sock;	/* the client socket, and what its BIO knows */
	SSL *ssl;
	struct backend_connect *connecting;
	struct offloaded_step *offloaded;	/* while the pool has its step */
	union {
		struct pacer_wait wait;	/* while waiting_in a pacer's queue */
		struct relay relay;	/* valid in CONN_RELAYING */
	};
	/* One event per socket, re-armed when what we wait for changes:
	 * brokers hold many idle connections, and each event is 128 bytes. */
	struct event client_ev, backend_ev;
	struct event timer;
	time_t deadline;		/* the timer's, in HANDSHAKE and CONNECTING */
	time_t started;
	time_t last_active;
	uint64_t connect_started;	/* µs, CLOCK_MONOTONIC: the first backend connect's start */
	uint64_t counted_in, counted_out;	/* relay bytes added to the stats so far */
	struct sockaddr_storage *peer_addr;	/* kept only for the PROXY header */
	char peer[ADDR_TEXT_MAX];
};

/*
 * full_handshake_priority = "low": the step of a full handshake that does
 * its key exchange and signature runs on env->handshakes.  WANTED: the
 * certificate callback suspended the handshake for it; RAN: the
 * certificate callback lets the handshake go on, wherever it runs.  While
 * the pool has the step, ${offloaded} holds it and the connection's
 * events are quiet.
 */
enum {
	OFFLOAD_NONE,
	OFFLOAD_WANTED,
	OFFLOAD_RAN,
};

/* What SSL_do_handshake() said on the pool thread, for the worker. */
struct step_outcome {
	int ret, err, closed;
	char reasons[256];	/* on failure: what the error queue said */
};

struct offloaded_step {
	struct handshake_job job;	/* first: the job is the step */
	struct conn *conn;
	struct step_outcome out;
};

/* The most a ClientHello's first record can be: header and 2^14 bytes. */
#define HELLO_PEEK_MAX (5 + 16384)

static void conn_free(struct conn *c);
static void backend_turn(struct conn *c);
static void backend_connect(struct conn *c);
static void handshake_step(struct conn *c);
static void on_client(evutil_socket_t fd, short what, void *arg);
static void on_backend(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);

static time_t
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Count ${counter} for the connection's listener. */
static void
conn_count(struct conn *c, enum stat_counter counter, uint64_t n)
{
	stats_count(listener_stats(c->listener), counter, n);
}

/* The backend, PROXY protocol and pacing of ${c}: its route's or the listener's. */
static const struct route_settings *
conn_route(const struct conn *c)
{
	return c->route >= 0 ? &c->service->settings.routes[c->route] : &c->service->backend;
}

/* " (routes[1] backend 10.0.0.2:8080)" when ${c} took a route, else "". */
static const char *
route_text(const struct conn *c, char *buf, size_t len)
{
	buf[0] = '\0';
	if (c->route >= 0)
		snprintf(buf, len, " (routes[%d] backend %s:%u)", c->route,
		    conn_route(c)->backend.host, conn_route(c)->backend.port);
	return buf;
}

/* The queue of ${c}'s backend connects: its route's or the listener's. */
static struct pacer *
conn_backend_pacer(const struct conn *c)
{
	return c->route >= 0 ? route_gate_pacer(c->service->gates[c->route]) :
	    listener_backend_pacer(c->listener);
}

/* Count ${counter}, of ${c}'s backend, for the listener and the route taken. */
static void
conn_count_backend(struct conn *c, enum stat_counter counter)
{
	conn_count(c, counter, 1);
	if (c->route >= 0)
		stats_count(route_gate_stats(c->service->gates[c->route]), counter, 1);
}

/* Time ${timing}, of ${c}'s backend, for the listener and the route taken. */
static void
conn_time_backend(struct conn *c, enum stat_timing timing, uint64_t usec)
{
	stats_time(listener_stats(c->listener), timing, usec);
	if (c->route >= 0)
		stats_time(route_gate_stats(c->service->gates[c->route]), timing, usec);
}

/* Add the bytes relayed since the last call to the listener's counters. */
static void
conn_count_bytes(struct conn *c)
{
	const struct relay *r = &c->relay;

	if (r->bytes_to_backend != c->counted_in) {
		conn_count(c, STAT_BYTES_CLIENT_TO_BACKEND, r->bytes_to_backend - c->counted_in);
		c->counted_in = r->bytes_to_backend;
	}
	if (r->bytes_to_client != c->counted_out) {
		conn_count(c, STAT_BYTES_BACKEND_TO_CLIENT, r->bytes_to_client - c->counted_out);
		c->counted_out = r->bytes_to_client;
	}
}

/* CLOCK_MONOTONIC in microseconds. */
static uint64_t
now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Arm ${ev} on ${fd} for exactly ${want} (EV_READ|EV_WRITE, or nothing). */
static void
watch_fd(struct conn *c, struct event *ev, int fd, unsigned char want, unsigned char *armed,
    event_callback_fn cb)
{
	if (want == *armed)
		return;
	/* Even when not armed it may be active (RELAY_WANT_AGAIN), and
	 * event_assign() must never touch an active event. */
	if (event_initialized(ev))
		event_del(ev);
	if (want) {
		event_assign(ev, c->env->base, fd, want | EV_PERSIST, cb, c);
		event_add(ev, NULL);
	}
	*armed = want;
}

/* Watch exactly the readiness in ${wants} (RELAY_WANT_* bits). */
static void
conn_watch(struct conn *c, unsigned wants)
{
	unsigned char client = (unsigned char)(((wants & RELAY_WANT_CLIENT_READ) ? EV_READ : 0) |
	    ((wants & RELAY_WANT_CLIENT_WRITE) ? EV_WRITE : 0));
	unsigned char backend = (unsigned char)(((wants & RELAY_WANT_BACKEND_READ) ? EV_READ : 0) |
	    ((wants & RELAY_WANT_BACKEND_WRITE) ? EV_WRITE : 0));

	watch_fd(c, &c->client_ev, c->sock.fd, client, &c->client_events, on_client);
	if (c->state == CONN_RELAYING)
		watch_fd(c, &c->backend_ev, c->relay.backend_fd, backend, &c->backend_events,
		    on_backend);
}

/*
 * Send what the client's BIO held back, then watch ${wants}, and the
 * client's writability too while some of it is still held.  Every callback
 * ends here or in conn_free(), which also sends what is held.
 */
static void
conn_wait(struct conn *c, unsigned wants)
{
	if (sockbio_flush(&c->sock) == 0)
		wants |= RELAY_WANT_CLIENT_WRITE;
	conn_watch(c, wants);
}

static void
conn_set_timer(struct conn *c, int64_t seconds)
{
	struct timeval tv = { .tv_sec = (time_t)seconds, .tv_usec = 0 };

	c->deadline = now_seconds() + (time_t)seconds;
	if (seconds > 0)
		event_add(&c->timer, &tv);
	else
		event_del(&c->timer);
}

/* --- Waiting for a turn (full_handshake_rate, backend pacing) ------------ */

/*
 * A pacer's news, on whichever thread found the turn: see the top of the
 * file.  Not EV_TIMEOUT: event_add() cancels an activation by timeout.
 */
static void
on_turn(struct pacer_wait *w)
{
	struct conn *c = (struct conn *)(void *)((char *)w - offsetof(struct conn, wait));

	event_active(&c->timer, EV_READ, 0);
}

/*
 * Begin now, or queue ${c} in ${p} (PACER_WAIT) until on_turn(), or
 * PACER_FULL when, behind those already waiting, its turn would come
 * after half of ${timeout} (seconds): the other half is the handshake's,
 * or the connect's, and the device's patience.  Closed at once, it
 * retries after its backoff instead of waiting for nothing.
 */
static enum pacer_result
conn_enter(struct conn *c, struct pacer *p, int64_t timeout)
{
	enum pacer_result r;

	c->wait.wake = on_turn;
	r = pacer_enter(p, &c->wait, now_usec(), (uint64_t)timeout * 1000000 / 2);
	if (r == PACER_WAIT)
		c->waiting_in = p;
	return r;
}

/* PACER_FULL: one log line, counted as dropped; the caller frees ${c}. */
static void
log_queue_full(struct conn *c, int handshake)
{
	const struct listener_settings *ls = &c->service->settings;
	char route[64 + ADDR_HOST_MAX];

	if (handshake)
		log_info("%s %s: full handshake refused: it could not begin within half of "
		    "handshake_timeout (%llds) at full_handshake_rate (%lld/s)", ls->name,
		    c->peer, (long long)ls->handshake_timeout, (long long)ls->full_handshake_rate);
	else
		log_warning("%s %s: backend connect refused: it could not begin within half of "
		    "connect_timeout (%llds) at backend_connect_rate (%lld/s)%s", ls->name, c->peer,
		    (long long)ls->connect_timeout, (long long)conn_route(c)->backend_connect_rate,
		    route_text(c, route, sizeof(route)));
	if (handshake)
		conn_count(c, STAT_FULL_DROPPED, 1);
	else
		conn_count_backend(c, STAT_BACKEND_DROPPED);
}

/*
 * A client that reset, or closed, while it waited: its turn is of no use
 * to it.  POLLRDHUP sees a FIN behind a ClientHello not read yet; after
 * the handshake a FIN is a half-close, and the client is gone only if it
 * left nothing to relay, unless ${fin_ends} (see backend_retry_now()).
 */
static int
client_gone(const struct conn *c, int fin_ends)
{
	struct pollfd pfd = { .fd = c->sock.fd, .events = POLLIN | POLLRDHUP };
	int queued = 0;

	if (poll(&pfd, 1, 0) < 0)
		return 0;
	if (pfd.revents & (POLLHUP | POLLERR))
		return 1;
	if (!(pfd.revents & POLLRDHUP))
		return 0;
	if (c->state == CONN_HANDSHAKE || fin_ends)
		return 1;
	return !SSL_has_pending(c->ssl) && ioctl(c->sock.fd, FIONREAD, &queued) == 0 &&
	    queued == 0;
}

/*
 * SSL's certificate callback.  OpenSSL calls it on full handshakes only,
 * once it has tried to resume (a ticket, a session ID, a TLS 1.3 PSK:
 * forged or unknown ones have failed by then), and before the key
 * exchange and the signature: the one point where full_handshake_rate
 * meters exactly what it should.  -1 suspends the handshake
 * (SSL_ERROR_WANT_X509_LOOKUP) until the turn comes.
 */
static int
admit_full_handshake(SSL *ssl, void *arg)
{
	struct conn *c = arg;
	struct pacer *p = listener_admission(c->listener);

	if (!c->admitted) {
		if (c->waiting_in != NULL)
			return -1;
		switch (pacer_limited(p) ? conn_enter(c, p, c->service->settings.handshake_timeout) :
		    PACER_GO) {
		case PACER_WAIT:
			conn_count(c, STAT_FULL_DEFERRED, 1);
			return -1;
		case PACER_FULL:
			log_queue_full(c, 1);
			c->refused = 1;
			return 0;	/* the handshake fails; handshake_step() closes it */
		case PACER_GO:
			break;
		}
		c->admitted = 1;
		conn_count(c, STAT_FULL_ADMITTED, 1);
	}
	/* What comes next is the expensive part: the pool's, if there is one. */
	if (c->offload == OFFLOAD_NONE && c->env->handshakes != NULL) {
		c->offload = OFFLOAD_WANTED;
		return -1;
	}
	return 1;
}

/* The verified client certificate's subject, or "" without one. */
static void
client_subject(SSL *ssl, char *buf, size_t len)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);

	buf[0] = '\0';
	if (cert != NULL)
		ssl_name_text(X509_get_subject_name(cert), buf, len);
}

/* Which counter a handshake adds to; also named in its log line. */
static enum stat_counter
handshake_kind(SSL *ssl, const char **kind)
{
	int tls13 = SSL_version(ssl) == TLS1_3_VERSION;

	if (!SSL_session_reused(ssl)) {
		*kind = "full handshake";
		return tls13 ? STAT_HANDSHAKE_FULL_TLS13 : STAT_HANDSHAKE_FULL_TLS12;
	}
	switch (ticket_match_of(ssl)) {
	case TICKET_MATCH_CURRENT:
		*kind = "resumed (ticket)";
		return tls13 ? STAT_RESUMED_TLS13_TICKET_CURRENT : STAT_RESUMED_TLS12_TICKET_CURRENT;
	case TICKET_MATCH_GRACE:
		*kind = "resumed (ticket, grace key)";
		return tls13 ? STAT_RESUMED_TLS13_TICKET_GRACE : STAT_RESUMED_TLS12_TICKET_GRACE;
	case TICKET_MATCH_PREVIOUS_SEED:
		*kind = "resumed (ticket, previous seed)";
		return tls13 ? STAT_RESUMED_TLS13_TICKET_PREVIOUS_SEED :
		    STAT_RESUMED_TLS12_TICKET_PREVIOUS_SEED;
	default:
		/* No seed-derived key was used: the node-local session cache was. */
		*kind = tls13 ? "resumed (stateful ticket)" : "resumed (session ID)";
		return tls13 ? STAT_RESUMED_TLS13_STATEFUL : STAT_RESUMED_TLS12_SESSION_ID;
	}
}

/* The header goes out first, ahead of anything the client sends. */
static int
queue_proxy_header(struct conn *c)
{
	int n = proxy_tls_header(conn_route(c)->proxy_protocol,
	    conn_route(c)->proxy_protocol_client_cert, c->ssl, c->sock.fd,
	    (struct sockaddr *)c->peer_addr, c->env->scratch, c->env->scratch_len);

	if (n < 0)
		return -1;
	return relay_queue_to_backend(&c->relay, c->env->scratch, (size_t)n);
}

/* A cheap random number for the retry pauses (xorshift32), one per thread. */
static uint32_t
retry_random(void)
{
	static _Thread_local uint32_t state;
	uint32_t x = state;

	/* Workers that start retrying in the same microsecond differ by address. */
	if (x == 0)
		x = ((uint32_t)now_usec() ^ (uint32_t)(uintptr_t)&state) | 1;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return state = x;
}

/*
 * connect_retry: the backend refused (a broker restarting) or could not be
 * reached.  Closed now, the client would go into its own backoff, which
 * grows with each failure and keeps it away long after the broker is back;
 * held, it is connected as soon as the backend answers again.  The pause
 * before the next attempt grows (backend.h), and no attempt begins once
 * connect_timeout has passed since the first.  On the timer, marked by
 * retry_wait.  1: ${c} waits; 0: give up.
 */
static int
backend_retry_later(struct conn *c, const char *why)
{
	uint64_t elapsed = now_usec() - c->connect_started;
	uint64_t budget = (uint64_t)c->service->settings.connect_timeout * 1000000;
	unsigned ms;
	struct timeval tv;

	if (!c->service->settings.connect_retry)
		return 0;
	/* The last attempt comes just before connect_timeout rather than not at all. */
	if (elapsed + BACKEND_RETRY_MIN_MS * 1000 >= budget)
		return 0;
	ms = backend_retry_pause_ms(elapsed / 1000, retry_random());
	if (elapsed + (uint64_t)ms * 1000 >= budget)
		ms = (unsigned)((budget - elapsed) / 1000) - BACKEND_RETRY_MIN_MS / 2;
	log_debug("%s %s: backend %s:%u: %s; trying again in %u ms", c->service->settings.name,
	    c->peer, conn_route(c)->backend.host, conn_route(c)->backend.port, why, ms);
	conn_count_backend(c, STAT_BACKEND_RETRIED);
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	c->retry_wait = 1;
	event_add(&c->timer, &tv);
	return 1;
}

static void
backend_retry_now(struct conn *c)
{
	c->retry_wait = 0;
	/*
	 * A client that closed or reset while held, for as long as a broker
	 * takes to come back, has given up: its request, relayed now, would
	 * reach a broker that it no longer waits for, and an MQTT CONNECT
	 * would take the session over from the client's newer connection.
	 */
	if (client_gone(c, 1)) {
		log_info("%s %s: closed by the client while waiting for its backend connect",
		    c->service->settings.name, c->peer);
		conn_count_backend(c, STAT_BACKEND_DROPPED);
		conn_free(c);
		return;
	}
	backend_turn(c);
}

static void
on_backend_connected(int fd, const char *why, void *arg)
{
	struct conn *c = arg;
	char backend[ADDR_TEXT_MAX + ADDR_HOST_MAX];

	c->connecting = NULL;
	if (c->backend_slot) {
		c->backend_slot = 0;
		pacer_leave(conn_backend_pacer(c));
	}
	if (fd < 0) {
		if (backend_retry_later(c, why))
			return;
		snprintf(backend, sizeof(backend), "%s:%u", conn_route(c)->backend.host,
		    conn_route(c)->backend.port);
		if (c->service->settings.connect_retry)
			log_warning("%s %s: backend %s: %s; tried for %.1f s (connect_timeout %llds), "
			    "closed", c->service->settings.name, c->peer, backend, why,
			    (double)(now_usec() - c->connect_started) / 1e6,
			    (long long)c->service->settings.connect_timeout);
		else
			log_warning("%s %s: backend %s: %s", c->service->settings.name, c->peer,
			    backend, why);
		conn_count_backend(c, STAT_BACKEND_FAILED);
		/* A clean close: the client learns the session is over. */
		SSL_shutdown(c->ssl);
		conn_free(c);
		return;
	}
	conn_time_backend(c, STAT_TIME_BACKEND_CONNECT, now_usec() - c->connect_started);
	c->state = CONN_RELAYING;
	relay_init(&c->relay, c->ssl, fd);
	if (conn_route(c)->proxy_protocol != PROXY_PROTOCOL_OFF && queue_proxy_header(c) != 0) {
		log_warning("%s %s: cannot build the PROXY protocol header",
		    c->service->settings.name, c->peer);
		SSL_shutdown(c->ssl);
		conn_free(c);
		return;
	}
	c->last_active = now_seconds();
	conn_set_timer(c, c->service->settings.idle_timeout);
	/* Run once: the client may have sent data together with its Finished. */
	on_client(c->sock.fd, 0, c);
}

/*
 * A client that reset right after its Finished (a health check, a device
 * that lost its network) and sent nothing to forward: the backend need not
 * accept a connection for nobody.  It shows by a failed write of our last
 * handshake flight or tickets, so it never got them.  Data it sent before
 * it left may sit in OpenSSL's buffer or still in the kernel's: either way
 * it is relayed.
 */
static int
client_left_silently(struct conn *c)
{
	int queued = 0;

	if (!sockbio_peer_gone(&c->sock) || SSL_has_pending(c->ssl))
		return 0;
	return ioctl(c->sock.fd, FIONREAD, &queued) == 0 && queued == 0;
}

/*
 * Count the protocol ALPN chose, pick ${c}'s route by it and the server
 * name, and say both in ${buf}: ", alpn mqtt, routes[1] backend 10.0.0.2:1883",
 * each part only when there is one.
 */
static void
choose_route(struct conn *c, char *buf, size_t len)
{
	const struct listener_settings *ls = &c->service->settings;
	const unsigned char *proto;
	unsigned protolen;
	size_t n;
	int i;

	SSL_get0_alpn_selected(c->ssl, &proto, &protolen);
	if ((i = service_alpn_index(c->service, proto, protolen)) >= 0)
		stats_counter_add(c->service->alpn_counts[i], 1);
	else
		conn_count(c, STAT_HANDSHAKE_NO_ALPN, 1);
	c->route = (int16_t)route_match(ls->routes, ls->nroutes, proto, protolen,
	    SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name));
	if (c->route >= 0)
		stats_count(route_gate_stats(c->service->gates[c->route]), STAT_CONN_ACCEPTED, 1);
	buf[0] = '\0';
	/* The text is for the handshake's log line only: not made for nothing. */
	if (!log_enabled(LOG_LEVEL_INFO))
		return;
	/* The protocol is one of ours: printable ASCII, checked by config. */
	if (i >= 0)
		snprintf(buf, len, ", alpn %s", ls->alpn[i]);
	if (c->route < 0)
		return;
	n = strlen(buf);
	snprintf(buf + n, len - n, ", routes[%d] backend %s:%u", c->route,
	    conn_route(c)->backend.host, conn_route(c)->backend.port);
}

static void
handshake_done(struct conn *c)
{
	char subject[256], route[320 + ADDR_HOST_MAX];	/* a 255-byte protocol too */
	const char *kind;

	conn_count(c, handshake_kind(c->ssl, &kind), 1);
	client_subject(c->ssl, subject, sizeof(subject));
	choose_route(c, route, sizeof(route));
	log_info("%s %s: %s %s %s%s%s%s%s", c->service->settings.name, c->peer,
	    SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl), kind,
	    subject[0] ? ", client \"" : "", subject, subject[0] ? "\"" : "", route);

	c->state = CONN_CONNECTING;
	/*
	 * Send the tickets now, unless the client's first data came with its
	 * Finished: then they leave with the backend's answer, in one packet.
	 * Sending them is also how a client that has already reset shows.
	 */
	if (!SSL_has_pending(c->ssl))
		sockbio_flush(&c->sock);
	if (client_left_silently(c)) {
		log_info("%s %s: closed by the client right after the handshake",
		    c->service->settings.name, c->peer);
		conn_free(c);
		return;
	}
	/* The tickets (TLS 1.3) or the server's Finished (TLS 1.2) need not
	 * wait for the backend.  The client's event stays as it is (above). */
	backend_turn(c);
}

/*
 * Seconds of connect_timeout left to ${c}: all of it before the first
 * attempt, what the retries have left after it, rounded up, at least 1.
 */
static int64_t
connect_time_left(const struct conn *c)
{
	int64_t timeout = c->service->settings.connect_timeout, elapsed;

	if (c->connect_started == 0)
		return timeout;
	elapsed = (int64_t)((now_usec() - c->connect_started) / 1000000);
	return elapsed < timeout ? timeout - elapsed : 1;
}

/* Connect to ${c}'s backend, after a turn in its pacing queue if it has one. */
static void
backend_turn(struct conn *c)
{
	struct pacer *p = conn_backend_pacer(c);
	int64_t left = connect_time_left(c);

	if (pacer_limited(p)) {
		/* The timer first: once queued, the turn may come at any time. */
		conn_set_timer(c, left);
		switch (conn_enter(c, p, left)) {
		case PACER_WAIT:
			conn_count_backend(c, STAT_BACKEND_DEFERRED);
			if (sockbio_flush(&c->sock) == 0)
				conn_watch(c, RELAY_WANT_CLIENT_WRITE);
			return;
		case PACER_FULL:
			/* Held clients retrying fill the queue while the broker is
			 * down: one of them waits another pause rather than closing. */
			if (c->connect_started != 0 &&
			    backend_retry_later(c, "its backend queue is full"))
				return;
			log_queue_full(c, 0);
			SSL_shutdown(c->ssl);
			conn_free(c);
			return;
		case PACER_GO:
			break;
		}
		c->backend_slot = 1;
	}
	backend_connect(c);
}

static void
backend_connect(struct conn *c)
{
	int backend_fd;

	/* A retry has what is left of connect_timeout. */
	conn_set_timer(c, connect_time_left(c));
	if (c->connect_started == 0)
		c->connect_started = now_usec();
	c->connecting = backend_connect_start(c->env->base, c->env->dns,
	    &conn_route(c)->backend, on_backend_connected, c, &backend_fd);
	if (backend_fd >= 0) {
		/* A backend on this host: relay now, and the client's first
		 * answer leaves together with the session tickets. */
		on_backend_connected(backend_fd, NULL, c);
		return;
	}
	if (c->connecting == NULL) {
		log_warning("%s %s: cannot start the backend connect", c->service->settings.name,
		    c->peer);
		conn_count_backend(c, STAT_BACKEND_FAILED);
		conn_free(c);
		return;
	}
	if (sockbio_flush(&c->sock) == 0)
		conn_watch(c, RELAY_WANT_CLIENT_WRITE);
}

/*
 * full_handshake_rate, before OpenSSL reads anything: a ClientHello that
 * cannot resume waits here, holding no OpenSSL buffers.  Returns 1 when
 * ${c} waits (its turn, or its first bytes), 0 when the handshake goes on.
 */
static int
hello_waits(struct conn *c)
{
	struct pacer *p = listener_admission(c->listener);
	enum client_hello_kind kind = CLIENT_HELLO_OTHER;
	ssize_t n;
	int want;

	if (c->hello_peeked || c->admitted || !pacer_limited(p))
		return 0;
	n = recv(c->sock.fd, c->env->scratch, HELLO_PEEK_MAX < c->env->scratch_len ?
	    HELLO_PEEK_MAX : c->env->scratch_len, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		conn_wait(c, RELAY_WANT_CLIENT_READ);
		return 1;
	}
	if (n > 0)
		kind = client_hello_kind(c->env->scratch, (size_t)n,
		    (c->service->settings.protocols & PROTO_TLS13) != 0);
	/* A ClientHello in several segments (post-quantum key shares are
	 * large): sleep until its record is all there, not once a segment. */
	if (kind == CLIENT_HELLO_PARTIAL && !client_gone(c, 0)) {
		want = (int)client_hello_wanted(c->env->scratch, (size_t)n);
		if (setsockopt(c->sock.fd, SOL_SOCKET, SO_RCVLOWAT, &want, sizeof(want)) == 0) {
			c->hello_lowat = 1;
			conn_wait(c, RELAY_WANT_CLIENT_READ);
			return 1;
		}
	}
	/* One answer: anything but a whole ClientHello that cannot resume is
	 * OpenSSL's to read, and its certificate callback meters it. */
	c->hello_peeked = 1;
	want = 1;
	if (c->hello_lowat)
		setsockopt(c->sock.fd, SOL_SOCKET, SO_RCVLOWAT, &want, sizeof(want));
	if (kind != CLIENT_HELLO_NEW)
		return 0;
	switch (conn_enter(c, p, c->service->settings.handshake_timeout)) {
	case PACER_WAIT:
		conn_count(c, STAT_FULL_DEFERRED, 1);
		conn_wait(c, 0);
		return 1;
	case PACER_FULL:
		log_queue_full(c, 1);
		conn_free(c);
		return 1;
	case PACER_GO:
		break;
	}
	c->admitted = 1;
	conn_count(c, STAT_FULL_ADMITTED, 1);
	return 0;
}

/*
 * What SSL_do_handshake() returned (${o}->ret) means, read on the thread
 * that called it: the OpenSSL error queue is per thread.
 */
static void
step_outcome_read(SSL *ssl, struct step_outcome *o)
{
	int saved_errno = errno;

	o->err = o->ret == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, o->ret);
	o->closed = 0;
	o->reasons[0] = '\0';
	if (o->err == SSL_ERROR_NONE || o->err == SSL_ERROR_WANT_READ ||
	    o->err == SSL_ERROR_WANT_WRITE || o->err == SSL_ERROR_WANT_X509_LOOKUP)
		return;
	/* An EOF (unexpected EOFs are ignored) leaves the error queue empty. */
	if (ERR_peek_error() == 0) {
		snprintf(o->reasons, sizeof(o->reasons), "%s",
		    o->err == SSL_ERROR_SYSCALL && saved_errno ? strerror(saved_errno) :
		    "connection closed by the client");
		/* A port check or a client giving up: not a TLS problem. */
		o->closed = o->err != SSL_ERROR_SYSCALL || saved_errno == 0 ||
		    saved_errno == ECONNRESET;
	} else
		ssl_errors_drain(o->reasons, sizeof(o->reasons));
}

static void offload_step(struct conn *c);

/*
 * Why the client's certificate did not verify, "" if it did or there was
 * none: OpenSSL's reasons say only "certificate verify failed".
 */
static const char *
verify_error(SSL *ssl)
{
	long v = SSL_get_verify_result(ssl);

	return v == X509_V_OK ? "" : X509_verify_cert_error_string(v);
}

/* Go on from one step of the handshake, wherever it ran. */
static void
handshake_went(struct conn *c, const struct step_outcome *o)
{
	char revoked[512];
	const char *verify;

	switch (o->err) {
	case SSL_ERROR_NONE:
		handshake_done(c);
		return;
	case SSL_ERROR_WANT_READ:
		conn_wait(c, RELAY_WANT_CLIENT_READ);
		return;
	case SSL_ERROR_WANT_WRITE:
		conn_wait(c, RELAY_WANT_CLIENT_WRITE);
		return;
	case SSL_ERROR_WANT_X509_LOOKUP:	/* admit_full_handshake() */
		if (c->offload == OFFLOAD_WANTED)
			offload_step(c);
		else
			conn_wait(c, 0);	/* a turn in the admission queue */
		return;
	}
	if (c->refused)		/* logged and counted by admit_full_handshake() */
		;
	else if (crl_refusal(c->ssl, revoked, sizeof(revoked))) {
		log_warning("%s %s: handshake refused: client certificate revoked by the CRL: %s",
		    c->service->settings.name, c->peer, revoked);
		conn_count(c, STAT_HANDSHAKE_REVOKED, 1);
	} else {
		verify = verify_error(c->ssl);
		log_info("%s %s: handshake failed: %s%s%s", c->service->settings.name, c->peer,
		    o->reasons, *verify ? ": " : "", verify);
		conn_count(c, o->closed ? STAT_HANDSHAKE_CLIENT_CLOSED : STAT_HANDSHAKE_FAILED, 1);
	}
	conn_free(c);
}

static void
handshake_step(struct conn *c)
{
	struct step_outcome o;

	if (hello_waits(c))
		return;
	ERR_clear_error();
	o.ret = SSL_do_handshake(c->ssl);
	step_outcome_read(c->ssl, &o);
	handshake_went(c, &o);
}

/* --- full_handshake_priority = "low" --------------------------------- */

/* On a pool thread: the step with the key exchange and the signature. */
static void
run_offloaded_step(struct handshake_job *job)
{
	struct offloaded_step *s = (struct offloaded_step *)(void *)job;

	/* A device that gave up while it waited: no signature for nobody. */
	if (client_gone(s->conn, 0)) {
		s->out.ret = 0;
		s->out.err = SSL_ERROR_SYSCALL;
		s->out.closed = 1;
		snprintf(s->out.reasons, sizeof(s->out.reasons),
		    "closed by the client while waiting for a handshake thread");
		return;
	}
	ERR_clear_error();
	s->out.ret = SSL_do_handshake(s->conn->ssl);
	step_outcome_read(s->conn->ssl, &s->out);
	ERR_clear_error();
}

/* Under the pool's lock: the news, to the connection's thread (see the top). */
static void
offloaded_step_done(struct handshake_job *job)
{
	struct offloaded_step *s = (struct offloaded_step *)(void *)job;

	event_active(&s->conn->timer, EV_READ, 0);
}

/*
 * Hand the rest of ${c}'s step to the pool, its socket unwatched: nothing
 * on this thread touches its SSL until the step is DONE.  Run here when
 * that cannot be (no memory, output still held for the client).
 */
static void
offload_step(struct conn *c)
{
	struct offloaded_step *s;

	c->offload = OFFLOAD_RAN;
	if (sockbio_flush(&c->sock) != 1 || (s = calloc(1, sizeof(*s))) == NULL) {
		handshake_step(c);
		return;
	}
	conn_watch(c, 0);
	s->job.run = run_offloaded_step;
	s->job.done = offloaded_step_done;
	s->conn = c;
	c->offloaded = s;
	handshake_pool_submit(c->env->handshakes, &s->job);
}

/*
 * The timer fired while the step was with the pool: its news (or a
 * timeout).  0 when the connection goes on from here, 1 when the timer
 * was a timeout, for on_timer() to handle.
 */
static int
offloaded_step_check(struct conn *c)
{
	struct offloaded_step *s = c->offloaded;
	time_t left;

	switch (handshake_pool_withdraw(c->env->handshakes, &s->job)) {
	case HANDSHAKE_JOB_RUNNING:
		return 0;	/* its done() wakes us again */
	case HANDSHAKE_JOB_DONE:
		break;
	default:		/* still queued at handshake_timeout: withdrawn */
		c->offloaded = NULL;
		free(s);
		return 1;
	}
	c->offloaded = NULL;
	/* A timeout that crossed the news leaves the news pending: drop it. */
	event_del(&c->timer);
	left = c->deadline - now_seconds();
	conn_set_timer(c, left > 0 ? left : 1);
	handshake_went(c, &s->out);
	free(s);
	return 0;
}

/* The relay's closing log line, for ${why} (NULL: both sides finished). */
static void
log_relay_end(struct conn *c, const char *why)
{
	if (why != NULL)
		log_info("%s %s: closed: %s (%llu bytes in, %llu out)",
		    c->service->settings.name, c->peer, why,
		    (unsigned long long)c->relay.bytes_to_backend,
		    (unsigned long long)c->relay.bytes_to_client);
	else
		log_info("%s %s: closed after %llds (%llu bytes in, %llu out)",
		    c->service->settings.name, c->peer, (long long)(now_seconds() - c->started),
		    (unsigned long long)c->relay.bytes_to_backend,
		    (unsigned long long)c->relay.bytes_to_client);
}

static void
relay_step(struct conn *c)
{
	unsigned wants = 0;
	enum relay_status st;
	char why[96];
	int flushed;

	st = relay_run(&c->relay, c->env->scratch, c->env->scratch_len, &wants);
	c->last_active = now_seconds();
	conn_count_bytes(c);
	if (st == RELAY_FAILED) {
		log_relay_end(c, c->relay.error);
		conn_free(c);
		return;
	}
	/* What the relay wrote to the client may still be held (sockbio.h):
	 * a connection is finished only once it has left. */
	flushed = sockbio_flush(&c->sock);
	if (flushed < 0) {
		snprintf(why, sizeof(why), "client write: %s", strerror(errno));
		log_relay_end(c, why);
		conn_free(c);
		return;
	}
	if (flushed == 0)
		wants |= RELAY_WANT_CLIENT_WRITE;
	else if (st == RELAY_FINISHED) {
		log_relay_end(c, NULL);
		conn_free(c);
		return;
	}
	conn_watch(c, wants);
	if (wants & RELAY_WANT_AGAIN)
		event_active(&c->client_ev, EV_READ, 0);
}

static void
on_client(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (what & EV_READ)
		sockbio_readable(&c->sock);
	if (c->state == CONN_HANDSHAKE)
		handshake_step(c);
	else if (c->state == CONN_RELAYING)
		relay_step(c);
	else
		conn_wait(c, 0);	/* CONNECTING: the relay will read it */
}

static void
on_backend(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (what & EV_READ)
		relay_backend_readable(&c->relay);
	relay_step(c);
}

/* The turn ${c} waited for came: go on, unless the client has gone since. */
static void
turn_came(struct conn *c)
{
	struct pacer *p = c->waiting_in;
	int handshake = c->state == CONN_HANDSHAKE;
	time_t left = c->deadline - now_seconds();

	c->waiting_in = NULL;
	if (handshake)
		stats_time(listener_stats(c->listener), STAT_TIME_FULL_WAIT,
		    now_usec() - c->wait.since);
	else
		conn_time_backend(c, STAT_TIME_BACKEND_WAIT, now_usec() - c->wait.since);
	if (client_gone(c, 0)) {
		pacer_return(p);	/* the next in line gets the turn */
		log_info("%s %s: closed by the client while waiting for %s",
		    c->service->settings.name, c->peer, handshake ?
		    "full_handshake_rate" : "its backend connect");
		if (handshake)
			conn_count(c, STAT_FULL_DROPPED, 1);
		else
			conn_count_backend(c, STAT_BACKEND_DROPPED);
		conn_free(c);
		return;
	}
	if (!handshake) {
		c->backend_slot = 1;
		backend_connect(c);
		return;
	}
	c->admitted = 1;
	conn_count(c, STAT_FULL_ADMITTED, 1);
	conn_set_timer(c, left > 0 ? left : 1);
	handshake_step(c);
}

/* ${c} waited its whole timeout for a turn that did not come. */
static void
waited_out(struct conn *c)
{
	const struct listener_settings *ls = &c->service->settings;
	char route[64 + ADDR_HOST_MAX];

	c->waiting_in = NULL;
	if (c->state == CONN_HANDSHAKE) {
		log_info("%s %s: full handshake not begun within handshake_timeout (%llds): "
		    "full_handshake_rate (%lld/s) reached; closed", ls->name, c->peer,
		    (long long)ls->handshake_timeout, (long long)ls->full_handshake_rate);
		conn_count(c, STAT_FULL_DROPPED, 1);
	} else {
		log_warning("%s %s: backend connect not begun within connect_timeout (%llds): "
		    "backend_connect_rate (%lld/s) or backend_max_connecting (%lld) reached; "
		    "closed%s", ls->name, c->peer, (long long)ls->connect_timeout,
		    (long long)conn_route(c)->backend_connect_rate,
		    (long long)conn_route(c)->backend_max_connecting,
		    route_text(c, route, sizeof(route)));
		conn_count_backend(c, STAT_BACKEND_DROPPED);
		SSL_shutdown(c->ssl);
	}
	conn_free(c);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	time_t idle;

	if (c->offloaded != NULL && offloaded_step_check(c) == 0)
		return;
	if (c->retry_wait) {
		backend_retry_now(c);
		return;
	}
	if (c->waiting_in != NULL) {
		if (pacer_cancel(c->waiting_in, &c->wait) == 0)
			turn_came(c);	/* on_turn(), or a turn just in time */
		else
			waited_out(c);
		return;
	}
	/* on_turn() crossing a timeout: the turn was taken, the timer is not due. */
	if (c->state != CONN_RELAYING && now_seconds() < c->deadline) {
		conn_set_timer(c, c->deadline - now_seconds());
		return;
	}
	switch (c->state) {
	case CONN_HANDSHAKE:
		log_info("%s %s: handshake timed out after %llds", c->service->settings.name,
		    c->peer, (long long)c->service->settings.handshake_timeout);
		conn_count(c, STAT_HANDSHAKE_TIMEOUT, 1);
		break;
	case CONN_CONNECTING:
		log_warning("%s %s: backend %s:%u: connect timed out after %llds",
		    c->service->settings.name, c->peer, conn_route(c)->backend.host,
		    conn_route(c)->backend.port, (long long)c->service->settings.connect_timeout);
		conn_count_backend(c, STAT_BACKEND_FAILED);
		SSL_shutdown(c->ssl);
		break;
	case CONN_RELAYING:
		/* The timer is not moved on every read: check how long it really was. */
		idle = now_seconds() - c->last_active;
		if (idle < c->service->settings.idle_timeout) {
			conn_set_timer(c, c->service->settings.idle_timeout - idle);
			return;
		}
		log_info("%s %s: idle for %llds, closing (%llu bytes in, %llu out)",
		    c->service->settings.name, c->peer, (long long)idle,
		    (unsigned long long)c->relay.bytes_to_backend,
		    (unsigned long long)c->relay.bytes_to_client);
		SSL_shutdown(c->ssl);
		break;
	}
	conn_free(c);
}

static void
conn_free(struct conn *c)
{
	struct conn_env *env = c->env;

	/* Out of the queue before the timer goes: a turn found on another
	 * thread activates the timer (on_turn()), never after this. */
	if (c->waiting_in != NULL && pacer_cancel(c->waiting_in, &c->wait) == 0)
		pacer_return(c->waiting_in);	/* a turn it will not use: the next's */
	/* Likewise out of the pool first; at shutdown, a running step is waited for. */
	if (c->offloaded != NULL) {
		handshake_pool_cancel(c->env->handshakes, &c->offloaded->job);
		free(c->offloaded);
	}
	event_del(&c->client_ev);
	event_del(&c->timer);
	if (c->backend_slot)
		pacer_leave(conn_backend_pacer(c));
	if (c->state == CONN_RELAYING) {
		conn_count_bytes(c);
		if (c->backend_events)
			event_del(&c->backend_ev);
		close(c->relay.backend_fd);
		relay_release(&c->relay);
	}
	backend_connect_cancel(c->connecting);
	free(c->peer_addr);
	/* An alert, a close_notify, the last data: one try, then it is gone. */
	sockbio_flush(&c->sock);
	sockbio_release(&c->sock);
	/*
	 * OpenSSL drops a session from the cache when its connection ends
	 * without a close_notify.  A completed handshake is a good session
	 * whatever happened later: devices that vanish mid-connection are
	 * exactly the ones that reconnect and want to resume.
	 */
	if (c->state != CONN_HANDSHAKE)
		SSL_set_shutdown(c->ssl, SSL_get_shutdown(c->ssl) | SSL_SENT_SHUTDOWN);
	SSL_free(c->ssl);
	close(c->sock.fd);
	listener_conn_release(c->listener);
	service_unref(c->service);

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		env->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
	if (--env->count == 0 && env->on_empty != NULL)
		env->on_empty(env->on_empty_arg);
}

/* Refusing at the limit is logged at most once a second per thread. */
static void
refuse_at_limit(struct listener *l, struct service *svc, const char *peer)
{
	static _Thread_local time_t last;
	time_t now = now_seconds();

	stats_count(listener_stats(l), STAT_CONN_REFUSED_LIMIT, 1);
	if (now != last) {
		last = now;
		log_warning("%s %s: refused: max_connections (%lld) reached",
		    svc->settings.name, peer, (long long)svc->settings.max_connections);
	}
}

void
conn_accept(struct conn_env *env, struct listener *l, int fd,
    const struct sockaddr *peer, socklen_t peerlen)
{
	struct service *svc = listener_service(l);
	struct conn *c = NULL;
	char peertext[ADDR_TEXT_MAX];
	BIO *bio;

	addr_format(peer, peertext, sizeof(peertext));
	if (listener_conn_acquire(l, svc->settings.max_connections) != 0) {
		refuse_at_limit(l, svc, peertext);
		goto err1;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL || (c->ssl = SSL_new(svc->ctx)) == NULL ||
	    (bio = sockbio_new(&c->sock, fd)) == NULL) {
		log_ssl_error(LOG_LEVEL_ERROR, "%s %s: cannot set up the connection",
		    svc->settings.name, peertext);
		goto err2;
	}
	SSL_set_bio(c->ssl, bio, bio);	/* the SSL owns the BIO from here */
	SSL_set_cert_cb(c->ssl, admit_full_handshake, c);
	stats_count(listener_stats(l), STAT_CONN_ACCEPTED, 1);
	SSL_set_accept_state(c->ssl);
	c->env = env;
	c->listener = l;
	c->service = svc;
	c->state = CONN_HANDSHAKE;
	c->route = -1;
	c->started = c->last_active = now_seconds();
	memcpy(c->peer, peertext, sizeof(c->peer));
	if (svc->proxy_protocol_any) {
		if ((c->peer_addr = calloc(1, sizeof(*c->peer_addr))) == NULL) {
			log_error("%s %s: out of memory", svc->settings.name, peertext);
			goto err2;
		}
		memcpy(c->peer_addr, peer, peerlen);
	}
	/* Assigned once so that event_active() and event_del() are always valid. */
	event_assign(&c->client_ev, env->base, fd, EV_READ | EV_PERSIST, on_client, c);
	evtimer_assign(&c->timer, env->base, on_timer, c);

	c->next = env->head;
	if (env->head != NULL)
		env->head->prev = c;
	env->head = c;
	env->count++;

	log_debug("%s %s: accepted", svc->settings.name, c->peer);
	conn_set_timer(c, svc->settings.handshake_timeout);
	/* Most ClientHellos have arrived by now; try before waiting. */
	handshake_step(c);
	return;

err2:
	if (c != NULL)
		SSL_free(c->ssl);
	free(c);
	listener_conn_release(l);
err1:
	close(fd);
	service_unref(svc);
}

void
conn_close_all(struct conn_env *env)
{
	while (env->head != NULL) {
		struct conn *c = env->head;

		if (c->state != CONN_HANDSHAKE)
			SSL_shutdown(c->ssl);
		log_info("%s %s: closed by shutdown", c->service->settings.name, c->peer);
		conn_free(c);
	}
}
