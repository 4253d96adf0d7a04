/*
 * duration: parse the config's duration strings ("90s", "5m", "12h", "7d",
 * or a bare count of seconds) into seconds.  No locale, no strtol: the
 * grammar is small enough to check one character at a time, which makes
 * every rejection (sign, space, second unit, overflow) explicit.
 */
#include <stddef.h>
#include <stdint.h>

#include "duration.h"

#define DURATION_MAX INT32_MAX

/* Seconds per unit character, or 0 if ${c} is not a unit. */
static int64_t
unit_seconds(char c)
{
	switch (c) {
	case 's':
		return 1;
	case 'm':
		return 60;
	case 'h':
		return 60 * 60;
	case 'd':
		return 24 * 60 * 60;
	default:
		return 0;
	}
}

int
duration_parse(const char *text, int64_t *secs)
{
	const char *p;
	int64_t value = 0;
	int64_t mult = 1;

	if (text == NULL)
		goto err0;

	/* One or more digits; stop early so that value never overflows. */
	for (p = text; *p >= '0' && *p <= '9'; p++) {
		value = value * 10 + (*p - '0');
		if (value > DURATION_MAX)
			goto err0;
	}
	if (p == text)
		goto err0;

	/* At most one unit, and nothing after it. */
	if (*p != '\0') {
		if ((mult = unit_seconds(*p)) == 0)
			goto err0;
		if (p[1] != '\0')
			goto err0;
	}

	/* value <= 2^31-1 and mult <= 86400, so the product fits in int64_t. */
	if (value * mult > DURATION_MAX)
		goto err0;

	*secs = value * mult;
	return 0;

err0:
	return -1;
}
