/*
 * crl: the CRLs of one listener (struct crl_set, in its SSL_CTX's ex_data)
 * and the verify callback that applies them.
 *
 * OpenSSL checks the CRLs itself once X509_V_FLAG_CRL_CHECK is set on the
 * context's X509_STORE.  What it does by default with a CRL past its
 * nextUpdate is to fail every verification that needs it: one CRL that
 * was not refreshed in time would lock out the whole fleet.  The callback
 * lets exactly that error pass, so the expired CRL goes on revoking what
 * it lists, and says so in a warning and in the metrics; every other
 * verification error stands.  Revocation must never turn into "refuse
 * every device" nor into "accept every device".
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "asn1_time.h"
#include "crl.h"
#include "log.h"

/* What crl_load() read, owned by the SSL_CTX and freed with it. */
struct crl_set {
	char *listener;			/* for log lines */
	char *file;
	STACK_OF(X509_CRL) *crls;	/* each signature verified at load */
	time_t next_update;		/* the earliest; 0: none has one */
	int chain;			/* crl_check = "chain": the CAs are checked too */
	atomic_int warned;		/* the expired-CRL warning of this load is out */
};

#define CRL_CHAIN_MAX 10		/* CAs above a device looked up on resumption */

static int ctx_index = -1, ssl_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void
set_free(struct crl_set *set)
{
	if (set == NULL)
		return;
	sk_X509_CRL_pop_free(set->crls, X509_CRL_free);
	free(set->listener);
	free(set->file);
	free(set);
}

static void
ctx_set_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	set_free(ptr);
}

/* The revoked certificate the verify callback saw, kept for the log line. */
static void
ssl_cert_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	X509_free(ptr);
}

static void
alloc_indexes(void)
{
	ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ctx_set_free);
	ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, ssl_cert_free);
}

static int
indexes(void)
{
	return pthread_once(&index_once, alloc_indexes) == 0 && ctx_index >= 0 &&
	    ssl_index >= 0 ? 0 : -1;
}

static const char *
time_text(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)t);
	return buf;
}

/* Once per load: a CRL past its nextUpdate is still in force, and why. */
static void
warn_expired(struct crl_set *set, const X509_CRL *crl)
{
	char issuer[256], when[32];

	if (atomic_exchange(&set->warned, 1) != 0)
		return;
	log_warning("%s: crl %s: the CRL of %s is past its nextUpdate (%s); it still "
	    "revokes every certificate it lists: fetch a fresh CRL and reload", set->listener,
	    set->file, crl ? ssl_name_text(X509_CRL_get_issuer(crl), issuer, sizeof(issuer)) :
	    "a client CA", time_text(crl ? (time_t)asn1_time_seconds(X509_CRL_get0_nextUpdate(crl)) : 0, when,
	    sizeof(when)));
}

/*
 * The SSL_CTX verify callback: ${ok} as OpenSSL decided, except that a CRL
 * past its nextUpdate is accepted (see the top of the file).  A revoked
 * certificate is kept for crl_refusal(): after a failed verification the
 * session has no peer certificate to name.
 */
static int
verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct crl_set *set;
	X509 *cert;

	if (ok || ssl == NULL)
		return ok;
	switch (X509_STORE_CTX_get_error(xs)) {
	case X509_V_ERR_CRL_HAS_EXPIRED:
		if ((set = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index)) == NULL)
			return 0;
		warn_expired(set, X509_STORE_CTX_get0_current_crl(xs));
		return 1;
	case X509_V_ERR_CERT_REVOKED:
		if ((cert = X509_STORE_CTX_get_current_cert(xs)) != NULL &&
		    X509_up_ref(cert) == 1) {
			X509_free(SSL_get_ex_data(ssl, ssl_index));
			if (SSL_set_ex_data(ssl, ssl_index, cert) != 1)
				X509_free(cert);
		}
		return 0;
	}
	return 0;
}

/* Every CRL of ${set}->file into ${set}->crls; -1 with the reason in ${why}. */
static int
read_crls(struct crl_set *set, char *why, size_t len)
{
	X509_CRL *crl;
	unsigned long e;
	char reasons[256];
	BIO *in;
	int n;

	if ((in = BIO_new_file(set->file, "r")) == NULL) {
		snprintf(why, len, "cannot open the file (%s)",
		    ssl_errors_drain(reasons, sizeof(reasons)));
		return -1;
	}
	ERR_clear_error();
	while ((crl = PEM_read_bio_X509_CRL(in, NULL, NULL, NULL)) != NULL) {
		if (sk_X509_CRL_push(set->crls, crl) == 0) {
			X509_CRL_free(crl);
			snprintf(why, len, "out of memory");
			BIO_free(in);
			return -1;
		}
	}
	BIO_free(in);
	/* The end of the file shows as "no start line" after the last CRL. */
	e = ERR_peek_last_error();
	n = sk_X509_CRL_num(set->crls);
	if (n > 0 && ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
		ERR_clear_error();
		return 0;
	}
	if (n == 0 && ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
		snprintf(why, len, "no CRL in the file (PEM, \"-----BEGIN X509 CRL-----\")");
	else
		snprintf(why, len, "CRL number %d of the file does not parse (%s)", n + 1,
		    ssl_errors_drain(reasons, sizeof(reasons)));
	ERR_clear_error();
	return -1;
}

/* The CA certificate of ${store} whose name and key ${crl} bears; NULL if none. */
static X509 *
crl_signer(X509_STORE *store, X509_CRL *crl)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
	X509 *ca;
	int i;

	for (i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
		if (ca != NULL && X509_NAME_cmp(X509_get_subject_name(ca),
		    X509_CRL_get_issuer(crl)) == 0 &&
		    X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1)
			return ca;
	}
	ERR_clear_error();
	return NULL;
}

