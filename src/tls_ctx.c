/*
 * tls_ctx: the TLS policy of a listener, expressed as an SSL_CTX: it puts
 * together the protocol range and ciphers, the certificates (cert_store),
 * client verification and CRLs (crl), sessions (session_check,
 * session_cache, ticket_keys) and ALPN (alpn).
 *
 * Defaults: TLS 1.2 and 1.3 only, ECDHE key exchange with AEAD ciphers,
 * X25519 first, no compression, no renegotiation, no 0-RTT.  The session
 * cache is never flushed from inside a handshake (NO_AUTO_CLEAR); the
 * server expires it from a timer instead, and a reload hands it on.
 */
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "alpn.h"
#include "cert_store.h"
#include "crl.h"
#include "log.h"
#include "session_cache.h"
#include "session_check.h"
#include "tls_ctx.h"

#define DEFAULT_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define DEFAULT_CIPHERSUITES \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define DEFAULT_GROUPS "X25519:P-256:P-384"

/*
 * Accept whatever name the client asks for.  Without a servername callback
 * OpenSSL 3.0 keeps no name in the session, and a resumed TLS 1.2
 * connection would report none (the PROXY header's AUTHORITY needs it).
 */
static int
accept_servername(SSL *ssl, int *alert, void *arg)
{
	return SSL_TLSEXT_ERR_OK;
}

/*
 * Every handshake starts here, before its session is looked up: the
 * certificate group (and with it the session ID context) is chosen by the
 * server name, and a client that offers no protocol where one is required
 * is refused.
 */
static int
on_client_hello(SSL *ssl, int *alert, void *arg)
{
	if (alpn_client_hello(ssl, alert) != 0 || cert_store_client_hello(ssl, alert) != 0)
		return SSL_CLIENT_HELLO_ERROR;
	return SSL_CLIENT_HELLO_SUCCESS;
}

/* Add an error naming ${where}, with OpenSSL's reasons appended. */
static void
ssl_config_error(struct config_errors *errs, const struct config_where *where,
    const char *setting, const char *what)
{
	char reasons[512];

	ssl_errors_drain(reasons, sizeof(reasons));
	config_errors_add(errs, where->file, where->line, setting, "%s (%s)", what, reasons);
}

static int
set_protocols(SSL_CTX *ctx, const struct listener_settings *ls)
{
	int min = (ls->protocols & PROTO_TLS12) ? TLS1_2_VERSION : TLS1_3_VERSION;
	int max = (ls->protocols & PROTO_TLS13) ? TLS1_3_VERSION : TLS1_2_VERSION;

	return SSL_CTX_set_min_proto_version(ctx, min) == 1 &&
	    SSL_CTX_set_max_proto_version(ctx, max) == 1 ? 0 : -1;
}

static int
set_ciphers(SSL_CTX *ctx, const struct listener_settings *ls, struct config_errors *errs)
{
	int rc = 0;

	if (SSL_CTX_set_cipher_list(ctx, ls->ciphers ? ls->ciphers : DEFAULT_CIPHERS) != 1) {
		ssl_config_error(errs, &ls->ciphers_where, "ciphers",
		    "no usable TLS 1.2 cipher in the list (an OpenSSL cipher string, see ciphers(1))");
		rc = -1;
	}
	if (SSL_CTX_set_ciphersuites(ctx,
	    ls->ciphersuites ? ls->ciphersuites : DEFAULT_CIPHERSUITES) != 1) {
		ssl_config_error(errs, &ls->ciphersuites_where, "ciphersuites",
		    "not a valid TLS 1.3 ciphersuite list (names such as TLS_AES_128_GCM_SHA256, separated by ':')");
		rc = -1;
	}
	if (SSL_CTX_set1_groups_list(ctx, DEFAULT_GROUPS) != 1) {
		ssl_config_error(errs, &ls->where, "listeners", "cannot set key exchange groups");
		rc = -1;
	}
	return rc;
}

static int
set_client_verification(SSL_CTX *ctx, const struct listener_settings *ls,
    struct config_errors *errs)
{
	STACK_OF(X509_NAME) *names;
	int mode = SSL_VERIFY_NONE;

