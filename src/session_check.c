/*
 * session_check: owns the listener policy fingerprint (the session ID
 * context), the ticket appdata that carries the time of the full
 * handshake, and the one decision whether a session may resume.
 *
 * Fingerprint, version 2:
 *   SHA-256(0x02 || be32(len) name || verify_client ||
 *           be32(n) || (be32(len) DER)* of the client CA certificates, sorted ||
 *           be32(n) || (be32(len) name)* of the server names, lower case, sorted)
 * Sorted, so that the order of a file or a list does not matter.  The
 * server names are those of the certificate group the connection is
 * served with (cert_store.c): a session made under one certificate does
 * not resume under another, and a renewed certificate for the same names
 * keeps its sessions.  The first group's fingerprint is the context's
 * (session_check_set_default()); a connection served by another group is
 * bound to that group's by session_check_bind(), from the client hello
 * callback.  Only those pay for the binding (an ex_data slot, about 100
 * bytes per connection): most connections are the first group's.
 *
 * OpenSSL 3.0 compares the session ID context itself for every kind
 * (TLS 1.2 session IDs and tickets, TLS 1.3 stateless and stateful tickets:
 * check_tls_ctx's test_policy_binding fails only on the counter without
 * ours); session_check() compares it first, so that each refusal is counted
 * and logged like the others.  So no fingerprint is carried in the ticket.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/evp.h>

#include "asn1_time.h"
#include "crl.h"
#include "log.h"
#include "session_check.h"
#include "stats.h"

#define FINGERPRINT_VERSION 2

struct session_policy {
	EVP_MD_CTX *policy;		/* the digest up to the server names */
	unsigned char fingerprint[SESSION_FINGERPRINT_LEN];	/* of the default group */
	int64_t max_age;		/* seconds */
	char name[];			/* the listener's, for the log */
};

/* Each reason's counter. */
static const struct {
	const char *name;
	enum stat_counter counter;
} reasons[SESSION_VERDICT_MAX] = {
	[SESSION_RESUME] = { "resume", STAT_COUNTER_MAX },
	[SESSION_REFUSED_POLICY] = { "policy", STAT_TICKET_REJECTED_POLICY },
	[SESSION_REFUSED_CERT_EXPIRED] = { "cert_expired", STAT_TICKET_REJECTED_CERT_EXPIRED },
	[SESSION_REFUSED_TOO_OLD] = { "too_old", STAT_TICKET_REJECTED_TOO_OLD },
	[SESSION_REFUSED_REVOKED] = { "revoked", STAT_TICKET_REJECTED_REVOKED },
};

static int ctx_index = -1, ssl_index = -1, bound_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void
policy_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct session_policy *p = ptr;

	if (p != NULL)
		EVP_MD_CTX_free(p->policy);
	free(p);
}

static void
alloc_indexes(void)
{
	ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, policy_free);
	/* The accepted session's time of full handshake, for the next ticket. */
	ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	/* The fingerprint a connection's sessions are made and resumed under. */
	bound_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)(v & 0xff);
}

struct der {
	unsigned char *p;
	int len;
};

static int
der_cmp(const void *a, const void *b)
{
	const struct der *x = a, *y = b;
	int c = memcmp(x->p, y->p, (size_t)(x->len < y->len ? x->len : y->len));

	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

static int
digest_block(EVP_MD_CTX *md, const void *p, size_t len)
{
	unsigned char n[4];

	put_be32(n, (uint32_t)len);
	return EVP_DigestUpdate(md, n, 4) == 1 && EVP_DigestUpdate(md, p, len) == 1 ? 0 : -1;
}

/*
 * The digest of the policy part, ready for the names: what every
 * certificate group of one listener shares.  NULL on failure.
 */
static EVP_MD_CTX *
policy_digest_new(const char *name, int verify_client, STACK_OF(X509) *cas)
{
	int n = cas != NULL ? sk_X509_num(cas) : 0;
	unsigned char head[1] = { FINGERPRINT_VERSION }, vc = (unsigned char)verify_client;
	unsigned char count[4];
	struct der *ders;
	EVP_MD_CTX *md = NULL;
	int i, got = 0, ok = 0;

	if ((ders = calloc((size_t)n + 1, sizeof(*ders))) == NULL)
		return NULL;
	for (got = 0; got < n; got++)
		if ((ders[got].len = i2d_X509(sk_X509_value(cas, got), &ders[got].p)) <= 0)
			goto done;
	qsort(ders, (size_t)n, sizeof(*ders), der_cmp);
	put_be32(count, (uint32_t)n);
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, head, 1) != 1 ||
	    digest_block(md, name, strlen(name)) != 0 ||
	    EVP_DigestUpdate(md, &vc, 1) != 1 ||
	    EVP_DigestUpdate(md, count, 4) != 1)
		goto done;
	for (i = 0; i < n; i++)
		if (digest_block(md, ders[i].p, (size_t)ders[i].len) != 0)
			goto done;
	ok = 1;
