/*
 * storm_dev: one simulated device's connection, as a state machine driven
 * by epoll readiness and by its one timer.
 *
 * An attempt binds the device's own source address, connects, does TLS
 * (1.2 or 1.3, offering the newest session it was given), sends an MQTT
 * CONNECT and waits for CONNACK, all within --attempt-timeout.  Once
 * connected it stays (PINGREQ every keepalive) until the server side
 * closes, or with --hold it disconnects cleanly after about that long and
 * reconnects about --gap later (each drawn from 0.5 to 1.5 times the
 * figure, so that the devices do not move in step).  After a lost connection or a failed attempt it
 * waits as device SDKs do (the AWS IoT Embedded C SDK's BackoffAlgorithm,
 * "full jitter"): U(0, min(cap, base * 2^n)) where n counts the failed
 * attempts since the last CONNACK, so the first reconnect after a drop
 * waits U(0, base).  An arrival is one attempt with a fresh full handshake,
 * then DISCONNECT, and no retry.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "benchtls.h"
#include "storm.h"

const char *const fail_names[F_N] = {
	"refused", "closed", "handshake", "rejected", "timeout", "local",
};

/* Keep the newest session a device is given: its next offer. */
static int
on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct dev *d = SSL_get_app_data(ssl);

	if (d == NULL || d->p->o->fresh || d->kind == K_ARRIVAL ||
	    !SSL_SESSION_is_resumable(sess))
		return 0;
	SSL_SESSION_free(d->sess);
	d->sess = sess;
	return 1;		/* the device keeps the reference */
}

SSL_CTX *
dev_ctx_new(const struct storm_opts *o, int tls12)
{
	/* Idle devices are most of them: their buffers go back while idle. */
	return benchtls_client_ctx(tls12 ? TLS1_2_VERSION : TLS1_3_VERSION, 0,
	    SSL_MODE_RELEASE_BUFFERS, o->ca, o->ciphers, o->ciphersuites, on_new_session);
}

void
dev_close(struct dev *d, int rst)
{
	if (d->fd < 0)
		return;
	benchtls_close(d->ssl, d->fd, rst);
	d->ssl = NULL;
	d->fd = -1;
	d->registered = 0;
	d->watching = 0;
}

/* The wait before the next attempt, after ${d->failures} failed ones. */
static uint64_t
backoff_ns(struct dev *d)
{
	const struct storm_opts *o = d->p->o;
	double window = o->backoff_base * ldexp(1.0, (int)(d->failures > 30 ? 30 : d->failures));

	if (window > o->backoff_cap)
		window = o->backoff_cap;
	return (uint64_t)(storm_rand(d->p) * window * 1e9);
}

/* Not connected any more: wait, then try again (devices), or free the slot. */
static void
dev_rest(struct dev *d)
{
	const struct storm_opts *o = d->p->o;

	d->phase = P_IDLE;
	if (d->kind == K_ARRIVAL) {
		storm_release(d->p, d);
		return;
	}
	if (o->hold >= 0)
		storm_arm(d->p, d, now_ns() + (uint64_t)(o->gap * (0.5 + storm_rand(d->p)) * 1e9));
	else
		storm_arm(d->p, d, now_ns() + backoff_ns(d));
}

static void
dev_fail(struct dev *d, enum fail_kind why)
{
	atomic_fetch_add(&d->p->c->failed[why], 1);
	storm_record(d->p, d, 'F', 0, 0, (now_ns() - d->attempt_ns) / 1000, fail_names[why]);
	dev_close(d, 1);
	d->failures++;
	dev_rest(d);
}

/* The connection of a connected device is gone. */
static void
dev_drop(struct dev *d)
{
	atomic_fetch_add(&d->p->c->drops, 1);
	atomic_fetch_sub(&d->p->c->up, 1);
	storm_record(d->p, d, 'D', 0, 0, 0, "-");
	dev_close(d, 0);
	d->failures = 0;
	dev_rest(d);
}

/* A clean end: DISCONNECT, close_notify, close. */
static void
dev_disconnect(struct dev *d)
{
	if (SSL_write(d->ssl, mqtt_disconnect, sizeof(mqtt_disconnect)) > 0)
		SSL_shutdown(d->ssl);
	dev_close(d, 0);
	d->failures = 0;
	dev_rest(d);
}

