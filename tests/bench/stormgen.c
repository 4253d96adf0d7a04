/*
 * stormgen: simulated MQTT devices for the reconnect-storm benchmark.
 *
 * --devices N devices each connect (TCP from a source address of their
 * own, TLS 1.2 or 1.3, MQTT CONNECT with a fixed client id, CONNACK) and
 * stay connected; when the server side drops one, it reconnects with the
 * jittered exponential backoff of device SDKs, offering the newest session
 * it holds.  --arrivals R adds one-shot clients, a Poisson stream of R per
 * second, each a fresh full handshake, CONNECT, CONNACK and DISCONNECT,
 * with no retry.  --hold S makes the devices leave cleanly S seconds after
 * each CONNACK and come back --gap seconds later (a population that keeps
 * resuming).  storm_dev.c says exactly what a device does.
 *
 * A process holds at most RLIMIT_NOFILE sockets, so the devices are spread
 * over --procs worker processes, each with one epoll loop.  Every second
 * the parent prints one status line summed over the workers:
 *   status t=S up=N devices=N attempts=N ok=N resumed=N sp=N drops=N
 *          failed=N arrivals=N arrivals_ok=N arrivals_skipped=N
 * and at the end one "stormgen ..." line with the same figures and the
 * failures by reason.  Every event of every connection goes to the
 * --records file (see storm_record in storm.h).
 *
 * The run ends by itself after --duration seconds, or on SIGTERM/SIGINT.
 * Exit status 0, 1 on a failure to start, 64 on a usage error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "storm.h"

#define MAX_PROCS 64

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: stormgen --port N [options]\n"
	    "  --host A              server IPv4 address (default 127.0.0.1)\n"
	    "  --devices N           persistent devices (default 1000)\n"
	    "  --procs N             worker processes (default: 1 per 15000 devices)\n"
	    "  --tls12 PCT           percent of devices on TLS 1.2, the rest 1.3 (default 30)\n"
	    "  --src A --src-count N source addresses A, A+1, ... (default 127.100.0.1, one\n"
	    "                        per device)\n"
	    "  --ramp R              devices started per second at the start (default 1000)\n"
	    "  --backoff-base S      first backoff window (default 1)\n"
	    "  --backoff-cap S       largest backoff window (default 120)\n"
	    "  --attempt-timeout S   TCP connect to CONNACK (default 10)\n"
	    "  --keepalive S         MQTT keepalive, PINGREQ that often; 0: none (default 60)\n"
	    "  --hold S --gap S      leave S after each CONNACK, return after gap S\n"
	    "  --fresh               never resume: full handshakes only\n"
	    "  --clean               MQTT clean session (default: persistent sessions)\n"
	    "  --arrivals R          one-shot full-handshake clients per second (Poisson)\n"
	    "  --arrivals-after S    the first arrival S after the start (default 0), so that\n"
	    "                        the devices hold sessions before the arrivals begin\n"
	    "  --duration S          the run ends after S seconds (default 600)\n"
	    "  --records FILE        append one line per connection event\n"
	    "  --id-prefix P         MQTT client id prefix (default \"dev\")\n"
	    "  --sni NAME --ca FILE | --insecure\n"
	    "  --ciphers L --ciphersuites L\n"
	    "  --seed N              jitter and arrival randomness (default 1)\n");
	exit(64);
}

static double
num(const char *s, double lo, double hi)
{
	char *end;
	double v = strtod(s, &end);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi)
		usage();
	return v;
}

static void
parse_args(int argc, char **argv, struct storm_opts *o)
{
	enum { O_PORT = 256, O_HOST, O_DEVICES, O_PROCS, O_TLS12, O_SRC, O_SRCN, O_RAMP,
	    O_BBASE, O_BCAP, O_ATO, O_KA, O_HOLD, O_GAP, O_FRESH, O_CLEAN, O_ARR, O_ARR_AFTER, O_DUR,
	    O_REC, O_PREFIX, O_SNI, O_CA, O_INSECURE, O_CIPHERS, O_SUITES, O_SEED };
	static const struct option lo[] = {
		{ "port", 1, NULL, O_PORT }, { "host", 1, NULL, O_HOST },
		{ "devices", 1, NULL, O_DEVICES }, { "procs", 1, NULL, O_PROCS },
		{ "tls12", 1, NULL, O_TLS12 }, { "src", 1, NULL, O_SRC },
		{ "src-count", 1, NULL, O_SRCN }, { "ramp", 1, NULL, O_RAMP },
		{ "backoff-base", 1, NULL, O_BBASE }, { "backoff-cap", 1, NULL, O_BCAP },
		{ "attempt-timeout", 1, NULL, O_ATO }, { "keepalive", 1, NULL, O_KA },
		{ "hold", 1, NULL, O_HOLD }, { "gap", 1, NULL, O_GAP },
		{ "fresh", 0, NULL, O_FRESH }, { "clean", 0, NULL, O_CLEAN },
		{ "arrivals", 1, NULL, O_ARR }, { "arrivals-after", 1, NULL, O_ARR_AFTER },
		{ "duration", 1, NULL, O_DUR },
		{ "records", 1, NULL, O_REC }, { "id-prefix", 1, NULL, O_PREFIX },
		{ "sni", 1, NULL, O_SNI }, { "ca", 1, NULL, O_CA },
		{ "insecure", 0, NULL, O_INSECURE }, { "ciphers", 1, NULL, O_CIPHERS },
		{ "ciphersuites", 1, NULL, O_SUITES }, { "seed", 1, NULL, O_SEED },
		{ NULL, 0, NULL, 0 },
	};
	const char *host = "127.0.0.1", *src = "127.100.0.1";
	struct in_addr a;
	int c, port = 0, insecure = 0;

	*o = (struct storm_opts){ .devices = 1000, .tls12_pct = 30, .ramp = 1000,
	    .backoff_base = 1, .backoff_cap = 120, .attempt_timeout = 10, .keepalive = 60,
	    .hold = -1, .duration = 600, .id_prefix = "dev", .sni = "localhost", .seed = 1 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_PORT: port = (int)num(optarg, 1, 65535); break;
		case O_HOST: host = optarg; break;
		case O_DEVICES: o->devices = (int)num(optarg, 0, 10000000); break;
		case O_PROCS: o->procs = (int)num(optarg, 1, MAX_PROCS); break;
		case O_TLS12: o->tls12_pct = (int)num(optarg, 0, 100); break;
		case O_SRC: src = optarg; break;
		case O_SRCN: o->src_count = (int)num(optarg, 1, 1 << 24); break;
		case O_RAMP: o->ramp = num(optarg, 0.001, 1e7); break;
		case O_BBASE: o->backoff_base = num(optarg, 0, 3600); break;
		case O_BCAP: o->backoff_cap = num(optarg, 0, 86400); break;
		case O_ATO: o->attempt_timeout = num(optarg, 0.01, 3600); break;
		case O_KA: o->keepalive = (unsigned)num(optarg, 0, 65535); break;
		case O_HOLD: o->hold = num(optarg, 0, 86400); break;
		case O_GAP: o->gap = num(optarg, 0, 86400); break;
		case O_FRESH: o->fresh = 1; break;
		case O_CLEAN: o->clean = 1; break;
		case O_ARR: o->arrivals = num(optarg, 0, 1e6); break;
		case O_ARR_AFTER: o->arrivals_after = num(optarg, 0, 86400); break;
		case O_DUR: o->duration = num(optarg, 0.1, 86400); break;
		case O_REC: o->records = optarg; break;
		case O_PREFIX: o->id_prefix = optarg; break;
		case O_SNI: o->sni = optarg; break;
		case O_CA: o->ca = optarg; break;
		case O_INSECURE: insecure = 1; break;
		case O_CIPHERS: o->ciphers = optarg; break;
		case O_SUITES: o->ciphersuites = optarg; break;
		case O_SEED: o->seed = (uint64_t)num(optarg, 0, 1e15); break;
		default: usage();
		}
	}
	if (optind != argc || port == 0 || (o->ca == NULL) == !insecure ||
	    strlen(o->id_prefix) > 32 || (o->devices == 0 && o->arrivals <= 0))
		usage();
	o->server.sin_family = AF_INET;
	o->server.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &o->server.sin_addr) != 1 || inet_pton(AF_INET, src, &a) != 1)
		usage();
	o->src_base = ntohl(a.s_addr);
	if (o->src_count == 0)
		o->src_count = o->devices > 0 ? o->devices : 1;
	if ((o->src_base >> 24) != 127 || ((o->src_base + (uint32_t)o->src_count - 1) >> 24) != 127) {
		fprintf(stderr, "stormgen: source addresses must stay in 127.0.0.0/8\n");
		exit(64);
	}
	if (o->procs == 0)
		o->procs = o->devices / 15000 + 1;
}

/* Sum the workers' counters into ${t}. */
static void
sum_counts(struct storm_counts *shared, int procs, struct storm_counts *t)
{
	memset(t, 0, sizeof(*t));
#define ADD(f) atomic_store(&t->f, atomic_load(&t->f) + atomic_load(&shared[i].f))
	for (int i = 0; i < procs; i++) {
		ADD(up); ADD(devices); ADD(attempts); ADD(ok); ADD(resumed); ADD(sp); ADD(drops);
		ADD(arrivals); ADD(arrivals_ok); ADD(arrivals_skipped);
		for (int k = 0; k < F_N; k++)
			ADD(failed[k]);
	}
#undef ADD
}

