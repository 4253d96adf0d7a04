/*
 * check_proxy_header: the PROXY protocol headers byte for byte: version 1
 * lines, version 2 headers with their TLVs (addresses, ports, ALPN,
 * AUTHORITY, UNIQUE_ID, SSL with its flags, verify field and sub-TLVs, the
 * client certificate, CRC32C), and every way a header can fail to fit.
 *
 * The expected v2 headers and their CRC32C values were computed apart from
 * proxy_header.c, from the PROXY protocol specification.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "../../src/proxy_header.h"

static struct sockaddr_in c4, l4;
static struct sockaddr_in6 c6, l6;

static void
addresses(void)
{
	memset(&c4, 0, sizeof(c4));
	memset(&l4, 0, sizeof(l4));
	memset(&c6, 0, sizeof(c6));
	memset(&l6, 0, sizeof(l6));
	c4.sin_family = l4.sin_family = AF_INET;
	ck_assert_int_eq(inet_pton(AF_INET, "192.0.2.10", &c4.sin_addr), 1);
	ck_assert_int_eq(inet_pton(AF_INET, "198.51.100.1", &l4.sin_addr), 1);
	c4.sin_port = htons(51234);
	l4.sin_port = htons(8883);
	c6.sin6_family = l6.sin6_family = AF_INET6;
	ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::1", &c6.sin6_addr), 1);
	ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::2", &l6.sin6_addr), 1);
	c6.sin6_port = htons(40000);
	l6.sin6_port = htons(8883);
}

/* A TLS 1.3 connection over IPv4 with a verified client certificate. */
static const unsigned char fake_der[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };

static struct proxy_info
info4(void)
{
	struct proxy_info i = { 0 };

	addresses();
	i.client = (const struct sockaddr *)&c4;
	i.local = (const struct sockaddr *)&l4;
	i.sni = "mqtt.example.com";
	i.cert_conn = 1;
	i.cert_sess = 1;
	i.verify_result = 0;
	i.version = "TLSv1.3";
	i.cn = "device1";
	i.cipher = "TLS_AES_128_GCM_SHA256";
	i.sig_alg = "ecdsa-with-SHA256";
	i.key_alg = "EC256";
	i.cert_der = fake_der;
	i.cert_der_len = sizeof(fake_der);
	return i;
}

#define SIG "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"

static const char want4[] =
    SIG
    "\x21"			/* version 2, PROXY */
    "\x11"			/* AF_INET, STREAM */
    "\x00\x7F"			/* 127 bytes follow */
    "\xC0\x00\x02\x0A"		/* 192.0.2.10 */
    "\xC6\x33\x64\x01"		/* 198.51.100.1 */
    "\xC8\x22"			/* 51234 */
    "\x22\xB3"			/* 8883 */
    "\x02\x00\x10" "mqtt.example.com"	/* AUTHORITY */
    "\x20\x00\x4E"		/* SSL, 78 bytes */
    "\x07"			/* SSL | CERT_CONN | CERT_SESS */
    "\x00\x00\x00\x00"		/* verified */
    "\x21\x00\x07" "TLSv1.3"
    "\x22\x00\x07" "device1"
    "\x23\x00\x16" "TLS_AES_128_GCM_SHA256"
    "\x24\x00\x11" "ecdsa-with-SHA256"
    "\x25\x00\x05" "EC256"
    "\xE0\x00\x05" "\x30\x03\x02\x01\x05"	/* client certificate */
    "\x03\x00\x04" "\xAC\x6B\x27\x71";	/* CRC32C */

/* TLS 1.2 over IPv6 with ALPN and a unique ID, no client certificate. */
static struct proxy_info
info6(void)
{
	struct proxy_info i = { 0 };
	static const unsigned char uid[] = { 1, 2, 3, 4 };

	addresses();
	i.client = (const struct sockaddr *)&c6;
	i.local = (const struct sockaddr *)&l6;
	i.alpn = (const unsigned char *)"mqtt";
	i.alpn_len = 4;
	i.unique_id = uid;
	i.unique_id_len = sizeof(uid);
	i.cert_conn = 0;
	i.cert_sess = 0;
	i.verify_result = 0;		/* X509_V_OK, but nothing was verified */
	i.version = "TLSv1.2";
	i.cn = "device1";		/* must not be sent without a certificate */
	i.cipher = "ECDHE-RSA-AES128-GCM-SHA256";
	i.sig_alg = "sha256WithRSAEncryption";
	i.key_alg = "RSA2048";
	return i;
}

