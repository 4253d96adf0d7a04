/*
 * config_include: a scanner of just enough of libconfig's grammar to find
 * its @include directives: the rule is flex's ^[ \t]*@include[ \t]+\"
 * outside block comments and strings, and the name runs to the next
 * unescaped quote, \\ and \" being its only escapes.  Like libconfig, a
 * NUL ends the run of plain characters it is in (libconfig copies each
 * run with strcpy).  Included files are scanned in turn, to libconfig's
 * depth limit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#include "config_get.h"
#include "config_include.h"

#define MAX_DEPTH 10		/* libconfig's MAX_INCLUDE_DEPTH */
#define MAX_FILE (16 << 20)	/* larger files are left to libconfig */
#define NAME_MAX_LEN 4096

struct scan {
	const char *top;	/* the main file's path, for display names */
	const char *dir;
	struct config_errors *errs;
	int failed;
};

static void scan_file(struct scan *sc, const char *path, const char *shown, int depth);

/* Where libconfig opens ${name}: 1.7 takes absolute names as they are. */
static char *
include_path(const struct scan *sc, const char *name)
{
	char *path;

#if LIBCONFIG_VER_MAJOR == 1 && LIBCONFIG_VER_MINOR < 7
	if (asprintf(&path, "%s/%s", sc->dir, name) == -1)
		return NULL;
#else
	if (name[0] == '/')
		return strdup(name);
	if (asprintf(&path, "%s/%s", sc->dir, name) == -1)
		return NULL;
#endif
	return path;
}

/* One directive: ${name} at ${shown}:${line}; scan it if it is a file. */
static void
check_include(struct scan *sc, const char *shown, int line, const char *name, int depth)
{
	char printable[300], *path = include_path(sc, name), *inner;
	struct stat sb;

	if (path == NULL) {
		config_errors_add(sc->errs, shown, line, "@include", "out of memory");
		sc->failed = 1;
		return;
	}
	config_get_printable(name, 1, printable, sizeof(printable));
	if (stat(path, &sb) != 0)
		goto done;	/* libconfig: "cannot open include file" */
	if (!S_ISREG(sb.st_mode)) {
		config_errors_add(sc->errs, shown, line, "@include", "%s is %s (name a "
		    "configuration file, relative to %s)", printable, S_ISDIR(sb.st_mode) ?
		    "a directory" : "not a regular file", sc->dir);
		sc->failed = 1;
		goto done;
	}
	if (depth + 1 < MAX_DEPTH) {
		if ((inner = config_get_file_name(sc->top, name)) == NULL) {
			config_errors_add(sc->errs, shown, line, "@include", "out of memory");
			sc->failed = 1;
			goto done;
		}
		scan_file(sc, path, inner, depth + 1);
		free(inner);
	}
done:
	free(path);
}

/*
 * The name of the directive whose opening quote is at ${*pp}, into
 * ${name}; ${*pp} moves past the closing quote, ${*line} counts the
 * newlines inside.  0, or -1 when no quote closes it (libconfig's error).
 */
static int
include_name(const char **pp, const char *end, int *line, char *name)
{
	const char *p = *pp + 1;
	size_t n = 0;
	int cut = 0;		/* a NUL ended this run of plain characters */

	for (; p < end; p++) {
		char c = *p;

		if (c == '"') {
			name[n] = '\0';
			*pp = p + 1;
			return 0;
		}
		if (c == '\\') {
			cut = 0;
			if (p + 1 < end && (p[1] == '\\' || p[1] == '"'))
				c = *++p;
			else
				continue;	/* flex echoes a lone backslash: not in the name */
		} else if (c == '\0')
			cut = 1;
		if (c == '\n')
			(*line)++;
		if (!cut && n < NAME_MAX_LEN - 1)
			name[n++] = c;
	}
	return -1;
}

/* Scan ${len} bytes of ${text}, the file ${shown}, for directives. */
static void
scan_text(struct scan *sc, const char *text, size_t len, const char *shown, int depth)
{
	enum { CODE, COMMENT, STRING } state = CODE;
	const char *p = text, *end = text + len;
	char *name = malloc(NAME_MAX_LEN);
	int line = 1, bol = 1;

	if (name == NULL) {
		config_errors_add(sc->errs, shown, 0, "@include", "out of memory");
		sc->failed = 1;
		return;
	}
	while (p < end) {
		if (state == CODE && bol) {
			const char *q = p + strspn(p, " \t");
			size_t at = q < end ? (size_t)(end - q) : 0;

			bol = 0;
			if (at > 8 && memcmp(q, "@include", 8) == 0 &&
			    (q[8] == ' ' || q[8] == '\t')) {
				q += 8 + strspn(q + 8, " \t");
				if (q < end && *q == '"') {
					int at_line = line;

					p = q;
					if (include_name(&p, end, &line, name) != 0)
						break;
					check_include(sc, shown, at_line, name, depth);
					continue;
				}
			}
		}
		switch (state) {
		case CODE:
			if (*p == '"')
				state = STRING;
			else if (*p == '/' && p + 1 < end && p[1] == '*') {
				state = COMMENT;
				p++;
			} else if (*p == '#' || (*p == '/' && p + 1 < end && p[1] == '/')) {
				while (p + 1 < end && p[1] != '\n')
					p++;
			}
			break;
		case COMMENT:
			if (*p == '*' && p + 1 < end && p[1] == '/') {
				state = CODE;
				p++;
			}
			break;
		case STRING:
			if (*p == '\\' && p + 1 < end)
				p++;
			else if (*p == '"')
				state = CODE;
			break;
		}
		/* flex's ^: only right after a newline, whatever state it was in. */
		bol = *p == '\n';
		if (bol)
			line++;
		p++;
	}
	free(name);
}

/*
 * Read ${path} (a regular file) and scan it; a file that cannot be read is
 * libconfig's to report.
 */
static void
scan_file(struct scan *sc, const char *path, const char *shown, int depth)
{
	struct stat sb;
	char *text;
	ssize_t n;
	size_t len = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) == -1)
		return;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > MAX_FILE ||
	    (text = malloc((size_t)sb.st_size + 1)) == NULL) {
		close(fd);
		return;
	}
	while (len < (size_t)sb.st_size &&
	    ((n = read(fd, text + len, (size_t)sb.st_size - len)) > 0 ||
	    (n == -1 && errno == EINTR)))
		len += n > 0 ? (size_t)n : 0;
	close(fd);
	text[len] = '\0';
	scan_text(sc, text, len, shown, depth);
	free(text);
}

int
config_include_check(const char *path, const char *dir, struct config_errors *errs)
{
	struct scan sc = { path, dir, errs, 0 };

	scan_file(&sc, path, path, 0);
	return sc.failed ? -1 : 0;
}
