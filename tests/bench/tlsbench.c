/*
 * tlsbench: a TLS load generator for benchmarking TLS terminators.
 *
 * Each thread runs an epoll loop over its share of --concurrency
 * connection slots.  A slot connects, handshakes, does what the mode asks
 * and starts over, until --duration is up; then no slot starts again and
 * the run ends when the last one finishes (at most GRACE_S later), so
 * that every handshake the server did is a counted one.
 *
 *   full              full handshakes (--tls 1.2 or 1.3), then --close rst|clean
 *   resume12-ticket   TLS 1.2 resumption with a session ticket
 *   resume12-id       TLS 1.2 resumption by session ID (tickets refused)
 *   resume13          TLS 1.3 resumption with a ticket (psk_dhe_ke)
 *   mqtt              handshake, one --payload byte echo round trip, clean
 *                     close; TLS 1.3, full or, with --resume, resumed
 *   bulk              one TLS 1.3 connection moving data both ways at once
 *                     through a sink/source backend ("DPLX" first, see benchd)
 *   echo              --payload byte round trips on --concurrency
 *                     connections; p50/p99 latency
 *   idle              open --connections TLS 1.3 connections (handshake and
 *                     one echo each), print "ready", hold them --hold seconds;
 *                     with --marks, stop at each mark and at "ready" and go on
 *                     when a line comes on stdin (see below)
 *
 * A resumption mode first gets a session with one full handshake per
 * thread (not counted); a handshake that does not resume is counted as an
 * error (not_resumed).  TLS 1.3 tickets arrive after the handshake: the
 * newest one a thread has read is the one it offers next.
 *
 * Output: one line of key=value figures on stdout ("tlsbench mode=..."),
 * and for idle a "ready open=N" line when the connections are all open.
 *
 * Idle with --marks N1,N2,...: at each mark the connections stop opening,
 * "mark open=N seconds=S" says how many are open and how long this stretch
 * took to open, and the next stretch starts when a line comes on stdin.
 * After "ready" a line on stdin (or its end) closes them all, instead of
 * --hold, and "closed seconds=S" says how long the client took.  That is
 * how a script measures the server between the stretches (scale.py).
 * --port and --source take lists: connection k goes to port k mod P from
 * source address (k / P) mod S, so that more connections fit than one
 * address pair's ephemeral ports (about 28,000).
 * Exit status 0 when the run had no error, 1 when it had some, 64 on a
 * usage error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "benchtls.h"

#define GRACE_S		5.0	/* how long in-flight connections may finish */
#define SCRATCH_LEN	(64 * 1024)
#define BULK_CHUNK	(16 * 1024)
#define MAX_EVENTS	256
#define MAX_ADDRS	64	/* ports, sources and marks in a list */

enum mode {
	MODE_FULL, MODE_RESUME12_TICKET, MODE_RESUME12_ID, MODE_RESUME13,
	MODE_MQTT, MODE_BULK, MODE_ECHO, MODE_IDLE,
};

static const char *const mode_names[] = {
	"full", "resume12-ticket", "resume12-id", "resume13",
	"mqtt", "bulk", "echo", "idle",
};

enum err_kind { ERR_CONNECT, ERR_HANDSHAKE, ERR_NOT_RESUMED, ERR_IO, ERR_TIMEOUT, ERR_N };

static const char *const err_names[] = {
	"connect", "handshake", "not_resumed", "io", "timeout",
};

struct opts {
	enum mode mode;
	int tls;			/* 12 or 13 */
	int close_rst;
	int resume;			/* mqtt: resumed TLS 1.3 */
	int concurrency;
	int threads;
	double duration;
	double hold;
	double timeout;
	int connections;
	int payload;
	const char *host;
	int ports[MAX_ADDRS];
	int nports;
	struct in_addr sources[MAX_ADDRS];
	int nsources;
	int marks[MAX_ADDRS];
	int nmarks;
	const char *ca;
	int insecure;
	const char *sni;
	const char *ciphers;
	const char *ciphersuites;
};

enum phase {
	PH_FREE,		/* not in use */
	PH_CONNECT,		/* TCP connect under way */
	PH_HANDSHAKE,
	PH_WRITE,		/* sending the payload */
	PH_READ,		/* waiting for its echo */
	PH_SHUTDOWN,		/* sending close_notify */
	PH_DRAIN,		/* waiting for the server's close_notify or EOF */
	PH_HOLD,		/* idle mode: open and quiet */
};

struct thread;

struct slot {
	struct thread *th;
	enum phase ph;
	int fd;
	SSL *ssl;
	uint32_t watching;	/* epoll events registered, 0 when none */
	int registered;
	uint64_t started_ns;	/* connection start, for the timeout */
	uint64_t rt_start_ns;	/* echo round trip start */
	size_t off;		/* bytes written or read in this phase */
};

struct counts {
	uint64_t handshakes, full, resumed, completed, roundtrips, opened;
	uint64_t errors[ERR_N];
	uint64_t up_bytes, down_bytes;
};

