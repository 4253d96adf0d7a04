/*
 * check_ticket_keys: the seed-derived session ticket keys.  The derivation
 * against the known answers of the spec; the accept window with an injected
 * clock at every boundary (first and last second of an epoch, end of grace,
 * n+1, n+2, previous seed); and OpenSSL's ticket key callback end to end,
 * in memory over a BIO pair: resumption on the same and on another node,
 * another seed, tampered, truncated, grace, expired, next-epoch and
 * previous-seed tickets, and one real rotation.
 */
#define _GNU_SOURCE

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "testlib.h"
#include "../../src/stats.h"
#include "../../src/ticket_keys.h"

#define SEED_A "0123456789abcdef0123456789abcdef"
#define SEED_B "your-shared-secret-here-0123456789"
#define SEED_C "another-cluster-seed-0123456789ab"

/* OpenSSL's ticket layout: name | iv | AES-256-CBC(session) | HMAC-SHA256. */
#define TICK_IV_LEN 16
#define TICK_MAC_LEN 32
#define TICK_MAX 4096

/* ---------------------------------------------------------------------- */
/* Helpers: keys */

static void
to_hex(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

#define assert_hex(bytes, n, want) do {					\
	char hex_[2 * (n) + 1];						\
	to_hex((bytes), (n), hex_);					\
	ck_assert_str_eq(hex_, (want));					\
} while (0)

/* Epoch ${epoch}'s key of ${seed} for ${period}. */
static void
key_of(const char *seed, uint64_t epoch, uint64_t period, struct ticket_key *k)
{
	unsigned char prk[TICKET_PRK_LEN];

	ck_assert_int_eq(ticket_prk((const unsigned char *)seed, strlen(seed), prk), 0);
	ck_assert_int_eq(ticket_key_derive(prk, epoch, period, k), 0);
	ck_assert_uint_eq(k->epoch, epoch);
	ck_assert_int_eq(k->previous_seed, 0);
}

static struct ticket_settings
settings(const char *seed, const char *previous, int64_t period, int64_t grace)
{
	struct ticket_settings ts;

	memset(&ts, 0, sizeof(ts));
	ts.mode = TICKETS_STATELESS;
	ts.seed = (unsigned char *)seed;
	ts.seed_len = strlen(seed);
	if (previous != NULL) {
		ts.previous_seed = (unsigned char *)previous;
		ts.previous_seed_len = strlen(previous);
	}
	ts.rotation_interval = period;
	ts.decrypt_grace = grace;
	ts.session_lifetime = grace < 7200 ? grace : 7200;
	ts.tls13_tickets = 2;
	return ts;
}

static struct ticket_keys *
keys_new(const char *seed, const char *previous, int64_t period, int64_t grace)
{
	struct ticket_settings ts = settings(seed, previous, period, grace);
	struct ticket_keys *tk = ticket_keys_new(&ts);

	ck_assert_ptr_nonnull(tk);
	return tk;
}

/* Per-test fixture: drop this thread's cached keyring (valgrind, CK_FORK=no). */
static void
ring_teardown(void)
{
	ticket_keys_thread_end();
}

/* ---------------------------------------------------------------------- */
/* Derivation */

START_TEST(test_known_answer_hourly)
{
	struct ticket_key k;

	key_of(SEED_A, 493000, 3600, &k);
	assert_hex(k.name, TICKET_NAME_LEN, "3df0736c968e09348cf41f8d715f1fe7");
	assert_hex(k.hmac_key, TICKET_HMAC_KEY_LEN,
	    "4d883bb34a431c9ce0998996e8bbfbf144f0a41c7feb201e7fc5579237447ea3");
	assert_hex(k.aes_key, TICKET_AES_KEY_LEN,
	    "e7ef30605edc497e321b7c84726d5844ec928a0567e33c2ba9417f087a5a411f");
}
END_TEST

START_TEST(test_known_answer_minutely)
{
	struct ticket_key k;

	key_of(SEED_B, 29580000, 60, &k);
	assert_hex(k.name, TICKET_NAME_LEN, "d0126c9ce9ad16d8a0d4c7db6930fd36");
}
END_TEST

START_TEST(test_derive_differs)
{
	struct ticket_key base, other;

	key_of(SEED_A, 493000, 3600, &base);
	/* Another epoch, the next and the previous one. */
	key_of(SEED_A, 493001, 3600, &other);
	ck_assert_mem_ne(base.name, other.name, TICKET_NAME_LEN);
	ck_assert_mem_ne(base.hmac_key, other.hmac_key, TICKET_HMAC_KEY_LEN);
	ck_assert_mem_ne(base.aes_key, other.aes_key, TICKET_AES_KEY_LEN);
	key_of(SEED_A, 492999, 3600, &other);
	ck_assert_mem_ne(base.name, other.name, TICKET_NAME_LEN);
	/* The same epoch number under another period. */
	key_of(SEED_A, 493000, 60, &other);
	ck_assert_mem_ne(base.name, other.name, TICKET_NAME_LEN);
	ck_assert_mem_ne(base.aes_key, other.aes_key, TICKET_AES_KEY_LEN);
	/* Another seed. */
	key_of(SEED_B, 493000, 3600, &other);
	ck_assert_mem_ne(base.name, other.name, TICKET_NAME_LEN);
	ck_assert_mem_ne(base.hmac_key, other.hmac_key, TICKET_HMAC_KEY_LEN);
	/* And deterministic. */
	key_of(SEED_A, 493000, 3600, &other);
	ck_assert_mem_eq(base.name, other.name, TICKET_NAME_LEN);
	ck_assert_mem_eq(base.hmac_key, other.hmac_key, TICKET_HMAC_KEY_LEN);
	ck_assert_mem_eq(base.aes_key, other.aes_key, TICKET_AES_KEY_LEN);
}
END_TEST

static void
fingerprint_of(const char *seed, char out[TICKET_FINGERPRINT_LEN + 1])
{
	unsigned char prk[TICKET_PRK_LEN];

	ck_assert_int_eq(ticket_prk((const unsigned char *)seed, strlen(seed), prk), 0);
	memset(out, 'X', TICKET_FINGERPRINT_LEN + 1);
	ticket_fingerprint(prk, out);
}

START_TEST(test_fingerprint)
{
	char a[TICKET_FINGERPRINT_LEN + 1], a2[TICKET_FINGERPRINT_LEN + 1];
	char b[TICKET_FINGERPRINT_LEN + 1];
	struct ticket_keys *tk;

	fingerprint_of(SEED_A, a);
	ck_assert_uint_eq(strlen(a), TICKET_FINGERPRINT_LEN);
	ck_assert_uint_eq(strspn(a, "0123456789abcdef"), TICKET_FINGERPRINT_LEN);
	fingerprint_of(SEED_A, a2);
	ck_assert_str_eq(a, a2);
	fingerprint_of(SEED_B, b);
	ck_assert_uint_eq(strlen(b), TICKET_FINGERPRINT_LEN);
	ck_assert_str_ne(a, b);
	/* The fingerprint is no part of the seed's bytes. */
	ck_assert_ptr_null(strstr(SEED_A, a));

	tk = keys_new(SEED_A, NULL, 3600, 43200);
	ck_assert_str_eq(ticket_keys_fingerprint(tk, 0), a);
	ck_assert_str_eq(ticket_keys_fingerprint(tk, 1), "");
	ticket_keys_unref(tk);
	tk = keys_new(SEED_B, SEED_A, 3600, 43200);
	ck_assert_str_eq(ticket_keys_fingerprint(tk, 0), b);
	ck_assert_str_eq(ticket_keys_fingerprint(tk, 1), a);
	ticket_keys_unref(tk);
}
END_TEST

