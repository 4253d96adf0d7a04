/*
 * check_addr: addr_parse() accepts IPv4, bracketed IPv6 and host names
 * with a port, rejects the near misses with a reason, and addr_format()
 * prints socket addresses back.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "testlib.h"
#include "../../src/addr.h"

/* Parse ${text}, which must succeed. */
static struct hostport
parses(const char *text)
{
	struct hostport hp;
	char why[128] = "";

	ck_assert_msg(addr_parse(text, &hp, why, sizeof(why)) == 0,
	    "\"%s\" rejected: %s", text, why);
	return hp;
}

/* Parse ${text}, which must fail with a reason containing ${reason}. */
static void
rejects(const char *text, const char *reason)
{
	struct hostport hp;
	char why[128] = "";

	ck_assert_msg(addr_parse(text, &hp, why, sizeof(why)) == -1,
	    "\"%s\" accepted", text);
	ck_assert_msg(strstr(why, reason) != NULL,
	    "\"%s\": reason \"%s\" lacks \"%s\"", text, why, reason);
}

START_TEST(test_ipv4)
{
	struct hostport hp = parses("192.0.2.7:8883");
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&hp.sa;
	char buf[ADDR_TEXT_MAX];

	ck_assert_str_eq(hp.host, "192.0.2.7");
	ck_assert_int_eq(hp.port, 8883);
	ck_assert_int_eq(hp.numeric, 1);
	ck_assert_int_eq(hp.salen, sizeof(struct sockaddr_in));
	ck_assert_int_eq(sin->sin_family, AF_INET);
	ck_assert_int_eq(ntohs(sin->sin_port), 8883);
	ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), 0xc0000207);
	ck_assert_str_eq(addr_format((struct sockaddr *)&hp.sa, buf,
	    sizeof(buf)), "192.0.2.7:8883");
}
END_TEST

START_TEST(test_ipv4_any)
{
	struct hostport hp = parses("0.0.0.0:1");

	ck_assert_int_eq(hp.numeric, 1);
	ck_assert_int_eq(hp.port, 1);
	hp = parses("255.255.255.255:65535");
	ck_assert_int_eq(hp.port, 65535);
}
END_TEST

