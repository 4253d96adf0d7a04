/*
 * alpn: owns the wire form of a listener's protocol list (hung on its
 * SSL_CTX) and the choice of one per connection.  The choice is the
 * server's first protocol the client also offers, as HAProxy and nginx
 * choose.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/tls1.h>

#include "alpn.h"

struct alpn_list {
	int required;
	size_t len;
	unsigned char wire[];		/* length-prefixed names */
};

static int list_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void
list_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	free(ptr);
}

static void
alloc_index(void)
{
	list_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, list_free);
}

static const struct alpn_list *
list_of(SSL *ssl)
{
	return list_index >= 0 ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), list_index) : NULL;
}

static int
select_protocol(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	const struct alpn_list *l = list_of(ssl);
	unsigned char *chosen;

	if (l == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	/* The first list is the one whose order wins. */
	if (SSL_select_next_proto(&chosen, outlen, l->wire, (unsigned int)l->len, in,
	    inlen) == OPENSSL_NPN_NEGOTIATED) {
		*out = chosen;
		return SSL_TLSEXT_ERR_OK;
	}
	/* OpenSSL answers a fatal error here with no_application_protocol. */
	return l->required ? SSL_TLSEXT_ERR_ALERT_FATAL : SSL_TLSEXT_ERR_NOACK;
}

int
alpn_install(SSL_CTX *ctx, const struct listener_settings *ls)
{
	struct alpn_list *l;
	size_t i, len = 0, n;

	if (ls->nalpn == 0)
		return 0;
	pthread_once(&index_once, alloc_index);
	for (i = 0; i < ls->nalpn; i++)
		len += 1 + strlen(ls->alpn[i]);
	if (list_index < 0 || (l = calloc(1, sizeof(*l) + len)) == NULL)
		return -1;
	l->required = ls->alpn_required;
	for (i = 0; i < ls->nalpn; i++) {
		n = strlen(ls->alpn[i]);	/* 1 to 255, checked by config */
		l->wire[l->len++] = (unsigned char)n;
		memcpy(l->wire + l->len, ls->alpn[i], n);
		l->len += n;
	}
	if (SSL_CTX_set_ex_data(ctx, list_index, l) != 1) {
		free(l);
		return -1;
	}
	SSL_CTX_set_alpn_select_cb(ctx, select_protocol, NULL);
	return 0;
}

int
alpn_client_hello(SSL *ssl, int *alert)
{
	const struct alpn_list *l = list_of(ssl);
	const unsigned char *p;
	size_t n;

	if (l == NULL || !l->required ||
	    SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation,
	    &p, &n) == 1)
		return 0;
	*alert = SSL_AD_NO_APPLICATION_PROTOCOL;
	return -1;
}
