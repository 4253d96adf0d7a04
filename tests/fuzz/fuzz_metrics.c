/*
 * fuzz_metrics: arbitrary bytes as an HTTP request to the metrics
 * endpoint, the real one: metrics_new() on 127.0.0.1 and metrics_start()
 * serve it from their own thread with libevent's evhttp, as the daemon
 * does.  Each input is sent on a new TCP connection, whose sending side
 * is then shut; the answer is read to the end.  Checks: an answer comes
 * within 20 seconds of time the process ran (the request is all there:
 * nothing should wait for more), and it is nothing or an HTTP response;
 * a 200 carries the exposition format and the process counters.  The
 * connection is reset at the end: no TIME_WAIT piles up over millions
 * of runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/thread.h>

#include "fuzzlib.h"
#include "../../src/addr.h"
#include "../../src/log.h"
#include "../../src/metrics.h"

#define ANSWER_MAX (1 << 20)
#define WAIT_MS 20000		/* of time the process ran: see wait_for() */
#define SLICE_MS 100

static struct metrics *metrics;
static struct hostport where;
static char *answer;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
cleanup(void)
{
	metrics_free(metrics);
	free(answer);
}

/* A port free a moment ago: bind port 0, note it, close. */
static unsigned
free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
		fz_fail("cannot find a free port: %s", strerror(errno));
	close(fd);
	return ntohs(sin.sin_port);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char text[32], why[256] = "";

	log_set_level(LOG_LEVEL_ERROR);
	/* As main() does: metrics_free() wakes the server's thread. */
	if (evthread_use_pthreads() != 0)
		fz_fail("libevent has no thread support");
	if ((answer = malloc(ANSWER_MAX + 1)) == NULL)
		fz_fail("out of memory");
	/* Another process may take the port between the probe and the bind. */
	for (int tries = 0; tries < 10 && metrics == NULL; tries++) {
		snprintf(text, sizeof(text), "127.0.0.1:%u", free_port());
		if (addr_parse(text, &where, why, sizeof(why)) != 0)
			fz_fail("%s: %s", text, why);
		metrics = metrics_new(&where, NULL, 0, why, sizeof(why));
	}
	if (metrics == NULL || metrics_start(metrics) != 0)
		fz_fail("cannot serve metrics: %s", why);
	metrics_set_tickets(metrics, "0123456789abcdef", "", 3600);
	atexit(cleanup);
	return 0;
}

/* The connection's TCP state, for a failure message: whose turn it was. */
static const char *
tcp_state(int fd)
{
	static char text[160];
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
		return "unknown";
	snprintf(text, sizeof(text), "state %u, unacked %u, retransmits %u",
	    ti.tcpi_state, ti.tcpi_unacked, ti.tcpi_total_retrans);
	return text;
}

/* The status of "HTTP/<version> NNN reason" in ${a}, or 0 if it is not that. */
static int
status_code(const char *a)
{
	const char *sp = strchr(a, ' '), *eol = strchr(a, '\n');

	if (strncmp(a, "HTTP/", 5) != 0 || sp == NULL || (eol != NULL && sp > eol) ||
	    strspn(sp + 1, "0123456789") != 3 || sp[4] != ' ')
		return 0;
	return atoi(sp + 1);
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait until ${fd} is ready for ${events}, spending at most ${*budget} ms
 * of time in which this process ran: the fuzzers run under SCHED_IDLE on a
 * shared machine, where every thread of the process may get no CPU for
 * seconds.  A slice that ends much later than asked is counted as if it
 * had ended on time.  1 when ready, 0 when the budget is spent.
 */
static int
wait_for(int fd, short events, long *budget)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	while (*budget > 0) {
		long start = now_ms(), spent;
		int n = poll(&pfd, 1, SLICE_MS);

		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			fz_fail("poll: %s", strerror(errno));
		spent = now_ms() - start;
		*budget -= spent < 2 * SLICE_MS ? spent : 2 * SLICE_MS;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct linger reset = { 1, 0 };
	long budget = WAIT_MS;
	size_t got = 0, sent = 0;
	ssize_t n;
	int status;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), err = 0;
	socklen_t errlen = sizeof(err);

	/* Non-blocking: libFuzzer's SIGALRM would interrupt a blocking connect. */
	if (fd == -1 || (connect(fd, (const struct sockaddr *)&where.sa, where.salen) != 0 &&
	    errno != EINPROGRESS && errno != EINTR))
		fz_fail("cannot connect to the metrics port: %s", strerror(errno));
	if (!wait_for(fd, POLLOUT, &budget) ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) != 0 || err != 0)
		fz_fail("cannot connect to the metrics port: %s", err != 0 ? strerror(err) :
		    "no answer");
	/* The server may answer and close before it has read everything. */
	while (sent < size) {
		if (!wait_for(fd, POLLOUT, &budget))
			fz_fail("the metrics server read nothing for 20 s (TCP %s)", tcp_state(fd));
		if ((n = send(fd, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT)) < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			break;		/* closed by the server: an answer to read */
		}
		sent += (size_t)n;
	}
	shutdown(fd, SHUT_WR);
	for (;;) {
		if (!wait_for(fd, POLLIN, &budget))
			fz_fail("no end to the answer after 20 s (%zu bytes so far; TCP %s)", got,
			    tcp_state(fd));
		n = recv(fd, answer + got, ANSWER_MAX - got, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0 || (got += (size_t)n) == ANSWER_MAX)
			break;
	}
	answer[got] = '\0';
	/* evhttp answers in whatever version the request named (HTTP/0.1,
	 * HTTP/-1.0): the status code after it is what is checked. */
	status = got > 0 ? status_code(answer) : 0;
	if (got > 0 && status == 0)
		fz_fail("an answer that is not an HTTP status line: \"%.60s\"", answer);
	if (status == 200 && (strstr(answer, "text/plain; version=0.0.4") == NULL ||
	    strstr(answer, "\ntlsproxy_") == NULL))
		fz_fail("a 200 answer without the metrics: \"%.200s\"", answer);
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
	close(fd);
	return 0;
}