static const char want6[] =
    SIG
    "\x21"
    "\x21"			/* AF_INET6, STREAM */
    "\x00\x8D"			/* 141 bytes follow */
    "\x20\x01\x0D\xB8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
    "\x20\x01\x0D\xB8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"
    "\x9C\x40"			/* 40000 */
    "\x22\xB3"			/* 8883 */
    "\x01\x00\x04" "mqtt"	/* ALPN */
    "\x05\x00\x04" "\x01\x02\x03\x04"	/* UNIQUE_ID */
    "\x20\x00\x51"		/* SSL, 81 bytes */
    "\x01"			/* SSL only */
    "\x00\x00\x00\x01"		/* not verified */
    "\x21\x00\x07" "TLSv1.2"
    "\x23\x00\x1B" "ECDHE-RSA-AES128-GCM-SHA256"
    "\x24\x00\x17" "sha256WithRSAEncryption"
    "\x25\x00\x07" "RSA2048"
    "\x03\x00\x04" "\x0B\xA1\x24\x9B";

/* Compare ${got} (${n} bytes) with ${want} and say where they differ. */
static void
assert_bytes(const unsigned char *got, int n, const char *want, size_t wantlen)
{
	ck_assert_msg(n == (int)wantlen, "length %d, want %zu", n, wantlen);
	for (size_t k = 0; k < wantlen; k++)
		ck_assert_msg(got[k] == (unsigned char)want[k],
		    "byte %zu: 0x%02x, want 0x%02x", k, got[k], (unsigned char)want[k]);
}

/* ------------------------------------------------------------ version 1 */

START_TEST(test_v1_tcp4)
{
	struct proxy_info i = info4();
	unsigned char buf[PROXY_HEADER_V1_MAX];
	static const char want[] = "PROXY TCP4 192.0.2.10 198.51.100.1 51234 8883\r\n";
	int n = proxy_header_v1(&i, buf, sizeof(buf));

	assert_bytes(buf, n, want, strlen(want));
}
END_TEST

START_TEST(test_v1_tcp6)
{
	struct proxy_info i = info6();
	unsigned char buf[PROXY_HEADER_V1_MAX];
	static const char want[] = "PROXY TCP6 2001:db8::1 2001:db8::2 40000 8883\r\n";
	int n = proxy_header_v1(&i, buf, sizeof(buf));

	assert_bytes(buf, n, want, strlen(want));
}
END_TEST

START_TEST(test_v1_longest)
{
	/* The longest TCP6 line still fits the specification's 107 bytes. */
	struct proxy_info i = info6();
	unsigned char buf[PROXY_HEADER_V1_MAX];
	static const char want[] = "PROXY TCP6 "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	int n;

	memset(&c6.sin6_addr, 0xFF, 16);
	memset(&l6.sin6_addr, 0xFF, 16);
	c6.sin6_port = l6.sin6_port = htons(65535);
	n = proxy_header_v1(&i, buf, sizeof(buf));
	assert_bytes(buf, n, want, strlen(want));
	ck_assert_int_le(n, 107);
}
END_TEST

START_TEST(test_v1_unknown)
{
	struct proxy_info i = info4();
	unsigned char buf[PROXY_HEADER_V1_MAX];
	static const char want[] = "PROXY UNKNOWN\r\n";
	int n;

	/* Mixed families: no line can say both. */
	i.local = (const struct sockaddr *)&l6;
	n = proxy_header_v1(&i, buf, sizeof(buf));
	assert_bytes(buf, n, want, strlen(want));
	/* No addresses at all. */
	i.client = i.local = NULL;
	n = proxy_header_v1(&i, buf, sizeof(buf));
	assert_bytes(buf, n, want, strlen(want));
}
END_TEST

