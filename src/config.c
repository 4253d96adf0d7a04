/*
 * config: the settings themselves: what each one is, its default and its
 * range, and the checks that need more than one setting.  Reading,
 * locating and reporting are config_get's job; this file says only what
 * to read, and what it reads is all that is allowed: each group is closed
 * after its last getter, and any member nothing asked for is unknown.
 * Nothing stops at the first error: the load fails at the end if anything
 * was reported.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>
#include <openssl/crypto.h>

#include "config.h"
#include "config_get.h"
#include "config_include.h"
#include "config_listener.h"

#define DAY		(24 * 60 * 60)
#define SEED_MIN	16
#define SEED_MAX	4096
#define NAME_MAX_LEN	64
#define WORKERS_MAX	256
#define WINDOW_MAX	1000	/* rotation intervals within decrypt_grace */
#define RATE_MAX	1000000	/* per second: handshakes and connects */
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static const struct config_get_choice log_levels[] = {
	{ "error", LOG_LEVEL_ERROR }, { "warning", LOG_LEVEL_WARNING },
	{ "info", LOG_LEVEL_INFO }, { "debug", LOG_LEVEL_DEBUG }, { NULL, 0 },
};
static const struct config_get_choice full_handshake_priorities[] = {
	{ "normal", FULL_HANDSHAKE_PRIORITY_NORMAL }, { "low", FULL_HANDSHAKE_PRIORITY_LOW },
	{ NULL, 0 },
};
static const struct config_get_choice ticket_modes[] = {
	{ "off", TICKETS_OFF }, { "stateful", TICKETS_STATEFUL },
	{ "stateless", TICKETS_STATELESS }, { NULL, 0 },
};
static const struct config_get_choice verify_modes[] = {
	{ "none", VERIFY_CLIENT_NONE }, { "optional", VERIFY_CLIENT_OPTIONAL },
	{ "require", VERIFY_CLIENT_REQUIRE }, { NULL, 0 },
};
static const struct config_get_choice tls13_renews[] = {
	{ "always", TLS13_RENEW_ALWAYS }, { "rotation", TLS13_RENEW_ROTATION }, { NULL, 0 },
};
static const struct config_get_choice crl_checks[] = {
	{ "leaf", CRL_CHECK_LEAF }, { "chain", CRL_CHECK_CHAIN }, { NULL, 0 },
};
const struct config_get_choice config_proxy_protocol_names[] = {
	{ "off", PROXY_PROTOCOL_OFF }, { "v1", PROXY_PROTOCOL_V1 },
	{ "v2", PROXY_PROTOCOL_V2 }, { NULL, 0 },
};
static const struct config_get_choice protocol_names[] = {
	{ "TLSv1.2", PROTO_TLS12 }, { "TLSv1.3", PROTO_TLS13 }, { NULL, 0 },
};

/* Free a secret after overwriting it, so that it does not linger in the heap. */
static void
free_secret(unsigned char *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

/*
 * What a listener_settings points to: the strings it owns, and the
 * positions that point into struct settings.  Freeing and copying walk
 * these two lists, so a string or a position setting is named here once;
 * every other field is plain data that a struct assignment copies.
 */
#define LISTENER_STRINGS(l) { &(l)->name, &(l)->client_ca, &(l)->crl, \
	&(l)->ciphers, &(l)->ciphersuites }
#define LISTENER_WHERES(l) { &(l)->where, &(l)->client_ca_where, &(l)->crl_where, \
	&(l)->ciphers_where, &(l)->ciphersuites_where }

void
listener_settings_clear(struct listener_settings *l)
{
	char **strings[] = LISTENER_STRINGS(l);
	size_t i;

	for (i = 0; i < NELEM(strings); i++) {
		free(*strings[i]);
		*strings[i] = NULL;
	}
	certificates_free(l->certificates, l->ncertificates);
	l->certificates = NULL;
	config_strings_free(l->alpn, l->nalpn);
	l->alpn = NULL;
	routes_free(l->routes, l->nroutes);
	l->routes = NULL;
}