/*
 * Check each CRL of ${set} and add it to ${store}: signed by a CA of the
 * set, and already in force (a thisUpdate ahead of our clock would make
 * OpenSSL refuse every device until then).  A CRL past its nextUpdate is
 * kept, with the warning.
 */
static int
add_crls(struct crl_set *set, X509_STORE *store, const struct config_where *w,
    struct config_errors *errs)
{
	ASN1_INTEGER *zero = ASN1_INTEGER_new();
	X509_REVOKED *rev;
	X509_CRL *crl;
	char issuer[256], when[32];
	time_t now = time(NULL), next;
	int i, rc = 0;

	for (i = 0; i < sk_X509_CRL_num(set->crls); i++) {
		crl = sk_X509_CRL_value(set->crls, i);
		ssl_name_text(X509_CRL_get_issuer(crl), issuer, sizeof(issuer));
		if (crl_signer(store, crl) == NULL) {
			config_errors_add(errs, w->file, w->line, "crl", "the CRL of %s is not "
			    "signed by a CA of client_ca (each CRL must come from a CA in "
			    "client_ca)", issuer);
			rc = -1;
			continue;
		}
		if ((time_t)asn1_time_seconds(X509_CRL_get0_lastUpdate(crl)) > now) {
			config_errors_add(errs, w->file, w->line, "crl", "the CRL of %s is not "
			    "valid before %s, and this host's clock is behind that (check the "
			    "clock, or use the CA's previous CRL)", issuer,
			    time_text((time_t)asn1_time_seconds(X509_CRL_get0_lastUpdate(crl)), when,
			    sizeof(when)));
			rc = -1;
			continue;
		}
		next = (time_t)asn1_time_seconds(X509_CRL_get0_nextUpdate(crl));
		if (next != 0 && (set->next_update == 0 || next < set->next_update))
			set->next_update = next;
		if (next != 0 && next < now)
			warn_expired(set, crl);
		/* Sorted now, so that lookups on the workers only read it. */
		if (zero != NULL)
			X509_CRL_get0_by_serial(crl, &rev, zero);
		if (X509_STORE_add_crl(store, crl) != 1) {
			config_errors_add(errs, w->file, w->line, "crl", "cannot add the CRL "
			    "of %s to the client CA store", issuer);
			rc = -1;
		}
	}
	ASN1_INTEGER_free(zero);
	return rc;
}

/*
 * The CAs of ${store} without a CRL of theirs.  OpenSSL cannot check a
 * certificate whose issuer has no CRL (X509_V_ERR_UNABLE_TO_GET_CRL) and
 * refuses it, so with "chain", where every CA of a chain is checked too,
 * a missing CRL would refuse every device under that CA: an error.  With
 * "leaf" only the devices that CA issues itself are refused (a root that
 * issues only intermediates needs no CRL): a warning names it.
 */
static int
check_coverage(struct crl_set *set, X509_STORE *store, const struct listener_settings *ls,
    struct config_errors *errs)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
	char subject[256];
	X509 *ca;
	int i, j, covered, rc = 0;

	for (i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		if ((ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i))) == NULL)
			continue;
		covered = 0;
		for (j = 0; j < sk_X509_CRL_num(set->crls) && !covered; j++)
			covered = X509_NAME_cmp(X509_get_subject_name(ca),
			    X509_CRL_get_issuer(sk_X509_CRL_value(set->crls, j))) == 0;
		if (covered)
			continue;
		ssl_name_text(X509_get_subject_name(ca), subject, sizeof(subject));
		if (ls->crl_check == CRL_CHECK_CHAIN) {
			config_errors_add(errs, ls->crl_where.file, ls->crl_where.line, "crl",
			    "no CRL of client CA %s: with crl_check = \"chain\" every "
			    "certificate under it would be refused (add its CRL, or use "
			    "crl_check = \"leaf\")", subject);
			rc = -1;
		} else
			log_warning("%s: crl %s: no CRL of client CA %s: devices whose "
			    "certificate it issued are refused", ls->name, ls->crl, subject);
	}
	return rc;
}

