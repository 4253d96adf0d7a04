/*
 * cert_store: owns a listener's loaded certificates (leaf, chain, key and
 * names per entry), their grouping by names, and the choice by SNI.
 *
 * The first group is installed on the SSL_CTX itself, so a connection
 * served by it costs nothing more than reading its server name; another
 * group replaces the connection's certificates (references, not copies).
 * The groups are looked up in order, which is fine for the handful of
 * certificates a listener has.  Each certificate carries its stapled OCSP
 * response (ocsp.h), so whichever the connection is served with staples
 * its own.
 */
#define _GNU_SOURCE

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/tls1.h>
#include <openssl/x509v3.h>

#include "cert_store.h"
#include "config_get.h"
#include "config_listener.h"
#include "log.h"
#include "ocsp.h"
#include "session_check.h"

#define EXPIRY_WARNING_DAYS 14
#define SERVER_NAME_MAX 255

struct cert_entry {
	X509 *cert;
	EVP_PKEY *key;
	STACK_OF(X509) *chain;		/* the certificates after the leaf */
	char **names;			/* owned; what the entry serves */
	size_t nnames;
	size_t group;
};

struct cert_group {
	unsigned char context[SESSION_FINGERPRINT_LEN];	/* also its identity */
	size_t first;			/* its first entry: whose names it serves */
	size_t *entries;
	size_t nentries;
};

struct cert_store {
	struct cert_entry *entries;
	size_t nentries;
	struct cert_group *groups;
	size_t ngroups;
	int sni_strict;
};

static int store_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void
store_free(struct cert_store *cs)
{
	size_t i;

	if (cs == NULL)
		return;
	for (i = 0; i < cs->nentries; i++) {
		X509_free(cs->entries[i].cert);
		EVP_PKEY_free(cs->entries[i].key);
		sk_X509_pop_free(cs->entries[i].chain, X509_free);
		config_strings_free(cs->entries[i].names, cs->entries[i].nnames);
	}
	for (i = 0; i < cs->ngroups; i++)
		free(cs->groups[i].entries);
	free(cs->entries);
	free(cs->groups);
	free(cs);
}

static void
store_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	store_free(ptr);
}

static void
alloc_index(void)
{
	store_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, store_ex_free);
}

/* The setting ${member} of entry ${i}: "certificates[1].key", or "key" for the short form. */
static const char *
entry_setting(const struct listener_settings *ls, size_t i, const char *member, char *buf,
    size_t len)
{
	if (ls->certificates_listed)
		snprintf(buf, len, "certificates[%zu].%s", i, member);
	else
		snprintf(buf, len, "%s", member);
	return buf;
}

/*
 * Add an error naming ${where} and the setting ${member} of entry ${i},
 * with OpenSSL's reasons appended.
 */
static void
entry_error(struct config_errors *errs, const struct listener_settings *ls, size_t i,
    const struct config_where *where, const char *member, const char *what)
{
	char reasons[512], setting[64];

	ssl_errors_drain(reasons, sizeof(reasons));
	config_errors_add(errs, where->file, where->line,
	    entry_setting(ls, i, member, setting, sizeof(setting)), "%s (%s)", what, reasons);
}

/* Keys are never encrypted here: fail instead of asking on a terminal. */
static int
no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	return -1;
}

static int
load_chain(struct cert_entry *e, const struct listener_settings *ls, size_t i,
    struct config_errors *errs)
{
	const struct certificate_settings *c = &ls->certificates[i];
	X509 *x;
	BIO *in;
	int rc = -1;