START_TEST(test_keys_new_refs)
{
	struct ticket_settings ts = settings(SEED_A, NULL, 3600, 43200);
	struct ticket_keys *tk;

	ts.seed = NULL;
	ts.seed_len = 0;
	ck_assert_ptr_null(ticket_keys_new(&ts));
	ticket_keys_unref(NULL);

	tk = keys_new(SEED_A, NULL, 3600, 43200);
	ck_assert_ptr_eq(ticket_keys_ref(tk), tk);
	ticket_keys_unref(tk);
	/* Still alive: one reference left. */
	ck_assert_uint_eq(strlen(ticket_keys_fingerprint(tk, 0)), TICKET_FINGERPRINT_LEN);
	ticket_keys_unref(tk);
}
END_TEST

START_TEST(test_print_schedule)
{
	const int64_t P = 3600, G = 43200, n = 493000;
	struct ticket_keys *tk = keys_new(SEED_A, SEED_B, P, G);
	struct ticket_key k;
	char *buf = NULL, hex[2 * TICKET_AES_KEY_LEN + 1];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	ticket_keys_print_schedule(tk, n * P + 1800, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_ptr_nonnull(strstr(buf, ticket_keys_fingerprint(tk, 0)));
	ck_assert_ptr_nonnull(strstr(buf, ticket_keys_fingerprint(tk, 1)));
	ck_assert_msg(strstr(buf, "3df0736c968e09348cf41f8d715f1fe7") != NULL,
	    "current key name missing:\n%s", buf);
	/* Every epoch that decrypts, n+1 down to n-12, and not n-13 nor n+2. */
	for (int64_t m = n - 13; m <= n + 2; m++) {
		int want = m >= n - 12 && m <= n + 1;

		key_of(SEED_A, (uint64_t)m, (uint64_t)P, &k);
		to_hex(k.name, TICKET_NAME_LEN, hex);
		ck_assert_msg((strstr(buf, hex) != NULL) == want, "epoch %lld %s",
		    (long long)m, want ? "missing" : "listed");
		/* No secret. */
		to_hex(k.hmac_key, TICKET_HMAC_KEY_LEN, hex);
		ck_assert_ptr_null(strstr(buf, hex));
		to_hex(k.aes_key, TICKET_AES_KEY_LEN, hex);
		ck_assert_ptr_null(strstr(buf, hex));
	}
	key_of(SEED_B, (uint64_t)n, (uint64_t)P, &k);
	to_hex(k.name, TICKET_NAME_LEN, hex);
	ck_assert_ptr_nonnull(strstr(buf, hex));
	ck_assert_ptr_null(strstr(buf, SEED_A));
	ck_assert_ptr_null(strstr(buf, SEED_B));
	free(buf);
	ticket_keys_unref(tk);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* The accept window, with an injected clock */

struct window {
	int64_t period, grace, n;
	int64_t oldest_first, oldest_last;	/* oldest decrypting epoch, 1st / last second */
};

static const struct window windows[] = {
	/* The defaults: n-12 decrypts during all of epoch n, n-13 never. */
	{ 3600, 43200, 493000, 493000 - 12, 493000 - 12 },
	/* Grace not a multiple of the period: n-3 stops in the middle of epoch n. */
	{ 2, 5, 1000, 1000 - 3, 1000 - 2 },
	/* No grace at all. */
	{ 60, 0, 29580000, 29580000, 29580000 },
};
#define NWINDOWS (sizeof(windows) / sizeof(windows[0]))

/* The rule of the spec, written out independently. */
static int
spec_decrypts(int64_t m, int64_t now, int64_t period, int64_t grace)
{
	int64_t n = now / period;

	if (m == n || m == n + 1)
		return 1;
	return m < n && now < (m + 1) * period + grace;
}

START_TEST(test_decrypts_boundaries)
{
	const struct window *w = &windows[_i];
	const uint64_t P = (uint64_t)w->period, G = (uint64_t)w->grace;
	const int64_t n = w->n, first = n * w->period, last = first + w->period - 1;

	for (int i = 0; i < 2; i++) {
		int64_t now = i == 0 ? first : last;

		ck_assert_int_eq(ticket_epoch_decrypts((uint64_t)n + 1, now, P, G), 1);
		ck_assert_int_eq(ticket_epoch_decrypts((uint64_t)n, now, P, G), 1);
		ck_assert_int_eq(ticket_epoch_decrypts((uint64_t)n + 2, now, P, G), 0);
		ck_assert_int_eq(ticket_epoch_decrypts((uint64_t)n + 100, now, P, G), 0);
		ck_assert_int_eq(ticket_epoch_decrypts(0, now, P, G), 0);
	}
	/* Each older epoch m decrypts until the second before (m+1)*P + G. */
	for (int64_t m = n - 20; m < n; m++) {
		int64_t end = (m + 1) * w->period + w->grace;	/* the first second it doesn't */

		ck_assert_msg(ticket_epoch_decrypts((uint64_t)m, end - 1, P, G),
		    "epoch %lld at %lld", (long long)m, (long long)(end - 1));
		ck_assert_msg(!ticket_epoch_decrypts((uint64_t)m, end, P, G),
		    "epoch %lld at %lld", (long long)m, (long long)end);
	}
	/* At the first and the last second of epoch n. */
	ck_assert_int_eq(ticket_epoch_decrypts((uint64_t)w->oldest_first, first, P, G), 1);
	if (w->oldest_first > 0)
		ck_assert_int_eq(ticket_epoch_decrypts((uint64_t)w->oldest_first - 1, first, P, G), 0);
	ck_assert_int_eq(ticket_epoch_decrypts((uint64_t)w->oldest_last, last, P, G), 1);
	ck_assert_int_eq(ticket_epoch_decrypts((uint64_t)w->oldest_last - 1, last, P, G), 0);
}
END_TEST

START_TEST(test_decrypts_model)
{
	const struct window *w = &windows[_i];
	const int64_t base = w->n * w->period - 30 * w->period;

	/* Every second of 40 epochs against every epoch around them. */
	for (int64_t now = base; now < base + 40 * w->period;
	    now += w->period > 100 ? w->period / 4 + 1 : 1) {
		int64_t n = now / w->period;

		for (int64_t m = n - 30; m <= n + 3; m++)
			ck_assert_msg(ticket_epoch_decrypts((uint64_t)m, now,
			    (uint64_t)w->period, (uint64_t)w->grace) ==
			    spec_decrypts(m, now, w->period, w->grace),
			    "epoch %lld at %lld", (long long)m, (long long)now);
	}
	/* Near the epoch boundaries of the default window, second by second. */
	for (int64_t now = w->n * w->period - 3; now < w->n * w->period + 3; now++)
		for (int64_t m = w->n - 30; m <= w->n + 3; m++)
			ck_assert_int_eq(ticket_epoch_decrypts((uint64_t)m, now,
			    (uint64_t)w->period, (uint64_t)w->grace),
			    spec_decrypts(m, now, w->period, w->grace));
}
END_TEST

START_TEST(test_oldest_epoch)
{
	const struct window *w = &windows[_i];
	const uint64_t P = (uint64_t)w->period, G = (uint64_t)w->grace;
	const int64_t first = w->n * w->period, last = first + w->period - 1;

	ck_assert_uint_eq(ticket_oldest_epoch(first, P, G), (uint64_t)w->oldest_first);
	ck_assert_uint_eq(ticket_oldest_epoch(last, P, G), (uint64_t)w->oldest_last);
	/* It is the oldest epoch that decrypts, at every second around. */
	for (int64_t now = first - 2 * w->period; now <= last + 2 * w->period; now++) {
		uint64_t o = ticket_oldest_epoch(now, P, G);

		ck_assert(ticket_epoch_decrypts(o, now, P, G));
		if (o > 0)
			ck_assert(!ticket_epoch_decrypts(o - 1, now, P, G));
		if (w->period > 100)
			now += w->period / 7;
	}
	/* Early in time: nothing older than epoch 0. */
	ck_assert_uint_eq(ticket_oldest_epoch(0, P, G), 0);
	ck_assert_uint_eq(ticket_oldest_epoch(w->grace > 0 ? w->grace - 1 : 0, P, G), 0);
}
END_TEST

/* What ticket_keyring_find should say for epoch ${m} of a seed at ${now}. */
static enum ticket_match
expected_match(int64_t m, int64_t now, const struct window *w, int previous)
{
	int64_t n = now / w->period;

	if (m > n + 1)
		return TICKET_MATCH_NONE;
	if (spec_decrypts(m, now, w->period, w->grace))
		return previous ? TICKET_MATCH_PREVIOUS_SEED :
		    m >= n ? TICKET_MATCH_CURRENT : TICKET_MATCH_GRACE;
	return TICKET_MATCH_EXPIRED;	/* only asked for recently expired epochs */
}

static const char *
match_name(enum ticket_match m)
{
	static const char *const names[] = { "NONE", "CURRENT", "GRACE", "PREVIOUS_SEED",
	    "EXPIRED" };

	return (unsigned)m < 5 ? names[m] : "?";
}

/* Look up epoch ${m} of ${seed} in ${ring} at ${now}; check the answer and the key. */
static void
find_epoch(const struct ticket_keyring *ring, const char *seed, int previous, int64_t m,
    int64_t now, const struct window *w, enum ticket_match want)
{
	struct ticket_key k;
	const struct ticket_key *got = (const void *)&k;	/* must be reset */
	enum ticket_match match;

	key_of(seed, (uint64_t)m, (uint64_t)w->period, &k);
	match = ticket_keyring_find(ring, k.name, now, &got);
	ck_assert_msg(match == want, "%s epoch %lld (n %lld) at second %lld of the epoch: %s, want %s",
	    previous ? "previous seed" : "seed", (long long)m, (long long)(now / w->period),
	    (long long)(now % w->period), match_name(match), match_name(want));
	if (want == TICKET_MATCH_NONE || want == TICKET_MATCH_EXPIRED) {
		ck_assert_ptr_null(got);
		return;
	}
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(got->epoch, (uint64_t)m);
	ck_assert_int_eq(got->previous_seed, previous);
	ck_assert_mem_eq(got->name, k.name, TICKET_NAME_LEN);
	ck_assert_mem_eq(got->hmac_key, k.hmac_key, TICKET_HMAC_KEY_LEN);
	ck_assert_mem_eq(got->aes_key, k.aes_key, TICKET_AES_KEY_LEN);
}

/* Check every epoch around ${now} of both seeds in ${ring}. */
static void
check_ring(const struct ticket_keyring *ring, int64_t now, const struct window *w,
    int with_previous)
{
	int64_t n = now / w->period, oldest = (int64_t)ticket_oldest_epoch(now,
	    (uint64_t)w->period, (uint64_t)w->grace);
	struct ticket_key k;

	for (int previous = 0; previous <= with_previous; previous++) {
		const char *seed = previous ? SEED_B : SEED_A;

		/* Recently expired (a few), every decrypting one, n+1, and n+2, n+3. */
		for (int64_t m = oldest - 3; m <= n + 3; m++)
			find_epoch(ring, seed, previous, m, now, w,
			    expected_match(m, now, w, previous));
		/* Long expired: forgotten. */
		find_epoch(ring, seed, previous, oldest - 1000, now, w, TICKET_MATCH_NONE);
	}
	if (!with_previous)	/* a seed the ring doesn't know */
		find_epoch(ring, SEED_B, 0, n, now, w, TICKET_MATCH_NONE);
	find_epoch(ring, SEED_C, 0, n, now, w, TICKET_MATCH_NONE);
	/* An unknown name. */
	{
		unsigned char name[TICKET_NAME_LEN];
		const struct ticket_key *got = (const void *)name;

		memset(name, 0, sizeof(name));
		ck_assert_int_eq(ticket_keyring_find(ring, name, now, &got), TICKET_MATCH_NONE);
		ck_assert_ptr_null(got);
		memset(name, 0xff, sizeof(name));
		ck_assert_int_eq(ticket_keyring_find(ring, name, now, &got), TICKET_MATCH_NONE);
	}
	/* The current key encrypts: epoch n of the current seed. */
	key_of(SEED_A, (uint64_t)n, (uint64_t)w->period, &k);
	ck_assert_uint_eq(ticket_keyring_current(ring)->epoch, (uint64_t)n);
	ck_assert_int_eq(ticket_keyring_current(ring)->previous_seed, 0);
	ck_assert_mem_eq(ticket_keyring_current(ring)->name, k.name, TICKET_NAME_LEN);
	ck_assert_mem_eq(ticket_keyring_current(ring)->hmac_key, k.hmac_key, TICKET_HMAC_KEY_LEN);
	ck_assert_mem_eq(ticket_keyring_current(ring)->aes_key, k.aes_key, TICKET_AES_KEY_LEN);
}

START_TEST(test_keyring_window)
{
	const struct window *w = &windows[_i];
	const int64_t first = w->n * w->period, last = first + w->period - 1;
	struct ticket_keys *tk = keys_new(SEED_A, NULL, w->period, w->grace);
	struct ticket_keyring *ring;

	/* Built at second 0, used until the epoch's last second. */
	ring = ticket_keyring_new(tk, first);
	ck_assert_ptr_nonnull(ring);
	check_ring(ring, first, w, 0);
	check_ring(ring, first + w->period / 2, w, 0);
	check_ring(ring, last, w, 0);
	ticket_keyring_free(ring);
	/* Built at the last second. */
	ring = ticket_keyring_new(tk, last);
	ck_assert_ptr_nonnull(ring);
	check_ring(ring, last, w, 0);
	ticket_keyring_free(ring);
	ticket_keyring_free(NULL);
	ticket_keys_unref(tk);
}
END_TEST

START_TEST(test_keyring_previous_seed)
{
	const struct window *w = &windows[_i];
	const int64_t first = w->n * w->period, last = first + w->period - 1;
	/* SEED_A is current, SEED_B the previous seed. */
	struct ticket_keys *tk = keys_new(SEED_A, SEED_B, w->period, w->grace);
	struct ticket_keyring *ring;

	ring = ticket_keyring_new(tk, first);
	ck_assert_ptr_nonnull(ring);
	check_ring(ring, first, w, 1);
	check_ring(ring, last, w, 1);
	ticket_keyring_free(ring);
	ring = ticket_keyring_new(tk, last);
	ck_assert_ptr_nonnull(ring);
	check_ring(ring, last, w, 1);
	ticket_keyring_free(ring);
	ticket_keys_unref(tk);
}
END_TEST

START_TEST(test_keyring_explicit)
{
	/* The defaults, spelled out: P = 1h, G = 12h, n = 493000. */
	const struct window *w = &windows[0];
	const int64_t n = 493000, first = n * 3600, last = first + 3599;
	struct ticket_keys *tk = keys_new(SEED_A, SEED_B, 3600, 43200);
	struct ticket_keyring *ring = ticket_keyring_new(tk, first);

	ck_assert_ptr_nonnull(ring);
	for (int i = 0; i < 2; i++) {
		int64_t now = i == 0 ? first : last;

		find_epoch(ring, SEED_A, 0, n + 1, now, w, TICKET_MATCH_CURRENT);
		find_epoch(ring, SEED_A, 0, n, now, w, TICKET_MATCH_CURRENT);
		find_epoch(ring, SEED_A, 0, n - 1, now, w, TICKET_MATCH_GRACE);
		find_epoch(ring, SEED_A, 0, n - 12, now, w, TICKET_MATCH_GRACE);
		find_epoch(ring, SEED_A, 0, n - 13, now, w, TICKET_MATCH_EXPIRED);
		find_epoch(ring, SEED_A, 0, n + 2, now, w, TICKET_MATCH_NONE);
		find_epoch(ring, SEED_B, 1, n + 1, now, w, TICKET_MATCH_PREVIOUS_SEED);
		find_epoch(ring, SEED_B, 1, n, now, w, TICKET_MATCH_PREVIOUS_SEED);
		find_epoch(ring, SEED_B, 1, n - 12, now, w, TICKET_MATCH_PREVIOUS_SEED);
		find_epoch(ring, SEED_B, 1, n - 13, now, w, TICKET_MATCH_EXPIRED);
		find_epoch(ring, SEED_B, 1, n + 2, now, w, TICKET_MATCH_NONE);
	}
	ticket_keyring_free(ring);

	/* P = 2 s, G = 5 s: epoch n-3 decrypts at 2n, no longer at 2n+1. */
	ticket_keys_unref(tk);
	tk = keys_new(SEED_A, SEED_B, 2, 5);
	ring = ticket_keyring_new(tk, 2000);
	ck_assert_ptr_nonnull(ring);
	find_epoch(ring, SEED_A, 0, 997, 2000, &windows[1], TICKET_MATCH_GRACE);
	find_epoch(ring, SEED_A, 0, 997, 2001, &windows[1], TICKET_MATCH_EXPIRED);
	find_epoch(ring, SEED_A, 0, 998, 2001, &windows[1], TICKET_MATCH_GRACE);
	find_epoch(ring, SEED_A, 0, 996, 2000, &windows[1], TICKET_MATCH_EXPIRED);
	find_epoch(ring, SEED_B, 1, 997, 2000, &windows[1], TICKET_MATCH_PREVIOUS_SEED);
	find_epoch(ring, SEED_B, 1, 997, 2001, &windows[1], TICKET_MATCH_EXPIRED);
	find_epoch(ring, SEED_A, 0, 1001, 2001, &windows[1], TICKET_MATCH_CURRENT);
	find_epoch(ring, SEED_A, 0, 1002, 2001, &windows[1], TICKET_MATCH_NONE);
	ticket_keyring_free(ring);
	ticket_keys_unref(tk);
}
END_TEST

START_TEST(test_keyring_early_epochs)
{
	/* Epochs near 0: nothing older than epoch 0 to derive. */
	const struct window w = { 10, 25, 0, 0, 0 };
	struct ticket_keys *tk = keys_new(SEED_A, SEED_B, 10, 25);

	for (int64_t now = 0; now < 60; now++) {
		struct ticket_keyring *ring = ticket_keyring_new(tk, now);

		ck_assert_ptr_nonnull(ring);
		for (int64_t m = 0; m <= now / 10 + 3; m++) {
			find_epoch(ring, SEED_A, 0, m, now, &w, expected_match(m, now, &w, 0));
			find_epoch(ring, SEED_B, 1, m, now, &w, expected_match(m, now, &w, 1));
		}
		ticket_keyring_free(ring);
	}
	ticket_keys_unref(tk);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* The OpenSSL callback, end to end over a BIO pair */

/*
 * The callback reads time(NULL) and cannot be given a clock, so most tests
 * use a period of 2^30 s: the whole of 2004-01-10 .. 2038-01-19 is epoch 1,
 * and a test never straddles a rotation.  Tickets of other epochs are made
 * by re-encrypting a real ticket under the derived key of that epoch.
 */
#define CB_PERIOD ((int64_t)1 << 30)
#define CB_GRACE ((int64_t)43200)

static const int versions[] = { TLS1_2_VERSION, TLS1_3_VERSION };

static SSL_CTX *
server_ctx(struct ticket_keys *tk)
{
	static const unsigned char sid_ctx[] = "tlsproxy-test";
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	ck_assert_ptr_nonnull(ctx);
	ck_assert(SSL_CTX_use_certificate(ctx, tl_cert(TL_SERVER)) == 1);
	ck_assert(SSL_CTX_use_PrivateKey(ctx, tl_key(TL_SERVER)) == 1);
	ck_assert(SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) == 1);
	SSL_CTX_set_timeout(ctx, 7200);
	ck_assert(SSL_CTX_set_num_tickets(ctx, 2) == 1);
	ck_assert_int_eq(ticket_keys_install(tk, ctx), 0);
	return ctx;
}

struct conn_result {
	int client_reused, server_reused;
	enum ticket_match match;
	int new_sessions;		/* tickets the client received */
	SSL_SESSION *session;		/* the client's session afterwards; owned */
	int64_t started, ended;		/* time(NULL) around the handshake */
};

/* One connection from ${cctx} to ${sctx}, offering ${offer} if not NULL. */
static void
run_conn(SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION *offer, struct conn_result *r)
{
	struct tl_tls *t = tl_tls_new(cctx, sctx, TL_LINK_MEMORY);

	memset(r, 0, sizeof(*r));
	if (offer != NULL)
		tl_tls_offer(t, offer);
	r->started = (int64_t)time(NULL);
	ck_assert_msg(tl_tls_handshake(t), "handshake failed: client: %s; server: %s",
	    t->client_error, t->server_error);
	tl_tls_settle(t);
	r->ended = (int64_t)time(NULL);
	r->client_reused = SSL_session_reused(t->client);
	r->server_reused = SSL_session_reused(t->server);
	r->match = ticket_match_of(t->server);
	r->new_sessions = t->new_sessions;
	r->session = SSL_get1_session(t->client);
	ck_assert_ptr_nonnull(r->session);
	ck_assert_int_eq(SSL_version(t->client), SSL_SESSION_get_protocol_version(r->session));
	tl_tls_free(t);
}

static void
ticket_of(const SSL_SESSION *sess, unsigned char *out, size_t *len)
{
	const unsigned char *t = NULL;
	size_t tlen = 0;

	SSL_SESSION_get0_ticket(sess, &t, &tlen);
	ck_assert_msg(t != NULL && tlen > 0, "the session has no ticket");
	ck_assert_uint_lt(tlen, TICK_MAX);
	memcpy(out, t, tlen);
	*len = tlen;
}

static int
same_ticket(const SSL_SESSION *a, const SSL_SESSION *b)
{
	unsigned char ta[TICK_MAX], tb[TICK_MAX];
	size_t la, lb;

	ticket_of(a, ta, &la);
	ticket_of(b, tb, &lb);
	return la == lb && memcmp(ta, tb, la) == 0;
}

/* The epoch of ${seed} in [from, to] whose key named the ticket of ${sess}; -1 if none. */
static int64_t
ticket_epoch(const SSL_SESSION *sess, const char *seed, int64_t period, int64_t from, int64_t to)
{
	unsigned char t[TICK_MAX];
	size_t len;
	struct ticket_key k;

	ticket_of(sess, t, &len);
	for (int64_t m = from; m <= to; m++) {
		key_of(seed, (uint64_t)m, (uint64_t)period, &k);
		if (memcmp(t, k.name, TICKET_NAME_LEN) == 0)
			return m;
	}
	return -1;
}

/* Assert that ${r}'s ticket is under ${seed}'s current key (epoch at the handshake). */
static void
assert_current_ticket(const struct conn_result *r, const char *seed, int64_t period)
{
	int64_t m = ticket_epoch(r->session, seed, period, r->started / period,
	    r->ended / period);

	ck_assert_msg(m >= 0, "the ticket is not under the current key");
}

/* Decrypt ticket ${t} made under ${k}; the plaintext goes to ${pt}. */
static size_t
ticket_open(const struct ticket_key *k, const unsigned char *t, size_t len, unsigned char *pt)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;
	EVP_CIPHER_CTX *c;
	int l1 = 0, l2 = 0;

	ck_assert_uint_gt(len, TICKET_NAME_LEN + TICK_IV_LEN + TICK_MAC_LEN);
	ck_assert_mem_eq(t, k->name, TICKET_NAME_LEN);
	ck_assert_ptr_nonnull(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, k->hmac_key,
	    TICKET_HMAC_KEY_LEN, t, len - TICK_MAC_LEN, mac, sizeof(mac), &maclen));
	ck_assert_uint_eq(maclen, TICK_MAC_LEN);
	ck_assert_msg(CRYPTO_memcmp(mac, t + len - TICK_MAC_LEN, TICK_MAC_LEN) == 0,
	    "the ticket's MAC is not HMAC-SHA256(hmac_key, name | iv | ciphertext)");
	ck_assert_ptr_nonnull(c = EVP_CIPHER_CTX_new());
	ck_assert(EVP_DecryptInit_ex2(c, EVP_aes_256_cbc(), k->aes_key,
	    t + TICKET_NAME_LEN, NULL) == 1);
	ck_assert(EVP_DecryptUpdate(c, pt, &l1, t + TICKET_NAME_LEN + TICK_IV_LEN,
	    (int)(len - TICKET_NAME_LEN - TICK_IV_LEN - TICK_MAC_LEN)) == 1);
	ck_assert_msg(EVP_DecryptFinal_ex(c, pt + l1, &l2) == 1,
	    "the ticket does not decrypt with AES-256-CBC(aes_key, iv)");
	EVP_CIPHER_CTX_free(c);
	return (size_t)(l1 + l2);
}

