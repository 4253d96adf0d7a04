/*
 * proxy_tls: the PROXY protocol header for one TLS connection: its
 * addresses and, for version 2, what the handshake established.
 */
#ifndef TLSPROXY_PROXY_TLS_H
#define TLSPROXY_PROXY_TLS_H

#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "config.h"

/**
 * proxy_tls_header(version, with_cert, ssl, fd, peer, buf, len): write the
 * header for the connection on ${fd} from ${peer} into ${buf}; returns its
 * length, or -1 if it cannot be built.
 */
int proxy_tls_header(enum proxy_protocol version, int with_cert, SSL *ssl, int fd,
    const struct sockaddr *peer, unsigned char *buf, size_t len);

#endif
