/*
 * ocsp: the stapled OCSP response of a server certificate (struct
 * ocsp_staple, in the certificate's X509 ex_data) and the status callback
 * that hands it out.
 *
 * A response is checked once, when it is loaded: a wrong, forged, revoked
 * or stale response must never reach a client, which would take it as
 * the CA's word (a client that requires a good staple then refuses us).
 * The checks are those of RFC 6960 section 3.2 for a response we are
 * about to vouch for; the signer is trusted only as the certificate's own
 * issuer or as a responder that issuer delegated, never through any other
 * root (OCSP_NOEXPLICIT).  After the load the only thing that can change
 * is the clock: the callback stops stapling at the response's nextUpdate,
 * with one warning, so a response left unrefreshed stops being sent
 * instead of being sent stale.
 *
 * The bytes stapled are the file's bytes, as the responder signed them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>

#include "asn1_time.h"
#include "log.h"
#include "ocsp.h"

struct ocsp_staple {
	char *path;			/* for the log line when it expires */
	unsigned char *der;		/* the response file's bytes */
	size_t len;
	int64_t next_update;		/* 0: the response has none */
	atomic_int expired_warned;
};

static int x509_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void
x509_staple_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	ocsp_staple_free(ptr);
}

static void
alloc_index(void)
{
	x509_index = X509_get_ex_new_index(0, NULL, NULL, NULL, x509_staple_free);
}

static int
staple_index(void)
{
	return pthread_once(&index_once, alloc_index) == 0 && x509_index >= 0 ? 0 : -1;
}

/* ${t} as "YYYY-MM-DD hh:mm:ssZ" in ${buf}; returns ${buf}. */
static const char *
when_text(const ASN1_GENERALIZEDTIME *t, char *buf, size_t len)
{
	BIO *mem = BIO_new(BIO_s_mem());
	int n = 0;

	if (mem != NULL && ASN1_TIME_print_ex(mem, t, ASN1_DTFLGS_ISO8601) == 1)
		n = BIO_read(mem, buf, (int)(len - 1));
	buf[n > 0 ? n : 0] = '\0';
	BIO_free(mem);
	return buf;
}

/*
 * The whole of file ${path} into ${*der} (malloc'd) and ${*len}; -1 with
 * the reason in ${why} when it cannot be read, is empty or is larger than
 * OCSP_STAPLE_MAX_BYTES.
 */
static int
read_file(const char *path, unsigned char **der, size_t *len, char *why, size_t whylen)
{
	unsigned char *buf;
	size_t n;
	FILE *f;
	int err;

	if ((f = fopen(path, "rb")) == NULL) {
		snprintf(why, whylen, "cannot open the file: %s", strerror(errno));
		return -1;
	}
	if ((buf = malloc(OCSP_STAPLE_MAX_BYTES + 1)) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto err0;
	}
	n = fread(buf, 1, OCSP_STAPLE_MAX_BYTES + 1, f);
	if ((err = ferror(f)) != 0)
		snprintf(why, whylen, "cannot read the file: %s", strerror(errno));
	else if (n == 0)
		snprintf(why, whylen, "the file is empty");
	else if (n > OCSP_STAPLE_MAX_BYTES)
		snprintf(why, whylen, "the file is larger than %d bytes: not an OCSP response",
		    OCSP_STAPLE_MAX_BYTES);
	if (err != 0 || n == 0 || n > OCSP_STAPLE_MAX_BYTES)
		goto err1;
	fclose(f);
	/* Kept as long as the certificate: no more than the file holds.  A
	 * copy, not realloc(), whose failure path GCC 14 cannot follow. */
	if ((*der = malloc(n)) == NULL) {
		*der = buf;
	} else {
		memcpy(*der, buf, n);
		free(buf);
	}
	*len = n;
	return 0;

err1:
	free(buf);
err0:
	fclose(f);
	return -1;
}

/* The certificate of ${chain} that issued ${cert}; NULL if none. */
static X509 *
find_issuer(X509 *cert, STACK_OF(X509) *chain)
{
	X509 *c;
	int i;

	for (i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
		c = sk_X509_value(chain, i);
		if (X509_check_issued(c, cert) == X509_V_OK)
			return c;
	}
	return NULL;
}

/*
 * The SingleResponse of ${bs} for ${cert} issued by ${issuer}, whatever
 * hash its CertID uses; NULL if none.
 */
