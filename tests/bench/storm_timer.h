#ifndef STORM_TIMER_H
#define STORM_TIMER_H

/*
 * A min-heap of deadlines for the storm generator: each entry names a
 * device by index and carries the device's timer generation, so that a
 * device re-arms its one timer by pushing again; entries whose generation
 * is no longer the device's are skipped by the caller when they come due.
 */

#include <stddef.h>
#include <stdint.h>

struct timer_heap;

/** theap_new(): an empty heap, or NULL when out of memory. */
struct timer_heap *theap_new(void);

/** theap_free(h): free ${h}; NULL does nothing. */
void theap_free(struct timer_heap *h);

/**
 * theap_push(h, at, idx, gen): add a deadline ${at} (ns) for device ${idx}
 * with generation ${gen}.  Returns 0, or -1 when out of memory.
 */
int theap_push(struct timer_heap *h, uint64_t at, uint32_t idx, uint32_t gen);

/** theap_next(h, at): 1 and the earliest deadline in ${at}, or 0 if empty. */
int theap_next(const struct timer_heap *h, uint64_t *at);

/**
 * theap_pop(h, now, idx, gen): remove the earliest entry if it is due at
 * or before ${now}; 1 with its ${idx} and ${gen}, or 0 when none is due.
 */
int theap_pop(struct timer_heap *h, uint64_t now, uint32_t *idx, uint32_t *gen);

#endif
