/*
 * config_get: the error list, setting locations and typed getters that
 * config.c reads its settings with (see config_get.h).
 */
#define _GNU_SOURCE

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_get.h"
#include "duration.h"

#define DAY		(24 * 60 * 60)
#define DURATION_FORMS \
	"an integer of seconds, or a string such as \"90s\", \"5m\", \"12h\", \"7d\""

/* An error held back so that all of them can be reported in file order. */
struct pending {
	size_t file;			/* 0: the main file, i: s->files[i - 1] */
	int line;
	size_t seq;			/* keeps the order within a line */
	char *text;
};

struct config_get_loader {
	struct settings *s;
	struct config_errors *errs;
	struct pending *pending;
	size_t npending;
	int failed;
};

/* --- The error list ----------------------------------------------------- */

/* "FILE:LINE: setting: msg" in a new string, or NULL. */
static char *
format_line(const char *file, int line, const char *setting, const char *msg)
{
	char where[32] = "", *text;

	if (line > 0)
		snprintf(where, sizeof(where), ":%d", line);
	if (asprintf(&text, "%s%s: %s%s%s", file ? file : "(config)", where,
	    setting ? setting : "", setting ? ": " : "", msg) == -1)
		return NULL;
	return text;
}

/* Append ${text} to ${errs}, which takes it over; frees it on failure. */
static void
errors_push(struct config_errors *errs, char *text)
{
	char **lines;
	size_t cap;

	if (text == NULL)
		return;
	if (errs->count == errs->cap) {
		cap = errs->cap ? errs->cap * 2 : 8;
		if ((lines = realloc(errs->lines, cap * sizeof(*lines))) == NULL) {
			free(text);
			return;
		}
		errs->lines = lines;
		errs->cap = cap;
	}
	errs->lines[errs->count++] = text;
}

void
config_errors_add(struct config_errors *errs, const char *file, int line,
    const char *setting, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errors_push(errs, format_line(file, line, setting, msg));
}

void
config_errors_clear(struct config_errors *errs)
{
	size_t i;

	for (i = 0; i < errs->count; i++)
		free(errs->lines[i]);
	free(errs->lines);
	errs->lines = NULL;
	errs->count = errs->cap = 0;
}

/* --- Locations and held reports ----------------------------------------- */

char *
config_get_file_name(const char *path, const char *file)
{
	const char *slash;
	char *name;

	if (file == NULL || strcmp(file, path) == 0)
		return strdup(path);
	if (file[0] == '/' || (slash = strrchr(path, '/')) == NULL)
		return strdup(file);
	if (asprintf(&name, "%.*s/%s", (int)(slash - path), path, file) == -1)
		return NULL;
	return name;
}

/*
 * ${file}'s display name, kept in ${s} so that it lives as long as the
 * settings.  Out of memory, the main file is a wrong name but a valid one.
 */
static const char *
intern_file(struct settings *s, const char *file)
{
	char *name, **files;
	size_t i;

	if ((name = config_get_file_name(s->path, file)) == NULL)
		return s->path;
	if (strcmp(name, s->path) == 0) {
		free(name);
		return s->path;
	}
	for (i = 0; i < s->nfiles; i++) {
		if (strcmp(s->files[i], name) == 0) {
			free(name);
			return s->files[i];
		}
	}
	if ((files = realloc(s->files, (s->nfiles + 1) * sizeof(*files))) == NULL) {
		free(name);
		return s->path;
	}
	s->files = files;
	s->files[s->nfiles] = name;	/* s->files owns it now */
	return s->files[s->nfiles++];
}

struct config_where
config_get_where(const struct config_get_group *g, const config_setting_t *at)
{
	struct config_where w = { g->ld->s->path, 1 };

	if (at == NULL)
		at = g->at;
	if (at != NULL && config_setting_source_file(at) != NULL)
		w.file = intern_file(g->ld->s, config_setting_source_file(at));
	if (at != NULL && config_setting_source_line(at) > 0)
		w.line = (int)config_setting_source_line(at);
	return w;
}

