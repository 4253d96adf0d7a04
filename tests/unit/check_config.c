/*
 * check_config: settings_load() on small config files written per test:
 * values and defaults land in struct settings, and every kind of mistake
 * is reported as "FILE:LINE: setting: ..." at the right line, all of them
 * in one pass.  Comments "L3" in config text give the line numbers.  The
 * last cases drive config_get directly: unknown settings are the members
 * that no getter asked for.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"
#include "../../src/config_get.h"

/* One-line fragments, so that line numbers in the tests stay obvious. */
#define TICKETS "tickets = { seed_file = \"@DIR@/ticket.seed\"; };\n"
#define LISTENER(name, addr) \
	"{ name = \"" name "\"; listen = \"" addr "\"; " \
	"backend = \"127.0.0.1:1883\"; cert = \"@DIR@/cert.pem\"; }"
#define LISTENERS "listeners = ( " LISTENER("mqtt", "127.0.0.1:8883") " );\n"
#define MINIMAL TICKETS LISTENERS

#define SEED32 "0123456789abcdef0123456789abcdef"

static void
setup(void)
{
	tl_setup();
	tl_placeholders();
}

/* The error list must contain ${substr} on the config file's line ${line}. */
static void
load_expect(const char *text, int line, const char *substr)
{
	struct config_errors errs = { 0 };

	tl_load_fail(text, &errs);
	tl_assert_error(&errs, line, substr);
	config_errors_clear(&errs);
}

/* --- Valid configs ------------------------------------------------------ */

START_TEST(test_minimal)
{
	struct settings *s = tl_load_ok(MINIMAL);
	struct listener_settings *l;
	char path[4200], buf[ADDR_TEXT_MAX];

	snprintf(path, sizeof(path), "%s/tlsproxy.conf", tl_dir());
	ck_assert_str_eq(s->path, path);
	ck_assert_uint_eq(s->nlisteners, 1);
	l = &s->listeners[0];
	ck_assert_str_eq(l->name, "mqtt");
	ck_assert_int_eq(l->listen.numeric, 1);
	ck_assert_str_eq(addr_format((struct sockaddr *)&l->listen.sa, buf,
	    sizeof(buf)), "127.0.0.1:8883");
	ck_assert_str_eq(l->backend.host, "127.0.0.1");
	ck_assert_int_eq(l->backend.port, 1883);
	snprintf(path, sizeof(path), "%s/cert.pem", tl_dir());
	ck_assert_str_eq(l->certificates[0].cert, path);
	ck_assert_str_eq(l->where.file, s->path);
	ck_assert_int_eq(l->where.line, 2);
	ck_assert_int_eq(l->certificates[0].cert_where.line, 2);
	ck_assert_int_eq(s->tickets.where.line, 1);
	settings_free(s);
}
END_TEST

START_TEST(test_defaults)
{
	struct settings *s = tl_load_ok(MINIMAL);
	struct listener_settings *l = &s->listeners[0];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	ck_assert_int_eq(s->workers, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
	ck_assert_int_eq(s->log_level, LOG_LEVEL_INFO);
	ck_assert_int_eq(s->full_handshake_priority, FULL_HANDSHAKE_PRIORITY_NORMAL);
	ck_assert_int_eq(s->shutdown_timeout, 30);
	ck_assert_int_eq(s->session_cache_size, 20480);
	ck_assert_int_eq(s->session_cache_timeout, 300);

	ck_assert_int_eq(s->tickets.mode, TICKETS_STATELESS);
	ck_assert_uint_eq(s->tickets.seed_len, 32);
	ck_assert_mem_eq(s->tickets.seed, SEED32, 32);
	ck_assert_ptr_null(s->tickets.previous_seed);
	ck_assert_ptr_null(s->tickets.previous_seed_file);
	ck_assert_int_eq(s->tickets.rotation_interval, 3600);
	ck_assert_int_eq(s->tickets.decrypt_grace, 12 * 3600);
	ck_assert_int_eq(s->tickets.session_lifetime, 12 * 3600);
	ck_assert_int_eq(s->tickets.tls13_tickets, 1);
	ck_assert_int_eq(s->tickets.tls13_renew, TLS13_RENEW_ALWAYS);
	ck_assert_int_eq(s->tickets.max_session_age, 7 * 86400);

	/* The key defaults to the cert: a combined PEM. */
	ck_assert_str_eq(l->certificates[0].key, l->certificates[0].cert);
	ck_assert_int_eq(l->certificates[0].key_where.line, l->certificates[0].cert_where.line);
	ck_assert_ptr_null(l->client_ca);
	ck_assert_ptr_null(l->ciphers);
	ck_assert_ptr_null(l->ciphersuites);
	ck_assert_uint_eq(l->protocols, PROTO_TLS12 | PROTO_TLS13);
	ck_assert_int_eq(l->verify_client, VERIFY_CLIENT_NONE);
	ck_assert_int_eq(l->handshake_timeout, 10);
	ck_assert_int_eq(l->connect_timeout, 5);
	ck_assert_int_eq(l->connect_retry, 1);
	ck_assert_int_eq(l->idle_timeout, 0);
	ck_assert_int_eq(l->max_connections, 100000);
	ck_assert_int_eq(l->full_handshake_rate, 0);
	ck_assert_int_eq(l->full_handshake_burst, 0);
	ck_assert_int_eq(l->backend_connect_rate, 0);
	ck_assert_int_eq(l->backend_max_connecting, 0);
	settings_free(s);
}
END_TEST

START_TEST(test_every_setting)
{
	struct settings *s;
	struct listener_settings *l;

	tl_write("previous.seed", "fedcba9876543210fedcba9876543210", 0400);
	s = tl_load_ok(
	    "workers = 3; full_handshake_priority = \"low\";\n"	/* L1 */
	    "log_level = \"debug\";\n"
	    "shutdown_timeout = \"2m\";\n"
	    "session_cache = { size = 0; timeout = 600; };\n"
	    "tickets = {\n"					/* L5 */
	    "  mode = \"stateless\";\n"
	    "  seed = \"" SEED32 "\";\n"
	    "  previous_seed_file = \"@DIR@/previous.seed\";\n"
	    "  rotation_interval = \"45m\";\n"
	    "  decrypt_grace = \"30d\";\n"			/* L10 */
	    "  session_lifetime = \"7d\";\n"
	    "  tls13_tickets = 0; max_session_age = \"36h\"; tls13_renew = \"rotation\";\n"
	    "};\n"
	    "listeners = (\n"
	    "  {\n"						/* L15 */
	    "    name = \"a-1.b_2\";\n"
	    "    listen = \"[::]:8883\";\n"
	    "    backend = \"broker.example:1883\";\n"
	    "    cert = \"@DIR@/cert.pem\";\n"
	    "    key = \"@DIR@/key.pem\";\n"			/* L20 */
	    "    client_ca = \"@DIR@/ca.pem\";\n"
	    "    protocols = [ \"TLSv1.3\" ];\n"
	    "    ciphers = \"ECDHE+AESGCM\";\n"
	    "    ciphersuites = \"TLS_AES_128_GCM_SHA256\";\n"
	    "    verify_client = \"require\"; crl = \"@DIR@/ca.pem\"; crl_check = \"chain\";\n" /* L25 */
	    "    handshake_timeout = \"1h\";\n"
	    "    connect_timeout = 1; connect_retry = false;\n"
	    "    idle_timeout = \"30d\";\n"
	    "    max_connections = 10000000; full_handshake_rate = 1000000;"
	    " full_handshake_burst = 5; backend_connect_rate = 7;"
	    " backend_max_connecting = 9;\n"
	    "  },\n"						/* L30 */
	    "  { name = \"b\"; listen = \"0.0.0.0:8883\"; backend = \"[::1]:1\";\n"
	    "    cert = \"@DIR@/cert.pem\"; protocols = ( \"TLSv1.2\" );\n"
	    "    verify_client = \"optional\"; client_ca = \"@DIR@/ca.pem\"; }\n"
	    ");\n");

	ck_assert_int_eq(s->workers, 3);
	ck_assert_int_eq(s->full_handshake_priority, FULL_HANDSHAKE_PRIORITY_LOW);
	ck_assert_int_eq(s->log_level, LOG_LEVEL_DEBUG);
	ck_assert_int_eq(s->shutdown_timeout, 120);
	ck_assert_int_eq(s->session_cache_size, 0);
	ck_assert_int_eq(s->session_cache_timeout, 600);
	ck_assert_int_eq(s->tickets.mode, TICKETS_STATELESS);
	ck_assert_uint_eq(s->tickets.seed_len, 32);
	ck_assert_mem_eq(s->tickets.seed, SEED32, 32);
	ck_assert_ptr_null(s->tickets.seed_file);
	ck_assert_uint_eq(s->tickets.previous_seed_len, 32);
	ck_assert_mem_eq(s->tickets.previous_seed,
	    "fedcba9876543210fedcba9876543210", 32);
	ck_assert_ptr_nonnull(strstr(s->tickets.previous_seed_file,
	    "/previous.seed"));
	ck_assert_int_eq(s->tickets.rotation_interval, 45 * 60);
	ck_assert_int_eq(s->tickets.decrypt_grace, 30 * 86400);
	ck_assert_int_eq(s->tickets.session_lifetime, 7 * 86400);
	ck_assert_int_eq(s->tickets.tls13_tickets, 0);
	ck_assert_int_eq(s->tickets.tls13_renew, TLS13_RENEW_ROTATION);
	ck_assert_int_eq(s->tickets.max_session_age, 36 * 3600);
	ck_assert_int_eq(s->tickets.where.line, 5);

	ck_assert_uint_eq(s->nlisteners, 2);
	l = &s->listeners[0];
	ck_assert_str_eq(l->name, "a-1.b_2");
	ck_assert_int_eq(l->listen.numeric, 1);
	ck_assert_str_eq(l->listen.host, "::");
	ck_assert_int_eq(l->backend.numeric, 0);
	ck_assert_str_eq(l->backend.host, "broker.example");
	ck_assert_ptr_nonnull(strstr(l->certificates[0].key, "/key.pem"));
	ck_assert_ptr_nonnull(strstr(l->client_ca, "/ca.pem"));
	ck_assert_uint_eq(l->protocols, PROTO_TLS13);
	ck_assert_str_eq(l->ciphers, "ECDHE+AESGCM");
	ck_assert_str_eq(l->ciphersuites, "TLS_AES_128_GCM_SHA256");
	ck_assert_int_eq(l->verify_client, VERIFY_CLIENT_REQUIRE);
	ck_assert_ptr_nonnull(strstr(l->crl, "/ca.pem"));
	ck_assert_int_eq(l->crl_where.line, 25);
	ck_assert_int_eq(l->crl_check, CRL_CHECK_CHAIN);
	ck_assert_int_eq(l->handshake_timeout, 3600);
	ck_assert_int_eq(l->connect_timeout, 1);
	ck_assert_int_eq(l->connect_retry, 0);
	ck_assert_int_eq(l->idle_timeout, 30 * 86400);
	ck_assert_int_eq(l->max_connections, 10000000);
	ck_assert_int_eq(l->full_handshake_rate, 1000000);
	ck_assert_int_eq(l->full_handshake_burst, 5);
	ck_assert_int_eq(l->backend_connect_rate, 7);
	ck_assert_int_eq(l->backend_max_connecting, 9);
	ck_assert_int_eq(l->where.line, 15);
	ck_assert_int_eq(l->certificates[0].cert_where.line, 19);
	ck_assert_int_eq(l->certificates[0].key_where.line, 20);
	ck_assert_int_eq(l->client_ca_where.line, 21);
	ck_assert_int_eq(l->ciphers_where.line, 23);
	ck_assert_int_eq(l->ciphersuites_where.line, 24);
	ck_assert_str_eq(l->ciphers_where.file, s->path);

	l = &s->listeners[1];
	ck_assert_str_eq(l->backend.host, "::1");
	ck_assert_int_eq(l->backend.numeric, 1);
	ck_assert_uint_eq(l->protocols, PROTO_TLS12);
	ck_assert_int_eq(l->verify_client, VERIFY_CLIENT_OPTIONAL);
	ck_assert_int_eq(l->where.line, 31);
	settings_free(s);
}
END_TEST

START_TEST(test_log_levels)
{
	static const struct { const char *name; enum log_level level; } t[] = {
		{ "error", LOG_LEVEL_ERROR }, { "warning", LOG_LEVEL_WARNING },
		{ "info", LOG_LEVEL_INFO }, { "debug", LOG_LEVEL_DEBUG },
	};
	struct settings *s;
	char text[512];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(text, sizeof(text), "log_level = \"%s\";\n" MINIMAL,
		    t[i].name);
		s = tl_load_ok(text);
		ck_assert_int_eq(s->log_level, t[i].level);
		settings_free(s);
	}
}
END_TEST

