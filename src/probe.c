/*
 * tlsproxy-probe: does session resumption work, on one node or across two?
 *
 * For TLS 1.2 with a ticket, TLS 1.2 with a session ID and TLS 1.3, make a
 * full handshake on the first endpoint (for TLS 1.3, wait for the
 * NewSessionTicket, which comes after the handshake), then resume on the
 * second endpoint (or the first again), and print one line per case.
 * Session IDs live in one node's cache: across two different endpoints the
 * session-ID case is reported as node-local and left out of the exit status.
 * Exit 0 when every counted case resumed, 1 when one did not, 2 on errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "addr.h"

#define EXIT_NOT_RESUMED 1
#define EXIT_ERROR 2

struct probe_case {
	const char *name;	/* as in --cases */
	const char *label;
	int version;		/* TLS1_2_VERSION or TLS1_3_VERSION */
	int tickets;		/* 0: session IDs only, which stay on one node */
};

static const struct probe_case cases[] = {
	{ "ticket12", "TLSv1.2 ticket    ", TLS1_2_VERSION, 1 },
	{ "id12", "TLSv1.2 session ID", TLS1_2_VERSION, 0 },
	{ "ticket13", "TLSv1.3 ticket    ", TLS1_3_VERSION, 1 },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

struct options {
	const char *ca;
	const char *servername;
	int timeout_ms;
	unsigned selected;	/* bit i: run cases[i] */
	int two_addresses;		/* two different endpoints: session IDs are not counted */
	struct hostport endpoints[2];
	const char *names[2];
};

/* The session the client last received (TLS 1.3 tickets arrive late). */
static SSL_SESSION *received;

static int
on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	SSL_SESSION_free(received);
	received = sess;
	return 1;	/* we keep the reference */
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: tlsproxy-probe [--ca FILE] [--servername NAME] [--timeout SECONDS]"
	    " [--cases LIST] HOST:PORT [HOST2:PORT]\n");
}

static int
wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	return n;
}

/* A connected, non-blocking socket, or -1 with a message on stderr. */
static int
connect_endpoint(const struct hostport *hp, const char *name, int timeout_ms)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	char port[8];
	int fd = -1, err = 0, rc;
	socklen_t len = sizeof(err);

	snprintf(port, sizeof(port), "%u", hp->port);
	if ((rc = getaddrinfo(hp->host, port, &hints, &res)) != 0) {
		fprintf(stderr, "tlsproxy-probe: %s: %s\n", name, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS && wait_fd(fd, POLLOUT, timeout_ms) == 1 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0))
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		fprintf(stderr, "tlsproxy-probe: %s: cannot connect: %s\n", name,
		    strerror(err ? err : errno));
	return fd;
}

/* Drive ${ssl} until ${done} says so or the deadline passes. */
static int
drive(SSL *ssl, int fd, int (*step)(SSL *), int timeout_ms)
{
	struct timespec start, now;
	int n, err, left;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		ERR_clear_error();
		if ((n = step(ssl)) > 0)
			return 1;
		err = SSL_get_error(ssl, n);
		if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
			return -1;
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = timeout_ms - (int)((now.tv_sec - start.tv_sec) * 1000 +
		    (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0 || wait_fd(fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left) <= 0)
			return 0;
	}
}

/* Read until the server's close_notify or EOF: it has finished with us. */
static int
read_to_end(SSL *ssl)
{
	char buf[512];
	int n = SSL_read(ssl, buf, sizeof(buf));

	if (n > 0)
		return -1;	/* data: keep reading */
	if (SSL_get_error(ssl, n) == SSL_ERROR_WANT_READ)
		return n;
	return 1;
}

/* Read post-handshake messages until a session arrives; data is discarded. */
static int
read_for_ticket(SSL *ssl)
{
	char buf[512];
	int n = SSL_read(ssl, buf, sizeof(buf));

	if (received != NULL)
		return 1;
	return n > 0 ? -1 : n;	/* application data first is fine: keep waiting */
}

static SSL_CTX *
client_ctx(const struct probe_case *pc, const struct options *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, pc->version);
	SSL_CTX_set_max_proto_version(ctx, pc->version);
	if (!pc->tickets)
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, on_new_session);
	if (o->ca != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1) {
			fprintf(stderr, "tlsproxy-probe: %s: cannot load CA certificates\n", o->ca);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	return ctx;
}

