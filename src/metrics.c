/*
 * metrics: GET /metrics in Prometheus' text format, served by evhttp on a
 * thread of its own.
 *
 * Every series is written on every scrape, zeros included, so that rate()
 * and absent() work from the first scrape.  Series named by the
 * configuration (ALPN protocols, routes) are those in force: a reload
 * that keeps a protocol or a route keeps its counts.  Counters are read one by one
 * without a lock; a scrape racing a handshake may see it in one counter
 * and not yet in another, which Prometheus tolerates.  The few values the
 * main thread owns (ticket fingerprints, reload results) are copied under
 * a mutex.  Label values are escaped although listener names and
 * fingerprints never need it.
 *
 * accept() failing for want of descriptors (EMFILE, ENFILE) pauses the
 * listener for a moment: libevent's listener is level-triggered, and left
 * alone it would wake again at once for the same connection, spinning a
 * core and logging every failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "asn1_time.h"
#include "cert_store.h"
#include "crl.h"
#include "log.h"
#include "metrics.h"
#include "ocsp.h"
#include "pacer.h"
#include "route.h"
#include "service.h"
#include "stats.h"
#include "ticket_keys.h"

#define CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8"
#define HTTP_TIMEOUT	10	/* seconds for a scraper to send its request */
#define ACCEPT_PAUSE_MS	100	/* the listener rests this long after accept() fails */
#define MAX_HEADERS	8192

struct metrics {
	struct listener **listeners;
	size_t nlisteners;
	int fd;				/* until evhttp owns it */
	struct event_base *base;
	struct evhttp *http;
	struct event *stop;		/* made active by metrics_free() */
	pthread_t thread;
	int running;
	double start_time;
	/* Set by the main thread, read by scrapes. */
	pthread_mutex_t lock;
	int stateless;
	char fingerprint[TICKET_FINGERPRINT_LEN + 1];
	char previous[TICKET_FINGERPRINT_LEN + 1];
	uint64_t period;
	int last_reload_ok;
	double last_reload_time;	/* the last configuration loaded */
};

/* A copy of the main thread's part, taken at the start of a scrape. */
struct state {
	int stateless;
	char fingerprint[TICKET_FINGERPRINT_LEN + 1];
	char previous[TICKET_FINGERPRINT_LEN + 1];
	uint64_t period;
	int last_reload_ok;
	double last_reload_time;
};

static const struct {
	enum stat_counter counter;
	const char *version, *kind;
} handshakes[] = {
	{ STAT_HANDSHAKE_FULL_TLS12, "TLSv1.2", "full" },
	{ STAT_RESUMED_TLS12_TICKET_CURRENT, "TLSv1.2", "ticket_current" },
	{ STAT_RESUMED_TLS12_TICKET_GRACE, "TLSv1.2", "ticket_grace" },
	{ STAT_RESUMED_TLS12_TICKET_PREVIOUS_SEED, "TLSv1.2", "ticket_previous_seed" },
	{ STAT_RESUMED_TLS12_SESSION_ID, "TLSv1.2", "session_id" },
	{ STAT_HANDSHAKE_FULL_TLS13, "TLSv1.3", "full" },
	{ STAT_RESUMED_TLS13_TICKET_CURRENT, "TLSv1.3", "ticket_current" },
	{ STAT_RESUMED_TLS13_TICKET_GRACE, "TLSv1.3", "ticket_grace" },
	{ STAT_RESUMED_TLS13_TICKET_PREVIOUS_SEED, "TLSv1.3", "ticket_previous_seed" },
	{ STAT_RESUMED_TLS13_STATEFUL, "TLSv1.3", "stateful_ticket" },
};

struct labelled_counter {
	enum stat_counter counter;
	const char *label;
};