/* Encrypt ${pt} into ticket ${t} under ${k}, OpenSSL's layout; returns its length. */
static size_t
ticket_seal(const struct ticket_key *k, const unsigned char *pt, size_t ptlen, unsigned char *t)
{
	unsigned char *iv = t + TICKET_NAME_LEN, *ct = iv + TICK_IV_LEN;
	EVP_CIPHER_CTX *c;
	int l1 = 0, l2 = 0;
	size_t len, maclen = 0;

	memcpy(t, k->name, TICKET_NAME_LEN);
	ck_assert(RAND_bytes(iv, TICK_IV_LEN) == 1);
	ck_assert_ptr_nonnull(c = EVP_CIPHER_CTX_new());
	ck_assert(EVP_EncryptInit_ex2(c, EVP_aes_256_cbc(), k->aes_key, iv, NULL) == 1);
	ck_assert(EVP_EncryptUpdate(c, ct, &l1, pt, (int)ptlen) == 1);
	ck_assert(EVP_EncryptFinal_ex(c, ct + l1, &l2) == 1);
	EVP_CIPHER_CTX_free(c);
	len = TICKET_NAME_LEN + TICK_IV_LEN + (size_t)(l1 + l2);
	ck_assert_ptr_nonnull(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, k->hmac_key,
	    TICKET_HMAC_KEY_LEN, t, len, t + len, TICK_MAC_LEN, &maclen));
	ck_assert_uint_eq(maclen, TICK_MAC_LEN);
	return len + TICK_MAC_LEN;
}

