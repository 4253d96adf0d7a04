/*
 * config_get: the reading machinery under config.c.  It keeps the error
 * list, knows where each setting stands (file and line, with @include'd
 * file names interned in struct settings), and has typed getters that
 * check a setting's type and range.
 *
 * The pattern: each getter takes the group being read and a setting name,
 * stores the default first, and then either stores the checked value or
 * reports why not, as "FILE:LINE: setting: what is wrong (what is
 * allowed)".  Nothing stops at the first error; reports are held, and
 * config_get_loader_finish() hands all of them over in file order.
 *
 * Getters return 0 when the setting was there and good, 1 when it was
 * absent (the default was stored), and -1 after reporting it.
 *
 * Unknown settings are found from the reading itself: every getter (and
 * config_get_member()) records the name it asked a group for, and
 * config_get_close(), called after the last getter, reports each member
 * that nothing asked for, listing what was asked as what is allowed.  So
 * a setting is known because code reads it, never because a second list
 * names it; the price is that a group's code must ask for each of its
 * settings on every path, even one whose value it will not use.
 */
#ifndef TLSPROXY_CONFIG_GET_H
#define TLSPROXY_CONFIG_GET_H

#include <stddef.h>
#include <stdint.h>

#include <libconfig.h>

#include "addr.h"
#include "config.h"

/* A load in progress: the settings being filled and the errors held. */
struct config_get_loader;

/* The most names one group may be asked for; raise it when a group outgrows it. */
#define CONFIG_GET_ASKED_MAX 32

/*
 * A group being read.  Declared here only so that callers can keep one on
 * the stack; read it through the functions below, never its members.
 */
struct config_get_group {
	struct config_get_loader *ld;
	const config_setting_t *st;	/* NULL: absent, members take defaults */
	const config_setting_t *at;	/* where a missing member is reported */
	char prefix[48];		/* "", "tickets.", "listeners[2]." */
	const char *asked[CONFIG_GET_ASKED_MAX];	/* names asked for, in order */
	size_t nasked;			/* past the maximum: reported, the rest not kept */
};

/* One allowed string value of a setting; arrays end with a NULL name. */
struct config_get_choice {
	const char *name;
	int value;
};

/**
 * config_get_loader_new(s, errs): start reading into ${s}, whose path must
 * be set.  Errors are held until config_get_loader_finish() adds them to
 * ${errs}; file names are interned in ${s}->files.  NULL if memory runs out.
 */
struct config_get_loader *config_get_loader_new(struct settings *s,
    struct config_errors *errs);

/**
 * config_get_loader_finish(ld): add the held errors to the loader's list,
 * sorted by file and line (in report order within a line), and free ${ld}.
 * Returns 0 if nothing was reported, -1 otherwise (even if the lines were
 * lost to a lack of memory).
 */
int config_get_loader_finish(struct config_get_loader *ld);

/**
 * config_get_file_name(path, file): a new string naming ${file}, which
 * libconfig names while reading ${path} (NULL: ${path} itself).  An
 * @include'd file is named as written but was opened relative to ${path}'s
 * directory, so it is shown that way.  The caller frees it; NULL if memory
 * runs out.
 */
char *config_get_file_name(const char *path, const char *file);

/** config_get_open_root(g, ld, root): make ${g} read libconfig's ${root}. */
void config_get_open_root(struct config_get_group *g,
    struct config_get_loader *ld, const config_setting_t *root);

/**
 * config_get_open(g, parent, name): make ${g} read group ${name} of
 * ${parent}, asking ${parent} for ${name}.  Returns 0 if it is there, 1 if
 * absent, -1 (reported) if it is not a group; in the last two cases ${g}
 * reads as an empty group whose missing members are reported where
 * ${parent} stands.
 */
int config_get_open(struct config_get_group *g, struct config_get_group *parent,
    const char *name);

/**
 * config_get_open_elem(g, parent, list, i): make ${g} read element ${i} of
 * the list ${list}, member of ${parent} (which is asked for ${list}).
 * Returns 0, or -1 (reported) if the element is not a group.
 */
int config_get_open_elem(struct config_get_group *g,
    struct config_get_group *parent, const char *list, size_t i);

/**
 * config_get_close(g): report every member of ${g} that no getter asked
 * for, as "unknown setting (allowed: ...)" with the names that were asked
 * for.  Call it once, after the last getter of ${g}.
 */
void config_get_close(const struct config_get_group *g);

/**
 * config_get_member(g, name): member ${name} of ${g}, or NULL if absent.
 * ${name} counts as asked for: it is a known setting of ${g} from now on,
 * and is kept by pointer, so it must outlive ${g} (every caller passes a
 * string literal).  Every getter below asks through it.
 */
const config_setting_t *config_get_member(struct config_get_group *g,
    const char *name);

/**
 * config_get_where(g, at): the file and line of ${at}, or of ${g} itself
 * (where it would be, if absent) when ${at} is NULL.  The file name lives
 * as long as the settings.  The root group, which has no line, is at line 1.
 */
struct config_where config_get_where(const struct config_get_group *g,
    const config_setting_t *at);

/**
 * config_get_name(g, name, buf, len): ${name} with ${g}'s prefix, such as
 * "tickets.mode", in ${buf}; returns ${buf}.
 */
