/*
 * sockbio: a socket BIO that holds small writes until the connection
 * flushes them, skips reads it knows would find nothing, and notices a
 * client that has gone.  See sockbio.h for why each is safe.
 *
 * OpenSSL asks for a whole buffer when read-ahead is on, so a short read
 * means the kernel had nothing more queued at that moment.  Without this,
 * every handshake flight and every relayed record ends with a read(2) that
 * returns EAGAIN.  OpenSSL also writes each record as soon as it is made;
 * holding them is what lets a handler's records leave in one send.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sockbio.h"

#define SOCKBIO_DRAINED	0x1	/* the last read emptied the socket */
#define SOCKBIO_EOF	0x2	/* a read returned 0 */
#define SOCKBIO_GONE	0x4	/* the client reset, or cannot be written to */

/*
 * Writes up to this size are held: handshake messages, tickets, alerts and
 * MQTT-sized records.  Bulk records (16 KiB) are not copied.
 */
#define HOLD_MAX 4096

static BIO_METHOD *method;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

static int
transient(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

static int
sockbio_read(BIO *bio, char *buf, int len)
{
	struct sockbio_state *st = BIO_get_data(bio);
	ssize_t n;

	BIO_clear_retry_flags(bio);
	if (st->flags & SOCKBIO_DRAINED) {
		BIO_set_retry_read(bio);
		return -1;
	}
	n = read(st->fd, buf, (size_t)len);
	if (n > 0 && n < len)
		st->flags |= SOCKBIO_DRAINED;
	else if (n == 0)
		st->flags |= SOCKBIO_EOF;
	else if (n < 0 && transient(errno)) {
		st->flags |= SOCKBIO_DRAINED;
		BIO_set_retry_read(bio);
	} else if (n < 0 && errno == ECONNRESET)
		st->flags |= SOCKBIO_GONE;
	return (int)n;
}

static void
held_free(struct sockbio_state *st)
{
	free(st->held);
	st->held = NULL;
	st->held_len = st->held_off = 0;
}

/* Keep ${len} bytes back; 0, or -1 when they do not fit. */
static int
hold(struct sockbio_state *st, const char *buf, size_t len)
{
	size_t left = (size_t)(st->held_len - st->held_off);

	if (left + len > HOLD_MAX)
		return -1;
	if (st->held == NULL && (st->held = malloc(HOLD_MAX)) == NULL)
		return -1;
	if (st->held_off > 0) {
		memmove(st->held, st->held + st->held_off, left);
		st->held_off = 0;
		st->held_len = (unsigned short)left;
	}
	memcpy(st->held + st->held_len, buf, len);
	st->held_len = (unsigned short)(st->held_len + len);
	return 0;
}

/*
 * Send what is held followed by ${buf} in one call.  Returns how much of
 * ${buf} went (0 when only held bytes did), or -1 with errno.
 */
static ssize_t
send_with_held(struct sockbio_state *st, const char *buf, size_t len)
{
	size_t left = st->held != NULL ? (size_t)(st->held_len - st->held_off) : 0;
	struct iovec iov[2] = {
		{ .iov_base = left > 0 ? st->held + st->held_off : NULL, .iov_len = left },
		{ .iov_base = (void *)buf, .iov_len = len },
	};
	struct msghdr msg = {
		.msg_iov = left > 0 ? iov : iov + 1,
		.msg_iovlen = left > 0 ? 2 : 1,
	};
	ssize_t n = sendmsg(st->fd, &msg, MSG_NOSIGNAL);

	if (n < 0) {
		if (errno == EPIPE || errno == ECONNRESET) {
			st->flags |= SOCKBIO_GONE;
			held_free(st);
		}
		return -1;
	}
	if ((size_t)n < left) {
		st->held_off = (unsigned short)(st->held_off + n);
		return 0;
	}
	if (left > 0)
		held_free(st);
	return n - (ssize_t)left;
}

static int
sockbio_write(BIO *bio, const char *buf, int len)
{
	struct sockbio_state *st = BIO_get_data(bio);
	ssize_t n;

	BIO_clear_retry_flags(bio);
	if (!(st->flags & SOCKBIO_GONE) && hold(st, buf, (size_t)len) == 0)
		return len;
	n = send_with_held(st, buf, (size_t)len);
	if (n > 0)
		return (int)n;
	if (n == 0 || transient(errno)) {
		BIO_set_retry_write(bio);
		return -1;
	}
	return -1;
}

int
sockbio_flush(struct sockbio_state *st)
{
	ssize_t n;

	if (st->held == NULL)
		return 1;
	n = send_with_held(st, NULL, 0);
	if (n >= 0)
		return st->held == NULL ? 1 : 0;
	if (transient(errno))
		return 0;
	held_free(st);
	st->flags |= SOCKBIO_GONE;
	return -1;
}

void
sockbio_release(struct sockbio_state *st)
{
	held_free(st);
}

static long
sockbio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	struct sockbio_state *st = BIO_get_data(bio);

	(void)num;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		return (st->flags & SOCKBIO_EOF) != 0;
	case BIO_C_GET_FD:
		if (ptr != NULL)
			*(int *)ptr = st->fd;
		return st->fd;
	default:
		return 0;
	}
}

static int
sockbio_create(BIO *bio)
{
	BIO_set_init(bio, 1);
	return 1;
}

static void
method_build(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
	    BIO_TYPE_DESCRIPTOR, "tlsproxy socket");

	if (m == NULL)
		return;
	if (BIO_meth_set_read(m, sockbio_read) != 1 ||
	    BIO_meth_set_write(m, sockbio_write) != 1 ||
	    BIO_meth_set_ctrl(m, sockbio_ctrl) != 1 ||
	    BIO_meth_set_create(m, sockbio_create) != 1) {
		BIO_meth_free(m);
		return;
	}
	method = m;
}

BIO *
sockbio_new(struct sockbio_state *st, int fd)
{
	BIO *bio;

	if (pthread_once(&method_once, method_build) != 0 || method == NULL)
		return NULL;
	if ((bio = BIO_new(method)) == NULL)
		return NULL;
	memset(st, 0, sizeof(*st));
	st->fd = fd;
	BIO_set_data(bio, st);
	return bio;
}

void
sockbio_readable(struct sockbio_state *st)
{
	st->flags &= (unsigned char)~SOCKBIO_DRAINED;
}

int
sockbio_peer_gone(const struct sockbio_state *st)
{
	return (st->flags & SOCKBIO_GONE) != 0;
}