/* The DER element at ${p}: its total length; header and content lengths out. */
static size_t
der_element(const unsigned char *p, size_t avail, size_t *hdr, size_t *clen)
{
	size_t h = 2, len;

	ck_assert_uint_ge(avail, 2);
	if (p[1] < 0x80) {
		len = p[1];
	} else {
		size_t nb = p[1] & 0x7f;

		ck_assert(nb >= 1 && nb <= 3 && avail >= 2 + nb);
		len = 0;
		for (size_t i = 0; i < nb; i++)
			len = len << 8 | p[2 + i];
		h += nb;
	}
	ck_assert_uint_le(h + len, avail);
	*hdr = h;
	*clen = len;
	return h + len;
}

static size_t
der_header(unsigned char *out, unsigned char tag, size_t len)
{
	out[0] = tag;
	if (len < 0x80) {
		out[1] = (unsigned char)len;
		return 2;
	}
	ck_assert_uint_lt(len, 0x10000);
	if (len < 0x100) {
		out[1] = 0x81;
		out[2] = (unsigned char)len;
		return 3;
	}
	out[1] = 0x82;
	out[2] = (unsigned char)(len >> 8);
	out[3] = (unsigned char)len;
	return 4;
}

/*
 * ${sess} with its ticket replaced by ${tick} (any length): the DER of
 * SSL_SESSION_ASN1 re-encoded with a new "[10] EXPLICIT OCTET STRING".
 */