START_TEST(test_ipv6)
{
	struct hostport hp = parses("[::1]:443");
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&hp.sa;
	char buf[ADDR_TEXT_MAX];

	ck_assert_str_eq(hp.host, "::1");
	ck_assert_int_eq(hp.port, 443);
	ck_assert_int_eq(hp.numeric, 1);
	ck_assert_int_eq(hp.salen, sizeof(struct sockaddr_in6));
	ck_assert_int_eq(sin6->sin6_family, AF_INET6);
	ck_assert_int_eq(ntohs(sin6->sin6_port), 443);
	ck_assert(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	ck_assert_str_eq(addr_format((struct sockaddr *)&hp.sa, buf,
	    sizeof(buf)), "[::1]:443");

	hp = parses("[::]:8883");
	ck_assert_str_eq(addr_format((struct sockaddr *)&hp.sa, buf,
	    sizeof(buf)), "[::]:8883");
	/* addr_format prints the canonical form. */
	hp = parses("[2001:DB8:0:0::1]:80");
	ck_assert_str_eq(addr_format((struct sockaddr *)&hp.sa, buf,
	    sizeof(buf)), "[2001:db8::1]:80");
	hp = parses("[::ffff:192.0.2.1]:80");
	ck_assert_int_eq(hp.numeric, 1);
}
END_TEST

START_TEST(test_names)
{
	struct hostport hp = parses("broker.example:1883");
	char name[300];

	ck_assert_str_eq(hp.host, "broker.example");
	ck_assert_int_eq(hp.port, 1883);
	ck_assert_int_eq(hp.numeric, 0);
	ck_assert_int_eq(hp.salen, 0);

	hp = parses("localhost:80");
	ck_assert_int_eq(hp.numeric, 0);
	hp = parses("my_host-1.example.:80");
	ck_assert_str_eq(hp.host, "my_host-1.example.");
	hp = parses("1e100.net:443");
	ck_assert_int_eq(hp.numeric, 0);

	/* 253 characters is the longest name. */
	memset(name, 'a', 253);
	strcpy(name + 253, ":80");
	hp = parses(name);
	ck_assert_uint_eq(strlen(hp.host), 253);
}
END_TEST

START_TEST(test_missing_port)
{
	rejects("192.0.2.1", "missing :port");
	rejects("broker.example", "missing :port");
	rejects("[::1]", "missing :port");
	rejects("192.0.2.1:", "port");
	rejects("[::1]:", "port");
}
END_TEST

START_TEST(test_bad_port)
{
	rejects("192.0.2.1:0", "1 to 65535");
	rejects("192.0.2.1:65536", "1 to 65535");
	rejects("192.0.2.1:99999999999999999999", "1 to 65535");
	rejects("192.0.2.1:-1", "1 to 65535");
	rejects("192.0.2.1:+80", "1 to 65535");
	rejects("192.0.2.1:http", "1 to 65535");
	rejects("192.0.2.1:80 ", "1 to 65535");
	rejects("192.0.2.1:80x", "1 to 65535");
	rejects("192.0.2.1: 80", "1 to 65535");
	rejects("[::1]:80]", "1 to 65535");
}
END_TEST

START_TEST(test_wildcards)
{
	rejects("*:80", "0.0.0.0 or [::]");
	rejects(":80", "0.0.0.0 or [::]");
	rejects("[]:80", "0.0.0.0 or [::]");
	rejects("", "empty");
	rejects(NULL, "empty");
}
END_TEST

START_TEST(test_bare_ipv6)
{
	rejects("::1:80", "brackets");
	rejects("2001:db8::1:443", "brackets");
	rejects("::1", "brackets");
}
END_TEST

START_TEST(test_bad_brackets)
{
	rejects("[::1:80", "']'");
	rejects("[::1]80", "missing :port");
	rejects("[::1]x:80", "missing :port");
	rejects("[192.0.2.1]:80", "not a valid IPv6");
	rejects("[broker.example]:80", "not a valid IPv6");
	rejects("[fe80::1%eth0]:80", "not a valid IPv6");
}
END_TEST

START_TEST(test_bad_names)
{
	char name[300];

	rejects("bro ker:80", "may only contain");
	rejects(" broker:80", "may only contain");
	rejects("broker/x:80", "may only contain");
	rejects("bröker:80", "may only contain");
	rejects("a..b:80", "empty label");
	rejects(".a:80", "empty label");
	/* Digits and dots only: a broken IPv4 address, not a name. */
	rejects("192.0.2.256:80", "not a valid IPv4");
	rejects("10.1:80", "not a valid IPv4");
	rejects("1.2.3.4.5:80", "not a valid IPv4");

	memset(name, 'a', 254);
	strcpy(name + 254, ":80");
	rejects(name, "longer than 253");
	memset(name, 'a', 290);
	strcpy(name + 290, ":80");
	rejects(name, "longer than 253");
}
END_TEST

START_TEST(test_why_optional)
{
	struct hostport hp;

	/* A NULL reason buffer is allowed. */
	ck_assert_int_eq(addr_parse("*:80", &hp, NULL, 0), -1);
	ck_assert_int_eq(addr_parse("127.0.0.1:80", &hp, NULL, 0), 0);
}
END_TEST

START_TEST(test_format_other)
{
	struct sockaddr_storage ss;
	char buf[ADDR_TEXT_MAX], tiny[4];
	struct hostport hp = parses("[2001:db8::1]:65535");

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	ck_assert_str_eq(addr_format((struct sockaddr *)&ss, buf, sizeof(buf)),
	    "?");
	ck_assert_str_eq(addr_format(NULL, buf, sizeof(buf)), "?");
	/* A short buffer is cut, never overrun. */
	ck_assert_str_eq(addr_format((struct sockaddr *)&hp.sa, tiny,
	    sizeof(tiny)), "[20");
}
END_TEST

static Suite *
addr_suite(void)
{
	Suite *s = suite_create("addr");
	TCase *ok = tcase_create("accept");
	TCase *bad = tcase_create("reject");

	tcase_add_test(ok, test_ipv4);
	tcase_add_test(ok, test_ipv4_any);
	tcase_add_test(ok, test_ipv6);
	tcase_add_test(ok, test_names);
	tcase_add_test(ok, test_format_other);
	tcase_add_test(bad, test_missing_port);
	tcase_add_test(bad, test_bad_port);
	tcase_add_test(bad, test_wildcards);
	tcase_add_test(bad, test_bare_ipv6);
	tcase_add_test(bad, test_bad_brackets);
	tcase_add_test(bad, test_bad_names);
	tcase_add_test(bad, test_why_optional);
	suite_add_tcase(s, ok);
	suite_add_tcase(s, bad);
	return s;
}

int
main(void)
{
	return tl_run(addr_suite());
}
