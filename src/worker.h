/*
 * worker: an event-loop thread.  Every worker watches every listener,
 * accepts what the kernel hands it and runs those connections to the end.
 * The main thread steers workers only through the calls below, which are
 * safe from any thread.
 */
#ifndef TLSPROXY_WORKER_H
#define TLSPROXY_WORKER_H

#include <stddef.h>

#include "listener.h"

struct worker;
struct handshake_pool;

/**
 * worker_start(id, listeners, n, handshakes): start a thread accepting on
 * the ${n} listeners (which must outlive it), handing full handshakes'
 * expensive step to ${handshakes} (NULL: none; it must outlive the
 * thread).  NULL on failure, logged.
 */
struct worker *worker_start(unsigned id, struct listener **listeners, size_t n,
    struct handshake_pool *handshakes);

/** worker_stop_accepting(w): stop accepting; leave the loop once idle. */
void worker_stop_accepting(struct worker *w);

/** worker_close_all(w): close every connection now and leave the loop. */
void worker_close_all(struct worker *w);

/** worker_accept_stopped(w): true once the worker no longer accepts. */
int worker_accept_stopped(struct worker *w);

/** worker_finished(w): true once the thread has left its loop. */
int worker_finished(struct worker *w);

/** worker_join(w): wait for the thread to end and free it; NULL is fine. */
void worker_join(struct worker *w);

#endif
