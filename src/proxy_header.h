/*
 * proxy_header: the PROXY protocol header (versions 1 and 2) that tells a
 * backend who the client really is, before any of the client's bytes.
 * Version 2 also carries the TLS details: SNI, the client certificate's
 * verification and CN, the protocol version and cipher.  Pure functions.
 */
#ifndef TLSPROXY_PROXY_HEADER_H
#define TLSPROXY_PROXY_HEADER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Version 2 TLV types and SSL sub-types (the PROXY protocol specification). */
#define PP2_TYPE_ALPN		0x01
#define PP2_TYPE_AUTHORITY	0x02
#define PP2_TYPE_CRC32C		0x03
#define PP2_TYPE_UNIQUE_ID	0x05
#define PP2_TYPE_SSL		0x20
#define PP2_SUBTYPE_SSL_VERSION	0x21
#define PP2_SUBTYPE_SSL_CN	0x22
#define PP2_SUBTYPE_SSL_CIPHER	0x23
#define PP2_SUBTYPE_SSL_SIG_ALG	0x24
#define PP2_SUBTYPE_SSL_KEY_ALG	0x25
/* In the range the specification leaves to applications: the client's
 * certificate, DER, when proxy_protocol_client_cert is set. */
#define PP2_TYPE_TLSPROXY_CLIENT_CERT 0xE0

#define PP2_CLIENT_SSL		0x01
#define PP2_CLIENT_CERT_CONN	0x02
#define PP2_CLIENT_CERT_SESS	0x04

#define PROXY_HEADER_V1_MAX 108		/* the specification's bound */

struct proxy_info {
	const struct sockaddr *client;	/* source */
	const struct sockaddr *local;	/* destination: where the client connected */
	/* TLS details (version 2 only); NULL or 0 when absent. */
	const char *sni;
	const unsigned char *alpn;
	size_t alpn_len;
	int cert_conn;			/* a client certificate on this connection */
	int cert_sess;			/* a client certificate in the session */
	long verify_result;		/* X509_V_OK (0) when verified */
	const char *version;		/* "TLSv1.3" */
	const char *cn;			/* client certificate's CN */
	const char *cipher;
	const char *sig_alg;		/* of the server certificate, as HAProxy sends it */
	const char *key_alg;
	const unsigned char *unique_id;
	size_t unique_id_len;		/* <= 128 */
	const unsigned char *cert_der;	/* client certificate, DER */
	size_t cert_der_len;
};

/**
 * proxy_header_v1(info, buf, len): write "PROXY TCP4|TCP6|UNKNOWN ...\r\n"
 * into ${buf}; returns its length, or -1 if ${len} is too small.
 */
int proxy_header_v1(const struct proxy_info *info, unsigned char *buf, size_t len);

/**
 * proxy_header_v2(info, buf, len): write the binary header with its TLVs
 * and a CRC32C; returns its length, or -1 if it does not fit in ${len} or
 * in the 16-bit length field.
 */
int proxy_header_v2(const struct proxy_info *info, unsigned char *buf, size_t len);

/** proxy_crc32c(data, len): CRC-32C (Castagnoli), as PP2_TYPE_CRC32C uses. */
uint32_t proxy_crc32c(const unsigned char *data, size_t len);

#endif