static SSL_SESSION *
session_with_ticket(SSL_SESSION *sess, const unsigned char *tick, size_t ticklen)
{
	unsigned char *der = NULL, *body, *out, old[TICK_MAX];
	const unsigned char *pp;
	size_t hdr, clen, pos, blen = 0, olen, oldlen;
	int dlen, found = 0;
	SSL_SESSION *ns;

	ticket_of(sess, old, &oldlen);
	dlen = i2d_SSL_SESSION(sess, &der);
	ck_assert_int_gt(dlen, 0);
	ck_assert_int_eq(der[0], 0x30);
	ck_assert_uint_eq(der_element(der, (size_t)dlen, &hdr, &clen), (size_t)dlen);
	ck_assert_ptr_nonnull(body = malloc((size_t)dlen + ticklen + 16));
	for (pos = hdr; pos < (size_t)dlen;) {
		size_t eh, ec, elen = der_element(der + pos, (size_t)dlen - pos, &eh, &ec);

		if (der[pos] == 0xaa) {		/* [10] EXPLICIT: the ticket */
			unsigned char oct[4];
			size_t ih, ic, oh;

			ck_assert_int_eq(der[pos + eh], 0x04);
			ck_assert_uint_eq(der_element(der + pos + eh, ec, &ih, &ic), ec);
			ck_assert_uint_eq(ic, oldlen);
			ck_assert_mem_eq(der + pos + eh + ih, old, oldlen);
			oh = der_header(oct, 0x04, ticklen);
			blen += der_header(body + blen, 0xaa, oh + ticklen);
			memcpy(body + blen, oct, oh);
			blen += oh;
			memcpy(body + blen, tick, ticklen);
			blen += ticklen;
			found = 1;
		} else {
			memcpy(body + blen, der + pos, elen);
			blen += elen;
		}
		pos += elen;
	}
	ck_assert_msg(found, "no ticket in the session's DER");
	ck_assert_ptr_nonnull(out = malloc(blen + 4));
	olen = der_header(out, 0x30, blen);
	memcpy(out + olen, body, blen);
	olen += blen;
	pp = out;
	ns = d2i_SSL_SESSION(NULL, &pp, (long)olen);
	ck_assert_ptr_nonnull(ns);
	ticket_of(ns, old, &oldlen);
	ck_assert_uint_eq(oldlen, ticklen);
	ck_assert_mem_eq(old, tick, ticklen);
	OPENSSL_free(der);
	free(body);
	free(out);
	return ns;
}

/* ${sess}, its ticket (under ${from}) re-encrypted under ${to}. */
static SSL_SESSION *
session_resealed(SSL_SESSION *sess, const struct ticket_key *from, const struct ticket_key *to)
{
	unsigned char t[TICK_MAX], pt[TICK_MAX], nt[TICK_MAX + 64];
	size_t len, ptlen, nlen;

	ticket_of(sess, t, &len);
	ptlen = ticket_open(from, t, len, pt);
	nlen = ticket_seal(to, pt, ptlen, nt);
	ck_assert_uint_eq(nlen, len);
	OPENSSL_cleanse(pt, sizeof(pt));
	return session_with_ticket(sess, nt, nlen);
}

struct counters {
	uint64_t unknown, expired, malformed;
};

static struct counters
counters_now(void)
{
	struct counters c = {
		stats_get(STAT_TICKET_REJECTED_UNKNOWN),
		stats_get(STAT_TICKET_REJECTED_EXPIRED),
		stats_get(STAT_TICKET_REJECTED_MALFORMED),
	};

	return c;
}

/* Assert the rejection counters grew by exactly these since ${before}. */
static void
assert_rejections(struct counters before, uint64_t unknown, uint64_t expired,
    uint64_t malformed, const char *what)
{
	struct counters now = counters_now();

	ck_assert_msg(now.unknown - before.unknown == unknown &&
	    now.expired - before.expired == expired &&
	    now.malformed - before.malformed == malformed,
	    "%s: rejections unknown +%llu expired +%llu malformed +%llu, "
	    "want +%llu +%llu +%llu", what,
	    (unsigned long long)(now.unknown - before.unknown),
	    (unsigned long long)(now.expired - before.expired),
	    (unsigned long long)(now.malformed - before.malformed),
	    (unsigned long long)unknown, (unsigned long long)expired,
	    (unsigned long long)malformed);
}

/* A full handshake: nothing resumed on either side, no ticket match kept. */
static void
assert_full(const struct conn_result *r, const char *what)
{
	ck_assert_msg(!r->client_reused && !r->server_reused, "%s: resumed", what);
	ck_assert_msg(r->match == TICKET_MATCH_NONE, "%s: match %s after a full handshake",
	    what, match_name(r->match));
	ck_assert_msg(r->new_sessions >= 1, "%s: no ticket after a full handshake", what);
}

