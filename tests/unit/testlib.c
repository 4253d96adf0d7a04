/*
 * testlib: the unit tests' temporary directory, file writers, config
 * loaders and error-line assertions; the test PKI, listener settings and
 * the TLS pair; the PROXY v2 TLV reader (see testlib.h).
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "testlib.h"
#include "../../src/proxy_header.h"
#include "../../src/ticket_keys.h"
#include "../../src/tls_ctx.h"

#define TL_MAX_PATHS 64

static char *dir;
static char *paths[TL_MAX_PATHS];
static size_t npaths;

void
tl_setup(void)
{
	const char *tmp = getenv("TMPDIR");

	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	ck_assert(asprintf(&dir, "%s/tlsproxy-test.XXXXXX", tmp) != -1);
	ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp in %s failed", tmp);
}

static int
remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
tl_teardown(void)
{
	size_t i;

	if (dir != NULL) {
		/* Depth first, and never follow a symlink out of the directory. */
		nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
		free(dir);
		dir = NULL;
	}
	for (i = 0; i < npaths; i++)
		free(paths[i]);
	npaths = 0;
}

const char *
tl_dir(void)
{
	ck_assert_msg(dir != NULL, "tl_setup() was not called");
	return dir;
}

/* Keep ${p} until teardown, so that callers get a stable pointer. */
static char *
keep(char *p)
{
	ck_assert(p != NULL);
	ck_assert(npaths < TL_MAX_PATHS);
	paths[npaths++] = p;
	return p;
}

const char *
tl_write_bytes(const char *name, const void *content, size_t len, mode_t mode)
{
	char *path;
	int fd;

	ck_assert(asprintf(&path, "%s/%s", tl_dir(), name) != -1);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_msg(fd != -1, "cannot create %s", path);
	ck_assert(write(fd, content, len) == (ssize_t)len);
	/* fchmod, because open()'s mode is filtered by the umask. */
	ck_assert(fchmod(fd, mode) == 0);
	ck_assert(close(fd) == 0);
	return keep(path);
}

const char *
tl_write(const char *name, const char *content, mode_t mode)
{
	return tl_write_bytes(name, content, strlen(content), mode);
}

void
tl_placeholders(void)
{
	tl_write("cert.pem", "placeholder certificate\n", 0644);
	tl_write("key.pem", "placeholder key\n", 0600);
	tl_write("ca.pem", "placeholder CA\n", 0644);
	tl_write("ticket.seed", "0123456789abcdef0123456789abcdef\n", 0600);
}

const char *
tl_config(const char *text)
{
	return tl_write_conf("tlsproxy.conf", text);
}

const char *
tl_write_conf(const char *name, const char *text)
{
	const char *at, *mark = "@DIR@";
	char *out;
	size_t len;
	FILE *fp;

	/* Replace every @DIR@ by the temporary directory. */
	ck_assert((fp = open_memstream(&out, &len)) != NULL);
	while ((at = strstr(text, mark)) != NULL) {
		fwrite(text, 1, (size_t)(at - text), fp);
		fputs(tl_dir(), fp);
		text = at + strlen(mark);
	}
	fputs(text, fp);
	ck_assert(fclose(fp) == 0);
	name = tl_write(name, out, 0644);
	free(out);
	return name;
}

struct settings *
tl_load(const char *text, struct config_errors *errs)
{
	return settings_load(tl_config(text), errs);
}

const char *
tl_dump(const struct config_errors *errs)
{
	static char buf[16384];
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < errs->count && o < sizeof(buf); i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "  %s\n",
		    errs->lines[i]);
	if (errs->count == 0)
		snprintf(buf, sizeof(buf), "  (none)\n");
	return buf;
}

struct settings *
tl_load_ok(const char *text)
{
	struct config_errors errs = { 0 };
	struct settings *s;

	s = tl_load(text, &errs);
	ck_assert_msg(s != NULL, "load failed:\n%s", tl_dump(&errs));
	ck_assert_msg(errs.count == 0, "load succeeded with errors:\n%s",
	    tl_dump(&errs));
	config_errors_clear(&errs);
	return s;
}