done:
	for (i = 0; i < got; i++)
		OPENSSL_free(ders[i].p);
	free(ders);
	if (!ok) {
		EVP_MD_CTX_free(md);
		md = NULL;
	}
	return md;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcasecmp(*(char *const *)a, *(char *const *)b);
}

/* Finish a copy of ${policy} with the certificate group's ${names}. */
static int
digest_names(const EVP_MD_CTX *policy, char *const *names, size_t n,
    unsigned char out[SESSION_FINGERPRINT_LEN])
{
	unsigned char count[4];
	EVP_MD_CTX *md;
	char **sorted = NULL, lower[256];
	unsigned int len = 0;
	size_t i, j;
	int rc = -1;

	if ((md = EVP_MD_CTX_new()) == NULL || EVP_MD_CTX_copy_ex(md, policy) != 1 ||
	    (n > 0 && (sorted = malloc(n * sizeof(*sorted))) == NULL))
		goto done;
	if (n > 0) {
		memcpy(sorted, names, n * sizeof(*sorted));
		qsort(sorted, n, sizeof(*sorted), name_cmp);
	}
	put_be32(count, (uint32_t)n);
	if (EVP_DigestUpdate(md, count, 4) != 1)
		goto done;
	for (i = 0; i < n; i++) {
		for (j = 0; sorted[i][j] != '\0' && j < sizeof(lower); j++)
			lower[j] = (char)tolower((unsigned char)sorted[i][j]);
		if (digest_block(md, lower, j) != 0)
			goto done;
	}
	if (EVP_DigestFinal_ex(md, out, &len) == 1 && len == SESSION_FINGERPRINT_LEN)
		rc = 0;
done:
	free(sorted);
	EVP_MD_CTX_free(md);
	return rc;
}

int
session_fingerprint(const char *name, int verify_client, STACK_OF(X509) *cas,
    char *const *names, size_t nnames, unsigned char out[SESSION_FINGERPRINT_LEN])
{
	EVP_MD_CTX *policy = policy_digest_new(name, verify_client, cas);
	int rc = policy != NULL ? digest_names(policy, names, nnames, out) : -1;

	EVP_MD_CTX_free(policy);
	return rc;
}

size_t
session_appdata_encode(int64_t auth_time, unsigned char out[SESSION_APPDATA_LEN])
{
	uint64_t v = (uint64_t)auth_time;

	out[0] = SESSION_APPDATA_VERSION;
	for (int i = 8; i >= 1; i--, v >>= 8)
		out[i] = (unsigned char)(v & 0xff);
	return SESSION_APPDATA_LEN;
}

int
session_appdata_decode(const void *in, size_t len, int64_t *auth_time)
{
	const unsigned char *p = in;
	uint64_t v = 0;

	if (p == NULL || len != SESSION_APPDATA_LEN || p[0] != SESSION_APPDATA_VERSION)
		return -1;
	for (int i = 1; i <= 8; i++)
		v = (v << 8) | p[i];
	*auth_time = (int64_t)v;
	return 0;
}

/*
 * Times come from tickets, which a client may have kept for any length of
 * time or (with the keys) forged: arithmetic on them saturates instead of
 * overflowing.
 */
static int64_t
add_sat(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

static int64_t
sub_sat(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_sub_overflow(a, b, &r))
		return b < 0 ? INT64_MAX : INT64_MIN;
	return r;
}

enum session_verdict
session_verdict(int same_policy, int64_t auth_time, int64_t not_after, int64_t now,
    int64_t max_age)
{
	if (!same_policy)
		return SESSION_REFUSED_POLICY;
	if (now >= not_after)
		return SESSION_REFUSED_CERT_EXPIRED;
	/* A full handshake "in the future" (a node whose clock runs ahead)
	 * is no older than now. */
	if (now > auth_time && sub_sat(now, auth_time) > max_age)
		return SESSION_REFUSED_TOO_OLD;
	return SESSION_RESUME;
}

