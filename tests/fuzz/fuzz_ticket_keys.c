/*
 * fuzz_ticket_keys: arbitrary session tickets through the project's ticket
 * key callback, called the way OpenSSL calls it: a ClientHello carrying
 * the ticket (TLS 1.2: the session_ticket extension; TLS 1.3: a
 * pre_shared_key identity) is fed over a memory BIO to a server SSL of a
 * context built by tls_ctx_new() in stateless mode, with the keys of
 * ticket_keys_new() from a seed and a previous seed (rotation 1h, grace
 * 12h, so that every kind of match exists).
 *
 * The first byte chooses the TLS version, the key name (from the input,
 * or the name of the current, next, a grace, an expired or a previous
 * seed's key) and whether the rest is raw ticket bytes or a plaintext
 * that this target encrypts and MACs under that key, as a node holding
 * the seed would: then the callback must open it and OpenSSL parses the
 * plaintext as a session (a DER session in the plaintext is given a
 * fresh time, so that the committed corpus resumes whenever it runs).
 * Checks:
 *  - a resumption comes only from a ticket this target sealed under a key
 *    that may decrypt (never from one of no key, of an expired key, or
 *    with a bad MAC), and ticket_match_of() names that key's kind;
 *  - TLS 1.2: a ticket that cannot open is counted once, under its
 *    reason (unknown name, expired key, malformed: short, bad MAC), and
 *    one that opens is not counted as unknown or expired.
 *
 * FUZZ_SEEDS_DIR=dir in the environment: write the seed corpus there
 * (one input per version, pick and mode, the sealed ones holding a real
 * TLS 1.2 session of this context) and exit.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "fuzzlib.h"
#include "testlib.h"
#include "../../src/stats.h"
#include "../../src/ticket_keys.h"
#include "../../src/tls_ctx.h"

#define PERIOD 3600
#define GRACE 43200

enum pick {
	PICK_RAW,		/* the whole ticket from the input, name and all */
	PICK_CURRENT,
	PICK_NEXT,
	PICK_GRACE,
	PICK_EXPIRED,
	PICK_PREVIOUS,
	PICK_UNKNOWN,		/* 16 bytes from the input as the name */
	PICK_N
};

#define SEED "this is the seed of the fuzz run"
#define PREVIOUS_SEED "the previous seed, 32 bytes long"

static SSL_CTX *ctx;
static struct ticket_keys *keys;
/* The seeds' PRKs, from which this target derives keys as any node would. */
static unsigned char prk_current[TICKET_PRK_LEN], prk_previous[TICKET_PRK_LEN];
static struct settings settings;
static struct listener_settings listener;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---------------------------------------------------------------- bytes */

struct buf {
	unsigned char b[70000];
	size_t n;
};

static void
put(struct buf *o, const void *p, size_t n)
{
	if (n > sizeof(o->b) - o->n)
		fz_fail("ClientHello too large");
	if (n > 0)
		memcpy(o->b + o->n, p, n);
	o->n += n;
}

