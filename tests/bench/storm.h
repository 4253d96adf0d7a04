#ifndef STORM_H
#define STORM_H

/*
 * The storm generator's shared declarations: its options, the counters
 * that every worker process keeps in shared memory, one worker's state
 * (struct storm_proc) and one simulated device (struct dev).
 *
 * stormgen.c parses the options and runs the worker processes;
 * storm_proc.c is one worker's event loop, timers, arrivals and record
 * file; storm_dev.c is one device's connection: TCP from its own source
 * address, TLS, MQTT CONNECT and CONNACK, keepalive, and the backoff
 * before its next attempt.
 */

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "mqtt_wire.h"

struct timer_heap;

struct storm_opts {
	struct sockaddr_in server;	/* where devices connect (the balancer) */
	int devices;			/* persistent devices, all processes */
	int procs;			/* worker processes */
	int tls12_pct;			/* share of devices on TLS 1.2, percent */
	uint32_t src_base;		/* first source address, host order */
	int src_count;			/* source addresses, devices spread over them */
	double ramp;			/* devices started per second at the start */
	double backoff_base;		/* s: full jitter, U(0, min(cap, base * 2^n)) */
	double backoff_cap;		/* s */
	double attempt_timeout;		/* s: TCP connect to CONNACK */
	unsigned keepalive;		/* s: MQTT keepalive; PINGREQ that often */
	double hold;			/* s connected before a clean disconnect; <0: stay */
	double gap;			/* s before reconnecting after that disconnect */
	int fresh;			/* never offer a session: full handshakes only */
	int clean;			/* MQTT clean session flag */
	double arrivals;		/* one-shot full-handshake clients per second */
	double arrivals_after;		/* s before the first arrival */
	double duration;		/* s: the run ends by itself after this */
	const char *records;		/* the record file, appended to */
	const char *id_prefix;		/* MQTT client id prefix */
	const char *sni;
	const char *ca;			/* NULL: do not verify */
	const char *ciphers, *ciphersuites;
	uint64_t seed;
};

/* Why an attempt failed; the record's reason word. */
enum fail_kind { F_REFUSED, F_CLOSED, F_HANDSHAKE, F_REJECTED, F_TIMEOUT, F_LOCAL, F_N };
extern const char *const fail_names[F_N];

/* One process's counters, in memory shared with the parent. */
struct storm_counts {
	atomic_int up;			/* devices connected now (CONNACK received) */
	atomic_int devices;		/* persistent devices of this process */
	atomic_ullong attempts, ok, resumed, sp, drops;
	atomic_ullong failed[F_N];
	atomic_ullong arrivals, arrivals_ok, arrivals_skipped;
};

enum dev_kind { K_DEVICE, K_ARRIVAL };

enum dev_phase {
	P_IDLE,			/* not connected: a timer starts the next attempt */
	P_CONNECT,		/* TCP connect under way */
	P_HANDSHAKE,
	P_SEND,			/* writing CONNECT */
	P_CONNACK,		/* waiting for CONNACK */
	P_UP,			/* connected; keepalive or the hold timer runs */
	P_FREE,			/* an arrival slot not in use */
};

struct storm_proc;

struct dev {
	struct storm_proc *p;
	uint32_t idx;			/* in p->devs */
	uint32_t tgen;			/* the generation of its armed timer */
	int id;				/* global number; the MQTT client id's */
	uint8_t kind, phase, tls12, registered;
	uint32_t watching;
	int fd;
	SSL *ssl;
	SSL_SESSION *sess;		/* the newest resumable session */
	struct in_addr src;
	unsigned failures;		/* consecutive failed attempts */
	uint64_t attempt_ns;		/* this attempt's start */
	size_t off;			/* CONNECT bytes written */
	size_t inlen;
	unsigned char in[64];		/* MQTT bytes read, not yet parsed */
};

struct storm_proc {
	const struct storm_opts *o;
	int index;			/* worker number */
	struct storm_counts *c;
	int ep;
	SSL_CTX *ctx12, *ctx13;
	struct dev *devs;		/* devices first, then arrival slots */
	uint32_t ndevs, ndevices, nfree;
	uint32_t *freelist;		/* free arrival slots */
	struct timer_heap *timers;
	uint64_t rng;
	uint64_t next_arrival_ns;
	unsigned arrival_seq;
	int recfd;
	char *rec;			/* records not yet written */
	size_t reclen;
	unsigned char scratch[4096];
};

/* ---- storm_proc.c */

/** now_ns(): CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

/** storm_rand(p): a uniform double in [0, 1) from ${p}'s generator. */
double storm_rand(struct storm_proc *p);

/** storm_arm(p, d, at): make ${at} (ns) ${d}'s one timer. */
void storm_arm(struct storm_proc *p, struct dev *d, uint64_t at);

/** storm_watch(p, d, events): have epoll report ${events} on ${d}'s socket. */
void storm_watch(struct storm_proc *p, struct dev *d, uint32_t events);

/**
 * storm_record(p, d, type, resumed, sp, lat_us, why): append a record line
 * "REALTIME TYPE KIND ID RESUMED SP TLS LATENCY_US WHY": U connected
 * (CONNACK), D connection lost while up, F attempt failed (${why}).
 */
void storm_record(struct storm_proc *p, const struct dev *d, char type, int resumed,
    int sp, uint64_t lat_us, const char *why);

/** storm_release(p, d): put arrival slot ${d} back on the free list. */
void storm_release(struct storm_proc *p, struct dev *d);

/**
 * storm_proc_run(o, index, c): worker ${index}'s whole life: its share of
 * the devices and arrivals, until the run's duration is over or SIGTERM.
 * Returns the exit status.
 */
int storm_proc_run(const struct storm_opts *o, int index, struct storm_counts *c);

/* ---- storm_dev.c */

/** dev_ctx_new(o, tls12): the client context devices of one TLS version share. */
SSL_CTX *dev_ctx_new(const struct storm_opts *o, int tls12);

/** dev_attempt(d): start a connection attempt now. */
void dev_attempt(struct dev *d);

/** dev_io(d, events): epoll says ${events} on ${d}'s socket. */
void dev_io(struct dev *d, uint32_t events);

/** dev_timer(d): ${d}'s armed timer is due. */
void dev_timer(struct dev *d);

/** dev_close(d, rst): close ${d}'s connection, if any, at the end of the run. */
void dev_close(struct dev *d, int rst);

#endif
