/*
 * duration: config durations, either a count of seconds or a string with a
 * unit: "90s", "5m", "12h", "7d" (and a bare "30" meaning seconds).
 */
#ifndef TLSPROXY_DURATION_H
#define TLSPROXY_DURATION_H

#include <stdint.h>

/**
 * duration_parse(text, &secs): parse ${text} into seconds.  Returns 0, or -1
 * when the text is not a non-negative integer followed by at most one of the
 * units s, m, h, d, or when the value overflows 2^31-1 seconds.
 */
int duration_parse(const char *text, int64_t *secs);

#endif
