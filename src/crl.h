/*
 * crl: certificate revocation lists for a listener's client certificates,
 * held in the X509_STORE of its SSL_CTX: loading and checking the file,
 * the verify callback's rule for a CRL past its nextUpdate, and the
 * lookups that the handshake log, the metrics and session resumption make.
 */
#ifndef TLSPROXY_CRL_H
#define TLSPROXY_CRL_H

#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>

#include "config.h"

/**
 * crl_load(ctx, ls, errs): read ${ls}->crl (PEM, one CRL or more) into the
 * X509_STORE of ${ctx}, which must already hold the client CA set and its
 * verify mode, and turn CRL checking on for the leaf or the whole chain
 * (${ls}->crl_check).  Every CRL must parse and be signed by a CA of the
 * client CA set; with "chain", every CA of the set needs a CRL.  A CRL past
 * its nextUpdate is logged as a warning (once per load) and kept.  Returns
 * 0 (at once when ${ls}->crl is NULL), or -1 with "FILE:LINE: crl: ..."
 * lines in ${errs}.
 */
int crl_load(SSL_CTX *ctx, const struct listener_settings *ls, struct config_errors *errs);

/**
 * crl_is_revoked(ctx, cert): 1 if a CRL loaded into ${ctx} by crl_load()
 * and issued by ${cert}'s issuer lists ${cert}'s serial number, or, with
 * crl_check "chain", lists a CA above ${cert} that ${ctx}'s client CAs
 * hold; 0 if none does (or ${ctx} has no CRLs).  Lookups by issuer name and
 * serial: no signature is verified (crl_load() did that) and no time is
 * checked (a CRL past its nextUpdate still revokes).  Cheap and
 * thread-safe, for every session resumption.
 */
int crl_is_revoked(SSL_CTX *ctx, X509 *cert);

/**
 * crl_next_update(ctx): the earliest nextUpdate among ${ctx}'s CRLs, in
 * seconds since the epoch; 0 when ${ctx} has no CRLs or none has one.
 */
time_t crl_next_update(SSL_CTX *ctx);

/**
 * crl_refusal(ssl, buf, len): if the handshake of ${ssl} failed because a
 * CRL revokes a certificate of the client's chain, "subject ..., serial
 * ..." of that certificate in ${buf} and 1; else 0.
 */
int crl_refusal(const SSL *ssl, char *buf, size_t len);

#endif
