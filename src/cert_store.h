/*
 * cert_store: a listener's certificates, and which of them a connection is
 * served with.
 *
 * Each entry of the certificates setting is loaded with its chain and key
 * and the server names it serves (its names setting, else its SAN DNS
 * names).  Entries with the same names form a group: the certificates of
 * one set of names, at most one per key type, among which OpenSSL picks
 * what the client supports.  The client's server name chooses the group
 * (exact names before wildcards); none, or no match, gets the first
 * entry's group, or a refusal with sni_strict.  Each group has its own
 * session ID context, so a session made under one certificate does not
 * resume under another.
 */
#ifndef TLSPROXY_CERT_STORE_H
#define TLSPROXY_CERT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "config.h"

struct cert_store;

/**
 * cert_store_install(ctx, ls, now, errs): load listener ${ls}'s
 * certificates into a store owned by ${ctx}, and install the first group
 * on ${ctx}.  The session policy (session_check_install) must be
 * installed first.  A certificate that expires within 14 days of ${now}
 * is logged as a warning.  0, or -1 with "FILE:LINE: setting: reason"
 * lines in ${errs}.
 */
int cert_store_install(SSL_CTX *ctx, const struct listener_settings *ls, int64_t now,
    struct config_errors *errs);

/** cert_store_of(ctx): ${ctx}'s store, NULL if none was installed. */
const struct cert_store *cert_store_of(const SSL_CTX *ctx);

/** cert_store_count(cs): how many certificates (entries) ${cs} holds. */
size_t cert_store_count(const struct cert_store *cs);

/** cert_store_certificate(cs, i): entry ${i}'s certificate, owned by ${cs}. */
X509 *cert_store_certificate(const struct cert_store *cs, size_t i);

/**
 * cert_store_client_hello(ssl, alert): from the client hello callback:
 * serve ${ssl} with the group its server name chooses, and bind its
 * sessions to that group.  0, or -1 with ${*alert} set to refuse it.
 */
int cert_store_client_hello(SSL *ssl, int *alert);

/**
 * cert_store_server_name(ssl, buf, len): the server name the client sent
 * in its ClientHello, from the client hello callback, into ${buf}; 0, or
 * -1 if it sent none (or one that is not a host name).
 */
int cert_store_server_name(SSL *ssl, char *buf, size_t len);

/**
 * cert_store_name_matches(pattern, name): does ${name} match ${pattern}, a
 * DNS name or "*.rest" (one label, RFC 6125), ignoring case?
 */
int cert_store_name_matches(const char *pattern, const char *name);

#endif
