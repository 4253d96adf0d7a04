/*
 * ticket_keys: the seed-derived key schedule and OpenSSL's ticket key
 * callback.
 *
 * The handshake path takes no lock: each worker thread keeps its own
 * keyring, rebuilt when the epoch (or the configuration) changes, so keys
 * are derived once per epoch per thread and never per handshake.  Every
 * copy of key material is wiped with OPENSSL_cleanse when dropped.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "log.h"
#include "session_check.h"
#include "stats.h"
#include "ticket_keys.h"

#define SALT "tlsproxy-ticket-v1"
#define INFO_LABEL "epoch"
/* Recently expired keys kept to tell "expired" from "unknown" tickets. */
#define EXPIRED_KEPT_MAX 64

struct ticket_keys {
	atomic_int refs;
	uint64_t generation;		/* tells thread keyrings they are stale */
	unsigned char prk[TICKET_PRK_LEN];
	unsigned char previous_prk[TICKET_PRK_LEN];
	int has_previous;
	uint64_t period;
	uint64_t grace;
	int renew_tls13;		/* a new ticket after every TLS 1.3 resumption */
	char fingerprint[TICKET_FINGERPRINT_LEN + 1];
	char previous_fingerprint[TICKET_FINGERPRINT_LEN + 1];
	EVP_CIPHER *cipher;		/* fetched once, not per ticket */
};

/*
 * Layout: the current seed's epochs n, n+1, n-1, n-2 ... kept, then (with a
 * previous seed) its epochs n+1, n ... kept.  The position of any epoch is
 * computed, so the next epoch's ring copies what it shares with this one.
 */
struct ticket_keyring {
	uint64_t generation;
	uint64_t epoch;			/* n: the epoch it was built for */
	uint64_t kept;			/* the oldest epoch it holds */
	uint64_t period;
	uint64_t grace;
	size_t per_seed;		/* keys of each seed */
	size_t n;
	struct ticket_key keys[];	/* keys[0] encrypts */
};

/* Set in the SSL's ex_data with the match: the key callback saw the ticket. */
#define MATCH_RECORDED 0x100

static atomic_uint_fast64_t next_generation = 1;
static _Thread_local struct ticket_keyring *thread_ring;
static int ctx_index = -1, ssl_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

/*
 * A context holds a reference to the keys installed in it, dropped here
 * when OpenSSL frees the context: after the last connection that could
 * still issue or open a ticket with them.  ${ptr} is NULL for a context
 * that never had keys.
 */
static void
ctx_keys_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	ticket_keys_unref(ptr);
}

static void
alloc_indexes(void)
{
	ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ctx_keys_free);
	ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int
hkdf(int mode, const unsigned char *key, size_t keylen, const void *salt_or_info,
    size_t len, unsigned char *out, size_t outlen)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[5], *p = params;
	int rc = -1;

	if (kctx == NULL)
		goto done;
	*p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, keylen);
	*p++ = OSSL_PARAM_construct_octet_string(
	    mode == EVP_KDF_HKDF_MODE_EXTRACT_ONLY ? OSSL_KDF_PARAM_SALT : OSSL_KDF_PARAM_INFO,
	    (void *)salt_or_info, len);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, outlen, params) == 1)
		rc = 0;
done:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

int
ticket_prk(const unsigned char *seed, size_t len, unsigned char prk[TICKET_PRK_LEN])
{
	return hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, seed, len, SALT, strlen(SALT), prk,
	    TICKET_PRK_LEN);
}

static void
put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

int
ticket_key_derive(const unsigned char prk[TICKET_PRK_LEN], uint64_t epoch, uint64_t period,
    struct ticket_key *key)
{
	unsigned char info[sizeof(INFO_LABEL) - 1 + 16];
	unsigned char okm[TICKET_NAME_LEN + TICKET_HMAC_KEY_LEN + TICKET_AES_KEY_LEN];
	int rc;