static void
assert_resumed(const struct conn_result *r, enum ticket_match want, const char *what)
{
	ck_assert_msg(r->client_reused, "%s: the client did not resume", what);
	ck_assert_msg(r->server_reused, "%s: the server did not resume", what);
	ck_assert_msg(r->match == want, "%s: match %s, want %s", what, match_name(r->match),
	    match_name(want));
}

/* The world of one callback test: a client, a server for ${seed}, a first session. */
struct world {
	int version;
	struct ticket_keys *tk;
	SSL_CTX *sctx, *cctx;
	struct conn_result first;
	int64_t n;			/* the current epoch of CB_PERIOD */
};

static void
world_start(struct world *w, int version, const char *seed, const char *previous)
{
	memset(w, 0, sizeof(*w));
	w->version = version;
	w->tk = keys_new(seed, previous, CB_PERIOD, CB_GRACE);
	w->sctx = server_ctx(w->tk);
	w->cctx = tl_client_ctx(version);
	run_conn(w->cctx, w->sctx, NULL, &w->first);
	assert_full(&w->first, "first connection");
	w->n = w->first.started / CB_PERIOD;
	ck_assert_int_eq(w->n, w->first.ended / CB_PERIOD);
}

static void
world_end(struct world *w)
{
	SSL_SESSION_free(w->first.session);
	SSL_CTX_free(w->cctx);
	SSL_CTX_free(w->sctx);
	ticket_keys_unref(w->tk);
}

/* Offer ${sess} from ${w}'s client to ${sctx}; the caller frees r->session. */
static void
offer(struct world *w, SSL_CTX *sctx, SSL_SESSION *sess, struct conn_result *r)
{
	run_conn(w->cctx, sctx, sess, r);
	ck_assert_int_eq(SSL_SESSION_get_protocol_version(r->session), w->version);
}

START_TEST(test_cb_roundtrip)
{
	struct world w;
	struct conn_result r, r2;
	struct ticket_key k;
	unsigned char t[TICK_MAX], pt[TICK_MAX];
	size_t len;
	struct counters before;

	world_start(&w, versions[_i], SEED_A, NULL);
	/* The ticket is OpenSSL's layout under epoch n's derived key. */
	key_of(SEED_A, (uint64_t)w.n, CB_PERIOD, &k);
	ticket_of(w.first.session, t, &len);
	ck_assert_mem_eq(t, k.name, TICKET_NAME_LEN);
	ck_assert_uint_gt(ticket_open(&k, t, len, pt), 0);

	before = counters_now();
	offer(&w, w.sctx, w.first.session, &r);
	assert_resumed(&r, TICKET_MATCH_CURRENT, "same node");
	assert_rejections(before, 0, 0, 0, "same node");
	if (w.version == TLS1_3_VERSION) {
		/* Return 2: a fresh ticket after the resumption, under epoch n. */
		ck_assert_msg(r.new_sessions >= 1, "no TLS 1.3 ticket after a resumption");
		ck_assert(!same_ticket(r.session, w.first.session));
		assert_current_ticket(&r, SEED_A, CB_PERIOD);
		/* And that one resumes too. */
		offer(&w, w.sctx, r.session, &r2);
		assert_resumed(&r2, TICKET_MATCH_CURRENT, "second resumption");
		SSL_SESSION_free(r2.session);
	} else {
		/* Return 1: a current-key TLS 1.2 ticket is kept as it is. */
		ck_assert_msg(same_ticket(r.session, w.first.session),
		    "a TLS 1.2 ticket under the current key was re-issued");
		offer(&w, w.sctx, r.session, &r2);
		assert_resumed(&r2, TICKET_MATCH_CURRENT, "second resumption");
		SSL_SESSION_free(r2.session);
	}
	SSL_SESSION_free(r.session);
	world_end(&w);
}
END_TEST

START_TEST(test_cb_cross_node)
{
	struct world w;
	struct ticket_keys *tk2;
	SSL_CTX *node2;
	struct conn_result r;
	struct counters before;

	world_start(&w, versions[_i], SEED_A, NULL);
	/* Another node: its own key schedule and context, the same seed. */
	tk2 = keys_new(SEED_A, NULL, CB_PERIOD, CB_GRACE);
	node2 = server_ctx(tk2);
	before = counters_now();
	offer(&w, node2, w.first.session, &r);
	assert_resumed(&r, TICKET_MATCH_CURRENT, "another node, same seed");
	assert_rejections(before, 0, 0, 0, "another node, same seed");
	if (w.version == TLS1_3_VERSION) {
		ck_assert_int_ge(r.new_sessions, 1);
		assert_current_ticket(&r, SEED_A, CB_PERIOD);
	}
	SSL_SESSION_free(r.session);
	/* And back on the first node (the thread's keyring is rebuilt). */
	offer(&w, w.sctx, w.first.session, &r);
	assert_resumed(&r, TICKET_MATCH_CURRENT, "back on the first node");
	SSL_SESSION_free(r.session);
	SSL_CTX_free(node2);
	ticket_keys_unref(tk2);
	world_end(&w);
}
END_TEST

START_TEST(test_cb_other_seed)
{
	struct world w;
	struct ticket_keys *tk2;
	SSL_CTX *other;
	struct conn_result r;
	struct counters before;

	world_start(&w, versions[_i], SEED_A, NULL);
	tk2 = keys_new(SEED_C, NULL, CB_PERIOD, CB_GRACE);
	other = server_ctx(tk2);
	before = counters_now();
	offer(&w, other, w.first.session, &r);
	assert_full(&r, "another seed");
	assert_rejections(before, 1, 0, 0, "another seed");
	/* The client got a ticket of the other seed, which resumes there. */
	ck_assert_int_ge(ticket_epoch(r.session, SEED_C, CB_PERIOD, w.n, w.n), 0);
	{
		struct conn_result r2;

		offer(&w, other, r.session, &r2);
		assert_resumed(&r2, TICKET_MATCH_CURRENT, "the other seed's own ticket");
		SSL_SESSION_free(r2.session);
	}
	SSL_SESSION_free(r.session);
	SSL_CTX_free(other);
	ticket_keys_unref(tk2);
	world_end(&w);
}
END_TEST

/*
 * The context holds its own reference to its keys: the caller's can go at
 * once (a use after free shows under the sanitizers and valgrind), and
 * keys installed over them take their place.
 */
START_TEST(test_cb_ctx_holds_keys)
{
	struct world w;
	struct ticket_keys *tk2 = keys_new(SEED_C, NULL, CB_PERIOD, CB_GRACE);
	struct conn_result r;

	world_start(&w, versions[_i], SEED_A, NULL);
	ticket_keys_unref(w.tk);
	w.tk = NULL;
	offer(&w, w.sctx, w.first.session, &r);
	assert_resumed(&r, TICKET_MATCH_CURRENT, "keys held by the context alone");
	SSL_SESSION_free(r.session);

	ck_assert_int_eq(ticket_keys_install(tk2, w.sctx), 0);
	ticket_keys_unref(tk2);
	offer(&w, w.sctx, w.first.session, &r);
	assert_full(&r, "seed A's ticket after seed C's keys were installed");
	ck_assert_int_ge(ticket_epoch(r.session, SEED_C, CB_PERIOD, w.n, w.n), 0);
	SSL_SESSION_free(r.session);
	world_end(&w);
}
END_TEST

/* Offer ${w}'s first ticket with byte ${at} flipped; a full handshake. */
static void
offer_flipped(struct world *w, size_t at, int unknown, int malformed, const char *what)
{
	unsigned char t[TICK_MAX];
	size_t len;
	SSL_SESSION *bad;
	struct conn_result r;
	struct counters before;

	ticket_of(w->first.session, t, &len);
	ck_assert_uint_lt(at, len);
	t[at] ^= 0x01;
	bad = session_with_ticket(w->first.session, t, len);
	before = counters_now();
	offer(w, w->sctx, bad, &r);
	assert_full(&r, what);
	assert_rejections(before, (uint64_t)unknown, 0, (uint64_t)malformed, what);
	SSL_SESSION_free(r.session);
	SSL_SESSION_free(bad);
}

