/*
 * testlib: helpers shared by the unit tests: a private temporary
 * directory per test, files written into it, config files loaded from a
 * string, and assertions on config error lines; a small PKI made in
 * memory, a listener's settings as the config would make them, and a TLS
 * client and server joined in memory or by a socket pair; a reader of
 * PROXY protocol v2 TLVs.
 *
 * Every test runs in its own forked child (CK_FORK), so the helpers keep
 * their state in globals; tl_setup()/tl_teardown() are the check fixture.
 */
#ifndef TLSPROXY_TESTLIB_H
#define TLSPROXY_TESTLIB_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <check.h>
#include <openssl/ssl.h>

/*
 * Not "config.h": automake puts the build directory, which holds the
 * autoconf config.h, ahead of -Isrc on the command line.
 */
#include "../../src/config.h"

/** tl_setup(): make a fresh temporary directory for this test. */
void tl_setup(void);

/** tl_teardown(): remove the temporary directory and all it holds. */
void tl_teardown(void);

/** tl_dir(): the temporary directory made by tl_setup(). */
const char *tl_dir(void);

/**
 * tl_write(name, content, mode): write ${content} to file ${name} in the
 * temporary directory with permissions ${mode}; returns its path, valid
 * until tl_teardown().
 */
const char *tl_write(const char *name, const char *content, mode_t mode);

/**
 * tl_write_bytes(name, content, len, mode): like tl_write() for ${len}
 * bytes that may hold NULs.
 */
const char *tl_write_bytes(const char *name, const void *content, size_t len,
    mode_t mode);

/**
 * tl_placeholders(): write cert.pem, key.pem and ca.pem (only their
 * readability is checked by config) and ticket.seed (32 bytes, mode 600)
 * into the temporary directory.
 */
void tl_placeholders(void);

/**
 * tl_config(text): write ${text} to tlsproxy.conf in the temporary
 * directory, with every "@DIR@" replaced by the directory; returns its path.
 */
const char *tl_config(const char *text);

/**
 * tl_write_conf(name, text): write ${text} to file ${name} in the temporary
 * directory, with every "@DIR@" replaced by the directory; returns its path.
 */
const char *tl_write_conf(const char *name, const char *text);

/**
 * tl_load(text, errs): tl_config(${text}) and settings_load() it.
 */
struct settings *tl_load(const char *text, struct config_errors *errs);

/**
 * tl_load_ok(text): tl_load() that must succeed; fails the test showing
 * the errors otherwise.
 */
struct settings *tl_load_ok(const char *text);

/**
 * tl_load_fail(text, errs): tl_load() that must fail with at least one
 * error line; fails the test otherwise.
 */
void tl_load_fail(const char *text, struct config_errors *errs);

/**
 * tl_has_error(errs, file, line, substr): true if a line of ${errs} starts
 * with "${file}:${line}: " (or "${file}: " when ${line} is 0) and contains
 * ${substr}.  A NULL ${file} means tlsproxy.conf in the temporary directory.
 */
int tl_has_error(const struct config_errors *errs, const char *file, int line,
    const char *substr);

/** tl_dump(errs): all lines of ${errs} in one string, for failure messages. */
const char *tl_dump(const struct config_errors *errs);

/* Assert that the config file's line ${line} has an error containing ${substr}. */
#define tl_assert_error(errs, line, substr)				\
	ck_assert_msg(tl_has_error((errs), NULL, (line), (substr)),	\
	    "no error at line %d containing '%s'; errors were:\n%s",	\
	    (line), (substr), tl_dump(errs))

/**
 * tl_run(suite): run ${suite} printing TAP, with SIGPIPE ignored as the
 * daemon ignores it; returns main()'s exit status.
 */
int tl_run(Suite *suite);

/* ------------------------------------------------------------ TLS */