struct thread {
	int id;
	pthread_t tid;
	const struct opts *o;
	SSL_CTX *ctx;
	SSL_SESSION *session;	/* the newest session the server gave */
	int ep;
	struct slot *slots;
	int nslots;
	int active;		/* connections in flight (not held) */
	int inflight_max;	/* its share of --concurrency */
	int cursor;		/* where to look for a free slot */
	int stopping;
	int target;		/* idle: connections this thread opens */
	uint64_t seq;		/* connections started, for the address spread */
	struct counts c;
	uint32_t *lat_us;	/* echo: round trip latencies */
	size_t nlat, caplat;
	unsigned char *scratch;
	unsigned char payload[4096];
	uint64_t last_done_ns;	/* when the last connection completed */
	uint64_t bulk_start_ns;
};

static struct sockaddr_in server_addrs[MAX_ADDRS];
static uint64_t run_start_ns;
static _Atomic uint64_t run_end_ns;	/* idle: moved on by the pauses at marks */
static atomic_int idle_limit;		/* idle: connections allowed open now */
static atomic_int idle_open;		/* idle: connections open, all threads */
static uint64_t idle_open_ns;		/* idle: time spent opening, pauses left out */
static uint64_t idle_close_ns;		/* idle: time the client took to close them */
static atomic_int idle_stop;		/* idle: the hold is over */
static _Thread_local struct thread *this_thread;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t
secs_ns(double s)
{
	return (uint64_t)(s * 1e9);
}

static int
mode_resumes(const struct opts *o)
{
	return o->mode == MODE_RESUME12_TICKET || o->mode == MODE_RESUME12_ID ||
	    o->mode == MODE_RESUME13 || (o->mode == MODE_MQTT && o->resume);
}

/* Keep the newest session the server hands out; the slot's next offer. */
static int
on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct thread *th = this_thread;

	if (th == NULL || !SSL_SESSION_is_resumable(sess))
		return 0;
	SSL_SESSION_free(th->session);
	th->session = sess;
	return 1;		/* we keep the reference */
}

static SSL_CTX *
client_ctx_new(const struct opts *o)
{
	return benchtls_client_ctx(o->tls == 12 ? TLS1_2_VERSION : TLS1_3_VERSION,
	    o->mode == MODE_RESUME12_ID ? SSL_OP_NO_TICKET : 0, 0, o->ca, o->ciphers,
	    o->ciphersuites, on_new_session);
}

/* ---------------------------------------------------------------- slots */

static void
slot_watch(struct slot *s, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = s };

	if (s->registered && s->watching == events)
		return;
	if (!s->registered) {
		epoll_ctl(s->th->ep, EPOLL_CTL_ADD, s->fd, &ev);
		s->registered = 1;
	} else
		epoll_ctl(s->th->ep, EPOLL_CTL_MOD, s->fd, &ev);
	s->watching = events;
}

/* Close the slot's connection: with a RST when ${rst}, else a plain close. */
static void
slot_close(struct slot *s, int rst)
{
	benchtls_close(s->ssl, s->fd, rst);
	s->ssl = NULL;
	s->fd = -1;
	s->registered = 0;
	s->watching = 0;
	s->ph = PH_FREE;
	s->th->active--;
}

static int slot_start(struct slot *s);

/* Idle: how many of the ${limit} connections open at once are this thread's. */
static uint64_t
thread_allowed(const struct thread *th, int limit)
{
	return (uint64_t)th->target * (uint64_t)limit / (uint64_t)th->o->connections;
}

/*
 * Start connections on free slots up to the thread's share of
 * --concurrency (idle: until its share of --connections is open).  A slot
 * whose connect() fails outright is left for the next periodic call.
 */
static void
thread_fill(struct thread *th)
{
	const struct opts *o = th->o;

	if (th->stopping || o->mode == MODE_BULK)
		return;
	if (o->mode == MODE_IDLE && now_ns() >= run_end_ns)
		return;		/* the time to open them is over */
	while (th->active < th->inflight_max && (o->mode != MODE_IDLE ||
	    th->c.opened + (uint64_t)th->active < thread_allowed(th, atomic_load(&idle_limit)))) {
		int i, k;

		for (k = 0, i = th->cursor; k < th->nslots; k++, i = (i + 1) % th->nslots)
			if (th->slots[i].ph == PH_FREE)
				break;
		if (k == th->nslots)
			return;
		th->cursor = (i + 1) % th->nslots;
		if (slot_start(&th->slots[i]) != 0)
			return;
	}
}

/* The connection is over (done or failed): start the next one if in time. */
static void
slot_next(struct slot *s)
{
	thread_fill(s->th);
}

static void
slot_fail(struct slot *s, enum err_kind kind)
{
	s->th->c.errors[kind]++;
	ERR_clear_error();
	slot_close(s, 1);
	slot_next(s);
}

static void
slot_completed(struct slot *s, int rst)
{
	s->th->c.completed++;
	s->th->last_done_ns = now_ns();
	slot_close(s, rst);
	slot_next(s);
}