START_TEST(test_cb_tampered)
{
	struct world w;
	unsigned char t[TICK_MAX];
	size_t len;

	world_start(&w, versions[_i], SEED_A, NULL);
	ticket_of(w.first.session, t, &len);
	offer_flipped(&w, len - 1, 0, 1, "last byte (MAC) flipped");
	offer_flipped(&w, len - TICK_MAC_LEN, 0, 1, "first MAC byte flipped");
	offer_flipped(&w, TICKET_NAME_LEN + TICK_IV_LEN + 3, 0, 1, "ciphertext flipped");
	offer_flipped(&w, TICKET_NAME_LEN + 2, 0, 1, "IV flipped");
	offer_flipped(&w, 0, 1, 0, "first key name byte flipped");
	offer_flipped(&w, TICKET_NAME_LEN - 1, 1, 0, "last key name byte flipped");
	world_end(&w);
}
END_TEST

/* Offer ${w}'s first ticket cut (or padded) to ${newlen} bytes: full, malformed. */
static void
offer_resized(struct world *w, size_t newlen)
{
	unsigned char t[TICK_MAX + 16];
	size_t len;
	SSL_SESSION *bad;
	struct conn_result r;
	struct counters before;
	char what[64];

	ticket_of(w->first.session, t, &len);
	if (newlen > len)
		memset(t + len, 0x5a, newlen - len);
	snprintf(what, sizeof(what), "%s ticket, %zu of %zu bytes",
	    w->version == TLS1_3_VERSION ? "TLS 1.3" : "TLS 1.2", newlen, len);
	bad = session_with_ticket(w->first.session, t, newlen);
	before = counters_now();
	offer(w, w->sctx, bad, &r);
	assert_full(&r, what);
	assert_rejections(before, 0, 0, 1, what);
	SSL_SESSION_free(r.session);
	SSL_SESSION_free(bad);
}

START_TEST(test_cb_truncated)
{
	struct world w;
	unsigned char t[TICK_MAX];
	size_t len;

	world_start(&w, versions[_i], SEED_A, NULL);
	ticket_of(w.first.session, t, &len);
	offer_resized(&w, len - 1);			/* the MAC cut short */
	offer_resized(&w, len - TICK_MAC_LEN);		/* no MAC at all */
	offer_resized(&w, len + 1);			/* one byte too many */
	/* name + iv + mac: OpenSSL's length check, after our callback */
	offer_resized(&w, TICKET_NAME_LEN + TICK_IV_LEN + TICK_MAC_LEN);
	offer_resized(&w, TICKET_NAME_LEN + TICK_IV_LEN + 8);
	offer_resized(&w, TICKET_NAME_LEN + TICK_IV_LEN);
	world_end(&w);
}
END_TEST

/*
 * Shorter than name + iv: OpenSSL gives up before calling the key callback
 * and hands the decrypted-ticket callback min(length, 16) name bytes.
 * Still malformed, whatever the first 16 bytes are.
 */
static const size_t short_lengths[] = {
	8, TICKET_NAME_LEN - 1,
	TICKET_NAME_LEN,			/* the key name only */
	TICKET_NAME_LEN + TICK_IV_LEN - 1,	/* name and all but one IV byte */
};
#define NSHORT (sizeof(short_lengths) / sizeof(short_lengths[0]))

START_TEST(test_cb_truncated_short)
{
	struct world w;

	world_start(&w, versions[_i % 2], SEED_A, NULL);
	offer_resized(&w, short_lengths[_i / 2]);
	world_end(&w);
}
END_TEST

/* Offer ${w}'s first session re-encrypted under epoch ${m} of ${seed} to ${sctx}. */
static void
offer_epoch(struct world *w, SSL_CTX *sctx, const char *seed, int64_t m,
    struct conn_result *r)
{
	struct ticket_key from, to;
	SSL_SESSION *sess;

	key_of(SEED_A, (uint64_t)w->n, CB_PERIOD, &from);
	key_of(seed, (uint64_t)m, CB_PERIOD, &to);
	sess = session_resealed(w->first.session, &from, &to);
	run_conn(w->cctx, sctx, sess, r);
	SSL_SESSION_free(sess);
}

START_TEST(test_cb_resealed_current)
{
	struct world w;
	struct conn_result r;

	/* Our re-encryption is faithful: epoch n again resumes like the original. */
	world_start(&w, versions[_i], SEED_A, NULL);
	offer_epoch(&w, w.sctx, SEED_A, w.n, &r);
	assert_resumed(&r, TICKET_MATCH_CURRENT, "re-encrypted under epoch n");
	SSL_SESSION_free(r.session);
	world_end(&w);
}
END_TEST

START_TEST(test_cb_grace_key)
{
	struct world w;
	struct ticket_keys *tk2;
	SSL_CTX *sctx2;
	struct conn_result r;
	struct counters before;

	/* A grace of 2^31 s: epoch n-1 still decrypts (until 2038 and later). */
	world_start(&w, versions[_i], SEED_A, NULL);
	tk2 = keys_new(SEED_A, NULL, CB_PERIOD, (int64_t)1 << 31);
	sctx2 = server_ctx(tk2);
	before = counters_now();
	offer_epoch(&w, sctx2, SEED_A, w.n - 1, &r);
	assert_resumed(&r, TICKET_MATCH_GRACE, "a grace key");
	assert_rejections(before, 0, 0, 0, "a grace key");
	/* Return 2: re-issued under epoch n's key. */
	ck_assert_msg(r.new_sessions >= 1 || w.version == TLS1_2_VERSION,
	    "no new ticket after a grace-key resumption");
	ck_assert_int_eq(ticket_epoch(r.session, SEED_A, CB_PERIOD, w.n - 1, w.n + 1), w.n);
	SSL_SESSION_free(r.session);
	SSL_CTX_free(sctx2);
	ticket_keys_unref(tk2);
	world_end(&w);
}
END_TEST

START_TEST(test_cb_expired_key)
{
	struct world w;
	struct ticket_keys *tk2;
	SSL_CTX *sctx2;
	struct conn_result r;
	struct counters before;

	/* No grace: epoch n-1 is known but expired. */
	world_start(&w, versions[_i], SEED_A, NULL);
	tk2 = keys_new(SEED_A, NULL, CB_PERIOD, 0);
	sctx2 = server_ctx(tk2);
	before = counters_now();
	offer_epoch(&w, sctx2, SEED_A, w.n - 1, &r);
	assert_full(&r, "an expired key");
	assert_rejections(before, 0, 1, 0, "an expired key");
	assert_current_ticket(&r, SEED_A, CB_PERIOD);
	SSL_SESSION_free(r.session);
	SSL_CTX_free(sctx2);
	ticket_keys_unref(tk2);
	world_end(&w);
}
END_TEST

START_TEST(test_cb_next_epoch)
{
	struct world w;
	struct conn_result r;
	struct counters before;

	/* A ticket from a node whose clock runs one epoch ahead. */
	world_start(&w, versions[_i], SEED_A, NULL);
	before = counters_now();
	offer_epoch(&w, w.sctx, SEED_A, w.n + 1, &r);
	assert_resumed(&r, TICKET_MATCH_CURRENT, "epoch n+1");
	assert_rejections(before, 0, 0, 0, "epoch n+1");
	/* Not epoch n's key: re-issued under it. */
	ck_assert_int_eq(ticket_epoch(r.session, SEED_A, CB_PERIOD, w.n - 1, w.n + 2), w.n);
	SSL_SESSION_free(r.session);
	/* Two epochs ahead: unknown. */
	before = counters_now();
	offer_epoch(&w, w.sctx, SEED_A, w.n + 2, &r);
	assert_full(&r, "epoch n+2");
	assert_rejections(before, 1, 0, 0, "epoch n+2");
	SSL_SESSION_free(r.session);
	world_end(&w);
}
END_TEST

