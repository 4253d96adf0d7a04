/*
 * log: severity-filtered lines on stderr.  Owns the process-wide log level
 * and the choice between journal priority prefixes and timestamps.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "log.h"

#define LOG_LINE_MAX 2048

static _Atomic int current_level = LOG_LEVEL_INFO;
static int journal_prefix;

static const char *const level_names[] = { "error", "warning", "info", "debug" };
/* syslog priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
static const int level_priority[] = { 3, 4, 6, 7 };

/* stderr is the journal when JOURNAL_STREAM names its device and inode. */
static int
stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (env == NULL || sscanf(env, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) != 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void
log_init(void)
{
	journal_prefix = stderr_is_journal();
}

void
log_set_level(enum log_level level)
{
	atomic_store(&current_level, (int)level);
}

int
log_enabled(enum log_level level)
{
	return (int)level <= atomic_load(&current_level);
}

int
log_level_parse(const char *name, enum log_level *level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static size_t
line_prefix(enum log_level level, char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	int n;

	if (journal_prefix)
		n = snprintf(buf, len, "<%d>", level_priority[level]);
	else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
	}
	return n > 0 ? (size_t)n : 0;
}

/* Format one line and write it with a single write(2). */
static void log_emit(enum log_level level, const char *suffix, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
log_emit(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	size_t len;
	int n;
	int saved_errno = errno;

	len = line_prefix(level, line, sizeof(line));
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	if (n > 0)
		len += (size_t)n < sizeof(line) - len ? (size_t)n : sizeof(line) - len - 1;
	if (suffix != NULL && len < sizeof(line) - 1) {
		n = snprintf(line + len, sizeof(line) - len, "%s", suffix);
		if (n > 0)
			len += (size_t)n < sizeof(line) - len ? (size_t)n : sizeof(line) - len - 1;
	}
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	/* Nothing useful can be done if stderr is gone. */
	if (write(STDERR_FILENO, line, len) < 0)
		errno = saved_errno;
	errno = saved_errno;
}

#define LOG_FN(fn, lvl)                                      \
	void fn(const char *fmt, ...)                        \
	{                                                    \
		va_list ap;                                  \
		if (!log_enabled(lvl))                       \
			return;                              \
		va_start(ap, fmt);                           \
		log_emit(lvl, NULL, fmt, ap);                \
		va_end(ap);                                  \
	}

LOG_FN(log_error, LOG_LEVEL_ERROR)
LOG_FN(log_warning, LOG_LEVEL_WARNING)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_debug, LOG_LEVEL_DEBUG)

void
log_at(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	log_emit(level, NULL, fmt, ap);
	va_end(ap);
}

const char *
ssl_errors_drain(char *buf, unsigned long len)
{
	unsigned long code;
	size_t used = 0;
	const char *reason;

	buf[0] = '\0';
	while ((code = ERR_get_error()) != 0) {
		reason = ERR_reason_error_string(code);
		if (used + 4 >= len)
			continue;	/* keep draining */
		used += (size_t)snprintf(buf + used, len - used, "%s%s",
		    used ? "; " : "", reason ? reason : "unknown error");
		if (used >= len)
			used = len - 1;
	}
	if (used == 0)
		snprintf(buf, len, "no details");
	return buf;
}

const char *
ssl_name_text(const X509_NAME *name, char *buf, size_t len)
{
	BIO *bio;
	int n;

	buf[0] = '\0';
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return buf;
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
		n = BIO_read(bio, buf, (int)len - 1);
		buf[n > 0 ? n : 0] = '\0';
	}
	BIO_free(bio);
	return buf;
}

void
log_ssl_error(enum log_level level, const char *fmt, ...)
{
	char reasons[512], suffix[520];
	va_list ap;

	ssl_errors_drain(reasons, sizeof(reasons));
	if (!log_enabled(level))
		return;
	snprintf(suffix, sizeof(suffix), ": %s", reasons);
	va_start(ap, fmt);
	log_emit(level, suffix, fmt, ap);
	va_end(ap);
}
