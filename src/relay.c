/*
 * relay: the data pump.
 *
 * Client to backend: SSL_read into the thread's scratch buffer, write() to
 * the backend; what the backend does not take is kept and the client is not
 * read again until it has been sent.  Backend to client: read() into the
 * scratch buffer, SSL_write (partial writes on, so each call sends whole
 * records); what the client does not take is kept likewise.
 *
 * Half-close travels through: the client's close_notify (or FIN) becomes
 * shutdown(SHUT_WR) on the backend, the backend's FIN becomes close_notify.
 * SSL_read may need to write (a TLS 1.3 KeyUpdate) and SSL_write may need to
 * read, so each direction reports the readiness it waits for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "log.h"
#include "relay.h"

#define CLIENT_EOF	0x1	/* the client has finished sending */
#define BACKEND_SHUT	0x2	/* shutdown(SHUT_WR) sent to the backend */
#define BACKEND_EOF	0x4	/* the backend has finished sending */
#define CLIENT_SHUT	0x8	/* close_notify sent to the client */
#define BACKEND_DRAINED	0x10	/* the last backend read emptied the socket */

/* Why the last relay of this thread failed: one buffer per thread rather
 * than one per connection, read by the caller right after relay_run(). */
static _Thread_local char failure[160];

/* Bytes one direction may move in one run before yielding to others. */
#define RUN_BUDGET (256 * 1024)

enum step {
	STEP_PROGRESS,		/* moved something; try again */
	STEP_BLOCKED,		/* waiting for readiness (in wants) */
	STEP_IDLE,		/* nothing to do in this direction */
	STEP_FAILED,
};

void
relay_init(struct relay *r, SSL *ssl, int backend_fd)
{
	memset(r, 0, sizeof(*r));
	r->ssl = ssl;
	r->backend_fd = backend_fd;
}

void
relay_backend_readable(struct relay *r)
{
	r->state &= ~(unsigned)BACKEND_DRAINED;
}

void
relay_release(struct relay *r)
{
	free(r->to_backend.data);
	free(r->to_client.data);
	r->to_backend.data = r->to_client.data = NULL;
}

static int
pending_keep(struct relay_pending *p, const unsigned char *data, size_t len)
{
	if (len > UINT32_MAX || (p->data = malloc(len)) == NULL)
		return -1;
	memcpy(p->data, data, len);
	p->len = (uint32_t)len;
	p->off = 0;
	return 0;
}

int
relay_queue_to_backend(struct relay *r, const unsigned char *data, size_t len)
{
	if (r->to_backend.data != NULL || pending_keep(&r->to_backend, data, len) != 0)
		return -1;
	r->header_left = (uint32_t)len;
	return 0;
}

static void
pending_consume(struct relay_pending *p, size_t n)
{
	p->off += (uint32_t)n;
	if (p->off == p->len) {
		free(p->data);
		p->data = NULL;
		p->len = p->off = 0;
	}
}

static enum step
fail(struct relay *r, const char *what, const char *detail)
{
	snprintf(failure, sizeof(failure), "%s: %s", what, detail);
	r->error = failure;
	return STEP_FAILED;
}

/* Describe a failed SSL call; clears the thread's error queue. */
static enum step
fail_ssl(struct relay *r, const char *what, int err)
{
	char reasons[96];

	if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
		snprintf(reasons, sizeof(reasons), "%s",
		    errno ? strerror(errno) : "connection closed");
	else
		ssl_errors_drain(reasons, sizeof(reasons));
	snprintf(failure, sizeof(failure), "client %s: %s", what, reasons);
	r->error = failure;
	ERR_clear_error();
	return STEP_FAILED;
}

/*
 * We just sent the backend something.  It usually runs on the same host or
 * LAN and answers within microseconds, so one read right away often finds
 * the answer and saves a round through epoll.
 */
static void
backend_may_answer(struct relay *r)
{
	r->state &= ~(unsigned)BACKEND_DRAINED;
}

/* Count ${n} bytes sent to the backend, less those of our own header. */
static void
count_to_backend(struct relay *r, size_t n)
{
	size_t ours = n < r->header_left ? n : r->header_left;

	r->header_left -= (uint32_t)ours;
	r->bytes_to_backend += (uint64_t)(n - ours);
}

/* Write data to the backend; keep what it does not take. */
static enum step
write_backend(struct relay *r, const unsigned char *data, size_t len, int pending)
{
	ssize_t n = write(r->backend_fd, data, len);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		n = 0;
	else if (n < 0)
		return fail(r, "backend write", strerror(errno));
	count_to_backend(r, (size_t)n);
	if (n > 0)
		backend_may_answer(r);
	if (pending) {
		pending_consume(&r->to_backend, (size_t)n);
		return n > 0 ? STEP_PROGRESS : STEP_BLOCKED;
	}
	if ((size_t)n < len && pending_keep(&r->to_backend, data + n, len - (size_t)n) != 0)
		return fail(r, "backend write", "out of memory");
	return STEP_PROGRESS;
}