int
listener_settings_copy(struct listener_settings *to,
    const struct listener_settings *from)
{
	char **strings[] = LISTENER_STRINGS(to);
	struct config_where *wheres[] = LISTENER_WHERES(to);
	size_t i;

	*to = *from;
	to->certificates = NULL;
	to->alpn = NULL;
	to->routes = NULL;
	/* Positions name lines of files that only the load has read. */
	for (i = 0; i < NELEM(wheres); i++)
		*wheres[i] = (struct config_where){ NULL, 0 };
	for (i = 0; i < NELEM(strings); i++) {
		if (*strings[i] == NULL ||
		    (*strings[i] = strdup(*strings[i])) != NULL)
			continue;
		/* The rest still point into ${from}: not ours to free. */
		while (++i < NELEM(strings))
			*strings[i] = NULL;
		listener_settings_clear(to);
		return -1;
	}
	if (certificates_copy(from->certificates, from->ncertificates, &to->certificates) != 0 ||
	    config_strings_copy(from->alpn, from->nalpn, &to->alpn) != 0 ||
	    routes_copy(from->routes, from->nroutes, &to->routes) != 0) {
		listener_settings_clear(to);
		return -1;
	}
	return 0;
}

void
settings_free(struct settings *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nlisteners; i++)
		listener_settings_clear(&s->listeners[i]);
	free(s->listeners);
	free_secret(s->tickets.seed, s->tickets.seed_len);
	free_secret(s->tickets.previous_seed, s->tickets.previous_seed_len);
	free(s->tickets.seed_file);
	free(s->tickets.previous_seed_file);
	for (i = 0; i < s->nfiles; i++)
		free(s->files[i]);
	free(s->files);
	free(s->user);
	free(s->group);
	free(s->path);
	free(s);
}

/* --- Ticket seeds ------------------------------------------------------- */

/* Check a seed's length; ${what} names it without showing its bytes. */
static int
check_seed_len(const struct config_get_group *g, const config_setting_t *st,
    const char *name, const char *what, size_t len)
{
	char full[128];

	if (len >= SEED_MIN && len <= SEED_MAX)
		return 0;
	config_get_report(g, st, config_get_name(g, name, full, sizeof(full)),
	    "%s is too %s: %zu bytes (%d to %d bytes; make one with "
	    "head -c 32 /dev/urandom | base64)", what,
	    len < SEED_MIN ? "short" : "long", len, SEED_MIN, SEED_MAX);
	return -1;
}

/*
 * Read a seed file: refused unless only its owner can get at it, since
 * whoever reads it can decrypt every session ticket.  One trailing "\n"
 * or "\r\n" is dropped, because editors and `base64` add one.
 */
static int
read_seed_file(struct config_get_group *g, const char *name,
    unsigned char **seed, size_t *seedlen)
{
	const config_setting_t *st = config_get_member(g, name);
	char full[128], shown[300];
	const size_t cap = SEED_MAX + 3;	/* 1 past the longest + "\r\n" */
	unsigned char *buf;
	const char *path = config_setting_get_string(st);
	struct stat sb;
	size_t len = 0;
	ssize_t n;
	int fd;

	config_get_name(g, name, full, sizeof(full));
	config_get_printable(path, 0, shown, sizeof(shown));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		config_get_report(g, st, full, "cannot read %s: %s", shown,
		    strerror(errno));
		goto err0;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		config_get_report(g, st, full, "%s is not a regular file", shown);
		goto err1;
	}
	if (sb.st_mode & 077) {
		config_get_report(g, st, full, "%s is accessible by group or "
		    "others (run chmod 600 %s)", shown, shown);
		goto err1;
	}
	if ((buf = malloc(cap)) == NULL) {
		config_get_report(g, st, full, "out of memory");
		goto err1;
	}
	while (len < cap && (n = read(fd, buf + len, cap - len)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			config_get_report(g, st, full, "cannot read %s: %s",
			    shown, strerror(errno));
			goto err2;
		}
		len += (size_t)n;
	}
	if (len > 0 && buf[len - 1] == '\n')
		len -= (len > 1 && buf[len - 2] == '\r') ? 2 : 1;
	if (check_seed_len(g, st, name, shown, len) == -1)
		goto err2;

	close(fd);
	*seed = buf;
	*seedlen = len;
	return 0;

