/*
 * client_hello: reads a ClientHello still in the kernel (recv with
 * MSG_PEEK) far enough to know that it cannot resume a session.
 *
 * full_handshake_rate makes full handshakes wait.  A handshake that
 * OpenSSL has begun holds its buffers (about 30 KiB more than an idle
 * connection) while it waits; one that has not been read at all holds
 * nothing but the connection.  So a ClientHello that offers nothing to
 * resume (no ticket, no PSK, no TLS 1.2 session ID) waits before OpenSSL
 * reads it, and everything else is left to OpenSSL, whose certificate
 * callback meters the handshakes that turn out full (a forged ticket, an
 * unknown session ID).  Pure parsing: no I/O, no allocation.
 */
#ifndef TLSPROXY_CLIENT_HELLO_H
#define TLSPROXY_CLIENT_HELLO_H

#include <stddef.h>

enum client_hello_kind {
	CLIENT_HELLO_PARTIAL,	/* the first record has not all arrived yet */
	CLIENT_HELLO_NEW,	/* a ClientHello that cannot resume: a full handshake */
	CLIENT_HELLO_RESUMING,	/* offers a ticket, a PSK or a TLS 1.2 session ID */
	CLIENT_HELLO_OTHER,	/* not one we can read here: OpenSSL decides */
};

/**
 * client_hello_kind(buf, len, tls13): what the bytes ${buf} at the start
 * of a connection hold.  ${tls13} says the listener allows TLS 1.3: then a
 * client that offers it negotiates it, and its legacy session ID (random
 * in TLS 1.3's compatibility mode) resumes nothing.  A ClientHello that
 * does not fit in its first record is OTHER.
 */
enum client_hello_kind client_hello_kind(const unsigned char *buf, size_t len, int tls13);

/**
 * client_hello_wanted(buf, len): how many bytes client_hello_kind() needs
 * for a PARTIAL ${buf}: the whole first record (5 while even its header is
 * short).  So a connection can sleep until they are there (SO_RCVLOWAT).
 */
size_t client_hello_wanted(const unsigned char *buf, size_t len);

#endif
