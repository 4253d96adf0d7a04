/*
 * config_routes: a listener's application protocols and where each goes.
 * alpn lists the protocols offered, in the server's order of preference;
 * routes send a connection to a backend of their own by the protocol
 * negotiated and/or the client's server name, each with its own PROXY
 * protocol and backend pacing.  The first route that matches wins; a
 * connection no route matches goes to the listener's backend.
 */
#define _GNU_SOURCE

#include <stdlib.h>
#include <string.h>

#include "config_listener.h"

#define ALPN_MAX_LEN	255	/* one length byte on the wire */
#define RATE_MAX	1000000

static const char *
check_alpn(const char *proto)
{
	const char *p;

	if (strlen(proto) > ALPN_MAX_LEN)
		return "is longer than 255 bytes";
	for (p = proto; *p != '\0'; p++)
		if (*p <= ' ' || *p > '~')
			return "has a character that is not printable ASCII";
	return NULL;
}

void
routes_free(struct route_settings *r, size_t n)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(r[i].alpn);
		free(r[i].sni);
	}
	free(r);
}

int
routes_copy(const struct route_settings *from, size_t n, struct route_settings **out)
{
	struct route_settings *r;
	size_t i;

	*out = NULL;
	if (from == NULL)
		return 0;
	if ((r = calloc(n, sizeof(*r))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		r[i] = from[i];
		r[i].alpn = r[i].sni = NULL;
		r[i].where = (struct config_where){ NULL, 0 };
		if ((from[i].alpn != NULL && (r[i].alpn = strdup(from[i].alpn)) == NULL) ||
		    (from[i].sni != NULL && (r[i].sni = strdup(from[i].sni)) == NULL)) {
			routes_free(r, i + 1);
			return -1;
		}
	}
	*out = r;
	return 0;
}

/* A route's protocol must be one the listener offers, or it never matches. */
static void
check_route_alpn(struct config_get_group *g, const struct listener_settings *l,
    const char *proto)
{
	char full[128];
	size_t i;

	for (i = 0; i < l->nalpn; i++)
		if (strcmp(l->alpn[i], proto) == 0)
			return;
	config_get_report(g, config_get_member(g, "alpn"),
	    config_get_name(g, "alpn", full, sizeof(full)),
	    "\"%s\" is not in the listener's alpn (a route's protocol must be one "
	    "the listener offers)", proto);
}

static void
load_route(struct config_get_group *g, const struct listener_settings *l,
    struct route_settings *r)
{
	const char *backend_allowed = "\"host:port\", such as \"127.0.0.1:8080\"";
	const char *why;
	char full[128];
	int pp, arc, src;

	r->where = config_get_where(g, NULL);
	arc = config_get_text(g, "alpn", "a protocol of the listener's alpn", &r->alpn, NULL);
	if (arc == 0)
		check_route_alpn(g, l, r->alpn);
	src = config_get_text(g, "sni", "a DNS name or \"*.name\"", &r->sni, NULL);
	if (src == 0 && (why = config_check_dns_name(r->sni)) != NULL)
		config_get_report(g, config_get_member(g, "sni"),
		    config_get_name(g, "sni", full, sizeof(full)), "\"%s\" %s (a DNS name "
		    "such as \"mqtt.example.com\", or \"*.example.com\")", r->sni, why);
	if (arc == 1 && src == 1)
		config_get_report(g, NULL, config_get_name(g, "alpn", full, sizeof(full)),
		    "a route needs alpn, sni or both (what it matches; the listener's "
		    "backend takes every other connection)");
	if (config_get_addr(g, "backend", 0, backend_allowed, &r->backend) == 1)
		config_get_missing(g, "backend", backend_allowed);
	config_get_choice(g, "proxy_protocol", config_proxy_protocol_names, l->proxy_protocol, &pp);
	r->proxy_protocol = (enum proxy_protocol)pp;
	if (config_get_bool(g, "proxy_protocol_client_cert", l->proxy_protocol_client_cert,
	    &r->proxy_protocol_client_cert) != -1 && r->proxy_protocol_client_cert &&
	    r->proxy_protocol != PROXY_PROTOCOL_V2)
		config_get_report(g, config_get_member(g, "proxy_protocol_client_cert"),
		    config_get_name(g, "proxy_protocol_client_cert", full, sizeof(full)),
		    "needs proxy_protocol = \"v2\" (version 1 has no room for it)");
	config_get_int(g, "backend_connect_rate", 0, RATE_MAX, 0, &r->backend_connect_rate);
	config_get_int(g, "backend_max_connecting", 0, RATE_MAX, 0,
	    &r->backend_max_connecting);
	config_get_close(g);
}

void
config_load_routes(struct config_get_group *g, struct listener_settings *l)
{
	const char *alpn_allowed = "protocol names in order of preference, such as "
	    "[ \"mqtt\", \"http/1.1\" ]";
	const char *routes_allowed = "a list of groups: routes = ( { alpn = \"mqtt\"; "
	    "backend = \"127.0.0.1:1883\"; } )";
	struct config_get_group rg;
	char full[128];
	size_t i, n;
	int rc;

	config_get_strings(g, "alpn", alpn_allowed, check_alpn, &l->alpn, &l->nalpn, NULL);
	if (config_get_bool(g, "alpn_required", 0, &l->alpn_required) == 0 &&
	    l->alpn_required && l->nalpn == 0)
		config_get_report(g, config_get_member(g, "alpn_required"),
		    config_get_name(g, "alpn_required", full, sizeof(full)),
		    "has no effect without alpn (set alpn to the protocols offered, or "
		    "remove it)");
	if ((rc = config_get_group_list(g, "routes", routes_allowed, &n)) != 0)
		return;
	if ((l->routes = calloc(n, sizeof(*l->routes))) == NULL) {
		config_get_report(g, config_get_member(g, "routes"), "routes", "out of memory");
		return;
	}
	l->nroutes = n;
	for (i = 0; i < n; i++)
		if (config_get_open_elem(&rg, g, "routes", i) == 0)
			load_route(&rg, l, &l->routes[i]);
}