	if ((in = BIO_new_file(c->cert, "r")) == NULL ||
	    (e->cert = PEM_read_bio_X509_AUX(in, NULL, no_passphrase, NULL)) == NULL) {
		entry_error(errs, ls, i, &c->cert_where, "cert",
		    "cannot load the certificate chain (PEM, leaf first)");
		goto done;
	}
	if ((e->chain = sk_X509_new_null()) == NULL)
		goto done;
	while ((x = PEM_read_bio_X509(in, NULL, no_passphrase, NULL)) != NULL) {
		if (sk_X509_push(e->chain, x) == 0) {
			X509_free(x);
			goto done;
		}
	}
	/* The end of the file is the only way out of the loop that is not an error. */
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
		entry_error(errs, ls, i, &c->cert_where, "cert",
		    "cannot load the certificate chain (PEM, leaf first)");
		goto done;
	}
	ERR_clear_error();
	rc = 0;
done:
	BIO_free(in);
	return rc;
}

/*
 * The key is checked against the leaf here: OpenSSL would refuse a key of
 * another certificate with nothing but "key values mismatch" to say why.
 */
static int
load_key(struct cert_entry *e, const struct listener_settings *ls, size_t i,
    struct config_errors *errs)
{
	const struct certificate_settings *c = &ls->certificates[i];
	BIO *in;

	if ((in = BIO_new_file(c->key, "r")) != NULL)
		e->key = PEM_read_bio_PrivateKey(in, NULL, no_passphrase, NULL);
	BIO_free(in);
	if (e->key == NULL) {
		entry_error(errs, ls, i, &c->key_where, "key",
		    "cannot load the private key (PEM, unencrypted)");
		return -1;
	}
	if (X509_check_private_key(e->cert, e->key) != 1) {
		entry_error(errs, ls, i, &c->key_where, "key",
		    "the private key does not match the certificate");
		return -1;
	}
	return 0;
}

/* The DNS names of ${cert}'s subjectAltName that are host names or wildcards. */
static int
san_dns_names(X509 *cert, char ***out, size_t *n)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	const GENERAL_NAME *gen;
	char **names = NULL;
	const char *text;
	int i, count = gens != NULL ? sk_GENERAL_NAME_num(gens) : 0, rc = -1;

	*out = NULL;
	*n = 0;
	if (count == 0) {
		rc = 0;
		goto done;
	}
	if ((names = calloc((size_t)count, sizeof(*names))) == NULL)
		goto done;
	for (i = 0; i < count; i++) {
		gen = sk_GENERAL_NAME_value(gens, i);
		if (gen->type != GEN_DNS)
			continue;
		text = (const char *)ASN1_STRING_get0_data(gen->d.dNSName);
		/* A name with a NUL inside, or not a host name, never matches. */
		if ((size_t)ASN1_STRING_length(gen->d.dNSName) != strlen(text) ||
		    config_check_dns_name(text) != NULL)
			continue;
		if ((names[*n] = strdup(text)) == NULL)
			goto done;
		(*n)++;
	}
	*out = names;
	names = NULL;
	rc = 0;
done:
	config_strings_free(names, *n);
	GENERAL_NAMES_free(gens);
	return rc;
}

static void
warn_if_expiring(const struct certificate_settings *c, X509 *cert, int64_t now)
{
	ASN1_TIME *at_now = ASN1_TIME_set(NULL, (time_t)now);
	int days = 0, secs = 0, ok;
	char when[64] = "?";
	BIO *b;
	int n;

	ok = at_now != NULL &&
	    ASN1_TIME_diff(&days, &secs, at_now, X509_get0_notAfter(cert)) == 1;
	ASN1_TIME_free(at_now);
	if (!ok)
		return;
	if ((b = BIO_new(BIO_s_mem())) != NULL &&
	    ASN1_TIME_print(b, X509_get0_notAfter(cert)) == 1 &&
	    (n = BIO_read(b, when, sizeof(when) - 1)) > 0)
		when[n] = '\0';
	BIO_free(b);
	if (days < 0 || (days == 0 && secs <= 0))
		log_warning("%s:%d: cert: %s has expired (notAfter %s); clients will refuse it",
		    c->cert_where.file, c->cert_where.line, c->cert, when);
	else if (days < EXPIRY_WARNING_DAYS)
		log_warning("%s:%d: cert: %s expires in %d day%s (notAfter %s)",
		    c->cert_where.file, c->cert_where.line, c->cert, days, days == 1 ? "" : "s",
		    when);
}

