/*
 * server: start-up, reload and shutdown of the whole daemon.
 *
 * Reload is parse, validate, build, then swap: a new settings file is read
 * and every listener's new service (TLS context included) is built before
 * anything changes; any error leaves the running configuration untouched.
 * Listening addresses are fixed at start-up: a reload that adds, removes or
 * moves a listener is refused (restart to apply it), because a proxy in
 * front of a broker must never silently stop listening where it did.  The
 * metrics address is fixed the same way: monitoring must not go blind.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "fdlimit.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "pacer.h"
#include "privileges.h"
#include "server.h"
#include "service.h"
#include "handshake_pool.h"
#include "stats.h"
#include "tls_ctx.h"
#include "worker.h"

/* Full handshakes yield the CPU to anything else (Linux: 19 is the lowest). */
#define HANDSHAKE_POOL_NICE 19

#define EXPIRE_INTERVAL 10	/* seconds between session cache sweeps */

struct server {
	char *path;
	int debug;
	struct settings *settings;
	struct listener **listeners;
	size_t nlisteners;
	struct worker **workers;
	size_t nworkers;
	struct handshake_pool *handshakes;	/* full_handshake_priority = "low" */
	struct metrics *metrics;	/* NULL: no metrics setting */
	struct ticket_keys *ticket_keys;	/* in force; NULL unless tickets are stateless */
	struct event_base *base;
	struct event *sig_hup, *sig_term, *sig_int, *sig_usr1;
	struct event *expire_timer;
	struct event *drain_timer;
	struct timespec drain_deadline;
	int draining;
	int forced;
};

static void
log_errors(const char *prefix, const struct config_errors *errs)
{
	for (size_t i = 0; i < errs->count; i++)
		log_error("%s%s", prefix, errs->lines[i]);
}

/*
 * Build one service per listener of ${s} into ${out}, and the ticket key
 * schedule they all share into ${*tkp} (NULL unless tickets are stateless),
 * which holds the caller's reference; all or nothing.
 */
static int
build_services(const struct settings *s, struct service **out, struct ticket_keys **tkp,
    struct config_errors *errs)
{
	struct ticket_keys *tk = NULL;
	int failed = 0;

	if (s->tickets.mode == TICKETS_STATELESS &&
	    (tk = ticket_keys_new(&s->tickets)) == NULL) {
		config_errors_add(errs, s->tickets.where.file, s->tickets.where.line, "tickets",
		    "cannot derive the ticket keys");
		return -1;
	}
	for (size_t i = 0; i < s->nlisteners; i++) {
		const struct listener_settings *ls = &s->listeners[i];
		size_t reasons = errs->count;

		if ((out[i] = service_new(s, ls, tk, errs)) != NULL)
			continue;
		failed = 1;
		/* Only running out of memory fails without a reason. */
		if (errs->count == reasons)
			config_errors_add(errs, ls->where.file, ls->where.line, "listeners",
			    "listener \"%s\": out of memory", ls->name);
	}
	if (!failed) {
		*tkp = tk;	/* the caller's; each TLS context holds its own */
		return 0;
	}
	for (size_t i = 0; i < s->nlisteners; i++) {
		service_unref(out[i]);
		out[i] = NULL;
	}
	ticket_keys_unref(tk);
	return -1;
}

int
server_check(const struct settings *s, struct config_errors *errs)
{
	struct service **svcs;
	struct ticket_keys *tk = NULL;
	int rc;

	if ((svcs = calloc(s->nlisteners, sizeof(*svcs))) == NULL)
		return -1;
	rc = build_services(s, svcs, &tk, errs);
	for (size_t i = 0; rc == 0 && i < s->nlisteners; i++)
		service_unref(svcs[i]);
	ticket_keys_unref(tk);
	free(svcs);
	return rc;
}

static void
apply_log_level(struct server *srv)
{
	log_set_level(srv->debug ? LOG_LEVEL_DEBUG : srv->settings->log_level);
}

/*
 * Operators compare fingerprints across nodes, in the log and in metrics;
 * the seed itself never shows.
 */
