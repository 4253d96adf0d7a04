/*
 * session_check: which sessions may resume on a listener.  A resumed
 * session skips certificate verification, so it resumes only where the
 * policy it was authenticated under still holds: the same listener policy
 * (its fingerprint is the session ID context), a client certificate that
 * has not expired, and a full handshake no older than max_session_age.
 * One decision, session_check(), serves tickets and session IDs alike.
 */
#ifndef TLSPROXY_SESSION_CHECK_H
#define TLSPROXY_SESSION_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config.h"

#define SESSION_FINGERPRINT_LEN 32	/* SHA-256; also the session ID context */
#define SESSION_APPDATA_VERSION 1
#define SESSION_APPDATA_LEN 9		/* version, be64 time of the full handshake */

/*
 * What session_check() decided.  A new reason goes before
 * SESSION_VERDICT_MAX, with its counter in stats.h and its entry in
 * session_check.c's table.
 */
enum session_verdict {
	SESSION_RESUME = 0,
	SESSION_REFUSED_POLICY,		/* made under another listener policy */
	SESSION_REFUSED_CERT_EXPIRED,	/* the client certificate's notAfter has passed */
	SESSION_REFUSED_TOO_OLD,	/* its full handshake is older than max_session_age */
	SESSION_REFUSED_REVOKED,	/* the client certificate is on a CRL now loaded */
	SESSION_VERDICT_MAX
};

/**
 * session_fingerprint(name, verify_client, cas, names, nnames, out): the
 * policy fingerprint of a listener named ${name} that verifies clients as
 * ${verify_client} (enum verify_client) against the CA certificates
 * ${cas} (any order; NULL or empty for none), serving the connection with
 * the certificates for the ${nnames} server names ${names} (any order and
 * case).  0, or -1 if a certificate cannot be encoded or hashing fails.
 */
int session_fingerprint(const char *name, int verify_client, STACK_OF(X509) *cas,
    char *const *names, size_t nnames, unsigned char out[SESSION_FINGERPRINT_LEN]);

/** session_appdata_encode(auth_time, out): ${auth_time} as ticket appdata; its length. */
size_t session_appdata_encode(int64_t auth_time, unsigned char out[SESSION_APPDATA_LEN]);

/**
 * session_appdata_decode(in, len, auth_time): the time of the full
 * handshake from ticket appdata ${in}; 0, or -1 for another version,
 * another length or none.
 */
int session_appdata_decode(const void *in, size_t len, int64_t *auth_time);

/**
 * session_verdict(same_policy, auth_time, not_after, now, max_age): the
 * rules, in order: a session of another policy, one whose certificate
 * expired at ${not_after} (INT64_MAX without a certificate), then one whose
 * full handshake at ${auth_time} is more than ${max_age} seconds before
 * ${now}, is refused.
 */
enum session_verdict session_verdict(int same_policy, int64_t auth_time, int64_t not_after,
    int64_t now, int64_t max_age);

/**
 * session_lifetime_cap(start, timeout, auth_time, not_after, max_age): the
 * timeout of a session that began at ${start}, at most ${timeout}, ending
 * no later than ${not_after} or ${auth_time} + ${max_age}; at least 1.
 */
int64_t session_lifetime_cap(int64_t start, int64_t timeout, int64_t auth_time,
    int64_t not_after, int64_t max_age);

/** session_time(sess): when ${sess} began, as Unix time. */
int64_t session_time(const SSL_SESSION *sess);

/** session_verdict_name(v): the reason's name in logs and metrics ("policy", ...). */
const char *session_verdict_name(enum session_verdict v);

/**
 * session_check_install(ctx, s, ls): bind ${ctx}'s sessions to listener
 * ${ls}'s policy (its client CAs must be loaded already): set the session
 * ID context to the fingerprint, keep max_session_age for the checks, and
 * put the time of the full handshake into every ticket.  0 or -1.
 */
int session_check_install(SSL_CTX *ctx, const struct settings *s,
    const struct listener_settings *ls);

/**
 * session_check_context(ctx, names, n, out): the fingerprint of ${ctx}'s
 * policy with the certificates for the ${n} server names ${names}: the
 * session ID context of connections served with them.  0, or -1.
 */
int session_check_context(const SSL_CTX *ctx, char *const *names, size_t n,
    unsigned char out[SESSION_FINGERPRINT_LEN]);

/**
 * session_check_set_default(ctx, context): connections of ${ctx} that
 * session_check_bind() does not bind are made and resume under
 * ${context} (SESSION_FINGERPRINT_LEN bytes, copied).  0, or -1.
 */
int session_check_set_default(SSL_CTX *ctx, const unsigned char *context);

/**
 * session_check_bind(ssl, context): ${ssl}'s sessions are made and may
 * resume under ${context} (SESSION_FINGERPRINT_LEN bytes that outlive
 * ${ssl}), from session_check_context().  Call it before the session is
 * looked up: from the client hello callback.  0, or -1.
 */
int session_check_bind(SSL *ssl, const unsigned char *context);

/**
 * session_check_fingerprint(ctx): ${ctx}'s default fingerprint (without
 * server names until session_check_set_default()), NULL if none was
 * installed.
 */
const unsigned char *session_check_fingerprint(const SSL_CTX *ctx);

/**
 * session_check(ssl, sess, now, via): may ${sess}, offered by ${ssl}'s
 * client through ${via} ("ticket", "session ID"), resume at ${now}?  A
 * refusal is counted and logged with the certificate's subject and serial.
 */
enum session_verdict session_check(SSL *ssl, SSL_SESSION *sess, int64_t now, const char *via);

/**
 * session_check_cap(ssl, sess): cap ${sess}'s timeout at its client
 * certificate's notAfter and at max_session_age after its full handshake.
 */
void session_check_cap(SSL *ssl, SSL_SESSION *sess);

/**
 * session_ticket_generated(ssl, arg): OpenSSL's generate-ticket callback:
 * the ticket carries the time of the full handshake (copied from the
 * resumed session, now after a full one) and a capped lifetime.  1, or 0
 * to fail the handshake.
 */
int session_ticket_generated(SSL *ssl, void *arg);

#endif
