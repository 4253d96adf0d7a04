/*
 * notify: tell systemd (Type=notify) what the daemon is doing: ready,
 * reloading, stopping, and a status line.  Without NOTIFY_SOCKET, or in a
 * build without libsystemd, every call does nothing.
 */
#ifndef TLSPROXY_NOTIFY_H
#define TLSPROXY_NOTIFY_H

/** notify_ready(status): READY=1 with a STATUS= line. */
void notify_ready(const char *status);

/** notify_reloading(): RELOADING=1 with MONOTONIC_USEC= (a reload has begun). */
void notify_reloading(void);

/** notify_stopping(): STOPPING=1 (draining for shutdown). */
void notify_stopping(void);

/** notify_status(fmt, ...): a STATUS= line. */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