err2:
	free_secret(buf, cap);
err1:
	close(fd);
err0:
	return -1;
}

/* The bytes of inline seed ${name}, copied into a buffer we can wipe. */
static int
copy_seed(struct config_get_group *g, const char *name, const char *text,
    unsigned char **seed, size_t *seedlen)
{
	const config_setting_t *st = config_get_member(g, name);
	size_t len = strlen(text);

	if (check_seed_len(g, st, name, "the seed", len) == -1)
		return -1;
	if ((*seed = malloc(len)) == NULL) {
		config_get_report(g, st, name, "out of memory");
		return -1;
	}
	memcpy(*seed, text, len);
	*seedlen = len;
	return 0;
}

/*
 * Seed from inline ${iname} or file ${fname}, at most one of them.
 * Returns 0 if set, 1 if neither is, -1 after an error.
 */
static int
get_seed(struct config_get_group *g, const char *iname,
    const char *fname, unsigned char **seed, size_t *seedlen, char **seed_file)
{
	const config_setting_t *ist = config_get_member(g, iname);
	const config_setting_t *fst = config_get_member(g, fname);
	const char *allowed = "a secret of 16 to 4096 bytes";
	const char *text, *path;
	struct config_where other;
	unsigned char *fseed = NULL;
	size_t fseedlen = 0;
	char full[128], ffull[128];
	int irc, frc;

	/* Check both, even when both are set, to report every problem. */
	if ((irc = config_get_string(g, iname, allowed, &text)) == 0)
		irc = copy_seed(g, iname, text, seed, seedlen);
	if ((frc = config_get_string(g, fname, "a path to a file of mode 600",
	    &path)) == 0 && (frc = read_seed_file(g, fname, &fseed,
	    &fseedlen)) == 0 && (*seed_file = strdup(path)) == NULL) {
		config_get_report(g, fst, fname, "out of memory");
		frc = -1;
	}
	if (ist != NULL && fst != NULL) {
		other = config_get_where(g, fst);
		config_get_report(g, ist, config_get_name(g, iname, full,
		    sizeof(full)), "conflicts with %s at %s:%d (set only one of "
		    "%s and %s)", config_get_name(g, fname, ffull, sizeof(ffull)),
		    other.file, other.line, iname, fname);
		irc = frc = -1;
	}
	if (frc == 0) {
		*seed = fseed;
		*seedlen = fseedlen;
		return 0;
	}
	free_secret(fseed, fseedlen);
	if (irc == -1 || frc == -1)
		return -1;
	return irc;
}

/* --- Settings ----------------------------------------------------------- */