START_TEST(test_ticket_modes_without_seed)
{
	struct settings *s;

	/* Only stateless tickets need a seed. */
	s = tl_load_ok("tickets = { mode = \"off\"; };\n" LISTENERS);
	ck_assert_int_eq(s->tickets.mode, TICKETS_OFF);
	ck_assert_ptr_null(s->tickets.seed);
	settings_free(s);
	s = tl_load_ok("tickets = { mode = \"stateful\"; };\n" LISTENERS);
	ck_assert_int_eq(s->tickets.mode, TICKETS_STATEFUL);
	settings_free(s);
	/* A seed given anyway is accepted and kept. */
	s = tl_load_ok("tickets = { mode = \"off\"; seed = \"" SEED32 "\"; };\n"
	    LISTENERS);
	ck_assert_uint_eq(s->tickets.seed_len, 32);
	settings_free(s);
}
END_TEST

START_TEST(test_duration_forms)
{
	struct settings *s;

	s = tl_load_ok("shutdown_timeout = 0;\n"
	    "session_cache = { timeout = \"1d\"; };\n" MINIMAL);
	ck_assert_int_eq(s->shutdown_timeout, 0);
	ck_assert_int_eq(s->session_cache_timeout, 86400);
	settings_free(s);
	s = tl_load_ok("shutdown_timeout = \"45\";\n" MINIMAL);
	ck_assert_int_eq(s->shutdown_timeout, 45);
	settings_free(s);
	s = tl_load_ok("shutdown_timeout = 86400L;\n" MINIMAL);
	ck_assert_int_eq(s->shutdown_timeout, 86400);
	settings_free(s);
}
END_TEST

START_TEST(test_include)
{
	struct settings *s;
	struct config_errors errs = { 0 };
	char path[4200];

	tl_write_conf("listeners.conf", "\n" LISTENERS);
	s = tl_load_ok(TICKETS "@include \"listeners.conf\"\n");
	/* The listener's file is the included one, named by its full path. */
	snprintf(path, sizeof(path), "%s/listeners.conf", tl_dir());
	ck_assert_str_eq(s->listeners[0].where.file, path);
	ck_assert_int_eq(s->listeners[0].where.line, 2);
	ck_assert_str_eq(s->listeners[0].certificates[0].cert_where.file, path);
	settings_free(s);

	/* Errors inside it name it too. */
	tl_write_conf("listeners.conf", "\n\nworkers = 0;\n" LISTENERS);
	tl_load_fail(TICKETS "@include \"listeners.conf\"\n", &errs);
	ck_assert_msg(tl_has_error(&errs, path, 3, "workers: 0 is out of range"),
	    "%s", tl_dump(&errs));
	config_errors_clear(&errs);
}
END_TEST

/* The shipped example must be complete and valid once its files exist. */
START_TEST(test_example_config)
{
	const char *srcdir = getenv("srcdir");
	char path[4200], *buf = NULL, *text, *at, *out;
	const char *dir = "/etc/tlsproxy/";
	struct settings *s;
	size_t len = 0, outlen;
	FILE *fp, *mem;

	snprintf(path, sizeof(path), "%s/etc/tlsproxy.conf",
	    srcdir ? srcdir : ".");
	fp = fopen(path, "r");
	ck_assert_msg(fp != NULL, "cannot open %s", path);
	ck_assert(getdelim(&buf, &len, '\0', fp) > 0);
	fclose(fp);
	text = buf;

	/* Point /etc/tlsproxy/ at the temporary directory. */
	ck_assert((mem = open_memstream(&out, &outlen)) != NULL);
	for (at = text; (at = strstr(text, dir)) != NULL; text = at + strlen(dir)) {
		fwrite(text, 1, (size_t)(at - text), mem);
		fprintf(mem, "%s/", tl_dir());
	}
	fputs(text, mem);
	fclose(mem);
	tl_write("server.pem", "placeholder\n", 0640);
	tl_write("ticket.seed", SEED32 "\n", 0600);

	s = tl_load_ok(out);
	ck_assert_uint_ge(s->nlisteners, 1);
	ck_assert_str_eq(s->listeners[0].name, "mqtt");
	ck_assert_int_eq(s->tickets.mode, TICKETS_STATELESS);
	settings_free(s);
	free(out);
	free(buf);
}
END_TEST

/* --- Seeds -------------------------------------------------------------- */

/* Load a config whose seed file holds ${content}; check the stored seed. */
static void
seed_file_is(const char *content, size_t clen, const char *want, size_t wlen)
{
	struct settings *s;

	tl_write_bytes("ticket.seed", content, clen, 0600);
	s = tl_load_ok(MINIMAL);
	ck_assert_uint_eq(s->tickets.seed_len, wlen);
	ck_assert_mem_eq(s->tickets.seed, want, wlen);
	ck_assert_str_eq(s->tickets.seed_file + strlen(tl_dir()), "/ticket.seed");
	settings_free(s);
}

START_TEST(test_seed_newline_stripped_once)
{
	seed_file_is(SEED32, 32, SEED32, 32);
	seed_file_is(SEED32 "\n", 33, SEED32, 32);
	seed_file_is(SEED32 "\r\n", 34, SEED32, 32);
	seed_file_is(SEED32 "\n\n", 34, SEED32 "\n", 33);
	seed_file_is(SEED32 "\r\n\r\n", 36, SEED32 "\r\n", 34);
	seed_file_is(SEED32 "\r", 33, SEED32 "\r", 33);
	/* Binary seeds are fine, NULs included. */
	seed_file_is("\0\1\2\3\4\5\6\7\0\1\2\3\4\5\6\7", 16,
	    "\0\1\2\3\4\5\6\7\0\1\2\3\4\5\6\7", 16);
}
END_TEST