void
tl_load_fail(const char *text, struct config_errors *errs)
{
	struct settings *s;

	s = tl_load(text, errs);
	ck_assert_msg(s == NULL, "load succeeded but should have failed");
	ck_assert_msg(errs->count > 0, "load failed without an error line");
}

int
tl_has_error(const struct config_errors *errs, const char *file, int line,
    const char *substr)
{
	char prefix[4200], conf[4100];
	size_t i;

	if (file == NULL) {
		snprintf(conf, sizeof(conf), "%s/tlsproxy.conf", tl_dir());
		file = conf;
	}
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%d: ", file, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", file);
	for (i = 0; i < errs->count; i++)
		if (strncmp(errs->lines[i], prefix, strlen(prefix)) == 0 &&
		    strstr(errs->lines[i], substr) != NULL)
			return 1;
	return 0;
}

int
tl_run(Suite *suite)
{
	SRunner *sr = srunner_create(suite);
	int failed;

	/* TAP on stdout for automake's tap-driver; a fork per test unless
	 * CK_FORK=no asks otherwise (valgrind runs). */
	signal(SIGPIPE, SIG_IGN);
	srunner_set_tap(sr, "-");
	srunner_set_fork_status(sr, getenv("CK_FORK") != NULL ? CK_FORK_GETENV : CK_FORK);
	srunner_run_all(sr, CK_SILENT);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}

/* ------------------------------------------------------------ TLS */

static EVP_PKEY *pki_key[TL_NIDS];
static X509 *pki_cert[TL_NIDS];

/* Each identity as gen-certs.sh makes it; an issuer comes before what it signs. */
static const struct {
	const char *name, *cn;
	enum tl_id issuer;		/* itself for a CA */
	const char *eku, *san;		/* NULL: none */
} pki_spec[TL_NIDS] = {
	[TL_CA] = { "ca", "tlsproxy test CA", TL_CA, NULL, NULL },
	[TL_SERVER] = { "server", "localhost", TL_CA, "serverAuth",
	    "DNS:localhost,IP:127.0.0.1" },
	[TL_CLIENT] = { "client", "device1", TL_CA, "clientAuth", NULL },
	[TL_OTHER_CA] = { "other-ca", "untrusted test CA", TL_OTHER_CA, NULL, NULL },
	[TL_OTHER_CLIENT] = { "other-client", "device1", TL_OTHER_CA, "clientAuth", NULL },
	[TL_OCSP] = { "ocsp", "tlsproxy test OCSP responder", TL_CA, "OCSPSigning", NULL },
};

static void
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	ck_assert_msg(ext != NULL, "extension %s = %s", OBJ_nid2sn(nid), value);
	ck_assert(X509_add_ext(cert, ext, -1) == 1);
	X509_EXTENSION_free(ext);
}

void
tl_pki_setup(void)
{
	for (int id = 0; id < TL_NIDS; id++) {
		int ca = pki_spec[id].issuer == (enum tl_id)id;
		X509 *cert, *issuer;

		ck_assert_ptr_nonnull(pki_key[id] = EVP_EC_gen("P-256"));
		ck_assert_ptr_nonnull(cert = pki_cert[id] = X509_new());
		issuer = ca ? cert : pki_cert[pki_spec[id].issuer];
		ck_assert(X509_set_version(cert, 2) == 1);
		ck_assert(ASN1_INTEGER_set(X509_get_serialNumber(cert), id + 1) == 1);
		ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(cert), -3600));
		ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(cert), 86400));
		ck_assert(X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN",
		    MBSTRING_ASC, (const unsigned char *)pki_spec[id].cn, -1, -1, 0) == 1);
		ck_assert(X509_set_issuer_name(cert, X509_get_subject_name(issuer)) == 1);
		ck_assert(X509_set_pubkey(cert, pki_key[id]) == 1);
		add_ext(cert, issuer, NID_basic_constraints, ca ? "critical,CA:TRUE" :
		    "critical,CA:FALSE");
		add_ext(cert, issuer, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" :
		    "critical,digitalSignature");
		add_ext(cert, issuer, NID_subject_key_identifier, "hash");
		if (!ca)
			add_ext(cert, issuer, NID_authority_key_identifier, "keyid");
		if (pki_spec[id].eku != NULL)
			add_ext(cert, issuer, NID_ext_key_usage, pki_spec[id].eku);
		if (pki_spec[id].san != NULL)
			add_ext(cert, issuer, NID_subject_alt_name, pki_spec[id].san);
		ck_assert(X509_sign(cert, pki_key[pki_spec[id].issuer], EVP_sha256()) > 0);
	}
}

