/*
 * config_listener: the parts of a listener's settings that are lists of
 * their own (certificates; ALPN protocols and routes), read by config.c's
 * load_listener() and freed and copied with the rest of the listener.
 * Internal to the config modules.
 */
#ifndef TLSPROXY_CONFIG_LISTENER_H
#define TLSPROXY_CONFIG_LISTENER_H

#include "config.h"
#include "config_get.h"

/* The values of proxy_protocol, for listeners and routes alike. */
extern const struct config_get_choice config_proxy_protocol_names[];

/**
 * config_load_certificates(g, l): cert and key, or certificates, and
 * sni_strict, of listener ${g} into ${l}.
 */
void config_load_certificates(struct config_get_group *g, struct listener_settings *l);

/**
 * config_load_routes(g, l): alpn, alpn_required and routes of listener
 * ${g} into ${l}, whose proxy_protocol settings (the routes' defaults) are
 * already read.
 */
void config_load_routes(struct config_get_group *g, struct listener_settings *l);

/** config_check_dns_name(name): NULL if ${name} is a DNS name or "*.name", else why not. */
const char *config_check_dns_name(const char *name);

/** certificates_free(c, n): free ${n} entries and ${c}; NULL is fine. */
void certificates_free(struct certificate_settings *c, size_t n);

/**
 * certificates_copy(from, n, out): a deep copy, positions left out; 0, or
 * -1 when memory runs out (${*out} is then NULL).
 */
int certificates_copy(const struct certificate_settings *from, size_t n,
    struct certificate_settings **out);

/** routes_free(r, n): free ${n} routes and ${r}; NULL is fine. */
void routes_free(struct route_settings *r, size_t n);

/** routes_copy(from, n, out): as certificates_copy(). */
int routes_copy(const struct route_settings *from, size_t n, struct route_settings **out);

#endif
