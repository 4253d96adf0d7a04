/*
 * ticket_keys: session ticket keys derived from a shared seed, so that every
 * node with the same seed encrypts and decrypts the same tickets.
 *
 * Derivation, version 1 (see tlsproxy.conf(5)):
 *   PRK    = HKDF-Extract(salt "tlsproxy-ticket-v1", seed)            SHA-256
 *   OKM(n) = HKDF-Expand(PRK, "epoch" || be64(n) || be64(period), 80)
 *   name = OKM[0,16)  hmac_key = OKM[16,48)  aes_key = OKM[48,80)
 * with n = floor(unix_time / period).  Epoch n's key encrypts; epochs n+1
 * (a node whose clock runs ahead), n, and every older m with
 * now < (m+1)*period + grace decrypt, for the current and previous seed.
 */
#ifndef TLSPROXY_TICKET_KEYS_H
#define TLSPROXY_TICKET_KEYS_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "config.h"

#define TICKET_NAME_LEN 16
#define TICKET_HMAC_KEY_LEN 32
#define TICKET_AES_KEY_LEN 32
#define TICKET_PRK_LEN 32
#define TICKET_FINGERPRINT_LEN 16	/* hex characters */

struct ticket_key {
	unsigned char name[TICKET_NAME_LEN];
	unsigned char hmac_key[TICKET_HMAC_KEY_LEN];
	unsigned char aes_key[TICKET_AES_KEY_LEN];
	uint64_t epoch;
	int previous_seed;	/* derived from previous_seed */
};

/* How a ticket's key name matched, for counters and re-issue decisions. */
enum ticket_match {
	TICKET_MATCH_NONE = 0,		/* no key of the window has this name */
	TICKET_MATCH_CURRENT,		/* epoch n (or n+1: a clock ahead of ours) */
	TICKET_MATCH_GRACE,		/* an older epoch still in its grace period */
	TICKET_MATCH_PREVIOUS_SEED,	/* any epoch of the previous seed */
	TICKET_MATCH_EXPIRED,		/* a known key whose grace has ended */
};

/** ticket_prk(seed, len, prk): HKDF-Extract of ${seed}; 0 or -1. */
int ticket_prk(const unsigned char *seed, size_t len, unsigned char prk[TICKET_PRK_LEN]);

/** ticket_key_derive(prk, epoch, period, key): epoch ${epoch}'s key; 0 or -1. */
int ticket_key_derive(const unsigned char prk[TICKET_PRK_LEN], uint64_t epoch,
    uint64_t period, struct ticket_key *key);

/** ticket_fingerprint(prk, out): first 8 bytes of SHA-256(PRK), in hex; safe to log. */
void ticket_fingerprint(const unsigned char prk[TICKET_PRK_LEN],
    char out[TICKET_FINGERPRINT_LEN + 1]);

/** ticket_epoch_decrypts(m, now, period, grace): may epoch ${m}'s key decrypt at ${now}? */
int ticket_epoch_decrypts(uint64_t m, int64_t now, uint64_t period, uint64_t grace);

/** ticket_oldest_epoch(now, period, grace): the oldest epoch that still decrypts at ${now}. */
uint64_t ticket_oldest_epoch(int64_t now, uint64_t period, uint64_t grace);

struct ticket_keys;
struct ticket_keyring;

/**
 * ticket_keys_new(ts): the key schedule of ${ts} (mode stateless), holding
 * one reference.  Keeps the PRKs, not the seeds.  NULL on failure.
 */
struct ticket_keys *ticket_keys_new(const struct ticket_settings *ts);

/** ticket_keys_ref(tk): another reference; returns ${tk}. */
struct ticket_keys *ticket_keys_ref(struct ticket_keys *tk);

/** ticket_keys_unref(tk): drop a reference; the last wipes the PRKs.  NULL is fine. */
void ticket_keys_unref(struct ticket_keys *tk);

/** ticket_keys_fingerprint(tk, previous): the seed's (or previous seed's) fingerprint, "" if none. */
const char *ticket_keys_fingerprint(const struct ticket_keys *tk, int previous);

/**
 * ticket_keys_install(tk, ctx): make ${ctx} encrypt and decrypt tickets
 * with ${tk}.  ${ctx} takes its own reference, dropped when it is freed
 * (or when other keys are installed), so the caller may unref ${tk} at
 * once.  0, or -1 with ${ctx} unchanged as to its keys.
 */
int ticket_keys_install(struct ticket_keys *tk, SSL_CTX *ctx);

/**
 * ticket_keyring_new(tk, now): every key that may be used during the epoch
 * containing ${now}: the encrypting key first, then the decrypt-only ones
 * (and recently expired ones, to tell "expired" from "unknown").
 */
struct ticket_keyring *ticket_keyring_new(const struct ticket_keys *tk, int64_t now);

/** ticket_keyring_free(ring): wipe and free; NULL is fine. */
void ticket_keyring_free(struct ticket_keyring *ring);

/** ticket_keyring_current(ring): the key that encrypts new tickets. */
const struct ticket_key *ticket_keyring_current(const struct ticket_keyring *ring);

/**
 * ticket_keyring_find(ring, name, now, key): how ${name} matches at ${now};
 * ${key} is set for CURRENT, GRACE and PREVIOUS_SEED.
 */
enum ticket_match ticket_keyring_find(const struct ticket_keyring *ring,
    const unsigned char name[TICKET_NAME_LEN], int64_t now, const struct ticket_key **key);

/**
 * ticket_keys_print_schedule(tk, now, out): the fingerprints and every key
 * name that decrypts at ${now} or encrypts next, with their time windows
 * (no secret), for `tlsproxy -K`.
 */
void ticket_keys_print_schedule(const struct ticket_keys *tk, int64_t now, FILE *out);

/** ticket_match_of(ssl): how the ticket of ${ssl}'s handshake matched, if one was offered. */
enum ticket_match ticket_match_of(const SSL *ssl);

/** ticket_keys_thread_end(): free this thread's cached keys (worker exit). */
void ticket_keys_thread_end(void);

#endif