START_TEST(test_seed_too_short)
{
	struct config_errors errs = { 0 };
	size_t i;

	/* 15 bytes after the newline is stripped. */
	tl_write("ticket.seed", "0123456789abcde\n", 0600);
	load_expect(MINIMAL, 1, "tickets.seed_file: ");
	load_expect(MINIMAL, 1, "too short: 15 bytes (16 to 4096 bytes");

	tl_load_fail("tickets = {\n  seed = \"secret-bytes\";\n};\n" LISTENERS,
	    &errs);
	tl_assert_error(&errs, 2, "tickets.seed: the seed is too short: 12 bytes");
	/* The seed's bytes never appear in a message. */
	for (i = 0; i < errs.count; i++)
		ck_assert_ptr_null(strstr(errs.lines[i], "secret-bytes"));
	config_errors_clear(&errs);
}
END_TEST

START_TEST(test_seed_too_long)
{
	char *big = malloc(5000);

	memset(big, 'x', 5000);
	tl_write_bytes("ticket.seed", big, 5000, 0600);
	load_expect(MINIMAL, 1, "too long");
	free(big);
}
END_TEST

START_TEST(test_seed_file_mode)
{
	char want[4300];
	const char *path;

	path = tl_write("ticket.seed", SEED32 "\n", 0644);
	snprintf(want, sizeof(want), "tickets.seed_file: %s is accessible by "
	    "group or others (run chmod 600 %s)", path, path);
	load_expect(MINIMAL, 1, want);
	tl_write("ticket.seed", SEED32 "\n", 0640);
	load_expect(MINIMAL, 1, "chmod 600");
	tl_write("ticket.seed", SEED32 "\n", 0604);
	load_expect(MINIMAL, 1, "chmod 600");
	/* Owner-only modes are fine, read-only included. */
	tl_write("ticket.seed", SEED32 "\n", 0400);
	settings_free(tl_load_ok(MINIMAL));
}
END_TEST

START_TEST(test_seed_file_missing)
{
	load_expect("tickets = { seed_file = \"@DIR@/nope\"; };\n" LISTENERS, 1,
	    "/nope: No such file or directory");
	load_expect("tickets = { seed_file = \"@DIR@\"; };\n" LISTENERS, 1,
	    "is not a regular file");
	load_expect("tickets = { seed_file = \"\"; };\n" LISTENERS, 1,
	    "tickets.seed_file: must not be empty");
}
END_TEST

START_TEST(test_seed_both)
{
	load_expect("tickets = {\n"
	    "  seed_file = \"@DIR@/ticket.seed\";\n"
	    "  seed = \"" SEED32 "\";\n"
	    "};\n" LISTENERS, 3, "tickets.seed: conflicts with tickets.seed_file "
	    "at ");
	load_expect("tickets = {\n"
	    "  seed_file = \"@DIR@/ticket.seed\";\n"
	    "  previous_seed = \"" SEED32 "\";\n"
	    "  previous_seed_file = \"@DIR@/ticket.seed\";\n"
	    "};\n" LISTENERS, 3, "(set only one of previous_seed and "
	    "previous_seed_file)");
	/* Both are still checked, each on its own line. */
	tl_write("ticket.seed", SEED32 "\n", 0644);
	load_expect("tickets = {\n"
	    "  seed_file = \"@DIR@/ticket.seed\";\n"
	    "  seed = \"short\";\n"
	    "};\n" LISTENERS, 2, "chmod 600");
	load_expect("tickets = {\n"
	    "  seed_file = \"@DIR@/ticket.seed\";\n"
	    "  seed = \"short\";\n"
	    "};\n" LISTENERS, 3, "tickets.seed: the seed is too short");
}
END_TEST

START_TEST(test_no_seed)
{
	/* No tickets group at all: the default mode needs a seed. */
	load_expect(LISTENERS, 1, "tickets: no seed (set seed_file or seed, "
	    "or mode = \"stateful\" or \"off\")");
	load_expect("workers = 1;\n\ntickets = {\n  mode = \"stateless\";\n};\n"
	    LISTENERS, 3, "tickets: no seed");
}
END_TEST

START_TEST(test_lifetime_over_grace)
{
	load_expect("tickets = {\n"
	    "  seed_file = \"@DIR@/ticket.seed\";\n"
	    "  decrypt_grace = \"1h\";\n"
	    "  session_lifetime = \"2h\";\n"
	    "};\n" LISTENERS, 4, "tickets.session_lifetime: 2h is longer than "
	    "decrypt_grace (1h): a client could hold a ticket that no node can "
	    "still decrypt");
	/* With session_lifetime left at 12h, the error points at the grace. */
	load_expect("tickets = {\n"
	    "  seed_file = \"@DIR@/ticket.seed\";\n"
	    "  decrypt_grace = 0;\n"
	    "};\n" LISTENERS, 3, "tickets.session_lifetime: 12h is longer");
}
END_TEST

START_TEST(test_decrypt_window)
{
	struct settings *s;

	load_expect("tickets = {\n"
	    "  seed_file = \"@DIR@/ticket.seed\";\n"
	    "  rotation_interval = 1;\n"
	    "  decrypt_grace = \"12h\";\n"			/* L4 */
	    "  session_lifetime = \"1h\";\n"
	    "};\n" LISTENERS, 4, "tickets.decrypt_grace: 12h spans 43200 "
	    "rotation intervals of 1s (at most 1000: lengthen rotation_interval "
	    "or shorten decrypt_grace)");
	/* Left at its default, the grace is blamed at the tickets group. */
	load_expect("workers = 1;\n"
	    "tickets = {\n"					/* L2 */
	    "  seed_file = \"@DIR@/ticket.seed\";\n"
	    "  rotation_interval = \"30s\";\n"
	    "};\n" LISTENERS, 2, "tickets.decrypt_grace: 12h spans 1440 "
	    "rotation intervals of 30s (at most 1000");
	/* A part of an interval counts as one. */
	load_expect("tickets = { seed_file = \"@DIR@/ticket.seed\";\n"
	    "  rotation_interval = \"1m\"; decrypt_grace = 60001; };\n"
	    LISTENERS, 2, "tickets.decrypt_grace: 60001s spans 1001 rotation "
	    "intervals of 1m");
	/* 1000 intervals exactly is fine. */
	s = tl_load_ok("tickets = { seed_file = \"@DIR@/ticket.seed\"; "
	    "rotation_interval = \"1m\"; decrypt_grace = 60000; };\n" LISTENERS);
	ck_assert_int_eq(s->tickets.decrypt_grace, 60000);
	settings_free(s);
	/* Only stateless tickets derive keys. */
	settings_free(tl_load_ok("tickets = { mode = \"stateful\"; "
	    "rotation_interval = 1; };\n" LISTENERS));
	settings_free(tl_load_ok("tickets = { mode = \"off\"; "
	    "rotation_interval = 1; };\n" LISTENERS));
}
END_TEST

START_TEST(test_stateful_needs_cache)
{
	struct config_errors errs = { 0 };

	tl_load_fail("session_cache = { size = 0; };\n"
	    "tickets = {\n"
	    "  mode = \"stateful\";\n"				/* L3 */
	    "};\n" LISTENERS, &errs);
	tl_assert_error(&errs, 3, "tickets.mode: \"stateful\" needs the "
	    "session cache (session_cache.size > 0)");
	ck_assert_uint_eq(errs.count, 1);
	config_errors_clear(&errs);
	settings_free(tl_load_ok("session_cache = { size = 1; };\n"
	    "tickets = { mode = \"stateful\"; };\n" LISTENERS));
	/* Mode "off" without a cache resumes nothing: allowed, if odd. */
	settings_free(tl_load_ok("session_cache = { size = 0; };\n"
	    "tickets = { mode = \"off\"; };\n" LISTENERS));
}
END_TEST

/* user and group are resolved at load time, so -t catches typos. */
START_TEST(test_user_and_group)
{
	struct settings *s;

	s = tl_load_ok("user = \"nobody\";\n" MINIMAL);
	ck_assert_str_eq(s->user, "nobody");
	ck_assert_uint_eq(s->uid, 65534);
	ck_assert_ptr_null(s->group);
	settings_free(s);
	s = tl_load_ok("user = \"nobody\";\ngroup = \"root\";\n" MINIMAL);
	ck_assert_uint_eq(s->gid, 0);
	settings_free(s);
	load_expect("user = \"no-such-user-here\";\n" MINIMAL, 1, "user: no such user "
	    "\"no-such-user-here\" (an existing user name)");
	load_expect("user = \"nobody\";\n\ngroup = \"no-such-group-here\";\n" MINIMAL, 3,
	    "group: no such group \"no-such-group-here\" (an existing group name)");
	load_expect("\ngroup = \"root\";\n" MINIMAL, 2,
	    "group: needs user (set user as well, or neither)");
}
END_TEST

/* --- Types, ranges, unknown and missing settings ------------------------ */

START_TEST(test_bad_types)
{
	load_expect("workers = \"4\";\n" MINIMAL, 1, "workers: expected an "
	    "integer, got a string (an integer from 1 to 256)");
	load_expect("\nworkers = 4.0;\n" MINIMAL, 2, "workers: expected an "
	    "integer, got a floating-point number");
	load_expect("log_level = 3;\n" MINIMAL, 1, "log_level: expected a "
	    "string, got an integer (one of \"error\", \"warning\", \"info\", "
	    "\"debug\")");
	load_expect("session_cache = 5;\n" MINIMAL, 1, "session_cache: expected "
	    "a group");
	load_expect("session_cache = { size = true; };\n" MINIMAL, 1,
	    "session_cache.size: expected an integer, got a boolean");
	load_expect("tickets = [ 1 ];\n" LISTENERS, 1, "tickets: expected a group");
	load_expect("listeners = { a = 1; };\n" TICKETS, 1, "listeners: expected "
	    "a list, got a group");
	load_expect(TICKETS "listeners = ( \"x\" );\n", 2, "listeners[0]: "
	    "expected a group { ... }, got a string");
	load_expect(TICKETS "listeners = ( { name = 5; } );\n", 2,
	    "listeners[0].name: expected a string, got an integer");
}
END_TEST