static void
log_ticket_policy(struct server *srv)
{
	const struct ticket_settings *ts = &srv->settings->tickets;
	const struct ticket_keys *tk = srv->ticket_keys;
	const char *prev;

	if (ts->mode != TICKETS_STATELESS) {
		metrics_set_tickets(srv->metrics, NULL, NULL, 0);
		log_info("tickets: %s", ts->mode == TICKETS_OFF ? "off" :
		    "stateful (node-local cache)");
		return;
	}
	prev = ticket_keys_fingerprint(tk, 1);
	metrics_set_tickets(srv->metrics, ticket_keys_fingerprint(tk, 0), prev,
	    (uint64_t)ts->rotation_interval);
	log_info("tickets: stateless, seed fingerprint %s%s%s, rotation_interval %llds,"
	    " decrypt_grace %llds, session_lifetime %llds",
	    ticket_keys_fingerprint(tk, 0), prev[0] ? ", previous seed " : "",
	    prev, (long long)ts->rotation_interval, (long long)ts->decrypt_grace,
	    (long long)ts->session_lifetime);
}

static struct listener *
find_listener(struct server *srv, const char *name)
{
	for (size_t i = 0; i < srv->nlisteners; i++)
		if (strcmp(listener_name(srv->listeners[i]), name) == 0)
			return srv->listeners[i];
	return NULL;
}

static int
same_address(const struct hostport *a, const struct hostport *b)
{
	return a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0;
}

/*
 * A reload may change everything but where we listen: every difference is
 * added to ${errs} as "FILE:LINE: setting: ...", naming the file the
 * listener stands in (an @include'd one, perhaps).
 */
static int
listeners_unchanged(struct server *srv, const struct settings *s, struct config_errors *errs)
{
	char name[48], addr[ADDR_TEXT_MAX];
	int ok = 1;

	for (size_t i = 0; i < s->nlisteners; i++) {
		const struct listener_settings *ls = &s->listeners[i];
		struct listener *l = find_listener(srv, ls->name);

		snprintf(name, sizeof(name), "listeners[%zu]", i);
		if (l == NULL) {
			config_errors_add(errs, ls->where.file, ls->where.line, name,
			    "listener \"%s\" is new (adding a listener needs a restart)",
			    ls->name);
			ok = 0;
		} else if (!same_address(listener_address(l), &ls->listen)) {
			config_errors_add(errs, ls->where.file, ls->where.line, name,
			    "listener \"%s\": listen address changed (that needs a restart)",
			    ls->name);
			ok = 0;
		}
	}
	for (size_t i = 0; i < srv->nlisteners; i++) {
		const char *running = listener_name(srv->listeners[i]);
		size_t j;

		for (j = 0; j < s->nlisteners; j++)
			if (strcmp(s->listeners[j].name, running) == 0)
				break;
		if (j < s->nlisteners)
			continue;
		addr_format((const struct sockaddr *)&listener_address(srv->listeners[i])->sa,
		    addr, sizeof(addr));
		config_errors_add(errs, s->path, 0, "listeners", "listener \"%s\" on %s is "
		    "gone (removing a listener needs a restart)", running, addr);
		ok = 0;
	}
	return ok;
}

/* Nor where metrics are served, nor whether they are. */
static int
metrics_unchanged(struct server *srv, const struct settings *s, struct config_errors *errs)
{
	const struct settings *old = srv->settings;
	char was[ADDR_TEXT_MAX], now[ADDR_TEXT_MAX];

	if (!old->metrics_enabled && !s->metrics_enabled)
		return 1;
	if (old->metrics_enabled && s->metrics_enabled &&
	    same_address(&old->metrics, &s->metrics))
		return 1;
	snprintf(was, sizeof(was), "off");
	if (old->metrics_enabled)
		addr_format((const struct sockaddr *)&old->metrics.sa, was, sizeof(was));
	if (s->metrics_enabled)
		config_errors_add(errs, s->metrics_where.file, s->metrics_where.line, "metrics",
		    "%s instead of %s (that needs a restart)", addr_format((const struct
		    sockaddr *)&s->metrics.sa, now, sizeof(now)), was);
	else
		config_errors_add(errs, s->path, 0, "metrics", "off instead of %s (that needs "
		    "a restart)", was);
	return 0;
}

/*
 * Carry what must outlive the reload (route gates, ALPN counters) over to
 * the new services ${svcs} of ${s}, before any takes over; on failure
 * every one of them is dropped, and the old ones keep serving.
 */
static int
prepare_services(struct server *srv, const struct settings *s, struct service **svcs,
    struct config_errors *errs)
{
	for (size_t i = 0; i < s->nlisteners; i++)
		if (listener_prepare_service(find_listener(srv, s->listeners[i].name),
		    svcs[i]) != 0) {
			config_errors_add(errs, s->listeners[i].where.file,
			    s->listeners[i].where.line, "listeners",
			    "listener \"%s\": out of memory", s->listeners[i].name);
			for (i = 0; i < s->nlisteners; i++) {
				service_unref(svcs[i]);
				svcs[i] = NULL;
			}
			return -1;
		}
	return 0;
}