static OCSP_SINGLERESP *
find_single(OCSP_BASICRESP *bs, X509 *cert, X509 *issuer)
{
	OCSP_SINGLERESP *single;
	ASN1_OBJECT *md_oid;
	OCSP_CERTID *want;
	const EVP_MD *md;
	int i, match;

	for (i = 0; i < OCSP_resp_count(bs); i++) {
		single = OCSP_resp_get0(bs, i);
		if (OCSP_id_get0_info(NULL, &md_oid, NULL, NULL,
		    (OCSP_CERTID *)OCSP_SINGLERESP_get0_id(single)) != 1 ||
		    (md = EVP_get_digestbyobj(md_oid)) == NULL ||
		    (want = OCSP_cert_to_id(md, cert, issuer)) == NULL)
			continue;
		match = OCSP_id_cmp(want, OCSP_SINGLERESP_get0_id(single)) == 0;
		OCSP_CERTID_free(want);
		if (match)
			return single;
	}
	ERR_clear_error();
	return NULL;
}

/*
 * 0 if ${bs} is signed by ${issuer}, or by a certificate that ${bs}
 * carries, issued by ${issuer} with the OCSP-signing EKU, valid at ${now};
 * else -1 with OpenSSL's reason in ${why}.  ${issuer} is the only trust
 * anchor: no root, and no explicit trust of a root for OCSP signing.
 */
static int
verify_signer(OCSP_BASICRESP *bs, X509 *issuer, int64_t now, char *why, size_t whylen)
{
	STACK_OF(X509) *certs = sk_X509_new_null();
	X509_STORE *store = X509_STORE_new();
	char reasons[256], subject[256];
	int rc = -1;

	if (certs == NULL || store == NULL || sk_X509_push(certs, issuer) == 0 ||
	    X509_STORE_add_cert(store, issuer) != 1) {
		snprintf(why, whylen, "out of memory");
		goto done;
	}
	X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store), (time_t)now);
	ERR_clear_error();
	if (OCSP_basic_verify(bs, certs, store, OCSP_NOEXPLICIT | OCSP_PARTIAL_CHAIN) == 1)
		rc = 0;
	else
		snprintf(why, whylen, "not signed by the certificate's issuer %s nor by an OCSP "
		    "responder it delegated (%s)",
		    ssl_name_text(X509_get_subject_name(issuer), subject, sizeof(subject)),
		    ssl_errors_drain(reasons, sizeof(reasons)));
done:
	ERR_clear_error();
	X509_STORE_free(store);
	sk_X509_free(certs);
	return rc;
}

/*
 * 0 if ${single} says good and is in force at ${now}; its nextUpdate (0:
 * none) in ${*next}.  Else -1 with the reason in ${why}.
 */
static int
check_single(OCSP_SINGLERESP *single, int64_t now, int64_t *next, char *why, size_t whylen)
{
	ASN1_GENERALIZEDTIME *revoked_at, *this_update, *next_update;
	char when[64];
	int status, reason;

	status = OCSP_single_get0_status(single, &reason, &revoked_at, &this_update,
	    &next_update);
	if (status == V_OCSP_CERTSTATUS_REVOKED) {
		snprintf(why, whylen, "the certificate is revoked (since %s, reason: %s)",
		    when_text(revoked_at, when, sizeof(when)),
		    reason >= 0 ? OCSP_crl_reason_str(reason) : "none given");
		return -1;
	}
	if (status != V_OCSP_CERTSTATUS_GOOD) {
		snprintf(why, whylen, "the certificate's status is %s, not good",
		    status == V_OCSP_CERTSTATUS_UNKNOWN ? "unknown" : "unreadable");
		return -1;
	}
	if (this_update == NULL || asn1_time_seconds(this_update) == 0) {
		snprintf(why, whylen, "the response has no readable thisUpdate");
		return -1;
	}
	if (asn1_time_seconds(this_update) > now + OCSP_STAPLE_SKEW) {
		snprintf(why, whylen, "its thisUpdate %s is ahead of this host's clock (check "
		    "the clock)", when_text(this_update, when, sizeof(when)));
		return -1;
	}
	*next = next_update != NULL ? asn1_time_seconds(next_update) : 0;
	if (next_update != NULL && *next <= now) {
		snprintf(why, whylen, "expired: its nextUpdate %s has passed (fetch a new "
		    "response)", when_text(next_update, when, sizeof(when)));
		return -1;
	}
	return 0;
}