static enum step
client_to_backend(struct relay *r, unsigned char *scratch, size_t len, unsigned *wants)
{
	int n, err;

	if (r->to_backend.data != NULL) {
		enum step s = write_backend(r, r->to_backend.data + r->to_backend.off,
		    r->to_backend.len - r->to_backend.off, 1);
		if (s == STEP_BLOCKED)
			*wants |= RELAY_WANT_BACKEND_WRITE;
		return s;
	}
	if (r->state & CLIENT_EOF) {
		if (!(r->state & BACKEND_SHUT)) {
			/* The backend may already be gone; that ends nothing here. */
			shutdown(r->backend_fd, SHUT_WR);
			r->state |= BACKEND_SHUT;
			backend_may_answer(r);
			return STEP_PROGRESS;
		}
		return STEP_IDLE;
	}
	ERR_clear_error();
	n = SSL_read(r->ssl, scratch, (int)len);
	if (n > 0)
		return write_backend(r, scratch, (size_t)n, 0);
	switch ((err = SSL_get_error(r->ssl, n))) {
	case SSL_ERROR_WANT_READ:
		*wants |= RELAY_WANT_CLIENT_READ;
		return STEP_BLOCKED;
	case SSL_ERROR_WANT_WRITE:
		*wants |= RELAY_WANT_CLIENT_WRITE;
		return STEP_BLOCKED;
	case SSL_ERROR_ZERO_RETURN:
		r->state |= CLIENT_EOF;
		return STEP_PROGRESS;
	default:
		return fail_ssl(r, "read", err);
	}
}

/* Send data to the client as whole records; keep what it does not take. */
static enum step
write_client(struct relay *r, const unsigned char *data, size_t len, int pending,
    unsigned *wants)
{
	size_t done = 0;
	int n, err;

	while (done < len) {
		ERR_clear_error();
		n = SSL_write(r->ssl, data + done, (int)(len - done));
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		err = SSL_get_error(r->ssl, n);
		if (err == SSL_ERROR_WANT_WRITE)
			*wants |= RELAY_WANT_CLIENT_WRITE;
		else if (err == SSL_ERROR_WANT_READ)
			*wants |= RELAY_WANT_CLIENT_READ;
		else
			return fail_ssl(r, "write", err);
		break;
	}
	r->bytes_to_client += done;
	if (pending) {
		pending_consume(&r->to_client, done);
		return done > 0 ? STEP_PROGRESS : STEP_BLOCKED;
	}
	if (done < len && pending_keep(&r->to_client, data + done, len - done) != 0)
		return fail(r, "client write", "out of memory");
	return done > 0 || len == 0 ? STEP_PROGRESS : STEP_BLOCKED;
}

static enum step
send_close_notify(struct relay *r, unsigned *wants)
{
	int n, err;

	ERR_clear_error();
	n = SSL_shutdown(r->ssl);
	if (n >= 0) {
		r->state |= CLIENT_SHUT;
		return STEP_PROGRESS;
	}
	err = SSL_get_error(r->ssl, n);
	if (err == SSL_ERROR_WANT_WRITE) {
		*wants |= RELAY_WANT_CLIENT_WRITE;
		return STEP_BLOCKED;
	}
	if (err == SSL_ERROR_WANT_READ) {
		*wants |= RELAY_WANT_CLIENT_READ;
		return STEP_BLOCKED;
	}
	/* A client that said goodbye and left cannot hear ours: that is a clean end. */
	if (r->state & CLIENT_EOF) {
		ERR_clear_error();
		r->state |= CLIENT_SHUT;
		return STEP_PROGRESS;
	}
	return fail_ssl(r, "close_notify", err);
}

static enum step
backend_to_client(struct relay *r, unsigned char *scratch, size_t len, unsigned *wants)
{
	ssize_t n;

	if (r->to_client.data != NULL)
		return write_client(r, r->to_client.data + r->to_client.off,
		    r->to_client.len - r->to_client.off, 1, wants);
	if (r->state & BACKEND_EOF) {
		if (!(r->state & CLIENT_SHUT))
			return send_close_notify(r, wants);
		return STEP_IDLE;
	}
	/* A short read emptied the socket: don't read again until epoll says
	 * so (level-triggered, so nothing that arrives meanwhile is missed). */
	if (r->state & BACKEND_DRAINED) {
		*wants |= RELAY_WANT_BACKEND_READ;
		return STEP_BLOCKED;
	}
	n = read(r->backend_fd, scratch, len);
	if (n > 0) {
		if ((size_t)n < len)
			r->state |= BACKEND_DRAINED;
		return write_client(r, scratch, (size_t)n, 0, wants);
	}
	if (n == 0) {
		r->state |= BACKEND_EOF;
		return STEP_PROGRESS;
	}
	if (errno == EAGAIN || errno == EINTR) {
		r->state |= BACKEND_DRAINED;
		*wants |= RELAY_WANT_BACKEND_READ;
		return STEP_BLOCKED;
	}
	return fail(r, "backend read", strerror(errno));
}

enum relay_status
relay_run(struct relay *r, unsigned char *scratch, size_t len, unsigned *wants)
{
	uint64_t start_in = r->bytes_to_backend, start_out = r->bytes_to_client;
	enum step up, down;

	do {
		*wants = 0;
		up = client_to_backend(r, scratch, len, wants);
		if (up == STEP_FAILED)
			return RELAY_FAILED;
		down = backend_to_client(r, scratch, len, wants);
		if (down == STEP_FAILED)
			return RELAY_FAILED;
		if (r->bytes_to_backend - start_in > RUN_BUDGET ||
		    r->bytes_to_client - start_out > RUN_BUDGET) {
			if (up == STEP_PROGRESS || down == STEP_PROGRESS)
				*wants |= RELAY_WANT_AGAIN;
			break;
		}
	} while (up == STEP_PROGRESS || down == STEP_PROGRESS);

	if ((r->state & (BACKEND_SHUT | CLIENT_SHUT)) == (BACKEND_SHUT | CLIENT_SHUT) &&
	    r->to_backend.data == NULL && r->to_client.data == NULL) {
		*wants = 0;
		return RELAY_FINISHED;
	}
	return RELAY_OPEN;
}