void
tl_pki_teardown(void)
{
	for (int id = 0; id < TL_NIDS; id++) {
		X509_free(pki_cert[id]);
		EVP_PKEY_free(pki_key[id]);
		pki_cert[id] = NULL;
		pki_key[id] = NULL;
	}
}

X509 *
tl_cert(enum tl_id id)
{
	ck_assert_msg(pki_cert[id] != NULL, "tl_pki_setup() was not called");
	return pki_cert[id];
}

EVP_PKEY *
tl_key(enum tl_id id)
{
	ck_assert_msg(pki_key[id] != NULL, "tl_pki_setup() was not called");
	return pki_key[id];
}

/* Write what ${bio} holds to ${name} with ${mode}, and free it. */
static void
write_bio(BIO *bio, const char *name, mode_t mode)
{
	char *data;
	long len = BIO_get_mem_data(bio, &data);

	ck_assert_int_gt(len, 0);
	tl_write_bytes(name, data, (size_t)len, mode);
	BIO_free(bio);
}

void
tl_pki_write(void)
{
	char name[64];
	BIO *bio;

	for (int id = 0; id < TL_NIDS; id++) {
		ck_assert_ptr_nonnull(bio = BIO_new(BIO_s_mem()));
		ck_assert(PEM_write_bio_X509(bio, tl_cert(id)) == 1);
		snprintf(name, sizeof(name), "%s.pem", pki_spec[id].name);
		write_bio(bio, name, 0644);
		ck_assert_ptr_nonnull(bio = BIO_new(BIO_s_mem()));
		ck_assert(PEM_write_bio_PrivateKey(bio, tl_key(id), NULL, NULL, 0, NULL,
		    NULL) == 1);
		snprintf(name, sizeof(name), "%s.key", pki_spec[id].name);
		write_bio(bio, name, 0600);
	}
}

static void
tls_setup(void)
{
	tl_setup();
	tl_pki_write();
}

static void
tls_teardown(void)
{
	ticket_keys_thread_end();
	tl_teardown();
}

TCase *
tl_tls_tcase(const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, tl_pki_setup, tl_pki_teardown);
	tcase_add_checked_fixture(tc, tls_setup, tls_teardown);
	return tc;
}

const char *
tl_path(const char *name)
{
	char *path;

	ck_assert(asprintf(&path, "%s/%s", tl_dir(), name) != -1);
	return keep(path);
}

