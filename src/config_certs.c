/*
 * config_certs: a listener's certificates.  Either the short form, cert
 * and key (one certificate), or a certificates list whose entries each
 * name a certificate, its key, its OCSP response and the server names it
 * serves.  What only the files can tell (a key that does not match, two
 * entries claiming a name with the same key type) is checked where they
 * are loaded, in cert_store.c.
 */
#define _GNU_SOURCE

#include <stdlib.h>
#include <string.h>

#include "config_listener.h"

#define DNS_NAME_MAX	253
#define DNS_LABEL_MAX	63

static const char *pem = "a readable PEM file";
static const char *names_allowed = "DNS names such as \"mqtt.example.com\", or "
    "\"*.example.com\" for one label";

const char *
config_check_dns_name(const char *name)
{
	const char *p = name, *dot;
	size_t len, labels = 0;

	if (strlen(name) > DNS_NAME_MAX)
		return "is too long for a DNS name";
	/* RFC 6125: a wildcard is the whole left-most label, and stands for one label. */
	if (strncmp(p, "*.", 2) == 0)
		p += 2;
	for (;;) {
		dot = strchr(p, '.');
		len = dot != NULL ? (size_t)(dot - p) : strlen(p);
		if (len == 0 || len > DNS_LABEL_MAX)
			return "has an empty or too long label";
		if (strspn(p, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") < len)
			return "is not a DNS name";
		if (p[0] == '-' || p[len - 1] == '-')
			return "has a label that begins or ends with '-'";
		labels++;
		if (dot == NULL)
			break;
		p = dot + 1;
	}
	if (p != name && name[0] == '*' && labels < 2)
		return "has a wildcard over a top-level domain";
	return NULL;
}

static int
certificate_copy(struct certificate_settings *to, const struct certificate_settings *from)
{
	memset(to, 0, sizeof(*to));
	if ((to->cert = strdup(from->cert)) == NULL || (to->key = strdup(from->key)) == NULL ||
	    (from->ocsp_response != NULL &&
	    (to->ocsp_response = strdup(from->ocsp_response)) == NULL) ||
	    config_strings_copy(from->names, from->nnames, &to->names) != 0)
		return -1;
	to->nnames = from->nnames;
	return 0;
}

static void
certificate_clear(struct certificate_settings *c)
{
	free(c->cert);
	free(c->key);
	free(c->ocsp_response);
	config_strings_free(c->names, c->nnames);
	memset(c, 0, sizeof(*c));
}

void
certificates_free(struct certificate_settings *c, size_t n)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < n; i++)
		certificate_clear(&c[i]);
	free(c);
}

int
certificates_copy(const struct certificate_settings *from, size_t n,
    struct certificate_settings **out)
{
	size_t i;

	*out = NULL;
	if (from == NULL)
		return 0;
	if ((*out = calloc(n, sizeof(**out))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (certificate_copy(&(*out)[i], &from[i]) != 0) {
			certificates_free(*out, i + 1);
			*out = NULL;
			return -1;
		}
	}
	return 0;
}

/* Read cert and key of ${g}; the key defaults to the cert file (a combined PEM). */
static int
load_cert_and_key(struct config_get_group *g, struct certificate_settings *c)
{
	int rc;

	if ((rc = config_get_path(g, "cert", pem, &c->cert, &c->cert_where)) == 1)
		config_get_missing(g, "cert", "a readable PEM file: certificate, then chain");
	if (config_get_path(g, "key", pem, &c->key, &c->key_where) == 1 && c->cert != NULL) {
		if ((c->key = strdup(c->cert)) == NULL)
			config_get_report(g, NULL, "key", "out of memory");
		c->key_where = c->cert_where;
	}
	return rc == 0 && c->key != NULL ? 0 : -1;
}

static void
load_entry(struct config_get_group *g, struct certificate_settings *c)
{
	c->where = config_get_where(g, NULL);
	load_cert_and_key(g, c);
	/* Not required to exist now: the refresh script may not have run yet. */
	config_get_text(g, "ocsp_response", "a DER OCSP response file", &c->ocsp_response,
	    &c->ocsp_response_where);
	config_get_strings(g, "names", names_allowed, config_check_dns_name, &c->names,
	    &c->nnames, &c->names_where);
	config_get_close(g);
}

/* The short form: cert and key of the listener are its one certificate. */
static void
load_short_form(struct config_get_group *g, struct listener_settings *l)
{
	struct certificate_settings *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		config_get_report(g, NULL, "cert", "out of memory");
		return;
	}
	c->where = config_get_where(g, NULL);
	if (load_cert_and_key(g, c) != 0) {
		certificates_free(c, 1);
		return;
	}
	l->certificates = c;
	l->ncertificates = 1;
}

static void
load_list(struct config_get_group *g, struct listener_settings *l, size_t n)
{
	struct config_get_group eg;
	size_t i;

	if ((l->certificates = calloc(n, sizeof(*l->certificates))) == NULL) {
		config_get_report(g, config_get_member(g, "certificates"), "certificates",
		    "out of memory");
		return;
	}
	l->ncertificates = n;
	l->certificates_listed = 1;
	for (i = 0; i < n; i++)
		if (config_get_open_elem(&eg, g, "certificates", i) == 0)
			load_entry(&eg, &l->certificates[i]);
}

void
config_load_certificates(struct config_get_group *g, struct listener_settings *l)
{
	const char *list_allowed = "a list of groups: certificates = ( { cert = ...; "
	    "key = ...; names = [ ... ]; ocsp_response = ...; } )";
	const config_setting_t *cert = config_get_member(g, "cert");
	const config_setting_t *key = config_get_member(g, "key");
	char full[128];
	size_t n;
	int rc;

	rc = config_get_group_list(g, "certificates", list_allowed, &n);
	if (rc == 1) {
		load_short_form(g, l);
	} else if (cert != NULL || key != NULL) {
		config_get_report(g, cert != NULL ? cert : key,
		    config_get_name(g, cert != NULL ? "cert" : "key", full, sizeof(full)),
		    "cannot be used with certificates (move it into an entry of certificates)");
	} else if (rc == 0) {
		load_list(g, l, n);
	}
	config_get_bool(g, "sni_strict", 0, &l->sni_strict);
}