/*
 * Entry ${i}'s ocsp_response, checked (ocsp.h) and attached to its
 * certificate.  A response that is refused is a warning, never an error:
 * the certificate is served without a staple, and the start or reload
 * goes on (a client that needs a staple fails either way; every other
 * client must not).
 */
static void
load_staple(struct cert_entry *e, const struct listener_settings *ls, size_t i, int64_t now)
{
	const struct certificate_settings *c = &ls->certificates[i];
	const struct config_where *w = &c->ocsp_response_where;
	struct ocsp_staple *st;
	char why[512], setting[64];

	if (c->ocsp_response == NULL)
		return;
	entry_setting(ls, i, "ocsp_response", setting, sizeof(setting));
	if ((st = ocsp_staple_load(c->ocsp_response, e->cert, e->chain, now, why,
	    sizeof(why))) == NULL) {
		log_warning("%s:%d: %s: %s: %s; the certificate is served without a staple",
		    w->file, w->line, setting, c->ocsp_response, why);
		return;
	}
	if (ocsp_staple_attach(e->cert, st) != 0) {
		log_warning("%s:%d: %s: %s: out of memory; the certificate is served without a "
		    "staple", w->file, w->line, setting, c->ocsp_response);
		return;
	}
	log_debug("%s:%d: %s: %s: stapled, nextUpdate %lld", w->file, w->line, setting,
	    c->ocsp_response, (long long)ocsp_staple_next_update(st));
}

/*
 * A name the certificate is not valid for is served, as the operator
 * asked, but clients that check the name will refuse it: say so.
 */
static void
warn_if_not_covered(const struct certificate_settings *c, X509 *cert)
{
	size_t i;

	for (i = 0; i < c->nnames; i++)
		if (X509_check_host(cert, c->names[i], 0, 0, NULL) != 1)
			log_warning("%s:%d: names: the certificate %s is not valid for \"%s\"; "
			    "clients that check the server name will refuse it",
			    c->names_where.file, c->names_where.line, c->cert, c->names[i]);
}

static int
load_entry(struct cert_entry *e, const struct listener_settings *ls, size_t i, int64_t now,
    struct config_errors *errs)
{
	const struct certificate_settings *c = &ls->certificates[i];

	if (load_chain(e, ls, i, errs) != 0 || load_key(e, ls, i, errs) != 0)
		return -1;
	warn_if_expiring(c, e->cert, now);
	load_staple(e, ls, i, now);
	if (c->names != NULL) {
		if (config_strings_copy(c->names, c->nnames, &e->names) != 0)
			return -1;
		e->nnames = c->nnames;
		warn_if_not_covered(c, e->cert);
		return 0;
	}
	return san_dns_names(e->cert, &e->names, &e->nnames);
}

/* Do ${a} and ${b} serve a name in common (the first in ${*name}), or both none? */
static int
shares_name(const struct cert_entry *a, const struct cert_entry *b, const char **name)
{
	size_t i, j;

	if (a->nnames == 0 && b->nnames == 0) {
		*name = NULL;
		return 1;
	}

	for (i = 0; i < a->nnames; i++)
		for (j = 0; j < b->nnames; j++)
			if (strcasecmp(a->names[i], b->names[j]) == 0) {
				*name = a->names[i];
				return 1;
			}
	return 0;
}

/*
 * Two certificates of one key type for one name leave OpenSSL nothing to
 * choose by: the second would never be served for it.
 */
static int
check_conflicts(const struct cert_store *cs, const struct listener_settings *ls,
    struct config_errors *errs)
{
	const struct config_where *w;
	const char *name;
	size_t i, j;
	int rc = 0;