/*
 * One connection: handshake (offering ${sess} if given); on the first
 * connection wait for a session to keep; close both ways, so the server
 * has finished with the session before the next connection starts.
 * Returns 1 resumed, 0 full, -1 error (in ${why}).
 */
static int
connect_once(SSL_CTX *ctx, const struct options *o, int which, SSL_SESSION *sess,
    char *why, size_t whylen)
{
	const struct hostport *hp = &o->endpoints[which];
	const char *sni = o->servername != NULL ? o->servername : hp->numeric ? NULL : hp->host;
	SSL *ssl = NULL;
	int fd, rc = -1;

	if ((fd = connect_endpoint(hp, o->names[which], o->timeout_ms)) < 0) {
		snprintf(why, whylen, "cannot connect to %s", o->names[which]);
		return -1;
	}
	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1)
		goto done;
	if (sni != NULL)
		SSL_set_tlsext_host_name(ssl, sni);
	if (o->ca != NULL && SSL_set1_host(ssl, o->servername ? o->servername : hp->host) != 1)
		goto done;
	if (sess != NULL)
		SSL_set_session(ssl, sess);
	SSL_SESSION_free(received);
	received = NULL;
	if (drive(ssl, fd, SSL_connect, o->timeout_ms) != 1) {
		char reasons[256];

		ERR_error_string_n(ERR_peek_last_error(), reasons, sizeof(reasons));
		snprintf(why, whylen, "handshake with %s failed: %s", o->names[which],
		    ERR_peek_last_error() ? reasons : "timed out or closed");
		goto done;
	}
	/* TLS 1.3 tickets come after the handshake; TLS 1.2 sessions with it. */
	if (SSL_version(ssl) != TLS1_3_VERSION && received == NULL)
		received = SSL_get1_session(ssl);
	if (sess == NULL && received == NULL && drive(ssl, fd, read_for_ticket, o->timeout_ms) != 1 &&
	    received == NULL) {
		snprintf(why, whylen, "%s sent no session to resume", o->names[which]);
		goto done;
	}
	rc = SSL_session_reused(ssl) ? 1 : 0;
	if (SSL_shutdown(ssl) == 0)
		drive(ssl, fd, read_to_end, o->timeout_ms);
done:
	if (rc < 0 && why[0] == '\0')
		snprintf(why, whylen, "cannot set up TLS");
	SSL_free(ssl);
	close(fd);
	return rc;
}

/* The result column of a case that does not count: say what happened anyway. */
static const char *
node_local_result(int rc)
{
	if (rc == 0)
		return "node-local: resumed, though not expected to across nodes:"
		    " do both addresses reach one node? (not counted)";
	return "node-local: full handshake, not expected to resume across nodes (not counted)";
}

/*
 * Run ${pc} from the first endpoint to the second and print its line.
 * Returns 0 resumed, EXIT_NOT_RESUMED or EXIT_ERROR; a session-ID case
 * across two nodes returns 0 unless it failed.
 */
static int
run_case(const struct probe_case *pc, const struct options *o)
{
	SSL_CTX *ctx = client_ctx(pc, o);
	SSL_SESSION *first = NULL;
	char why[320] = "";
	int rc = EXIT_ERROR, r, counted = pc->tickets || !o->two_addresses;
	const char *result;

	if (ctx == NULL) {
		snprintf(why, sizeof(why), "cannot set up TLS");
		goto report;
	}
	if (connect_once(ctx, o, 0, NULL, why, sizeof(why)) < 0)
		goto report;
	first = received;
	received = NULL;
	if (!pc->tickets && SSL_SESSION_has_ticket(first)) {
		snprintf(why, sizeof(why), "got a ticket although none was asked for");
		goto report;
	}
	if (pc->tickets && !SSL_SESSION_has_ticket(first)) {
		/* A session-ID resumption would prove nothing about tickets. */
		rc = EXIT_NOT_RESUMED;
		snprintf(why, sizeof(why), " (%s issued no ticket)", o->names[0]);
		goto report;
	}
	if ((r = connect_once(ctx, o, 1, first, why, sizeof(why))) < 0)
		goto report;
	rc = r == 1 ? 0 : EXIT_NOT_RESUMED;
report:
	if (rc == EXIT_ERROR)
		result = "failed: ";
	else if (!counted)
		result = node_local_result(rc);
	else
		result = rc == 0 ? "resumed" : "NOT resumed";
	printf("%s  %s -> %s  %s%s\n", pc->label, o->names[0], o->names[1], result,
	    rc == 0 ? "" : why);
	SSL_SESSION_free(first);
	SSL_SESSION_free(received);
	received = NULL;
	SSL_CTX_free(ctx);
	return counted || rc == EXIT_ERROR ? rc : 0;
}