/* Translate an SSL call's failure into a wait; 0 if waiting, -1 on error. */
static int
slot_want(struct slot *s, int ret)
{
	switch (SSL_get_error(s->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		slot_watch(s, EPOLLIN);
		return 0;
	case SSL_ERROR_WANT_WRITE:
		slot_watch(s, EPOLLOUT);
		return 0;
	default:
		return -1;
	}
}

static void slot_step(struct slot *s);

/* Start a connection on a free slot; 0 if under way, -1 if connect() failed. */
static int
slot_start(struct slot *s)
{
	struct thread *th = s->th;
	const struct opts *o = th->o;
	uint64_t k = th->seq++ * (uint64_t)o->threads + (uint64_t)th->id;
	const struct sockaddr_in *dst = &server_addrs[k % (uint64_t)o->nports];
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		th->c.errors[ERR_CONNECT]++;
		return -1;
	}
	s->fd = fd;
	s->ph = PH_CONNECT;
	s->off = 0;
	s->started_ns = now_ns();
	th->active++;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o->nsources > 0) {
		/*
		 * The port is chosen at connect(), knowing the destination, so
		 * each source address has its own ephemeral range per
		 * destination instead of one range for all of them.
		 */
		struct sockaddr_in src = { .sin_family = AF_INET,
		    .sin_addr = o->sources[(k / (uint64_t)o->nports) % (uint64_t)o->nsources] };

		if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) != 0 ||
		    bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
			th->c.errors[ERR_CONNECT]++;
			slot_close(s, 0);
			return -1;
		}
	}
	if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) != 0 &&
	    errno != EINPROGRESS) {
		th->c.errors[ERR_CONNECT]++;
		slot_close(s, 0);
		return -1;
	}
	slot_watch(s, EPOLLOUT);
	return 0;
}

static int
ssl_setup(struct slot *s)
{
	struct thread *th = s->th;

	if ((s->ssl = SSL_new(th->ctx)) == NULL || SSL_set_fd(s->ssl, s->fd) != 1)
		return -1;
	SSL_set_tlsext_host_name(s->ssl, th->o->sni);
	if (th->o->ca != NULL)
		SSL_set1_host(s->ssl, th->o->sni);
	if (mode_resumes(th->o) && th->session != NULL) {
		/*
		 * An OpenSSL client with a session cache marks a TLS 1.3
		 * session unresumable once it resumed (tickets are for one
		 * use): offer a copy, so the thread's session lasts.
		 */
		SSL_SESSION *copy = th->o->tls == 13 ? SSL_SESSION_dup(th->session) : NULL;

		SSL_set_session(s->ssl, copy != NULL ? copy : th->session);
		SSL_SESSION_free(copy);
	}
	SSL_set_connect_state(s->ssl);
	return 0;
}

static void
handshake_done(struct slot *s)
{
	struct thread *th = s->th;
	const struct opts *o = th->o;

	th->c.handshakes++;
	if (SSL_session_reused(s->ssl))
		th->c.resumed++;
	else {
		th->c.full++;
		if (mode_resumes(o))
			th->c.errors[ERR_NOT_RESUMED]++;
	}
	switch (o->mode) {
	case MODE_FULL:
	case MODE_RESUME12_TICKET:
	case MODE_RESUME12_ID:
	case MODE_RESUME13:
		if (o->close_rst) {
			slot_completed(s, 1);
			return;
		}
		s->ph = PH_SHUTDOWN;
		break;
	case MODE_MQTT:
	case MODE_ECHO:
	case MODE_IDLE:
		s->ph = PH_WRITE;
		s->off = 0;
		s->rt_start_ns = now_ns();
		break;
	case MODE_BULK:
		s->ph = PH_HOLD;	/* bulk_run() takes over */
		return;
	}
	slot_step(s);
}

static void
record_latency(struct thread *th, uint64_t ns)
{
	if (th->nlat == th->caplat) {
		size_t cap = th->caplat ? th->caplat * 2 : 4096;
		uint32_t *p = realloc(th->lat_us, cap * sizeof(*p));

		if (p == NULL)
			return;
		th->lat_us = p;
		th->caplat = cap;
	}
	th->lat_us[th->nlat++] = (uint32_t)(ns / 1000);
}

/* The echo came back whole. */
static void
roundtrip_done(struct slot *s)
{
	struct thread *th = s->th;
	uint64_t now = now_ns();

	th->c.roundtrips++;
	switch (th->o->mode) {
	case MODE_ECHO:
		record_latency(th, now - s->rt_start_ns);
		if (th->stopping) {
			slot_completed(s, 1);
			return;
		}
		s->ph = PH_WRITE;
		s->off = 0;
		s->rt_start_ns = now;
		s->started_ns = now;	/* the timeout is per round trip here */
		break;
	case MODE_IDLE:
		th->c.opened++;
		th->active--;		/* held connections do not keep the loop busy */
		s->ph = PH_HOLD;
		slot_watch(s, EPOLLIN);
		atomic_fetch_add(&idle_open, 1);
		slot_next(s);
		return;
	default:
		s->ph = PH_SHUTDOWN;
		break;
	}
	slot_step(s);
}

