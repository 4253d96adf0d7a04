/*
 * fuzz_config: arbitrary bytes through everything that reads the
 * configuration: as a whole file, through settings_load() and
 * server_check() as `tlsproxy -t` runs them (certificates, keys and CA of
 * the test PKI are in the directory, as @DIR@/server.pem and so on); as a
 * seed file, read by a fixed configuration; as a duration and as an
 * address.  Checks what can be known without the code under test:
 *  - settings_load() fails only with at least one error line;
 *  - a seed file loads exactly when it holds 16 to 4096 bytes after one
 *    trailing "\n" or "\r\n", and the seed is those bytes;
 *  - a duration parses exactly when it is digits and at most one unit of
 *    s, m, h, d, worth at most 2^31-1 seconds, and reads back the same
 *    when written by config_get_duration_text();
 *  - an address that parses has a port from 1 to 65535, and a numeric
 *    one prints back (addr_format) to the same socket address.
 * LeakSanitizer is on: every path must free what it took.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzlib.h"
#include "testlib.h"
#include "../../src/addr.h"
#include "../../src/config.h"
#include "../../src/config_get.h"
#include "../../src/duration.h"
#include "../../src/log.h"
#include "../../src/server.h"

#define TEXT_MAX 512

static const char seed_conf[] =
    "tickets = { seed_file = \"@DIR@/ticket.seed\"; };\n"
    "listeners = ( { name = \"mqtt\"; listen = \"127.0.0.1:8883\";\n"
    "  backend = \"127.0.0.1:1883\"; cert = \"@DIR@/server.pem\";\n"
    "  key = \"@DIR@/server.key\"; } );\n";

static const char *seed_conf_path;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_setup(1);
	log_set_level(LOG_LEVEL_ERROR);
	seed_conf_path = fz_write_conf("seed.conf", (const uint8_t *)seed_conf,
	    sizeof(seed_conf) - 1, 1);
	return 0;
}

static void
whole_file(const uint8_t *data, size_t size)
{
	const char *path = fz_write_conf("tlsproxy.conf", data, size, 1);
	struct config_errors errs = { 0 };
	struct settings *s = settings_load(path, &errs);

	if (s == NULL && errs.count == 0)
		fz_fail("settings_load failed without an error line");
	if (s != NULL)
		server_check(s, &errs);
	settings_free(s);
	config_errors_clear(&errs);
}

static void
seed_file(const uint8_t *data, size_t size)
{
	struct config_errors errs = { 0 };
	struct settings *s;
	size_t want = size;

	fz_write_conf("ticket.seed", data, size, 0);
	if (want > 0 && data[want - 1] == '\n')
		want -= (want > 1 && data[want - 2] == '\r') ? 2 : 1;
	s = settings_load(seed_conf_path, &errs);
	if (want >= 16 && want <= 4096) {
		if (s == NULL)
			fz_fail("a seed of %zu bytes was refused: %s", want,
			    errs.count > 0 ? errs.lines[0] : "(no error)");
		if (s->tickets.seed_len != want || memcmp(s->tickets.seed, data, want) != 0)
			fz_fail("the seed read is not the file's %zu bytes", want);
	} else if (s != NULL)
		fz_fail("a seed of %zu bytes was accepted", want);
	settings_free(s);
	config_errors_clear(&errs);
}

/* The grammar of duration.h, read another way: strtoull and a unit table. */
static int
duration_expected(const char *text, int64_t *secs)
{
	static const char units[] = "smhd";
	static const int64_t mult[] = { 1, 60, 3600, 86400 };
	size_t digits = strspn(text, "0123456789");
	const char *first = text + strspn(text, "0"), *u = NULL;

	if (digits == 0)
		return -1;
	if (text[digits] != '\0' &&
	    (text[digits + 1] != '\0' || (u = strchr(units, text[digits])) == NULL))
		return -1;
	/* More than ten significant digits are over 2^31-1 seconds. */
	if (text + digits - first > 10)
		return -1;
	*secs = (int64_t)strtoull(text, NULL, 10);
	if (text[digits] != '\0')
		*secs *= mult[u - units];
	return *secs <= INT32_MAX ? 0 : -1;
}

static void
duration(const char *text)
{
	int64_t got = -1, want = -1, again = -1;
	int rc = duration_parse(text, &got), wrc = duration_expected(text, &want);
	char buf[32];

	if ((rc == 0) != (wrc == 0))
		fz_fail("duration \"%s\": parsed %d, expected %d", text, rc, wrc);
	if (rc != 0)
		return;
	if (got != want)
		fz_fail("duration \"%s\" is %lld s, expected %lld", text, (long long)got,
		    (long long)want);
	config_get_duration_text(got, buf, sizeof(buf));
	if (duration_parse(buf, &again) != 0 || again != got)
		fz_fail("duration %lld s written as \"%s\" reads back as %lld", (long long)got,
		    buf, (long long)again);
}

static void
address(const char *text)
{
	struct hostport hp, back;
	char why[128], printed[ADDR_TEXT_MAX];

	memset(&hp, 0xA5, sizeof(hp));
	if (addr_parse(text, &hp, why, sizeof(why)) != 0) {
		if (why[0] == '\0')
			fz_fail("address \"%s\" refused without a reason", text);
		return;
	}
	if (hp.port == 0 || strnlen(hp.host, sizeof(hp.host)) == sizeof(hp.host))
		fz_fail("address \"%s\" parsed to port %u or an unterminated host", text, hp.port);
	if (!hp.numeric)
		return;
	addr_format((const struct sockaddr *)&hp.sa, printed, sizeof(printed));
	if (addr_parse(printed, &back, why, sizeof(why)) != 0)
		fz_fail("address \"%s\" printed as \"%s\", which does not parse: %s", text,
		    printed, why);
	if (back.port != hp.port || back.salen != hp.salen ||
	    memcmp(&back.sa, &hp.sa, hp.salen) != 0)
		fz_fail("address \"%s\" printed as \"%s\" is another address", text, printed);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[TEXT_MAX + 1];
	size_t n = size < TEXT_MAX ? size : TEXT_MAX;

	whole_file(data, size);
	seed_file(data, size);
	memcpy(text, data, n);
	text[n] = '\0';
	duration(text);
	address(text);
	return 0;
}