static const struct labelled_counter failures[] = {
	{ STAT_HANDSHAKE_FAILED, "error" },
	{ STAT_HANDSHAKE_REVOKED, "revoked" },
	{ STAT_HANDSHAKE_TIMEOUT, "timeout" },
	{ STAT_HANDSHAKE_CLIENT_CLOSED, "client_closed" },
}, rejections[] = {
	{ STAT_TICKET_REJECTED_UNKNOWN, "unknown_key" },
	{ STAT_TICKET_REJECTED_EXPIRED, "expired" },
	{ STAT_TICKET_REJECTED_MALFORMED, "malformed" },
	{ STAT_TICKET_REJECTED_POLICY, "policy" },
	{ STAT_TICKET_REJECTED_CERT_EXPIRED, "cert_expired" },
	{ STAT_TICKET_REJECTED_TOO_OLD, "too_old" },
	{ STAT_TICKET_REJECTED_REVOKED, "revoked" },
}, directions[] = {
	{ STAT_BYTES_CLIENT_TO_BACKEND, "client_to_backend" },
	{ STAT_BYTES_BACKEND_TO_CLIENT, "backend_to_client" },
}, reloads[] = {
	{ STAT_RELOAD_OK, "ok" },
	{ STAT_RELOAD_FAILED, "failed" },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static double
wall_time(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- The exposition format ---------------------------------------------- */

/* "# HELP" and "# TYPE" lines of a metric family. */
static void
family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* ${v} as a label value: backslash, double quote and newline escaped. */
static const char *
label(const char *v, char *buf, size_t len)
{
	size_t o = 0;

	for (; *v != '\0' && o + 3 < len; v++) {
		if (*v == '\\' || *v == '"' || *v == '\n') {
			buf[o++] = '\\';
			buf[o++] = *v == '\n' ? 'n' : *v;
		} else
			buf[o++] = *v;
	}
	buf[o] = '\0';
	return buf;
}

/* One series per listener and table entry: NAME{listener="..",KEY=".."} N */
static void
write_per_listener(struct metrics *m, struct evbuffer *b, const char *metric,
    const char *key, const struct labelled_counter *t, size_t n)
{
	char name[160];

	for (size_t i = 0; i < m->nlisteners; i++) {
		label(listener_name(m->listeners[i]), name, sizeof(name));
		for (size_t j = 0; j < n; j++)
			evbuffer_add_printf(b, "%s{listener=\"%s\",%s=\"%s\"} %llu\n", metric,
			    name, key, t[j].label, (unsigned long long)
			    stats_value(listener_stats(m->listeners[i]), t[j].counter));
	}
}

static void
write_connections(struct metrics *m, struct evbuffer *b)
{
	char name[160];
	size_t i;

	family(b, "tlsproxy_connections_open", "gauge",
	    "Client connections open now: in the handshake, connecting or relaying.");
	for (i = 0; i < m->nlisteners; i++)
		evbuffer_add_printf(b, "tlsproxy_connections_open{listener=\"%s\"} %ld\n",
		    label(listener_name(m->listeners[i]), name, sizeof(name)),
		    listener_connections(m->listeners[i]));
	family(b, "tlsproxy_connections_total", "counter", "Client connections accepted.");
	for (i = 0; i < m->nlisteners; i++)
		evbuffer_add_printf(b, "tlsproxy_connections_total{listener=\"%s\"} %llu\n",
		    label(listener_name(m->listeners[i]), name, sizeof(name)),
		    (unsigned long long)stats_value(listener_stats(m->listeners[i]),
		    STAT_CONN_ACCEPTED));
	family(b, "tlsproxy_connections_refused_total", "counter",
	    "Client connections closed at once because max_connections were open.");
	for (i = 0; i < m->nlisteners; i++)
		evbuffer_add_printf(b, "tlsproxy_connections_refused_total{listener=\"%s\","
		    "reason=\"max_connections\"} %llu\n",
		    label(listener_name(m->listeners[i]), name, sizeof(name)),
		    (unsigned long long)stats_value(listener_stats(m->listeners[i]),
		    STAT_CONN_REFUSED_LIMIT));
	family(b, "tlsproxy_max_connections", "gauge",
	    "The max_connections setting in force for new connections.");
	for (i = 0; i < m->nlisteners; i++) {
		struct service *svc = listener_service(m->listeners[i]);

		evbuffer_add_printf(b, "tlsproxy_max_connections{listener=\"%s\"} %lld\n",
		    label(listener_name(m->listeners[i]), name, sizeof(name)),
		    (long long)svc->settings.max_connections);
		service_unref(svc);
	}
}

static void
write_handshakes(struct metrics *m, struct evbuffer *b)
{
	char name[160];
	size_t i, j;

	family(b, "tlsproxy_handshakes_total", "counter", "TLS handshakes completed, by "
	    "protocol version and kind: full, or resumed from a ticket (current key, "
	    "grace key, previous seed), a session ID or a stateful ticket.");
	for (i = 0; i < m->nlisteners; i++)
		for (j = 0; j < NELEM(handshakes); j++)
			evbuffer_add_printf(b, "tlsproxy_handshakes_total{listener=\"%s\","
			    "version=\"%s\",kind=\"%s\"} %llu\n",
			    label(listener_name(m->listeners[i]), name, sizeof(name)),
			    handshakes[j].version, handshakes[j].kind, (unsigned long long)
			    stats_value(listener_stats(m->listeners[i]), handshakes[j].counter));
	family(b, "tlsproxy_handshake_failures_total", "counter", "TLS handshakes that did "
	    "not complete: a TLS error, a client certificate revoked by the CRL, "
	    "handshake_timeout, or the client closed first.");
	write_per_listener(m, b, "tlsproxy_handshake_failures_total", "reason", failures,
	    NELEM(failures));
	/* A cached session's lifetime ends at its certificate's notAfter and at
	 * max_session_age, so the cache drops it before a rule could refuse it
	 * as cert_expired or too_old. */
	family(b, "tlsproxy_ticket_rejections_total", "counter", "Session tickets (and, "
	    "for policy and revoked, cached sessions: TLS 1.2 session IDs, stateful "
	    "TLS 1.3 tickets) offered but not accepted (the client got a full "
	    "handshake), by reason.");
	for (j = 0; j < NELEM(rejections); j++)
		evbuffer_add_printf(b, "tlsproxy_ticket_rejections_total{reason=\"%s\"} %llu\n",
		    rejections[j].label,
		    (unsigned long long)stats_value(NULL, rejections[j].counter));
}

/* One histogram series of ${st}'s ${timing}, in seconds; ${labels} are its own. */
static void
write_histogram_series(struct evbuffer *b, const char *metric, const char *labels,
    const struct stats *st, enum stat_timing timing)
{
	uint64_t buckets[STATS_TIME_BUCKETS], sum, count;

	stats_histogram(st, timing, buckets, &sum, &count);
	for (size_t j = 0; j < STATS_TIME_BUCKETS; j++)
		evbuffer_add_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", metric, labels,
		    (double)stats_time_bound(j) / 1e6, (unsigned long long)buckets[j]);
	evbuffer_add_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", metric, labels,
	    (unsigned long long)count);
	evbuffer_add_printf(b, "%s_sum{%s} %.6f\n", metric, labels, (double)sum / 1e6);
	evbuffer_add_printf(b, "%s_count{%s} %llu\n", metric, labels, (unsigned long long)count);
}

