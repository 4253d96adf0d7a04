/*
 * log: one line per event on stderr, with a severity.
 *
 * When stderr is the systemd journal (JOURNAL_STREAM matches it) each line
 * carries a "<N>" syslog priority prefix so `journalctl -p` works; otherwise
 * lines start with an ISO-8601 timestamp.  Every line is written with one
 * write(2), so lines from different threads never interleave.
 */
#ifndef TLSPROXY_LOG_H
#define TLSPROXY_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include <openssl/x509.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/** log_init(): decide between journal and plain output from the environment. */
void log_init(void);

/** log_set_level(level): lines less severe than ${level} are dropped. */
void log_set_level(enum log_level level);

/** log_enabled(level): true if a line at ${level} would be written. */
int log_enabled(enum log_level level);

/** log_level_parse(name, &level): "error".."debug" -> 0, else -1. */
int log_level_parse(const char *name, enum log_level *level);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_at(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * log_ssl_error(level, fmt, ...): log the message followed by the reasons
 * in OpenSSL's error queue for this thread, then empty that queue.
 */
void log_ssl_error(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** ssl_errors_drain(buf, len): describe and empty the OpenSSL error queue. */
const char *ssl_errors_drain(char *buf, unsigned long len);

/**
 * ssl_name_text(name, buf, len): X.509 name ${name} as RFC 2253 text in
 * ${buf} (cut to fit; "" if it cannot be printed); returns ${buf}.
 */
const char *ssl_name_text(const X509_NAME *name, char *buf, size_t len);

#endif
