/*
 * check_route: the first route whose alpn and sni both match wins, a route
 * without one matches any value (or none) of it, sni matches as
 * certificate names do (exact, "*.rest" for one label, without case), and
 * nothing matching gives -1; the routes come from a real configuration.
 * A route is the same across a reload by its backend; a gate's pacer
 * takes the route's limits, and its counters stay out of the totals.
 * A listener has at most 1000 routes.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "testlib.h"
#include "../../src/config.h"
#include "../../src/pacer.h"
#include "../../src/route.h"
#include "../../src/stats.h"

#define TICKETS "tickets = { seed_file = \"@DIR@/ticket.seed\"; };\n"
#define ROUTE(match, port) "{ " match " backend = \"127.0.0.1:" port "\"; }"

/* Routes 0-4, with alpn mqtt, x-http and h2 offered. */
static const char *const ROUTES =
    TICKETS
    "listeners = ( { name = \"l\"; listen = \"127.0.0.1:8883\"; "
    "backend = \"127.0.0.1:1883\"; cert = \"@DIR@/cert.pem\";\n"
    "alpn = [ \"mqtt\", \"x-http\", \"h2\" ];\n"
    "routes = ( " ROUTE("alpn = \"mqtt\"; sni = \"iot.example.com\";", "1000") ",\n"
    ROUTE("alpn = \"mqtt\";", "1001") ",\n"
    ROUTE("sni = \"*.web.example.com\";", "1002") ",\n"
    ROUTE("alpn = \"x-http\";", "1003") ",\n"
    ROUTE("alpn = \"x-http\"; sni = \"late.example.com\";", "1004") " ); } );\n";

static struct settings *settings;
static const struct listener_settings *ls;

static void
setup(void)
{
	tl_setup();
	tl_placeholders();
	settings = tl_load_ok(ROUTES);
	ls = &settings->listeners[0];
	ck_assert_uint_eq(ls->nroutes, 5);
}

static void
teardown(void)
{
	settings_free(settings);
	tl_teardown();
}

static int
match(const char *proto, const char *servername)
{
	return route_match(ls->routes, ls->nroutes, (const unsigned char *)proto,
	    proto != NULL ? strlen(proto) : 0, servername);
}

START_TEST(test_first_match_wins)
{
	/* Both set: both must match; else the next route that does. */
	ck_assert_int_eq(match("mqtt", "iot.example.com"), 0);
	ck_assert_int_eq(match("mqtt", "IOT.Example.COM"), 0);
	ck_assert_int_eq(match("mqtt", "other.example.com"), 1);
	ck_assert_int_eq(match("mqtt", NULL), 1);
	/* The sni-only route takes any protocol, or none, ahead of route 3. */
	ck_assert_int_eq(match("x-http", "a.web.example.com"), 2);
	ck_assert_int_eq(match(NULL, "a.web.example.com"), 2);
	ck_assert_int_eq(match("mqtt", "a.web.example.com"), 1);
	/* Route 4 comes after route 3, which takes everything it would. */
	ck_assert_int_eq(match("x-http", "late.example.com"), 3);
	ck_assert_int_eq(match("x-http", NULL), 3);
}
END_TEST

START_TEST(test_no_match)
{
	/* h2 is offered, but no route names it; no ALPN and no SNI at all. */
	ck_assert_int_eq(match("h2", "iot.example.com"), -1);
	ck_assert_int_eq(match(NULL, NULL), -1);
	ck_assert_int_eq(match(NULL, "iot.example.com"), -1);
	/* The wildcard stands for one label only, and not for the bare name. */
	ck_assert_int_eq(match("h2", "a.b.web.example.com"), -1);
	ck_assert_int_eq(match("h2", "web.example.com"), -1);
	/* A protocol is compared whole, by its length too. */
	ck_assert_int_eq(match("mqt", NULL), -1);
	ck_assert_int_eq(route_match(ls->routes, ls->nroutes,
	    (const unsigned char *)"mqttx", 4, NULL), 1);
	ck_assert_int_eq(route_match(NULL, 0, (const unsigned char *)"mqtt", 4,
	    "iot.example.com"), -1);
}
END_TEST

