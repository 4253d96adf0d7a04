/*
 * session_cache: the session ID cache of a listener, and OpenSSL's
 * external cache callbacks that use it (SSL_SESS_CACHE_NO_INTERNAL).
 *
 * A hash table on the session ID with chaining, and a list in insertion
 * order: the head is dropped when the cache is full, and expiry walks it.
 * One mutex; the handshake path holds it for a lookup or an insert only,
 * never while a session is checked.  A cache is reference-counted: every
 * SSL_CTX that uses it holds one, so a reload hands it to the new context
 * while connections of the old one still add to it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "session_cache.h"
#include "session_check.h"

struct entry {
	SSL_SESSION *sess;
	unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
	unsigned int len;
	struct entry *chain;		/* next in the bucket */
	struct entry *prev, *next;	/* insertion order */
};

struct session_cache {
	atomic_int refs;
	pthread_mutex_t lock;
	size_t max, count;
	size_t nbuckets;		/* a power of two */
	struct entry **buckets;
	struct entry *oldest, *newest;
};

static int ctx_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void
ctx_cache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	session_cache_unref(ptr);
}

static void
alloc_index(void)
{
	ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ctx_cache_free);
}

/* FNV-1a: session IDs are random, anything spreads them. */
static size_t
bucket_of(const struct session_cache *sc, const unsigned char *id, size_t len)
{
	uint64_t h = 14695981039346656037ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ id[i]) * 1099511628211ULL;
	return (size_t)h & (sc->nbuckets - 1);
}

struct session_cache *
session_cache_new(size_t max)
{
	struct session_cache *sc;
	size_t n = 16;

	if (max == 0 || (sc = calloc(1, sizeof(*sc))) == NULL)
		return NULL;
	/* About one session a bucket at most, up to 2^20 buckets. */
	while (n < max && n < ((size_t)1 << 20))
		n <<= 1;
	if ((sc->buckets = calloc(n, sizeof(*sc->buckets))) == NULL) {
		free(sc);
		return NULL;
	}
	if (pthread_mutex_init(&sc->lock, NULL) != 0) {
		free(sc->buckets);
		free(sc);
		return NULL;
	}
	sc->nbuckets = n;
	sc->max = max;
	atomic_init(&sc->refs, 1);
	return sc;
}

static struct entry **
find(struct session_cache *sc, const unsigned char *id, size_t len)
{
	struct entry **e = &sc->buckets[bucket_of(sc, id, len)];

	while (*e != NULL && ((*e)->len != len || memcmp((*e)->id, id, len) != 0))
		e = &(*e)->chain;
	return e;
}

/* Unlink ${*slot} from its bucket and the list, and free it. */
static void
drop(struct session_cache *sc, struct entry **slot)
{
	struct entry *e = *slot;

	*slot = e->chain;
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		sc->oldest = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		sc->newest = e->prev;
	SSL_SESSION_free(e->sess);
	free(e);
	sc->count--;
}

static void
drop_entry(struct session_cache *sc, struct entry *e)
{
	drop(sc, find(sc, e->id, e->len));
}

void
session_cache_unref(struct session_cache *sc)
{
	if (sc == NULL || atomic_fetch_sub_explicit(&sc->refs, 1, memory_order_acq_rel) != 1)
		return;
	while (sc->oldest != NULL)
		drop_entry(sc, sc->oldest);
	pthread_mutex_destroy(&sc->lock);
	free(sc->buckets);
	free(sc);
}

static int
timed_out(SSL_SESSION *sess, int64_t now)
{
	return now >= session_time(sess) + (int64_t)SSL_SESSION_get_timeout(sess);
}

void
session_cache_add(struct session_cache *sc, SSL_SESSION *sess)
{
	const unsigned char *id;
	unsigned int len = 0;
	struct entry **slot, *e;

	id = SSL_SESSION_get_id(sess, &len);
	if (len == 0 || len > SSL_MAX_SSL_SESSION_ID_LENGTH ||
	    (e = calloc(1, sizeof(*e))) == NULL)
		return;		/* not cached: that client gets a full handshake next time */
	SSL_SESSION_up_ref(sess);
	e->sess = sess;
	memcpy(e->id, id, len);
	e->len = len;
	pthread_mutex_lock(&sc->lock);
	if (*(slot = find(sc, id, len)) != NULL)
		drop(sc, slot);
	while (sc->count >= sc->max && sc->oldest != NULL)
		drop_entry(sc, sc->oldest);
	slot = find(sc, id, len);
	*slot = e;
	e->prev = sc->newest;
	if (sc->newest != NULL)
		sc->newest->next = e;
	else
		sc->oldest = e;
	sc->newest = e;
	sc->count++;
	pthread_mutex_unlock(&sc->lock);
}