static void
put_int(struct buf *o, size_t v, int bytes)
{
	unsigned char b[4];

	for (int i = 0; i < bytes; i++)
		b[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
	put(o, b, (size_t)bytes);
}

/* Patch the ${bytes}-byte length at ${at} to cover all that follows it. */
static void
patch_len(struct buf *o, size_t at, int bytes)
{
	size_t v = o->n - at - (size_t)bytes;

	for (int i = 0; i < bytes; i++)
		o->b[at + (size_t)i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
}

static void
put_ext(struct buf *o, unsigned type, const void *p, size_t n)
{
	put_int(o, type, 2);
	put_int(o, n, 2);
	put(o, p, n);
}

/*
 * A ClientHello record for TLS 1.2 with ${ticket} in session_ticket, or
 * TLS 1.3 with it as the one pre_shared_key identity (and a binder that
 * cannot be right: the ticket is opened before binders are checked).
 */
static void
client_hello(struct buf *o, int tls13, const unsigned char *ticket, size_t len)
{
	static const unsigned char groups[] = { 0, 4, 0x00, 0x1d, 0x00, 0x17 };
	static const unsigned char sigalgs[] = { 0, 4, 0x04, 0x03, 0x08, 0x04 };
	static const unsigned char points[] = { 1, 0 }, versions[] = { 2, 3, 4 };
	static const unsigned char modes[] = { 1, 1 }, reneg[] = { 0 };
	unsigned char random[32] = { 0 }, share[32 + 6] = { 0, 36, 0x00, 0x1d, 0, 32 };
	size_t rec, hs, exts, ext;

	o->n = 0;
	put(o, "\x16\x03\x01", 3);
	rec = o->n;
	put_int(o, 0, 2);
	put_int(o, 1, 1);
	hs = o->n;
	put_int(o, 0, 3);
	put(o, "\x03\x03", 2);
	put(o, random, sizeof(random));
	put_int(o, 32, 1);		/* a session ID: how TLS 1.2 clients see a resumption */
	put(o, random, 32);
	if (tls13)
		put(o, "\x00\x02\x13\x01", 4);
	else
		put(o, "\x00\x04\xc0\x2b\xc0\x2f", 6);
	put(o, "\x01\x00", 2);
	exts = o->n;
	put_int(o, 0, 2);
	put_ext(o, 10, groups, sizeof(groups));
	put_ext(o, 13, sigalgs, sizeof(sigalgs));
	put_ext(o, 11, points, sizeof(points));
	put_ext(o, 23, NULL, 0);	/* extended master secret */
	put_ext(o, 0xff01, reneg, sizeof(reneg));
	if (!tls13)
		put_ext(o, 35, ticket, len);
	else {
		share[6] = 9;		/* any 32 bytes are an X25519 public key */
		put_ext(o, 43, versions, sizeof(versions));
		put_ext(o, 51, share, sizeof(share));
		put_ext(o, 45, modes, sizeof(modes));
		put_int(o, 41, 2);	/* pre_shared_key, last */
		ext = o->n;
		put_int(o, 0, 2);
		put_int(o, len + 6, 2);
		put_int(o, len, 2);
		put(o, ticket, len);
		put_int(o, 0, 4);	/* obfuscated_ticket_age */
		put_int(o, 33, 2);
		put_int(o, 32, 1);
		put(o, random, 32);
		patch_len(o, ext, 2);
	}
	patch_len(o, exts, 2);
	patch_len(o, hs, 3);
	patch_len(o, rec, 2);
}

/* ---------------------------------------------------------------- keys */

/* The key of ${pick} now in ${k}: 0, or -1 for the picks that name no key. */
static int
pick_key(enum pick pick, unsigned arg, int64_t now, struct ticket_key *k)
{
	uint64_t n = (uint64_t)now / PERIOD;
	const unsigned char *prk = prk_current;
	uint64_t epoch;

	switch (pick) {
	case PICK_CURRENT:
		epoch = n;
		break;
	case PICK_NEXT:
		epoch = n + 1;
		break;
	case PICK_GRACE:	/* epochs n-1 .. n-12 decrypt until their grace ends */
		epoch = n - 1 - arg % (GRACE / PERIOD - 1);
		break;
	case PICK_EXPIRED:
		epoch = n - GRACE / PERIOD - 1 - arg % 40;
		break;
	case PICK_PREVIOUS:
		prk = prk_previous;
		epoch = n + 1 - arg % (GRACE / PERIOD + 1);
		break;
	default:
		return -1;
	}
	if (ticket_key_derive(prk, epoch, PERIOD, k) != 0)
		fz_fail("cannot derive the key of epoch %llu", (unsigned long long)epoch);
	return 0;
}

static void
set_mac(EVP_MAC_CTX *mac, const struct ticket_key *k)
{
	OSSL_PARAM params[3];

	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac_key,
	    TICKET_HMAC_KEY_LEN);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(mac, NULL, 0, params) != 1)
		fz_fail("HMAC init");
}

/*
 * Seal ${plain} as OpenSSL's ticket format: name, IV, AES-256-CBC of the
 * plaintext, HMAC-SHA256 of all that.  A DER session in ${plain} gets the
 * time now first.
 */