int64_t
session_lifetime_cap(int64_t start, int64_t timeout, int64_t auth_time, int64_t not_after,
    int64_t max_age)
{
	int64_t t = timeout;

	if (sub_sat(not_after, start) < t)
		t = sub_sat(not_after, start);
	if (sub_sat(add_sat(auth_time, max_age), start) < t)
		t = sub_sat(add_sat(auth_time, max_age), start);
	/* At least a second: OpenSSL 3.0 fails a TLS 1.3 handshake (internal
	 * error) whose new ticket has a timeout of 0.  Every resumption is
	 * checked again, so that second never resumes what the rules refuse. */
	return t > 1 ? t : 1;
}

int64_t
session_time(const SSL_SESSION *sess)
{
#ifdef HAVE_SSL_SESSION_GET_TIME_EX
	return (int64_t)SSL_SESSION_get_time_ex(sess);
#else
	return (int64_t)SSL_SESSION_get_time(sess);
#endif
}

const char *
session_verdict_name(enum session_verdict v)
{
	return v >= 0 && v < SESSION_VERDICT_MAX ? reasons[v].name : "?";
}

int
session_check_install(SSL_CTX *ctx, const struct settings *s,
    const struct listener_settings *ls)
{
	STACK_OF(X509) *cas = NULL;
	struct session_policy *p;
	size_t namelen = strlen(ls->name);

	pthread_once(&index_once, alloc_indexes);
	if (ctx_index < 0 || ssl_index < 0 ||
	    (p = calloc(1, sizeof(*p) + namelen + 1)) == NULL)
		return -1;
	memcpy(p->name, ls->name, namelen + 1);
	p->max_age = s->tickets.max_session_age;
	/* Certificates only: the store may hold CRLs too. */
	if (ls->client_ca != NULL && (cas = X509_STORE_get1_all_certs(
	    SSL_CTX_get_cert_store(ctx))) == NULL)
		goto err;
	if ((p->policy = policy_digest_new(ls->name, ls->client_ca != NULL ?
	    (int)ls->verify_client : VERIFY_CLIENT_NONE, cas)) == NULL ||
	    digest_names(p->policy, NULL, 0, p->fingerprint) != 0 ||
	    SSL_CTX_set_session_id_context(ctx, p->fingerprint, SESSION_FINGERPRINT_LEN) != 1 ||
	    SSL_CTX_set_ex_data(ctx, ctx_index, p) != 1)
		goto err;
	sk_X509_pop_free(cas, X509_free);
	return 0;
err:
	sk_X509_pop_free(cas, X509_free);
	if (p != NULL)
		EVP_MD_CTX_free(p->policy);
	free(p);
	return -1;
}

int
session_check_context(const SSL_CTX *ctx, char *const *names, size_t n,
    unsigned char out[SESSION_FINGERPRINT_LEN])
{
	const struct session_policy *p;

	if (ctx_index < 0 || (p = SSL_CTX_get_ex_data(ctx, ctx_index)) == NULL)
		return -1;
	return digest_names(p->policy, names, n, out);
}

int
session_check_set_default(SSL_CTX *ctx, const unsigned char *context)
{
	struct session_policy *p;

	if (ctx_index < 0 || (p = SSL_CTX_get_ex_data(ctx, ctx_index)) == NULL ||
	    SSL_CTX_set_session_id_context(ctx, context, SESSION_FINGERPRINT_LEN) != 1)
		return -1;
	memcpy(p->fingerprint, context, SESSION_FINGERPRINT_LEN);
	return 0;
}

int
session_check_bind(SSL *ssl, const unsigned char *context)
{
	if (bound_index < 0 ||
	    SSL_set_session_id_context(ssl, context, SESSION_FINGERPRINT_LEN) != 1 ||
	    SSL_set_ex_data(ssl, bound_index, (void *)context) != 1)
		return -1;
	return 0;
}

const unsigned char *
session_check_fingerprint(const SSL_CTX *ctx)
{
	const struct session_policy *p;

	if (ctx_index < 0 || (p = SSL_CTX_get_ex_data(ctx, ctx_index)) == NULL)
		return NULL;
	return p->fingerprint;
}

/* The time of the full handshake in ${sess}'s appdata: 0, or -1 if none. */
static int
appdata_of(const SSL_SESSION *sess, int64_t *t)
{
	void *data = NULL;
	size_t len = 0;

	/* OpenSSL 3.0's getter takes a non-const session but does not change it. */
	if (SSL_SESSION_get0_ticket_appdata((SSL_SESSION *)sess, &data, &len) != 1)
		return -1;
	return session_appdata_decode(data, len, t);
}

/* The time of ${sess}'s full handshake: its appdata, else its own start
 * (a TLS 1.2 session ID session keeps the time it was made). */
static int64_t
auth_time_of(const SSL_SESSION *sess)
{
	int64_t t;

	return appdata_of(sess, &t) == 0 ? t : session_time(sess);
}

