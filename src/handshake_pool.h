/*
 * handshake_pool: threads of their own, at the lowest CPU priority, that
 * run the expensive step of full handshakes (the key exchange and the
 * signature) for the workers (full_handshake_priority = "low").
 *
 * In a reconnect storm a worker busy with one full handshake makes every
 * other connection it holds wait: resumptions, relayed traffic.  Moved
 * here, a full handshake uses only the CPU those leave: the kernel
 * preempts a pool thread as soon as a worker has something to do.
 *
 * A job stays owned by its submitter.  The pool calls its run() once on a
 * pool thread, then its done(), which tells the owner's thread
 * (event_active()): the owner must not touch what run() uses until
 * handshake_pool_withdraw() says DONE.
 */
#ifndef TLSPROXY_HANDSHAKE_POOL_H
#define TLSPROXY_HANDSHAKE_POOL_H

enum handshake_job_state {
	HANDSHAKE_JOB_IDLE,		/* not submitted, or withdrawn */
	HANDSHAKE_JOB_QUEUED,
	HANDSHAKE_JOB_RUNNING,
	HANDSHAKE_JOB_DONE,
};

/* Kept by the submitter. */
struct handshake_job {
	struct handshake_job *prev, *next;
	/* On a pool thread, without the pool's lock: the work. */
	void (*run)(struct handshake_job *job);
	/* Then with the lock held, the job already DONE: only tell the
	 * owner's thread (event_active()); never call the pool back. */
	void (*done)(struct handshake_job *job);
	enum handshake_job_state state;	/* changed under the pool's lock */
};

struct handshake_pool;

/**
 * handshake_pool_new(threads, nice): ${threads} threads at CPU priority
 * ${nice} (19: the lowest; the kernel preempts them for any thread of
 * normal priority).  NULL on failure, logged.
 */
struct handshake_pool *handshake_pool_new(unsigned threads, int nice);

/** handshake_pool_free(p): run what is queued, then stop and join the threads.  NULL is fine. */
void handshake_pool_free(struct handshake_pool *p);

/**
 * handshake_pool_submit(p, job): run ${job} on a pool thread: the newest
 * waiting job is the next to run.
 */
void handshake_pool_submit(struct handshake_pool *p, struct handshake_job *job);

/**
 * handshake_pool_withdraw(p, job): ${job}'s state, without waiting.
 * QUEUED: it was waiting and is now withdrawn (run() will not be called);
 * RUNNING: leave it alone, done() will come; DONE: run() and done() have
 * returned, the job is its owner's again.
 */
enum handshake_job_state handshake_pool_withdraw(struct handshake_pool *p,
    struct handshake_job *job);

/** handshake_pool_cancel(p, job): withdraw ${job}, or wait until it is DONE. */
void handshake_pool_cancel(struct handshake_pool *p, struct handshake_job *job);

#endif