static void
server_reload(struct server *srv)
{
	struct config_errors errs = { 0 };
	struct settings *s;
	struct service **svcs = NULL;
	struct ticket_keys *tk = NULL;
	char status[400];

	log_info("reload: reading %s", srv->path);
	notify_reloading();
	if ((s = settings_load(srv->path, &errs)) == NULL)
		goto refused;
	/* Both checks run, so that one reload names every difference. */
	if (!listeners_unchanged(srv, s, &errs) + !metrics_unchanged(srv, s, &errs) > 0)
		goto refused;
	if ((svcs = calloc(s->nlisteners, sizeof(*svcs))) == NULL) {
		config_errors_add(&errs, s->path, 0, NULL, "out of memory");
		goto refused;
	}
	if (build_services(s, svcs, &tk, &errs) != 0)
		goto refused;
	if (prepare_services(srv, s, svcs, &errs) != 0)
		goto refused;
	for (size_t i = 0; i < s->nlisteners; i++) {
		struct listener *l = find_listener(srv, s->listeners[i].name);
		struct service *old = listener_service(l);

		/* TLS 1.2 session IDs go on resuming where the policy allows. */
		tls_ctx_keep_sessions(svcs[i]->ctx, old->ctx);
		service_unref(old);
		listener_set_service(l, svcs[i]);
		svcs[i] = NULL;	/* the listener owns it now */
	}
	if (s->workers != srv->settings->workers) {
		log_warning("reload: workers changed from %lld to %lld; that takes a restart",
		    (long long)srv->settings->workers, (long long)s->workers);
		s->workers = srv->settings->workers;	/* what is really running */
	}
	if (s->full_handshake_priority != srv->settings->full_handshake_priority) {
		log_warning("reload: full_handshake_priority changed; that takes a restart");
		s->full_handshake_priority = srv->settings->full_handshake_priority;
	}
	if (s->uid != srv->settings->uid || s->gid != srv->settings->gid)
		log_warning("reload: user or group changed; that takes a restart");
	settings_free(srv->settings);
	srv->settings = s;
	s = NULL;
	ticket_keys_unref(srv->ticket_keys);
	srv->ticket_keys = tk;	/* the server's now; old contexts keep the old keys */
	tk = NULL;
	apply_log_level(srv);
	log_info("reload: configuration from %s in force for new connections", srv->path);
	log_ticket_policy(srv);
	stats_add(STAT_RELOAD_OK, 1);
	metrics_set_reload(srv->metrics, 1);
	notify_ready("reloaded; serving");
	goto done;
refused:
	log_errors("reload refused: ", &errs);
	stats_add(STAT_RELOAD_FAILED, 1);
	metrics_set_reload(srv->metrics, 0);
	/* Still serving the old configuration: say so, with the first reason. */
	snprintf(status, sizeof(status), "reload refused: %s; serving the previous configuration",
	    errs.count > 0 ? errs.lines[0] : "see the log");
	notify_ready(status);
done:
	free(svcs);
	settings_free(s);
	ticket_keys_unref(tk);
	config_errors_clear(&errs);
}

static long open_connections(struct server *srv);

static void
on_expire(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	notify_status("serving; open connections: %ld; listeners: %zu", open_connections(srv),
	    srv->nlisteners);

	for (size_t i = 0; i < srv->nlisteners; i++) {
		struct service *svc = listener_service(srv->listeners[i]);

		tls_ctx_expire_sessions(svc->ctx);
		service_unref(svc);
	}
}

static long
open_connections(struct server *srv)
{
	long n = 0;

	for (size_t i = 0; i < srv->nlisteners; i++)
		n += listener_connections(srv->listeners[i]);
	return n;
}