START_TEST(test_out_of_range)
{
	load_expect("workers = 0;\n" MINIMAL, 1, "workers: 0 is out of range "
	    "(an integer from 1 to 256)");
	load_expect("workers = 257;\n" MINIMAL, 1, "workers: 257 is out of range");
	load_expect("session_cache = { size = -1; };\n" MINIMAL, 1,
	    "session_cache.size: -1 is out of range (an integer from 0 to "
	    "10000000)");
	load_expect("session_cache = { size = 100000000000L; };\n" MINIMAL, 1,
	    "session_cache.size: 100000000000 is out of range");
	load_expect("tickets = { seed_file = \"@DIR@/ticket.seed\"; "
	    "tls13_tickets = 17; };\n" LISTENERS, 1, "tickets.tls13_tickets: 17 "
	    "is out of range (an integer from 0 to 16)");
	load_expect("tickets = { seed_file = \"@DIR@/ticket.seed\"; "
	    "tls13_renew = \"never\"; };\n" LISTENERS, 1, "tickets.tls13_renew: \"never\" "
	    "is not allowed (one of \"always\", \"rotation\")");
	load_expect("tickets = { seed_file = \"@DIR@/ticket.seed\"; "
	    "max_session_age = \"367d\"; };\n" LISTENERS, 1,
	    "tickets.max_session_age: \"367d\" is out of range (a duration from 1s to 366d");
	load_expect("tickets = { seed_file = \"@DIR@/ticket.seed\"; "
	    "max_session_age = 0; };\n" LISTENERS, 1,
	    "tickets.max_session_age: 0 is out of range");
	load_expect(TICKETS "listeners = ( {\n name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
	    "\"@DIR@/cert.pem\";\n max_connections = 0; } );\n", 4,
	    "listeners[0].max_connections: 0 is out of range (an integer from 1 "
	    "to 10000000)");
}
END_TEST

START_TEST(test_bad_durations)
{
	const char *forms = "an integer of seconds, or a string such as "
	    "\"90s\", \"5m\", \"12h\", \"7d\")";

	load_expect("shutdown_timeout = \"5 m\";\n" MINIMAL, 1, forms);
	load_expect("shutdown_timeout = \"5 m\";\n" MINIMAL, 1,
	    "shutdown_timeout: \"5 m\" is not a duration (a duration from 0 to "
	    "1d: ");
	load_expect("shutdown_timeout = \"2d\";\n" MINIMAL, 1,
	    "shutdown_timeout: \"2d\" is out of range (a duration from 0 to 1d: ");
	load_expect("shutdown_timeout = -5;\n" MINIMAL, 1,
	    "shutdown_timeout: -5 is out of range");
	load_expect("shutdown_timeout = true;\n" MINIMAL, 1,
	    "shutdown_timeout: expected a duration, got a boolean");
	load_expect("shutdown_timeout = 1.5;\n" MINIMAL, 1, forms);
	load_expect("session_cache = { timeout = 0; };\n" MINIMAL, 1,
	    "session_cache.timeout: 0 is out of range (a duration from 1s to 1d");
	load_expect("tickets = { seed_file = \"@DIR@/ticket.seed\"; "
	    "rotation_interval = \"8d\"; };\n" LISTENERS, 1,
	    "tickets.rotation_interval: \"8d\" is out of range (a duration from "
	    "1s to 7d");
	load_expect("tickets = { seed_file = \"@DIR@/ticket.seed\"; "
	    "decrypt_grace = \"31d\"; };\n" LISTENERS, 1,
	    "tickets.decrypt_grace: \"31d\" is out of range (a duration from 0 "
	    "to 30d");
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
	    "\"@DIR@/cert.pem\"; handshake_timeout = \"2h\"; } );\n", 2,
	    "listeners[0].handshake_timeout: \"2h\" is out of range (a duration "
	    "from 1s to 1h");
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
	    "\"@DIR@/cert.pem\"; connect_timeout = \"1d1h\"; } );\n", 2,
	    "listeners[0].connect_timeout: \"1d1h\" is not a duration");
}
END_TEST

START_TEST(test_bad_choices)
{
	load_expect("full_handshake_priority = \"idle\";\n" MINIMAL, 1,
	    "full_handshake_priority: \"idle\" is not allowed (one of \"normal\", \"low\")");
	load_expect("log_level = \"verbose\";\n" MINIMAL, 1, "log_level: "
	    "\"verbose\" is not allowed (one of \"error\", \"warning\", \"info\", "
	    "\"debug\")");
	load_expect("tickets = { mode = \"on\"; };\n" LISTENERS, 1,
	    "tickets.mode: \"on\" is not allowed (one of \"off\", \"stateful\", "
	    "\"stateless\")");
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
	    "\"@DIR@/cert.pem\"; verify_client = \"yes\"; } );\n", 2,
	    "listeners[0].verify_client: \"yes\" is not allowed (one of "
	    "\"none\", \"optional\", \"require\")");
}
END_TEST

START_TEST(test_unknown_settings)
{
	/* What is allowed is what the loader asked for, in the order it asked. */
	load_expect("\nworker = 4;\n" MINIMAL, 2, "worker: unknown setting "
	    "(allowed: user, group, workers, full_handshake_priority, log_level, "
	    "shutdown_timeout, session_cache, tickets, listeners, metrics)");
	load_expect("session_cache = {\n  sise = 4;\n};\n" MINIMAL, 2,
	    "session_cache.sise: unknown setting (allowed: size, timeout)");
	load_expect("tickets = { seed_file = \"@DIR@/ticket.seed\";\n"
	    "  lifetime = 5; };\n" LISTENERS, 2, "tickets.lifetime: unknown "
	    "setting (allowed: mode, seed, seed_file, previous_seed, "
	    "previous_seed_file, rotation_interval, decrypt_grace, "
	    "session_lifetime, tls13_tickets, tls13_renew, max_session_age)");
	load_expect(TICKETS "listeners = ( " LISTENER("a", "127.0.0.1:1") ",\n"
	    "{ name = \"b\"; listen = \"127.0.0.1:2\"; backend = \"x:1\";\n"
	    "  cert = \"@DIR@/cert.pem\"; timeout = 5; } );\n", 4,
	    "listeners[1].timeout: unknown setting (allowed: name, listen, "
	    "backend, cert, key, certificates, sni_strict, client_ca, protocols, ciphers, "
	    "ciphersuites, verify_client, crl, crl_check, handshake_timeout, connect_timeout, "
	    "connect_retry, "
	    "idle_timeout, max_connections, full_handshake_rate, full_handshake_burst, "
	    "backend_connect_rate, backend_max_connecting, proxy_protocol, "
	    "proxy_protocol_client_cert, alpn, alpn_required, routes)");
}
END_TEST

/*
 * A setting is known because the loader reads it, so one that this file's
 * other settings make unused must still be known, and so must one that is
 * read only after an error elsewhere in its group.
 */
START_TEST(test_unused_settings_known)
{
	struct config_errors errs = { 0 };
	size_t i;

	/* mode "off" uses no seed, "none" no CA, proxy_protocol "off" no client
	 * cert, and an explicit key replaces the cert-as-key default. */
	settings_free(tl_load_ok(
	    "tickets = { mode = \"off\"; seed_file = \"@DIR@/ticket.seed\"; "
	    "previous_seed = \"" SEED32 "\"; rotation_interval = 60; };\n"
	    "session_cache = { size = 0; timeout = 60; };\n"
	    "listeners = ( { name = \"a\"; listen = \"127.0.0.1:1\"; backend = "
	    "\"127.0.0.1:2\"; cert = \"@DIR@/cert.pem\"; key = \"@DIR@/key.pem\"; "
	    "client_ca = \"@DIR@/ca.pem\"; verify_client = \"none\"; "
	    "proxy_protocol = \"off\"; proxy_protocol_client_cert = false; } );\n"));

	/* Conflicting seeds, a bad mode, a listener without name or address. */
	tl_load_fail(
	    "tickets = { mode = \"on\"; seed = \"" SEED32 "\";\n"	/* L1 */
	    "  seed_file = \"@DIR@/ticket.seed\"; };\n"
	    "listeners = ( { key = \"@DIR@/key.pem\"; ciphers = \"x\";\n"
	    "  idle_timeout = \"forever\"; proxy_protocol_client_cert = true; } );\n",
	    &errs);
	tl_assert_error(&errs, 1, "tickets.mode: \"on\" is not allowed");
	tl_assert_error(&errs, 1, "tickets.seed: conflicts with tickets.seed_file");
	tl_assert_error(&errs, 4, "listeners[0].idle_timeout: \"forever\"");
	tl_assert_error(&errs, 4, "listeners[0].proxy_protocol_client_cert: needs "
	    "proxy_protocol = \"v2\"");
	for (i = 0; i < errs.count; i++)
		ck_assert_msg(strstr(errs.lines[i], "unknown") == NULL,
		    "a known setting reported unknown:\n%s", tl_dump(&errs));
	config_errors_clear(&errs);

	/* Groups that are not groups have no members to be unknown. */
	load_expect("session_cache = 5;\n" MINIMAL, 1, "session_cache: expected a "
	    "group");
}
END_TEST