START_TEST(test_cb_previous_seed)
{
	struct world w;
	struct ticket_keys *tk2, *tk3;
	SSL_CTX *changed, *dropped;
	struct conn_result r;
	struct counters before;

	/* Sessions from SEED_A; the cluster moves to SEED_B keeping SEED_A as previous. */
	world_start(&w, versions[_i], SEED_A, NULL);
	tk2 = keys_new(SEED_B, SEED_A, CB_PERIOD, CB_GRACE);
	changed = server_ctx(tk2);
	before = counters_now();
	offer(&w, changed, w.first.session, &r);
	assert_resumed(&r, TICKET_MATCH_PREVIOUS_SEED, "previous seed");
	assert_rejections(before, 0, 0, 0, "previous seed");
	/* Re-issued under the new seed's current key. */
	ck_assert_int_eq(ticket_epoch(r.session, SEED_B, CB_PERIOD, w.n, w.n), w.n);
	{
		struct conn_result r2;

		offer(&w, changed, r.session, &r2);
		assert_resumed(&r2, TICKET_MATCH_CURRENT, "the new seed's ticket");
		SSL_SESSION_free(r2.session);
	}
	SSL_SESSION_free(r.session);
	/* Epoch n+1 of the previous seed too. */
	offer_epoch(&w, changed, SEED_A, w.n + 1, &r);
	assert_resumed(&r, TICKET_MATCH_PREVIOUS_SEED, "previous seed, epoch n+1");
	SSL_SESSION_free(r.session);
	/* Once previous_seed is dropped: unknown. */
	tk3 = keys_new(SEED_B, NULL, CB_PERIOD, CB_GRACE);
	dropped = server_ctx(tk3);
	before = counters_now();
	offer(&w, dropped, w.first.session, &r);
	assert_full(&r, "previous seed dropped");
	assert_rejections(before, 1, 0, 0, "previous seed dropped");
	SSL_SESSION_free(r.session);
	SSL_CTX_free(dropped);
	ticket_keys_unref(tk3);
	SSL_CTX_free(changed);
	ticket_keys_unref(tk2);
	world_end(&w);
}
END_TEST

START_TEST(test_cb_previous_seed_expired)
{
	struct world w;
	struct ticket_keys *tk2;
	SSL_CTX *changed;
	struct conn_result r;
	struct counters before;

	/* No grace: the previous seed's epoch n-1 is expired like the current seed's. */
	world_start(&w, versions[_i], SEED_A, NULL);
	tk2 = keys_new(SEED_B, SEED_A, CB_PERIOD, 0);
	changed = server_ctx(tk2);
	before = counters_now();
	offer_epoch(&w, changed, SEED_A, w.n - 1, &r);
	assert_full(&r, "previous seed, expired epoch");
	assert_rejections(before, 0, 1, 0, "previous seed, expired epoch");
	SSL_SESSION_free(r.session);
	SSL_CTX_free(changed);
	ticket_keys_unref(tk2);
	world_end(&w);
}
END_TEST

/*
 * The only test on the real clock: rotation_interval 1 s, decrypt_grace
 * 10 s.  Tickets issued now resume after the next rotation under a grace
 * key, and are re-issued under the key of the new epoch.  One wait of at
 * most a second.
 */
START_TEST(test_cb_real_rotation)
{
	const int64_t P = 1, G = 10;
	struct ticket_keys *tk = keys_new(SEED_A, NULL, P, G);
	SSL_CTX *sctx = server_ctx(tk);
	SSL_CTX *cctx[2];
	struct conn_result first[2], r;
	int64_t issued[2], latest = 0;

	for (int i = 0; i < 2; i++) {
		cctx[i] = tl_client_ctx(versions[i]);
		run_conn(cctx[i], sctx, NULL, &first[i]);
		assert_full(&first[i], "first connection");
		issued[i] = ticket_epoch(first[i].session, SEED_A, P, first[i].started,
		    first[i].ended);
		ck_assert_int_ge(issued[i], 0);
		if (issued[i] > latest)
			latest = issued[i];
	}
	/* Wait for the next epoch. */
	while ((int64_t)time(NULL) / P <= latest) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < 2; i++) {
		const char *what = i == 0 ? "TLS 1.2 after a rotation" : "TLS 1.3 after a rotation";

		run_conn(cctx[i], sctx, first[i].session, &r);
		assert_resumed(&r, TICKET_MATCH_GRACE, what);
		ck_assert_msg(r.started < (issued[i] + 1) * P + G, "too slow: grace ended");
		/* Return 2: a new ticket under the current key. */
		ck_assert_msg(!same_ticket(r.session, first[i].session), "%s: not re-issued", what);
		ck_assert_int_gt(ticket_epoch(r.session, SEED_A, P, r.started, r.ended), issued[i]);
		SSL_SESSION_free(r.session);
		SSL_SESSION_free(first[i].session);
		SSL_CTX_free(cctx[i]);
	}
	SSL_CTX_free(sctx);
	ticket_keys_unref(tk);
}
END_TEST

/* ---------------------------------------------------------------------- */

static Suite *
ticket_keys_suite(void)
{
	Suite *s = suite_create("ticket_keys");
	TCase *tc;

	tc = tcase_create("derive");
	tcase_add_checked_fixture(tc, NULL, ring_teardown);
	tcase_add_test(tc, test_known_answer_hourly);
	tcase_add_test(tc, test_known_answer_minutely);
	tcase_add_test(tc, test_derive_differs);
	tcase_add_test(tc, test_fingerprint);
	tcase_add_test(tc, test_keys_new_refs);
	tcase_add_test(tc, test_print_schedule);
	suite_add_tcase(s, tc);

	tc = tcase_create("window");
	tcase_add_checked_fixture(tc, NULL, ring_teardown);
	tcase_add_loop_test(tc, test_decrypts_boundaries, 0, NWINDOWS);
	tcase_add_loop_test(tc, test_decrypts_model, 0, NWINDOWS);
	tcase_add_loop_test(tc, test_oldest_epoch, 0, NWINDOWS);
	tcase_add_loop_test(tc, test_keyring_window, 0, NWINDOWS);
	tcase_add_loop_test(tc, test_keyring_previous_seed, 0, NWINDOWS);
	tcase_add_test(tc, test_keyring_explicit);
	tcase_add_test(tc, test_keyring_early_epochs);
	suite_add_tcase(s, tc);

	tc = tcase_create("callback");
	tcase_add_unchecked_fixture(tc, tl_pki_setup, tl_pki_teardown);
	tcase_add_checked_fixture(tc, NULL, ring_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_loop_test(tc, test_cb_roundtrip, 0, 2);
	tcase_add_loop_test(tc, test_cb_cross_node, 0, 2);
	tcase_add_loop_test(tc, test_cb_other_seed, 0, 2);
	tcase_add_loop_test(tc, test_cb_ctx_holds_keys, 0, 2);
	tcase_add_loop_test(tc, test_cb_tampered, 0, 2);
	tcase_add_loop_test(tc, test_cb_truncated, 0, 2);
	tcase_add_loop_test(tc, test_cb_truncated_short, 0, 2 * NSHORT);
	tcase_add_loop_test(tc, test_cb_resealed_current, 0, 2);
	tcase_add_loop_test(tc, test_cb_grace_key, 0, 2);
	tcase_add_loop_test(tc, test_cb_expired_key, 0, 2);
	tcase_add_loop_test(tc, test_cb_next_epoch, 0, 2);
	tcase_add_loop_test(tc, test_cb_previous_seed, 0, 2);
	tcase_add_loop_test(tc, test_cb_previous_seed_expired, 0, 2);
	tcase_add_test(tc, test_cb_real_rotation);
	suite_add_tcase(s, tc);
	return s;
}

/*
 * tl_run() without its fixed CK_FORK: a fork per test unless the
 * environment says CK_FORK=no, so that valgrind can see every test.
 */
int
main(void)
{
	return tl_run(ticket_keys_suite());
}