int
crl_load(SSL_CTX *ctx, const struct listener_settings *ls, struct config_errors *errs)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	const struct config_where *w = &ls->crl_where;
	struct crl_set *set;
	char why[512];

	if (ls->crl == NULL)
		return 0;
	if (indexes() != 0 || (set = calloc(1, sizeof(*set))) == NULL) {
		config_errors_add(errs, w->file, w->line, "crl", "out of memory");
		return -1;
	}
	atomic_init(&set->warned, 0);
	set->chain = ls->crl_check == CRL_CHECK_CHAIN;
	if ((set->listener = strdup(ls->name)) == NULL ||
	    (set->file = strdup(ls->crl)) == NULL ||
	    (set->crls = sk_X509_CRL_new_null()) == NULL)
		goto err1;
	if (read_crls(set, why, sizeof(why)) != 0) {
		config_errors_add(errs, w->file, w->line, "crl", "%s", why);
		goto err2;
	}
	if (add_crls(set, store, w, errs) != 0 || check_coverage(set, store, ls, errs) != 0)
		goto err2;
	if (X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK |
	    (ls->crl_check == CRL_CHECK_CHAIN ? X509_V_FLAG_CRL_CHECK_ALL : 0)) != 1 ||
	    SSL_CTX_set_ex_data(ctx, ctx_index, set) != 1)
		goto err1;
	/* The context owns ${set} now. */
	SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), verify_cb);
	return 0;

err1:
	config_errors_add(errs, w->file, w->line, "crl", "out of memory");
err2:
	set_free(set);
	return -1;
}

/* Does a CRL of ${set} list ${cert}? */
static int
listed(const struct crl_set *set, const X509 *cert)
{
	const X509_NAME *issuer = X509_get_issuer_name(cert);
	X509_REVOKED *rev;
	X509_CRL *crl;
	int i;

	for (i = 0; i < sk_X509_CRL_num(set->crls); i++) {
		crl = sk_X509_CRL_value(set->crls, i);
		/* 2 is "removeFromCRL", which only a delta CRL says: not revoked. */
		if (X509_NAME_cmp(X509_CRL_get_issuer(crl), issuer) == 0 &&
		    X509_CRL_get0_by_serial(crl, &rev, X509_get0_serialNumber(cert)) == 1)
			return 1;
	}
	return 0;
}

/*
 * With "chain", the CAs above ${leaf} too, as far as the listener's store
 * holds them: a session carries the device's certificate but not the
 * intermediates it sent, so those are found again among the client CAs.
 */
static int
chain_listed(SSL_CTX *ctx, const struct crl_set *set, X509 *leaf)
{
	X509_STORE_CTX *sctx = X509_STORE_CTX_new();
	X509 *cert = leaf, *issuer = NULL;
	int depth, revoked = 0;

	if (sctx == NULL || X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(ctx), leaf,
	    NULL) != 1)
		goto done;
	for (depth = 0; depth < CRL_CHAIN_MAX && !revoked; depth++) {
		if (X509_STORE_CTX_get1_issuer(&issuer, sctx, cert) != 1)
			break;
		revoked = listed(set, issuer);
		if (cert != leaf)
			X509_free(cert);
		cert = issuer;
		/* A self-signed root ends the chain. */
		if (X509_check_issued(cert, cert) == X509_V_OK)
			break;
	}
	if (cert != leaf)
		X509_free(cert);
done:
	X509_STORE_CTX_free(sctx);
	return revoked;
}

int
crl_is_revoked(SSL_CTX *ctx, X509 *cert)
{
	struct crl_set *set;

	if (indexes() != 0 || (set = SSL_CTX_get_ex_data(ctx, ctx_index)) == NULL)
		return 0;
	return listed(set, cert) || (set->chain && chain_listed(ctx, set, cert));
}

time_t
crl_next_update(SSL_CTX *ctx)
{
	struct crl_set *set;

	if (indexes() != 0 || (set = SSL_CTX_get_ex_data(ctx, ctx_index)) == NULL)
		return 0;
	return set->next_update;
}

int
crl_refusal(const SSL *ssl, char *buf, size_t len)
{
	char subject[256], *hex = NULL;
	BIGNUM *bn;
	X509 *cert;

	if (indexes() != 0 || SSL_get_verify_result(ssl) != X509_V_ERR_CERT_REVOKED ||
	    (cert = SSL_get_ex_data(ssl, ssl_index)) == NULL)
		return 0;
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL)) != NULL)
		hex = BN_bn2hex(bn);
	snprintf(buf, len, "subject %s, serial %s",
	    ssl_name_text(X509_get_subject_name(cert), subject, sizeof(subject)),
	    hex ? hex : "(unreadable)");
	OPENSSL_free(hex);
	BN_free(bn);
	return 1;
}