START_TEST(test_missing_required)
{
	struct config_errors errs = { 0 };

	/* Missing members are reported at their group's line. */
	tl_load_fail(TICKETS "listeners = (\n  {\n    key = "
	    "\"@DIR@/key.pem\";\n  }\n);\n", &errs);
	tl_assert_error(&errs, 3, "listeners[0].name: missing required setting");
	tl_assert_error(&errs, 3, "listeners[0].listen: missing required setting");
	tl_assert_error(&errs, 3, "listeners[0].backend: missing required "
	    "setting");
	tl_assert_error(&errs, 3, "listeners[0].cert: missing required setting");
	ck_assert_uint_eq(errs.count, 4);
	config_errors_clear(&errs);

	load_expect(TICKETS, 1, "listeners: missing required setting");
	load_expect(TICKETS "listeners = ();\n", 2, "listeners: empty");
}
END_TEST

START_TEST(test_names)
{
	load_expect(TICKETS "listeners = ( " LISTENER("my app", "127.0.0.1:1")
	    " );\n", 2, "listeners[0].name: \"my app\" is not a valid name (1 to "
	    "64 of the characters A-Z a-z 0-9 _ . -)");
	load_expect(TICKETS "listeners = ( " LISTENER("", "127.0.0.1:1")
	    " );\n", 2, "listeners[0].name: must not be empty");
	load_expect(TICKETS "listeners = ( " LISTENER("a\\nb", "127.0.0.1:1")
	    " );\n", 2, "\"a\\x0ab\" is not a valid name");
	load_expect(TICKETS "listeners = ( " LISTENER("0123456789012345678901234"
	    "5678901234567890123456789012345678901234", "127.0.0.1:1") " );\n", 2,
	    "is not a valid name");
	settings_free(tl_load_ok(TICKETS "listeners = ( " LISTENER(
	    "012345678901234567890123456789012345678901234567890123456789abcd",
	    "127.0.0.1:1") " );\n"));
}
END_TEST

START_TEST(test_duplicate_name)
{
	char want[4400];

	snprintf(want, sizeof(want), "listeners[2].name: \"a\" is also the name "
	    "of listeners[0] at %s/tlsproxy.conf:2 (names must be unique)",
	    tl_dir());
	load_expect(TICKETS
	    "listeners = ( " LISTENER("a", "127.0.0.1:1") ",\n"
	    LISTENER("b", "127.0.0.1:2") ",\n"
	    LISTENER("a", "127.0.0.1:3") " );\n", 4, want);
}
END_TEST

START_TEST(test_duplicate_listen)
{
	char want[4400];

	snprintf(want, sizeof(want), "listeners[1].listen: [::1]:8883 is also "
	    "the address of listeners[0] at %s/tlsproxy.conf:2 (each listener "
	    "needs its own address)", tl_dir());
	/* Written differently, the same address all the same. */
	load_expect(TICKETS
	    "listeners = ( " LISTENER("a", "[::1]:8883") ",\n"
	    LISTENER("b", "[0:0::1]:8883") " );\n", 3, want);
	settings_free(tl_load_ok(TICKETS
	    "listeners = ( " LISTENER("a", "[::1]:8883") ",\n"
	    LISTENER("b", "[::1]:8884") " );\n"));
}
END_TEST

START_TEST(test_metrics)
{
	struct settings *s;
	char buf[ADDR_TEXT_MAX];

	s = tl_load_ok(MINIMAL);
	ck_assert_int_eq(s->metrics_enabled, 0);
	settings_free(s);
	s = tl_load_ok("metrics = \"127.0.0.1:9464\";\n" MINIMAL);
	ck_assert_int_eq(s->metrics_enabled, 1);
	ck_assert_str_eq(addr_format((struct sockaddr *)&s->metrics.sa, buf,
	    sizeof(buf)), "127.0.0.1:9464");
	ck_assert_int_eq(s->metrics_where.line, 1);
	settings_free(s);
	s = tl_load_ok(MINIMAL "\nmetrics = \"[::1]:9464\";\n");
	ck_assert_str_eq(addr_format((struct sockaddr *)&s->metrics.sa, buf,
	    sizeof(buf)), "[::1]:9464");
	ck_assert_int_eq(s->metrics_where.line, 4);
	settings_free(s);
}
END_TEST

START_TEST(test_bad_metrics)
{
	char want[4300];

	load_expect("metrics = \"localhost:9464\";\n" MINIMAL, 1, "metrics: "
	    "\"localhost:9464\": host names are not allowed here (an IP address "
	    "and port, such as \"127.0.0.1:9464\" or \"[::1]:9464\")");
	load_expect("\nmetrics = \"127.0.0.1\";\n" MINIMAL, 2, "metrics: "
	    "\"127.0.0.1\": missing :port");
	load_expect("metrics = 9464;\n" MINIMAL, 1, "metrics: expected a string");
	load_expect("metrics = \"127.0.0.1:0\";\n" MINIMAL, 1, "metrics: "
	    "\"127.0.0.1:0\"");
	snprintf(want, sizeof(want), "metrics: 127.0.0.1:8883 is also the "
	    "address of listeners[0] at %s/tlsproxy.conf:3 (give metrics a port "
	    "of its own)", tl_dir());
	load_expect("metrics = \"127.0.0.1:8883\";\n" MINIMAL, 1, want);
}
END_TEST

START_TEST(test_bad_addresses)
{
	load_expect(TICKETS "listeners = ( " LISTENER("a", "localhost:8883")
	    " );\n", 2, "listeners[0].listen: \"localhost:8883\": host names are "
	    "not allowed here (an IP address and port");
	load_expect(TICKETS "listeners = ( " LISTENER("a", "*:8883") " );\n", 2,
	    "listeners[0].listen: \"*:8883\": missing host; for any address say "
	    "0.0.0.0 or [::] (an IP address and port");
	load_expect(TICKETS "listeners = ( " LISTENER("a", "::1:8883") " );\n", 2,
	    "needs brackets");
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"broker\"; cert = "
	    "\"@DIR@/cert.pem\"; } );\n", 2, "listeners[0].backend: \"broker\": "
	    "missing :port (\"host:port\", such as");
}
END_TEST

START_TEST(test_protocols)
{
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
	    "\"@DIR@/cert.pem\"; protocols = [ \"TLSv1.2\",\n\"TLSv1.1\" ]; } );\n",
	    3, "listeners[0].protocols[1]: \"TLSv1.1\" is not allowed (one of "
	    "\"TLSv1.2\", \"TLSv1.3\")");
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
	    "\"@DIR@/cert.pem\"; protocols = []; } );\n", 2,
	    "listeners[0].protocols: empty (one or more of");
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
	    "\"@DIR@/cert.pem\"; protocols = \"TLSv1.3\"; } );\n", 2,
	    "listeners[0].protocols: expected a list of strings, got a string");
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
	    "\"@DIR@/cert.pem\"; protocols = ( 12 ); } );\n", 2,
	    "listeners[0].protocols[0]: expected a string, got an integer");
}
END_TEST

START_TEST(test_empty_ciphers)
{
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
	    "\"@DIR@/cert.pem\";\nciphers = \"\"; ciphersuites = \"\"; } );\n", 3,
	    "listeners[0].ciphers: must not be empty");
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
	    "\"@DIR@/cert.pem\";\nciphers = \"\"; ciphersuites = \"\"; } );\n", 3,
	    "listeners[0].ciphersuites: must not be empty");
}
END_TEST

START_TEST(test_verify_client_needs_ca)
{
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
	    "\"@DIR@/cert.pem\";\n verify_client = \"require\"; } );\n", 3,
	    "listeners[0].verify_client: \"require\" needs client_ca");
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
	    "\"@DIR@/cert.pem\";\n verify_client = \"optional\"; } );\n", 3,
	    "listeners[0].verify_client: \"optional\" needs client_ca");
}
END_TEST