void
tl_tls_settings(struct settings *s, struct listener_settings *ls)
{
	const char *conf = tl_path("tlsproxy.conf");

	memset(s, 0, sizeof(*s));
	memset(ls, 0, sizeof(*ls));
	s->path = (char *)conf;
	s->workers = 1;
	s->session_cache_size = 20480;
	s->session_cache_timeout = 300;
	s->tickets.mode = TICKETS_OFF;
	s->tickets.rotation_interval = 3600;
	s->tickets.decrypt_grace = 43200;
	s->tickets.session_lifetime = 43200;
	s->tickets.max_session_age = 7 * 86400;
	s->tickets.tls13_tickets = 1;
	s->listeners = ls;
	s->nlisteners = 1;
	ls->name = keep(strdup("mqtt"));
	ls->certificates = (struct certificate_settings *)keep(calloc(1,
	    sizeof(*ls->certificates)));
	ls->ncertificates = 1;
	ls->certificates->cert = (char *)tl_path("server.pem");
	ls->certificates->key = (char *)tl_path("server.key");
	ls->protocols = PROTO_TLS12 | PROTO_TLS13;
	ls->handshake_timeout = 10;
	ls->connect_timeout = 5;
	ls->max_connections = 10000;
	ls->where = (struct config_where){ conf, TL_LINE_LISTENER };
	ls->certificates->where = ls->where;
	ls->certificates->cert_where = (struct config_where){ conf, TL_LINE_CERT };
	ls->certificates->key_where = (struct config_where){ conf, TL_LINE_KEY };
	ls->client_ca_where = (struct config_where){ conf, TL_LINE_CLIENT_CA };
	ls->crl_where = (struct config_where){ conf, TL_LINE_CRL };
	ls->ciphers_where = (struct config_where){ conf, TL_LINE_CIPHERS };
	ls->ciphersuites_where = (struct config_where){ conf, TL_LINE_CIPHERSUITES };
}

SSL_CTX *
tl_server_ctx(struct settings *s, struct listener_settings *ls, struct ticket_keys **tk)
{
	static const char seed[] = "0123456789abcdef0123456789abcdef";
	struct config_errors errs = { 0 };
	SSL_CTX *ctx;

	*tk = NULL;
	if (s->tickets.mode == TICKETS_STATELESS) {
		s->tickets.seed = (unsigned char *)seed;
		s->tickets.seed_len = sizeof(seed) - 1;
		s->tickets.rotation_interval = (int64_t)1 << 30;
		ck_assert_ptr_nonnull(*tk = ticket_keys_new(&s->tickets));
	}
	ctx = tls_ctx_new(s, ls, *tk, &errs);
	ck_assert_msg(ctx != NULL, "tls_ctx_new failed:\n%s", tl_dump(&errs));
	ck_assert_msg(errs.count == 0, "tls_ctx_new succeeded with errors:\n%s",
	    tl_dump(&errs));
	return ctx;
}

void
tl_server_ctx_free(SSL_CTX *ctx, struct ticket_keys *tk)
{
	SSL_CTX_free(ctx);
	ticket_keys_unref(tk);
}

void
tl_session_set_time(SSL_SESSION *sess, int64_t t)
{
	/* OpenSSL 3.4 deprecated the form without _ex, which 3.0 lacks. */
#ifdef HAVE_SSL_SESSION_SET_TIME_EX
	ck_assert(SSL_SESSION_set_time_ex(sess, (time_t)t) != 0);
#else
	ck_assert(SSL_SESSION_set_time(sess, (long)t) != 0);
#endif
}

static int
count_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tl_tls *t = SSL_get_app_data(ssl);

	(void)sess;
	if (t != NULL)
		t->new_sessions++;
	return 0;	/* not kept: SSL_get1_session() is what tests use */
}

SSL_CTX *
tl_client_ctx(int version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	ck_assert_ptr_nonnull(ctx);
	ck_assert(SSL_CTX_set_min_proto_version(ctx, version ? version : TLS1_2_VERSION) == 1);
	ck_assert(SSL_CTX_set_max_proto_version(ctx, version ? version : TLS1_3_VERSION) == 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, count_session);
	/* Tests write what fits and come back for the rest. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
}

/* A TCP connection over 127.0.0.1: the connecting end, the accepted one. */
static void
tcp_pair(int *cfd, int *sfd, struct sockaddr_storage *peer)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a), plen = sizeof(*peer);
	int l;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ge(l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), 0);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(l, 1), 0);
	ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &alen), 0);
	ck_assert_int_ge(*cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), 0);
	/* Blocking, and done once the kernel has queued it for accept(). */
	ck_assert_int_eq(connect(*cfd, (struct sockaddr *)&a, alen), 0);
	ck_assert_int_ge(*sfd = accept4(l, (struct sockaddr *)peer, &plen, SOCK_CLOEXEC), 0);
	close(l);
}