/* Checks between ticket settings, each read already (rc -1: it was bad). */
static void
check_tickets(struct config_get_group *g, const struct settings *s,
    int moderc, int rrc, int drc, int lrc)
{
	const struct ticket_settings *t = &s->tickets;
	const config_setting_t *at;
	char a[24], b[24];

	/* Keys are only kept for decrypt_grace. */
	if (lrc != -1 && drc != -1 && t->session_lifetime > t->decrypt_grace) {
		at = config_get_member(g, "session_lifetime");
		config_get_report(g, at ? at : config_get_member(g,
		    "decrypt_grace"), "tickets.session_lifetime", "%s is longer "
		    "than decrypt_grace (%s): a client could hold a ticket that "
		    "no node can still decrypt (at most decrypt_grace)",
		    config_get_duration_text(t->session_lifetime, a, sizeof(a)),
		    config_get_duration_text(t->decrypt_grace, b, sizeof(b)));
	}
	/* Every node derives every key of the decrypt window each epoch. */
	if (moderc != -1 && t->mode == TICKETS_STATELESS && rrc != -1 &&
	    drc != -1 && t->decrypt_grace > WINDOW_MAX * t->rotation_interval)
		config_get_report(g, config_get_member(g, "decrypt_grace"),
		    "tickets.decrypt_grace", "%s spans %lld rotation intervals "
		    "of %s (at most %d: lengthen rotation_interval or shorten "
		    "decrypt_grace)", config_get_duration_text(t->decrypt_grace,
		    a, sizeof(a)), (long long)((t->decrypt_grace +
		    t->rotation_interval - 1) / t->rotation_interval),
		    config_get_duration_text(t->rotation_interval, b, sizeof(b)),
		    WINDOW_MAX);
	/* Stateful tickets name a session cache entry. */
	if (moderc == 0 && t->mode == TICKETS_STATEFUL &&
	    s->session_cache_size == 0)
		config_get_report(g, config_get_member(g, "mode"), "tickets.mode",
		    "\"stateful\" needs the session cache (session_cache.size "
		    "> 0)");
}

static void
load_tickets(struct settings *s, struct config_get_group *root)
{
	struct ticket_settings *t = &s->tickets;
	struct config_get_group g;
	int grc, mode, moderc, seedrc, rrc, drc, lrc, renew;

	grc = config_get_open(&g, root, "tickets");
	t->where = config_get_where(&g, NULL);

	moderc = config_get_choice(&g, "mode", ticket_modes, TICKETS_STATELESS,
	    &mode);
	t->mode = (enum tickets_mode)mode;
	seedrc = get_seed(&g, "seed", "seed_file", &t->seed, &t->seed_len,
	    &t->seed_file);
	get_seed(&g, "previous_seed", "previous_seed_file", &t->previous_seed,
	    &t->previous_seed_len, &t->previous_seed_file);
	/* A broken tickets setting was reported already; don't pile on. */
	if (seedrc == 1 && moderc != -1 && grc != -1 &&
	    t->mode == TICKETS_STATELESS)
		config_get_report(&g, NULL, "tickets", "no seed (set seed_file or "
		    "seed, or mode = \"stateful\" or \"off\")");

	rrc = config_get_duration(&g, "rotation_interval", 1, 7 * DAY, 3600,
	    &t->rotation_interval);
	drc = config_get_duration(&g, "decrypt_grace", 0, 30 * DAY, 12 * 3600,
	    &t->decrypt_grace);
	lrc = config_get_duration(&g, "session_lifetime", 1, 7 * DAY, 12 * 3600,
	    &t->session_lifetime);
	check_tickets(&g, s, moderc, rrc, drc, lrc);
	config_get_int(&g, "tls13_tickets", 0, 16, 1, &t->tls13_tickets);
	config_get_choice(&g, "tls13_renew", tls13_renews, TLS13_RENEW_ALWAYS, &renew);
	t->tls13_renew = (enum tls13_renew)renew;
	config_get_duration(&g, "max_session_age", 1, 366 * DAY, 7 * DAY,
	    &t->max_session_age);
	config_get_close(&g);
}

