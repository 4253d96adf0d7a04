/*
 * sockbio: the BIO between OpenSSL and a client's socket.
 *
 * It does what BIO_s_socket does, with three differences that save
 * system calls and packets:
 *
 *  - small writes are held back until sockbio_flush(), so that what
 *    OpenSSL writes record by record while handling one event leaves in
 *    one send: a TLS 1.3 server's session tickets and the first answer
 *    from the backend share a packet.  The connection flushes before it
 *    waits for anything and before it closes.  A large write goes out at
 *    once, together with whatever is held (sendmsg).
 *
 *  - drained: the last read returned less than it asked for, so the
 *    socket was empty then.  Until the event loop reports the socket
 *    readable again, a read fails with "retry" without calling read(2).
 *    The caller always waits for readability after a retry, and epoll is
 *    level-triggered, so data that arrives meanwhile is never missed.
 *  - gone: a write failed with EPIPE or ECONNRESET, or a read with
 *    ECONNRESET: the client cannot hear anything more.
 *
 * The state lives in the connection that owns the socket; the BIO points
 * to it and closes nothing.
 */
#ifndef TLSPROXY_SOCKBIO_H
#define TLSPROXY_SOCKBIO_H

#include <openssl/bio.h>

struct sockbio_state {
	int fd;
	unsigned char flags;		/* SOCKBIO_* in sockbio.c */
	unsigned short held_off;	/* sent so far of what is held */
	unsigned short held_len;
	unsigned char *held;		/* output held back; NULL when none */
};

/**
 * sockbio_new(st, fd): a BIO for ${fd} keeping its state in ${st}, which
 * must outlive the BIO.  NULL when out of memory.
 */
BIO *sockbio_new(struct sockbio_state *st, int fd);

/**
 * sockbio_flush(st): send what is held.  1 when nothing is left, 0 when
 * some must wait for the socket to be writable, -1 when the client is gone
 * (what was held is dropped).
 */
int sockbio_flush(struct sockbio_state *st);

/** sockbio_release(st): drop what is held (the connection is closing). */
void sockbio_release(struct sockbio_state *st);

/** sockbio_readable(st): the event loop reported the socket readable. */
void sockbio_readable(struct sockbio_state *st);

/** sockbio_peer_gone(st): 1 once the client is known to have reset or left. */
int sockbio_peer_gone(const struct sockbio_state *st);

#endif
