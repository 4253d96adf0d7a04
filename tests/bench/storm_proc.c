/*
 * storm_proc: one worker process of the storm generator.  It owns the
 * devices whose global number falls in its share, and its share of the
 * arrivals; one epoll loop drives their sockets, one heap their timers.
 * Every connection, loss and failed attempt becomes a record line in the
 * record file, written in whole lines with O_APPEND so that the workers'
 * lines never mix.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "storm.h"
#include "storm_timer.h"

#define REC_CAP		(256 * 1024)
#define MAX_EVENTS	512
#define FD_SPARE	64		/* descriptors kept for everything else */

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double
storm_rand(struct storm_proc *p)
{
	/* xorshift64*: enough for jitter, and the same run for the same seed. */
	p->rng ^= p->rng >> 12;
	p->rng ^= p->rng << 25;
	p->rng ^= p->rng >> 27;
	return (double)((p->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

void
storm_arm(struct storm_proc *p, struct dev *d, uint64_t at)
{
	d->tgen++;
	if (theap_push(p->timers, at, d->idx, d->tgen) != 0) {
		fprintf(stderr, "stormgen: out of memory for timers\n");
		exit(1);
	}
}

void
storm_watch(struct storm_proc *p, struct dev *d, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = d };

	if (d->registered && d->watching == events)
		return;
	epoll_ctl(p->ep, d->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, d->fd, &ev);
	d->registered = 1;
	d->watching = events;
}

static void
rec_flush(struct storm_proc *p)
{
	size_t off = 0;

	while (off < p->reclen) {
		ssize_t n = write(p->recfd, p->rec + off, p->reclen - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;		/* a lost record is reported by the counts */
		off += (size_t)n;
	}
	p->reclen = 0;
}

void
storm_record(struct storm_proc *p, const struct dev *d, char type, int resumed, int sp,
    uint64_t lat_us, const char *why)
{
	struct timespec ts;
	int n;

	if (p->recfd < 0)
		return;
	if (REC_CAP - p->reclen < 128)
		rec_flush(p);
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(p->rec + p->reclen, REC_CAP - p->reclen,
	    "%lld.%06ld %c %c %d %d %d %d %llu %s\n", (long long)ts.tv_sec,
	    ts.tv_nsec / 1000, type, d->kind == K_ARRIVAL ? 'a' : 'd', d->id, resumed, sp,
	    d->tls12 ? 12 : 13, (unsigned long long)lat_us, why);
	if (n > 0 && (size_t)n < REC_CAP - p->reclen)
		p->reclen += (size_t)n;
}

void
storm_release(struct storm_proc *p, struct dev *d)
{
	d->tgen++;		/* its timer, if any, is void */
	d->phase = P_FREE;
	p->freelist[p->nfree++] = d->idx;
}

/* TLS 1.2 for ${pct} percent of device numbers, spread evenly. */
static int
uses_tls12(int id, int pct)
{
	return (int)(((unsigned)id * 37u) % 100u) < pct;
}

static struct in_addr
source_of(const struct storm_opts *o, int id)
{
	struct in_addr a = { .s_addr = htonl(o->src_base + (uint32_t)(id % o->src_count)) };

	return a;
}

static void
dev_init(struct storm_proc *p, uint32_t idx, int id, enum dev_kind kind)
{
	struct dev *d = &p->devs[idx];

	d->p = p;
	d->idx = idx;
	d->id = id;
	d->kind = (uint8_t)kind;
	d->fd = -1;
	d->tls12 = (uint8_t)uses_tls12(id, p->o->tls12_pct);
	d->src = source_of(p->o, id);
	d->phase = kind == K_ARRIVAL ? P_FREE : P_IDLE;
}

/* Start the arrivals that are due: each takes a free slot, or is skipped. */
static void
arrivals_due(struct storm_proc *p, uint64_t now)
{
	double rate = p->o->arrivals / p->o->procs;

	while (p->next_arrival_ns <= now) {
		p->next_arrival_ns += (uint64_t)(-log(1.0 - storm_rand(p)) / rate * 1e9);
		atomic_fetch_add(&p->c->arrivals, 1);
		if (p->nfree == 0) {
			atomic_fetch_add(&p->c->arrivals_skipped, 1);
			continue;
		}
		struct dev *d = &p->devs[p->freelist[--p->nfree]];

		dev_init(p, d->idx, (int)(p->arrival_seq++ * (unsigned)p->o->procs) + p->index,
		    K_ARRIVAL);
		dev_attempt(d);
	}
}

/* Set up this worker's devices, arrival slots, contexts and files. */
static int
proc_init(struct storm_proc *p, uint64_t t0)
{
	const struct storm_opts *o = p->o;
	struct rlimit rl;
	int lo = (int)((long long)o->devices * p->index / o->procs);
	int hi = (int)((long long)o->devices * (p->index + 1) / o->procs);
	uint32_t slots = 0;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (o->arrivals > 0)
		slots = (uint32_t)(o->arrivals / o->procs * o->attempt_timeout * 1.2) + 16;
	if ((rlim_t)(hi - lo) + FD_SPARE > rl.rlim_cur) {
		fprintf(stderr, "stormgen: worker %d: %d devices, but only %llu descriptors"
		    " (use more --procs)\n", p->index, hi - lo, (unsigned long long)rl.rlim_cur);
		return -1;
	}
	if ((rlim_t)(hi - lo) + slots + FD_SPARE > rl.rlim_cur)
		slots = (uint32_t)(rl.rlim_cur - (rlim_t)(hi - lo) - FD_SPARE);
	p->ndevices = (uint32_t)(hi - lo);
	p->ndevs = p->ndevices + slots;
	p->devs = calloc(p->ndevs ? p->ndevs : 1, sizeof(*p->devs));
	p->freelist = calloc(slots ? slots : 1, sizeof(*p->freelist));
	p->rec = malloc(REC_CAP);
	p->timers = theap_new();
	p->ctx12 = dev_ctx_new(o, 1);
	p->ctx13 = dev_ctx_new(o, 0);
	p->ep = epoll_create1(EPOLL_CLOEXEC);
	p->recfd = o->records ? open(o->records, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)
	    : -1;
	p->rng = (o->seed + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)(p->index + 1) * 0xbf58476d1ce4e5b9ull;
	if (p->devs == NULL || p->freelist == NULL || p->rec == NULL || p->timers == NULL ||
	    p->ctx12 == NULL || p->ctx13 == NULL || p->ep < 0 || (o->records && p->recfd < 0)) {
		fprintf(stderr, "stormgen: worker %d: cannot set up: %s\n", p->index,
		    strerror(errno));
		return -1;
	}
	atomic_store(&p->c->devices, (int)p->ndevices);
	for (uint32_t i = 0; i < p->ndevices; i++) {
		int id = lo + (int)i;

		dev_init(p, i, id, K_DEVICE);
		/* The ramp: global device k starts k / ramp seconds in. */
		storm_arm(p, &p->devs[i], t0 + (uint64_t)((double)id / o->ramp * 1e9));
	}
	for (uint32_t i = p->ndevices; i < p->ndevs; i++) {
		dev_init(p, i, -1, K_ARRIVAL);
		p->freelist[p->nfree++] = i;
	}
	p->next_arrival_ns = o->arrivals > 0 ? t0 + (uint64_t)(o->arrivals_after * 1e9) :
	    UINT64_MAX;
	return 0;
}

int
storm_proc_run(const struct storm_opts *o, int index, struct storm_counts *c)
{
	struct storm_proc *p = calloc(1, sizeof(*p));
	struct epoll_event evs[MAX_EVENTS];
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(o->duration * 1e9), last_flush = t0;
	int rc = 1;

	if (p == NULL)
		return 1;
	p->o = o;
	p->index = index;
	p->c = c;
	p->recfd = -1;
	p->ep = -1;
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGPIPE, SIG_IGN);
	if (proc_init(p, t0) != 0)
		goto out;
	while (!stop) {
		uint64_t now = now_ns(), next = now + 100000000u, at;
		uint32_t idx, gen;
		int n, wait_ms;

		if (now >= end)
			break;
		if (theap_next(p->timers, &at) && at < next)
			next = at;
		if (p->next_arrival_ns < next)
			next = p->next_arrival_ns;
		wait_ms = next > now ? (int)((next - now + 999999) / 1000000) : 0;
		n = epoll_wait(p->ep, evs, MAX_EVENTS, wait_ms);
		for (int i = 0; i < n; i++)
			dev_io(evs[i].data.ptr, evs[i].events);
		now = now_ns();
		while (theap_pop(p->timers, now, &idx, &gen))
			if (p->devs[idx].tgen == gen)
				dev_timer(&p->devs[idx]);
		arrivals_due(p, now);
		if (now - last_flush > 200000000u) {
			rec_flush(p);
			last_flush = now;
		}
	}
	rc = 0;
out:
	for (uint32_t i = 0; i < p->ndevs; i++) {
		dev_close(&p->devs[i], 1);
		SSL_SESSION_free(p->devs[i].sess);
	}
	if (p->recfd >= 0) {
		rec_flush(p);
		close(p->recfd);
	}
	if (p->ep >= 0)
		close(p->ep);
	SSL_CTX_free(p->ctx12);
	SSL_CTX_free(p->ctx13);
	theap_free(p->timers);
	free(p->devs);
	free(p->freelist);
	free(p->rec);
	free(p);
	return rc;
}