	memcpy(info, INFO_LABEL, sizeof(INFO_LABEL) - 1);
	put_be64(info + sizeof(INFO_LABEL) - 1, epoch);
	put_be64(info + sizeof(INFO_LABEL) - 1 + 8, period);
	rc = hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk, TICKET_PRK_LEN, info, sizeof(info), okm,
	    sizeof(okm));
	if (rc == 0) {
		memcpy(key->name, okm, TICKET_NAME_LEN);
		memcpy(key->hmac_key, okm + TICKET_NAME_LEN, TICKET_HMAC_KEY_LEN);
		memcpy(key->aes_key, okm + TICKET_NAME_LEN + TICKET_HMAC_KEY_LEN,
		    TICKET_AES_KEY_LEN);
		key->epoch = epoch;
		key->previous_seed = 0;
	}
	OPENSSL_cleanse(okm, sizeof(okm));
	return rc;
}

void
ticket_fingerprint(const unsigned char prk[TICKET_PRK_LEN], char out[TICKET_FINGERPRINT_LEN + 1])
{
	unsigned char md[32];

	EVP_Digest(prk, TICKET_PRK_LEN, md, NULL, EVP_sha256(), NULL);
	for (int i = 0; i < TICKET_FINGERPRINT_LEN / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int
ticket_epoch_decrypts(uint64_t m, int64_t now, uint64_t period, uint64_t grace)
{
	uint64_t n = (uint64_t)now / period;

	if (m == n + 1 || m == n)
		return 1;
	return m < n && (uint64_t)now < (m + 1) * period + grace;
}

uint64_t
ticket_oldest_epoch(int64_t now, uint64_t period, uint64_t grace)
{
	/* now < (m+1)*period + grace  <=>  m >= floor((now - grace) / period) */
	if ((uint64_t)now < grace)
		return 0;
	return ((uint64_t)now - grace) / period;
}

struct ticket_keys *
ticket_keys_new(const struct ticket_settings *ts)
{
	struct ticket_keys *tk;

	pthread_once(&index_once, alloc_indexes);
	if (ctx_index < 0 || ssl_index < 0 || ts->seed == NULL)
		return NULL;
	if ((tk = OPENSSL_secure_zalloc(sizeof(*tk))) == NULL)
		return NULL;
	atomic_init(&tk->refs, 1);
	tk->generation = atomic_fetch_add(&next_generation, 1);
	tk->period = (uint64_t)ts->rotation_interval;
	tk->grace = (uint64_t)ts->decrypt_grace;
	tk->renew_tls13 = ts->tls13_renew == TLS13_RENEW_ALWAYS;
	if (ticket_prk(ts->seed, ts->seed_len, tk->prk) != 0)
		goto fail;
	ticket_fingerprint(tk->prk, tk->fingerprint);
	if (ts->previous_seed != NULL) {
		if (ticket_prk(ts->previous_seed, ts->previous_seed_len, tk->previous_prk) != 0)
			goto fail;
		tk->has_previous = 1;
		ticket_fingerprint(tk->previous_prk, tk->previous_fingerprint);
	}
	if ((tk->cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL)) == NULL)
		goto fail;
	return tk;
fail:
	ticket_keys_unref(tk);
	return NULL;
}

struct ticket_keys *
ticket_keys_ref(struct ticket_keys *tk)
{
	atomic_fetch_add(&tk->refs, 1);
	return tk;
}

void
ticket_keys_unref(struct ticket_keys *tk)
{
	if (tk == NULL || atomic_fetch_sub(&tk->refs, 1) != 1)
		return;
	EVP_CIPHER_free(tk->cipher);
	OPENSSL_secure_clear_free(tk, sizeof(*tk));
}

const char *
ticket_keys_fingerprint(const struct ticket_keys *tk, int previous)
{
	if (previous)
		return tk->has_previous ? tk->previous_fingerprint : "";
	return tk->fingerprint;
}

/* Where ${ring} holds epoch ${m} of the (previous) seed, or NULL. */
static const struct ticket_key *
ring_epoch(const struct ticket_keyring *ring, uint64_t m, int previous)
{
	size_t i;

	if (ring == NULL || m < ring->kept || m > ring->epoch + 1)
		return NULL;
	if (previous)
		i = ring->per_seed + (size_t)(ring->epoch + 1 - m);
	else if (m >= ring->epoch)
		i = (size_t)(m - ring->epoch);
	else
		i = 2 + (size_t)(ring->epoch - 1 - m);
	return i < ring->n ? &ring->keys[i] : NULL;
}

/* Add epochs [from, to] of one seed, newest first, copying what ${old} has. */
static int
ring_add_epochs(struct ticket_keyring *ring, const struct ticket_keyring *old,
    const unsigned char *prk, int previous, uint64_t from, uint64_t to)
{
	for (uint64_t m = to + 1; m-- > from;) {
		struct ticket_key *k = &ring->keys[ring->n];
		const struct ticket_key *have = ring_epoch(old, m, previous);

		if (have != NULL)
			*k = *have;
		else if (ticket_key_derive(prk, m, ring->period, k) != 0)
			return -1;
		k->previous_seed = previous;
		ring->n++;
	}
	return 0;
}

static struct ticket_keyring *
keyring_next(const struct ticket_keys *tk, int64_t now, const struct ticket_keyring *old)
{
	struct ticket_keyring *ring;
	uint64_t n = (uint64_t)now / tk->period;
	/* The oldest epoch any moment of epoch n may still accept. */
	uint64_t oldest = ticket_oldest_epoch((int64_t)(n * tk->period), tk->period, tk->grace);
	uint64_t kept = oldest - (oldest < EXPIRED_KEPT_MAX ? oldest : EXPIRED_KEPT_MAX);
	size_t per_seed = (size_t)(n + 1 - kept + 1);
	size_t max = per_seed * (tk->has_previous ? 2 : 1);

	ring = calloc(1, sizeof(*ring) + max * sizeof(ring->keys[0]));
	if (ring == NULL)
		return NULL;
	ring->generation = tk->generation;
	ring->epoch = n;
	ring->kept = kept;
	ring->period = tk->period;
	ring->grace = tk->grace;
	ring->per_seed = per_seed;
	if (old != NULL && (old->generation != tk->generation || old->period != tk->period))
		old = NULL;
	/* keys[0] must be epoch n: add it first, then n+1, then the older ones. */
	if (ring_add_epochs(ring, old, tk->prk, 0, n, n) != 0 ||
	    ring_add_epochs(ring, old, tk->prk, 0, n + 1, n + 1) != 0 ||
	    (n > kept && ring_add_epochs(ring, old, tk->prk, 0, kept, n - 1) != 0) ||
	    (tk->has_previous &&
	    ring_add_epochs(ring, old, tk->previous_prk, 1, kept, n + 1) != 0)) {
		ticket_keyring_free(ring);
		return NULL;
	}
	return ring;
}

struct ticket_keyring *
ticket_keyring_new(const struct ticket_keys *tk, int64_t now)
{
	return keyring_next(tk, now, NULL);
}

void
ticket_keyring_free(struct ticket_keyring *ring)
{
	if (ring == NULL)
		return;
	OPENSSL_cleanse(ring->keys, ring->n * sizeof(ring->keys[0]));
	free(ring);
}

const struct ticket_key *
ticket_keyring_current(const struct ticket_keyring *ring)
{
	return &ring->keys[0];
}

enum ticket_match
ticket_keyring_find(const struct ticket_keyring *ring, const unsigned char name[TICKET_NAME_LEN],
    int64_t now, const struct ticket_key **key)
{
	uint64_t n = (uint64_t)now / ring->period;

	*key = NULL;
	for (size_t i = 0; i < ring->n; i++) {
		const struct ticket_key *k = &ring->keys[i];

		if (CRYPTO_memcmp(k->name, name, TICKET_NAME_LEN) != 0)
			continue;
		if (!ticket_epoch_decrypts(k->epoch, now, ring->period, ring->grace))
			return TICKET_MATCH_EXPIRED;
		*key = k;
		if (k->previous_seed)
			return TICKET_MATCH_PREVIOUS_SEED;
		return k->epoch >= n ? TICKET_MATCH_CURRENT : TICKET_MATCH_GRACE;
	}
	return TICKET_MATCH_NONE;
}

/* This thread's keyring for ${tk} at ${now}, rebuilt once per epoch. */
static const struct ticket_keyring *
thread_keyring(const struct ticket_keys *tk, int64_t now)
{
	struct ticket_keyring *ring = thread_ring;

	if (ring != NULL && ring->generation == tk->generation &&
	    ring->epoch == (uint64_t)now / tk->period)
		return ring;
	/* A new epoch shares all but one key with the last: derive only that. */
	thread_ring = keyring_next(tk, now, ring);
	ticket_keyring_free(ring);
	if (thread_ring == NULL)
		log_error("tickets: cannot derive the keys for this epoch");
	return thread_ring;
}

void
ticket_keys_thread_end(void)
{
	ticket_keyring_free(thread_ring);
	thread_ring = NULL;
}

static int
set_mac_key(EVP_MAC_CTX *hctx, const struct ticket_key *k)
{
	OSSL_PARAM params[3];

	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac_key,
	    TICKET_HMAC_KEY_LEN);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/*
 * OpenSSL's ticket key callback.  Encrypt: 1 with the current key.
 * Decrypt: 0 (full handshake) for an unknown or expired name; 2 (accept and
 * send a ticket under the current key) for any other key, and in TLS 1.3
 * unless tls13_renew = "rotation": OpenSSL 3 sends no new ticket after a
 * resumption on 1, and a client that uses each ticket once (rustls,
 * BoringSSL) would then have none left; 1 otherwise.
 */
static int
ticket_key_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
    EVP_MAC_CTX *hctx, int enc)
{
	const struct ticket_keys *tk = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index);
	int64_t now = (int64_t)time(NULL);
	const struct ticket_keyring *ring;
	const struct ticket_key *k;
	enum ticket_match match;

	if (tk == NULL || (ring = thread_keyring(tk, now)) == NULL)
		return enc ? -1 : 0;
	if (enc) {
		k = ticket_keyring_current(ring);
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(tk->cipher)) != 1)
			return -1;
		memcpy(name, k->name, TICKET_NAME_LEN);
		if (EVP_EncryptInit_ex2(cctx, tk->cipher, k->aes_key, iv, NULL) != 1 ||
		    set_mac_key(hctx, k) != 0)
			return -1;
		return 1;
	}
	match = ticket_keyring_find(ring, name, now, &k);
	SSL_set_ex_data(ssl, ssl_index, (void *)(intptr_t)(match | MATCH_RECORDED));
	if (k == NULL)
		return 0;
	if (EVP_DecryptInit_ex2(cctx, tk->cipher, k->aes_key, iv, NULL) != 1 ||
	    set_mac_key(hctx, k) != 0)
		return -1;
	if ((SSL_version(ssl) == TLS1_3_VERSION && tk->renew_tls13) ||
	    k != ticket_keyring_current(ring))
		return 2;
	return 1;
}

