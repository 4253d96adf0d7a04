/*
 * config: read the libconfig file into validated settings.
 *
 * Everything the daemon will do is decided here, before anything starts:
 * every setting is checked for type and range, unknown settings are errors,
 * and every problem is reported as "FILE:LINE: setting: what is wrong (what
 * is allowed)", all of them in one pass.  The result is plain data; runtime
 * objects (SSL_CTX, sockets) are built from it by other modules.
 */
#ifndef TLSPROXY_CONFIG_H
#define TLSPROXY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "log.h"

/* A list of error lines, collected so that all of them can be reported. */
struct config_errors {
	char **lines;
	size_t count;
	size_t cap;
};

/**
 * config_errors_add(errs, file, line, setting, fmt, ...): append
 * "FILE:LINE: setting: message".  A ${line} <= 0 leaves out ":LINE" and a
 * NULL ${setting} leaves out "setting: ".  If memory runs out the line is
 * dropped.
 */
void config_errors_add(struct config_errors *errs, const char *file, int line,
    const char *setting, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/** config_errors_clear(errs): free every line; ${errs} can be reused. */
void config_errors_clear(struct config_errors *errs);

enum verify_client {
	VERIFY_CLIENT_NONE = 0,
	VERIFY_CLIENT_OPTIONAL,
	VERIFY_CLIENT_REQUIRE,
};

/* Which certificates of a client's chain the CRLs are checked for. */
enum crl_check {
	CRL_CHECK_LEAF = 0,	/* the device's own certificate */
	CRL_CHECK_CHAIN,	/* every certificate of the chain, the CAs' too */
};

enum proxy_protocol {
	PROXY_PROTOCOL_OFF = 0,
	PROXY_PROTOCOL_V1,
	PROXY_PROTOCOL_V2,
};

enum tickets_mode {
	TICKETS_OFF = 0,	/* no tickets; TLS 1.2 session IDs only */
	TICKETS_STATEFUL,	/* TLS 1.3 tickets that name a node-local cache entry */
	TICKETS_STATELESS,	/* tickets encrypted under seed-derived keys */
};

/*
 * Where a setting stood, so that later checks (loading a certificate) can
 * name it.  In a copy made by listener_settings_copy() it is { NULL, 0 }.
 */
struct config_where {
	const char *file;	/* owned by struct settings: its path or files[] */
	int line;
};

/*
 * One certificate of a listener, with its key.  A listener serves the
 * entry whose names match the client's server name (SNI); the first
 * entry when nothing matches.
 */
struct certificate_settings {
	char *cert;			/* PEM: leaf first, chain after */
	char *key;
	char *ocsp_response;		/* DER OCSP response file; NULL: none */
	char **names;			/* NULL: the certificate's SAN DNS names */
	size_t nnames;
	struct config_where where;	/* the entry (the listener for cert/key) */
	struct config_where cert_where, key_where, ocsp_response_where, names_where;
};

/*
 * A backend chosen by the negotiated ALPN protocol and/or the client's
 * server name, instead of the listener's.  Its pacing is its own.
 */
struct route_settings {
	char *alpn;			/* NULL: any protocol (or none) */
	char *sni;			/* NULL: any server name (or none) */
	struct hostport backend;
	enum proxy_protocol proxy_protocol;
	int proxy_protocol_client_cert;
	int64_t backend_connect_rate;	/* 0: no limit */
	int64_t backend_max_connecting;	/* 0: no limit */
	struct config_where where;
};

/* Bits of listener_settings.protocols */
#define PROTO_TLS12 0x1
#define PROTO_TLS13 0x2

/*
 * One listener's settings.  Its strings are its own; config.c lists them,
 * and the positions (*_where), in LISTENER_STRINGS and LISTENER_WHERES for
 * freeing and copying.  Everything else is plain data.
 */
struct listener_settings {
	char *name;
	struct hostport listen;
	struct hostport backend;
	struct certificate_settings *certificates;	/* at least one */
	size_t ncertificates;
	int certificates_listed;	/* a certificates list, not cert and key */
	int sni_strict;			/* refuse a client whose server name matches none */
	char **alpn;			/* offered protocols, preferred first; NULL: no ALPN */
	size_t nalpn;
	int alpn_required;		/* refuse a client that offers none of them */
	struct route_settings *routes;	/* tried in order; NULL: always backend */
	size_t nroutes;
	char *client_ca;		/* NULL: none */
	char *crl;			/* PEM CRLs of the client CAs; NULL: none */
	char *ciphers;			/* NULL: the built-in default */
	char *ciphersuites;		/* NULL: the built-in default */
	unsigned protocols;		/* PROTO_* bits, at least one */
	enum verify_client verify_client;
	enum crl_check crl_check;
	int64_t handshake_timeout;	/* seconds, > 0 */
	int64_t connect_timeout;	/* seconds, > 0 */
	int connect_retry;		/* a failed backend connect is tried again until connect_timeout */
	int64_t idle_timeout;		/* seconds, 0: none */
	int64_t max_connections;	/* > 0 */
	enum proxy_protocol proxy_protocol;	/* header sent to the backend first */
	int proxy_protocol_client_cert;	/* v2: include the client certificate */
	int64_t full_handshake_rate;	/* full handshakes begun per second; 0: no limit */
	int64_t full_handshake_burst;	/* the bucket's size; 0: the rate */
	int64_t backend_connect_rate;	/* backend connects begun per second; 0: no limit */
	int64_t backend_max_connecting;	/* backend connects in flight at once; 0: no limit */
	struct config_where where;	/* the listener's group */
	struct config_where client_ca_where, crl_where;
	struct config_where ciphers_where, ciphersuites_where;
};

/* When a TLS 1.3 resumption is followed by a new ticket. */
enum tls13_renew {
	TLS13_RENEW_ALWAYS,		/* every time: for clients that use each ticket once */
	TLS13_RENEW_ROTATION,		/* when the ticket's key is no longer the current one */
};

struct ticket_settings {
	enum tickets_mode mode;
	/* The seeds' bytes (file content without one trailing newline, or the
	 * inline string).  Wiped when the settings are freed. */
	unsigned char *seed;
	size_t seed_len;
	char *seed_file;		/* NULL when the seed was inline */
	unsigned char *previous_seed;	/* NULL: none */
	size_t previous_seed_len;
	char *previous_seed_file;
	int64_t rotation_interval;	/* seconds */
	int64_t decrypt_grace;		/* seconds */
	int64_t session_lifetime;	/* seconds */
	int64_t tls13_tickets;		/* tickets after each full TLS 1.3 handshake */
	enum tls13_renew tls13_renew;	/* when a TLS 1.3 resumption gets a new ticket */
	int64_t max_session_age;	/* seconds since the full handshake a session may resume */
	struct config_where where;
};

/* Where full handshakes' key exchange and signature run. */
enum full_handshake_priority {
	FULL_HANDSHAKE_PRIORITY_NORMAL,	/* on the workers, like everything else */
	FULL_HANDSHAKE_PRIORITY_LOW,	/* on threads of their own, at nice 19 */
};

struct settings {
	char *path;			/* the file these came from */
	char *user;			/* NULL: keep the starting user */
	char *group;			/* NULL: the user's primary group */
	unsigned uid, gid;		/* resolved from user and group */
	struct config_where user_where;
	int64_t workers;		/* >= 1 */
	enum full_handshake_priority full_handshake_priority;
	enum log_level log_level;
	int64_t shutdown_timeout;	/* seconds */
	int64_t session_cache_size;	/* 0: no session-ID cache */
	int64_t session_cache_timeout;	/* seconds */
	struct ticket_settings tickets;
	int metrics_enabled;		/* the metrics setting is present */
	struct hostport metrics;	/* where GET /metrics is served (numeric) */
	struct config_where metrics_where;
	struct listener_settings *listeners;
	size_t nlisteners;
	/* Names of @include'd files that some config_where points to. */
	char **files;
	size_t nfiles;
};

/**
 * settings_load(path, errs): parse and validate ${path}.  Returns the
 * settings, or NULL with at least one line added to ${errs} (none only if
 * memory ran out).  The caller owns the result and frees it with
 * settings_free().
 */
struct settings *settings_load(const char *path, struct config_errors *errs);

/** settings_free(s): wipe the seeds and free everything; NULL is fine. */
void settings_free(struct settings *s);

/**
 * listener_settings_copy(to, from): a deep copy of ${from} in ${to} that
 * needs nothing of the struct settings ${from} belongs to, for what lives
 * on after a reload frees those.  Positions are not copied: they are
 * { NULL, 0 } in ${to}.  Returns 0, or -1 when memory runs out (${to} then
 * owns nothing).  Free the copy with listener_settings_clear().
 */
int listener_settings_copy(struct listener_settings *to,
    const struct listener_settings *from);

/**
 * listener_settings_clear(l): free the strings ${l} owns and set them to
 * NULL; ${l} itself is the caller's.
 */
void listener_settings_clear(struct listener_settings *l);

#endif
