/*
 * alpn: the application protocols a listener offers (ALPN, RFC 7301), in
 * the server's order of preference, and the refusal of a client that
 * offers none of them when alpn_required is set.
 */
#ifndef TLSPROXY_ALPN_H
#define TLSPROXY_ALPN_H

#include <openssl/ssl.h>

#include "config.h"

/**
 * alpn_install(ctx, ls): offer listener ${ls}'s alpn protocols on ${ctx}
 * (nothing when it has none).  0, or -1 when memory runs out.
 */
int alpn_install(SSL_CTX *ctx, const struct listener_settings *ls);

/**
 * alpn_client_hello(ssl, alert): from the client hello callback: refuse a
 * client that sends no ALPN extension at all where one is required (the
 * selection callback is not called then).  0, or -1 with ${*alert} set.
 */
int alpn_client_hello(SSL *ssl, int *alert);

#endif