static void
print_counts(const char *head, double t, struct storm_counts *c, int reasons)
{
	unsigned long long failed = 0;

	for (int k = 0; k < F_N; k++)
		failed += atomic_load(&c->failed[k]);
	printf("%s t=%.1f up=%d devices=%d attempts=%llu ok=%llu resumed=%llu sp=%llu drops=%llu"
	    " failed=%llu arrivals=%llu arrivals_ok=%llu arrivals_skipped=%llu", head, t,
	    atomic_load(&c->up), atomic_load(&c->devices), atomic_load(&c->attempts),
	    atomic_load(&c->ok), atomic_load(&c->resumed), atomic_load(&c->sp),
	    atomic_load(&c->drops), failed, atomic_load(&c->arrivals),
	    atomic_load(&c->arrivals_ok), atomic_load(&c->arrivals_skipped));
	if (reasons)
		for (int k = 0; k < F_N; k++)
			printf(" failed_%s=%llu", fail_names[k], atomic_load(&c->failed[k]));
	printf("\n");
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct storm_opts o;
	struct storm_counts *shared, total;
	pid_t pids[MAX_PROCS];
	struct timespec t0, t;
	int live, rc = 0;

	parse_args(argc, argv, &o);
	shared = mmap(NULL, sizeof(*shared) * (size_t)o.procs, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED) {
		perror("stormgen: mmap");
		return 1;
	}
	memset(shared, 0, sizeof(*shared) * (size_t)o.procs);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	fflush(stdout);
	for (int i = 0; i < o.procs; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("stormgen: fork");
			o.procs = i;
			stop = 1;
			rc = 1;
			break;
		}
		if (pids[i] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGTERM);	/* never outlive the parent */
			_exit(storm_proc_run(&o, i, &shared[i]));
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (live = o.procs; live > 0; ) {
		int status;
		pid_t pid;

		if (stop)
			for (int i = 0; i < o.procs; i++)
				kill(pids[i], SIGTERM);
		sleep(1);		/* a signal cuts it short */
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			live--;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
				rc = 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		sum_counts(shared, o.procs, &total);
		print_counts("status", (double)(t.tv_sec - t0.tv_sec) +
		    (double)(t.tv_nsec - t0.tv_nsec) / 1e9, &total, 0);
		/* The workers stop by themselves at --duration; this is a backstop. */
		if ((double)(t.tv_sec - t0.tv_sec) > o.duration + 30)
			stop = 1;
		if ((double)(t.tv_sec - t0.tv_sec) > o.duration + 60)
			for (int i = 0; i < o.procs; i++)
				kill(pids[i], SIGKILL);
	}
	clock_gettime(CLOCK_MONOTONIC, &t);
	sum_counts(shared, o.procs, &total);
	print_counts("stormgen", (double)(t.tv_sec - t0.tv_sec) +
	    (double)(t.tv_nsec - t0.tv_nsec) / 1e9, &total, 1);
	return rc;
}