/* Listener names appear in logs and stats: keep them short and plain. */
static void
get_name(struct config_get_group *g, char **out)
{
	const char *allowed = "1 to 64 of the characters A-Z a-z 0-9 _ . -";
	const config_setting_t *st = config_get_member(g, "name");
	char full[128], shown[96];
	const char *name;
	int rc;

	if ((rc = config_get_string(g, "name", allowed, &name)) == 1)
		config_get_missing(g, "name", allowed);
	if (rc != 0)
		return;
	if (strlen(name) > NAME_MAX_LEN || strspn(name, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(name)) {
		config_get_report(g, st, config_get_name(g, "name", full,
		    sizeof(full)), "%s is not a valid name (%s)",
		    config_get_printable(name, 1, shown, sizeof(shown)), allowed);
		return;
	}
	if ((*out = strdup(name)) == NULL)
		config_get_report(g, st, "name", "out of memory");
}

/* Reconnect storms: how fast full handshakes and backend connects may begin. */
static void
load_pacing(struct config_get_group *g, struct listener_settings *l)
{
	char full[128];

	config_get_int(g, "full_handshake_rate", 0, RATE_MAX, 0, &l->full_handshake_rate);
	if (config_get_int(g, "full_handshake_burst", 0, RATE_MAX, 0,
	    &l->full_handshake_burst) == 0 && l->full_handshake_burst > 0 &&
	    l->full_handshake_rate == 0)
		config_get_report(g, config_get_member(g, "full_handshake_burst"),
		    config_get_name(g, "full_handshake_burst", full, sizeof(full)),
		    "has no effect without full_handshake_rate (set full_handshake_rate > 0, "
		    "or remove it)");
	config_get_int(g, "backend_connect_rate", 0, RATE_MAX, 0, &l->backend_connect_rate);
	config_get_int(g, "backend_max_connecting", 0, RATE_MAX, 0,
	    &l->backend_max_connecting);
}

/*
 * Revocation of client certificates.  A CRL means something only where
 * client certificates are verified, so it needs client_ca and a
 * verify_client that asks for them (${carc}: how client_ca was read).
 * The file itself is read and checked against the CAs by tls_ctx (crl.c).
 */
static void
load_crl(struct config_get_group *g, struct listener_settings *l, int carc)
{
	char full[128];
	int rc, cc;

	rc = config_get_path(g, "crl", "a readable PEM file of CRLs", &l->crl, &l->crl_where);
	if (rc == 0 && (carc == 1 || l->verify_client == VERIFY_CLIENT_NONE))
		config_get_report(g, config_get_member(g, "crl"),
		    config_get_name(g, "crl", full, sizeof(full)),
		    "needs client_ca and verify_client = \"optional\" or \"require\" "
		    "(CRLs revoke client certificates, which are checked only then)");
	if (config_get_choice(g, "crl_check", crl_checks, CRL_CHECK_LEAF, &cc) == 0 && rc == 1)
		config_get_report(g, config_get_member(g, "crl_check"),
		    config_get_name(g, "crl_check", full, sizeof(full)),
		    "has no effect without crl (set crl to a PEM file of CRLs, or remove it)");
	l->crl_check = (enum crl_check)cc;
}

static void
load_listener(struct config_get_group *g, struct listener_settings *l)
{
	const char *listen_allowed = "an IP address and port, such as "
	    "\"0.0.0.0:8883\" or \"[::]:8883\"";
	const char *backend_allowed = "\"host:port\", such as "
	    "\"127.0.0.1:1883\", \"[::1]:1883\" or \"broker.example:1883\"";
	const char *pem = "a readable PEM file";
	char full[128];
	int carc, vc, pp;

	l->where = config_get_where(g, NULL);

	get_name(g, &l->name);
	if (config_get_addr(g, "listen", 1, listen_allowed, &l->listen) == 1)
		config_get_missing(g, "listen", listen_allowed);
	if (config_get_addr(g, "backend", 0, backend_allowed, &l->backend) == 1)
		config_get_missing(g, "backend", backend_allowed);
	config_load_certificates(g, l);
	carc = config_get_path(g, "client_ca", pem, &l->client_ca,
	    &l->client_ca_where);
	config_get_choice_set(g, "protocols", protocol_names,
	    PROTO_TLS12 | PROTO_TLS13, &l->protocols);
	config_get_text(g, "ciphers", "an OpenSSL cipher list for TLS 1.2",
	    &l->ciphers, &l->ciphers_where);
	config_get_text(g, "ciphersuites", "an OpenSSL list of TLS 1.3 "
	    "ciphersuites", &l->ciphersuites, &l->ciphersuites_where);

	config_get_choice(g, "verify_client", verify_modes, VERIFY_CLIENT_NONE,
	    &vc);
	l->verify_client = (enum verify_client)vc;
	if (l->verify_client != VERIFY_CLIENT_NONE && carc == 1)
		config_get_report(g, config_get_member(g, "verify_client"),
		    config_get_name(g, "verify_client", full, sizeof(full)),
		    "\"%s\" needs client_ca (set client_ca to the CA file that "
		    "signs client certificates, or verify_client = \"none\")",
		    verify_modes[vc].name);
	load_crl(g, l, carc);

	config_get_duration(g, "handshake_timeout", 1, 3600, 10,
	    &l->handshake_timeout);
	config_get_duration(g, "connect_timeout", 1, 3600, 5,
	    &l->connect_timeout);
	config_get_bool(g, "connect_retry", 1, &l->connect_retry);
	config_get_duration(g, "idle_timeout", 0, 30 * DAY, 0, &l->idle_timeout);
	config_get_int(g, "max_connections", 1, 10000000, 100000,
	    &l->max_connections);
	load_pacing(g, l);

	config_get_choice(g, "proxy_protocol", config_proxy_protocol_names, PROXY_PROTOCOL_OFF, &pp);
	l->proxy_protocol = (enum proxy_protocol)pp;
	if (config_get_bool(g, "proxy_protocol_client_cert", 0,
	    &l->proxy_protocol_client_cert) == 0 && l->proxy_protocol_client_cert &&
	    l->proxy_protocol != PROXY_PROTOCOL_V2)
		config_get_report(g, config_get_member(g, "proxy_protocol_client_cert"),
		    config_get_name(g, "proxy_protocol_client_cert", full, sizeof(full)),
		    "needs proxy_protocol = \"v2\" (version 1 has no room for it)");
	config_load_routes(g, l);
	config_get_close(g);
}

/* Report listener ${i} if its name or address repeats an earlier one's. */
static void
check_duplicates(const struct config_get_group *root, const struct settings *s,
    const config_setting_t *list, size_t i)
{
	const struct listener_settings *l = s->listeners;
	const config_setting_t *here, *there;
	struct config_where w;
	char full[128], a[ADDR_TEXT_MAX], b[ADDR_TEXT_MAX];
	int named = 0, bound = 0;
	size_t j;

	here = config_setting_get_elem(list, (unsigned)i);
	for (j = 0; j < i; j++) {
		there = config_setting_get_elem(list, (unsigned)j);
		if (!named && l[i].name != NULL && l[j].name != NULL &&
		    strcmp(l[i].name, l[j].name) == 0) {
			w = config_get_where(root,
			    config_setting_get_member(there, "name"));
			snprintf(full, sizeof(full), "listeners[%zu].name", i);
			config_get_report(root, config_setting_get_member(here,
			    "name"), full, "\"%s\" is also the name of "
			    "listeners[%zu] at %s:%d (names must be unique)",
			    l[i].name, j, w.file, w.line);
			named = 1;
		}
		if (!bound && l[i].listen.numeric && l[j].listen.numeric &&
		    strcmp(addr_format((const struct sockaddr *)&l[i].listen.sa,
		    a, sizeof(a)), addr_format((const struct sockaddr *)
		    &l[j].listen.sa, b, sizeof(b))) == 0) {
			w = config_get_where(root,
			    config_setting_get_member(there, "listen"));
			snprintf(full, sizeof(full), "listeners[%zu].listen", i);
			config_get_report(root, config_setting_get_member(here,
			    "listen"), full, "%s is also the address of "
			    "listeners[%zu] at %s:%d (each listener needs its own "
			    "address)", a, j, w.file, w.line);
			bound = 1;
		}
	}
}

static void
load_listeners(struct settings *s, struct config_get_group *root)
{
	const char *allowed = "a list of groups: listeners = ( { name = ...; "
	    "listen = ...; backend = ...; cert = ...; } )";
	const config_setting_t *st = config_get_member(root, "listeners");
	struct config_get_group g;
	size_t i, n;

	if (st == NULL) {
		config_get_missing(root, "listeners", allowed);
		return;
	}
	if (!config_setting_is_list(st) && !config_setting_is_array(st)) {
		config_get_report(root, st, "listeners", "expected a list, got %s "
		    "(%s)", config_get_type_name(st), allowed);
		return;
	}
	if ((n = (size_t)config_setting_length(st)) == 0) {
		config_get_report(root, st, "listeners", "empty (at least one "
		    "listener: %s)", allowed);
		return;
	}
	if ((s->listeners = calloc(n, sizeof(*s->listeners))) == NULL) {
		config_get_report(root, st, "listeners", "out of memory");
		return;
	}
	s->nlisteners = n;
	for (i = 0; i < n; i++) {
		if (config_get_open_elem(&g, root, "listeners", i) == -1)
			continue;
		load_listener(&g, &s->listeners[i]);
		check_duplicates(root, s, st, i);
	}
}

/* One worker per online CPU, within the allowed range. */
static int64_t
default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > WORKERS_MAX ? WORKERS_MAX : n;
}

