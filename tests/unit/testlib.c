/*
 * testlib: the unit tests' temporary directory, file writers, config
 * loaders and error-line assertions (see testlib.h).
 */
#define _GNU_SOURCE

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"

#define TL_MAX_PATHS 64

static char *dir;
static char *paths[TL_MAX_PATHS];
static size_t npaths;

void
tl_setup(void)
{
	const char *tmp = getenv("TMPDIR");

	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	ck_assert(asprintf(&dir, "%s/tlsproxy-test.XXXXXX", tmp) != -1);
	ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp in %s failed", tmp);
}

static int
remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
tl_teardown(void)
{
	size_t i;

	if (dir != NULL) {
		/* Depth first, and never follow a symlink out of the directory. */
		nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
		free(dir);
		dir = NULL;
	}
	for (i = 0; i < npaths; i++)
		free(paths[i]);
	npaths = 0;
}

const char *
tl_dir(void)
{
	ck_assert_msg(dir != NULL, "tl_setup() was not called");
	return dir;
}

/* Keep ${p} until teardown, so that callers get a stable pointer. */
static const char *
keep(char *p)
{
	ck_assert(p != NULL);
	ck_assert(npaths < TL_MAX_PATHS);
	paths[npaths++] = p;
	return p;
}

const char *
tl_write_bytes(const char *name, const void *content, size_t len, mode_t mode)
{
	char *path;
	int fd;

	ck_assert(asprintf(&path, "%s/%s", tl_dir(), name) != -1);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_msg(fd != -1, "cannot create %s", path);
	ck_assert(write(fd, content, len) == (ssize_t)len);
	/* fchmod, because open()'s mode is filtered by the umask. */
	ck_assert(fchmod(fd, mode) == 0);
	ck_assert(close(fd) == 0);
	return keep(path);
}

const char *
tl_write(const char *name, const char *content, mode_t mode)
{
	return tl_write_bytes(name, content, strlen(content), mode);
}

void
tl_placeholders(void)
{
	tl_write("cert.pem", "placeholder certificate\n", 0644);
	tl_write("key.pem", "placeholder key\n", 0600);
	tl_write("ca.pem", "placeholder CA\n", 0644);
	tl_write("ticket.seed", "0123456789abcdef0123456789abcdef\n", 0600);
}

const char *
tl_config(const char *text)
{
	return tl_write_conf("tlsproxy.conf", text);
}

const char *
tl_write_conf(const char *name, const char *text)
{
	const char *at, *mark = "@DIR@";
	char *out;
	size_t len;
	FILE *fp;

	/* Replace every @DIR@ by the temporary directory. */
	ck_assert((fp = open_memstream(&out, &len)) != NULL);
	while ((at = strstr(text, mark)) != NULL) {
		fwrite(text, 1, (size_t)(at - text), fp);
		fputs(tl_dir(), fp);
		text = at + strlen(mark);
	}
	fputs(text, fp);
	ck_assert(fclose(fp) == 0);
	name = tl_write(name, out, 0644);
	free(out);
	return name;
}

struct settings *
tl_load(const char *text, struct config_errors *errs)
{
	return settings_load(tl_config(text), errs);
}

const char *
tl_dump(const struct config_errors *errs)
{
	static char buf[16384];
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < errs->count && o < sizeof(buf); i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "  %s\n",
		    errs->lines[i]);
	if (errs->count == 0)
		snprintf(buf, sizeof(buf), "  (none)\n");
	return buf;
}

struct settings *
tl_load_ok(const char *text)
{
	struct config_errors errs = { 0 };
	struct settings *s;

	s = tl_load(text, &errs);
	ck_assert_msg(s != NULL, "load failed:\n%s", tl_dump(&errs));
	ck_assert_msg(errs.count == 0, "load succeeded with errors:\n%s",
	    tl_dump(&errs));
	config_errors_clear(&errs);
	return s;
}

void
tl_load_fail(const char *text, struct config_errors *errs)
{
	struct settings *s;

	s = tl_load(text, errs);
	ck_assert_msg(s == NULL, "load succeeded but should have failed");
	ck_assert_msg(errs->count > 0, "load failed without an error line");
}

int
tl_has_error(const struct config_errors *errs, const char *file, int line,
    const char *substr)
{
	char prefix[4200], conf[4100];
	size_t i;

	if (file == NULL) {
		snprintf(conf, sizeof(conf), "%s/tlsproxy.conf", tl_dir());
		file = conf;
	}
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%d: ", file, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", file);
	for (i = 0; i < errs->count; i++)
		if (strncmp(errs->lines[i], prefix, strlen(prefix)) == 0 &&
		    strstr(errs->lines[i], substr) != NULL)
			return 1;
	return 0;
}

int
tl_run(Suite *suite)
{
	SRunner *sr = srunner_create(suite);
	int failed;

	/* TAP on stdout for automake's tap-driver; a fork per test unless
	 * CK_FORK=no asks otherwise (valgrind runs). */
	srunner_set_tap(sr, "-");
	srunner_set_fork_status(sr, getenv("CK_FORK") != NULL ? CK_FORK_GETENV : CK_FORK);
	srunner_run_all(sr, CK_SILENT);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