/* One histogram family of ${timing}, a series per listener, in seconds. */
static void
write_histogram(struct metrics *m, struct evbuffer *b, const char *metric,
    enum stat_timing timing, const char *help)
{
	char name[160], labels[200];

	family(b, metric, "histogram", help);
	for (size_t i = 0; i < m->nlisteners; i++) {
		snprintf(labels, sizeof(labels), "listener=\"%s\"",
		    label(listener_name(m->listeners[i]), name, sizeof(name)));
		write_histogram_series(b, metric, labels, listener_stats(m->listeners[i]), timing);
	}
}

/* A counter family with one series per listener: NAME{listener=".."} N */
static void
write_listener_counter(struct metrics *m, struct evbuffer *b, const char *metric,
    enum stat_counter counter, const char *help)
{
	char name[160];

	family(b, metric, "counter", help);
	for (size_t i = 0; i < m->nlisteners; i++)
		evbuffer_add_printf(b, "%s{listener=\"%s\"} %llu\n", metric,
		    label(listener_name(m->listeners[i]), name, sizeof(name)),
		    (unsigned long long)stats_value(listener_stats(m->listeners[i]), counter));
}

/* A gauge family of how many wait in a listener's pacer. */
static void
write_waiting(struct metrics *m, struct evbuffer *b, const char *metric,
    struct pacer *(*pacer_of)(const struct listener *), const char *help)
{
	char name[160];

