/*
 * testlib: helpers shared by the unit tests: a private temporary
 * directory per test, files written into it, config files loaded from a
 * string, and assertions on config error lines.
 *
 * Every test runs in its own forked child (CK_FORK), so the helpers keep
 * their state in globals; tl_setup()/tl_teardown() are the check fixture.
 */
#ifndef TLSPROXY_TESTLIB_H
#define TLSPROXY_TESTLIB_H

#include <sys/types.h>

#include <check.h>

/*
 * Not "config.h": automake puts the build directory, which holds the
 * autoconf config.h, ahead of -Isrc on the command line.
 */
#include "../../src/config.h"

/** tl_setup(): make a fresh temporary directory for this test. */
void tl_setup(void);

/** tl_teardown(): remove the temporary directory and all it holds. */
void tl_teardown(void);

/** tl_dir(): the temporary directory made by tl_setup(). */
const char *tl_dir(void);

/**
 * tl_write(name, content, mode): write ${content} to file ${name} in the
 * temporary directory with permissions ${mode}; returns its path, valid
 * until tl_teardown().
 */
const char *tl_write(const char *name, const char *content, mode_t mode);

/**
 * tl_write_bytes(name, content, len, mode): like tl_write() for ${len}
 * bytes that may hold NULs.
 */
const char *tl_write_bytes(const char *name, const void *content, size_t len,
    mode_t mode);

/**
 * tl_placeholders(): write cert.pem, key.pem and ca.pem (only their
 * readability is checked by config) and ticket.seed (32 bytes, mode 600)
 * into the temporary directory.
 */
void tl_placeholders(void);

/**
 * tl_config(text): write ${text} to tlsproxy.conf in the temporary
 * directory, with every "@DIR@" replaced by the directory; returns its path.
 */
const char *tl_config(const char *text);

/**
 * tl_write_conf(name, text): write ${text} to file ${name} in the temporary
 * directory, with every "@DIR@" replaced by the directory; returns its path.
 */
const char *tl_write_conf(const char *name, const char *text);

/**
 * tl_load(text, errs): tl_config(${text}) and settings_load() it.
 */
struct settings *tl_load(const char *text, struct config_errors *errs);

/**
 * tl_load_ok(text): tl_load() that must succeed; fails the test showing
 * the errors otherwise.
 */
struct settings *tl_load_ok(const char *text);

/**
 * tl_load_fail(text, errs): tl_load() that must fail with at least one
 * error line; fails the test otherwise.
 */
void tl_load_fail(const char *text, struct config_errors *errs);

/**
 * tl_has_error(errs, file, line, substr): true if a line of ${errs} starts
 * with "${file}:${line}: " (or "${file}: " when ${line} is 0) and contains
 * ${substr}.  A NULL ${file} means tlsproxy.conf in the temporary directory.
 */
int tl_has_error(const struct config_errors *errs, const char *file, int line,
    const char *substr);

/** tl_dump(errs): all lines of ${errs} in one string, for failure messages. */
const char *tl_dump(const struct config_errors *errs);

/* Assert that the config file's line ${line} has an error containing ${substr}. */
#define tl_assert_error(errs, line, substr)				\
	ck_assert_msg(tl_has_error((errs), NULL, (line), (substr)),	\
	    "no error at line %d containing '%s'; errors were:\n%s",	\
	    (line), (substr), tl_dump(errs))

/** tl_run(suite): run ${suite} printing TAP; returns main()'s exit status. */
int tl_run(Suite *suite);

#endif