void
dev_attempt(struct dev *d)
{
	struct storm_proc *p = d->p;
	struct sockaddr_in src = { .sin_family = AF_INET, .sin_addr = d->src };
	int one = 1;

	d->attempt_ns = now_ns();
	d->inlen = 0;
	atomic_fetch_add(&p->c->attempts, 1);
	storm_arm(p, d, d->attempt_ns + (uint64_t)(p->o->attempt_timeout * 1e9));
	d->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (d->fd < 0) {
		dev_fail(d, F_LOCAL);
		return;
	}
	/* The port is chosen at connect(), per destination: none runs out. */
	setsockopt(d->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(d->fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
		dev_fail(d, F_LOCAL);
		return;
	}
	if (connect(d->fd, (const struct sockaddr *)&p->o->server, sizeof(p->o->server)) != 0 &&
	    errno != EINPROGRESS) {
		dev_fail(d, errno == ECONNREFUSED ? F_REFUSED : F_LOCAL);
		return;
	}
	d->phase = P_CONNECT;
	storm_watch(p, d, EPOLLOUT);
}

static int
dev_ssl_setup(struct dev *d)
{
	struct storm_proc *p = d->p;

	d->ssl = SSL_new(d->tls12 ? p->ctx12 : p->ctx13);
	if (d->ssl == NULL || SSL_set_fd(d->ssl, d->fd) != 1)
		return -1;
	SSL_set_app_data(d->ssl, d);
	SSL_set_tlsext_host_name(d->ssl, p->o->sni);
	if (p->o->ca != NULL)
		SSL_set1_host(d->ssl, p->o->sni);
	if (d->sess != NULL && !p->o->fresh && d->kind == K_DEVICE) {
		/*
		 * Offer a copy: an OpenSSL client marks the session it offered
		 * unresumable once it resumed TLS 1.3 (tickets are for one
		 * use), and whenever a handshake ends in a fatal alert, such
		 * as the server closing in the middle.  The device keeps its
		 * session for the next attempt, as an SDK that stores it does.
		 */
		SSL_SESSION *copy = SSL_SESSION_dup(d->sess);

		SSL_set_session(d->ssl, copy != NULL ? copy : d->sess);
		SSL_SESSION_free(copy);
	}
	SSL_set_connect_state(d->ssl);
	return 0;
}

/* An SSL call failed with ${ret}: wait for the socket (0), or -1 and why. */
static int
dev_want(struct dev *d, int ret, enum fail_kind *why)
{
	unsigned long e;

	switch (SSL_get_error(d->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		storm_watch(d->p, d, EPOLLIN);
		return 0;
	case SSL_ERROR_WANT_WRITE:
		storm_watch(d->p, d, EPOLLOUT);
		return 0;
	case SSL_ERROR_SSL:
		e = ERR_peek_error();
		*why = ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING ? F_CLOSED :
		    F_HANDSHAKE;
		return -1;
	default:		/* EOF, reset, close_notify */
		*why = F_CLOSED;
		return -1;
	}
}

static void
dev_connected(struct dev *d, int sp)
{
	struct storm_proc *p = d->p;
	const struct storm_opts *o = p->o;
	uint64_t now = now_ns();
	int resumed = SSL_session_reused(d->ssl);

	atomic_fetch_add(&p->c->ok, 1);
	atomic_fetch_add(&p->c->resumed, (unsigned long long)resumed);
	atomic_fetch_add(&p->c->sp, (unsigned long long)sp);
	storm_record(p, d, 'U', resumed, sp, (now - d->attempt_ns) / 1000, "-");
	d->failures = 0;
	if (d->kind == K_ARRIVAL) {
		atomic_fetch_add(&p->c->arrivals_ok, 1);
		dev_disconnect(d);
		return;
	}
	atomic_fetch_add(&p->c->up, 1);
	d->phase = P_UP;
	if (o->hold >= 0)
		storm_arm(p, d, now + (uint64_t)(o->hold * (0.5 + storm_rand(p)) * 1e9));
	else if (o->keepalive > 0)
		storm_arm(p, d, now + (uint64_t)o->keepalive * 1000000000u);
	else
		d->tgen++;	/* no timer while up */
}

/* Read what the broker sent: CONNACK, PINGRESP; 0, or -1 and why. */
static int
dev_read(struct dev *d, enum fail_kind *why)
{
	int n, type, sp = 0, rc = 0;
	long len;

	for (;;) {
		n = SSL_read(d->ssl, d->p->scratch, sizeof(d->p->scratch));
		if (n <= 0)
			return dev_want(d, n, why);
		if (d->inlen + (size_t)n > sizeof(d->in)) {
			*why = F_REJECTED;	/* nothing this big is expected */
			return -1;
		}
		memcpy(d->in + d->inlen, d->p->scratch, (size_t)n);
		d->inlen += (size_t)n;
		while ((len = mqtt_next(d->in, d->inlen, &type, &sp, &rc)) > 0) {
			memmove(d->in, d->in + len, d->inlen - (size_t)len);
			d->inlen -= (size_t)len;
			if (type != MQTT_CONNACK || d->phase != P_CONNACK)
				continue;
			if (rc != 0) {
				*why = F_REJECTED;
				return -1;
			}
			dev_connected(d, sp);
			if (d->phase != P_UP)
				return 1;	/* an arrival is done */
		}
		if (len < 0) {
			*why = F_REJECTED;
			return -1;
		}
	}
}

void
dev_io(struct dev *d, uint32_t events)
{
	unsigned char pkt[MQTT_CONNECT_MAX];
	char id[64];
	enum fail_kind why = F_CLOSED;
	int n, err = 0;
	socklen_t len = sizeof(err);
	size_t plen;

	(void)events;
	for (;;) {
		switch (d->phase) {
		case P_CONNECT:
			if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
				dev_fail(d, err == ECONNREFUSED ? F_REFUSED : F_CLOSED);
				return;
			}
			if (dev_ssl_setup(d) != 0) {
				dev_fail(d, F_LOCAL);
				return;
			}
			d->phase = P_HANDSHAKE;
			continue;
		case P_HANDSHAKE:
			n = SSL_do_handshake(d->ssl);
			if (n != 1) {
				if (dev_want(d, n, &why) != 0)
					dev_fail(d, why == F_CLOSED ? F_CLOSED : F_HANDSHAKE);
				return;
			}
			d->phase = P_SEND;
			continue;
		case P_SEND:
			snprintf(id, sizeof(id), d->kind == K_ARRIVAL ? "%sa%d" : "%s%d",
			    d->p->o->id_prefix, d->id);
			plen = mqtt_connect(pkt, sizeof(pkt), id, d->kind == K_ARRIVAL ||
			    d->p->o->clean, d->p->o->keepalive);
			n = SSL_write(d->ssl, pkt, (int)plen);
			if (n <= 0) {
				if (dev_want(d, n, &why) != 0)
					dev_fail(d, why);
				return;
			}
			d->phase = P_CONNACK;
			storm_watch(d->p, d, EPOLLIN);
			continue;
		case P_CONNACK:
			if (dev_read(d, &why) >= 0)
				return;
			/* Closed right after its CONNACK: connected, then lost. */
			if (d->phase == P_UP)
				dev_drop(d);
			else
				dev_fail(d, why);
			return;
		case P_UP:
			if (dev_read(d, &why) < 0)
				dev_drop(d);
			return;
		default:
			return;
		}
	}
}

void
dev_timer(struct dev *d)
{
	const struct storm_opts *o = d->p->o;

	switch (d->phase) {
	case P_IDLE:
		dev_attempt(d);
		return;
	case P_CONNECT:
	case P_HANDSHAKE:
	case P_SEND:
	case P_CONNACK:
		dev_fail(d, F_TIMEOUT);
		return;
	case P_UP:
		if (o->hold >= 0) {
			atomic_fetch_sub(&d->p->c->up, 1);
			dev_disconnect(d);
			return;
		}
		if (SSL_write(d->ssl, mqtt_pingreq, sizeof(mqtt_pingreq)) <= 0) {
			dev_drop(d);
			return;
		}
		storm_arm(d->p, d, now_ns() + (uint64_t)o->keepalive * 1000000000u);
		return;
	default:
		return;
	}
}