	family(b, metric, "gauge", help);
	for (size_t i = 0; i < m->nlisteners; i++)
		evbuffer_add_printf(b, "%s{listener=\"%s\"} %llu\n", metric,
		    label(listener_name(m->listeners[i]), name, sizeof(name)),
		    (unsigned long long)pacer_queued(pacer_of(m->listeners[i])));
}

/* full_handshake_rate, backend_connect_rate and backend_max_connecting at work. */
static void
write_pacing(struct metrics *m, struct evbuffer *b)
{
	write_listener_counter(m, b, "tlsproxy_full_handshakes_admitted_total",
	    STAT_FULL_ADMITTED, "Full handshakes that began their key exchange and "
	    "signature, at once or after waiting for full_handshake_rate.");
	write_listener_counter(m, b, "tlsproxy_full_handshakes_deferred_total",
	    STAT_FULL_DEFERRED, "Full handshakes that had to wait for full_handshake_rate.");
	write_listener_counter(m, b, "tlsproxy_full_handshakes_dropped_total",
	    STAT_FULL_DROPPED, "Full handshakes closed while waiting: handshake_timeout "
	    "passed, or the client left.");
	write_waiting(m, b, "tlsproxy_full_handshakes_waiting", listener_admission,
	    "Full handshakes waiting for full_handshake_rate now.");
	write_histogram(m, b, "tlsproxy_full_handshake_wait_seconds", STAT_TIME_FULL_WAIT,
	    "How long deferred full handshakes waited before they began.");
	write_listener_counter(m, b, "tlsproxy_backend_connects_deferred_total",
	    STAT_BACKEND_DEFERRED, "Backend connects that had to wait for "
	    "backend_connect_rate or backend_max_connecting.");
	write_listener_counter(m, b, "tlsproxy_backend_connects_dropped_total",
	    STAT_BACKEND_DROPPED, "Connections closed while waiting for their backend "
	    "connect: connect_timeout passed, or the client left.");
	write_waiting(m, b, "tlsproxy_backend_connects_waiting", listener_backend_pacer,
	    "Connections waiting for their backend connect to begin now.");
	write_histogram(m, b, "tlsproxy_backend_connect_wait_seconds", STAT_TIME_BACKEND_WAIT,
	    "How long deferred backend connects waited before they began.");
}

static void
write_backend(struct metrics *m, struct evbuffer *b)
{
	write_listener_counter(m, b, "tlsproxy_backend_connect_failures_total",
	    STAT_BACKEND_FAILED, "Connections closed because their backend connect failed or "
	    "timed out (connect_timeout), the retries of connect_retry included.");
	write_listener_counter(m, b, "tlsproxy_backend_connect_retries_total",
	    STAT_BACKEND_RETRIED, "Backend connects that failed and were tried again "
	    "(connect_retry).");
	write_histogram(m, b, "tlsproxy_backend_connect_seconds", STAT_TIME_BACKEND_CONNECT,
	    "Time from the start of a connection's first backend connect (name resolution "
	    "and retries included) to the connection, for connections that got one.");
	family(b, "tlsproxy_bytes_total", "counter", "Bytes relayed: written to the backend "
	    "(a PROXY protocol header included) and written to clients (before encryption).");
	write_per_listener(m, b, "tlsproxy_bytes_total", "direction", directions,
	    NELEM(directions));
}

/*
 * Handshakes by the protocol ALPN chose: one series per protocol a
 * listener offers now and one for none, so that clients cannot make up
 * label values.
 */