/*
 * user and group: who the daemon becomes once it has bound its sockets and
 * read its keys.  Resolved now, so that a typo fails -t, not a start.
 */
static void
load_identity(struct settings *s, struct config_get_group *root)
{
	struct config_where gwhere = { 0 };
	struct passwd *pw;
	struct group *gr;

	config_get_text(root, "user", "an existing user name", &s->user, &s->user_where);
	config_get_text(root, "group", "an existing group name", &s->group, &gwhere);
	if (s->user != NULL) {
		if ((pw = getpwnam(s->user)) == NULL) {
			config_get_report(root, config_get_member(root, "user"), "user",
			    "no such user \"%s\" (an existing user name)", s->user);
			return;
		}
		s->uid = (unsigned)pw->pw_uid;
		s->gid = (unsigned)pw->pw_gid;
	} else if (s->group != NULL) {
		config_get_report(root, config_get_member(root, "group"), "group",
		    "needs user (set user as well, or neither)");
		return;
	}
	if (s->group != NULL) {
		if ((gr = getgrnam(s->group)) == NULL) {
			config_get_report(root, config_get_member(root, "group"), "group",
			    "no such group \"%s\" (an existing group name)", s->group);
			return;
		}
		s->gid = (unsigned)gr->gr_gid;
	}
}