SSL_SESSION *
session_cache_get(struct session_cache *sc, const unsigned char *id, size_t len, int64_t now)
{
	SSL_SESSION *sess = NULL;
	struct entry **slot;

	pthread_mutex_lock(&sc->lock);
	if (*(slot = find(sc, id, len)) != NULL) {
		if (timed_out((*slot)->sess, now))
			drop(sc, slot);
		else if (SSL_SESSION_up_ref((*slot)->sess) == 1)
			sess = (*slot)->sess;
	}
	pthread_mutex_unlock(&sc->lock);
	return sess;
}

void
session_cache_remove(struct session_cache *sc, const unsigned char *id, size_t len)
{
	struct entry **slot;

	pthread_mutex_lock(&sc->lock);
	if (*(slot = find(sc, id, len)) != NULL)
		drop(sc, slot);
	pthread_mutex_unlock(&sc->lock);
}

void
session_cache_expire(struct session_cache *sc, int64_t now)
{
	struct entry *e, *next;

	pthread_mutex_lock(&sc->lock);
	for (e = sc->oldest; e != NULL; e = next) {
		next = e->next;
		if (timed_out(e->sess, now))
			drop_entry(sc, e);
	}
	pthread_mutex_unlock(&sc->lock);
}

size_t
session_cache_count(struct session_cache *sc)
{
	size_t n;

	pthread_mutex_lock(&sc->lock);
	n = sc->count;
	pthread_mutex_unlock(&sc->lock);
	return n;
}

/* --- OpenSSL's external cache callbacks --------------------------------- */

struct session_cache *
session_cache_of(SSL_CTX *ctx)
{
	return ctx_index >= 0 ? SSL_CTX_get_ex_data(ctx, ctx_index) : NULL;
}

/* A new session: capped at its certificate's lifetime, then kept. */
static int
on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct session_cache *sc = session_cache_of(SSL_get_SSL_CTX(ssl));

	if (sc != NULL) {
		session_check_cap(ssl, sess);
		session_cache_add(sc, sess);	/* takes its own reference */
	}
	return 0;	/* OpenSSL keeps the reference it passed */
}

/* A session ID (or a stateful TLS 1.3 ticket) offered: found and allowed? */
static SSL_SESSION *
on_get_session(SSL *ssl, const unsigned char *id, int len, int *copy)
{
	struct session_cache *sc = session_cache_of(SSL_get_SSL_CTX(ssl));
	int64_t now = (int64_t)time(NULL);
	SSL_SESSION *sess;

	*copy = 0;	/* OpenSSL takes the reference we return */
	if (sc == NULL || len <= 0 ||
	    (sess = session_cache_get(sc, id, (size_t)len, now)) == NULL)
		return NULL;
	if (session_check(ssl, sess, now, SSL_version(ssl) == TLS1_3_VERSION ?
	    "stateful ticket" : "session ID") != SESSION_RESUME) {
		session_cache_remove(sc, id, (size_t)len);
		SSL_SESSION_free(sess);
		return NULL;
	}
	return sess;
}

static void
on_remove_session(SSL_CTX *ctx, SSL_SESSION *sess)
{
	struct session_cache *sc = session_cache_of(ctx);
	const unsigned char *id;
	unsigned int len = 0;

	id = SSL_SESSION_get_id(sess, &len);
	if (sc != NULL && len > 0)
		session_cache_remove(sc, id, len);
}

int
session_cache_install(SSL_CTX *ctx, size_t max)
{
	struct session_cache *sc;

	pthread_once(&index_once, alloc_index);
	if (ctx_index < 0 || (sc = session_cache_new(max)) == NULL)
		return -1;
	if (SSL_CTX_set_ex_data(ctx, ctx_index, sc) != 1) {
		session_cache_unref(sc);
		return -1;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER |
	    SSL_SESS_CACHE_NO_AUTO_CLEAR | SSL_SESS_CACHE_NO_INTERNAL);
	SSL_CTX_sess_set_new_cb(ctx, on_new_session);
	SSL_CTX_sess_set_get_cb(ctx, on_get_session);
	SSL_CTX_sess_set_remove_cb(ctx, on_remove_session);
	return 0;
}

void
session_cache_adopt(SSL_CTX *ctx, SSL_CTX *from)
{
	struct session_cache *mine = session_cache_of(ctx), *old = session_cache_of(from);

	if (mine == NULL || old == NULL || mine == old)
		return;
	atomic_fetch_add_explicit(&old->refs, 1, memory_order_relaxed);
	pthread_mutex_lock(&old->lock);
	old->max = mine->max;	/* the new bound; the next add trims to it */
	pthread_mutex_unlock(&old->lock);
	SSL_CTX_set_ex_data(ctx, ctx_index, old);	/* cannot fail: the slot exists */
	session_cache_unref(mine);
}