static size_t
seal(const struct ticket_key *k, const unsigned char iv[16], const unsigned char *plain,
    size_t len, unsigned char *out)
{
	const unsigned char *p = plain;
	SSL_SESSION *sess = d2i_SSL_SESSION(NULL, &p, (long)len);
	unsigned char *der = NULL, *q;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *mac = hmac != NULL ? EVP_MAC_CTX_new(hmac) : NULL;
	int n1 = 0, n2 = 0, dlen;
	size_t n, maclen = 0;

	ERR_clear_error();
	if (sess != NULL && SSL_SESSION_set_time(sess, (long)time(NULL)) == 1 &&
	    (dlen = i2d_SSL_SESSION(sess, NULL)) > 0 && (der = malloc((size_t)dlen)) != NULL) {
		q = der;
		i2d_SSL_SESSION(sess, &q);
		plain = der;
		len = (size_t)dlen;
	}
	SSL_SESSION_free(sess);
	memcpy(out, k->name, 16);
	memcpy(out + 16, iv, 16);
	if (c == NULL || mac == NULL ||
	    EVP_EncryptInit_ex2(c, EVP_aes_256_cbc(), k->aes_key, iv, NULL) != 1 ||
	    EVP_EncryptUpdate(c, out + 32, &n1, plain, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(c, out + 32 + n1, &n2) != 1)
		fz_fail("AES-256-CBC");
	n = 32 + (size_t)n1 + (size_t)n2;
	set_mac(mac, k);
	if (EVP_MAC_update(mac, out, n) != 1 || EVP_MAC_final(mac, out + n, &maclen, 32) != 1)
		fz_fail("HMAC");
	free(der);
	EVP_CIPHER_CTX_free(c);
	EVP_MAC_CTX_free(mac);
	EVP_MAC_free(hmac);
	return n + maclen;
}

/* ---------------------------------------------------------------- set-up */

static void
cleanup(void)
{
	SSL_CTX_free(ctx);
	ticket_keys_unref(keys);
}


/* FUZZ_SEEDS_DIR: write the seed corpus into ${dir}; 0, or abort. */
static int write_seeds(const char *dir);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct config_errors errs = { 0 };
	const char *seeds = getenv("FUZZ_SEEDS_DIR");

	fz_setup(1);
	tl_tls_settings(&settings, &listener);
	settings.tickets.mode = TICKETS_STATELESS;
	settings.tickets.rotation_interval = PERIOD;
	settings.tickets.decrypt_grace = GRACE;
	settings.tickets.session_lifetime = GRACE;
	settings.tickets.seed = (unsigned char *)SEED;
	settings.tickets.seed_len = strlen(SEED);
	settings.tickets.previous_seed = (unsigned char *)PREVIOUS_SEED;
	settings.tickets.previous_seed_len = strlen(PREVIOUS_SEED);
	if ((keys = ticket_keys_new(&settings.tickets)) == NULL ||
	    ticket_prk((const unsigned char *)SEED, strlen(SEED), prk_current) != 0 ||
	    ticket_prk((const unsigned char *)PREVIOUS_SEED, strlen(PREVIOUS_SEED),
	    prk_previous) != 0)
		fz_fail("cannot derive the ticket keys");
	if ((ctx = tls_ctx_new(&settings, &listener, keys, &errs)) == NULL)
		fz_fail("tls_ctx_new: %s", errs.count > 0 ? errs.lines[0] : "?");
	atexit(cleanup);
	if (seeds != NULL)
		exit(write_seeds(seeds));
	return 0;
}

/* ---------------------------------------------------------------- run */

/* What the server made of ${rec}: resumed or not. */
static int
serve(const struct buf *rec)
{
	SSL *ssl = SSL_new(ctx);
	BIO *in = BIO_new_mem_buf(rec->b, (int)rec->n), *out = BIO_new(BIO_s_mem());
	int reused;

	if (ssl == NULL || in == NULL || out == NULL)
		fz_fail("out of memory");
	BIO_set_mem_eof_return(in, -1);
	SSL_set_bio(ssl, in, out);
	SSL_set_accept_state(ssl);
	SSL_do_handshake(ssl);
	reused = SSL_session_reused(ssl);
	if (reused)
		reused = 1 + (int)ticket_match_of(ssl);
	ERR_clear_error();
	SSL_free(ssl);
	return reused;
}