/*
 * metrics: where the Prometheus endpoint listens, if anywhere.  Like a
 * listener's address it is an IP literal (bound before anything else runs,
 * with no resolver) and must not be a listener's address too.
 */
static void
load_metrics(struct settings *s, struct config_get_group *root)
{
	const char *allowed = "an IP address and port, such as \"127.0.0.1:9464\" "
	    "or \"[::1]:9464\"";
	const config_setting_t *st = config_get_member(root, "metrics");
	const config_setting_t *list = config_get_member(root, "listeners");
	char a[ADDR_TEXT_MAX], b[ADDR_TEXT_MAX];
	struct config_where w;

	if (config_get_addr(root, "metrics", 1, allowed, &s->metrics) != 0)
		return;
	s->metrics_enabled = 1;
	s->metrics_where = config_get_where(root, st);
	addr_format((const struct sockaddr *)&s->metrics.sa, a, sizeof(a));
	for (size_t i = 0; i < s->nlisteners; i++) {
		const struct listener_settings *l = &s->listeners[i];

		if (!l->listen.numeric || strcmp(a, addr_format((const struct sockaddr *)
		    &l->listen.sa, b, sizeof(b))) != 0)
			continue;
		w = config_get_where(root, config_setting_get_member(
		    config_setting_get_elem(list, (unsigned)i), "listen"));
		config_get_report(root, st, "metrics", "%s is also the address of "
		    "listeners[%zu] at %s:%d (give metrics a port of its own)", a, i,
		    w.file, w.line);
		break;
	}
}