/* The test PKI: what certs/gen-certs.sh makes, less what no unit test needs. */
enum tl_id {
	TL_CA,			/* "tlsproxy test CA" */
	TL_SERVER,		/* CN=localhost, DNS:localhost, IP:127.0.0.1, by TL_CA */
	TL_CLIENT,		/* CN=device1, clientAuth, by TL_CA */
	TL_OTHER_CA,		/* a CA that nothing trusts */
	TL_OTHER_CLIENT,	/* CN=device1, clientAuth, by TL_OTHER_CA */
	TL_OCSP,		/* an OCSP responder of TL_CA: OCSPSigning */
	TL_NIDS
};

/**
 * tl_pki_setup(): make every identity of enum tl_id: ECDSA P-256 keys and
 * certificates valid from an hour ago for a day.  An unchecked fixture:
 * made once, before the tests fork.
 */
void tl_pki_setup(void);

/** tl_pki_teardown(): free what tl_pki_setup() made. */
void tl_pki_teardown(void);

/** tl_cert(id): identity ${id}'s certificate. */
X509 *tl_cert(enum tl_id id);

/** tl_key(id): identity ${id}'s private key. */
EVP_PKEY *tl_key(enum tl_id id);

/**
 * tl_pki_write(): write every identity into the temporary directory as
 * gen-certs.sh names them: ca.pem, ca.key, server.pem, server.key, ...,
 * other-client.key; keys mode 600.
 */
void tl_pki_write(void);

/**
 * tl_tls_tcase(name): a test case ${name} for tests that use the PKI: it
 * is made once (tl_pki_setup()); each test gets its own temporary
 * directory with the PKI's files in it (tl_pki_write()), and drops its
 * thread's ticket keyring at the end (for CK_FORK=no).
 */
TCase *tl_tls_tcase(const char *name);

/** tl_path(name): ${name} in the temporary directory; valid until tl_teardown(). */
const char *tl_path(const char *name);

/* Where tl_tls_settings() says each setting stands in tlsproxy.conf. */
#define TL_LINE_LISTENER	10
#define TL_LINE_CERT		11
#define TL_LINE_KEY		12
#define TL_LINE_CLIENT_CA	13
#define TL_LINE_CIPHERS		14
#define TL_LINE_CIPHERSUITES	15
#define TL_LINE_CRL		16

/**
 * tl_tls_settings(s, ls): ${s} and ${ls} as settings_load() makes them
 * for one listener "mqtt" with the defaults and cert and key server.pem
 * and server.key of tl_pki_write(); except tickets mode "off" (no seed).
 * Its settings stand at lines TL_LINE_* of tlsproxy.conf in the temporary
 * directory, so tl_assert_error() finds their errors.  Strings are valid
 * until tl_teardown(); a test may point them elsewhere.  Not for
 * settings_free().
 */
void tl_tls_settings(struct settings *s, struct listener_settings *ls);

struct ticket_keys;

/**
 * tl_server_ctx(s, ls, tk): tls_ctx_new() of ${ls}, which must succeed.
 * In tickets mode "stateless" the keys are made from a test seed with a
 * rotation of 2^30 s (the ticket callback reads the real clock: no test
 * straddles a rotation) and returned in ${tk}, else NULL.  Free both with
 * tl_server_ctx_free().
 */
SSL_CTX *tl_server_ctx(struct settings *s, struct listener_settings *ls,
    struct ticket_keys **tk);

/**
 * tl_server_ctx_free(ctx, tk): free ${ctx}, then drop ${tk}: keys must
 * outlive a context that uses them, whether or not it holds a reference
 * of its own.  NULLs are fine.
 */
void tl_server_ctx_free(SSL_CTX *ctx, struct ticket_keys *tk);

/** tl_session_set_time(sess, t): move ${sess}'s start to Unix time ${t}. */
void tl_session_set_time(SSL_SESSION *sess, int64_t t);