/* CRLs revoke client certificates: they need them verified. */
START_TEST(test_crl_needs_verification)
{
	const char *needs = "listeners[0].crl: needs client_ca and verify_client = "
	    "\"optional\" or \"require\"";
	struct settings *s;

	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = \"127.0.0.1:1\";\n"
	    "backend = \"127.0.0.1:2\"; cert = \"@DIR@/cert.pem\";\n"
	    "crl = \"@DIR@/ca.pem\"; } );\n", 4, needs);
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = \"127.0.0.1:1\";\n"
	    "backend = \"127.0.0.1:2\"; cert = \"@DIR@/cert.pem\";\n"
	    "client_ca = \"@DIR@/ca.pem\";\ncrl = \"@DIR@/ca.pem\"; } );\n", 5, needs);
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = \"127.0.0.1:1\";\n"
	    "backend = \"127.0.0.1:2\"; cert = \"@DIR@/cert.pem\";\n"
	    "client_ca = \"@DIR@/ca.pem\"; verify_client = \"require\";\n"
	    "crl_check = \"chain\"; } );\n", 5,
	    "listeners[0].crl_check: has no effect without crl");
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = \"127.0.0.1:1\";\n"
	    "backend = \"127.0.0.1:2\"; cert = \"@DIR@/cert.pem\";\n"
	    "client_ca = \"@DIR@/ca.pem\"; verify_client = \"require\";\n"
	    "crl = \"@DIR@/ca.pem\";\ncrl_check = \"all\"; } );\n", 6,
	    "listeners[0].crl_check: \"all\" is not allowed (one of \"leaf\", \"chain\")");
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = \"127.0.0.1:1\";\n"
	    "backend = \"127.0.0.1:2\"; cert = \"@DIR@/cert.pem\";\n"
	    "client_ca = \"@DIR@/ca.pem\"; verify_client = \"require\";\n"
	    "crl = \"@DIR@/nothing.crl\"; } );\n", 5, "listeners[0].crl: ");

	/* "optional" is enough, and "leaf" is the default. */
	s = tl_load_ok(TICKETS "listeners = ( { name = \"a\"; listen = \"127.0.0.1:1\";\n"
	    "backend = \"127.0.0.1:2\"; cert = \"@DIR@/cert.pem\";\n"
	    "client_ca = \"@DIR@/ca.pem\"; verify_client = \"optional\";\n"
	    "crl = \"@DIR@/ca.pem\"; } );\n");
	ck_assert_int_eq(s->listeners[0].crl_check, CRL_CHECK_LEAF);
	ck_assert_int_eq(s->listeners[0].crl_where.line, 5);
	settings_free(s);
}
END_TEST

START_TEST(test_unreadable_files)
{
	char want[4400];

	snprintf(want, sizeof(want), "listeners[0].cert: cannot read "
	    "%s/nope.pem: No such file or directory (", tl_dir());
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\";\n cert = "
	    "\"@DIR@/nope.pem\"; } );\n", 3, want);
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
	    "\"@DIR@/cert.pem\";\n key = \"@DIR@/nope.key\"; } );\n", 3,
	    "listeners[0].key: cannot read");
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
	    "\"@DIR@/cert.pem\";\n client_ca = \"@DIR@/nope.ca\"; } );\n", 3,
	    "listeners[0].client_ca: cannot read");
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = \"@DIR@\"; } );\n",
	    2, "listeners[0].cert: ");
	load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = \"@DIR@\"; } );\n",
	    2, "is a directory");
	/* Permissions only stop a reader that is not root. */
	if (geteuid() != 0) {
		tl_write("locked.pem", "x", 0);
		load_expect(TICKETS "listeners = ( { name = \"a\"; listen = "
		    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
		    "\"@DIR@/locked.pem\"; } );\n", 2, "Permission denied");
	}
}
END_TEST

START_TEST(test_group_readable_key_allowed)
{
	struct settings *s;

	/* Debian's ssl-cert group reads keys: not this module's business. */
	tl_write("key.pem", "placeholder key\n", 0640);
	s = tl_load_ok(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"127.0.0.1:2\"; cert = "
	    "\"@DIR@/cert.pem\"; key = \"@DIR@/key.pem\"; } );\n");
	settings_free(s);
}
END_TEST

START_TEST(test_listener_settings_copy)
{
	struct settings *s;
	struct listener_settings copy;
	char cert[4200];

	s = tl_load_ok(TICKETS "listeners = ( { name = \"a\"; listen = "
	    "\"127.0.0.1:1\"; backend = \"broker:2\"; cert = \"@DIR@/cert.pem\"; "
	    "ciphers = \"ECDHE+AESGCM\"; idle_timeout = 60; proxy_protocol = "
	    "\"v2\"; client_ca = \"@DIR@/ca.pem\"; verify_client = \"require\"; "
	    "crl = \"@DIR@/ca.pem\"; } );\n");
	ck_assert_int_eq(listener_settings_copy(&copy, &s->listeners[0]), 0);
	snprintf(cert, sizeof(cert), "%s/cert.pem", tl_dir());
	settings_free(s);	/* the copy needs none of it */

	ck_assert_str_eq(copy.name, "a");
	ck_assert_str_eq(copy.certificates[0].cert, cert);
	ck_assert_str_eq(copy.certificates[0].key, cert);
	ck_assert_str_eq(copy.ciphers, "ECDHE+AESGCM");
	ck_assert_ptr_nonnull(strstr(copy.client_ca, "/ca.pem"));
	ck_assert_ptr_nonnull(strstr(copy.crl, "/ca.pem"));
	ck_assert_ptr_null(copy.crl_where.file);
	ck_assert_str_eq(copy.backend.host, "broker");
	ck_assert_int_eq(copy.backend.port, 2);
	ck_assert_int_eq(copy.idle_timeout, 60);
	ck_assert_int_eq(copy.handshake_timeout, 10);
	ck_assert_int_eq(copy.proxy_protocol, PROXY_PROTOCOL_V2);
	/* Positions name the files of a load that is over. */
	ck_assert_ptr_null(copy.where.file);
	ck_assert_ptr_null(copy.certificates[0].cert_where.file);
	ck_assert_int_eq(copy.certificates[0].key_where.line, 0);
	listener_settings_clear(&copy);
	ck_assert_ptr_null(copy.name);
	ck_assert_ptr_null(copy.ciphers);
	ck_assert_ptr_null(copy.crl);
	listener_settings_clear(&copy);
}
END_TEST

/* --- File-level errors and error collection ----------------------------- */

START_TEST(test_syntax_error)
{
	struct config_errors errs = { 0 };

	tl_load_fail("workers = 2;\n\nlog_level = ;\n" MINIMAL, &errs);
	tl_assert_error(&errs, 3, "syntax error: ");
	ck_assert_uint_eq(errs.count, 1);
	config_errors_clear(&errs);
	load_expect("workers = 2;\nworkers = 3;\n" MINIMAL, 2,
	    "syntax error: duplicate setting name");
	load_expect("@include \"nope.conf\"\n" MINIMAL, 1,
	    "syntax error: cannot open include file");
}
END_TEST

/*
 * An @include that names something other than a regular file is an error
 * at its line.  libconfig 1.5 opens it and then exits the process (a
 * directory: "input in flex scanner failed") or blocks (a FIFO); its name
 * is relative to the file's directory, so "" is that directory.  Found by
 * fuzz_config with the bytes of the last case.
 */
START_TEST(test_include_not_a_file)
{
	static const char fuzzed[] = "@include \"\0DIR\342/seed.conf\"\nworkers = \n";
	struct config_errors errs = { 0 };
	char sub[4200], fifo[4200], inc[4200];
	struct settings *s;

	snprintf(sub, sizeof(sub), "%s/sub", tl_dir());
	snprintf(fifo, sizeof(fifo), "%s/pipe", tl_dir());
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	load_expect("@include \"\"\n" MINIMAL, 1, "@include: \"\" is a directory");
	load_expect("workers = 1;\n  @include \"sub\"\n" MINIMAL, 2,
	    "@include: \"sub\" is a directory");
	load_expect("@include\t\"pipe\"\n" MINIMAL, 1,
	    "@include: \"pipe\" is not a regular file");

	/* In an included file: named with its line. */
	snprintf(inc, sizeof(inc), "%s/inc.conf", tl_dir());
	tl_write_conf("inc.conf", "workers = 1;\n@include \"sub\"\n");
	tl_load_fail("@include \"inc.conf\"\n" MINIMAL, &errs);
	ck_assert_msg(tl_has_error(&errs, inc, 2, "@include: \"sub\" is a directory"), "%s",
	    tl_dump(&errs));
	config_errors_clear(&errs);

	/* Not an @include to libconfig: in a comment, or not first on its line. */
	s = tl_load_ok("/*\n@include \"sub\"\n*/\n# @include \"sub\"\n" MINIMAL);
	settings_free(s);

	/* The fuzzer's input: the name stops at the NUL, so it is "". */
	tl_write_bytes("tlsproxy.conf", fuzzed, sizeof(fuzzed) - 1, 0600);
	ck_assert_ptr_null(s = settings_load(tl_path("tlsproxy.conf"), &errs));
	tl_assert_error(&errs, 1, "@include: \"\" is a directory");
	config_errors_clear(&errs);
}
END_TEST

START_TEST(test_missing_file)
{
	struct config_errors errs = { 0 };
	char path[4200];

	snprintf(path, sizeof(path), "%s/nope.conf", tl_dir());
	ck_assert_ptr_null(settings_load(path, &errs));
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_msg(tl_has_error(&errs, path, 0,
	    "cannot read: No such file or directory"), "%s", tl_dump(&errs));
	config_errors_clear(&errs);

	ck_assert_ptr_null(settings_load(tl_dir(), &errs));
	ck_assert_msg(tl_has_error(&errs, tl_dir(), 0,
	    "cannot read: Is a directory"), "%s", tl_dump(&errs));
	config_errors_clear(&errs);
}
END_TEST

/* The LINE of "FILE:LINE: ...". */
static int
line_of(const char *text)
{
	const char *p = strstr(text, ".conf:");

	ck_assert_ptr_nonnull(p);
	return atoi(p + strlen(".conf:"));
}