static void
load_top(struct settings *s, struct config_get_group *root)
{
	struct config_get_group g;
	int level;

	load_identity(s, root);
	config_get_int(root, "workers", 1, WORKERS_MAX, default_workers(),
	    &s->workers);
	config_get_choice(root, "full_handshake_priority", full_handshake_priorities,
	    FULL_HANDSHAKE_PRIORITY_NORMAL, &level);
	s->full_handshake_priority = (enum full_handshake_priority)level;
	config_get_choice(root, "log_level", log_levels, LOG_LEVEL_INFO, &level);
	s->log_level = (enum log_level)level;
	config_get_duration(root, "shutdown_timeout", 0, DAY, 30,
	    &s->shutdown_timeout);

	config_get_open(&g, root, "session_cache");
	config_get_int(&g, "size", 0, 10000000, 20480, &s->session_cache_size);
	config_get_duration(&g, "timeout", 1, DAY, 300,
	    &s->session_cache_timeout);
	config_get_close(&g);
}

/* --- The file ----------------------------------------------------------- */

/*
 * Parse ${path} into ${cfg}.  The file is opened first only to report
 * why it cannot be read: libconfig says just "file I/O error".
 */
static int
read_file(config_t *cfg, const char *path, struct config_errors *errs)
{
	char dir[4096], *name;
	const char *slash, *file;
	struct stat sb;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		config_errors_add(errs, path, 0, "cannot read", "%s",
		    strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &sb) == 0 && S_ISDIR(sb.st_mode)) {
		fclose(fp);
		config_errors_add(errs, path, 0, "cannot read", "%s",
		    strerror(EISDIR));
		return -1;
	}
	fclose(fp);

	/* @include "x.conf" is relative to this file, not to our cwd. */
	if ((slash = strrchr(path, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 :
		    (int)(slash - path), path);
	config_set_include_dir(cfg, dir);
	/* What libconfig would exit or block on, reported as errors instead. */
	if (config_include_check(path, dir, errs) != 0)
		return -1;

	if (config_read_file(cfg, path) == CONFIG_TRUE)
		return 0;
	name = config_get_file_name(path, config_error_file(cfg));
	file = name != NULL ? name : path;
	if (config_error_type(cfg) == CONFIG_ERR_FILE_IO)
		config_errors_add(errs, file, 0, "cannot read", "%s",
		    config_error_text(cfg));
	else if (strcmp(config_error_text(cfg), "syntax error") == 0)
		config_errors_add(errs, file, config_error_line(cfg),
		    "syntax error", "unexpected text (settings look like "
		    "name = value;)");
	else
		config_errors_add(errs, file, config_error_line(cfg),
		    "syntax error", "%s", config_error_text(cfg));
	free(name);
	return -1;
}

struct settings *
settings_load(const char *path, struct config_errors *errs)
{
	struct config_get_loader *ld;
	struct config_get_group root;
	struct settings *s;
	config_t cfg;

	config_init(&cfg);
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->path = strdup(path)) == NULL) {
		config_errors_add(errs, path, 0, NULL, "out of memory");
		goto err1;
	}
	if (read_file(&cfg, path, errs) == -1)
		goto err1;
	if ((ld = config_get_loader_new(s, errs)) == NULL) {
		config_errors_add(errs, path, 0, NULL, "out of memory");
		goto err1;
	}

	config_get_open_root(&root, ld, config_root_setting(&cfg));
	load_top(s, &root);
	load_tickets(s, &root);
	load_listeners(s, &root);
	load_metrics(s, &root);
	config_get_close(&root);
	if (config_get_loader_finish(ld) == -1)	/* frees ld */
		goto err1;

	config_destroy(&cfg);
	return s;

err1:
	config_destroy(&cfg);
	settings_free(s);
	return NULL;
}
