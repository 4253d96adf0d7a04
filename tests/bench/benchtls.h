#ifndef BENCHTLS_H
#define BENCHTLS_H

/*
 * What the benchmark clients (tlsbench, stormgen) do alike with OpenSSL:
 * a client context that hands every new session to a callback, and a
 * close that keeps the session of a cut connection resumable.
 */

#include <openssl/ssl.h>

/**
 * benchtls_client_ctx(version, options, mode, ca, ciphers, suites, on_new):
 * a client context for exactly TLS ${version} (TLS1_2_VERSION or
 * TLS1_3_VERSION) with SSL_OP_IGNORE_UNEXPECTED_EOF and ${options}, the
 * modes SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER and ${mode}, no internal
 * session store, ${on_new} called with every new session, the cipher list
 * ${ciphers} and TLS 1.3 ${suites} when not NULL, and the server verified
 * against ${ca} when not NULL (not at all otherwise).  NULL on error, which
 * it prints.
 */
SSL_CTX *benchtls_client_ctx(int version, uint64_t options, long mode, const char *ca,
    const char *ciphers, const char *suites, int (*on_new)(SSL *, SSL_SESSION *));

/**
 * benchtls_close(ssl, fd, rst): free ${ssl} (NULL: none) and close ${fd},
 * with a RST when ${rst}.  A connection that finished its handshake keeps
 * its session resumable, even without a close_notify.
 */
void benchtls_close(SSL *ssl, int fd, int rst);

#endif