/* ${cert}'s notAfter as Unix time; 0 (long expired) if it cannot be read. */
static int64_t
not_after_of(X509 *cert)
{
	return cert == NULL ? INT64_MAX : asn1_time_seconds(X509_get0_notAfter(cert));
}

/* "subject "CN=...", serial 1A2B" of ${cert}, or "no client certificate". */
static void
describe_cert(X509 *cert, char *buf, size_t len)
{
	char subject[256] = "", *serial = NULL;
	BIGNUM *bn;
	BIO *bio;
	int n;

	if (cert == NULL) {
		snprintf(buf, len, "no client certificate");
		return;
	}
	if ((bio = BIO_new(BIO_s_mem())) != NULL &&
	    X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
		n = BIO_read(bio, subject, (int)sizeof(subject) - 1);
		subject[n > 0 ? n : 0] = '\0';
	}
	BIO_free(bio);
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL)) != NULL)
		serial = BN_bn2hex(bn);
	BN_free(bn);
	snprintf(buf, len, "client \"%s\", serial %s", subject, serial ? serial : "?");
	OPENSSL_free(serial);
}

enum session_verdict
session_check(SSL *ssl, SSL_SESSION *sess, int64_t now, const char *via)
{
	const struct session_policy *p = NULL;
	const unsigned char *sid_ctx, *want;
	unsigned int sid_len = 0;
	enum session_verdict v;
	X509 *peer;
	int64_t auth;
	char who[400];

	if (ctx_index >= 0)
		p = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index);
	if (p == NULL)
		return SESSION_RESUME;
	if ((want = SSL_get_ex_data(ssl, bound_index)) == NULL)
		want = p->fingerprint;
	sid_ctx = SSL_SESSION_get0_id_context(sess, &sid_len);
	peer = SSL_SESSION_get0_peer(sess);
	auth = auth_time_of(sess);
	v = session_verdict(sid_len == SESSION_FINGERPRINT_LEN &&
	    memcmp(sid_ctx, want, SESSION_FINGERPRINT_LEN) == 0,
	    auth, not_after_of(peer), now, p->max_age);
	/* A device revoked since its full handshake, by the CRLs loaded now:
	 * a lookup by issuer and serial, cheap enough for every resumption. */
	if (v == SESSION_RESUME && peer != NULL && crl_is_revoked(SSL_get_SSL_CTX(ssl), peer))
		v = SESSION_REFUSED_REVOKED;
	if (v == SESSION_RESUME) {
		SSL_set_ex_data(ssl, ssl_index, (void *)(intptr_t)auth);
		return v;
	}
	stats_add(reasons[v].counter, 1);
	if (log_enabled(LOG_LEVEL_INFO)) {
		describe_cert(peer, who, sizeof(who));
		log_info("%s: %s not resumed (%s), %s; full handshake", p->name, via,
		    reasons[v].name, who);
	}
	return v;
}

void
session_check_cap(SSL *ssl, SSL_SESSION *sess)
{
	const struct session_policy *p = NULL;
	int64_t start = session_time(sess);
	int64_t timeout = (int64_t)SSL_SESSION_get_timeout(sess), capped;

	if (ctx_index >= 0)
		p = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index);
	if (p == NULL)
		return;
	capped = session_lifetime_cap(start, timeout, auth_time_of(sess),
	    not_after_of(SSL_SESSION_get0_peer(sess)), p->max_age);
	if (capped < timeout)
		SSL_SESSION_set_timeout(sess, (long)capped);
}

int
session_ticket_generated(SSL *ssl, void *arg)
{
	SSL_SESSION *sess = SSL_get_session(ssl);
	unsigned char data[SESSION_APPDATA_LEN];
	int64_t auth = (int64_t)time(NULL), had;
	intptr_t accepted;

	if (sess == NULL)
		return 0;
	/* A resumption keeps the time its session_check() accepted: a chain
	 * of TLS 1.3 resumptions never starts its clock again. */
	if (SSL_session_reused(ssl)) {
		accepted = ssl_index >= 0 ? (intptr_t)SSL_get_ex_data(ssl, ssl_index) : 0;
		auth = accepted != 0 ? (int64_t)accepted : auth_time_of(sess);
	}
	/* A TLS 1.2 session ID resumption renews a ticket from a session that
	 * the cache shares between threads: write it only if it changes. */
	if ((appdata_of(sess, &had) != 0 || had != auth) &&
	    SSL_SESSION_set1_ticket_appdata(sess, data,
	    session_appdata_encode(auth, data)) != 1)
		return 0;
	session_check_cap(ssl, sess);
	return 1;
}