START_TEST(test_all_errors_in_one_pass)
{
	struct config_errors errs = { 0 };
	size_t i;

	tl_load_fail(
	    "workers = 0;\n"					/* L1 */
	    "log_level = \"loud\";\n"
	    "colour = \"blue\";\n"
	    "session_cache = { size = \"big\"; };\n"
	    "tickets = { seed = \"short\"; };\n"		/* L5 */
	    "listeners = (\n"
	    "  { name = \"a\"; listen = \"host:1\"; backend = \"127.0.0.1:2\";\n"
	    "    cert = \"@DIR@/nope.pem\"; idle_timeout = \"forever\"; },\n"
	    "  { name = \"a\"; listen = \"127.0.0.1:1\"; }\n"	/* L9 */
	    ");\n", &errs);
	tl_assert_error(&errs, 1, "workers: 0 is out of range");
	tl_assert_error(&errs, 2, "log_level: \"loud\" is not allowed");
	tl_assert_error(&errs, 3, "colour: unknown setting");
	tl_assert_error(&errs, 4, "session_cache.size: expected an integer");
	tl_assert_error(&errs, 5, "tickets.seed: the seed is too short");
	tl_assert_error(&errs, 7, "listeners[0].listen: \"host:1\": host names");
	tl_assert_error(&errs, 8, "listeners[0].cert: cannot read");
	tl_assert_error(&errs, 8, "listeners[0].idle_timeout: \"forever\" is not "
	    "a duration");
	tl_assert_error(&errs, 9, "listeners[1].backend: missing required");
	tl_assert_error(&errs, 9, "listeners[1].cert: missing required");
	tl_assert_error(&errs, 9, "listeners[1].name: \"a\" is also the name of "
	    "listeners[0]");
	ck_assert_uint_eq(errs.count, 11);
	/* In file order, whatever order they were found in. */
	for (i = 1; i < errs.count; i++)
		ck_assert_msg(line_of(errs.lines[i - 1]) <= line_of(errs.lines[i]),
		    "out of order:\n%s", tl_dump(&errs));
	config_errors_clear(&errs);
}
END_TEST

START_TEST(test_errors_api)
{
	struct config_errors errs = { 0 };
	int i;

	config_errors_add(&errs, "f.conf", 7, "workers", "bad %d", 3);
	config_errors_add(&errs, "f.conf", 0, "cannot read", "%s", "gone");
	config_errors_add(&errs, "f.conf", 2, NULL, "plain");
	ck_assert_uint_eq(errs.count, 3);
	ck_assert_str_eq(errs.lines[0], "f.conf:7: workers: bad 3");
	ck_assert_str_eq(errs.lines[1], "f.conf: cannot read: gone");
	ck_assert_str_eq(errs.lines[2], "f.conf:2: plain");
	config_errors_clear(&errs);
	ck_assert_uint_eq(errs.count, 0);
	ck_assert_ptr_null(errs.lines);
	/* Cleared lists can be reused, and grow. */
	for (i = 0; i < 100; i++)
		config_errors_add(&errs, "f", i + 1, "x", "n%d", i);
	ck_assert_uint_eq(errs.count, 100);
	ck_assert_str_eq(errs.lines[99], "f:100: x: n99");
	config_errors_clear(&errs);
	config_errors_clear(&errs);
}
END_TEST

START_TEST(test_settings_free)
{
	/* NULL is fine; a full load is freed (and its seeds wiped) cleanly. */
	settings_free(NULL);
	tl_write("previous.seed", SEED32, 0600);
	settings_free(tl_load_ok("tickets = { seed_file = "
	    "\"@DIR@/ticket.seed\"; previous_seed_file = \"@DIR@/previous.seed\"; "
	    "};\n" LISTENERS));
	settings_free(tl_load_ok("tickets = { seed = \"" SEED32 "\"; "
	    "previous_seed = \"" SEED32 "\"; };\n" LISTENERS));
}
END_TEST

/* --- Unknown settings from the names asked for (config_get) ------------- */

/* A load of ${text} read straight with config_get, into settings at t.conf. */
struct reading {
	config_t cfg;
	struct settings *s;
	struct config_get_loader *ld;
	struct config_get_group root;
	struct config_errors errs;
};

static void
reading_start(struct reading *r, const char *text)
{
	memset(r, 0, sizeof(*r));
	config_init(&r->cfg);
	ck_assert_int_eq(config_read_string(&r->cfg, text), CONFIG_TRUE);
	ck_assert_ptr_nonnull(r->s = calloc(1, sizeof(*r->s)));
	ck_assert_ptr_nonnull(r->s->path = strdup("t.conf"));
	ck_assert_ptr_nonnull(r->ld = config_get_loader_new(r->s, &r->errs));
	config_get_open_root(&r->root, r->ld, config_root_setting(&r->cfg));
}

/* The load's result; its errors stay in r->errs for the caller to clear. */
static int
reading_end(struct reading *r)
{
	int rc = config_get_loader_finish(r->ld);

	config_destroy(&r->cfg);
	settings_free(r->s);
	return rc;
}

START_TEST(test_get_close_lists_asked)
{
	struct reading r;
	struct config_get_group g;
	int64_t v;

	reading_start(&r, "a = 1;\nb = 2;\nc = 3;\ng = { x = 1;\n  y = 2; };\n");
	config_get_int(&r.root, "a", 0, 9, 0, &v);
	config_get_member(&r.root, "b");
	config_get_member(&r.root, "b");	/* asked twice, listed once */
	config_get_member(&r.root, "z");	/* absent, and allowed */
	config_get_open(&g, &r.root, "g");
	config_get_int(&g, "x", 0, 9, 0, &v);
	config_get_close(&g);
	config_get_close(&r.root);
	ck_assert_int_eq(reading_end(&r), -1);
	/* In file order, though the root was closed last. */
	ck_assert_msg(r.errs.count == 2, "%s", tl_dump(&r.errs));
	ck_assert_str_eq(r.errs.lines[0],
	    "t.conf:3: c: unknown setting (allowed: a, b, z, g)");
	ck_assert_str_eq(r.errs.lines[1],
	    "t.conf:5: g.y: unknown setting (allowed: x)");
	config_errors_clear(&r.errs);
}
END_TEST

START_TEST(test_get_close_absent_group)
{
	struct reading r;
	struct config_get_group g;
	int64_t v;

	/* An absent group has no members, a non-group none that are settings. */
	reading_start(&r, "a = 1;\nh = 5;\n");
	ck_assert_int_eq(config_get_open(&g, &r.root, "g"), 1);
	config_get_int(&g, "x", 0, 9, 0, &v);
	config_get_close(&g);
	ck_assert_int_eq(config_get_open(&g, &r.root, "h"), -1);
	config_get_close(&g);
	config_get_member(&r.root, "a");
	config_get_close(&r.root);
	ck_assert_int_eq(reading_end(&r), -1);
	ck_assert_msg(r.errs.count == 1, "%s", tl_dump(&r.errs));
	ck_assert_str_eq(r.errs.lines[0], "t.conf:2: h: expected a group { ... }, "
	    "got an integer");
	config_errors_clear(&r.errs);
}
END_TEST

START_TEST(test_get_asked_limit)
{
	static char names[CONFIG_GET_ASKED_MAX + 2][8];	/* outlive the groups */
	struct reading r;
	size_t i;

	for (i = 0; i < CONFIG_GET_ASKED_MAX + 2; i++)
		snprintf(names[i], sizeof(names[i]), "n%zu", i);
	/* As many as the limit: fine. */
	reading_start(&r, "n0 = 1;\n");
	for (i = 0; i < CONFIG_GET_ASKED_MAX; i++)
		config_get_member(&r.root, names[i]);
	config_get_close(&r.root);
	ck_assert_int_eq(reading_end(&r), 0);
	/* More: the program is wrong, so every load fails, saying so once. */
	reading_start(&r, "n0 = 1;\n");
	for (i = 0; i < CONFIG_GET_ASKED_MAX + 2; i++)
		config_get_member(&r.root, names[i]);
	config_get_close(&r.root);
	ck_assert_int_eq(reading_end(&r), -1);
	ck_assert_msg(r.errs.count == 1, "%s", tl_dump(&r.errs));
	ck_assert_ptr_nonnull(strstr(r.errs.lines[0], "t.conf:1: internal error: "
	    "a group asked for more than"));
	config_errors_clear(&r.errs);
}
END_TEST

/* A listener "mqtt" with ${body} in place of cert. */
#define TLS_LISTENER(body) TICKETS "listeners = ( { name = \"mqtt\"; " \
	"listen = \"127.0.0.1:8883\"; backend = \"127.0.0.1:1883\";\n" body " } );\n"