START_TEST(test_v1_too_small)
{
	struct proxy_info i = info4();
	unsigned char buf[PROXY_HEADER_V1_MAX];
	int full = proxy_header_v1(&i, buf, sizeof(buf));

	ck_assert_int_gt(full, 0);
	for (size_t len = 0; len < (size_t)full; len++)
		ck_assert_msg(proxy_header_v1(&i, buf, len) == -1, "len %zu accepted", len);
	i.client = NULL;
	ck_assert_int_eq(proxy_header_v1(&i, buf, 5), -1);
}
END_TEST

/* ------------------------------------------------------------ version 2 */

START_TEST(test_v2_tcp4_bytes)
{
	struct proxy_info i = info4();
	unsigned char buf[1024];
	int n = proxy_header_v2(&i, buf, sizeof(buf));

	assert_bytes(buf, n, want4, sizeof(want4) - 1);
}
END_TEST

START_TEST(test_v2_tcp6_bytes)
{
	struct proxy_info i = info6();
	unsigned char buf[1024];
	int n = proxy_header_v2(&i, buf, sizeof(buf));

	assert_bytes(buf, n, want6, sizeof(want6) - 1);
}
END_TEST

START_TEST(test_v2_unspec)
{
	/* Mixed families: AF_UNSPEC, no address block, the TLVs still there. */
	struct proxy_info i = info4();
	unsigned char buf[1024];
	size_t len;
	int n, v;

	i.local = (const struct sockaddr *)&l6;
	n = proxy_header_v2(&i, buf, sizeof(buf));
	ck_assert_int_gt(n, 16);
	ck_assert_int_eq(memcmp(buf, SIG, 12), 0);
	ck_assert_int_eq(buf[12], 0x21);
	ck_assert_int_eq(buf[13], 0x00);
	ck_assert_int_eq(16 + (buf[14] << 8 | buf[15]), n);
	v = tl_pp2_tlv(buf, n, PP2_TYPE_AUTHORITY, &len);
	ck_assert_int_eq(v, 16 + 3);
	ck_assert_int_eq(len, 16);
}
END_TEST

START_TEST(test_crc32c_known_answer)
{
	ck_assert_uint_eq(proxy_crc32c((const unsigned char *)"123456789", 9), 0xE3069283u);
	ck_assert_uint_eq(proxy_crc32c((const unsigned char *)"", 0), 0u);
	/* RFC 3720 B.4: 32 bytes of zeros, 32 bytes of 0xFF. */
	{
		unsigned char z[32];

		memset(z, 0, sizeof(z));
		ck_assert_uint_eq(proxy_crc32c(z, sizeof(z)), 0x8A9136AAu);
		memset(z, 0xFF, sizeof(z));
		ck_assert_uint_eq(proxy_crc32c(z, sizeof(z)), 0x62A8AB43u);
	}
}
END_TEST

