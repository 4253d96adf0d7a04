/*
 * addr: "host:port" strings as they appear in the config, and printable
 * socket addresses for log lines.  Pure functions, no I/O, no DNS.
 */
#ifndef TLSPROXY_ADDR_H
#define TLSPROXY_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADDR_HOST_MAX 256
#define ADDR_TEXT_MAX 64	/* "[v6]:port" fits, with room to spare */

struct hostport {
	char host[ADDR_HOST_MAX];	/* without brackets */
	uint16_t port;
	int numeric;			/* host is an IPv4/IPv6 literal */
	struct sockaddr_storage sa;	/* valid when numeric */
	socklen_t salen;
};

/**
 * addr_parse(text, hp, why, whylen): parse "1.2.3.4:80", "[::1]:80" or
 * "name:80" (port 1-65535).  On failure return -1 and put a short reason
 * in ${why}.  "*:port" and ":port" are not accepted: say 0.0.0.0 or [::].
 */
int addr_parse(const char *text, struct hostport *hp, char *why, size_t whylen);

/** addr_format(sa, buf, len): "1.2.3.4:80" or "[::1]:80"; returns ${buf}. */
const char *addr_format(const struct sockaddr *sa, char *buf, size_t len);

#endif