/*
 * Count why a ticket was not used; the answer itself is OpenSSL's default,
 * except for a ticket that decrypted but session_check() refuses.
 */
static SSL_TICKET_RETURN
ticket_decrypted_cb(SSL *ssl, SSL_SESSION *sess, const unsigned char *keyname,
    size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
	intptr_t raw = (intptr_t)SSL_get_ex_data(ssl, ssl_index);
	enum ticket_match match = (enum ticket_match)(raw & ~MATCH_RECORDED);

	switch (status) {
	case SSL_TICKET_EMPTY:
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	case SSL_TICKET_NO_DECRYPT:
		/* OpenSSL skips the key callback for tickets too short to hold a name and IV. */
		if (!(raw & MATCH_RECORDED))
			stats_add(STAT_TICKET_REJECTED_MALFORMED, 1);
		else if (match == TICKET_MATCH_NONE)
			stats_add(STAT_TICKET_REJECTED_UNKNOWN, 1);
		else if (match == TICKET_MATCH_EXPIRED)
			stats_add(STAT_TICKET_REJECTED_EXPIRED, 1);
		else	/* the name matched a usable key: the MAC or the contents were bad */
			stats_add(STAT_TICKET_REJECTED_MALFORMED, 1);
		/* Not a resumption: forget the match so the handshake counts as full. */
		SSL_set_ex_data(ssl, ssl_index, NULL);
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	case SSL_TICKET_SUCCESS:
	case SSL_TICKET_SUCCESS_RENEW:
		if (session_check(ssl, sess, (int64_t)time(NULL), "ticket") != SESSION_RESUME) {
			SSL_set_ex_data(ssl, ssl_index, NULL);
			return SSL_TICKET_RETURN_IGNORE_RENEW;
		}
		return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE :
		    SSL_TICKET_RETURN_USE_RENEW;
	default:
		return SSL_TICKET_RETURN_ABORT;
	}
}

