/*
 * backend: open a non-blocking TCP connection to a backend address.  A
 * numeric address is connected to at once; a host name is resolved with
 * evdns so that no worker ever blocks on DNS.
 */
#ifndef TLSPROXY_BACKEND_H
#define TLSPROXY_BACKEND_H

#include <stdint.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "addr.h"

struct backend_connect;

/**
 * Called once: with a connected, non-blocking socket that the callee now
 * owns (fd >= 0), or with fd == -1 and a reason.
 */
typedef void backend_connected_fn(int fd, const char *why, void *arg);

/**
 * backend_connect_start(base, dns, hp, cb, arg, connected_fd): begin
 * connecting to ${hp}.  A numeric address that connects at once (a backend
 * on this host) gives its socket in ${connected_fd}, which the caller then
 * owns; NULL is returned and ${cb} is never called.  Otherwise
 * ${connected_fd} is -1 and the handle is returned, which
 * backend_connect_cancel() stops, or NULL if nothing could be started.
 * ${cb} is never called from inside this function; the handle is freed
 * after ${cb} has run.
 */
struct backend_connect *backend_connect_start(struct event_base *base,
    struct evdns_base *dns, const struct hostport *hp, backend_connected_fn *cb, void *arg,
    int *connected_fd);

/* The shortest and the longest pause before a failed connect is tried again. */
#define BACKEND_RETRY_MIN_MS 50
#define BACKEND_RETRY_MAX_MS 1000

/**
 * backend_retry_pause_ms(elapsed_ms, random): how long to wait before
 * trying again a backend that has failed every connect for ${elapsed_ms}
 * since the first: as long again as that, so that the pauses double, kept
 * within BACKEND_RETRY_MIN_MS and BACKEND_RETRY_MAX_MS, of which the
 * second half is drawn from ${random}.
 */
unsigned backend_retry_pause_ms(uint64_t elapsed_ms, uint32_t random);

/** backend_connect_cancel(bc): stop; ${cb} will not be called.  NULL is fine. */
void backend_connect_cancel(struct backend_connect *bc);

#endif