static void
write_alpn(struct metrics *m, struct evbuffer *b, struct service **svcs)
{
	char name[160], proto[600];

	family(b, "tlsproxy_handshakes_by_alpn_total", "counter", "TLS handshakes completed, "
	    "by the application protocol ALPN chose: one of the listener's alpn, or none.");
	for (size_t i = 0; i < m->nlisteners; i++) {
		const struct listener_settings *ls = &svcs[i]->settings;

		label(listener_name(m->listeners[i]), name, sizeof(name));
		for (size_t j = 0; j < ls->nalpn; j++)
			evbuffer_add_printf(b, "tlsproxy_handshakes_by_alpn_total{listener=\"%s\","
			    "alpn=\"%s\"} %llu\n", name, label(ls->alpn[j], proto, sizeof(proto)),
			    (unsigned long long)stats_counter_value(svcs[i]->alpn_counts[j]));
		evbuffer_add_printf(b, "tlsproxy_handshakes_by_alpn_total{listener=\"%s\","
		    "alpn=\"none\"} %llu\n", name, (unsigned long long)stats_value(
		    listener_stats(m->listeners[i]), STAT_HANDSHAKE_NO_ALPN));
	}
}

/* The labels of route ${r} (position ${i}) of listener ${l}: its identity. */
static const char *
route_labels(const struct listener *l, size_t i, const struct route_settings *r, char *buf,
    size_t len)
{
	char name[160], host[600];

	snprintf(buf, len, "listener=\"%s\",route=\"%zu\",backend=\"%s:%u\"",
	    label(listener_name(l), name, sizeof(name)), i,
	    label(r->backend.host, host, sizeof(host)), r->backend.port);
	return buf;
}

/* A counter family with one series per route of every listener. */
static void
write_route_counter(struct metrics *m, struct evbuffer *b, struct service **svcs,
    const char *metric, enum stat_counter counter, const char *help)
{
	char labels[1024];

	family(b, metric, "counter", help);
	for (size_t i = 0; i < m->nlisteners; i++)
		for (size_t j = 0; j < svcs[i]->settings.nroutes; j++)
			evbuffer_add_printf(b, "%s{%s} %llu\n", metric, route_labels(m->listeners[i],
			    j, &svcs[i]->settings.routes[j], labels, sizeof(labels)),
			    (unsigned long long)stats_value(route_gate_stats(svcs[i]->gates[j]),
			    counter));
}

/*
 * The routes in force, each with the listener's backend figures of its
 * own; the listener's families count its routes' connects too.  Left out
 * when no listener has routes.
 */
static void
write_routes(struct metrics *m, struct evbuffer *b, struct service **svcs)
{
	const char *metric = "tlsproxy_route_backend_connect_wait_seconds";
	char labels[1024];
	size_t i, j, any = 0;

	for (i = 0; i < m->nlisteners; i++)
		any += svcs[i]->settings.nroutes;
	if (any == 0)
		return;
	write_route_counter(m, b, svcs, "tlsproxy_route_connections_total", STAT_CONN_ACCEPTED,
	    "Connections that took the route (the first whose alpn and sni matched).");
	write_route_counter(m, b, svcs, "tlsproxy_route_backend_connect_failures_total",
	    STAT_BACKEND_FAILED, "The route's backend connects that failed or timed out.");
	write_route_counter(m, b, svcs, "tlsproxy_route_backend_connect_retries_total",
	    STAT_BACKEND_RETRIED, "The route's backend connects that failed and were tried "
	    "again.");
	write_route_counter(m, b, svcs, "tlsproxy_route_backend_connects_deferred_total",
	    STAT_BACKEND_DEFERRED, "The route's backend connects that had to wait for its "
	    "backend_connect_rate or backend_max_connecting.");
	write_route_counter(m, b, svcs, "tlsproxy_route_backend_connects_dropped_total",
	    STAT_BACKEND_DROPPED, "Connections of the route closed while waiting for their "
	    "backend connect: connect_timeout passed, or the client left.");
	family(b, "tlsproxy_route_backend_connects_waiting", "gauge",
	    "Connections of the route waiting for their backend connect to begin now.");
	for (i = 0; i < m->nlisteners; i++)
		for (j = 0; j < svcs[i]->settings.nroutes; j++)
			evbuffer_add_printf(b, "tlsproxy_route_backend_connects_waiting{%s} %llu\n",
			    route_labels(m->listeners[i], j, &svcs[i]->settings.routes[j], labels,
			    sizeof(labels)), (unsigned long long)pacer_queued(
			    route_gate_pacer(svcs[i]->gates[j])));
	family(b, metric, "histogram", "How long the route's deferred backend connects "
	    "waited before they began.");
	for (i = 0; i < m->nlisteners; i++)
		for (j = 0; j < svcs[i]->settings.nroutes; j++)
			write_histogram_series(b, metric, route_labels(m->listeners[i], j,
			    &svcs[i]->settings.routes[j], labels, sizeof(labels)),
			    route_gate_stats(svcs[i]->gates[j]), STAT_TIME_BACKEND_WAIT);
}

