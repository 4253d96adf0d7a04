/*
 * ocsp: stapled OCSP responses for the server's certificates: a DER
 * response file checked against its certificate and issuer at load, kept
 * on the certificate (X509 ex_data), and handed to each client that sends
 * status_request while it is in force.
 */
#ifndef TLSPROXY_OCSP_H
#define TLSPROXY_OCSP_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

/* How far ahead of our clock a response's thisUpdate may be. */
#define OCSP_STAPLE_SKEW 300

/* The largest response file read; real ones are a few KiB. */
#define OCSP_STAPLE_MAX_BYTES (1024 * 1024)

struct ocsp_staple;

/**
 * ocsp_staple_load(path, cert, chain, now, why, whylen): read the DER OCSP
 * response in file ${path} for server certificate ${cert}, whose issuer is
 * one of ${chain} (the certificates after the leaf in its file).  The
 * response is accepted only if its status is successful, it is a basic
 * response signed by that issuer or by a responder certificate it carries
 * that the issuer gave the OCSP-signing extended key usage, it has a
 * SingleResponse for ${cert}, that status is good, its thisUpdate is no
 * more than OCSP_STAPLE_SKEW seconds after ${now} (seconds since the
 * epoch) and its nextUpdate, if it has one, is after ${now}.  Returns the
 * staple, or NULL with a one-line reason (no trailing period) in ${why}.
 */
struct ocsp_staple *ocsp_staple_load(const char *path, X509 *cert, STACK_OF(X509) *chain,
    int64_t now, char *why, size_t whylen);

/**
 * ocsp_staple_next_update(staple): the nextUpdate of ${staple} in seconds
 * since the epoch; 0 if the response has none (it is stapled as long as
 * it is loaded) or ${staple} is NULL.
 */
int64_t ocsp_staple_next_update(const struct ocsp_staple *staple);

/** ocsp_staple_free(staple): free ${staple}; NULL is fine. */
void ocsp_staple_free(struct ocsp_staple *staple);

/**
 * ocsp_staple_attach(cert, staple): ${cert} owns ${staple} from now on
 * (freed with it), in place of any staple it had, which is freed; a NULL
 * ${staple} only drops that one.  Call it before a context holding ${cert}
 * serves connections: the workers read the staple without a lock.
 * Returns 0, or -1 (out of memory) with ${staple} freed.
 */
int ocsp_staple_attach(X509 *cert, struct ocsp_staple *staple);

/** ocsp_staple_of(cert): the staple attached to ${cert}, or NULL. */
const struct ocsp_staple *ocsp_staple_of(const X509 *cert);

/**
 * ocsp_stapling_install(ctx): staple, for each client of ${ctx} that asks
 * (status_request, TLS 1.2 and 1.3), the response attached to the
 * certificate chosen for the connection, while the real clock is before
 * its nextUpdate.  Clients that do not ask cost nothing.  Returns 0, or -1
 * if the callback cannot be set.
 */
int ocsp_stapling_install(SSL_CTX *ctx);

#endif
