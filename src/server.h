/*
 * server: the running daemon.  Owns the settings in force, the listeners,
 * the worker threads and the main thread's event loop, which handles the
 * signals: HUP reloads, TERM and INT drain and stop, USR1 logs counters.
 */
#ifndef TLSPROXY_SERVER_H
#define TLSPROXY_SERVER_H

#include "config.h"

struct server;

/**
 * server_check(s, errs): build everything ${s} describes that can be built
 * without binding (TLS contexts: certificates, keys, ciphers); 0, or -1
 * with the reasons in ${errs}.  This is what `tlsproxy -t` runs.
 */
int server_check(const struct settings *s, struct config_errors *errs);

/**
 * server_new(s, path, debug): bind every listener and start the workers
 * for settings ${s} (taken over) read from ${path}.  ${debug} keeps the
 * log level at debug across reloads.  NULL on failure, logged.
 */
struct server *server_new(struct settings *s, const char *path, int debug);

/** server_run(srv): serve until TERM or INT has drained; returns 0. */
int server_run(struct server *srv);

/** server_free(srv): join the workers and free everything; NULL is fine. */
void server_free(struct server *srv);

#endif
