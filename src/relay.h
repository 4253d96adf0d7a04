/*
 * relay: moves plaintext between a TLS client and a TCP backend, both
 * non-blocking, until both directions have ended.
 *
 * It does I/O only; the caller owns the sockets, the SSL object and the
 * events.  After each relay_run() the caller watches exactly the fd
 * readiness the relay asked for.  A direction holds at most one scratch
 * buffer's worth of unsent data, so memory is bounded whatever the peers
 * do, and an idle relay holds no buffer at all.
 */
#ifndef TLSPROXY_RELAY_H
#define TLSPROXY_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

/* What the relay waits for before it can make progress again. */
#define RELAY_WANT_CLIENT_READ   0x1
#define RELAY_WANT_CLIENT_WRITE  0x2
#define RELAY_WANT_BACKEND_READ  0x4
#define RELAY_WANT_BACKEND_WRITE 0x8
#define RELAY_WANT_AGAIN         0x10	/* budget used up: run again soon */

enum relay_status {
	RELAY_OPEN,		/* still relaying; see the wants */
	RELAY_FINISHED,		/* both directions ended cleanly */
	RELAY_FAILED,		/* a reset or protocol error; see relay_error() */
};

struct relay_pending {
	unsigned char *data;	/* NULL when nothing is pending */
	uint32_t len;		/* at most a scratch buffer or a PROXY header */
	uint32_t off;
};

struct relay {
	SSL *ssl;
	int backend_fd;
	unsigned state;			/* RELAY_* flags in relay.c */
	uint32_t header_left;		/* bytes of a queued PROXY header still
					 * to send: not the client's, not counted */
	struct relay_pending to_backend;
	struct relay_pending to_client;
	uint64_t bytes_to_backend;
	uint64_t bytes_to_client;
	const char *error;		/* why, when RELAY_FAILED; valid until the
					 * thread's next relay_run() */
};

/** relay_init(r, ssl, backend_fd): start relaying; owns nothing. */
void relay_init(struct relay *r, SSL *ssl, int backend_fd);

/**
 * relay_run(r, scratch, len, wants): move as much as possible without
 * blocking, using ${scratch} (shared by every relay of a thread) for
 * reads.  Sets ${wants} to RELAY_WANT_* bits and returns the status.
 */
enum relay_status relay_run(struct relay *r, unsigned char *scratch, size_t len,
    unsigned *wants);

/**
 * relay_queue_to_backend(r, data, len): send ${data} to the backend before
 * anything the client sends (a PROXY protocol header); call before the
 * first relay_run().  These bytes are not counted in bytes_to_backend.
 * 0, or -1 when out of memory or when ${len} is over 4 GiB.
 */
int relay_queue_to_backend(struct relay *r, const unsigned char *data, size_t len);

/**
 * relay_backend_readable(r): the event loop reported the backend socket
 * readable.  Until then, after a read that emptied it, the relay does not
 * read the backend again (see relay.c).
 */
void relay_backend_readable(struct relay *r);

/** relay_release(r): free pending data (the relay is being torn down). */
void relay_release(struct relay *r);

#endif
