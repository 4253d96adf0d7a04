/*
 * storm_timer: a binary min-heap of (deadline, device, generation).
 */
#include <stdlib.h>

#include "storm_timer.h"

struct entry {
	uint64_t at;
	uint32_t idx;
	uint32_t gen;
};

struct timer_heap {
	struct entry *e;
	size_t n, cap;
};

struct timer_heap *
theap_new(void)
{
	return calloc(1, sizeof(struct timer_heap));
}

void
theap_free(struct timer_heap *h)
{
	if (h == NULL)
		return;
	free(h->e);
	free(h);
}

int
theap_push(struct timer_heap *h, uint64_t at, uint32_t idx, uint32_t gen)
{
	size_t i;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 1024;
		struct entry *e = realloc(h->e, cap * sizeof(*e));

		if (e == NULL)
			return -1;
		h->e = e;
		h->cap = cap;
	}
	/* Sift up from the new leaf. */
	for (i = h->n++; i > 0 && h->e[(i - 1) / 2].at > at; i = (i - 1) / 2)
		h->e[i] = h->e[(i - 1) / 2];
	h->e[i] = (struct entry){ .at = at, .idx = idx, .gen = gen };
	return 0;
}

int
theap_next(const struct timer_heap *h, uint64_t *at)
{
	if (h->n == 0)
		return 0;
	*at = h->e[0].at;
	return 1;
}

int
theap_pop(struct timer_heap *h, uint64_t now, uint32_t *idx, uint32_t *gen)
{
	struct entry last;
	size_t i, c;

	if (h->n == 0 || h->e[0].at > now)
		return 0;
	*idx = h->e[0].idx;
	*gen = h->e[0].gen;
	last = h->e[--h->n];
	/* Sift the last entry down from the root. */
	for (i = 0; (c = 2 * i + 1) < h->n; i = c) {
		if (c + 1 < h->n && h->e[c + 1].at < h->e[c].at)
			c++;
		if (h->e[c].at >= last.at)
			break;
		h->e[i] = h->e[c];
	}
	if (h->n > 0)
		h->e[i] = last;
	return 1;
}
