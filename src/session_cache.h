/*
 * session_cache: a listener's TLS session cache (TLS 1.2 session IDs,
 * TLS 1.3 stateful tickets), kept outside OpenSSL's SSL_CTX so that it
 * survives a reload: the new context adopts the old one's cache.  Every
 * session it hands back has passed session_check() under the context that
 * asks, so a reload that changes the listener's policy refuses the old
 * sessions instead of resuming them.
 */
#ifndef TLSPROXY_SESSION_CACHE_H
#define TLSPROXY_SESSION_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct session_cache;

/** session_cache_new(max): an empty cache of at most ${max} sessions (>= 1); NULL on failure. */
struct session_cache *session_cache_new(size_t max);

/** session_cache_unref(sc): drop a reference, freeing on the last; NULL is fine. */
void session_cache_unref(struct session_cache *sc);

/** session_cache_add(sc, sess): keep a reference to ${sess}, dropping the oldest when full. */
void session_cache_add(struct session_cache *sc, SSL_SESSION *sess);

/**
 * session_cache_get(sc, id, len, now): a new reference to the session
 * with ID ${id}, unless there is none or it has timed out at ${now}
 * (then it is dropped).
 */
SSL_SESSION *session_cache_get(struct session_cache *sc, const unsigned char *id, size_t len,
    int64_t now);

/** session_cache_remove(sc, id, len): drop the session with ID ${id}, if any. */
void session_cache_remove(struct session_cache *sc, const unsigned char *id, size_t len);

/** session_cache_expire(sc, now): drop every session that has timed out at ${now}. */
void session_cache_expire(struct session_cache *sc, int64_t now);

/** session_cache_count(sc): how many sessions ${sc} holds. */
size_t session_cache_count(struct session_cache *sc);

/**
 * session_cache_install(ctx, max): give ${ctx} a new cache of ${max}
 * sessions, consulted through session_check().  0 or -1.
 */
int session_cache_install(SSL_CTX *ctx, size_t max);

/**
 * session_cache_adopt(ctx, from): make ${ctx} use ${from}'s cache, bounded
 * by ${ctx}'s own size; nothing if either has none.
 */
void session_cache_adopt(SSL_CTX *ctx, SSL_CTX *from);

/** session_cache_of(ctx): ${ctx}'s cache, or NULL. */
struct session_cache *session_cache_of(SSL_CTX *ctx);

#endif