int
ticket_keys_install(struct ticket_keys *tk, SSL_CTX *ctx)
{
	struct ticket_keys *old = SSL_CTX_get_ex_data(ctx, ctx_index);

	if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb) != 1 ||
	    SSL_CTX_set_session_ticket_cb(ctx, session_ticket_generated, ticket_decrypted_cb,
	    NULL) != 1)
		return -1;
	if (SSL_CTX_set_ex_data(ctx, ctx_index, ticket_keys_ref(tk)) != 1) {
		ticket_keys_unref(tk);	/* the context did not take it */
		return -1;
	}
	/* The free callback only sees the last keys: drop the ones replaced. */
	ticket_keys_unref(old);
	return 0;
}

enum ticket_match
ticket_match_of(const SSL *ssl)
{
	if (ssl_index < 0)
		return TICKET_MATCH_NONE;
	return (enum ticket_match)((intptr_t)SSL_get_ex_data(ssl, ssl_index) & ~MATCH_RECORDED);
}

static void
format_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
print_seed_schedule(const struct ticket_keys *tk, const unsigned char *prk, int previous,
    int64_t now, FILE *out)
{
	uint64_t n = (uint64_t)now / tk->period;
	uint64_t oldest = ticket_oldest_epoch(now, tk->period, tk->grace);
	struct ticket_key k;
	char from[32], to[32], until[32], hex[2 * TICKET_NAME_LEN + 1];

	fprintf(out, "%s fingerprint %s\n", previous ? "previous seed" : "seed",
	    previous ? tk->previous_fingerprint : tk->fingerprint);
	for (uint64_t m = n + 1; m + 1 > oldest; m--) {
		if (ticket_key_derive(prk, m, tk->period, &k) != 0)
			break;
		for (int i = 0; i < TICKET_NAME_LEN; i++)
			snprintf(hex + 2 * i, 3, "%02x", k.name[i]);
		format_time((int64_t)(m * tk->period), from, sizeof(from));
		format_time((int64_t)((m + 1) * tk->period), to, sizeof(to));
		format_time((int64_t)((m + 1) * tk->period + tk->grace), until, sizeof(until));
		fprintf(out, "  epoch %llu  key %s  %s  encrypts %s .. %s  decrypts until %s\n",
		    (unsigned long long)m, hex,
		    previous ? "decrypt-only" : m == n + 1 ? "next        " :
		    m == n ? "current     " : "grace       ",
		    from, to, until);
		if (m == 0)
			break;
	}
	OPENSSL_cleanse(&k, sizeof(k));
}

void
ticket_keys_print_schedule(const struct ticket_keys *tk, int64_t now, FILE *out)
{
	char when[32];

	format_time(now, when, sizeof(when));
	fprintf(out, "now %s, rotation_interval %llus, decrypt_grace %llus, epoch %llu\n", when,
	    (unsigned long long)tk->period, (unsigned long long)tk->grace,
	    (unsigned long long)((uint64_t)now / tk->period));
	print_seed_schedule(tk, tk->prk, 0, now, out);
	if (tk->has_previous)
		print_seed_schedule(tk, tk->previous_prk, 1, now, out);
}
