/*
 * tls_ctx: build one listener's SSL_CTX from validated settings: protocol
 * range, cipher policy, certificate and key, client verification (with
 * the CRLs of crl.h), session cache and ticket policy.
 */
#ifndef TLSPROXY_TLS_CTX_H
#define TLSPROXY_TLS_CTX_H

#include <openssl/ssl.h>

#include "config.h"
#include "ticket_keys.h"

/**
 * tls_ctx_new(s, ls, tk, errs): a new SSL_CTX for listener ${ls}, or NULL
 * with "FILE:LINE: setting: reason" lines in ${errs}.  In stateless ticket
 * mode ${tk} encrypts the tickets; the context holds a reference to it.
 */
SSL_CTX *tls_ctx_new(const struct settings *s, const struct listener_settings *ls,
    struct ticket_keys *tk, struct config_errors *errs);

/** tls_ctx_expire_sessions(ctx): drop expired sessions from the ID cache. */
void tls_ctx_expire_sessions(SSL_CTX *ctx);

/**
 * tls_ctx_keep_sessions(ctx, old): after a reload, ${ctx} resumes from
 * ${old}'s session cache (bounded by ${ctx}'s session_cache.size); each
 * session still has to pass ${ctx}'s policy.
 */
void tls_ctx_keep_sessions(SSL_CTX *ctx, SSL_CTX *old);

#endif