static const enum ticket_match match_of_pick[PICK_N] = {
	[PICK_CURRENT] = TICKET_MATCH_CURRENT,
	[PICK_NEXT] = TICKET_MATCH_CURRENT,
	[PICK_GRACE] = TICKET_MATCH_GRACE,
	[PICK_PREVIOUS] = TICKET_MATCH_PREVIOUS_SEED,
	[PICK_EXPIRED] = TICKET_MATCH_EXPIRED,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct buf rec;
	static unsigned char ticket[70000];
	struct fz_in in = { data, size };
	unsigned sel = fz_u8(&in), arg = fz_u8(&in);
	int tls13 = sel & 1, sealed = (sel >> 4) & 1;
	enum pick pick = (enum pick)((sel >> 1) % PICK_N);
	uint64_t before[3], after[3];
	int64_t now = (int64_t)time(NULL);
	struct ticket_key k;
	size_t len = 0, n;
	const uint8_t *p;
	int reused, opens;

	if (pick_key(pick, arg, now, &k) == 0) {
		if (sealed) {
			unsigned char iv[16] = { 0 };

			p = fz_bytes(&in, 16, &n);
			memcpy(iv, p, n);
			len = seal(&k, iv, in.p, in.left > 60000 ? 60000 : in.left, ticket);
		} else {
			memcpy(ticket, k.name, 16);
			n = in.left > 60000 ? 60000 : in.left;
			memcpy(ticket + 16, in.p, n);
			len = 16 + n;
		}
	} else {
		len = in.left > 60000 ? 60000 : in.left;
		memcpy(ticket, in.p, len);
		if (pick == PICK_UNKNOWN)
			sealed = 0;
	}
	OPENSSL_cleanse(&k, sizeof(k));
	client_hello(&rec, tls13, ticket, len);
	for (int i = 0; i < 3; i++)
		before[i] = stats_get(STAT_TICKET_REJECTED_UNKNOWN + i);
	reused = serve(&rec);
	for (int i = 0; i < 3; i++)
		after[i] = stats_get(STAT_TICKET_REJECTED_UNKNOWN + i) - before[i];
	/* An epoch that turned while this ran changes which keys decrypt. */
	if ((uint64_t)now / PERIOD != (uint64_t)time(NULL) / PERIOD)
		return 0;

	if (reused) {
		if (!sealed || pick == PICK_RAW || pick == PICK_UNKNOWN || pick == PICK_EXPIRED)
			fz_fail("resumed from a ticket not sealed under a usable key (pick %d)", pick);
		if (reused - 1 != (int)match_of_pick[pick])
			fz_fail("resumed, ticket_match_of() %d for pick %d", reused - 1, pick);
	}
	if (tls13 || len == 0)
		return 0;
	/*
	 * TLS 1.2: a ticket that cannot open is counted once, under its
	 * reason; one that opens is not counted, though its session may still
	 * be refused (then it is not a resumption either).
	 */
	opens = sealed && pick != PICK_RAW && pick != PICK_UNKNOWN && pick != PICK_EXPIRED;
	if (after[0] + after[1] + after[2] != (opens ? after[2] : 1) ||
	    (opens && (after[2] > 1 || (reused && after[2] != 0))))
		fz_fail("TLS 1.2 ticket of %zu bytes (pick %d, sealed %d, resumed %d): counted "
		    "unknown %llu expired %llu malformed %llu", len, pick, sealed, reused,
		    (unsigned long long)after[0], (unsigned long long)after[1],
		    (unsigned long long)after[2]);
	if (len >= 32 && ((pick == PICK_UNKNOWN && after[0] != 1) ||
	    (pick == PICK_EXPIRED && after[1] != 1)))
		fz_fail("TLS 1.2 ticket of pick %d not counted as %s", pick,
		    pick == PICK_UNKNOWN ? "unknown" : "expired");
	return 0;
}

/* ---------------------------------------------------------------- seeds */

/* A TLS 1.2 session of ${ctx}, made by a real handshake: seed material. */
static SSL_SESSION *
real_session(void)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *c = cctx != NULL ? SSL_new(cctx) : NULL, *s = SSL_new(ctx);
	BIO *cb = NULL, *sb = NULL;
	SSL_SESSION *sess = NULL;

	if (c == NULL || s == NULL || BIO_new_bio_pair(&cb, 0, &sb, 0) != 1)
		fz_fail("cannot set up a handshake");
	SSL_set_max_proto_version(c, TLS1_2_VERSION);
	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	for (int i = 0; i < 16 && sess == NULL; i++) {
		SSL_do_handshake(c);
		if (SSL_do_handshake(s) == 1)
			sess = SSL_get1_session(s);
	}
	if (sess == NULL)
		fz_fail("the seed handshake failed");
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
	return sess;
}

static int
write_seeds(const char *dir)
{
	SSL_SESSION *sess = real_session();
	unsigned char der[4096], *q = der, input[5000];
	int dlen = i2d_SSL_SESSION(sess, &q);
	char path[4096];
	FILE *f;

	if (dlen <= 0 || (size_t)dlen > sizeof(der))
		fz_fail("cannot encode the session");
	for (unsigned sel = 0; sel < 2 * PICK_N * 2; sel++) {
		/* bit 0: TLS 1.3; bits 1-3: the pick; bit 4: sealed */
		unsigned v = sel & 1, pick = (sel >> 1) % PICK_N, sealed = sel / (2 * PICK_N);
		size_t n = 0;

		input[n++] = (unsigned char)(v | pick << 1 | sealed << 4);
		input[n++] = 3;
		if (sealed) {
			input[n++] = 16;
			memset(input + n, 0xA5, 16);
			n += 16;
			memcpy(input + n, der, (size_t)dlen);
			n += (size_t)dlen;
		} else {
			memset(input + n, 0x5A, 16 + 16 + 48);
			n += 16 + 16 + 48;
		}
		snprintf(path, sizeof(path), "%s/%s-%u-%s", dir, v ? "tls13" : "tls12", pick,
		    sealed ? "sealed" : "raw");
		if ((f = fopen(path, "wb")) == NULL || fwrite(input, 1, n, f) != n ||
		    fclose(f) != 0)
			fz_fail("cannot write %s", path);
	}
	SSL_SESSION_free(sess);
	return 0;
}