/*
 * Listeners with CRLs that say when they are due: the earliest nextUpdate.
 * The family is left out when no listener has one, as the ticket families
 * are when tickets are not stateless.
 */
static void
write_crl(struct metrics *m, struct evbuffer *b)
{
	char name[160];
	time_t next;
	int any = 0;

	for (size_t i = 0; i < m->nlisteners; i++) {
		struct service *svc = listener_service(m->listeners[i]);

		if ((next = crl_next_update(svc->ctx)) != 0 && !any++)
			family(b, "tlsproxy_crl_next_update_timestamp_seconds", "gauge",
			    "The earliest nextUpdate of the listener's CRLs, in seconds since "
			    "the epoch; a CRL past it still revokes what it lists.");
		if (next != 0)
			evbuffer_add_printf(b, "tlsproxy_crl_next_update_timestamp_seconds"
			    "{listener=\"%s\"} %lld\n", label(listener_name(m->listeners[i]),
			    name, sizeof(name)), (long long)next);
		service_unref(svc);
	}
}

/*
 * One series per certificate entry of every listener: its notAfter
 * (${ocsp} 0), or the nextUpdate of the OCSP response it staples (${ocsp}
 * 1): 0 when it has an ocsp_response but staples nothing (the file was
 * refused), +Inf for a response without nextUpdate, and no series for an
 * entry without ocsp_response.
 */
static void
write_certificate_times(struct metrics *m, struct evbuffer *b, int ocsp)
{
	const struct certificate_settings *c;
	const struct cert_store *cs;
	const struct ocsp_staple *st;
	char name[160], path[1024];
	long long next;
	size_t i, j;
	X509 *cert;

	for (i = 0; i < m->nlisteners; i++) {
		struct service *svc = listener_service(m->listeners[i]);

		cs = cert_store_of(svc->ctx);
		for (j = 0; cs != NULL && j < cert_store_count(cs) &&
		    j < svc->settings.ncertificates; j++) {
			c = &svc->settings.certificates[j];
			cert = cert_store_certificate(cs, j);
			if (ocsp && c->ocsp_response == NULL)
				continue;
			evbuffer_add_printf(b, "%s{listener=\"%s\",certificate=\"%s\"} ", ocsp ?
			    "tlsproxy_ocsp_next_update_timestamp_seconds" :
			    "tlsproxy_certificate_not_after_timestamp_seconds",
			    label(listener_name(m->listeners[i]), name, sizeof(name)),
			    label(c->cert, path, sizeof(path)));
			if (!ocsp)
				evbuffer_add_printf(b, "%lld\n",
				    (long long)asn1_time_seconds(X509_get0_notAfter(cert)));
			else if ((st = ocsp_staple_of(cert)) != NULL &&
			    (next = ocsp_staple_next_update(st)) == 0)
				evbuffer_add_printf(b, "+Inf\n");
			else
				evbuffer_add_printf(b, "%lld\n", st != NULL ? next : 0LL);
		}
		service_unref(svc);
	}
}

/* The OCSP family is left out when no certificate has an ocsp_response. */
static void
write_certificates(struct metrics *m, struct evbuffer *b)
{
	struct evbuffer *series = evbuffer_new();

	family(b, "tlsproxy_certificate_not_after_timestamp_seconds", "gauge",
	    "When each certificate of the listener expires (its notAfter), in seconds since "
	    "the epoch.");
	write_certificate_times(m, b, 0);
	if (series == NULL)
		return;
	write_certificate_times(m, series, 1);
	if (evbuffer_get_length(series) > 0) {
		family(b, "tlsproxy_ocsp_next_update_timestamp_seconds", "gauge",
		    "The nextUpdate of the OCSP response each certificate with an "
		    "ocsp_response staples, in seconds since the epoch; 0: the file was "
		    "refused and nothing is stapled; +Inf: the response has no nextUpdate.  "
		    "Past it, nothing is stapled.");
		evbuffer_add_buffer(b, series);
	}
	evbuffer_free(series);
}

