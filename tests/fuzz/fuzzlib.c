/*
 * fuzzlib: the fuzz targets' input reader, temporary directory and
 * failure report (see fuzzlib.h).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzzlib.h"
#include "testlib.h"
#include "../../src/ticket_keys.h"

unsigned
fz_u8(struct fz_in *in)
{
	if (in->left == 0)
		return 0;
	in->left--;
	return *in->p++;
}

unsigned
fz_u16(struct fz_in *in)
{
	unsigned hi = fz_u8(in);

	return hi << 8 | fz_u8(in);
}

const uint8_t *
fz_bytes(struct fz_in *in, size_t max, size_t *len)
{
	const uint8_t *p;
	size_t n = max > 255 ? fz_u16(in) : fz_u8(in);

	if (n > max)
		n %= max + 1;
	if (n > in->left)
		n = in->left;
	p = in->p;
	in->p += n;
	in->left -= n;
	*len = n;
	return p;
}

char *
fz_string(struct fz_in *in, size_t max, char *buf, size_t buflen)
{
	size_t n;
	const uint8_t *p = fz_bytes(in, max < buflen ? max : buflen - 1, &n);

	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

void
fz_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz: check failed: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/*
 * testlib reports every assertion, passed or failed, through check's
 * message channel, which check opens only for a test run.  The targets
 * open it themselves (check exports these, without a header) and call
 * testlib only while setting up, so that it holds a few lines.
 */
void setup_messaging(void);
void teardown_messaging(void);

static int with_keys;
static const char *dir;

static void
teardown(void)
{
	ticket_keys_thread_end();
	tl_teardown();
	if (with_keys)
		tl_pki_teardown();
	teardown_messaging();
}

void
fz_setup(int with_pki)
{
	setup_messaging();
	tl_setup();
	dir = tl_dir();
	if (with_pki) {
		tl_pki_setup();
		tl_pki_write();
		with_keys = 1;
	}
	atexit(teardown);
}

/* testlib keeps 64 paths at most: each name's is made once and kept. */
static const char *
path_of(const char *name)
{
	static struct {
		char *name;
		const char *path;
	} known[8];
	size_t i;

	for (i = 0; i < 8 && known[i].name != NULL; i++)
		if (strcmp(known[i].name, name) == 0)
			return known[i].path;
	if (i == 8 || (known[i].name = strdup(name)) == NULL)
		fz_fail("too many file names, or out of memory");
	known[i].path = tl_path(name);
	return known[i].path;
}

const char *
fz_write_conf(const char *name, const uint8_t *data, size_t len, int substitute)
{
	static const char mark[] = "@DIR@";
	const uint8_t *at;
	const char *path = path_of(name);
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1)
		fz_fail("cannot write %s", path);
	while (len > 0) {
		size_t n = len;

		at = substitute ? memmem(data, len, mark, sizeof(mark) - 1) : NULL;
		if (at != NULL)
			n = (size_t)(at - data);
		if (write(fd, data, n) != (ssize_t)n)
			fz_fail("cannot write %s", path);
		data += n;
		len -= n;
		if (at != NULL) {
			if (write(fd, dir, strlen(dir)) != (ssize_t)strlen(dir))
				fz_fail("cannot write %s", path);
			data += sizeof(mark) - 1;
			len -= sizeof(mark) - 1;
		}
	}
	if (close(fd) != 0)
		fz_fail("cannot write %s", path);
	return path;
}
