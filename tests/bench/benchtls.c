/*
 * benchtls: the OpenSSL client set-up and close that tlsbench and stormgen
 * share.
 */
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "benchtls.h"

SSL_CTX *
benchtls_client_ctx(int version, uint64_t options, long mode, const char *ca,
    const char *ciphers, const char *suites, int (*on_new)(SSL *, SSL_SESSION *))
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, version);
	SSL_CTX_set_max_proto_version(ctx, version);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | options);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | mode);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, on_new);
	if ((ciphers != NULL && SSL_CTX_set_cipher_list(ctx, ciphers) != 1) ||
	    (suites != NULL && SSL_CTX_set_ciphersuites(ctx, suites) != 1)) {
		fprintf(stderr, "bad --ciphers or --ciphersuites\n");
		goto fail;
	}
	if (ca != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
			fprintf(stderr, "cannot load %s\n", ca);
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;

fail:
	ERR_print_errors_fp(stderr);
	SSL_CTX_free(ctx);
	return NULL;
}

void
benchtls_close(SSL *ssl, int fd, int rst)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (rst)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	/*
	 * OpenSSL makes the session of a connection freed without a
	 * close_notify unresumable; a client whose connection was cut (or
	 * that resets on purpose) keeps its session, so say the shutdown was
	 * sent.
	 */
	if (ssl != NULL && SSL_is_init_finished(ssl))
		SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN);
	SSL_free(ssl);
	close(fd);		/* also leaves any epoll set */
	ERR_clear_error();
}