struct config_get_loader *
config_get_loader_new(struct settings *s, struct config_errors *errs)
{
	struct config_get_loader *ld;

	if ((ld = calloc(1, sizeof(*ld))) == NULL)
		return NULL;
	ld->s = s;
	ld->errs = errs;
	return ld;
}

void
config_get_report(const struct config_get_group *g, const config_setting_t *at,
    const char *setting, const char *fmt, ...)
{
	struct config_get_loader *ld = g->ld;
	struct config_where w = config_get_where(g, at);
	struct pending *p;
	char msg[1024];
	size_t file = 0, i;
	va_list ap;

	ld->failed = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (i = 0; i < ld->s->nfiles; i++)
		if (w.file == ld->s->files[i])
			file = i + 1;
	p = realloc(ld->pending, (ld->npending + 1) * sizeof(*p));
	if (p == NULL)
		return;
	ld->pending = p;
	p = &p[ld->npending];
	*p = (struct pending){ file, w.line, ld->npending, NULL };
	if ((p->text = format_line(w.file, w.line, setting, msg)) != NULL)
		ld->npending++;
}

static int
pending_cmp(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;

	if (x->file != y->file)
		return x->file < y->file ? -1 : 1;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int
config_get_loader_finish(struct config_get_loader *ld)
{
	int failed = ld->failed;
	size_t i;

	if (ld->npending > 0)
		qsort(ld->pending, ld->npending, sizeof(*ld->pending),
		    pending_cmp);
	for (i = 0; i < ld->npending; i++)
		errors_push(ld->errs, ld->pending[i].text);
	free(ld->pending);
	free(ld);
	return failed ? -1 : 0;
}

/* --- Message helpers ---------------------------------------------------- */

const char *
config_get_printable(const char *in, int quotes, char *buf, size_t len)
{
	size_t o = 0, room = len - 8;	/* for "\xNN", "..." and quotes */

	if (quotes)
		buf[o++] = '"';
	for (; *in != '\0' && o < room; in++) {
		if ((unsigned char)*in < 0x20 || *in == 0x7f || *in == '"')
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x",
			    (unsigned char)*in);
		else
			buf[o++] = *in;
	}
	if (*in != '\0')
		o += (size_t)snprintf(buf + o, len - o, "...");
	if (quotes)
		buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

const char *
config_get_type_name(const config_setting_t *st)
{
	switch (st != NULL ? config_setting_type(st) : CONFIG_TYPE_NONE) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a floating-point number";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	default:
		return "nothing";
	}
}

const char *
config_get_duration_text(int64_t secs, char *buf, size_t len)
{
	if (secs == 0)
		snprintf(buf, len, "0");
	else if (secs % DAY == 0)
		snprintf(buf, len, "%lldd", (long long)(secs / DAY));
	else if (secs % 3600 == 0)
		snprintf(buf, len, "%lldh", (long long)(secs / 3600));
	else if (secs % 60 == 0)
		snprintf(buf, len, "%lldm", (long long)(secs / 60));
	else
		snprintf(buf, len, "%llds", (long long)secs);
	return buf;
}

/* '"a", "b", "c"' for messages that list the allowed choices. */
static const char *
choice_list(const struct config_get_choice *choices, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (; choices->name != NULL && o < len; choices++)
		o += (size_t)snprintf(buf + o, len - o, "%s\"%s\"",
		    o ? ", " : "", choices->name);
	return buf;
}

/* --- Groups ------------------------------------------------------------- */

const char *
config_get_name(const struct config_get_group *g, const char *name, char *buf,
    size_t len)
{
	snprintf(buf, len, "%s%s", g->prefix, name);
	return buf;
}

/*
 * Record that ${g} was asked for ${name}.  A group that outgrows the array
 * is a bug in this program, not in the file: it fails every load, once, so
 * that the first test run finds it.
 */