const char *config_get_name(const struct config_get_group *g, const char *name,
    char *buf, size_t len);

/**
 * config_get_report(g, at, setting, fmt, ...): hold "FILE:LINE: ${setting}:
 * message" at ${at}'s position (${g}'s when ${at} is NULL); the load fails.
 */
void config_get_report(const struct config_get_group *g,
    const config_setting_t *at, const char *setting, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/**
 * config_get_missing(g, name, allowed): report that required setting
 * ${name} is missing from ${g}; ${allowed} says what it should be.
 */
void config_get_missing(const struct config_get_group *g, const char *name,
    const char *allowed);

/** config_get_bool(g, name, def, out): true or false. */
int config_get_bool(struct config_get_group *g, const char *name, int def, int *out);

/** config_get_int(g, name, min, max, def, out): integer in [${min}, ${max}]. */
int config_get_int(struct config_get_group *g, const char *name,
    int64_t min, int64_t max, int64_t def, int64_t *out);

/**
 * config_get_duration(g, name, min, max, def, out): seconds in [${min},
 * ${max}], written as an integer of seconds or a string such as "12h".
 */
int config_get_duration(struct config_get_group *g, const char *name,
    int64_t min, int64_t max, int64_t def, int64_t *out);

/**
 * config_get_string(g, name, allowed, out): a non-empty string; ${allowed}
 * describes it in messages.  ${*out} points into the libconfig tree (NULL
 * unless 0 is returned).
 */
int config_get_string(struct config_get_group *g, const char *name,
    const char *allowed, const char **out);

/**
 * config_get_text(g, name, allowed, out, where): config_get_string(), with
 * the string copied into ${*out} (the caller frees it) and its position in
 * ${*where} (unless NULL).  ${*out} is left alone if the setting is absent or bad.
 */
int config_get_text(struct config_get_group *g, const char *name,
    const char *allowed, char **out, struct config_where *where);

/**
 * config_get_choice(g, name, choices, def, out): a string that is one of
 * ${choices}; ${*out} is its value.
 */
int config_get_choice(struct config_get_group *g, const char *name,
    const struct config_get_choice *choices, int def, int *out);

/**
 * config_get_choice_set(g, name, choices, def, out): a non-empty list or
 * array of strings from ${choices}; ${*out} is their values ORed together,
 * or ${def} unless 0 is returned.
 */
int config_get_choice_set(struct config_get_group *g, const char *name,
    const struct config_get_choice *choices, unsigned def, unsigned *out);

/**
 * config_get_strings(g, name, allowed, check, out, n, where): a non-empty
 * list or array of non-empty strings, each accepted by ${check} (NULL:
 * any), which returns NULL or why a string is not allowed.  The strings
 * are copied into a new array in ${*out} of ${*n}, freed with
 * config_strings_free(); ${*out} is NULL unless 0 is returned.
 */
int config_get_strings(struct config_get_group *g, const char *name,
    const char *allowed, const char *(*check)(const char *), char ***out, size_t *n,
    struct config_where *where);

/** config_strings_free(v, n): free the ${n} strings of ${v} and ${v}; NULL is fine. */
void config_strings_free(char **v, size_t n);

/**
 * config_strings_copy(from, n, out): a deep copy of ${n} strings in
 * ${*out} (NULL when ${from} is); 0, or -1 when memory runs out.
 */
int config_strings_copy(char *const *from, size_t n, char ***out);

/**
 * config_get_group_list(g, name, allowed, n): ${name} is a non-empty list
 * of groups, read with config_get_open_elem(); its length in ${*n}.
 */
int config_get_group_list(struct config_get_group *g, const char *name,
    const char *allowed, size_t *n);

/**
 * config_get_path(g, name, allowed, out, where): config_get_text() of a
 * path to a file (not a directory) that this process can read now, so
 * that a typo is a config error with a line number rather than a failure
 * at startup.  ${*out} is NULL unless 0 is returned.
 */
int config_get_path(struct config_get_group *g, const char *name,
    const char *allowed, char **out, struct config_where *where);

/**
 * config_get_addr(g, name, numeric, allowed, hp): "host:port" parsed into
 * ${hp}; with ${numeric} the host must be an IP literal.  ${hp} is zeroed
 * unless 0 is returned.
 */
int config_get_addr(struct config_get_group *g, const char *name,
    int numeric, const char *allowed, struct hostport *hp);

/**
 * config_get_printable(in, quotes, buf, len): ${in} made safe for a
 * one-line message in ${buf} (${len} >= 16): control characters and '"'
 * become \xNN, long values are cut with "...", and with ${quotes} it is
 * put in double quotes.  Returns ${buf}.
 */
const char *config_get_printable(const char *in, int quotes, char *buf,
    size_t len);

/** config_get_type_name(st): "an integer", "a string", ... for messages. */
const char *config_get_type_name(const config_setting_t *st);

/**
 * config_get_duration_text(secs, buf, len): ${secs} in the largest unit
 * that divides it exactly ("1d", "12h", "90s", "0") in ${buf}; returns it.
 */
const char *config_get_duration_text(int64_t secs, char *buf, size_t len);

#endif
