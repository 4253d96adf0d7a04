/*
 * proxy_header: building PROXY protocol headers (haproxy.org's
 * proxy-protocol.txt, versions 1 and 2).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "proxy_header.h"

static const unsigned char v2_signature[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

#define V2_VERSION_PROXY 0x21	/* version 2, command PROXY */
#define V2_TCP4 0x11
#define V2_TCP6 0x21
#define V2_UNSPEC 0x00

uint32_t
proxy_crc32c(const unsigned char *data, size_t len)
{
	uint32_t crc = 0xFFFFFFFFu;

	for (size_t i = 0; i < len; i++) {
		crc ^= data[i];
		for (int b = 0; b < 8; b++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

static int
same_family(const struct proxy_info *info, int family)
{
	return info->client != NULL && info->local != NULL &&
	    info->client->sa_family == family && info->local->sa_family == family;
}

int
proxy_header_v1(const struct proxy_info *info, unsigned char *buf, size_t len)
{
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
	const char *proto;
	unsigned sport, dport;
	int n;

	if (same_family(info, AF_INET)) {
		const struct sockaddr_in *c = (const void *)info->client, *l = (const void *)info->local;

		inet_ntop(AF_INET, &c->sin_addr, src, sizeof(src));
		inet_ntop(AF_INET, &l->sin_addr, dst, sizeof(dst));
		sport = ntohs(c->sin_port);
		dport = ntohs(l->sin_port);
		proto = "TCP4";
	} else if (same_family(info, AF_INET6)) {
		const struct sockaddr_in6 *c = (const void *)info->client, *l = (const void *)info->local;

		inet_ntop(AF_INET6, &c->sin6_addr, src, sizeof(src));
		inet_ntop(AF_INET6, &l->sin6_addr, dst, sizeof(dst));
		sport = ntohs(c->sin6_port);
		dport = ntohs(l->sin6_port);
		proto = "TCP6";
	} else {
		n = snprintf((char *)buf, len, "PROXY UNKNOWN\r\n");
		return n > 0 && (size_t)n < len ? n : -1;
	}
	n = snprintf((char *)buf, len, "PROXY %s %s %s %u %u\r\n", proto, src, dst, sport, dport);
	return n > 0 && (size_t)n < len ? n : -1;
}

/* A cursor over the output buffer; overflow is remembered, not written. */
struct out {
	unsigned char *buf;
	size_t len;
	size_t pos;
	int overflow;
};

static void
put(struct out *o, const void *data, size_t len)
{
	if (o->overflow || len > o->len - o->pos) {
		o->overflow = 1;
		return;
	}
	memcpy(o->buf + o->pos, data, len);
	o->pos += len;
}

static void
put_u8(struct out *o, unsigned v)
{
	unsigned char b = (unsigned char)v;

	put(o, &b, 1);
}

static void
put_u16(struct out *o, size_t v)
{
	unsigned char b[2] = { (unsigned char)(v >> 8), (unsigned char)v };

	put(o, b, 2);
}

static void
put_tlv(struct out *o, unsigned type, const void *value, size_t len)
{
	put_u8(o, type);
	put_u16(o, len);
	put(o, value, len);
}

static void
put_tlv_string(struct out *o, unsigned type, const char *value)
{
	if (value != NULL && value[0] != '\0')
		put_tlv(o, type, value, strlen(value));
}

static void
put_addresses(struct out *o, const struct proxy_info *info)
{
	if (same_family(info, AF_INET)) {
		const struct sockaddr_in *c = (const void *)info->client, *l = (const void *)info->local;

		put(o, &c->sin_addr, 4);
		put(o, &l->sin_addr, 4);
		put(o, &c->sin_port, 2);
		put(o, &l->sin_port, 2);
	} else if (same_family(info, AF_INET6)) {
		const struct sockaddr_in6 *c = (const void *)info->client, *l = (const void *)info->local;

		put(o, &c->sin6_addr, 16);
		put(o, &l->sin6_addr, 16);
		put(o, &c->sin6_port, 2);
		put(o, &l->sin6_port, 2);
	}
}

/* PP2_TYPE_SSL: client flags, verify result, then the sub-TLVs. */
static void
put_ssl_tlv(struct out *o, const struct proxy_info *info)
{
	size_t start, value_start;
	unsigned client = PP2_CLIENT_SSL;
	uint32_t verify;

	if (info->cert_conn)
		client |= PP2_CLIENT_CERT_CONN;
	if (info->cert_sess)
		client |= PP2_CLIENT_CERT_SESS;
	/* Zero only when a certificate was presented and verified. */
	verify = info->cert_sess && info->verify_result == 0 ? 0 : 1;

	start = o->pos;
	put_u8(o, PP2_TYPE_SSL);
	put_u16(o, 0);			/* length, set below */
	value_start = o->pos;
	put_u8(o, client);
	put_u8(o, verify >> 24);
	put_u8(o, verify >> 16);
	put_u8(o, verify >> 8);
	put_u8(o, verify);
	put_tlv_string(o, PP2_SUBTYPE_SSL_VERSION, info->version);
	if (info->cert_sess)
		put_tlv_string(o, PP2_SUBTYPE_SSL_CN, info->cn);
	put_tlv_string(o, PP2_SUBTYPE_SSL_CIPHER, info->cipher);
	put_tlv_string(o, PP2_SUBTYPE_SSL_SIG_ALG, info->sig_alg);
	put_tlv_string(o, PP2_SUBTYPE_SSL_KEY_ALG, info->key_alg);
	if (!o->overflow) {
		size_t vlen = o->pos - value_start;

		o->buf[start + 1] = (unsigned char)(vlen >> 8);
		o->buf[start + 2] = (unsigned char)vlen;
	}
}

int
proxy_header_v2(const struct proxy_info *info, unsigned char *buf, size_t len)
{
	struct out o = { buf, len, 0, 0 };
	size_t crc_at, total;
	uint32_t crc;
	unsigned family = same_family(info, AF_INET) ? V2_TCP4 :
	    same_family(info, AF_INET6) ? V2_TCP6 : V2_UNSPEC;

	put(&o, v2_signature, sizeof(v2_signature));
	put_u8(&o, V2_VERSION_PROXY);
	put_u8(&o, family);
	put_u16(&o, 0);			/* length of what follows, set below */
	put_addresses(&o, info);
	if (info->alpn != NULL && info->alpn_len > 0)
		put_tlv(&o, PP2_TYPE_ALPN, info->alpn, info->alpn_len);
	put_tlv_string(&o, PP2_TYPE_AUTHORITY, info->sni);
	if (info->unique_id != NULL && info->unique_id_len > 0 && info->unique_id_len <= 128)
		put_tlv(&o, PP2_TYPE_UNIQUE_ID, info->unique_id, info->unique_id_len);
	put_ssl_tlv(&o, info);
	if (info->cert_der != NULL && info->cert_der_len > 0)
		put_tlv(&o, PP2_TYPE_TLSPROXY_CLIENT_CERT, info->cert_der, info->cert_der_len);
	crc_at = o.pos + 3;
	put_tlv(&o, PP2_TYPE_CRC32C, "\0\0\0\0", 4);
	if (o.overflow || o.pos - 16 > 0xFFFF)
		return -1;
	total = o.pos;
	buf[14] = (unsigned char)((total - 16) >> 8);
	buf[15] = (unsigned char)(total - 16);
	/* The checksum covers the whole header with its own field zeroed. */
	crc = proxy_crc32c(buf, total);
	buf[crc_at] = (unsigned char)(crc >> 24);
	buf[crc_at + 1] = (unsigned char)(crc >> 16);
	buf[crc_at + 2] = (unsigned char)(crc >> 8);
	buf[crc_at + 3] = (unsigned char)crc;
	return (int)total;
}