	for (j = 1; j < cs->nentries; j++) {
		for (i = 0; i < j; i++) {
			if (EVP_PKEY_get_base_id(cs->entries[i].key) !=
			    EVP_PKEY_get_base_id(cs->entries[j].key) ||
			    !shares_name(&cs->entries[i], &cs->entries[j], &name))
				continue;
			w = &ls->certificates[i].where;
			config_errors_add(errs, ls->certificates[j].where.file,
			    ls->certificates[j].where.line, "certificates",
			    "entry %zu serves %s%s%s with a %s key, as entry %zu at %s:%d does "
			    "(one certificate per name and key type)", j, name ? "\"" : "",
			    name ? name : "no server name", name ? "\"" : "",
			    EVP_PKEY_get0_type_name(cs->entries[j].key), i,
			    w->file ? w->file : "?", w->line);
			rc = -1;
			break;
		}
	}
	return rc;
}

/* Put each entry in the group of the entries with the same names. */
static int
form_groups(SSL_CTX *ctx, struct cert_store *cs, const struct listener_settings *ls,
    struct config_errors *errs)
{
	unsigned char context[SESSION_FINGERPRINT_LEN];
	struct cert_entry *e;
	struct cert_group *g;
	size_t i, k, *grown;

	if ((cs->groups = calloc(cs->nentries, sizeof(*cs->groups))) == NULL)
		return -1;
	for (i = 0; i < cs->nentries; i++) {
		e = &cs->entries[i];
		if (session_check_context(ctx, e->names, e->nnames, context) != 0)
			return -1;
		for (k = 0; k < cs->ngroups; k++)
			if (memcmp(cs->groups[k].context, context, sizeof(context)) == 0)
				break;
		g = &cs->groups[k];
		if (k == cs->ngroups) {
			memcpy(g->context, context, sizeof(context));
			g->first = i;
			cs->ngroups++;
		}
		if ((grown = realloc(g->entries, (g->nentries + 1) * sizeof(*grown))) == NULL)
			return -1;
		g->entries = grown;
		g->entries[g->nentries++] = i;
		e->group = k;
		if (e->nnames == 0 && k != 0) {
			config_errors_add(errs, ls->certificates[i].where.file,
			    ls->certificates[i].where.line, "certificates",
			    "entry %zu serves no server name (no names setting, and no DNS "
			    "name in its certificate), and without one only the first "
			    "entry's names are served: give it names", i);
			return -1;
		}
	}
	return 0;
}

static int
use_group_on_ctx(SSL_CTX *ctx, const struct cert_store *cs)
{
	const struct cert_group *g = &cs->groups[0];
	const struct cert_entry *e;
	size_t i;

	for (i = 0; i < g->nentries; i++) {
		e = &cs->entries[g->entries[i]];
		if (SSL_CTX_use_cert_and_key(ctx, e->cert, e->key, e->chain, 1) != 1)
			return -1;
	}
	return session_check_set_default(ctx, g->context);
}

int
cert_store_install(SSL_CTX *ctx, const struct listener_settings *ls, int64_t now,
    struct config_errors *errs)
{
	struct cert_store *cs;
	char reasons[512];
	size_t i;
	int failed = 0;

	pthread_once(&index_once, alloc_index);
	if (store_index < 0 || (cs = calloc(1, sizeof(*cs))) == NULL)
		goto oom;
	if ((cs->entries = calloc(ls->ncertificates, sizeof(*cs->entries))) == NULL) {
		free(cs);
		goto oom;
	}
	cs->nentries = ls->ncertificates;
	cs->sni_strict = ls->sni_strict;
	for (i = 0; i < cs->nentries; i++)
		if (load_entry(&cs->entries[i], ls, i, now, errs) != 0)
			failed = 1;
	if (failed || check_conflicts(cs, ls, errs) != 0) {
		store_free(cs);
		return -1;
	}
	if (form_groups(ctx, cs, ls, errs) != 0 || use_group_on_ctx(ctx, cs) != 0 ||
	    ocsp_stapling_install(ctx) != 0 || SSL_CTX_set_ex_data(ctx, store_index, cs) != 1) {
		store_free(cs);
		goto fail;
	}
	return 0;
oom:
	config_errors_add(errs, ls->where.file, ls->where.line, "certificates", "out of memory");
	return -1;
fail:
	config_errors_add(errs, ls->where.file, ls->where.line, "certificates",
	    "cannot install the certificates (%s)", ssl_errors_drain(reasons, sizeof(reasons)));
	return -1;
}