	if (ls->client_ca == NULL)
		return 0;
	if (SSL_CTX_load_verify_locations(ctx, ls->client_ca, NULL) != 1) {
		ssl_config_error(errs, &ls->client_ca_where, "client_ca",
		    "cannot load the CA certificates (PEM)");
		return -1;
	}
	names = SSL_load_client_CA_file(ls->client_ca);
	if (names == NULL) {
		ssl_config_error(errs, &ls->client_ca_where, "client_ca",
		    "no CA certificate in the file (PEM)");
		return -1;
	}
	SSL_CTX_set_client_CA_list(ctx, names);	/* takes ownership */
	if (ls->verify_client == VERIFY_CLIENT_OPTIONAL)
		mode = SSL_VERIFY_PEER;
	else if (ls->verify_client == VERIFY_CLIENT_REQUIRE)
		mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	SSL_CTX_set_verify(ctx, mode, NULL);
	return 0;
}

/*
 * Sessions from one listener must never resume on another, nor under a
 * client-certificate policy other than the one they were authenticated
 * under; every node of a cluster with the same configuration must agree on
 * the context for tickets to move between them.  So the session ID context
 * is the policy fingerprint (session_check.c), and the session cache is
 * ours (session_cache.c), so that it can outlive a reload.
 */
static int
set_session_policy(SSL_CTX *ctx, const struct settings *s, const struct listener_settings *ls,
    struct ticket_keys *tk)
{
	if (session_check_install(ctx, s, ls) != 0)
		return -1;
	if (s->session_cache_size > 0) {
		if (session_cache_install(ctx, (size_t)s->session_cache_size) != 0)
			return -1;
	} else
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* Every ticket, stateless or stateful, carries its full handshake's time. */
	if (SSL_CTX_set_session_ticket_cb(ctx, session_ticket_generated, NULL, NULL) != 1)
		return -1;
	/* A session's lifetime: how long a ticket, or a cache entry, resumes. */
	SSL_CTX_set_timeout(ctx, (long)(s->tickets.mode == TICKETS_STATELESS ?
	    s->tickets.session_lifetime : s->session_cache_timeout));

	switch (s->tickets.mode) {
	case TICKETS_OFF:
		/* TLS 1.2 falls back to session IDs; TLS 1.3 gets no tickets. */
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
		break;
	case TICKETS_STATEFUL:
		/* With NO_TICKET, OpenSSL issues TLS 1.3 tickets that name a cache entry. */
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, (size_t)s->tickets.tls13_tickets);
		break;
	case TICKETS_STATELESS:
		if (tk == NULL || ticket_keys_install(tk, ctx) != 0)
			return -1;
		SSL_CTX_set_num_tickets(ctx, (size_t)s->tickets.tls13_tickets);
		break;
	}
	return 0;
}

SSL_CTX *
tls_ctx_new(const struct settings *s, const struct listener_settings *ls,
    struct ticket_keys *tk, struct config_errors *errs)
{
	SSL_CTX *ctx;
	int failed = 0;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		ssl_config_error(errs, &ls->where, "listeners", "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_ANTI_REPLAY |
	    SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_max_early_data(ctx, 0);
	SSL_CTX_set_tlsext_servername_callback(ctx, accept_servername);
	/* Our own loop drains SSL_read until WANT_READ, so read-ahead cannot
	 * strand buffered records; it halves the read(2) calls per record. */
	SSL_CTX_set_read_ahead(ctx, 1);

	if (set_protocols(ctx, ls) != 0) {
		ssl_config_error(errs, &ls->where, "protocols", "cannot set the protocol range");
		failed = 1;
	}
	if (set_ciphers(ctx, ls, errs) != 0)
		failed = 1;
	/* CRLs are checked against the client CAs: only once those loaded. */
	if (set_client_verification(ctx, ls, errs) != 0 || crl_load(ctx, ls, errs) != 0)
		failed = 1;
	if (set_session_policy(ctx, s, ls, tk) != 0) {
		ssl_config_error(errs, &ls->where, "listeners", "cannot set the session policy");
		failed = 1;
	}
	/* Each certificate group's session ID context extends the policy's. */
	if (cert_store_install(ctx, ls, (int64_t)time(NULL), errs) != 0)
		failed = 1;
	if (alpn_install(ctx, ls) != 0) {
		ssl_config_error(errs, &ls->where, "alpn", "cannot set the protocols");
		failed = 1;
	}
	SSL_CTX_set_client_hello_cb(ctx, on_client_hello, NULL);
	if (failed) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

void
tls_ctx_expire_sessions(SSL_CTX *ctx)
{
	struct session_cache *sc = session_cache_of(ctx);

	if (sc != NULL)
		session_cache_expire(sc, (int64_t)time(NULL));
}

void
tls_ctx_keep_sessions(SSL_CTX *ctx, SSL_CTX *old)
{
	session_cache_adopt(ctx, old);
}