static int
deadline_passed(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline->tv_sec ||
	    (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* Every 100 ms while draining: close listeners once no worker uses them,
 * force connections closed at the deadline, stop when all workers are. */
static void
on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	size_t stopped = 0, finished = 0;

	for (size_t i = 0; i < srv->nworkers; i++) {
		stopped += worker_accept_stopped(srv->workers[i]) != 0;
		finished += worker_finished(srv->workers[i]) != 0;
	}
	if (stopped == srv->nworkers)
		for (size_t i = 0; i < srv->nlisteners; i++)
			listener_close_socket(srv->listeners[i]);
	if (finished == srv->nworkers) {
		event_base_loopexit(srv->base, NULL);
		return;
	}
	if (!srv->forced && deadline_passed(&srv->drain_deadline)) {
		srv->forced = 1;
		log_warning("shutdown: shutdown_timeout reached, closing %ld connections",
		    open_connections(srv));
		for (size_t i = 0; i < srv->nworkers; i++)
			worker_close_all(srv->workers[i]);
	}
}

static void
server_drain(struct server *srv, const char *signame)
{
	struct timeval tick = { 0, 100000 };

	if (srv->draining) {
		log_info("%s again: still draining", signame);
		return;
	}
	srv->draining = 1;
	notify_stopping();
	log_info("%s: stopping: no new connections, draining %ld open ones for up to %llds",
	    signame, open_connections(srv), (long long)srv->settings->shutdown_timeout);
	clock_gettime(CLOCK_MONOTONIC, &srv->drain_deadline);
	srv->drain_deadline.tv_sec += (time_t)srv->settings->shutdown_timeout;
	for (size_t i = 0; i < srv->nworkers; i++)
		worker_stop_accepting(srv->workers[i]);
	evtimer_del(srv->expire_timer);
	event_add(srv->drain_timer, &tick);
}

/*
 * SIGUSR1: what waits now in each listener's pacers, where any are
 * limited; its handshakes by ALPN protocol and its routes' figures.
 */
static void
log_queues(struct server *srv)
{
	for (size_t i = 0; i < srv->nlisteners; i++) {
		struct pacer *admission = listener_admission(srv->listeners[i]);
		struct pacer *backend = listener_backend_pacer(srv->listeners[i]);

		if (pacer_limited(admission) || pacer_limited(backend))
			log_info("listener %s: waiting: full_handshakes=%llu backend_connects=%llu",
			    listener_name(srv->listeners[i]),
			    (unsigned long long)pacer_queued(admission),
			    (unsigned long long)pacer_queued(backend));
		listener_log_routes(srv->listeners[i]);
	}
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;

	switch (sig) {
	case SIGHUP:
		if (!srv->draining)
			server_reload(srv);
		break;
	case SIGTERM:
		server_drain(srv, "SIGTERM");
		break;
	case SIGINT:
		server_drain(srv, "SIGINT");
		break;
	case SIGUSR1:
		stats_log();
		log_queues(srv);
		break;
	}
}

/* Where each route of ${ls} sends what, at start-up. */
static void
log_routes(const struct listener_settings *ls)
{
	for (size_t i = 0; i < ls->nroutes; i++) {
		const struct route_settings *r = &ls->routes[i];

		log_info("listener %s: routes[%zu]: alpn %s, sni %s: backend %s:%u", ls->name, i,
		    r->alpn != NULL ? r->alpn : "any", r->sni != NULL ? r->sni : "any",
		    r->backend.host, r->backend.port);
	}
}

static int
bind_listeners(struct server *srv)
{
	const struct settings *s = srv->settings;
	struct config_errors errs = { 0 };
	struct service **svcs;
	char why[256];
	int rc = -1;

	if ((svcs = calloc(s->nlisteners, sizeof(*svcs))) == NULL)
		return -1;
	if (build_services(s, svcs, &srv->ticket_keys, &errs) != 0) {
		log_errors("", &errs);
		goto done;
	}
	for (size_t i = 0; i < s->nlisteners; i++) {
		const struct listener_settings *ls = &s->listeners[i];
		char addr[ADDR_TEXT_MAX];

		addr_format((const struct sockaddr *)&ls->listen.sa, addr, sizeof(addr));
		srv->listeners[i] = listener_new(ls, svcs[i], srv->base, why, sizeof(why));
		svcs[i] = NULL;	/* taken over, even on failure */
		if (srv->listeners[i] == NULL) {
			log_error("%s:%d: listener \"%s\": cannot listen on %s: %s",
			    ls->where.file, ls->where.line, ls->name, addr, why);
			goto done;
		}
		srv->nlisteners++;
		log_info("listener %s: listening on %s, backend %s:%u", ls->name, addr,
		    ls->backend.host, ls->backend.port);
		log_routes(ls);
	}
	rc = 0;
done:
	for (size_t i = 0; i < s->nlisteners; i++)
		service_unref(svcs[i]);
	free(svcs);
	config_errors_clear(&errs);
	return rc;
}

/* Bound with the listeners, before privileges are dropped; served once the workers run. */
static int
bind_metrics(struct server *srv)
{
	const struct settings *s = srv->settings;
	char addr[ADDR_TEXT_MAX], why[256];

	if (!s->metrics_enabled)
		return 0;
	addr_format((const struct sockaddr *)&s->metrics.sa, addr, sizeof(addr));
	srv->metrics = metrics_new(&s->metrics, srv->listeners, srv->nlisteners, why,
	    sizeof(why));
	if (srv->metrics == NULL) {
		log_error("%s:%d: metrics: cannot listen on %s: %s", s->metrics_where.file,
		    s->metrics_where.line, addr, why);
		return -1;
	}
	log_info("metrics: serving http://%s/metrics", addr);
	return 0;
}

/* Workers must not take the signals: the main loop handles them. */
static int
start_workers(struct server *srv)
{
	sigset_t all, old;
	int rc = 0;

	/* As many as the workers: alone on the machine, full handshakes go as fast. */
	if (srv->settings->full_handshake_priority == FULL_HANDSHAKE_PRIORITY_LOW &&
	    (srv->handshakes = handshake_pool_new((unsigned)srv->settings->workers,
	    HANDSHAKE_POOL_NICE)) == NULL)
		return -1;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (size_t i = 0; i < (size_t)srv->settings->workers; i++) {
		srv->workers[i] = worker_start((unsigned)i, srv->listeners, srv->nlisteners,
		    srv->handshakes);
		if (srv->workers[i] == NULL) {
			rc = -1;
			break;
		}
		srv->nworkers++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static int
add_signal(struct server *srv, struct event **ev, int sig)
{
	*ev = evsignal_new(srv->base, sig, on_signal, srv);
	return *ev != NULL && event_add(*ev, NULL) == 0 ? 0 : -1;
}

struct server *
server_new(struct settings *s, const char *path, int debug)
{
	struct server *srv;
	struct timeval expire = { EXPIRE_INTERVAL, 0 };

	if ((srv = calloc(1, sizeof(*srv))) == NULL) {
		settings_free(s);
		return NULL;
	}
	srv->settings = s;
	srv->debug = debug;
	apply_log_level(srv);
	if ((srv->path = strdup(path)) == NULL ||
	    (srv->listeners = calloc(s->nlisteners, sizeof(*srv->listeners))) == NULL ||
	    (srv->workers = calloc((size_t)s->workers, sizeof(*srv->workers))) == NULL ||
	    (srv->base = event_base_new()) == NULL)
		goto fail;
	if (add_signal(srv, &srv->sig_hup, SIGHUP) != 0 ||
	    add_signal(srv, &srv->sig_term, SIGTERM) != 0 ||
	    add_signal(srv, &srv->sig_int, SIGINT) != 0 ||
	    add_signal(srv, &srv->sig_usr1, SIGUSR1) != 0)
		goto fail;
	if ((srv->expire_timer = event_new(srv->base, -1, EV_PERSIST, on_expire, srv)) == NULL ||
	    event_add(srv->expire_timer, &expire) != 0 ||
	    (srv->drain_timer = event_new(srv->base, -1, EV_PERSIST, on_drain_tick, srv)) == NULL)
		goto fail;
	/* The limit only says what fits; a low one is logged, not fatal. */
	(void)fdlimit_raise(s);
	/* Bind and read every key as whoever started us; then drop root. */
	if (bind_listeners(srv) != 0 || bind_metrics(srv) != 0 || privileges_drop(s) != 0 ||
	    start_workers(srv) != 0 || (srv->metrics != NULL && metrics_start(srv->metrics) != 0))
		goto fail;
	log_ticket_policy(srv);
	log_info("tlsproxy %s ready: %zu listeners, %zu workers", PACKAGE_VERSION,
	    srv->nlisteners, srv->nworkers);
	notify_ready("serving");
	return srv;

fail:
	server_free(srv);
	return NULL;
}

int
server_run(struct server *srv)
{
	event_base_dispatch(srv->base);
	log_info("stopped");
	return 0;
}

void
server_free(struct server *srv)
{
	if (srv == NULL)
		return;
	metrics_free(srv->metrics);	/* it reads the listeners */
	for (size_t i = 0; i < srv->nworkers; i++) {
		worker_close_all(srv->workers[i]);
		worker_join(srv->workers[i]);
	}
	handshake_pool_free(srv->handshakes);	/* after every connection is gone */
	for (size_t i = 0; i < srv->nlisteners; i++)
		listener_free(srv->listeners[i]);
	struct event *events[] = { srv->sig_hup, srv->sig_term, srv->sig_int, srv->sig_usr1,
		srv->expire_timer, srv->drain_timer };
	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
		if (events[i] != NULL)
			event_free(events[i]);
	if (srv->base != NULL)
		event_base_free(srv->base);
	free(srv->workers);
	free(srv->listeners);
	ticket_keys_unref(srv->ticket_keys);
	settings_free(srv->settings);
	free(srv->path);
	free(srv);
}