/* The checks of ocsp_staple_load() on the response ${st}->der. */
static int
check_response(struct ocsp_staple *st, X509 *cert, STACK_OF(X509) *chain, int64_t now,
    char *why, size_t whylen)
{
	const unsigned char *p = st->der;
	OCSP_BASICRESP *bs = NULL;
	OCSP_SINGLERESP *single;
	OCSP_RESPONSE *resp;
	char reasons[256];
	X509 *issuer;
	int status, rc = -1;

	ERR_clear_error();
	resp = d2i_OCSP_RESPONSE(NULL, &p, (long)st->len);
	if (resp == NULL || p != st->der + st->len) {
		snprintf(why, whylen, "not a DER OCSP response (%s)", resp == NULL ?
		    ssl_errors_drain(reasons, sizeof(reasons)) : "data after its end");
		goto done;
	}
	if ((status = OCSP_response_status(resp)) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		snprintf(why, whylen, "the responder answered \"%s\", not successful",
		    OCSP_response_status_str(status));
		goto done;
	}
	if ((bs = OCSP_response_get1_basic(resp)) == NULL) {
		snprintf(why, whylen, "not a basic OCSP response");
		goto done;
	}
	if ((issuer = find_issuer(cert, chain)) == NULL) {
		snprintf(why, whylen, "the certificate's issuer is not in its file after the "
		    "leaf: the response cannot be checked without it");
		goto done;
	}
	if ((single = find_single(bs, cert, issuer)) == NULL) {
		snprintf(why, whylen, "it is not a response for this certificate (no "
		    "SingleResponse for its CertID)");
		goto done;
	}
	if (verify_signer(bs, issuer, now, why, whylen) != 0 ||
	    check_single(single, now, &st->next_update, why, whylen) != 0)
		goto done;
	rc = 0;
done:
	ERR_clear_error();
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	return rc;
}

struct ocsp_staple *
ocsp_staple_load(const char *path, X509 *cert, STACK_OF(X509) *chain, int64_t now,
    char *why, size_t whylen)
{
	struct ocsp_staple *st;

	if ((st = calloc(1, sizeof(*st))) == NULL || (st->path = strdup(path)) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto err0;
	}
	atomic_init(&st->expired_warned, 0);
	if (read_file(path, &st->der, &st->len, why, whylen) != 0 ||
	    check_response(st, cert, chain, now, why, whylen) != 0)
		goto err0;
	return st;

err0:
	ocsp_staple_free(st);
	return NULL;
}

int64_t
ocsp_staple_next_update(const struct ocsp_staple *staple)
{
	return staple != NULL ? staple->next_update : 0;
}

void
ocsp_staple_free(struct ocsp_staple *staple)
{
	if (staple == NULL)
		return;
	free(staple->der);
	free(staple->path);
	free(staple);
}

int
ocsp_staple_attach(X509 *cert, struct ocsp_staple *staple)
{
	struct ocsp_staple *old;

	if (staple_index() != 0) {
		ocsp_staple_free(staple);
		return -1;
	}
	old = X509_get_ex_data(cert, x509_index);
	if (X509_set_ex_data(cert, x509_index, staple) != 1) {
		ocsp_staple_free(staple);
		return -1;
	}
	ocsp_staple_free(old);
	return 0;
}

const struct ocsp_staple *
ocsp_staple_of(const X509 *cert)
{
	if (cert == NULL || staple_index() != 0)
		return NULL;
	return X509_get_ex_data(cert, x509_index);
}

/*
 * OpenSSL calls this only for a client that sent status_request, after
 * the certificate is chosen.  NOACK sends nothing: the handshake goes on
 * without a staple, which every client must accept from a server that
 * has none.
 */
static int
status_cb(SSL *ssl, void *arg)
{
	struct ocsp_staple *st;
	unsigned char *copy;
	time_t now;

	if (staple_index() != 0 ||
	    (st = X509_get_ex_data(SSL_get_certificate(ssl), x509_index)) == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	if (st->next_update != 0 && (now = time(NULL)) >= st->next_update) {
		if (atomic_exchange(&st->expired_warned, 1) == 0)
			log_warning("ocsp_response %s: its nextUpdate has passed (%lld s ago); "
			    "no longer stapled: fetch a new response and reload", st->path,
			    (long long)(now - st->next_update));
		return SSL_TLSEXT_ERR_NOACK;
	}
	/* OpenSSL frees what it is given, with OPENSSL_free(). */
	if ((copy = OPENSSL_memdup(st->der, st->len)) == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)st->len) != 1) {
		OPENSSL_free(copy);
		return SSL_TLSEXT_ERR_NOACK;
	}
	return SSL_TLSEXT_ERR_OK;
}

int
ocsp_stapling_install(SSL_CTX *ctx)
{
	if (staple_index() != 0 || SSL_CTX_set_tlsext_status_cb(ctx, status_cb) != 1)
		return -1;
	return 0;
}
