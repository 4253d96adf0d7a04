/*
 * main: the command line.  Reads and checks the configuration, then either
 * reports on it (-t) or hands it to the server and runs in the foreground.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/thread.h>
#include <openssl/ssl.h>

#include "config.h"
#include "log.h"
#include "privileges.h"
#include "server.h"
#include "ticket_keys.h"

#define EXIT_USAGE 64		/* EX_USAGE */
#define EXIT_CONFIG 78		/* EX_CONFIG */
#define DEFAULT_CONFIG SYSCONFDIR "/tlsproxy/tlsproxy.conf"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: tlsproxy [-c FILE] [-t] [-d] [-r] [-V] [-h]\n"
	    "       tlsproxy -K [-c FILE]\n"
	    "       tlsproxy --list-ocsp [-c FILE]\n"
	    "  -c FILE  configuration file (default " DEFAULT_CONFIG ")\n"
	    "  -t       check the configuration and exit (0: valid, 78: errors)\n"
	    "  -K       print the ticket key schedule (fingerprints, key names; no secret)\n"
	    "  -d       log at debug level\n"
	    "  -r       keep running as root when the config sets no user\n"
	    "  -V       print the version and exit\n"
	    "  -h       print this help and exit\n"
	    "  --list-ocsp  print CERT<TAB>OCSP_RESPONSE for each certificate with an\n"
	    "           ocsp_response (what tlsproxy-ocsp-refresh reads)\n");
}

static void
print_errors(const struct config_errors *errs)
{
	for (size_t i = 0; i < errs->count; i++)
		fprintf(stderr, "%s\n", errs->lines[i]);
}

/* --list-ocsp: the files tlsproxy-ocsp-refresh keeps fresh. */
static void
print_ocsp_files(const struct settings *s)
{
	const struct certificate_settings *c;
	size_t i, j;

	for (i = 0; i < s->nlisteners; i++)
		for (j = 0; j < s->listeners[i].ncertificates; j++) {
			c = &s->listeners[i].certificates[j];
			if (c->ocsp_response != NULL)
				printf("%s\t%s\n", c->cert, c->ocsp_response);
		}
}

/* -K: what every node with this seed must agree on, without the seed. */
static int
print_key_schedule(const struct settings *s)
{
	struct ticket_keys *tk;

	if (s->tickets.mode != TICKETS_STATELESS) {
		fprintf(stderr, "tlsproxy: %s: tickets.mode is not \"stateless\": no seed-derived keys\n",
		    s->path);
		return EXIT_CONFIG;
	}
	if ((tk = ticket_keys_new(&s->tickets)) == NULL) {
		fprintf(stderr, "tlsproxy: cannot derive the ticket keys\n");
		return 1;
	}
	ticket_keys_print_schedule(tk, (int64_t)time(NULL), stdout);
	ticket_keys_unref(tk);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG;
	struct config_errors errs = { 0 };
	struct settings *s;
	struct server *srv;
	static const struct option long_options[] = {
		{ "list-ocsp", no_argument, NULL, 'O' }, { NULL, 0, NULL, 0 },
	};
	int opt, check_only = 0, print_keys = 0, list_ocsp = 0, debug = 0, allow_root = 0, rc;

	while ((opt = getopt_long(argc, argv, "c:tdKrVh", long_options, NULL)) != -1) {
		switch (opt) {
		case 'O':
			list_ocsp = 1;
			break;
		case 'c':
			path = optarg;
			break;
		case 't':
			check_only = 1;
			break;
		case 'd':
			debug = 1;
			break;
		case 'K':
			print_keys = 1;
			break;
		case 'r':
			allow_root = 1;
			break;
		case 'V':
			printf("tlsproxy %s (%s)\n", PACKAGE_VERSION, OpenSSL_version(OPENSSL_VERSION));
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "tlsproxy: unexpected argument: %s\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}

	log_init();
	/* Starting, the server builds every listener again, and warns then
	 * (an expiring certificate, a refused OCSP response): once is enough. */
	if (!check_only && !print_keys && !list_ocsp)
		log_set_level(LOG_LEVEL_ERROR);
	if ((s = settings_load(path, &errs)) == NULL || server_check(s, &errs) != 0) {
		print_errors(&errs);
		fprintf(stderr, "tlsproxy: %s: %zu error%s\n", path, errs.count,
		    errs.count == 1 ? "" : "s");
		config_errors_clear(&errs);
		settings_free(s);
		return EXIT_CONFIG;
	}
	if (list_ocsp) {
		print_ocsp_files(s);
		settings_free(s);
		return 0;
	}
	if (print_keys) {
		rc = print_key_schedule(s);
		settings_free(s);
		return rc;
	}
	if (check_only) {
		fprintf(stderr, "tlsproxy: %s: configuration is valid\n", path);
		settings_free(s);
		return 0;
	}

	if (privileges_check(s, allow_root) != 0) {
		settings_free(s);
		return EXIT_CONFIG;
	}
	/* A peer that vanishes must cost an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() != 0) {
		log_error("libevent has no thread support");
		settings_free(s);
		return 1;
	}
	if ((srv = server_new(s, path, debug)) == NULL)
		return 1;
	rc = server_run(srv);
	server_free(srv);
	return rc;
}
