/*
 * memtrim: a worker's freed heap given back to the kernel after a burst.
 *
 * A worker notes how many connections it has after each accept; a timer of
 * its own looks every MEMTRIM_CHECK_MS, and when the count has fallen to
 * half of its peak since the last trim, and by MEMTRIM_MIN_DROP at least,
 * it runs malloc_trim(0).  Nothing runs per connection.
 */
#ifndef TLSPROXY_MEMTRIM_H
#define TLSPROXY_MEMTRIM_H

#include <stddef.h>

#include <event2/event.h>

#define MEMTRIM_CHECK_MS 2000
#define MEMTRIM_MIN_DROP 64

struct memtrim;

/**
 * memtrim_new(base, count, id): a trimmer on ${base} for the worker ${id},
 * whose open connections are *${count} (read on ${base}'s thread only, and
 * which must outlive it).  NULL on failure, logged.
 */
struct memtrim *memtrim_new(struct event_base *base, const size_t *count, unsigned id);

/** memtrim_note(m, count): ${count} connections are open now; keeps the peak. */
void memtrim_note(struct memtrim *m, size_t count);

/**
 * memtrim_due(m, count): with ${count} connections open, true when the
 * connections gone since the last trim leave memory worth giving back:
 * ${count} is at most half the peak and MEMTRIM_MIN_DROP below it.  Then
 * the peak starts again from ${count}.
 */
int memtrim_due(struct memtrim *m, size_t count);

/**
 * memtrim_run(): give the free pages of every malloc arena back to the
 * kernel now; true if some were.
 */
int memtrim_run(void);

/** memtrim_free(m): stop the timer and free ${m}; NULL is fine. */
void memtrim_free(struct memtrim *m);

#endif
