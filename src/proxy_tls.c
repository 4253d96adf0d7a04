/*
 * proxy_tls: from an SSL connection to a struct proxy_info.
 *
 * A resumed session keeps the client certificate of the full handshake it
 * came from (OpenSSL stores it in the session), so the backend sees the
 * same identity on every reconnect: PP2_CLIENT_CERT_SESS without
 * PP2_CLIENT_CERT_CONN.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "proxy_header.h"
#include "proxy_tls.h"

#define CN_MAX 256

static void
common_name(X509 *cert, char *buf, size_t len)
{
	X509_NAME *name = X509_get_subject_name(cert);
	int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	int n;

	buf[0] = '\0';
	if (i < 0)
		return;
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (n > 0 && memchr(utf8, '\0', (size_t)n) == NULL) {
		/* Too long: cut before the character that does not fit, never
		 * inside it (continuation bytes are 10xxxxxx). */
		if ((size_t)n >= len) {
			n = (int)len - 1;
			while (n > 0 && (utf8[n] & 0xC0) == 0x80)
				n--;
		}
		snprintf(buf, len, "%.*s", n, (const char *)utf8);
	}
	OPENSSL_free(utf8);
}

/* "EC256", "RSA2048": the server key, as HAProxy reports it. */
static void
key_algorithm(X509 *cert, char *buf, size_t len)
{
	EVP_PKEY *pkey = cert != NULL ? X509_get0_pubkey(cert) : NULL;
	const char *type;

	buf[0] = '\0';
	if (pkey == NULL)
		return;
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		type = "RSA";
		break;
	case EVP_PKEY_EC:
		type = "EC";
		break;
	case EVP_PKEY_ED25519:
		type = "ED";
		break;
	default:
		type = "UNKNOWN";
		break;
	}
	snprintf(buf, len, "%s%d", type, EVP_PKEY_get_bits(pkey));
}

int
proxy_tls_header(enum proxy_protocol version, int with_cert, SSL *ssl, int fd,
    const struct sockaddr *peer, unsigned char *buf, size_t len)
{
	struct sockaddr_storage local;
	socklen_t locallen = sizeof(local);
	struct proxy_info info = { 0 };
	X509 *client = SSL_get0_peer_certificate(ssl);
	X509 *server = SSL_get_certificate(ssl);
	unsigned char *der = NULL;
	char cn[CN_MAX], key_alg[32];
	int n, sig_nid;

	if (getsockname(fd, (struct sockaddr *)&local, &locallen) != 0)
		return -1;
	info.client = peer;
	info.local = (struct sockaddr *)&local;
	if (version == PROXY_PROTOCOL_V1)
		return proxy_header_v1(&info, buf, len);

	info.sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	SSL_get0_alpn_selected(ssl, &info.alpn, (unsigned int *)&n);
	info.alpn_len = info.alpn != NULL ? (size_t)n : 0;
	info.cert_sess = client != NULL;
	info.cert_conn = client != NULL && !SSL_session_reused(ssl);
	info.verify_result = SSL_get_verify_result(ssl);
	info.version = SSL_get_version(ssl);
	info.cipher = SSL_get_cipher_name(ssl);
	if (client != NULL) {
		common_name(client, cn, sizeof(cn));
		info.cn = cn;
	}
	if (server != NULL && (sig_nid = X509_get_signature_nid(server)) != NID_undef)
		info.sig_alg = OBJ_nid2sn(sig_nid);
	key_algorithm(server, key_alg, sizeof(key_alg));
	info.key_alg = key_alg;
	if (with_cert && client != NULL && (n = i2d_X509(client, &der)) > 0) {
		info.cert_der = der;
		info.cert_der_len = (size_t)n;
	}
	n = proxy_header_v2(&info, buf, len);
	OPENSSL_free(der);
	return n;
}
