/*
 * worker: one thread, one event base.  Commands from the main thread are
 * atomic flags plus event_active() on a wake-up event (libevent is set up
 * for threads), so they run inside the loop like any other event.
 *
 * accept() failing with EMFILE/ENFILE is answered with a reserved fd:
 * release it, accept and close the connection that could not be served,
 * take the fd back.  When that cannot work (another thread took the freed
 * descriptor first), the worker stops accepting for a moment instead: a
 * level-triggered listener must never spin.
 *
 * After each accept the worker tells its memtrim how many connections it
 * has, so that the heap a burst leaves behind goes back to the kernel
 * once the burst is over (memtrim.c says why and when).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include <openssl/err.h>

#include "conn.h"
#include "log.h"
#include "memtrim.h"
#include "ticket_keys.h"
#include "worker.h"

#define SCRATCH_LEN (64 * 1024)
#define ACCEPTS_PER_WAKEUP 64

#define ACCEPT_PAUSE_MS 100

#define CMD_STOP_ACCEPTING 0x1
#define CMD_CLOSE_ALL 0x2

struct accept_slot {
	struct worker *worker;
	struct listener *listener;
	struct event *ev;
};

struct worker {
	unsigned id;
	pthread_t thread;
	struct event_base *base;
	struct event *wake;
	struct event *resume_accept;	/* ends a pause after EMFILE */
	int accept_paused;
	struct accept_slot *slots;
	size_t nslots;
	struct conn_env env;
	struct memtrim *trim;		/* NULL once draining */
	int reserve_fd;
	int draining;
	atomic_uint commands;
	atomic_int finished;
	atomic_int accept_stopped;
	time_t last_emfile_log;
};

static void
on_conn_count_zero(void *arg)
{
	struct worker *w = arg;

	if (w->draining)
		event_base_loopexit(w->base, NULL);
}

static void
pause_accepting(struct worker *w)
{
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };

	if (w->accept_paused || w->draining)
		return;
	for (size_t i = 0; i < w->nslots; i++)
		event_del(w->slots[i].ev);
	w->accept_paused = 1;
	evtimer_add(w->resume_accept, &tv);
}

static void
on_resume_accept(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	w->accept_paused = 0;
	if (w->draining)
		return;
	if (w->reserve_fd < 0)
		w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (size_t i = 0; i < w->nslots; i++)
		event_add(w->slots[i].ev, NULL);
}

/* Returns 0 if a pending connection was taken off the queue (and closed). */
static int
accept_overflow(struct worker *w, struct listener *l, int err)
{
	time_t now = time(NULL);
	int fd = -1;

	if (now != w->last_emfile_log) {
		w->last_emfile_log = now;
		log_error("%s: accept: %s: closing new connections until descriptors are free"
		    " (raise LimitNOFILE or ulimit -n)", listener_name(l), strerror(err));
	}
	if (w->reserve_fd >= 0) {
		close(w->reserve_fd);
		fd = accept(listener_fd(l), NULL, NULL);
		if (fd >= 0)
			close(fd);
		w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0 || w->reserve_fd < 0) {
		pause_accepting(w);
		return -1;
	}
	return 0;
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct accept_slot *slot = arg;
	struct worker *w = slot->worker;
	struct sockaddr_storage peer;
	socklen_t len;
	int fd;

	for (int i = 0; i < ACCEPTS_PER_WAKEUP && !w->draining; i++) {
		len = sizeof(peer);
		fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_accept(&w->env, slot->listener, fd, (struct sockaddr *)&peer, len);
			continue;
		}
		if ((errno == EMFILE || errno == ENFILE) &&
		    accept_overflow(w, slot->listener, errno) == 0)
			continue;
		/* EAGAIN: another worker took it; the rest are the peer's problem. */
		break;
	}
	if (w->trim != NULL)
		memtrim_note(w->trim, w->env.count);
}