static void
write_process(struct metrics *m, const struct state *st, struct evbuffer *b)
{
	size_t j;

	if (st->stateless) {
		family(b, "tlsproxy_ticket_epoch", "gauge", "The ticket key epoch that "
		    "encrypts new tickets now: unix time / rotation_interval.");
		evbuffer_add_printf(b, "tlsproxy_ticket_epoch %llu\n",
		    (unsigned long long)((uint64_t)time(NULL) / st->period));
		family(b, "tlsproxy_ticket_seed_info", "gauge", "Fingerprints of the ticket "
		    "seeds in force (as logged and printed by tlsproxy -K; never the seed).");
		evbuffer_add_printf(b, "tlsproxy_ticket_seed_info{seed=\"current\","
		    "fingerprint=\"%s\"} 1\n", st->fingerprint);
		if (st->previous[0] != '\0')
			evbuffer_add_printf(b, "tlsproxy_ticket_seed_info{seed=\"previous\","
			    "fingerprint=\"%s\"} 1\n", st->previous);
	}
	family(b, "tlsproxy_config_reloads_total", "counter",
	    "Reloads (SIGHUP) by result: ok, or failed and the previous configuration kept.");
	for (j = 0; j < NELEM(reloads); j++)
		evbuffer_add_printf(b, "tlsproxy_config_reloads_total{result=\"%s\"} %llu\n",
		    reloads[j].label, (unsigned long long)stats_value(NULL, reloads[j].counter));
	family(b, "tlsproxy_config_last_reload_successful", "gauge",
	    "1 if the last reload succeeded (or none was tried), 0 if it failed.");
	evbuffer_add_printf(b, "tlsproxy_config_last_reload_successful %d\n",
	    st->last_reload_ok);
	family(b, "tlsproxy_config_last_reload_timestamp_seconds", "gauge",
	    "When the configuration in force was loaded (start-up or the last good reload).");
	evbuffer_add_printf(b, "tlsproxy_config_last_reload_timestamp_seconds %.3f\n",
	    st->last_reload_time);
	family(b, "tlsproxy_start_time_seconds", "gauge", "When the daemon started, in "
	    "seconds since the epoch.");
	evbuffer_add_printf(b, "tlsproxy_start_time_seconds %.3f\n", m->start_time);
	family(b, "tlsproxy_build_info", "gauge", "The version of tlsproxy.");
	evbuffer_add_printf(b, "tlsproxy_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
}

/* --- HTTP --------------------------------------------------------------- */

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	struct service **svcs;
	struct evbuffer *b;
	struct state st;

	if (path == NULL || strcmp(path, "/metrics") != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, NULL);
		return;
	}
	if ((b = evbuffer_new()) == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, "Out of memory");
		return;
	}
	pthread_mutex_lock(&m->lock);
	st.stateless = m->stateless;
	memcpy(st.fingerprint, m->fingerprint, sizeof(st.fingerprint));
	memcpy(st.previous, m->previous, sizeof(st.previous));
	st.period = m->period;
	st.last_reload_ok = m->last_reload_ok;
	st.last_reload_time = m->last_reload_time;
	pthread_mutex_unlock(&m->lock);

	write_connections(m, b);
	write_handshakes(m, b);
	write_backend(m, b);
	write_pacing(m, b);
	/* One service per listener for the whole scrape: its alpn and routes agree. */
	if ((svcs = calloc(m->nlisteners + 1, sizeof(*svcs))) != NULL) {
		for (size_t i = 0; i < m->nlisteners; i++)
			svcs[i] = listener_service(m->listeners[i]);
		write_alpn(m, b, svcs);
		write_routes(m, b, svcs);
		for (size_t i = 0; i < m->nlisteners; i++)
			service_unref(svcs[i]);
		free(svcs);
	} else
		log_error("metrics: out of memory: the ALPN and route families are left out");
	write_crl(m, b);
	write_certificates(m, b);
	write_process(m, &st, b);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", CONTENT_TYPE);
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}


