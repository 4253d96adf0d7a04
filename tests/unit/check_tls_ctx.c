/*
 * check_tls_ctx: a listener's TLS policy as clients meet it.  Contexts are
 * made by tls_ctx_new() from settings as the config makes them, with the
 * test PKI's files, and tried by real handshakes in memory: the protocol
 * range, the TLS 1.2 ciphers and TLS 1.3 ciphersuites with the server's
 * preference, the certificate chain, every client verification mode, each
 * ticket mode with its resumption and ticket count, the session cache and
 * its expiry, sessions kept to their listener.  And every setting that
 * cannot be used gives "FILE:LINE: setting: ..." at its own line, all of
 * them in one call.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "testlib.h"
#include "../../src/session_cache.h"
#include "../../src/session_check.h"
#include "../../src/stats.h"
#include "../../src/ticket_keys.h"
#include "../../src/tls_ctx.h"

static const int versions[] = { TLS1_2_VERSION, TLS1_3_VERSION };

/* tls_ctx_new() must refuse ${ls}, with its reasons in ${errs} and no more. */
static void
ctx_fail(struct settings *s, struct listener_settings *ls, struct config_errors *errs)
{
	ck_assert_ptr_null(tls_ctx_new(s, ls, NULL, errs));
	ck_assert_uint_gt(errs->count, 0);
	ck_assert_msg(ERR_peek_error() == 0, "OpenSSL errors left on the queue");
}

/* A listener's settings, its context once built, and a client. */
struct world {
	struct settings s;
	struct listener_settings ls;
	struct ticket_keys *tk;
	SSL_CTX *sctx, *cctx;
};

/* The default listener with tickets ${mode} and a client of ${version}; not built. */
static void
world_start(struct world *w, enum tickets_mode mode, int version)
{
	tl_tls_settings(&w->s, &w->ls);
	w->s.tickets.mode = mode;
	w->tk = NULL;
	w->sctx = NULL;
	w->cctx = tl_client_ctx(version);
}

/* The listener's context from its settings as they are now. */
static SSL_CTX *
world_build(struct world *w)
{
	return w->sctx = tl_server_ctx(&w->s, &w->ls, &w->tk);
}

static void
world_end(struct world *w)
{
	SSL_CTX_free(w->cctx);
	tl_server_ctx_free(w->sctx, w->tk);
}

struct result {
	int ok;				/* both handshakes done */
	int version;
	char cipher[64];
	int client_reused, server_reused;
	enum ticket_match match;
	int new_sessions;		/* sessions (TLS 1.3: tickets) the client got */
	SSL_SESSION *session;		/* the client's; owned; NULL when failed */
	SSL_SESSION *server_session;	/* the server's; owned; NULL when failed */
	char peer_cn[64];		/* of the client certificate the server has */
	long verify;			/* the server's verify result */
	char server_error[256], client_error[256];
};

/* One connection from ${cctx} to ${sctx}, offering ${offer} if not NULL. */
static void
connect_once(SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION *offer, struct result *r)
{
	struct tl_tls *t = tl_tls_new(cctx, sctx, TL_LINK_MEMORY);
	X509 *peer;

	memset(r, 0, sizeof(*r));
	if (offer != NULL)
		tl_tls_offer(t, offer);
	r->ok = tl_tls_handshake(t);
	memcpy(r->server_error, t->server_error, sizeof(r->server_error));
	memcpy(r->client_error, t->client_error, sizeof(r->client_error));
	if (r->ok) {
		tl_tls_settle(t);
		r->version = SSL_version(t->server);
		snprintf(r->cipher, sizeof(r->cipher), "%s", SSL_get_cipher_name(t->server));
		r->client_reused = SSL_session_reused(t->client);
		r->server_reused = SSL_session_reused(t->server);
		r->match = ticket_match_of(t->server);
		r->new_sessions = t->new_sessions;
		ck_assert_ptr_nonnull(r->session = SSL_get1_session(t->client));
		ck_assert_ptr_nonnull(r->server_session = SSL_get1_session(t->server));
		r->verify = SSL_get_verify_result(t->server);
		if ((peer = SSL_get0_peer_certificate(t->server)) != NULL)
			X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName,
			    r->peer_cn, sizeof(r->peer_cn));
	}
	tl_tls_free(t);
}

static void
result_free(struct result *r)
{
	SSL_SESSION_free(r->session);
	SSL_SESSION_free(r->server_session);
}

/* A connection that must succeed. */
static void
connect_ok(SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION *offer, struct result *r,
    const char *what)
{
	connect_once(cctx, sctx, offer, r);
	ck_assert_msg(r->ok, "%s: refused: client: %s; server: %s", what, r->client_error,
	    r->server_error);
}