/* Drive the slot's connection as far as it goes without blocking. */
static void
slot_step(struct slot *s)
{
	struct thread *th = s->th;
	int n, err = 0;
	socklen_t len = sizeof(err);

	for (;;) {
		switch (s->ph) {
		case PH_FREE:
			return;
		case PH_CONNECT:
			if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
				slot_fail(s, ERR_CONNECT);
				return;
			}
			if (ssl_setup(s) != 0) {
				slot_fail(s, ERR_HANDSHAKE);
				return;
			}
			s->ph = PH_HANDSHAKE;
			continue;
		case PH_HANDSHAKE:
			n = SSL_do_handshake(s->ssl);
			if (n == 1) {
				handshake_done(s);
				return;
			}
			if (slot_want(s, n) != 0)
				slot_fail(s, ERR_HANDSHAKE);
			return;
		case PH_WRITE:
			n = SSL_write(s->ssl, th->payload, th->o->payload);
			if (n <= 0) {
				if (slot_want(s, n) != 0)
					slot_fail(s, ERR_IO);
				return;
			}
			s->ph = PH_READ;
			s->off = 0;
			continue;
		case PH_READ:
			n = SSL_read(s->ssl, th->scratch, SCRATCH_LEN);
			if (n <= 0) {
				if (slot_want(s, n) != 0)
					slot_fail(s, ERR_IO);
				return;
			}
			if (s->off + (size_t)n > (size_t)th->o->payload ||
			    memcmp(th->scratch, th->payload + s->off, (size_t)n) != 0) {
				slot_fail(s, ERR_IO);
				return;
			}
			s->off += (size_t)n;
			if (s->off == (size_t)th->o->payload) {
				roundtrip_done(s);
				return;
			}
			continue;
		case PH_SHUTDOWN:
			n = SSL_shutdown(s->ssl);
			if (n < 0) {
				if (slot_want(s, n) != 0)
					slot_fail(s, ERR_IO);
				return;
			}
			if (n == 1) {
				slot_completed(s, 0);
				return;
			}
			s->ph = PH_DRAIN;
			continue;
		case PH_DRAIN:
			/* Anything until the server's close_notify or EOF. */
			n = SSL_read(s->ssl, th->scratch, SCRATCH_LEN);
			if (n > 0)
				continue;
			if (SSL_get_error(s->ssl, n) == SSL_ERROR_WANT_READ) {
				slot_watch(s, EPOLLIN);
				return;
			}
			ERR_clear_error();
			slot_completed(s, 0);	/* close_notify, EOF or reset: over */
			return;
		case PH_HOLD:
			if (th->o->mode != MODE_IDLE)
				return;
			/* A held connection that hears anything was closed by the server. */
			n = SSL_read(s->ssl, th->scratch, SCRATCH_LEN);
			if (n <= 0 && SSL_get_error(s->ssl, n) == SSL_ERROR_WANT_READ)
				return;
			th->c.errors[ERR_IO]++;
			th->c.opened--;
			atomic_fetch_sub(&idle_open, 1);
			th->active++;	/* slot_close counts it down again */
			ERR_clear_error();
			slot_close(s, 1);
			return;
		}
	}
}

/* ---------------------------------------------------------------- priming */