static void
ask(struct config_get_group *g, const char *name)
{
	size_t i;

	for (i = 0; i < g->nasked && i < CONFIG_GET_ASKED_MAX; i++)
		if (strcmp(g->asked[i], name) == 0)
			return;
	if (g->nasked < CONFIG_GET_ASKED_MAX)
		g->asked[g->nasked] = name;
	else if (g->nasked == CONFIG_GET_ASKED_MAX)
		config_get_report(g, NULL, NULL, "internal error: a group "
		    "asked for more than %d settings (raise "
		    "CONFIG_GET_ASKED_MAX)", CONFIG_GET_ASKED_MAX);
	g->nasked++;
}

const config_setting_t *
config_get_member(struct config_get_group *g, const char *name)
{
	ask(g, name);
	return g->st ? config_setting_get_member(g->st, name) : NULL;
}

/* Make ${g} a group with nothing asked for yet. */
static void
group_init(struct config_get_group *g, struct config_get_loader *ld)
{
	g->ld = ld;
	g->st = g->at = NULL;
	g->prefix[0] = '\0';
	g->nasked = 0;
}

void
config_get_open_root(struct config_get_group *g, struct config_get_loader *ld,
    const config_setting_t *root)
{
	group_init(g, ld);
	g->st = g->at = root;
}

/*
 * Finish ${g}'s prefix, written with snprintf() returning ${n}.  Names here
 * are short ("listeners[2]."), so a cut one can only come from a bug: it
 * still ends in '.', and messages are merely shortened.
 */
static void
set_prefix(struct config_get_group *g, int n)
{
	if (n < 0)
		g->prefix[0] = '\0';
	else if ((size_t)n >= sizeof(g->prefix))
		g->prefix[sizeof(g->prefix) - 2] = '.';
}

int
config_get_open(struct config_get_group *g, struct config_get_group *parent,
    const char *name)
{
	const config_setting_t *st = config_get_member(parent, name);
	char full[128];

	group_init(g, parent->ld);
	g->at = parent->st ? parent->st : parent->at;
	set_prefix(g, snprintf(g->prefix, sizeof(g->prefix), "%s%s.",
	    parent->prefix, name));
	if (st == NULL)
		return 1;
	if (!config_setting_is_group(st)) {
		config_get_report(parent, st, config_get_name(parent, name, full,
		    sizeof(full)), "expected a group { ... }, got %s",
		    config_get_type_name(st));
		return -1;
	}
	g->st = g->at = st;
	return 0;
}

int
config_get_open_elem(struct config_get_group *g,
    struct config_get_group *parent, const char *list, size_t i)
{
	const config_setting_t *st = config_get_member(parent, list);
	char full[128];

	if (st != NULL)
		st = config_setting_get_elem(st, (unsigned)i);
	group_init(g, parent->ld);
	g->at = st ? st : parent->st ? parent->st : parent->at;
	set_prefix(g, snprintf(g->prefix, sizeof(g->prefix), "%s%s[%zu].",
	    parent->prefix, list, i));
	if (st == NULL || !config_setting_is_group(st)) {
		snprintf(full, sizeof(full), "%s%s[%zu]", parent->prefix, list, i);
		config_get_report(parent, g->at, full, "expected a group { ... }, "
		    "got %s", config_get_type_name(st));
		return -1;
	}
	g->st = st;
	return 0;
}

void
config_get_missing(const struct config_get_group *g, const char *name,
    const char *allowed)
{
	char full[128];

	config_get_report(g, NULL, config_get_name(g, name, full, sizeof(full)),
	    "missing required setting (%s)", allowed);
}

void
config_get_close(const struct config_get_group *g)
{
	const config_setting_t *m;
	char allowed[512], full[128];
	size_t j, n, o = 0;
	int i;

	if (g->st == NULL)
		return;
	n = g->nasked < CONFIG_GET_ASKED_MAX ? g->nasked : CONFIG_GET_ASKED_MAX;
	for (j = 0; j < n && o < sizeof(allowed); j++)
		o += (size_t)snprintf(allowed + o, sizeof(allowed) - o, "%s%s",
		    o ? ", " : "", g->asked[j]);
	for (i = 0; (m = config_setting_get_elem(g->st, (unsigned)i)) != NULL; i++) {
		for (j = 0; j < n; j++)
			if (strcmp(g->asked[j], config_setting_name(m)) == 0)
				break;
		if (j == n)
			config_get_report(g, m, config_get_name(g,
			    config_setting_name(m), full, sizeof(full)),
			    "unknown setting (allowed: %s)", allowed);
	}
}

