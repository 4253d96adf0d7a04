/*
 * notify: the sd_notify(3) protocol, through libsystemd when the build has
 * it (configure --with-systemd, the default where libsystemd is found).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "notify.h"

static void
notify_send(const char *message)
{
#ifdef HAVE_LIBSYSTEMD
	sd_notify(0, message);
#else
	(void)message;
#endif
}

void
notify_ready(const char *status)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
	notify_send(msg);
}

void
notify_reloading(void)
{
	struct timespec ts;
	char msg[128];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
	notify_send(msg);
}

void
notify_stopping(void)
{
	notify_send("STOPPING=1");
}

void
notify_status(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	n = snprintf(msg, sizeof(msg), "STATUS=");
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	notify_send(msg);
}