START_TEST(test_same_across_reload)
{
	struct route_settings a = ls->routes[0], b = ls->routes[0];

	ck_assert_int_eq(route_same(&a, &b), 1);
	/* What it matches may change; its backend may not. */
	b.alpn = NULL;
	b.sni = "another.example.com";
	ck_assert_int_eq(route_same(&a, &b), 1);
	b.backend.port++;
	ck_assert_int_eq(route_same(&a, &b), 0);
	b = a;
	strcpy(b.backend.host, "broker.example.com");
	ck_assert_int_eq(route_same(&a, &b), 0);
	strcpy(a.backend.host, "BROKER.example.com");
	ck_assert_int_eq(route_same(&a, &b), 1);
}
END_TEST

START_TEST(test_gate)
{
	struct event_base *base = event_base_new();
	struct route_settings r = ls->routes[1];
	struct route_gate *g;
	uint64_t total = stats_get(STAT_BACKEND_FAILED);

	ck_assert_ptr_nonnull(base);
	g = route_gate_new(base);
	ck_assert_ptr_nonnull(g);
	ck_assert_int_eq(pacer_limited(route_gate_pacer(g)), 0);
	r.backend_max_connecting = 1;
	route_gate_configure(g, &r);
	ck_assert_int_eq(pacer_limited(route_gate_pacer(g)), 1);

	/* One slot: the second connect waits until the first leaves. */
	struct pacer_wait w1 = { 0 }, w2 = { 0 };
	ck_assert_int_eq(pacer_enter(route_gate_pacer(g), &w1, 1, 0), PACER_GO);
	ck_assert_int_eq(pacer_enter(route_gate_pacer(g), &w2, 2, 0), PACER_WAIT);
	ck_assert_uint_eq(pacer_queued(route_gate_pacer(g)), 1);
	ck_assert_int_eq(pacer_cancel(route_gate_pacer(g), &w2), 1);
	pacer_leave(route_gate_pacer(g));

	/* Its counters are its own and left out of the totals. */
	stats_count(route_gate_stats(g), STAT_BACKEND_FAILED, 2);
	ck_assert_uint_eq(stats_value(route_gate_stats(g), STAT_BACKEND_FAILED), 2);
	ck_assert_uint_eq(stats_get(STAT_BACKEND_FAILED), total);

	/* A second reference keeps it; the last frees it (ASan would tell). */
	ck_assert_ptr_eq(route_gate_ref(g), g);
	route_gate_unref(g);
	ck_assert_uint_eq(stats_value(route_gate_stats(g), STAT_BACKEND_FAILED), 2);
	route_gate_unref(g);
	route_gate_unref(NULL);
	event_base_free(base);
}
END_TEST

/* A listener with ${n} routes, good but for their number; free() it. */
static char *
many_routes(int n)
{
	char *text = NULL;
	size_t len;
	FILE *f = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(f);
	fprintf(f, TICKETS "listeners = ( { name = \"l\"; listen = \"127.0.0.1:8883\"; "
	    "backend = \"127.0.0.1:1883\"; cert = \"@DIR@/cert.pem\";\n"
	    "alpn = [ \"mqtt\" ];\nroutes = (");
	for (int i = 0; i < n; i++)
		fprintf(f, "%s{ alpn = \"mqtt\"; backend = \"127.0.0.1:%d\"; }", i ? ", " : "",
		    2000 + i);
	fprintf(f, " ); } );\n");
	ck_assert_int_eq(fclose(f), 0);
	return text;
}

START_TEST(test_at_most_1000)
{
	struct config_errors errs = { 0 };
	char *text = many_routes(1001);

	tl_load_fail(text, &errs);
	tl_assert_error(&errs, 4, "listeners[0].routes: 1001 routes (at most 1000)");
	config_errors_clear(&errs);
	free(text);
	text = many_routes(1000);
	settings_free(tl_load_ok(text));
	free(text);
}
END_TEST

static Suite *
route_suite(void)
{
	Suite *s = suite_create("route");
	TCase *tc = tcase_create("route");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_first_match_wins);
	tcase_add_test(tc, test_no_match);
	tcase_add_test(tc, test_same_across_reload);
	tcase_add_test(tc, test_gate);
	tcase_add_test(tc, test_at_most_1000);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(route_suite());
}