struct tl_tls *
tl_tls_new(SSL_CTX *cctx, SSL_CTX *sctx, enum tl_link link)
{
	struct tl_tls *t = calloc(1, sizeof(*t));
	BIO *bc = NULL, *bs = NULL;
	int sv[2];

	ck_assert_ptr_nonnull(t);
	ck_assert_ptr_nonnull(t->client = SSL_new(cctx));
	ck_assert_ptr_nonnull(t->server = SSL_new(sctx));
	t->client_fd = t->server_fd = -1;
	if (link == TL_LINK_MEMORY) {
		ck_assert(BIO_new_bio_pair(&bc, 0, &bs, 0) == 1);
	} else {
		if (link == TL_LINK_UNIX) {
			ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
			t->client_fd = sv[0];
			t->server_fd = sv[1];
		} else
			tcp_pair(&t->client_fd, &t->server_fd, &t->peer);
		ck_assert_int_eq(fcntl(t->client_fd, F_SETFL, O_NONBLOCK), 0);
		ck_assert_int_eq(fcntl(t->server_fd, F_SETFL, O_NONBLOCK), 0);
		ck_assert_ptr_nonnull(bc = BIO_new_socket(t->client_fd, BIO_NOCLOSE));
		ck_assert_ptr_nonnull(bs = BIO_new_socket(t->server_fd, BIO_NOCLOSE));
	}
	SSL_set_bio(t->client, bc, bc);
	SSL_set_bio(t->server, bs, bs);
	SSL_set_connect_state(t->client);
	SSL_set_accept_state(t->server);
	SSL_set_app_data(t->client, t);
	return t;
}

void
tl_tls_offer(struct tl_tls *t, SSL_SESSION *sess)
{
	unsigned char *der = NULL;
	const unsigned char *pp;
	int len = i2d_SSL_SESSION(sess, &der);
	SSL_SESSION *copy;

	/* Through its DER encoding: a fresh, resumable session. */
	ck_assert_int_gt(len, 0);
	pp = der;
	ck_assert_ptr_nonnull(copy = d2i_SSL_SESSION(NULL, &pp, len));
	OPENSSL_free(der);
	ck_assert(SSL_set_session(t->client, copy) == 1);
	SSL_SESSION_free(copy);
}