/**
 * tl_client_ctx(version): a client context for ${version} only
 * (TLS1_2_VERSION, TLS1_3_VERSION; 0 for both) that does not verify the
 * server and keeps no session itself: SSL_get1_session() after the
 * handshake.  It counts the sessions it receives in tl_tls.new_sessions.
 * SSL_write() may write part of what it is given.
 */
SSL_CTX *tl_client_ctx(int version);

/* How the two ends of a tl_tls are joined. */
enum tl_link {
	TL_LINK_MEMORY,		/* a BIO pair: no file descriptor */
	TL_LINK_UNIX,		/* socketpair(AF_UNIX, SOCK_STREAM) */
	TL_LINK_TCP,		/* a TCP connection over 127.0.0.1 */
};

enum tl_hs {
	TL_HS_RUNNING,
	TL_HS_DONE,
	TL_HS_FAILED,
};

/* A TLS client and server in one thread; see tl_tls_new(). */
struct tl_tls {
	SSL *client, *server;
	int client_fd, server_fd;	/* non-blocking and owned; -1 in memory */
	struct sockaddr_storage peer;	/* TL_LINK_TCP: the client, as accept() saw it */
	enum tl_hs client_hs, server_hs;
	char client_error[256], server_error[256];	/* OpenSSL's reasons, when failed */
	int new_sessions;		/* sessions the tl_client_ctx() client received */
};

/**
 * tl_tls_new(cctx, sctx, link): a client of ${cctx} and a server of
 * ${sctx} joined by ${link}, over plain socket BIOs for a socket; nothing
 * sent yet.  Free it with tl_tls_free().
 */
struct tl_tls *tl_tls_new(SSL_CTX *cctx, SSL_CTX *sctx, enum tl_link link);

/**
 * tl_tls_offer(t, sess): the client of ${t} offers a copy of ${sess} (a
 * client that gets a new ticket marks the session it resumed not
 * resumable, and tests offer one session more than once).
 */
void tl_tls_offer(struct tl_tls *t, SSL_SESSION *sess);

/**
 * tl_tls_handshake(t): run both handshakes of ${t} in turn until both are
 * done (returns 1) or one has failed (returns 0; the other side has read
 * the alert if there was one).  A handshake that stalls fails the test.
 */
int tl_tls_handshake(struct tl_tls *t);

/**
 * tl_tls_settle(t): the server of ${t} sends one byte and the client reads
 * it: the client has then read all that followed the handshake (TLS 1.3
 * session tickets).
 */
void tl_tls_settle(struct tl_tls *t);

/**
 * tl_tls_free(t): a close_notify each way if both handshakes were done
 * (OpenSSL keeps only cleanly closed sessions), then free both ends and
 * close the sockets.  NULL is fine.
 */
void tl_tls_free(struct tl_tls *t);

/* ------------------------------------------------------------ PROXY v2 */

/** tl_be32(p): the big-endian 32-bit number at ${p}. */
uint32_t tl_be32(const unsigned char *p);

/**
 * tl_pp2_tlv(h, n, type, len): the offset of the value of the first TLV of
 * ${type} in the v2 header ${h} of ${n} bytes, its length in ${len}; -1 if
 * none.  Fails the test when the header's TLVs do not add up.
 */
int tl_pp2_tlv(const unsigned char *h, int n, unsigned type, size_t *len);

/**
 * tl_pp2_sub(v, vlen, type, len): the same for the sub-TLVs of a
 * PP2_TYPE_SSL value ${v} of ${vlen} bytes (after its client byte and
 * verify field).
 */
int tl_pp2_sub(const unsigned char *v, size_t vlen, unsigned type, size_t *len);

/**
 * tl_pp2_assert_crc(h, n): assert that the CRC32C TLV of the v2 header
 * ${h} (${n} bytes) matches the header, and would not with one bit
 * flipped.  ${h} is as it was afterwards.
 */
void tl_pp2_assert_crc(unsigned char *h, int n);

#endif