START_TEST(test_certificates_list)
{
	struct settings *s = tl_load_ok(TLS_LISTENER(
	    "certificates = ( { cert = \"@DIR@/cert.pem\"; },\n"
	    "  { cert = \"@DIR@/cert.pem\"; key = \"@DIR@/key.pem\";\n"
	    "    names = [ \"a.example\", \"*.b.example\" ]; ocsp_response = \"@DIR@/a.ocsp\"; } );\n"
	    "sni_strict = true; alpn = [ \"mqtt\", \"http/1.1\" ]; alpn_required = true;\n"
	    "routes = ( { alpn = \"http/1.1\"; backend = \"127.0.0.1:8080\"; },\n"
	    "  { sni = \"*.b.example\"; alpn = \"mqtt\"; backend = \"[::1]:1884\";\n"
	    "    proxy_protocol = \"v2\"; backend_connect_rate = 5; } );"));
	struct listener_settings *l = &s->listeners[0], copy;

	ck_assert_uint_eq(l->ncertificates, 2);
	ck_assert(l->certificates_listed);
	ck_assert_str_eq(l->certificates[0].key, l->certificates[0].cert);
	ck_assert_ptr_null(l->certificates[0].names);
	ck_assert_ptr_null(l->certificates[0].ocsp_response);
	ck_assert_uint_eq(l->certificates[1].nnames, 2);
	ck_assert_str_eq(l->certificates[1].names[1], "*.b.example");
	ck_assert_ptr_nonnull(strstr(l->certificates[1].ocsp_response, "/a.ocsp"));
	ck_assert_int_eq(l->certificates[1].where.line, 4);
	ck_assert(l->sni_strict && l->alpn_required);
	ck_assert_uint_eq(l->nalpn, 2);
	ck_assert_str_eq(l->alpn[0], "mqtt");
	ck_assert_uint_eq(l->nroutes, 2);
	ck_assert_str_eq(l->routes[0].alpn, "http/1.1");
	ck_assert_ptr_null(l->routes[0].sni);
	ck_assert_int_eq(l->routes[0].proxy_protocol, PROXY_PROTOCOL_OFF);
	ck_assert_int_eq(l->routes[0].backend.port, 8080);
	ck_assert_str_eq(l->routes[1].sni, "*.b.example");
	ck_assert_int_eq(l->routes[1].proxy_protocol, PROXY_PROTOCOL_V2);
	ck_assert_int_eq(l->routes[1].backend_connect_rate, 5);

	/* A deep copy: it outlives the settings. */
	ck_assert_int_eq(listener_settings_copy(&copy, l), 0);
	settings_free(s);
	ck_assert_str_eq(copy.certificates[1].names[0], "a.example");
	ck_assert_str_eq(copy.alpn[1], "http/1.1");
	ck_assert_str_eq(copy.routes[1].sni, "*.b.example");
	ck_assert_int_eq(copy.routes[1].where.line, 0);
	listener_settings_clear(&copy);
}
END_TEST

START_TEST(test_certificates_errors)
{
	load_expect(TLS_LISTENER("cert = \"@DIR@/cert.pem\";\n"
	    "certificates = ( { cert = \"@DIR@/cert.pem\"; } );"), 3,
	    "listeners[0].cert: cannot be used with certificates");
	load_expect(TLS_LISTENER("certificates = ( );"), 3,
	    "listeners[0].certificates: empty (a list of groups");
	load_expect(TLS_LISTENER("certificates = ( { key = \"@DIR@/key.pem\"; } );"), 3,
	    "listeners[0].certificates[0].cert: missing required setting");
	load_expect(TLS_LISTENER("certificates = ( { cert = \"@DIR@/cert.pem\";\n"
	    "names = [ \"a..example\" ]; } );"), 4,
	    "listeners[0].certificates[0].names[0]: \"a..example\" has an empty or too long label");
	load_expect(TLS_LISTENER("certificates = ( { cert = \"@DIR@/cert.pem\";\n"
	    "names = [ \"f*.example\" ]; } );"), 4, "is not a DNS name");
	load_expect(TLS_LISTENER("certificates = ( { cert = \"@DIR@/cert.pem\";\n"
	    "names = [ 7 ]; } );"), 4, "names[0]: expected a non-empty string, got an integer");
	load_expect(TLS_LISTENER("cert = \"@DIR@/cert.pem\"; sni_strict = 1;"), 3,
	    "listeners[0].sni_strict: expected true or false");
	load_expect(TLS_LISTENER("cert = \"@DIR@/cert.pem\"; connect_retry = \"yes\";"), 3,
	    "listeners[0].connect_retry: expected true or false");
}
END_TEST

START_TEST(test_alpn_and_routes_errors)
{
	load_expect(TLS_LISTENER("cert = \"@DIR@/cert.pem\"; alpn_required = true;"), 3,
	    "listeners[0].alpn_required: has no effect without alpn");
	load_expect(TLS_LISTENER("cert = \"@DIR@/cert.pem\";\nalpn = [ \"mq tt\" ];"), 4,
	    "listeners[0].alpn[0]: \"mq tt\" has a character that is not printable ASCII");
	load_expect(TLS_LISTENER("cert = \"@DIR@/cert.pem\"; alpn = [ \"mqtt\" ];\n"
	    "routes = ( { alpn = \"h2\"; backend = \"127.0.0.1:1\"; } );"), 4,
	    "listeners[0].routes[0].alpn: \"h2\" is not in the listener's alpn");
	load_expect(TLS_LISTENER("cert = \"@DIR@/cert.pem\";\n"
	    "routes = ( { backend = \"127.0.0.1:1\"; } );"), 4,
	    "listeners[0].routes[0].alpn: a route needs alpn, sni or both");
	load_expect(TLS_LISTENER("cert = \"@DIR@/cert.pem\";\n"
	    "routes = ( { sni = \"a.example\"; } );"), 4,
	    "listeners[0].routes[0].backend: missing required setting");
	load_expect(TLS_LISTENER("cert = \"@DIR@/cert.pem\";\n"
	    "routes = ( { sni = \"a_b\"; backend = \"127.0.0.1:1\"; } );"), 4,
	    "listeners[0].routes[0].sni: \"a_b\" is not a DNS name");
	load_expect(TLS_LISTENER("cert = \"@DIR@/cert.pem\";\n"
	    "routes = ( { sni = \"a.example\"; backend = \"127.0.0.1:1\";\n"
	    "proxy_protocol_client_cert = true; } );"), 5,
	    "listeners[0].routes[0].proxy_protocol_client_cert: needs proxy_protocol = \"v2\"");
	load_expect(TLS_LISTENER("cert = \"@DIR@/cert.pem\";\n"
	    "routes = ( { sni = \"a.example\"; backend = \"127.0.0.1:1\"; weight = 2; } );"), 4,
	    "listeners[0].routes[0].weight: unknown setting (allowed: alpn, sni, backend, "
	    "proxy_protocol, proxy_protocol_client_cert, backend_connect_rate, "
	    "backend_max_connecting)");
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *ok = tcase_create("valid");
	TCase *seeds = tcase_create("seeds");
	TCase *bad = tcase_create("invalid");
	TCase *files = tcase_create("files");
	TCase *get = tcase_create("config_get");

	tcase_add_checked_fixture(ok, setup, tl_teardown);
	tcase_add_test(ok, test_minimal);
	tcase_add_test(ok, test_defaults);
	tcase_add_test(ok, test_every_setting);
	tcase_add_test(ok, test_log_levels);
	tcase_add_test(ok, test_ticket_modes_without_seed);
	tcase_add_test(ok, test_duration_forms);
	tcase_add_test(ok, test_include);
	tcase_add_test(ok, test_example_config);
	tcase_add_test(ok, test_group_readable_key_allowed);
	tcase_add_test(ok, test_settings_free);
	tcase_add_test(ok, test_metrics);
	tcase_add_test(ok, test_listener_settings_copy);
	tcase_add_test(ok, test_certificates_list);
	suite_add_tcase(s, ok);

	tcase_add_checked_fixture(seeds, setup, tl_teardown);
	tcase_add_test(seeds, test_seed_newline_stripped_once);
	tcase_add_test(seeds, test_seed_too_short);
	tcase_add_test(seeds, test_seed_too_long);
	tcase_add_test(seeds, test_seed_file_mode);
	tcase_add_test(seeds, test_seed_file_missing);
	tcase_add_test(seeds, test_seed_both);
	tcase_add_test(seeds, test_no_seed);
	tcase_add_test(seeds, test_lifetime_over_grace);
	tcase_add_test(seeds, test_decrypt_window);
	tcase_add_test(seeds, test_stateful_needs_cache);
	suite_add_tcase(s, seeds);

	tcase_add_checked_fixture(bad, setup, tl_teardown);
	tcase_add_test(bad, test_bad_types);
	tcase_add_test(bad, test_out_of_range);
	tcase_add_test(bad, test_bad_durations);
	tcase_add_test(bad, test_bad_choices);
	tcase_add_test(bad, test_user_and_group);
	tcase_add_test(bad, test_unknown_settings);
	tcase_add_test(bad, test_unused_settings_known);
	tcase_add_test(bad, test_missing_required);
	tcase_add_test(bad, test_names);
	tcase_add_test(bad, test_duplicate_name);
	tcase_add_test(bad, test_duplicate_listen);
	tcase_add_test(bad, test_bad_addresses);
	tcase_add_test(bad, test_bad_metrics);
	tcase_add_test(bad, test_protocols);
	tcase_add_test(bad, test_empty_ciphers);
	tcase_add_test(bad, test_verify_client_needs_ca);
	tcase_add_test(bad, test_crl_needs_verification);
	tcase_add_test(bad, test_unreadable_files);
	tcase_add_test(bad, test_certificates_errors);
	tcase_add_test(bad, test_alpn_and_routes_errors);
	suite_add_tcase(s, bad);

	tcase_add_checked_fixture(files, setup, tl_teardown);
	tcase_add_test(files, test_syntax_error);
	tcase_add_test(files, test_include_not_a_file);
	tcase_add_test(files, test_missing_file);
	tcase_add_test(files, test_all_errors_in_one_pass);
	tcase_add_test(files, test_errors_api);
	suite_add_tcase(s, files);

	tcase_add_checked_fixture(get, setup, tl_teardown);
	tcase_add_test(get, test_get_close_lists_asked);
	tcase_add_test(get, test_get_close_absent_group);
	tcase_add_test(get, test_get_asked_limit);
	suite_add_tcase(s, get);
	return s;
}

int
main(void)
{
	return tl_run(config_suite());
}