START_TEST(test_v2_crc_verifies)
{
	struct proxy_info i4 = info4(), i6 = info6();
	unsigned char buf[1024];
	int n;

	n = proxy_header_v2(&i4, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	tl_pp2_assert_crc(buf, n);
	n = proxy_header_v2(&i6, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	tl_pp2_assert_crc(buf, n);
}
END_TEST

START_TEST(test_v2_too_small)
{
	struct proxy_info i = info4();
	unsigned char full[1024];
	int n = proxy_header_v2(&i, full, sizeof(full));

	ck_assert_int_eq(n, (int)sizeof(want4) - 1);
	/* Every shorter buffer: -1, and nothing written past its end. */
	for (int len = 0; len < n; len++) {
		unsigned char *buf = malloc((size_t)n + 16);

		ck_assert_ptr_nonnull(buf);
		memset(buf, 0xA5, (size_t)n + 16);
		ck_assert_msg(proxy_header_v2(&i, buf, (size_t)len) == -1, "len %d accepted", len);
		for (int k = len; k < n + 16; k++)
			ck_assert_msg(buf[k] == 0xA5, "len %d: byte %d written", len, k);
		free(buf);
	}
	/* Exactly enough is enough. */
	ck_assert_int_eq(proxy_header_v2(&i, full, (size_t)n), n);
	assert_bytes(full, n, want4, sizeof(want4) - 1);
}
END_TEST

/* The SSL TLV's client byte and verify field for one connection. */
static void
ssl_fields(struct proxy_info *i, unsigned *client, uint32_t *verify, int *has_cn)
{
	unsigned char buf[1024];
	size_t len, sl;
	int n = proxy_header_v2(i, buf, sizeof(buf));
	int v;

	ck_assert_int_gt(n, 0);
	v = tl_pp2_tlv(buf, n, PP2_TYPE_SSL, &len);
	ck_assert_int_ge(v, 0);
	ck_assert_int_ge(len, 5);
	*client = buf[v];
	*verify = tl_be32(buf + v + 1);
	*has_cn = tl_pp2_sub(buf + v, len, PP2_SUBTYPE_SSL_CN, &sl) >= 0;
	if (*has_cn)
		ck_assert_int_eq(memcmp(buf + v + tl_pp2_sub(buf + v, len, PP2_SUBTYPE_SSL_CN, &sl),
		    "device1", 7), 0);
}

START_TEST(test_v2_client_flags)
{
	struct proxy_info i = info4();
	unsigned client;
	uint32_t verify;
	int cn;

	/* Full handshake with a verified certificate. */
	ssl_fields(&i, &client, &verify, &cn);
	ck_assert_uint_eq(client, PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS);
	ck_assert_uint_eq(verify, 0);
	ck_assert(cn);

	/* Resumed: the certificate is in the session, not on this connection. */
	i.cert_conn = 0;
	ssl_fields(&i, &client, &verify, &cn);
	ck_assert_uint_eq(client, PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS);
	ck_assert_uint_eq(verify, 0);
	ck_assert(cn);

	/* A certificate that did not verify (X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY). */
	i.cert_conn = 1;
	i.verify_result = 20;
	ssl_fields(&i, &client, &verify, &cn);
	ck_assert_uint_eq(client, PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS);
	ck_assert_uint_ne(verify, 0);

	/* No certificate: verify is non-zero even though OpenSSL says X509_V_OK,
	 * and no CN even if one is given. */
	i.cert_conn = i.cert_sess = 0;
	i.verify_result = 0;
	ssl_fields(&i, &client, &verify, &cn);
	ck_assert_uint_eq(client, PP2_CLIENT_SSL);
	ck_assert_uint_ne(verify, 0);
	ck_assert(!cn);
}
END_TEST

START_TEST(test_v2_no_cn_without_cert)
{
	struct proxy_info i = info6();
	unsigned char buf[1024];
	size_t len, sl;
	int n = proxy_header_v2(&i, buf, sizeof(buf));
	int v;

	ck_assert_int_gt(n, 0);
	v = tl_pp2_tlv(buf, n, PP2_TYPE_SSL, &len);
	ck_assert_int_ge(v, 0);
	ck_assert_int_lt(tl_pp2_sub(buf + v, len, PP2_SUBTYPE_SSL_CN, &sl), 0);
	ck_assert_int_ge(tl_pp2_sub(buf + v, len, PP2_SUBTYPE_SSL_VERSION, &sl), 0);
	ck_assert_int_lt(tl_pp2_tlv(buf, n, PP2_TYPE_TLSPROXY_CLIENT_CERT, &len), 0);
	/* And no AUTHORITY without SNI, none for an empty one either. */
	ck_assert_int_lt(tl_pp2_tlv(buf, n, PP2_TYPE_AUTHORITY, &len), 0);
	i.sni = "";
	n = proxy_header_v2(&i, buf, sizeof(buf));
	ck_assert_int_lt(tl_pp2_tlv(buf, n, PP2_TYPE_AUTHORITY, &len), 0);
}
END_TEST

START_TEST(test_v2_optional_tlvs_absent)
{
	/* No ALPN negotiated, no SNI, unique ID longer than 128 bytes: none sent. */
	struct proxy_info i = info6();
	unsigned char uid[129], buf[1024];
	size_t len;
	int n;

	memset(uid, 7, sizeof(uid));
	i.alpn = NULL;
	i.alpn_len = 0;
	i.unique_id = uid;
	i.unique_id_len = sizeof(uid);
	n = proxy_header_v2(&i, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert_int_lt(tl_pp2_tlv(buf, n, PP2_TYPE_ALPN, &len), 0);
	ck_assert_int_lt(tl_pp2_tlv(buf, n, PP2_TYPE_UNIQUE_ID, &len), 0);
	ck_assert_int_lt(tl_pp2_tlv(buf, n, PP2_TYPE_AUTHORITY, &len), 0);
	i.unique_id_len = 128;
	n = proxy_header_v2(&i, buf, sizeof(buf));
	ck_assert_int_ge(tl_pp2_tlv(buf, n, PP2_TYPE_UNIQUE_ID, &len), 0);
	ck_assert_int_eq(len, 128);
}
END_TEST

START_TEST(test_v2_cert_der)
{
	/* A 4000-byte certificate is carried whole. */
	struct proxy_info i = info4();
	size_t dlen = 4000, len;
	unsigned char *der = malloc(dlen), *buf = malloc(8192);
	int n, v;

	ck_assert_ptr_nonnull(der);
	ck_assert_ptr_nonnull(buf);
	for (size_t k = 0; k < dlen; k++)
		der[k] = (unsigned char)(k * 7);
	i.cert_der = der;
	i.cert_der_len = dlen;
	n = proxy_header_v2(&i, buf, 8192);
	ck_assert_int_gt(n, (int)dlen);
	v = tl_pp2_tlv(buf, n, PP2_TYPE_TLSPROXY_CLIENT_CERT, &len);
	ck_assert_int_ge(v, 0);
	ck_assert_int_eq(len, dlen);
	ck_assert_int_eq(memcmp(buf + v, der, dlen), 0);
	tl_pp2_assert_crc(buf, n);
	free(der);
	free(buf);
}
END_TEST

START_TEST(test_v2_cert_too_large)
{
	struct proxy_info i = info4();
	size_t big = 70000, bufsz = 200000;
	unsigned char *der = calloc(1, big), *buf = malloc(bufsz);
	unsigned char small[1024];

	ck_assert_ptr_nonnull(der);
	ck_assert_ptr_nonnull(buf);
	i.cert_der = der;

	/* Larger than a 16-bit length: -1 however large the buffer. */
	i.cert_der_len = big;
	ck_assert_int_eq(proxy_header_v2(&i, buf, bufsz), -1);

	/* Fits its own TLV but not the header's 16-bit length. */
	i.cert_der_len = 65500;
	ck_assert_int_eq(proxy_header_v2(&i, buf, bufsz), -1);

	/* Fits the format but not the buffer (the daemon's is 64 KiB). */
	i.cert_der_len = 2000;
	ck_assert_int_eq(proxy_header_v2(&i, small, sizeof(small)), -1);

	/* The largest header the format allows: 16 + 65535 bytes. */
	{
		int n;

		/* want4 without its 8-byte certificate TLV, then 3 + length. */
		i.cert_der_len = 65535 - (127 - 8) - 3;
		n = proxy_header_v2(&i, buf, bufsz);
		ck_assert_int_eq(n, 16 + 65535);
		tl_pp2_assert_crc(buf, n);
		i.cert_der_len++;
		ck_assert_int_eq(proxy_header_v2(&i, buf, bufsz), -1);
	}
	free(der);
	free(buf);
}
END_TEST

static Suite *
proxy_header_suite(void)
{
	Suite *s = suite_create("proxy_header");
	TCase *v1 = tcase_create("v1");
	TCase *v2 = tcase_create("v2");

	tcase_add_test(v1, test_v1_tcp4);
	tcase_add_test(v1, test_v1_tcp6);
	tcase_add_test(v1, test_v1_longest);
	tcase_add_test(v1, test_v1_unknown);
	tcase_add_test(v1, test_v1_too_small);
	suite_add_tcase(s, v1);
	tcase_add_test(v2, test_v2_tcp4_bytes);
	tcase_add_test(v2, test_v2_tcp6_bytes);
	tcase_add_test(v2, test_v2_unspec);
	tcase_add_test(v2, test_crc32c_known_answer);
	tcase_add_test(v2, test_v2_crc_verifies);
	tcase_add_test(v2, test_v2_too_small);
	tcase_add_test(v2, test_v2_client_flags);
	tcase_add_test(v2, test_v2_no_cn_without_cert);
	tcase_add_test(v2, test_v2_optional_tlvs_absent);
	tcase_add_test(v2, test_v2_cert_der);
	tcase_add_test(v2, test_v2_cert_too_large);
	suite_add_tcase(s, v2);
	return s;
}

int
main(void)
{
	return tl_run(proxy_header_suite());
}