/* "ticket12,id12" as a bit per case of cases[]; -1 with a message if a name is unknown. */
static int
parse_cases(const char *list, unsigned *selected)
{
	const char *p = list, *end;
	size_t len, i;

	*selected = 0;
	for (;;) {
		if ((end = strchr(p, ',')) == NULL)
			end = p + strlen(p);
		len = (size_t)(end - p);
		for (i = 0; i < NCASES; i++)
			if (strlen(cases[i].name) == len && strncmp(cases[i].name, p, len) == 0)
				break;
		if (i == NCASES) {
			if (len == 0)
				fprintf(stderr, "tlsproxy-probe: --cases %s: an empty name", list);
			else
				fprintf(stderr, "tlsproxy-probe: --cases %s: unknown case \"%.*s\"",
				    list, (int)len, p);
			fprintf(stderr, " (one or more of");
			for (i = 0; i < NCASES; i++)
				fprintf(stderr, "%s %s", i > 0 ? "," : "", cases[i].name);
			fprintf(stderr, ", separated by commas)\n");
			return -1;
		}
		*selected |= 1u << i;
		if (*end == '\0')
			return 0;
		p = end + 1;
	}
}

/*
 * Do ${a} and ${b} name the same endpoint?  Literals compare as addresses,
 * names without regard to case; a name never matches a literal (no DNS).
 */
static int
same_endpoint(const struct hostport *a, const struct hostport *b)
{
	if (a->port != b->port || a->numeric != b->numeric)
		return 0;
	if (a->numeric)
		return a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0;
	return strcasecmp(a->host, b->host) == 0;
}

/* Does ${o} leave at least one case that counts?  If not, say why. */
static int
counts_something(const struct options *o)
{
	for (size_t i = 0; i < NCASES; i++)
		if ((o->selected & (1u << i)) && (cases[i].tickets || !o->two_addresses))
			return 1;
	fprintf(stderr, "tlsproxy-probe: --cases id12 across two addresses counts nothing:"
	    " session IDs are node-local, not expected to resume across nodes; add ticket12"
	    " or ticket13, or probe one address\n");
	return 0;
}

static int
parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "ca", required_argument, NULL, 'c' },
		{ "servername", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "cases", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char why[128], *end;
	long secs;
	int opt, n;

	o->timeout_ms = 5000;
	o->selected = (1u << NCASES) - 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			o->ca = optarg;
			break;
		case 's':
			o->servername = optarg;
			break;
		case 't':
			errno = 0;
			secs = strtol(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || secs < 1 || secs > 300) {
				fprintf(stderr, "tlsproxy-probe: --timeout %s: a whole number of"
				    " seconds from 1 to 300\n", optarg);
				return -1;
			}
			o->timeout_ms = (int)secs * 1000;
			break;
		case 'C':
			if (parse_cases(optarg, &o->selected) != 0)
				return -1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	n = argc - optind;
	if (n < 1 || n > 2)
		return -1;
	for (int i = 0; i < n; i++) {
		o->names[i] = argv[optind + i];
		if (addr_parse(argv[optind + i], &o->endpoints[i], why, sizeof(why)) != 0) {
			fprintf(stderr, "tlsproxy-probe: %s: %s\n", argv[optind + i], why);
			return -1;
		}
	}
	if (n == 1) {
		o->names[1] = o->names[0];
		o->endpoints[1] = o->endpoints[0];
	}
	o->two_addresses = !same_endpoint(&o->endpoints[0], &o->endpoints[1]);
	return counts_something(o) ? 0 : -1;
}

int
main(int argc, char **argv)
{
	struct options o = { 0 };
	int worst = 0, rc;

	if (parse_args(argc, argv, &o) != 0) {
		usage(stderr);
		return EXIT_ERROR;
	}
	for (size_t i = 0; i < NCASES; i++) {
		if (!(o.selected & (1u << i)))
			continue;
		rc = run_case(&cases[i], &o);
		if (rc > worst)
			worst = rc;
	}
	return worst;
}
