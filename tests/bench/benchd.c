/*
 * benchd: the plaintext backend of the benchmarks; one thread, epoll.
 *
 * What a connection gets depends on its first four bytes:
 *   "SINK"  everything after them is read and thrown away
 *   "SRCE"  the backend sends without end (and throws away what it reads)
 *   "DPLX"  both: throws away what it reads and sends without end
 *   other   echo: every byte, those four included, is sent back
 * A connection closes when the peer's EOF comes (after the echo is flushed)
 * or on any error.  Memory per connection is a small struct; echo data
 * that the peer does not take at once is the only other allocation.
 *
 * usage: benchd [-p PORT] [-a ADDR] [-t SECONDS]
 * Port 0 (the default) takes any free port; "port N" is printed when ready.
 * Runs until SIGTERM or SIGINT, and at most -t SECONDS (default 3600; 0:
 * no limit), so that a forgotten one ends by itself.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_LEN (64 * 1024)
#define MAX_EVENTS 256

enum bmode { B_UNKNOWN, B_ECHO, B_SINK, B_SOURCE, B_DUPLEX };

struct bconn {
	int fd;
	enum bmode mode;
	unsigned char hdr[4];
	size_t hdrlen;
	unsigned char *pending;	/* echo bytes not yet taken by the peer */
	size_t plen, poff;
	int eof;
	uint32_t watching;
};

static unsigned char scratch[BUF_LEN];
static unsigned char source[BUF_LEN];
static volatile sig_atomic_t stop;
static int ep;

static void
on_signal(int sig)
{
	stop = 1;
}

static void
watch(struct bconn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (c->watching != events) {
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		c->watching = events;
	}
}

static void
conn_close(struct bconn *c)
{
	close(c->fd);
	free(c->pending);
	free(c);
}

/* Send bytes back, after any backlog; keep what the peer does not take. */
static int
echo_out(struct bconn *c, const unsigned char *p, size_t len)
{
	ssize_t n = 0;
	unsigned char *q;

	if (c->pending == NULL) {
		n = write(c->fd, p, len);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				return -1;
			n = 0;
		}
	}
	if ((size_t)n == len)
		return 0;
	if ((q = realloc(c->pending, c->plen + len - (size_t)n)) == NULL)
		return -1;
	memcpy(q + c->plen, p + n, len - (size_t)n);
	c->pending = q;
	c->plen += len - (size_t)n;
	return 0;
}

static int
flush_pending(struct bconn *c)
{
	ssize_t n = write(c->fd, c->pending + c->poff, c->plen - c->poff);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	c->poff += (size_t)n;
	if (c->poff == c->plen) {
		free(c->pending);
		c->pending = NULL;
		c->plen = c->poff = 0;
	}
	return 0;
}

/*
 * Decide the mode from the first bytes: held bytes in c->hdr plus ${n}
 * new ones.  Echo gets every byte; a prefix of a magic word is held.
 */
static int
classify(struct bconn *c, const unsigned char *p, size_t n)
{
	static const struct { const char *magic; enum bmode mode; } magics[] = {
		{ "SINK", B_SINK }, { "SRCE", B_SOURCE }, { "DPLX", B_DUPLEX },
	};
	unsigned char first[4];
	size_t have = c->hdrlen + n < 4 ? c->hdrlen + n : 4;
	int prefix = 0;

	memcpy(first, c->hdr, c->hdrlen);
	memcpy(first + c->hdrlen, p, have - c->hdrlen);
	for (size_t i = 0; i < 3; i++) {
		if (memcmp(first, magics[i].magic, have) != 0)
			continue;
		if (have == 4) {
			c->mode = magics[i].mode;	/* the rest is thrown away anyway */
			return 0;
		}
		prefix = 1;
	}
	if (prefix) {
		memcpy(c->hdr, first, have);
		c->hdrlen = have;
		return 0;
	}
	c->mode = B_ECHO;
	if (c->hdrlen > 0 && echo_out(c, c->hdr, c->hdrlen) != 0)
		return -1;
	return echo_out(c, p, n);
}

/* Handle readiness; -1 when the connection is over. */
static int
conn_io(struct bconn *c, uint32_t events)
{
	ssize_t n;

	if (c->pending != NULL && flush_pending(c) != 0)
		return -1;
	if ((c->mode == B_SOURCE || c->mode == B_DUPLEX) && (events & EPOLLOUT)) {
		for (int i = 0; i < 16; i++) {
			n = write(c->fd, source, sizeof(source));
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (n < 0)
				return -1;
		}
	}
	/* Read while there is no echo backlog. */
	for (int i = 0; i < 16 && c->pending == NULL && !c->eof; i++) {
		n = read(c->fd, scratch, sizeof(scratch));
		if (n == 0) {
			c->eof = 1;
			break;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -1;
		}
		if (c->mode == B_UNKNOWN) {
			if (classify(c, scratch, (size_t)n) != 0)
				return -1;
		} else if (c->mode == B_ECHO && echo_out(c, scratch, (size_t)n) != 0)
			return -1;
		/* SINK, SOURCE, DUPLEX: what is read is thrown away. */
	}
	if (c->eof && c->pending == NULL)
		return -1;
	if (c->mode == B_SOURCE || c->mode == B_DUPLEX)
		watch(c, EPOLLIN | EPOLLOUT);
	else
		watch(c, c->pending != NULL ? EPOLLOUT : EPOLLIN);
	return 0;
}

static void
on_accept(int lfd)
{
	for (int i = 0; i < 64; i++) {
		struct epoll_event ev = { .events = EPOLLIN };
		struct bconn *c;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;

		if (fd < 0)
			return;
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->watching = EPOLLIN;
		ev.data.ptr = c;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
			conn_close(c);
	}
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct epoll_event evs[MAX_EVENTS], lev = { .events = EPOLLIN, .data.ptr = NULL };
	socklen_t salen = sizeof(sa);
	const char *addr = "127.0.0.1";
	struct rlimit rl;
	int lfd, one = 1, port = 0, opt;
	double limit = 3600;
	time_t deadline = 0;

	while ((opt = getopt(argc, argv, "p:a:t:")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'a': addr = optarg; break;
		case 't': limit = atof(optarg); break;
		default:
			fprintf(stderr, "usage: benchd [-p PORT] [-a ADDR] [-t SECONDS]\n");
			return 64;
		}
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	memset(source, 's', sizeof(source));
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "benchd: bad address %s\n", addr);
		return 64;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 4096) != 0 || getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0) {
		perror("benchd: listen");
		return 1;
	}
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) != 0) {
		perror("benchd: epoll");
		return 1;
	}
	printf("port %u\n", ntohs(sa.sin_port));
	fflush(stdout);
	if (limit > 0)
		deadline = time(NULL) + (time_t)limit;
	while (!stop && (deadline == 0 || time(NULL) < deadline)) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, 500);

		for (int i = 0; i < n; i++) {
			struct bconn *c = evs[i].data.ptr;

			if (c == NULL)
				on_accept(lfd);
			else if (conn_io(c, evs[i].events) != 0)
				conn_close(c);
		}
	}
	return 0;
}
