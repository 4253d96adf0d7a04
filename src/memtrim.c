/*
 * memtrim: owns the decision to give a worker's freed heap back to the
 * kernel, and the timer that makes it.
 *
 * glibc gives each worker thread a malloc arena of its own, and an arena
 * gives memory back to the kernel only from its top: what is freed below a
 * chunk still in use stays resident, free, for the arena to reuse.  A
 * flood of handshakes that all end (handshake_timeout, garbage, clients
 * that leave) therefore leaves the memory of its peak behind.  Measured
 * with tests/bench/rss_flood.py (2 workers; 1,200 stalled, half-ClientHello
 * or garbage connections, then 300 TLS 1.3 clients, repeated): RSS went
 * 8.6 -> 44 -> 55 -> 58 -> 68 MB over four rounds with 0.8 MB in use, the
 * rest free in the two workers' arenas (malloc_stats: 26 and 30 MB), and
 * never came back: retention, not a leak (valgrind and LeakSanitizer find
 * nothing lost).  malloc_trim(0) gives the free pages of every arena back
 * (madvise(MADV_DONTNEED)); a page used again is faulted in again.
 *
 * It locks and walks every arena, so it never runs per connection: a timer
 * looks every MEMTRIM_CHECK_MS, and trims only once the worker's
 * connections have fallen to half of their peak since the last trim (what
 * was freed is then at least what is still in use) and by MEMTRIM_MIN_DROP
 * at least (below that the memory is not worth a walk).  A steady load,
 * however busy, never trims; a burst that ends trims once.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "memtrim.h"

struct memtrim {
	struct event *timer;
	const size_t *count;	/* the worker's open connections */
	size_t peak;		/* most open at once since the last trim */
	unsigned id;
};

int
memtrim_due(struct memtrim *m, size_t count)
{
	if (count > m->peak / 2 || m->peak - count < MEMTRIM_MIN_DROP)
		return 0;
	m->peak = count;
	return 1;
}

void
memtrim_note(struct memtrim *m, size_t count)
{
	if (count > m->peak)
		m->peak = count;
}

int
memtrim_run(void)
{
	return malloc_trim(0);
}

/* Resident memory in KB, for the debug line; 0 if unknown. */
static unsigned long
rss_kb(void)
{
	unsigned long size, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return resident * (unsigned long)(sysconf(_SC_PAGESIZE) / 1024);
}

static void
on_check(evutil_socket_t fd, short what, void *arg)
{
	struct memtrim *m = arg;
	size_t peak = m->peak, count = *m->count;
	struct timespec t0, t1;
	unsigned long before;

	if (!memtrim_due(m, count))
		return;
	if (!log_enabled(LOG_LEVEL_DEBUG)) {
		memtrim_run();
		return;
	}
	before = rss_kb();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	memtrim_run();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_debug("worker %u: %zu connections, down from %zu: free heap given back in %.1f ms,"
	    " RSS %lu -> %lu KB", m->id, count, peak,
	    (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
	    before, rss_kb());
}

struct memtrim *
memtrim_new(struct event_base *base, const size_t *count, unsigned id)
{
	struct timeval tv = { MEMTRIM_CHECK_MS / 1000, (MEMTRIM_CHECK_MS % 1000) * 1000 };
	struct memtrim *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		goto err0;
	m->count = count;
	m->id = id;
	if ((m->timer = event_new(base, -1, EV_PERSIST, on_check, m)) == NULL)
		goto err1;
	if (event_add(m->timer, &tv) != 0)
		goto err2;
	return m;

err2:
	event_free(m->timer);
err1:
	free(m);
err0:
	log_error("worker %u: cannot set up the heap trim timer", id);
	return NULL;
}

void
memtrim_free(struct memtrim *m)
{
	if (m == NULL)
		return;
	event_free(m->timer);
	free(m);
}