const struct cert_store *
cert_store_of(const SSL_CTX *ctx)
{
	return store_index >= 0 ? SSL_CTX_get_ex_data(ctx, store_index) : NULL;
}

size_t
cert_store_count(const struct cert_store *cs)
{
	return cs->nentries;
}

X509 *
cert_store_certificate(const struct cert_store *cs, size_t i)
{
	return i < cs->nentries ? cs->entries[i].cert : NULL;
}

int
cert_store_name_matches(const char *pattern, const char *name)
{
	const char *rest;

	if (strncmp(pattern, "*.", 2) != 0)
		return strcasecmp(pattern, name) == 0;
	/* One whole left-most label: "*.example.com" is not "example.com" nor "a.b.example.com". */
	rest = strchr(name, '.');
	return rest != NULL && rest != name && strcasecmp(rest, pattern + 1) == 0;
}

int
cert_store_server_name(SSL *ssl, char *buf, size_t len)
{
	const unsigned char *p;
	size_t n, list, name;

	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &n) != 1 || n < 5)
		return -1;
	/* ServerNameList: u16 length, then entries; only host_name (0) is defined. */
	list = (size_t)p[0] << 8 | p[1];
	name = (size_t)p[3] << 8 | p[4];
	if (list != n - 2 || p[2] != TLSEXT_NAMETYPE_host_name || name == 0 ||
	    name > list - 3 || name >= len || name > SERVER_NAME_MAX ||
	    memchr(p + 5, '\0', name) != NULL)
		return -1;
	memcpy(buf, p + 5, name);
	buf[name] = '\0';
	/* A trailing dot names the same host. */
	if (name > 1 && buf[name - 1] == '.')
		buf[name - 1] = '\0';
	return 0;
}

/* The group serving ${name}: an exact name first, then a wildcard; -1 if none. */
static long
group_for_name(const struct cert_store *cs, const char *name)
{
	const struct cert_entry *e;
	size_t i, j;
	int wild;

	for (wild = 0; wild <= 1; wild++)
		for (i = 0; i < cs->nentries; i++) {
			e = &cs->entries[i];
			for (j = 0; j < e->nnames; j++)
				if ((e->names[j][0] == '*') == wild &&
				    cert_store_name_matches(e->names[j], name))
					return (long)e->group;
		}
	return -1;
}

static int
use_group(SSL *ssl, const struct cert_store *cs, const struct cert_group *g)
{
	const struct cert_entry *e;
	size_t i;

	SSL_certs_clear(ssl);
	for (i = 0; i < g->nentries; i++) {
		e = &cs->entries[g->entries[i]];
		if (SSL_use_cert_and_key(ssl, e->cert, e->key, e->chain, 1) != 1)
			return -1;
	}
	return 0;
}

int
cert_store_client_hello(SSL *ssl, int *alert)
{
	const struct cert_store *cs = cert_store_of(SSL_get_SSL_CTX(ssl));
	char name[SERVER_NAME_MAX + 1];
	long k = -1;

	if (cs == NULL)
		return 0;
	if (cert_store_server_name(ssl, name, sizeof(name)) == 0)
		k = group_for_name(cs, name);
	if (k < 0 && cs->sni_strict) {
		*alert = SSL_AD_UNRECOGNIZED_NAME;
		return -1;
	}
	if (k < 0)
		k = 0;
	/* The first group is the context's own: nothing to change, nothing to pay. */
	if (k != 0 && (use_group(ssl, cs, &cs->groups[k]) != 0 ||
	    session_check_bind(ssl, cs->groups[k].context) != 0)) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return -1;
	}
	return 0;
}