static void
on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct metrics *m = arg;

	event_base_loopbreak(m->base);
}

static void
on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	evconnlistener_enable(arg);
}

/* Runs on the metrics thread only, which alone touches last_log. */
static void
on_accept_error(struct evconnlistener *lev, void *arg)
{
	static time_t last_log;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	time_t now = time(NULL);

	if (now != last_log) {
		last_log = now;
		log_error("metrics: accept: %s: pausing for %d ms%s", evutil_socket_error_to_string(err),
		    ACCEPT_PAUSE_MS, err == EMFILE || err == ENFILE ?
		    " (raise LimitNOFILE or ulimit -n)" : "");
	}
	evconnlistener_disable(lev);
	/* If the timer cannot be set, the listener stays off until the next
	 * start: better than a core spent on accept(). */
	if (event_base_once(evconnlistener_get_base(lev), -1, EV_TIMEOUT, on_accept_resume,
	    lev, &tv) != 0)
		log_error("metrics: cannot schedule accepting again: scrapes stop until a restart");
}

struct metrics *
metrics_new(const struct hostport *addr, struct listener **listeners, size_t n,
    char *why, size_t whylen)
{
	struct evhttp_bound_socket *bound;
	struct metrics *m;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	m->fd = -1;
	m->listeners = listeners;
	m->nlisteners = n;
	m->start_time = m->last_reload_time = wall_time();
	m->last_reload_ok = 1;
	if ((m->fd = listener_bind_socket(addr, why, whylen)) < 0)
		goto fail;
	if ((m->base = event_base_new()) == NULL || (m->http = evhttp_new(m->base)) == NULL ||
	    (m->stop = event_new(m->base, -1, 0, on_stop, m)) == NULL) {
		snprintf(why, whylen, "cannot set up the HTTP server");
		goto fail;
	}
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_timeout(m->http, HTTP_TIMEOUT);
	evhttp_set_max_headers_size(m->http, MAX_HEADERS);
	evhttp_set_max_body_size(m->http, 0);
	evhttp_set_gencb(m->http, on_request, m);
	if ((bound = evhttp_accept_socket_with_handle(m->http, m->fd)) == NULL) {
		snprintf(why, whylen, "cannot accept connections");
		goto fail;
	}
	m->fd = -1;	/* evhttp closes it when freed */
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(bound), on_accept_error);
	return m;

fail:
	metrics_free(m);
	return NULL;
}

static void *
metrics_main(void *arg)
{
	struct metrics *m = arg;

	event_base_dispatch(m->base);
	/* A scrape may have dropped a service's last reference: OpenSSL state. */
	OPENSSL_thread_stop();
	return NULL;
}

int
metrics_start(struct metrics *m)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&m->thread, NULL, metrics_main, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		log_error("metrics: cannot start a thread: %s", strerror(err));
		return -1;
	}
	m->running = 1;
	return 0;
}

void
metrics_set_tickets(struct metrics *m, const char *fingerprint, const char *previous,
    uint64_t period)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	m->stateless = fingerprint != NULL && period > 0;
	snprintf(m->fingerprint, sizeof(m->fingerprint), "%s", fingerprint ? fingerprint : "");
	snprintf(m->previous, sizeof(m->previous), "%s", previous ? previous : "");
	m->period = period;
	pthread_mutex_unlock(&m->lock);
}

void
metrics_set_reload(struct metrics *m, int ok)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	m->last_reload_ok = ok;
	if (ok)
		m->last_reload_time = wall_time();
	pthread_mutex_unlock(&m->lock);
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	if (m->running) {
		event_active(m->stop, EV_READ, 0);
		pthread_join(m->thread, NULL);
	}
	if (m->http != NULL)
		evhttp_free(m->http);
	if (m->fd >= 0)
		close(m->fd);
	if (m->stop != NULL)
		event_free(m->stop);
	if (m->base != NULL)
		event_base_free(m->base);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