/* --- Typed getters ------------------------------------------------------ */

static int
is_integer(const config_setting_t *st)
{
	return config_setting_type(st) == CONFIG_TYPE_INT ||
	    config_setting_type(st) == CONFIG_TYPE_INT64;
}

int
config_get_int(struct config_get_group *g, const char *name,
    int64_t min, int64_t max, int64_t def, int64_t *out)
{
	const config_setting_t *st = config_get_member(g, name);
	char full[128];
	long long v;

	*out = def;
	if (st == NULL)
		return 1;
	config_get_name(g, name, full, sizeof(full));
	if (!is_integer(st)) {
		config_get_report(g, st, full, "expected an integer, got %s "
		    "(an integer from %lld to %lld)", config_get_type_name(st),
		    (long long)min, (long long)max);
		return -1;
	}
	if ((v = config_setting_get_int64(st)) < min || v > max) {
		config_get_report(g, st, full, "%lld is out of range "
		    "(an integer from %lld to %lld)", v, (long long)min,
		    (long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

int
config_get_bool(struct config_get_group *g, const char *name, int def, int *out)
{
	const config_setting_t *st = config_get_member(g, name);
	char full[128];

	*out = def;
	if (st == NULL)
		return 1;
	if (config_setting_type(st) != CONFIG_TYPE_BOOL) {
		config_get_name(g, name, full, sizeof(full));
		config_get_report(g, st, full, "expected true or false, got %s",
		    config_get_type_name(st));
		return -1;
	}
	*out = config_setting_get_bool(st) ? 1 : 0;
	return 0;
}

int
config_get_duration(struct config_get_group *g, const char *name,
    int64_t min, int64_t max, int64_t def, int64_t *out)
{
	const config_setting_t *st = config_get_member(g, name);
	char full[128], lo[24], hi[24], shown[96];
	int64_t v;

	*out = def;
	if (st == NULL)
		return 1;
	config_get_name(g, name, full, sizeof(full));
	config_get_duration_text(min, lo, sizeof(lo));
	config_get_duration_text(max, hi, sizeof(hi));
	if (is_integer(st)) {
		v = config_setting_get_int64(st);
		snprintf(shown, sizeof(shown), "%lld", (long long)v);
	} else if (config_setting_type(st) == CONFIG_TYPE_STRING) {
		config_get_printable(config_setting_get_string(st), 1, shown,
		    sizeof(shown));
		if (duration_parse(config_setting_get_string(st), &v) == -1) {
			config_get_report(g, st, full, "%s is not a duration "
			    "(a duration from %s to %s: " DURATION_FORMS ")",
			    shown, lo, hi);
			return -1;
		}
	} else {
		config_get_report(g, st, full, "expected a duration, got %s "
		    "(a duration from %s to %s: " DURATION_FORMS ")",
		    config_get_type_name(st), lo, hi);
		return -1;
	}
	if (v < min || v > max) {
		config_get_report(g, st, full, "%s is out of range "
		    "(a duration from %s to %s: " DURATION_FORMS ")",
		    shown, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

int
config_get_string(struct config_get_group *g, const char *name,
    const char *allowed, const char **out)
{
	const config_setting_t *st = config_get_member(g, name);
	char full[128];

	*out = NULL;
	if (st == NULL)
		return 1;
	config_get_name(g, name, full, sizeof(full));
	if (config_setting_type(st) != CONFIG_TYPE_STRING) {
		config_get_report(g, st, full, "expected a string, got %s (%s)",
		    config_get_type_name(st), allowed);
		return -1;
	}
	if (*config_setting_get_string(st) == '\0') {
		config_get_report(g, st, full, "must not be empty (%s)", allowed);
		return -1;
	}
	*out = config_setting_get_string(st);
	return 0;
}

int
config_get_text(struct config_get_group *g, const char *name,
    const char *allowed, char **out, struct config_where *where)
{
	const char *text;
	int rc;

	if ((rc = config_get_string(g, name, allowed, &text)) != 0)
		return rc;
	if (where != NULL)
		*where = config_get_where(g, config_get_member(g, name));
	if ((*out = strdup(text)) == NULL) {
		config_get_report(g, config_get_member(g, name), name,
		    "out of memory");
		return -1;
	}
	return 0;
}

int
config_get_choice(struct config_get_group *g, const char *name,
    const struct config_get_choice *choices, int def, int *out)
{
	const struct config_get_choice *c;
	char full[128], list[256], allowed[280], shown[96];
	const char *text;
	int rc;

	*out = def;
	snprintf(allowed, sizeof(allowed), "one of %s",
	    choice_list(choices, list, sizeof(list)));
	if ((rc = config_get_string(g, name, allowed, &text)) != 0)
		return rc;
	for (c = choices; c->name != NULL; c++) {
		if (strcmp(c->name, text) == 0) {
			*out = c->value;
			return 0;
		}
	}
	config_get_report(g, config_get_member(g, name), config_get_name(g, name,
	    full, sizeof(full)), "%s is not allowed (%s)",
	    config_get_printable(text, 1, shown, sizeof(shown)), allowed);
	return -1;
}

int
config_get_choice_set(struct config_get_group *g, const char *name,
    const struct config_get_choice *choices, unsigned def, unsigned *out)
{
	const config_setting_t *st = config_get_member(g, name), *e;
	char full[128], list[128], shown[96];
	const struct config_get_choice *c;
	unsigned bits = 0;
	int i, n, bad = 0;

	*out = def;
	if (st == NULL)
		return 1;
	choice_list(choices, list, sizeof(list));
	config_get_name(g, name, full, sizeof(full));
	if (!config_setting_is_list(st) && !config_setting_is_array(st)) {
		config_get_report(g, st, full, "expected a list of strings, got "
		    "%s (one or more of %s)", config_get_type_name(st), list);
		return -1;
	}
	if ((n = config_setting_length(st)) == 0) {
		config_get_report(g, st, full, "empty (one or more of %s)", list);
		return -1;
	}
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(st, (unsigned)i);
		snprintf(full, sizeof(full), "%s%s[%d]", g->prefix, name, i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			config_get_report(g, e, full, "expected a string, got %s "
			    "(one of %s)", config_get_type_name(e), list);
			bad = 1;
			continue;
		}
		for (c = choices; c->name != NULL; c++)
			if (strcmp(c->name, config_setting_get_string(e)) == 0)
				break;
		if (c->name == NULL) {
			config_get_report(g, e, full, "%s is not allowed (one of "
			    "%s)", config_get_printable(config_setting_get_string(e),
			    1, shown, sizeof(shown)), list);
			bad = 1;
			continue;
		}
		bits |= (unsigned)c->value;
	}
	if (bad)
		return -1;
	*out = bits;
	return 0;
}

void
config_strings_free(char **v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int
config_strings_copy(char *const *from, size_t n, char ***out)
{
	size_t i;

	*out = NULL;
	if (from == NULL)
		return 0;
	if ((*out = calloc(n, sizeof(**out))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (((*out)[i] = strdup(from[i])) == NULL) {
			config_strings_free(*out, i);
			*out = NULL;
			return -1;
		}
	}
	return 0;
}

int
config_get_strings(struct config_get_group *g, const char *name,
    const char *allowed, const char *(*check)(const char *), char ***out, size_t *n,
    struct config_where *where)
{
	const config_setting_t *st = config_get_member(g, name), *e;
	char full[128], shown[96];
	const char *text, *why;
	char **v;
	int i, len, bad = 0;

	*out = NULL;
	*n = 0;
	if (st == NULL)
		return 1;
	config_get_name(g, name, full, sizeof(full));
	if (!config_setting_is_list(st) && !config_setting_is_array(st)) {
		config_get_report(g, st, full, "expected a list of strings, got %s (%s)",
		    config_get_type_name(st), allowed);
		return -1;
	}
	if ((len = config_setting_length(st)) == 0) {
		config_get_report(g, st, full, "empty (%s)", allowed);
		return -1;
	}
	if ((v = calloc((size_t)len, sizeof(*v))) == NULL) {
		config_get_report(g, st, full, "out of memory");
		return -1;
	}
	for (i = 0; i < len; i++) {
		e = config_setting_get_elem(st, (unsigned)i);
		snprintf(full, sizeof(full), "%s%s[%d]", g->prefix, name, i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING ||
		    *(text = config_setting_get_string(e)) == '\0') {
			config_get_report(g, e, full, "expected a non-empty string, got %s (%s)",
			    config_setting_type(e) == CONFIG_TYPE_STRING ? "\"\"" :
			    config_get_type_name(e), allowed);
			bad = 1;
		} else if (check != NULL && (why = check(text)) != NULL) {
			config_get_report(g, e, full, "%s %s (%s)",
			    config_get_printable(text, 1, shown, sizeof(shown)), why, allowed);
			bad = 1;
		} else if ((v[i] = strdup(text)) == NULL) {
			config_get_report(g, e, full, "out of memory");
			bad = 1;
		}
	}
	if (bad) {
		config_strings_free(v, (size_t)len);
		return -1;
	}
	*out = v;
	*n = (size_t)len;
	if (where != NULL)
		*where = config_get_where(g, st);
	return 0;
}

int
config_get_group_list(struct config_get_group *g, const char *name,
    const char *allowed, size_t *n)
{
	const config_setting_t *st = config_get_member(g, name);
	char full[128];

	*n = 0;
	if (st == NULL)
		return 1;
	config_get_name(g, name, full, sizeof(full));
	if (!config_setting_is_list(st) && !config_setting_is_array(st)) {
		config_get_report(g, st, full, "expected a list, got %s (%s)",
		    config_get_type_name(st), allowed);
		return -1;
	}
	if (config_setting_length(st) == 0) {
		config_get_report(g, st, full, "empty (%s)", allowed);
		return -1;
	}
	*n = (size_t)config_setting_length(st);
	return 0;
}

int
config_get_path(struct config_get_group *g, const char *name,
    const char *allowed, char **out, struct config_where *where)
{
	const config_setting_t *st = config_get_member(g, name);
	char full[128], shown[300];
	struct stat sb;
	const char *path;
	int rc;

	*out = NULL;
	if ((rc = config_get_string(g, name, allowed, &path)) != 0)
		return rc;
	config_get_name(g, name, full, sizeof(full));
	config_get_printable(path, 0, shown, sizeof(shown));
	if (stat(path, &sb) == -1 || access(path, R_OK) == -1) {
		config_get_report(g, st, full, "cannot read %s: %s (%s)", shown,
		    strerror(errno), allowed);
		return -1;
	}
	if (S_ISDIR(sb.st_mode)) {
		config_get_report(g, st, full, "%s is a directory (%s)", shown,
		    allowed);
		return -1;
	}
	return config_get_text(g, name, allowed, out, where);
}

int
config_get_addr(struct config_get_group *g, const char *name,
    int numeric, const char *allowed, struct hostport *hp)
{
	const config_setting_t *st = config_get_member(g, name);
	char full[128], shown[96], why[128];
	const char *text;
	int rc;

	memset(hp, 0, sizeof(*hp));
	if ((rc = config_get_string(g, name, allowed, &text)) != 0)
		return rc;
	config_get_name(g, name, full, sizeof(full));
	config_get_printable(text, 1, shown, sizeof(shown));
	if (addr_parse(text, hp, why, sizeof(why)) == -1) {
		config_get_report(g, st, full, "%s: %s (%s)", shown, why, allowed);
		return -1;
	}
	if (numeric && !hp->numeric) {
		config_get_report(g, st, full, "%s: host names are not allowed "
		    "here (%s)", shown, allowed);
		memset(hp, 0, sizeof(*hp));
		return -1;
	}
	return 0;
}