/* A connection the server must refuse, for a reason containing ${why}. */
static void
connect_refused(SSL_CTX *cctx, SSL_CTX *sctx, const char *why, const char *what)
{
	struct result r;

	connect_once(cctx, sctx, NULL, &r);
	ck_assert_msg(!r.ok, "%s: accepted (%s, %s)", what,
	    r.version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2", r.cipher);
	ck_assert_msg(strstr(r.server_error, why) != NULL,
	    "%s: the server failed with \"%s\", not \"%s\"", what, r.server_error, why);
	result_free(&r);
}

/* ------------------------------------------------------------ protocols */

static const struct {
	unsigned listener;		/* PROTO_* */
	int client;			/* 0: TLS 1.2 and 1.3 */
	int want;			/* the version agreed; 0: refused */
} protocol_cases[] = {
	{ PROTO_TLS12 | PROTO_TLS13, TLS1_2_VERSION, TLS1_2_VERSION },
	{ PROTO_TLS12 | PROTO_TLS13, TLS1_3_VERSION, TLS1_3_VERSION },
	{ PROTO_TLS12 | PROTO_TLS13, 0, TLS1_3_VERSION },
	{ PROTO_TLS12, TLS1_2_VERSION, TLS1_2_VERSION },
	{ PROTO_TLS12, 0, TLS1_2_VERSION },
	{ PROTO_TLS12, TLS1_3_VERSION, 0 },
	{ PROTO_TLS13, TLS1_3_VERSION, TLS1_3_VERSION },
	{ PROTO_TLS13, 0, TLS1_3_VERSION },
	{ PROTO_TLS13, TLS1_2_VERSION, 0 },
};
#define NPROTOCOL_CASES (sizeof(protocol_cases) / sizeof(protocol_cases[0]))

START_TEST(test_protocols)
{
	struct world w;
	struct result r;

	world_start(&w, TICKETS_OFF, protocol_cases[_i].client);
	w.ls.protocols = protocol_cases[_i].listener;
	world_build(&w);
	if (protocol_cases[_i].want != 0) {
		connect_ok(w.cctx, w.sctx, NULL, &r, "a version the listener accepts");
		ck_assert_int_eq(r.version, protocol_cases[_i].want);
		result_free(&r);
	} else
		connect_refused(w.cctx, w.sctx, "unsupported protocol",
		    "a version the listener does not accept");
	world_end(&w);
}
END_TEST

/* ------------------------------------------------------------ ciphers */

#define LIST12 "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256"
#define LIST13 "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"

static const struct {
	const char *ciphers, *ciphersuites;	/* the listener's; NULL: the defaults */
	int version;
	const char *offer;			/* all that the client offers */
	const char *want;			/* what is agreed; NULL: refused */
} cipher_cases[] = {
	/* The listener's lists, in its order rather than the client's. */
	{ LIST12, NULL, TLS1_2_VERSION,
	    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305",
	    "ECDHE-ECDSA-CHACHA20-POLY1305" },
	{ LIST12, NULL, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256",
	    "ECDHE-ECDSA-AES128-GCM-SHA256" },
	{ LIST12, NULL, TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384", NULL },
	{ NULL, LIST13, TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256",
	    "TLS_CHACHA20_POLY1305_SHA256" },
	{ NULL, LIST13, TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256" },
	{ NULL, LIST13, TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", NULL },
	/* The defaults: ECDHE with AEAD only, no CBC, no CCM. */
	{ NULL, NULL, TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384",
	    "ECDHE-ECDSA-AES256-GCM-SHA384" },
	{ NULL, NULL, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA256", NULL },
	{ NULL, NULL, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA", NULL },
	{ NULL, NULL, TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384" },
	{ NULL, NULL, TLS1_3_VERSION, "TLS_AES_128_CCM_SHA256", NULL },
};
#define NCIPHER_CASES (sizeof(cipher_cases) / sizeof(cipher_cases[0]))

START_TEST(test_ciphers)
{
	const char *offer = cipher_cases[_i].offer, *want = cipher_cases[_i].want;
	struct world w;
	struct result r;

	world_start(&w, TICKETS_OFF, cipher_cases[_i].version);
	w.ls.ciphers = (char *)cipher_cases[_i].ciphers;
	w.ls.ciphersuites = (char *)cipher_cases[_i].ciphersuites;
	world_build(&w);
	if (cipher_cases[_i].version == TLS1_2_VERSION)
		ck_assert(SSL_CTX_set_cipher_list(w.cctx, offer) == 1);
	else
		ck_assert(SSL_CTX_set_ciphersuites(w.cctx, offer) == 1);
	if (want != NULL) {
		connect_ok(w.cctx, w.sctx, NULL, &r, offer);
		ck_assert_str_eq(r.cipher, want);
		result_free(&r);
	} else
		connect_refused(w.cctx, w.sctx, "no shared cipher", offer);
	world_end(&w);
}
END_TEST

/* ------------------------------------------------------------ certificate */

/* Connect verifying the server for "localhost" against ${anchor}; the chain length seen. */
static int
verified_chain(SSL_CTX *sctx, enum tl_id anchor, int *ok)
{
	SSL_CTX *cctx = tl_client_ctx(0);
	struct tl_tls *t;
	int len = 0;

	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	ck_assert(X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), tl_cert(anchor)) == 1);
	t = tl_tls_new(cctx, sctx, TL_LINK_MEMORY);
	ck_assert(SSL_set1_host(t->client, "localhost") == 1);
	*ok = tl_tls_handshake(t);
	if (*ok)
		len = sk_X509_num(SSL_get_peer_cert_chain(t->client));
	else
		ck_assert_msg(strstr(t->client_error, "certificate verify failed") != NULL,
		    "client: %s", t->client_error);
	tl_tls_free(t);
	SSL_CTX_free(cctx);
	return len;
}

/* Files ${a} then ${b} of the temporary directory, as file ${name}; its path. */
static const char *
concat(const char *name, const char *a, const char *b)
{
	char buf[16384];
	size_t len = 0;
	FILE *f;

	for (int i = 0; i < 2; i++) {
		ck_assert_ptr_nonnull(f = fopen(tl_path(i == 0 ? a : b), "r"));
		len += fread(buf + len, 1, sizeof(buf) - len, f);
		ck_assert(feof(f));
		fclose(f);
	}
	return tl_write_bytes(name, buf, len, 0644);
}

START_TEST(test_certificate_chain)
{
	struct world w;
	int ok;

	world_start(&w, TICKETS_OFF, 0);
	/* The leaf alone. */
	world_build(&w);
	ck_assert_int_eq(verified_chain(w.sctx, TL_CA, &ok), 1);
	ck_assert(ok);
	verified_chain(w.sctx, TL_OTHER_CA, &ok);
	ck_assert(!ok);
	SSL_CTX_free(w.sctx);
	/* Leaf first, then the chain: all of it is sent. */
	w.ls.certificates[0].cert = (char *)concat("chain.pem", "server.pem", "ca.pem");
	world_build(&w);
	ck_assert_int_eq(verified_chain(w.sctx, TL_CA, &ok), 2);
	ck_assert(ok);
	world_end(&w);
}
END_TEST

/* ------------------------------------------------------------ errors */

/* A setting that cannot be used, and what tls_ctx_new() says about it. */
static const struct {
	const char *setting;
	const char *value;		/* a file of the temporary directory, or the value */
	int line;
	const char *error;
} bad_settings[] = {
	{ "cert", "garbage.pem", TL_LINE_CERT, "cannot load the certificate chain" },
	{ "cert", "missing.pem", TL_LINE_CERT, "cannot load the certificate chain" },
	{ "cert", "server.key", TL_LINE_CERT, "cannot load the certificate chain" },
	{ "key", "garbage.pem", TL_LINE_KEY, "cannot load the private key" },
	{ "key", "server.pem", TL_LINE_KEY, "cannot load the private key" },
	/* A good key, of another certificate: said in words, as tlsproxy.conf(5) shows. */
	{ "key", "client.key", TL_LINE_KEY,
	    "the private key does not match the certificate (key values mismatch)" },
	{ "client_ca", "garbage.pem", TL_LINE_CLIENT_CA, "cannot load the CA certificates" },
	{ "client_ca", "missing.pem", TL_LINE_CLIENT_CA, "cannot load the CA certificates" },
	{ "ciphers", "NOT-A-CIPHER:ALSO-NOT", TL_LINE_CIPHERS,
	    "no usable TLS 1.2 cipher in the list" },
	{ "ciphersuites", "TLS_NOT_A_SUITE", TL_LINE_CIPHERSUITES,
	    "not a valid TLS 1.3 ciphersuite list" },
	/* Mode "stateless" without ticket keys: at the listener's group. */
	{ "listeners", "stateless", TL_LINE_LISTENER, "cannot set the session policy" },
};
#define NBAD_SETTINGS (sizeof(bad_settings) / sizeof(bad_settings[0]))

START_TEST(test_bad_setting)
{
	const char *setting = bad_settings[_i].setting, *value = bad_settings[_i].value;
	struct settings s;
	struct listener_settings ls;
	struct config_errors errs = { 0 };
	char prefix[64];

	tl_tls_settings(&s, &ls);
	tl_write("garbage.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n"
	    "-----END CERTIFICATE-----\n", 0644);
	if (strcmp(setting, "cert") == 0)
		ls.certificates[0].cert = (char *)tl_path(value);
	else if (strcmp(setting, "key") == 0)
		ls.certificates[0].key = (char *)tl_path(value);
	else if (strcmp(setting, "client_ca") == 0) {
		ls.client_ca = (char *)tl_path(value);
		ls.verify_client = VERIFY_CLIENT_REQUIRE;
	} else if (strcmp(setting, "ciphers") == 0)
		ls.ciphers = (char *)value;
	else if (strcmp(setting, "ciphersuites") == 0)
		ls.ciphersuites = (char *)value;
	else
		s.tickets.mode = TICKETS_STATELESS;
	ctx_fail(&s, &ls, &errs);
	/* "FILE:LINE: setting: " and the reason, once. */
	snprintf(prefix, sizeof(prefix), "%s: ", setting);
	tl_assert_error(&errs, bad_settings[_i].line, prefix);
	tl_assert_error(&errs, bad_settings[_i].line, bad_settings[_i].error);
	ck_assert_msg(errs.count == 1, "want one error:\n%s", tl_dump(&errs));
	config_errors_clear(&errs);
}
END_TEST

START_TEST(test_errors_in_one_pass)
{
	struct settings s;
	struct listener_settings ls;
	struct config_errors errs = { 0 };

	tl_tls_settings(&s, &ls);
	ls.certificates[0].cert = (char *)tl_path("missing.pem");
	ls.ciphers = "NOT-A-CIPHER";
	ls.ciphersuites = "TLS_NOT_A_SUITE";
	ls.verify_client = VERIFY_CLIENT_OPTIONAL;
	ls.client_ca = (char *)tl_path("missing-ca.pem");
	ctx_fail(&s, &ls, &errs);
	tl_assert_error(&errs, TL_LINE_CERT, "cert: ");
	tl_assert_error(&errs, TL_LINE_CIPHERS, "ciphers: ");
	tl_assert_error(&errs, TL_LINE_CIPHERSUITES, "ciphersuites: ");
	tl_assert_error(&errs, TL_LINE_CLIENT_CA, "client_ca: ");
	ck_assert_msg(errs.count == 4, "want 4 errors:\n%s", tl_dump(&errs));
	config_errors_clear(&errs);
}
END_TEST

/* ------------------------------------------------------------ client verification */

/* The listener of ${mode} with the test CA, met by a client of ${version} with ${id}. */
static void
verify_case(enum verify_client mode, int version, int id, struct result *r)
{
	struct world w;

	world_start(&w, TICKETS_OFF, version);
	w.ls.verify_client = mode;
	if (mode != VERIFY_CLIENT_NONE)
		w.ls.client_ca = (char *)tl_path("ca.pem");
	world_build(&w);
	if (id >= 0) {
		ck_assert(SSL_CTX_use_certificate(w.cctx, tl_cert((enum tl_id)id)) == 1);
		ck_assert(SSL_CTX_use_PrivateKey(w.cctx, tl_key((enum tl_id)id)) == 1);
	}
	connect_once(w.cctx, w.sctx, NULL, r);
	world_end(&w);
}

/* A client's certificate, or none, against each mode. */
static const struct {
	enum verify_client mode;
	int id;				/* the client's identity; -1: none */
	const char *refused;		/* the server's reason; NULL: accepted */
	const char *cn;			/* of the certificate the server then has */
} verify_cases[] = {
	{ VERIFY_CLIENT_REQUIRE, TL_CLIENT, NULL, "device1" },
	{ VERIFY_CLIENT_REQUIRE, -1, "peer did not return a certificate", NULL },
	{ VERIFY_CLIENT_REQUIRE, TL_OTHER_CLIENT, "certificate verify failed", NULL },
	{ VERIFY_CLIENT_OPTIONAL, TL_CLIENT, NULL, "device1" },
	{ VERIFY_CLIENT_OPTIONAL, -1, NULL, "" },
	/* A certificate that does not verify is refused in both modes. */
	{ VERIFY_CLIENT_OPTIONAL, TL_OTHER_CLIENT, "certificate verify failed", NULL },
	/* Nothing is asked, so nothing is sent. */
	{ VERIFY_CLIENT_NONE, TL_OTHER_CLIENT, NULL, "" },
};
#define NVERIFY_CASES (sizeof(verify_cases) / sizeof(verify_cases[0]))

START_TEST(test_verify_client)
{
	int c = _i / 2;
	struct result r;

	verify_case(verify_cases[c].mode, versions[_i % 2], verify_cases[c].id, &r);
	if (verify_cases[c].refused != NULL) {
		ck_assert_msg(!r.ok, "accepted");
		ck_assert_msg(strstr(r.server_error, verify_cases[c].refused) != NULL,
		    "server: %s", r.server_error);
		return;
	}
	ck_assert_msg(r.ok, "server: %s", r.server_error);
	ck_assert_str_eq(r.peer_cn, verify_cases[c].cn);
	if (r.peer_cn[0] != '\0')
		ck_assert_int_eq(r.verify, X509_V_OK);
	result_free(&r);
}
END_TEST

/* ------------------------------------------------------------ sessions */

/* How many sessions ${ctx}'s session ID cache holds. */
static size_t
cached(SSL_CTX *ctx)
{
	struct session_cache *sc = session_cache_of(ctx);

	return sc != NULL ? session_cache_count(sc) : 0;
}

START_TEST(test_tickets_off)
{
	struct world w;
	struct result r, r2;

	world_start(&w, TICKETS_OFF, versions[_i]);
	world_build(&w);
	connect_ok(w.cctx, w.sctx, NULL, &r, "first connection");
	ck_assert(!SSL_SESSION_has_ticket(r.session));
	if (versions[_i] == TLS1_2_VERSION) {
		/* Resumed by session ID, from the listener's cache. */
		ck_assert_int_eq(cached(w.sctx), 1);
		connect_ok(w.cctx, w.sctx, r.session, &r2, "resumption");
		ck_assert(r2.client_reused && r2.server_reused);
		ck_assert_int_eq(r2.match, TICKET_MATCH_NONE);
		ck_assert(!SSL_SESSION_has_ticket(r2.session));
		result_free(&r2);
	} else {
		/* TLS 1.3 resumes by tickets only: none sent, nothing to resume. */
		ck_assert_int_eq(r.new_sessions, 0);
		ck_assert(!SSL_SESSION_is_resumable(r.session));
	}
	result_free(&r);
	world_end(&w);
}
END_TEST

START_TEST(test_tickets_stateless)
{
	struct world w;
	struct result r, r2;

	world_start(&w, TICKETS_STATELESS, versions[_i]);
	world_build(&w);
	connect_ok(w.cctx, w.sctx, NULL, &r, "first connection");
	ck_assert(SSL_SESSION_has_ticket(r.session));
	/* One ticket by default, in TLS 1.3 (tls13_tickets) as in TLS 1.2. */
	ck_assert_int_eq(r.new_sessions, 1);
	connect_ok(w.cctx, w.sctx, r.session, &r2, "resumption");
	ck_assert(r2.client_reused && r2.server_reused);
	ck_assert_int_eq(r2.match, TICKET_MATCH_CURRENT);
	result_free(&r2);
	result_free(&r);
	world_end(&w);
}
END_TEST

START_TEST(test_tickets_stateful)
{
	struct world w;
	struct result r, r2;

	world_start(&w, TICKETS_STATEFUL, versions[_i]);
	world_build(&w);
	ck_assert_ptr_null(w.tk);
	connect_ok(w.cctx, w.sctx, NULL, &r, "first connection");
	/* No TLS 1.2 ticket; TLS 1.3 tickets name an entry of the cache. */
	ck_assert(SSL_SESSION_has_ticket(r.session) == (versions[_i] == TLS1_3_VERSION));
	ck_assert_int_ge(cached(w.sctx), 1);
	connect_ok(w.cctx, w.sctx, r.session, &r2, "resumption");
	ck_assert(r2.client_reused && r2.server_reused);
	/* Not by a seed-derived key. */
	ck_assert_int_eq(r2.match, TICKET_MATCH_NONE);
	result_free(&r2);
	result_free(&r);
	world_end(&w);
}
END_TEST

static const struct {
	enum tickets_mode mode;
	int64_t count;
} ticket_counts[] = {
	{ TICKETS_STATELESS, 0 }, { TICKETS_STATELESS, 1 }, { TICKETS_STATELESS, 5 },
	{ TICKETS_STATEFUL, 0 }, { TICKETS_STATEFUL, 1 }, { TICKETS_STATEFUL, 5 },
};
#define NTICKET_COUNTS (sizeof(ticket_counts) / sizeof(ticket_counts[0]))

START_TEST(test_tls13_tickets_count)
{
	struct world w;
	struct result r, r2;
	int want = (int)ticket_counts[_i].count;

	world_start(&w, ticket_counts[_i].mode, TLS1_3_VERSION);
	w.s.tickets.tls13_tickets = ticket_counts[_i].count;
	world_build(&w);
	connect_ok(w.cctx, w.sctx, NULL, &r, "full handshake");
	ck_assert_int_eq(r.new_sessions, want);
	ck_assert(SSL_SESSION_is_resumable(r.session) == (want > 0));
	if (want > 0) {
		/* OpenSSL replaces only the ticket used by a resumption: one. */
		connect_ok(w.cctx, w.sctx, r.session, &r2, "resumption");
		ck_assert(r2.server_reused);
		ck_assert_int_eq(r2.new_sessions, 1);
		result_free(&r2);
	}
	result_free(&r);
	world_end(&w);
}
END_TEST

/*
 * tls13_renew: "always" follows every TLS 1.3 resumption with a ticket;
 * "rotation" only one whose ticket was under a key other than the current
 * one (here: the previous seed), and the client resumes again with the
 * ticket it already has.
 */
START_TEST(test_tls13_renew)
{
	static const char other_seed[] = "fedcba9876543210fedcba9876543210";
	enum tls13_renew renew = _i == 0 ? TLS13_RENEW_ALWAYS : TLS13_RENEW_ROTATION;
	struct config_errors errs = { 0 };
	struct world w;
	struct result r, r2, r3;
	struct ticket_keys *tk2;
	SSL_CTX *ctx2;

	world_start(&w, TICKETS_STATELESS, TLS1_3_VERSION);
	w.s.tickets.tls13_renew = renew;
	world_build(&w);
	connect_ok(w.cctx, w.sctx, NULL, &r, "full handshake");
	ck_assert_int_eq(r.new_sessions, 1);
	connect_ok(w.cctx, w.sctx, r.session, &r2, "resumption");
	ck_assert(r2.server_reused);
	ck_assert_int_eq(r2.match, TICKET_MATCH_CURRENT);
	ck_assert_int_eq(r2.new_sessions, renew == TLS13_RENEW_ALWAYS ? 1 : 0);
	result_free(&r2);
	connect_ok(w.cctx, w.sctx, r.session, &r2, "the same ticket again");
	ck_assert(r2.server_reused);
	result_free(&r2);

	/* A new seed, the old one previous: the old ticket resumes, renewed. */
	w.s.tickets.previous_seed = w.s.tickets.seed;
	w.s.tickets.previous_seed_len = w.s.tickets.seed_len;
	w.s.tickets.seed = (unsigned char *)other_seed;
	w.s.tickets.seed_len = sizeof(other_seed) - 1;
	ck_assert_ptr_nonnull(tk2 = ticket_keys_new(&w.s.tickets));
	ck_assert_ptr_nonnull(ctx2 = tls_ctx_new(&w.s, &w.ls, tk2, &errs));
	connect_ok(w.cctx, ctx2, r.session, &r3, "under the previous seed");
	ck_assert(r3.server_reused);
	ck_assert_int_eq(r3.match, TICKET_MATCH_PREVIOUS_SEED);
	ck_assert_int_eq(r3.new_sessions, 1);
	result_free(&r3);
	w.s.tickets.previous_seed = NULL;
	w.s.tickets.previous_seed_len = 0;
	tl_server_ctx_free(ctx2, tk2);
	result_free(&r);
	world_end(&w);
}
END_TEST

START_TEST(test_session_cache_off)
{
	struct world w;
	struct result r, r2;

	world_start(&w, TICKETS_OFF, TLS1_2_VERSION);
	w.s.session_cache_size = 0;
	world_build(&w);
	connect_ok(w.cctx, w.sctx, NULL, &r, "first connection");
	ck_assert_int_eq(cached(w.sctx), 0);
	connect_ok(w.cctx, w.sctx, r.session, &r2, "offering the session");
	ck_assert(!r2.client_reused && !r2.server_reused);
	result_free(&r2);
	result_free(&r);
	world_end(&w);
}
END_TEST

START_TEST(test_expire_sessions)
{
	struct world w;
	struct result old, young, r;

	world_start(&w, TICKETS_OFF, TLS1_2_VERSION);
	w.s.session_cache_timeout = 300;
	world_build(&w);
	connect_ok(w.cctx, w.sctx, NULL, &old, "first session");
	connect_ok(w.cctx, w.sctx, NULL, &young, "second session");
	ck_assert_int_eq(cached(w.sctx), 2);
	/* Nothing has expired: nothing goes. */
	tls_ctx_expire_sessions(w.sctx);
	ck_assert_int_eq(cached(w.sctx), 2);
	/* The first began longer ago than the timeout (no waiting: its start is moved). */
	tl_session_set_time(old.server_session, (int64_t)time(NULL) - 301);
	tls_ctx_expire_sessions(w.sctx);
	ck_assert_int_eq(cached(w.sctx), 1);
	connect_ok(w.cctx, w.sctx, old.session, &r, "the expired session");
	ck_assert(!r.server_reused);
	result_free(&r);
	connect_ok(w.cctx, w.sctx, young.session, &r, "the other session");
	ck_assert(r.server_reused);
	result_free(&r);
	result_free(&old);
	result_free(&young);
	world_end(&w);
}
END_TEST

START_TEST(test_sessions_stay_in_their_listener)
{
	struct settings s;
	struct listener_settings ls;
	struct ticket_keys *tk, *tk2, *tk3;
	SSL_CTX *a, *b, *a2, *cctx = tl_client_ctx(versions[_i]);
	struct result r, r2;

	/* The same seed everywhere, so every node decrypts every ticket. */
	tl_tls_settings(&s, &ls);
	s.tickets.mode = TICKETS_STATELESS;
	a = tl_server_ctx(&s, &ls, &tk);
	a2 = tl_server_ctx(&s, &ls, &tk2);	/* listener "mqtt" on another node */
	ls.name = "mqtt-other";
	b = tl_server_ctx(&s, &ls, &tk3);
	connect_ok(cctx, a, NULL, &r, "first connection");
	connect_ok(cctx, a2, r.session, &r2, "the same listener on another node");
	ck_assert(r2.server_reused);
	result_free(&r2);
	connect_ok(cctx, b, r.session, &r2, "another listener");
	ck_assert(!r2.client_reused && !r2.server_reused);
	result_free(&r2);
	result_free(&r);
	SSL_CTX_free(cctx);
	tl_server_ctx_free(b, tk3);
	tl_server_ctx_free(a2, tk2);
	tl_server_ctx_free(a, tk);
}
END_TEST

/* ${cctx} presents the test device's certificate (CN=device1). */
static void
client_presents_cert(SSL_CTX *cctx)
{
	ck_assert(SSL_CTX_use_certificate(cctx, tl_cert(TL_CLIENT)) == 1);
	ck_assert(SSL_CTX_use_PrivateKey(cctx, tl_key(TL_CLIENT)) == 1);
}

/*
 * Sessions are bound to the listener's client-certificate policy: the same
 * settings on another node (another context) resume, "optional" turned
 * into "require" refuses, for TLS 1.2 and 1.3 tickets and TLS 1.2 session
 * IDs (the cache handed on as a reload does).
 */
static const struct {
	enum tickets_mode mode;
	int version;
} binding_cases[] = {
	{ TICKETS_STATELESS, TLS1_2_VERSION }, { TICKETS_STATELESS, TLS1_3_VERSION },
	{ TICKETS_OFF, TLS1_2_VERSION }, { TICKETS_STATEFUL, TLS1_3_VERSION },
};
#define NBINDING_CASES (int)(sizeof(binding_cases) / sizeof(binding_cases[0]))

START_TEST(test_policy_binding)
{
	struct settings s;
	struct listener_settings ls;
	struct ticket_keys *tk, *tk2, *tk3;
	SSL_CTX *a, *same, *strict, *cctx = tl_client_ctx(binding_cases[_i].version);
	struct result r, r2;
	uint64_t policy = stats_get(STAT_TICKET_REJECTED_POLICY);

	client_presents_cert(cctx);
	tl_tls_settings(&s, &ls);
	s.tickets.mode = binding_cases[_i].mode;
	ls.client_ca = (char *)tl_path("ca.pem");
	ls.verify_client = VERIFY_CLIENT_OPTIONAL;
	a = tl_server_ctx(&s, &ls, &tk);
	same = tl_server_ctx(&s, &ls, &tk2);
	ls.verify_client = VERIFY_CLIENT_REQUIRE;
	strict = tl_server_ctx(&s, &ls, &tk3);
	ck_assert_mem_ne(session_check_fingerprint(a), session_check_fingerprint(strict),
	    SESSION_FINGERPRINT_LEN);
	ck_assert_mem_eq(session_check_fingerprint(a), session_check_fingerprint(same),
	    SESSION_FINGERPRINT_LEN);
	/* Session IDs and stateful tickets live in a cache: hand it on. */
	tls_ctx_keep_sessions(same, a);
	tls_ctx_keep_sessions(strict, a);

	connect_ok(cctx, a, NULL, &r, "first connection");
	ck_assert_str_eq(r.peer_cn, "device1");
	connect_ok(cctx, same, r.session, &r2, "the same policy");
	ck_assert(r2.client_reused && r2.server_reused);
	result_free(&r2);
	ck_assert_uint_eq(stats_get(STAT_TICKET_REJECTED_POLICY), policy);
	connect_ok(cctx, strict, r.session, &r2, "a stricter policy");
	ck_assert(!r2.client_reused && !r2.server_reused);
	ck_assert_str_eq(r2.peer_cn, "device1");	/* verified again */
	ck_assert_uint_eq(stats_get(STAT_TICKET_REJECTED_POLICY), policy + 1);
	result_free(&r2);
	result_free(&r);
	SSL_CTX_free(cctx);
	tl_server_ctx_free(strict, tk3);
	tl_server_ctx_free(same, tk2);
	tl_server_ctx_free(a, tk);
}
END_TEST

/* A reload that changes nothing of the policy keeps TLS 1.2 session IDs. */
START_TEST(test_sessions_kept_across_reload)
{
	struct world w;
	struct result r, r2;
	SSL_CTX *fresh, *reloaded;
	struct ticket_keys *tk2, *tk3;

	world_start(&w, TICKETS_OFF, TLS1_2_VERSION);
	world_build(&w);
	connect_ok(w.cctx, w.sctx, NULL, &r, "first connection");
	fresh = tl_server_ctx(&w.s, &w.ls, &tk2);
	connect_ok(w.cctx, fresh, r.session, &r2, "a new context, its own cache");
	ck_assert(!r2.server_reused);
	result_free(&r2);
	w.s.session_cache_size = 5;	/* a changed setting that is not policy */
	reloaded = tl_server_ctx(&w.s, &w.ls, &tk3);
	tls_ctx_keep_sessions(reloaded, w.sctx);
	ck_assert_ptr_eq(session_cache_of(reloaded), session_cache_of(w.sctx));
	connect_ok(w.cctx, reloaded, r.session, &r2, "after the reload");
	ck_assert(r2.client_reused && r2.server_reused);
	result_free(&r2);
	result_free(&r);
	tl_server_ctx_free(reloaded, tk3);
	tl_server_ctx_free(fresh, tk2);
	world_end(&w);
}
END_TEST

/* max_session_age, from the session's start (a session ID's full handshake). */
START_TEST(test_max_session_age_session_id)
{
	struct world w;
	struct result r, r2;
	uint64_t too_old = stats_get(STAT_TICKET_REJECTED_TOO_OLD);

	world_start(&w, TICKETS_OFF, TLS1_2_VERSION);
	w.s.session_cache_timeout = 3600;
	w.s.tickets.max_session_age = 100;
	world_build(&w);
	connect_ok(w.cctx, w.sctx, NULL, &r, "first connection");
	/* The cap: no session outlives max_session_age. */
	ck_assert_int_le(SSL_SESSION_get_timeout(r.server_session), 100);
	ck_assert(SSL_SESSION_set_timeout(r.server_session, 3600) == 1);
	tl_session_set_time(r.server_session, (int64_t)time(NULL) - 99);
	connect_ok(w.cctx, w.sctx, r.session, &r2, "99 s old");
	ck_assert(r2.server_reused);
	result_free(&r2);
	tl_session_set_time(r.server_session, (int64_t)time(NULL) - 102);
	connect_ok(w.cctx, w.sctx, r.session, &r2, "102 s old");
	ck_assert(!r2.server_reused);
	ck_assert_uint_eq(stats_get(STAT_TICKET_REJECTED_TOO_OLD), too_old + 1);
	ck_assert_int_eq(cached(w.sctx), 1);	/* the refused one went, the new one came */
	result_free(&r2);
	result_free(&r);
	world_end(&w);
}
END_TEST

/* A session never outlives its client certificate (valid for a day here). */
START_TEST(test_lifetime_capped_at_certificate)
{
	struct world w;
	struct result r;
	int day = 0, sec = 0;
	int64_t left;

	/* What is left of the test device's certificate. */
	ck_assert(ASN1_TIME_diff(&day, &sec, NULL, X509_get0_notAfter(tl_cert(TL_CLIENT))) == 1);
	left = (int64_t)day * 86400 + sec;
	ck_assert_int_lt(left, 7 * 86400);

	world_start(&w, TICKETS_STATELESS, versions[_i]);
	client_presents_cert(w.cctx);
	w.ls.client_ca = (char *)tl_path("ca.pem");
	w.ls.verify_client = VERIFY_CLIENT_REQUIRE;
	w.s.tickets.session_lifetime = 7 * 86400;
	world_build(&w);
	connect_ok(w.cctx, w.sctx, NULL, &r, "first connection");
	ck_assert_int_le(SSL_SESSION_get_timeout(r.server_session), left);
	ck_assert_int_gt(SSL_SESSION_get_timeout(r.server_session), left - 60);
	ck_assert_uint_le(SSL_SESSION_get_ticket_lifetime_hint(r.session), (unsigned long)left);
	result_free(&r);
	world_end(&w);
}
END_TEST

static Suite *
tls_ctx_suite(void)
{
	Suite *s = suite_create("tls_ctx");
	TCase *tc;

	tc = tl_tls_tcase("policy");
	tcase_add_loop_test(tc, test_protocols, 0, NPROTOCOL_CASES);
	tcase_add_loop_test(tc, test_ciphers, 0, NCIPHER_CASES);
	tcase_add_test(tc, test_certificate_chain);
	suite_add_tcase(s, tc);

	tc = tl_tls_tcase("errors");
	tcase_add_loop_test(tc, test_bad_setting, 0, NBAD_SETTINGS);
	tcase_add_test(tc, test_errors_in_one_pass);
	suite_add_tcase(s, tc);

	tc = tl_tls_tcase("verify_client");
	tcase_add_loop_test(tc, test_verify_client, 0, 2 * NVERIFY_CASES);
	suite_add_tcase(s, tc);

	tc = tl_tls_tcase("sessions");
	tcase_add_loop_test(tc, test_tickets_off, 0, 2);
	tcase_add_loop_test(tc, test_tickets_stateless, 0, 2);
	tcase_add_loop_test(tc, test_tickets_stateful, 0, 2);
	tcase_add_loop_test(tc, test_tls13_tickets_count, 0, NTICKET_COUNTS);
	tcase_add_loop_test(tc, test_tls13_renew, 0, 2);
	tcase_add_test(tc, test_session_cache_off);
	tcase_add_test(tc, test_expire_sessions);
	tcase_add_loop_test(tc, test_sessions_stay_in_their_listener, 0, 2);
	tcase_add_loop_test(tc, test_policy_binding, 0, NBINDING_CASES);
	tcase_add_test(tc, test_sessions_kept_across_reload);
	tcase_add_test(tc, test_max_session_age_session_id);
	tcase_add_loop_test(tc, test_lifetime_capped_at_certificate, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(tls_ctx_suite());
}
