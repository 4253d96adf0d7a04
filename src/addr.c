/*
 * addr: parse the config's "host:port" strings and format socket addresses
 * for log lines.  Literals are converted with inet_pton here; host names
 * are only checked for shape, because resolving them is the backend
 * module's job (at connect time, not at config time).
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"

#define NAME_MAX_LEN 253	/* RFC 1035: a full domain name in text form */

/* Put ${msg} in ${why} and fail; keeps every rejection a single line. */
static int
fail(char *why, size_t whylen, const char *msg)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", msg);
	return -1;
}

/* Parse a decimal port 1-65535 that runs to the end of ${s}. */
static int
parse_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	const char *p;

	for (p = s; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 65535)
			return -1;
	}
	if (p == s || *p != '\0' || v == 0)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/*
 * A host name: letters, digits, '-', '.', '_'.  A name made only of digits
 * and dots is a mistyped IPv4 address ("10.0.0.256"), not a name: resolvers
 * would read "10.1" as 10.0.0.1, so it is refused rather than guessed at.
 */
static int
check_name(const char *name, char *why, size_t whylen)
{
	const char *p;
	int alpha = 0;

	if (strlen(name) > NAME_MAX_LEN)
		return fail(why, whylen, "host name longer than 253 characters");
	if (name[0] == '.' || strstr(name, "..") != NULL)
		return fail(why, whylen, "empty label in host name");
	for (p = name; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    *p == '-' || *p == '_')
			alpha = 1;
		else if (!((*p >= '0' && *p <= '9') || *p == '.'))
			return fail(why, whylen,
			    "host names may only contain letters, digits, '-', '.' and '_'");
	}
	if (!alpha)
		return fail(why, whylen, "not a valid IPv4 address");
	return 0;
}

/* Fill ${hp}'s socket address from its literal host; -1 if not a literal. */
static int
fill_sockaddr(struct hostport *hp, int family)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&hp->sa;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&hp->sa;

	memset(&hp->sa, 0, sizeof(hp->sa));
	if (family == AF_INET) {
		if (inet_pton(AF_INET, hp->host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(hp->port);
		hp->salen = sizeof(*sin);
	} else {
		if (inet_pton(AF_INET6, hp->host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(hp->port);
		hp->salen = sizeof(*sin6);
	}
	hp->numeric = 1;
	return 0;
}

int
addr_parse(const char *text, struct hostport *hp, char *why, size_t whylen)
{
	const char *hoststart, *hostend, *portstr;
	size_t hostlen;

	memset(hp, 0, sizeof(*hp));
	if (text == NULL || *text == '\0')
		return fail(why, whylen, "empty address");

	/* Split into host and port; an IPv6 literal is the only host with ':'. */
	if (text[0] == '[') {
		hoststart = text + 1;
		if ((hostend = strchr(hoststart, ']')) == NULL)
			return fail(why, whylen, "missing ']' after the IPv6 address");
		if (hostend[1] != ':')
			return fail(why, whylen, "missing :port after ']'");
		portstr = hostend + 2;
	} else {
		hoststart = text;
		if ((hostend = strrchr(text, ':')) == NULL)
			return fail(why, whylen, "missing :port");
		if (memchr(text, ':', (size_t)(hostend - text)) != NULL)
			return fail(why, whylen,
			    "an IPv6 address needs brackets, as in [::1]:443");
		portstr = hostend + 1;
	}

	hostlen = (size_t)(hostend - hoststart);
	if (hostlen == 0 || (hostlen == 1 && hoststart[0] == '*'))
		return fail(why, whylen,
		    "missing host; for any address say 0.0.0.0 or [::]");
	if (hostlen >= sizeof(hp->host))
		return fail(why, whylen, "host name longer than 253 characters");
	memcpy(hp->host, hoststart, hostlen);
	hp->host[hostlen] = '\0';

	if (parse_port(portstr, &hp->port) == -1)
		return fail(why, whylen, "the port must be a number from 1 to 65535");

	if (text[0] == '[') {
		if (fill_sockaddr(hp, AF_INET6) == -1)
			return fail(why, whylen, "not a valid IPv6 address");
		return 0;
	}
	if (fill_sockaddr(hp, AF_INET) == 0)
		return 0;
	return check_name(hp->host, why, whylen);
}

const char *
addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
	char host[INET6_ADDRSTRLEN];

	if (len == 0)
		return buf;
	if (sa != NULL && sa->sa_family == AF_INET &&
	    inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host)) != NULL)
		snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(sin->sin_port));
	else if (sa != NULL && sa->sa_family == AF_INET6 &&
	    inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host)) != NULL)
		snprintf(buf, len, "[%s]:%u", host,
		    (unsigned)ntohs(sin6->sin6_port));
	else
		snprintf(buf, len, "?");
	return buf;
}