/* One step of ${ssl}'s handshake; on failure, ${why} says OpenSSL's reasons. */
static void
hs_step(SSL *ssl, enum tl_hs *hs, char *why, size_t len)
{
	int rc, err;

	if (*hs != TL_HS_RUNNING)
		return;
	/* Both ends share this thread's error queue: each step starts empty. */
	ERR_clear_error();
	rc = SSL_do_handshake(ssl);
	if (rc == 1) {
		*hs = TL_HS_DONE;
		return;
	}
	err = SSL_get_error(ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return;
	*hs = TL_HS_FAILED;
	ssl_errors_drain(why, (unsigned long)len);
}

/* Wait until a running end of ${t} has something to read; fail if none ever does. */
static void
wait_readable(struct tl_tls *t)
{
	struct pollfd p[2] = {
		{ t->client_hs == TL_HS_RUNNING ? t->client_fd : -1, POLLIN, 0 },
		{ t->server_hs == TL_HS_RUNNING ? t->server_fd : -1, POLLIN, 0 },
	};

	ck_assert_msg(poll(p, 2, 10000) > 0, "the handshake stalled: nothing to read");
}

int
tl_tls_handshake(struct tl_tls *t)
{
	for (int round = 0; round < 64; round++) {
		hs_step(t->client, &t->client_hs, t->client_error, sizeof(t->client_error));
		hs_step(t->server, &t->server_hs, t->server_error, sizeof(t->server_error));
		if (t->client_hs == TL_HS_FAILED || t->server_hs == TL_HS_FAILED) {
			/* Let the other end read the alert. */
			hs_step(t->client, &t->client_hs, t->client_error,
			    sizeof(t->client_error));
			hs_step(t->server, &t->server_hs, t->server_error,
			    sizeof(t->server_error));
			return 0;
		}
		if (t->client_hs == TL_HS_DONE && t->server_hs == TL_HS_DONE)
			return 1;
		if (t->client_fd >= 0)
			wait_readable(t);
	}
	ck_abort_msg("the handshake did not finish");
	return 0;
}

void
tl_tls_settle(struct tl_tls *t)
{
	char byte = 0;
	int n;

	ck_assert_int_eq(SSL_write(t->server, "x", 1), 1);
	while ((n = SSL_read(t->client, &byte, 1)) <= 0) {
		struct pollfd p = { t->client_fd, POLLIN, 0 };

		ck_assert_msg(SSL_get_error(t->client, n) == SSL_ERROR_WANT_READ &&
		    t->client_fd >= 0, "the client cannot read: SSL error %d",
		    SSL_get_error(t->client, n));
		ck_assert_msg(poll(&p, 1, 10000) == 1, "the byte never came");
	}
	ck_assert_int_eq(byte, 'x');
}

void
tl_tls_free(struct tl_tls *t)
{
	if (t == NULL)
		return;
	if (t->client_hs == TL_HS_DONE && t->server_hs == TL_HS_DONE) {
		SSL_shutdown(t->client);
		SSL_shutdown(t->server);
	}
	ERR_clear_error();
	SSL_free(t->client);
	SSL_free(t->server);
	if (t->client_fd >= 0)
		close(t->client_fd);
	if (t->server_fd >= 0)
		close(t->server_fd);
	free(t);
}

/* ------------------------------------------------------------ PROXY v2 */

uint32_t
tl_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int
tl_pp2_tlv(const unsigned char *h, int n, unsigned type, size_t *len)
{
	int off, end = 16 + (h[14] << 8 | h[15]);

	ck_assert_int_eq(end, n);
	off = 16 + (h[13] == 0x11 ? 12 : h[13] == 0x21 ? 36 : 0);
	while (off < end) {
		size_t l;

		ck_assert_msg(off + 3 <= end, "TLV header past the end at %d", off);
		l = (size_t)(h[off + 1] << 8 | h[off + 2]);
		ck_assert_msg(off + 3 + (int)l <= end, "TLV 0x%02x past the end", h[off]);
		if (h[off] == type) {
			*len = l;
			return off + 3;
		}
		off += 3 + (int)l;
	}
	return -1;
}

int
tl_pp2_sub(const unsigned char *v, size_t vlen, unsigned type, size_t *len)
{
	size_t off = 5;

	while (off + 3 <= vlen) {
		size_t l = (size_t)(v[off + 1] << 8 | v[off + 2]);

		ck_assert_msg(off + 3 + l <= vlen, "sub-TLV past the end");
		if (v[off] == type) {
			*len = l;
			return (int)off + 3;
		}
		off += 3 + l;
	}
	ck_assert_msg(off == vlen, "trailing bytes in the SSL TLV");
	return -1;
}

void
tl_pp2_assert_crc(unsigned char *h, int n)
{
	size_t len;
	int v = tl_pp2_tlv(h, n, PP2_TYPE_CRC32C, &len);
	unsigned char sent[4];
	uint32_t crc, computed;

	ck_assert_int_ge(v, 0);
	ck_assert_int_eq(len, 4);
	memcpy(sent, h + v, 4);
	crc = tl_be32(sent);
	/* Computed over the header with the field zeroed. */
	memset(h + v, 0, 4);
	computed = proxy_crc32c(h, (size_t)n);
	ck_assert_msg(crc == computed, "CRC32C field 0x%08x, header's 0x%08x", crc, computed);
	/* One flipped bit anywhere makes it fail. */
	h[5] ^= 0x01;
	ck_assert_uint_ne(proxy_crc32c(h, (size_t)n), crc);
	h[5] ^= 0x01;
	memcpy(h + v, sent, 4);
}