/* Wait until fd is ready for what SSL wants; -1 on error or past ${deadline}. */
static int
wait_ssl(SSL *ssl, int fd, int ret, uint64_t deadline)
{
	struct pollfd p = { .fd = fd };
	uint64_t now = now_ns();

	switch (SSL_get_error(ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		p.events = POLLIN;
		break;
	case SSL_ERROR_WANT_WRITE:
		p.events = POLLOUT;
		break;
	default:
		return -1;
	}
	if (now >= deadline)
		return -1;
	return poll(&p, 1, (int)((deadline - now) / 1000000 + 1)) > 0 ? 0 : -1;
}

/* Connect and handshake one slot, blocking; 0 or -1. */
static int
blocking_handshake(struct slot *s, uint64_t deadline)
{
	struct pollfd p;
	int n;

	if (slot_start(s) != 0)
		return -1;
	p = (struct pollfd){ .fd = s->fd, .events = POLLOUT };
	if (poll(&p, 1, (int)((deadline - now_ns()) / 1000000)) <= 0)
		return -1;
	s->ph = PH_HANDSHAKE;
	if (ssl_setup(s) != 0)
		return -1;
	while ((n = SSL_do_handshake(s->ssl)) != 1)
		if (wait_ssl(s->ssl, s->fd, n, deadline) != 0)
			return -1;
	return 0;
}

/* One full handshake, not counted, to get a session to resume; 0 or -1. */
static int
prime_session(struct thread *th)
{
	struct slot s = { .th = th, .fd = -1 };
	uint64_t deadline = now_ns() + secs_ns(10);
	int rc = -1, n;

	if (blocking_handshake(&s, deadline) != 0)
		goto out;
	/* TLS 1.3 tickets follow the handshake: read until one came. */
	while (th->session == NULL) {
		n = SSL_read(s.ssl, th->scratch, SCRATCH_LEN);
		if (th->session == NULL && n <= 0 && wait_ssl(s.ssl, s.fd, n, deadline) != 0)
			goto out;
	}
	/* A clean close: a server may drop the session of a reset connection. */
	while ((n = SSL_shutdown(s.ssl)) == 0 || (n < 0 &&
	    wait_ssl(s.ssl, s.fd, n, deadline) == 0)) {
		if (n == 0 && (n = SSL_read(s.ssl, th->scratch, SCRATCH_LEN)) <= 0 &&
		    (SSL_get_error(s.ssl, n) != SSL_ERROR_WANT_READ ||
		    wait_ssl(s.ssl, s.fd, n, deadline) != 0))
			break;
	}
	rc = 0;
out:
	if (s.ph != PH_FREE)
		slot_close(&s, rc != 0);
	ERR_clear_error();
	return rc;
}

/* ---------------------------------------------------------------- bulk */

/* One connection, both ways at once, until the run ends. */
static void
bulk_run(struct thread *th)
{
	static const unsigned char hdr[4] = { 'D', 'P', 'L', 'X' };
	struct slot s = { .th = th, .fd = -1 };
	unsigned char *out = th->scratch, in[SCRATCH_LEN];
	uint64_t t0;
	int n, hdr_sent = 0;

	if (blocking_handshake(&s, now_ns() + secs_ns(10)) != 0) {
		th->c.errors[ERR_HANDSHAKE]++;
		goto out;
	}
	th->c.handshakes++;
	th->c.full++;
	memset(out, 'b', BULK_CHUNK);
	t0 = th->bulk_start_ns = now_ns();
	while (now_ns() < t0 + secs_ns(th->o->duration)) {
		struct pollfd p = { .fd = s.fd };
		int progress = 0;

		n = hdr_sent ? SSL_write(s.ssl, out, BULK_CHUNK) : SSL_write(s.ssl, hdr, 4);
		if (n > 0) {
			if (hdr_sent)
				th->c.up_bytes += (uint64_t)n;
			hdr_sent = 1;
			progress = 1;
		} else {
			int e = SSL_get_error(s.ssl, n);

			if (e == SSL_ERROR_WANT_WRITE)
				p.events |= POLLOUT;
			else if (e == SSL_ERROR_WANT_READ)
				p.events |= POLLIN;
			else {
				th->c.errors[ERR_IO]++;
				break;
			}
		}
		n = SSL_read(s.ssl, in, sizeof(in));
		if (n > 0) {
			th->c.down_bytes += (uint64_t)n;
			progress = 1;
		} else {
			int e = SSL_get_error(s.ssl, n);

			if (e == SSL_ERROR_WANT_READ)
				p.events |= POLLIN;
			else if (e == SSL_ERROR_WANT_WRITE)
				p.events |= POLLOUT;
			else {
				th->c.errors[ERR_IO]++;
				break;
			}
		}
		if (!progress)
			poll(&p, 1, 100);
	}
	th->last_done_ns = now_ns();
	th->c.completed++;
out:
	if (s.ph != PH_FREE)
		slot_close(&s, 1);
}

/* ---------------------------------------------------------------- the loop */

static void
check_timeouts(struct thread *th, uint64_t now)
{
	uint64_t limit = secs_ns(th->o->timeout);

	for (int i = 0; i < th->nslots; i++) {
		struct slot *s = &th->slots[i];

		if (s->ph != PH_FREE && s->ph != PH_HOLD && now - s->started_ns > limit)
			slot_fail(s, ERR_TIMEOUT);
	}
}

static void *
thread_main(void *arg)
{
	struct thread *th = arg;
	const struct opts *o = th->o;
	struct epoll_event evs[MAX_EVENTS];
	uint64_t now, last_scan = 0, grace_end = 0;

	this_thread = th;
	if (o->mode == MODE_BULK) {
		bulk_run(th);
		return NULL;
	}
	thread_fill(th);
	for (;;) {
		int n;

		now = now_ns();
		if (!th->stopping && (o->mode == MODE_IDLE ? atomic_load(&idle_stop) :
		    now >= run_end_ns)) {
			th->stopping = 1;
			grace_end = now + secs_ns(GRACE_S);
		}
		if (th->stopping && (th->active == 0 || now >= grace_end || o->mode == MODE_IDLE))
			break;
		if (now - last_scan > 100000000u) {
			check_timeouts(th, now);
			thread_fill(th);
			last_scan = now;
		}
		n = epoll_wait(th->ep, evs, MAX_EVENTS, 100);
		for (int i = 0; i < n; i++)
			slot_step(evs[i].data.ptr);
	}
	/* Whatever is still open (held, or past the grace period) goes now. */
	for (int i = 0; i < th->nslots; i++) {
		struct slot *s = &th->slots[i];

		if (s->ph == PH_FREE)
			continue;
		if (s->ph == PH_HOLD)
			th->active++;	/* slot_close counts it down */
		else if (o->mode != MODE_IDLE)
			th->c.errors[ERR_TIMEOUT]++;
		slot_close(s, 1);
	}
	return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Print the run's line; ${start_ns} to ${end_ns} is the time it took. */
static void
report(const struct opts *o, struct thread *ths, uint64_t start_ns, uint64_t end_ns)
{
	struct counts t = { 0 };
	uint64_t errors = 0;
	double secs;
	uint32_t *lat = NULL;
	size_t nlat = 0;

	for (int i = 0; i < o->threads; i++) {
		struct counts *c = &ths[i].c;

		t.handshakes += c->handshakes;
		t.full += c->full;
		t.resumed += c->resumed;
		t.completed += c->completed;
		t.roundtrips += c->roundtrips;
		t.opened += c->opened;
		t.up_bytes += c->up_bytes;
		t.down_bytes += c->down_bytes;
		for (int k = 0; k < ERR_N; k++)
			t.errors[k] += c->errors[k];
		nlat += ths[i].nlat;
	}
	for (int k = 0; k < ERR_N; k++)
		errors += t.errors[k];
	secs = (double)(end_ns - start_ns) / 1e9;
	if (secs <= 0)
		secs = 1e-9;

	printf("tlsbench mode=%s tls=%s", mode_names[o->mode], o->tls == 12 ? "1.2" : "1.3");
	if (o->mode == MODE_FULL || o->mode == MODE_RESUME12_TICKET ||
	    o->mode == MODE_RESUME12_ID || o->mode == MODE_RESUME13)
		printf(" close=%s", o->close_rst ? "rst" : "clean");
	if (o->mode == MODE_MQTT)
		printf(" resume=%d", o->resume);
	printf(" threads=%d concurrency=%d seconds=%.3f handshakes=%llu full=%llu resumed=%llu"
	    " rate=%.1f", o->threads, o->mode == MODE_BULK ? 1 : o->concurrency, secs,
	    (unsigned long long)t.handshakes, (unsigned long long)t.full,
	    (unsigned long long)t.resumed, (double)t.handshakes / secs);
	switch (o->mode) {
	case MODE_MQTT:
		printf(" echoed=%llu completed=%llu", (unsigned long long)t.roundtrips,
		    (unsigned long long)t.completed);
		break;
	case MODE_ECHO:
		if (nlat > 0 && (lat = malloc(nlat * sizeof(*lat))) != NULL) {
			size_t k = 0;

			for (int i = 0; i < o->threads; i++) {
				memcpy(lat + k, ths[i].lat_us, ths[i].nlat * sizeof(*lat));
				k += ths[i].nlat;
			}
			qsort(lat, nlat, sizeof(*lat), cmp_u32);
		}
		printf(" roundtrips=%llu rt_rate=%.1f p50_us=%u p99_us=%u",
		    (unsigned long long)t.roundtrips, (double)t.roundtrips / secs,
		    lat ? lat[nlat / 2] : 0, lat ? lat[(nlat * 99) / 100] : 0);
		free(lat);
		break;
	case MODE_BULK:
		printf(" up_MBps=%.1f down_MBps=%.1f total_MBps=%.1f",
		    (double)t.up_bytes / secs / 1e6, (double)t.down_bytes / secs / 1e6,
		    (double)(t.up_bytes + t.down_bytes) / secs / 1e6);
		break;
	case MODE_IDLE:
		printf(" open=%d target=%d hold=%.1f open_seconds=%.3f open_rate=%.1f"
		    " close_seconds=%.3f", atomic_load(&idle_open), o->connections, o->hold,
		    (double)idle_open_ns / 1e9, idle_open_ns ?
		    (double)atomic_load(&idle_open) * 1e9 / (double)idle_open_ns : 0.0,
		    (double)idle_close_ns / 1e9);
		break;
	default:
		break;
	}
	printf(" errors=%llu", (unsigned long long)errors);
	for (int k = 0; k < ERR_N; k++)
		printf(" err_%s=%llu", err_names[k], (unsigned long long)t.errors[k]);
	printf("\n");
	fflush(stdout);
}

/* ---------------------------------------------------------------- idle */

/* Wait for a line on stdin, or its end; -1 when reading fails. */
static int
wait_stdin_line(void)
{
	char line[256];

	if (fgets(line, sizeof(line), stdin) == NULL && ferror(stdin)) {
		perror("tlsbench: stdin");
		return -1;
	}
	return 0;
}

/*
 * Idle, on the main thread: let the connections open stretch by stretch
 * (--marks), say when each stretch and then all are open, hold them, and
 * tell the threads to close them.  Returns when the closing starts.
 */
static uint64_t
idle_run(const struct opts *o, struct thread *ths)
{
	uint64_t t0 = now_ns();

	for (int m = 0; m <= o->nmarks; m++) {
		int limit = m < o->nmarks ? o->marks[m] : o->connections;
		uint64_t want = 0;

		for (int i = 0; i < o->threads; i++)
			want += thread_allowed(&ths[i], limit);
		atomic_store(&idle_limit, limit);
		/* Until the stretch is open, or the time to open it runs out. */
		while ((uint64_t)atomic_load(&idle_open) < want && now_ns() < run_end_ns)
			usleep(1000);
		idle_open_ns += now_ns() - t0;
		printf("%s open=%d seconds=%.3f\n", m < o->nmarks ? "mark" : "ready",
		    atomic_load(&idle_open), (double)(now_ns() - t0) / 1e9);
		fflush(stdout);
		if (m == o->nmarks)
			break;
		t0 = now_ns();
		if (wait_stdin_line() != 0)
			return now_ns();
		atomic_fetch_add(&run_end_ns, now_ns() - t0);	/* the pause is not opening time */
		t0 = now_ns();
	}
	if (o->nmarks > 0)
		wait_stdin_line();
	else
		usleep((useconds_t)(o->hold * 1e6));
	atomic_store(&idle_stop, 1);
	return now_ns();
}

/* ---------------------------------------------------------------- main */

static void
usage(void)
{
	fprintf(stderr,
	    "usage: tlsbench MODE [options]\n"
	    "modes: full resume12-ticket resume12-id resume13 mqtt bulk echo idle\n"
	    "  --port N[,N...]     server port(s) on --host (required)\n"
	    "  --host A            server IPv4 address (default 127.0.0.1)\n"
	    "  --source A[,A...]   client IPv4 source address(es) (default: the kernel's)\n"
	    "  --ca FILE | --insecure   verify the server against FILE, or not at all\n"
	    "  --sni NAME          server name sent and verified (default localhost)\n"
	    "  --tls 1.2|1.3       protocol for full (default 1.3; mqtt/echo/idle/bulk: 1.3)\n"
	    "  --close rst|clean   after a handshake-only connection (default rst)\n"
	    "  --resume            mqtt: resume TLS 1.3 sessions\n"
	    "  --concurrency N     connections in flight (default 16)\n"
	    "  --threads N         client threads (default 1)\n"
	    "  --duration S        seconds of load; idle: most seconds to open (default 10)\n"
	    "  --connections N     idle: connections to hold (default 1000)\n"
	    "  --hold S            idle: seconds to hold them (default 5)\n"
	    "  --marks N[,N...]    idle: pause at these counts, go on at a line on stdin\n"
	    "  --payload N         echo bytes, 1 to 4096 (default 100)\n"
	    "  --timeout S         per connection or round trip (default 10)\n"
	    "  --ciphers L, --ciphersuites L   client offers (OpenSSL syntax)\n");
	exit(64);
}

/* A comma list of at most MAX_ADDRS integers in [lo, hi]; how many, or -1. */
static int
parse_ints(const char *arg, int *out, long lo, long hi)
{
	const char *p = arg;
	int n = 0;

	for (;;) {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p || v < lo || v > hi || n == MAX_ADDRS)
			return -1;
		out[n++] = (int)v;
		if (*end == '\0')
			return n;
		if (*end != ',')
			return -1;
		p = end + 1;
	}
}

/* A comma list of at most MAX_ADDRS IPv4 addresses; how many, or -1. */
static int
parse_sources(const char *arg, struct in_addr *out)
{
	char buf[INET_ADDRSTRLEN];
	const char *p = arg;
	int n = 0;

	for (;;) {
		size_t len = strcspn(p, ",");

		if (len == 0 || len >= sizeof(buf) || n == MAX_ADDRS)
			return -1;
		memcpy(buf, p, len);
		buf[len] = '\0';
		if (inet_pton(AF_INET, buf, &out[n++]) != 1)
			return -1;
		if (p[len] == '\0')
			return n;
		p += len + 1;
	}
}

static void
parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_PORT = 256, O_HOST, O_CA, O_INSECURE, O_SNI, O_TLS, O_CLOSE, O_RESUME,
	    O_CONC, O_THREADS, O_DUR, O_CONNS, O_HOLD, O_PAYLOAD, O_TIMEOUT, O_CIPHERS,
	    O_SUITES, O_SOURCE, O_MARKS };
	static const struct option lo[] = {
		{ "port", 1, NULL, O_PORT }, { "host", 1, NULL, O_HOST },
		{ "ca", 1, NULL, O_CA }, { "insecure", 0, NULL, O_INSECURE },
		{ "sni", 1, NULL, O_SNI }, { "tls", 1, NULL, O_TLS },
		{ "close", 1, NULL, O_CLOSE }, { "resume", 0, NULL, O_RESUME },
		{ "concurrency", 1, NULL, O_CONC }, { "threads", 1, NULL, O_THREADS },
		{ "duration", 1, NULL, O_DUR }, { "connections", 1, NULL, O_CONNS },
		{ "hold", 1, NULL, O_HOLD }, { "payload", 1, NULL, O_PAYLOAD },
		{ "timeout", 1, NULL, O_TIMEOUT }, { "ciphers", 1, NULL, O_CIPHERS },
		{ "ciphersuites", 1, NULL, O_SUITES }, { "source", 1, NULL, O_SOURCE },
		{ "marks", 1, NULL, O_MARKS }, { NULL, 0, NULL, 0 },
	};
	int c, tls = 0;
	size_t m;

	*o = (struct opts){ .tls = 13, .close_rst = 1, .concurrency = 16, .threads = 1,
	    .duration = 10, .hold = 5, .timeout = 10, .connections = 1000, .payload = 100,
	    .host = "127.0.0.1", .sni = "localhost" };
	if (argc < 2)
		usage();
	for (m = 0; m < sizeof(mode_names) / sizeof(mode_names[0]); m++)
		if (strcmp(argv[1], mode_names[m]) == 0)
			break;
	if (m == sizeof(mode_names) / sizeof(mode_names[0]))
		usage();
	o->mode = (enum mode)m;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_PORT:
			if ((o->nports = parse_ints(optarg, o->ports, 1, 65535)) < 0)
				usage();
			break;
		case O_SOURCE:
			if ((o->nsources = parse_sources(optarg, o->sources)) < 0)
				usage();
			break;
		case O_MARKS:
			if ((o->nmarks = parse_ints(optarg, o->marks, 1, 10000000)) < 0)
				usage();
			break;
		case O_HOST: o->host = optarg; break;
		case O_CA: o->ca = optarg; break;
		case O_INSECURE: o->insecure = 1; break;
		case O_SNI: o->sni = optarg; break;
		case O_TLS:
			tls = strcmp(optarg, "1.2") == 0 ? 12 : strcmp(optarg, "1.3") == 0 ? 13 : -1;
			break;
		case O_CLOSE:
			if (strcmp(optarg, "rst") && strcmp(optarg, "clean"))
				usage();
			o->close_rst = strcmp(optarg, "rst") == 0;
			break;
		case O_RESUME: o->resume = 1; break;
		case O_CONC: o->concurrency = atoi(optarg); break;
		case O_THREADS: o->threads = atoi(optarg); break;
		case O_DUR: o->duration = atof(optarg); break;
		case O_CONNS: o->connections = atoi(optarg); break;
		case O_HOLD: o->hold = atof(optarg); break;
		case O_PAYLOAD: o->payload = atoi(optarg); break;
		case O_TIMEOUT: o->timeout = atof(optarg); break;
		case O_CIPHERS: o->ciphers = optarg; break;
		case O_SUITES: o->ciphersuites = optarg; break;
		default: usage();
		}
	}
	if (optind != argc || o->nports == 0 || tls < 0 ||
	    (o->ca == NULL) == !o->insecure || o->concurrency < 1 || o->threads < 1 ||
	    o->threads > 64 || o->duration <= 0 || o->duration > 3600 || o->hold < 0 ||
	    o->hold > 3600 || o->connections < 1 || o->payload < 1 || o->payload > 4096 ||
	    o->timeout <= 0)
		usage();
	switch (o->mode) {
	case MODE_RESUME12_TICKET:
	case MODE_RESUME12_ID:
		o->tls = 12;
		break;
	case MODE_FULL:
		o->tls = tls ? tls : 13;
		break;
	default:
		if (tls == 12) {
			fprintf(stderr, "tlsbench: mode %s is TLS 1.3 only\n", mode_names[o->mode]);
			exit(64);
		}
		o->tls = 13;
	}
	if (o->mode == MODE_BULK)
		o->threads = 1;
	for (int i = 0; i < o->nmarks; i++)
		if (o->mode != MODE_IDLE || o->marks[i] >= o->connections ||
		    (i > 0 && o->marks[i] <= o->marks[i - 1])) {
			fprintf(stderr, "tlsbench: --marks: idle only, rising, each below"
			    " --connections\n");
			exit(64);
		}
	if (o->mode == MODE_IDLE && o->concurrency > o->connections)
		o->concurrency = o->connections;
	if (o->concurrency < o->threads)
		o->threads = o->concurrency;
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct thread *ths;
	uint64_t end = 0;
	int failed = 0;

	parse_args(argc, argv, &o);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	for (int i = 0; i < o.nports; i++) {
		server_addrs[i] = (struct sockaddr_in){ .sin_family = AF_INET,
		    .sin_port = htons((uint16_t)o.ports[i]) };
		if (inet_pton(AF_INET, o.host, &server_addrs[i].sin_addr) != 1)
			usage();
	}

	if ((ths = calloc((size_t)o.threads, sizeof(*ths))) == NULL)
		return 1;
	for (int i = 0; i < o.threads; i++) {
		struct thread *th = &ths[i];
		int share = o.concurrency / o.threads + (i < o.concurrency % o.threads);

		th->id = i;
		th->o = &o;
		th->nslots = o.mode == MODE_IDLE ?
		    o.connections / o.threads + (i < o.connections % o.threads) : share;
		th->target = th->nslots;
		th->inflight_max = share;
		th->slots = calloc((size_t)th->nslots, sizeof(*th->slots));
		th->scratch = malloc(SCRATCH_LEN);
		th->ctx = client_ctx_new(&o);
		th->ep = epoll_create1(EPOLL_CLOEXEC);
		if (th->slots == NULL || th->scratch == NULL || th->ctx == NULL || th->ep < 0)
			return 1;
		for (int k = 0; k < th->nslots; k++) {
			th->slots[k].th = th;
			th->slots[k].fd = -1;
		}
		for (int k = 0; k < o.payload; k++)
			th->payload[k] = (unsigned char)('A' + (k + i) % 26);
		if (mode_resumes(&o)) {
			this_thread = th;
			if (prime_session(th) != 0) {
				fprintf(stderr, "tlsbench: thread %d: no session to resume"
				    " (is the server up, does it issue sessions?)\n", i);
				ERR_print_errors_fp(stderr);
				printf("tlsbench mode=%s error=no-session\n", mode_names[o.mode]);
				return 1;
			}
			this_thread = NULL;
		}
	}

	run_start_ns = now_ns();
	run_end_ns = run_start_ns + secs_ns(o.duration);
	atomic_store(&idle_limit, o.nmarks > 0 ? o.marks[0] : o.connections);
	for (int i = 0; i < o.threads; i++)
		pthread_create(&ths[i].tid, NULL, thread_main, &ths[i]);
	if (o.mode == MODE_IDLE)
		end = idle_run(&o, ths);
	for (int i = 0; i < o.threads; i++) {
		pthread_join(ths[i].tid, NULL);
		if (o.mode != MODE_IDLE && ths[i].last_done_ns > end)
			end = ths[i].last_done_ns;
	}
	if (o.mode == MODE_IDLE) {
		idle_close_ns = now_ns() - end;
		if (o.nmarks > 0) {
			printf("closed seconds=%.3f\n", (double)idle_close_ns / 1e9);
			fflush(stdout);
		}
	}
	if (o.mode == MODE_BULK)
		report(&o, ths, ths[0].bulk_start_ns, end);
	else
		report(&o, ths, run_start_ns, end > run_end_ns || o.mode == MODE_IDLE ? end :
		    run_end_ns);
	for (int i = 0; i < o.threads; i++) {
		for (int k = 0; k < ERR_N; k++)
			failed |= ths[i].c.errors[k] != 0;
		SSL_SESSION_free(ths[i].session);
		SSL_CTX_free(ths[i].ctx);
		close(ths[i].ep);
		free(ths[i].slots);
		free(ths[i].scratch);
		free(ths[i].lat_us);
	}
	free(ths);
	return failed;
}