static void
stop_accepting(struct worker *w)
{
	w->draining = 1;
	evtimer_del(w->resume_accept);
	/* The process ends once drained: nothing to give back any more. */
	memtrim_free(w->trim);
	w->trim = NULL;
	for (size_t i = 0; i < w->nslots; i++)
		event_del(w->slots[i].ev);
	atomic_store(&w->accept_stopped, 1);
	if (w->env.count == 0)
		event_base_loopexit(w->base, NULL);
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	unsigned cmd = atomic_exchange(&w->commands, 0);

	if (cmd & CMD_STOP_ACCEPTING)
		stop_accepting(w);
	if (cmd & CMD_CLOSE_ALL) {
		stop_accepting(w);
		conn_close_all(&w->env);
		event_base_loopexit(w->base, NULL);
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_dispatch(w->base);
	/* Connections still open here were closed by a forced exit already. */
	conn_close_all(&w->env);
	/* OpenSSL keeps per-thread state; release it before the thread ends. */
	ticket_keys_thread_end();
	OPENSSL_thread_stop();
	atomic_store(&w->finished, 1);
	return NULL;
}

static void
worker_free(struct worker *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->nslots; i++)
		if (w->slots[i].ev != NULL)
			event_free(w->slots[i].ev);
	free(w->slots);
	if (w->wake != NULL)
		event_free(w->wake);
	if (w->resume_accept != NULL)
		event_free(w->resume_accept);
	memtrim_free(w->trim);
	if (w->env.dns != NULL)
		evdns_base_free(w->env.dns, 1);
	free(w->env.scratch);
	if (w->base != NULL)
		event_base_free(w->base);
	if (w->reserve_fd >= 0)
		close(w->reserve_fd);
	free(w);
}

struct worker *
worker_start(unsigned id, struct listener **listeners, size_t n,
    struct handshake_pool *handshakes)
{
	struct worker *w;
	int err;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		goto fail;
	w->id = id;
	w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if ((w->base = event_base_new()) == NULL ||
	    (w->wake = event_new(w->base, -1, EV_PERSIST, on_wake, w)) == NULL ||
	    (w->resume_accept = evtimer_new(w->base, on_resume_accept, w)) == NULL ||
	    (w->env.scratch = malloc(SCRATCH_LEN)) == NULL ||
	    (w->slots = calloc(n, sizeof(*w->slots))) == NULL)
		goto fail;
	if ((w->trim = memtrim_new(w->base, &w->env.count, id)) == NULL) {
		worker_free(w);
		return NULL;
	}
	/* Name resolution for backends given by host name; never blocks. */
	w->env.dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (w->env.dns == NULL)
		log_warning("worker %u: no DNS resolver; backends given by name will fail", id);
	w->env.base = w->base;
	w->env.scratch_len = SCRATCH_LEN;
	w->env.on_empty = on_conn_count_zero;
	w->env.on_empty_arg = w;
	w->env.handshakes = handshakes;
	w->nslots = n;
	for (size_t i = 0; i < n; i++) {
		w->slots[i].worker = w;
		w->slots[i].listener = listeners[i];
		w->slots[i].ev = event_new(w->base, listener_fd(listeners[i]), EV_READ | EV_PERSIST,
		    on_accept, &w->slots[i]);
		if (w->slots[i].ev == NULL || event_add(w->slots[i].ev, NULL) != 0)
			goto fail;
	}
	if ((err = pthread_create(&w->thread, NULL, worker_main, w)) != 0) {
		log_error("worker %u: cannot start a thread: %s", id, strerror(err));
		worker_free(w);
		return NULL;
	}
	return w;

fail:
	log_error("worker %u: out of memory or events", id);
	worker_free(w);
	return NULL;
}

static void
worker_command(struct worker *w, unsigned cmd)
{
	atomic_fetch_or(&w->commands, cmd);
	event_active(w->wake, EV_READ, 0);
}

void
worker_stop_accepting(struct worker *w)
{
	worker_command(w, CMD_STOP_ACCEPTING);
}

void
worker_close_all(struct worker *w)
{
	worker_command(w, CMD_CLOSE_ALL);
}

int
worker_accept_stopped(struct worker *w)
{
	return atomic_load(&w->accept_stopped);
}

int
worker_finished(struct worker *w)
{
	return atomic_load(&w->finished);
}

void
worker_join(struct worker *w)
{
	if (w == NULL)
		return;
	pthread_join(w->thread, NULL);
	worker_free(w);
}
