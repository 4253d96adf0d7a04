/*
 * check_relay: the data pump between a real TLS client and a backend.
 *
 * The relay's side is the daemon's: a context from tls_ctx_new(), the
 * client socket under sockbio.c's BIO, flushed after every run as conn.c
 * does, and a socket pair to the backend.  The test is the event loop: it
 * runs the relay only when poll() reports the readiness it asked for, so a
 * wrong wants bit shows as a transfer that stalls.  In between it plays the
 * device (a TLS client on the other end of a socket pair) and the broker.
 *
 * Data both ways arrives intact and in order, and nothing is held back
 * once the relay is idle; the counters count the client's bytes and not a
 * queued PROXY header; half-closes travel each way and the relay finishes
 * when both have, even when the client left at once; resets, a gone
 * backend and a client's garbage fail with a reason; a receiver that does
 * not read holds the relay at one scratch buffer per direction; the
 * backend is not read again until it is reported readable; a TLS 1.3
 * KeyUpdate is answered.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "testlib.h"
#include "../../src/relay.h"
#include "../../src/sockbio.h"

#define SCRATCH_LEN (64 * 1024)		/* a worker's */
#define MAX_TURNS 100000		/* runs between two moves of the test */
#define MIB (1024 * 1024)

static const int versions[] = { TLS1_2_VERSION, TLS1_3_VERSION };

struct rig {
	SSL_CTX *sctx, *cctx;
	struct tl_tls *t;		/* client: the device; server: the relay's SSL */
	struct sockbio_state sock;	/* the BIO state of the relay's client socket */
	int backend, broker;		/* the relay's end of the backend pair, the test's */
	struct relay r;
	enum relay_status status;
	unsigned wants;
	int flushed;			/* the last sockbio_flush() */
	unsigned char scratch[SCRATCH_LEN];
};

static void
set_sndbuf(int fd, int size)
{
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
}

/*
 * A relay between a device of ${version} and the broker, handshake done,
 * not run yet.  ${client_buf} and ${backend_buf}, when not 0, are the send
 * buffers of the relay's two sockets.
 */
static struct rig *
rig_new(int version, int client_buf, int backend_buf)
{
	struct rig *g = calloc(1, sizeof(*g));
	struct settings s;
	struct listener_settings ls;
	struct ticket_keys *tk;
	int sv[2];
	BIO *bio;

	ck_assert_ptr_nonnull(g);
	tl_tls_settings(&s, &ls);
	g->sctx = tl_server_ctx(&s, &ls, &tk);		/* tickets off: no keys */
	g->cctx = tl_client_ctx(version);
	g->t = tl_tls_new(g->cctx, g->sctx, TL_LINK_UNIX);
	ck_assert_msg(tl_tls_handshake(g->t), "client: %s; server: %s", g->t->client_error,
	    g->t->server_error);
	/* From here on the daemon's BIO; the handshake is not what is tested. */
	ck_assert_ptr_nonnull(bio = sockbio_new(&g->sock, g->t->server_fd));
	SSL_set_bio(g->t->server, bio, bio);
	if (client_buf > 0)
		set_sndbuf(g->t->server_fd, client_buf);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	g->backend = sv[0];
	g->broker = sv[1];
	if (backend_buf > 0)
		set_sndbuf(g->backend, backend_buf);
	relay_init(&g->r, g->t->server, g->backend);
	return g;
}

static void
rig_free(struct rig *g)
{
	relay_release(&g->r);
	close(g->backend);
	if (g->broker >= 0)
		close(g->broker);
	tl_tls_free(g->t);
	sockbio_release(&g->sock);	/* after the last close_notify it may hold */
	SSL_CTX_free(g->cctx);
	SSL_CTX_free(g->sctx);
	free(g);
}

/* One run as conn.c's relay_step() does it: relay, then send what the BIO held. */
static void
rig_run(struct rig *g)
{
	g->status = relay_run(&g->r, g->scratch, sizeof(g->scratch), &g->wants);
	if (g->status == RELAY_FAILED)
		return;
	g->flushed = sockbio_flush(&g->sock);
	if (g->flushed == 0)
		g->wants |= RELAY_WANT_CLIENT_WRITE;
}

static short
poll_events(unsigned wants, unsigned rd, unsigned wr)
{
	return (short)(((wants & rd) ? POLLIN : 0) | ((wants & wr) ? POLLOUT : 0));
}

/* Run the relay if what it waits for is ready now; 1 if it ran. */
static int
rig_turn(struct rig *g)
{
	short ce = poll_events(g->wants, RELAY_WANT_CLIENT_READ, RELAY_WANT_CLIENT_WRITE);
	short be = poll_events(g->wants, RELAY_WANT_BACKEND_READ, RELAY_WANT_BACKEND_WRITE);
	struct pollfd p[2] = {
		{ ce ? g->t->server_fd : -1, ce, 0 },
		{ be ? g->backend : -1, be, 0 },
	};

	if (g->status == RELAY_FAILED || (g->status == RELAY_FINISHED && g->flushed != 0))
		return 0;
	if (!(g->wants & RELAY_WANT_AGAIN)) {
		/* One thread: what is not ready now waits for the test's next move. */
		if (poll(p, 2, 0) == 0)
			return 0;
		/* What libevent reports as EV_READ. */
		if ((ce & POLLIN) && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			sockbio_readable(&g->sock);
		if ((be & POLLIN) && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
			relay_backend_readable(&g->r);
	}
	rig_run(g);
	return 1;
}

/* Run the relay until it waits for something that is not ready; how many runs. */
static int
rig_settle(struct rig *g)
{
	int turns = 0;

	while (rig_turn(g))
		ck_assert_msg(++turns < MAX_TURNS, "the relay is ready forever: wants %#x",
		    g->wants);
	return turns;
}

/* The first run, as conn.c makes it once the backend is connected. */
static void
rig_start(struct rig *g)
{
	rig_run(g);
	rig_settle(g);
}

/* ------------------------------------------------------------ the peers */

/* The device sends what fits of ${buf}; bytes sent. */
static size_t
dev_write(struct rig *g, const void *buf, size_t len)
{
	int n, err;

	ERR_clear_error();
	n = SSL_write(g->t->client, buf, (int)len);
	if (n > 0)
		return (size_t)n;
	err = SSL_get_error(g->t->client, n);
	ck_assert_msg(err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ,
	    "device write: SSL error %d", err);
	return 0;
}

/* The device reads what has come; sets ${eof} at the relay's close_notify. */
static size_t
dev_read(struct rig *g, void *buf, size_t len, int *eof)
{
	int n, err;

	ERR_clear_error();
	n = SSL_read(g->t->client, buf, (int)len);
	if (n > 0)
		return (size_t)n;
	err = SSL_get_error(g->t->client, n);
	if (err == SSL_ERROR_ZERO_RETURN)
		*eof = 1;
	else
		ck_assert_msg(err == SSL_ERROR_WANT_READ, "device read: SSL error %d", err);
	return 0;
}

static size_t
broker_write(struct rig *g, const void *buf, size_t len)
{
	ssize_t n = write(g->broker, buf, len);

	if (n < 0) {
		ck_assert_int_eq(errno, EAGAIN);
		return 0;
	}
	return (size_t)n;
}

static size_t
broker_read(struct rig *g, void *buf, size_t len, int *eof)
{
	ssize_t n = read(g->broker, buf, len);

	if (n < 0) {
		ck_assert_msg(errno == EAGAIN, "broker read: %s", strerror(errno));
		return 0;
	}
	if (n == 0)
		*eof = 1;
	return (size_t)n;
}

/* The test's two ends: the TLS client and the backend's peer. */
enum end {
	DEVICE,
	BROKER,
};

/* ${e} sends all of ${msg}. */
static void
send_msg(struct rig *g, enum end e, const char *msg)
{
	size_t len = strlen(msg);

	ck_assert_uint_eq(e == DEVICE ? dev_write(g, msg, len) : broker_write(g, msg, len), len);
}

/* ${e} has finished sending: a close_notify, or shutdown(SHUT_WR). */
static void
send_end(struct rig *g, enum end e)
{
	if (e == DEVICE)
		ck_assert_int_ge(SSL_shutdown(g->t->client), 0);
	else
		ck_assert_int_eq(shutdown(g->broker, SHUT_WR), 0);
}

/*
 * ${e} has received exactly ${msg}, already there, and then the other
 * side's end if ${end}, else nothing more yet.
 */
static void
expect(struct rig *g, enum end e, const char *msg, int end)
{
	char buf[512];
	size_t len = strlen(msg), got = 0, n;
	int eof = 0;

	ck_assert_uint_lt(len, sizeof(buf));
	while (got < len && (n = e == DEVICE ? dev_read(g, buf + got, sizeof(buf) - got, &eof) :
	    broker_read(g, buf + got, sizeof(buf) - got, &eof)) > 0)
		got += n;
	ck_assert_msg(got == len && memcmp(buf, msg, len) == 0, "%s got \"%.*s\", want \"%s\"",
	    e == DEVICE ? "device" : "broker", (int)got, buf, msg);
	n = e == DEVICE ? dev_read(g, buf, sizeof(buf), &eof) :
	    broker_read(g, buf, sizeof(buf), &eof);
	ck_assert_uint_eq(n, 0);
	ck_assert_msg(eof == end, "%s: %s", e == DEVICE ? "device" : "broker",
	    end ? "no end" : "an end too early");
}

/* ${up} from the device to the broker and ${down} back, each there once the relay idles. */
static void
round_trip(struct rig *g, const char *up, const char *down)
{
	send_msg(g, DEVICE, up);
	rig_settle(g);
	expect(g, BROKER, up, 0);
	send_msg(g, BROKER, down);
	rig_settle(g);
	expect(g, DEVICE, down, 0);
}

/* ------------------------------------------------------------ flows */

/* Bytes one way: what is sent, how far, and what came. */
struct flow {
	unsigned char *data, *got;
	size_t total, sent, received;
};

static void
flow_init(struct flow *f, size_t total, uint32_t seed)
{
	memset(f, 0, sizeof(*f));
	f->total = total;
	ck_assert_ptr_nonnull(f->data = malloc(total + 1));
	ck_assert_ptr_nonnull(f->got = malloc(total + 1));
	/* xorshift: a lost, repeated or reordered block shows. */
	for (size_t i = 0; i < total; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 17;
		seed ^= seed << 5;
		f->data[i] = (unsigned char)seed;
	}
}

static void
flow_check(const struct flow *f, const char *what)
{
	size_t i;

	ck_assert_msg(f->received == f->total, "%s: %zu of %zu bytes", what, f->received,
	    f->total);
	for (i = 0; i < f->total && f->got[i] == f->data[i]; i++)
		;
	ck_assert_msg(i == f->total, "%s: byte %zu differs", what, i);
}

static void
flow_free(struct flow *f)
{
	free(f->data);
	free(f->got);
}

static size_t
chunk(const struct flow *f)
{
	size_t left = f->total - f->sent;

	return left < 16384 ? left : 16384;
}

/*
 * Move ${up} (device to broker) and ${down} (broker to device) with the
 * relay in between; the broker and the device read only if ${broker_reads}
 * and ${device_reads}.  Returns 1 when all has arrived, 0 when nothing can
 * move (only when a reader is held back: otherwise that fails the test).
 */
static int
pump(struct rig *g, struct flow *up, struct flow *down, int broker_reads, int device_reads)
{
	int eof = 0;

	while (up->received < up->total || down->received < down->total) {
		int moved = 0;
		size_t n;

		if (up->sent < up->total && (n = dev_write(g, up->data + up->sent, chunk(up))) > 0) {
			up->sent += n;
			moved = 1;
		}
		if (down->sent < down->total &&
		    (n = broker_write(g, down->data + down->sent, down->total - down->sent)) > 0) {
			down->sent += n;
			moved = 1;
		}
		if (rig_settle(g) > 0)
			moved = 1;
		ck_assert_msg(g->status == RELAY_OPEN, "relay status %d: %s", g->status,
		    g->r.error ? g->r.error : "");
		if (broker_reads && (n = broker_read(g, up->got + up->received,
		    up->total - up->received + 1, &eof)) > 0) {
			up->received += n;
			moved = 1;
		}
		if (device_reads && (n = dev_read(g, down->got + down->received,
		    down->total - down->received + 1, &eof)) > 0) {
			down->received += n;
			moved = 1;
		}
		ck_assert_msg(!eof, "an end of data in the middle");
		/* A read may have made room without giving a whole record yet. */
		if (rig_settle(g) > 0)
			moved = 1;
		if (!moved) {
			ck_assert_msg(!broker_reads || !device_reads,
			    "stalled: up %zu sent %zu received, down %zu sent %zu received, "
			    "wants %#x", up->sent, up->received, down->sent, down->received,
			    g->wants);
			return 0;
		}
	}
	return 1;
}

/* ------------------------------------------------------------ tests */

START_TEST(test_both_ways_intact)
{
	struct rig *g = rig_new(versions[_i], 0, 0);
	struct flow up, down;

	flow_init(&up, 3 * MIB, 1);
	flow_init(&down, 3 * MIB, 2);
	rig_start(g);
	ck_assert_int_eq(pump(g, &up, &down, 1, 1), 1);
	flow_check(&up, "device to broker");
	flow_check(&down, "broker to device");
	ck_assert_uint_eq(g->r.bytes_to_backend, up.total);
	ck_assert_uint_eq(g->r.bytes_to_client, down.total);
	/* Idle again: waiting to read either side, holding no buffer. */
	ck_assert_int_eq(g->status, RELAY_OPEN);
	ck_assert_uint_eq(g->wants, RELAY_WANT_CLIENT_READ | RELAY_WANT_BACKEND_READ);
	ck_assert_ptr_null(g->r.to_backend.data);
	ck_assert_ptr_null(g->r.to_client.data);
	flow_free(&up);
	flow_free(&down);
	rig_free(g);
}
END_TEST

START_TEST(test_nothing_held_back)
{
	struct rig *g = rig_new(versions[_i], 0, 0);
	char up[301], down[301];
	uint64_t total = 0;

	rig_start(g);
	/* MQTT-sized messages each way. */
	for (size_t len = 1; len < sizeof(up); len += 23) {
		memset(up, 'a' + (int)(len % 26), len);
		up[len] = '\0';
		memcpy(down, up, len + 1);
		down[0] = '>';
		round_trip(g, up, down);
		total += len;
	}
	ck_assert_uint_eq(g->r.bytes_to_backend, total);
	ck_assert_uint_eq(g->r.bytes_to_client, total);
	rig_free(g);
}
END_TEST

START_TEST(test_proxy_header_not_counted)
{
	/* A small backend buffer: the header goes out in parts. */
	struct rig *g = rig_new(versions[_i], 0, 4096);
	struct flow header, up, none;
	int eof = 0;

	flow_init(&header, 40000, 3);
	memcpy(header.data, "PROXY TCP4 ", 11);
	flow_init(&up, 100000, 4);
	flow_init(&none, 0, 5);
	ck_assert_int_eq(relay_queue_to_backend(&g->r, header.data, header.total), 0);
	/* The device's first bytes come with the header still queued. */
	up.sent = dev_write(g, up.data, chunk(&up));
	ck_assert_uint_gt(up.sent, 0);
	rig_start(g);
	ck_assert_uint_eq(g->r.bytes_to_backend, 0);
	/* The broker reads the header first, all of it, then the device's bytes. */
	while (header.received < header.total) {
		size_t n = broker_read(g, header.got + header.received,
		    header.total - header.received, &eof);

		ck_assert_msg(n > 0 || rig_settle(g) > 0, "the header stalled");
		header.received += n;
	}
	flow_check(&header, "header");
	ck_assert_int_eq(pump(g, &up, &none, 1, 1), 1);
	flow_check(&up, "device to broker");
	ck_assert_uint_eq(g->r.bytes_to_backend, up.total);
	ck_assert_uint_eq(g->r.bytes_to_client, 0);
	flow_free(&header);
	flow_free(&up);
	flow_free(&none);
	rig_free(g);
}
END_TEST

START_TEST(test_queue_and_release)
{
	struct relay r;
	unsigned char header[] = "PROXY UNKNOWN\r\n";
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	relay_init(&r, NULL, sv[0]);
	ck_assert_ptr_null(r.to_backend.data);
	if (sizeof(size_t) > 4)		/* over 4 GiB: refused before anything is copied */
		ck_assert_int_eq(relay_queue_to_backend(&r, header,
		    (size_t)UINT32_MAX + 1), -1);
	ck_assert_int_eq(relay_queue_to_backend(&r, header, sizeof(header) - 1), 0);
	ck_assert_ptr_nonnull(r.to_backend.data);
	ck_assert_uint_eq(r.to_backend.len, sizeof(header) - 1);
	ck_assert_uint_eq(r.header_left, sizeof(header) - 1);
	/* One header only. */
	ck_assert_int_eq(relay_queue_to_backend(&r, header, 4), -1);
	ck_assert_uint_eq(r.to_backend.len, sizeof(header) - 1);
	relay_release(&r);
	ck_assert_ptr_null(r.to_backend.data);
	ck_assert_ptr_null(r.to_client.data);
	relay_release(&r);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_half_close)
{
	struct rig *g = rig_new(versions[_i % 2], 0, 0);
	enum end first = _i / 2 ? BROKER : DEVICE, other = first == DEVICE ? BROKER : DEVICE;

	rig_start(g);
	/* One side ends: the other gets its data, then the end. */
	send_msg(g, first, "last words");
	send_end(g, first);
	rig_settle(g);
	expect(g, other, "last words", 1);
	/* Still open the other way, and waiting for that side only. */
	ck_assert_int_eq(g->status, RELAY_OPEN);
	ck_assert_uint_eq(g->wants, first == DEVICE ? RELAY_WANT_BACKEND_READ :
	    RELAY_WANT_CLIENT_READ);
	send_msg(g, other, "the answer");
	rig_settle(g);
	expect(g, first, "the answer", 0);
	/* The other side ends too, and the relay is finished. */
	send_end(g, other);
	rig_settle(g);
	expect(g, first, "", 1);
	ck_assert_int_eq(g->status, RELAY_FINISHED);
	ck_assert_int_eq(g->flushed, 1);
	ck_assert_uint_eq(g->wants, 0);
	ck_assert_uint_eq(g->r.bytes_to_backend, 10);
	ck_assert_uint_eq(g->r.bytes_to_client, 10);
	rig_free(g);
}
END_TEST

START_TEST(test_client_fin_without_close_notify)
{
	struct rig *g = rig_new(versions[_i], 0, 0);

	rig_start(g);
	/* A client that sends and shuts its socket down without a close_notify. */
	send_msg(g, DEVICE, "fire and forget");
	ck_assert_int_eq(shutdown(g->t->client_fd, SHUT_WR), 0);
	rig_settle(g);
	expect(g, BROKER, "fire and forget", 1);
	ck_assert_int_eq(g->status, RELAY_OPEN);
	send_msg(g, BROKER, "ack");
	send_end(g, BROKER);
	rig_settle(g);
	expect(g, DEVICE, "ack", 1);
	ck_assert_int_eq(g->status, RELAY_FINISHED);
	rig_free(g);
}
END_TEST

START_TEST(test_client_left)
{
	struct rig *g = rig_new(versions[_i], 0, 0);

	rig_start(g);
	/* A device that says goodbye and is gone at once. */
	send_end(g, DEVICE);
	close(g->t->client_fd);
	g->t->client_fd = -1;
	rig_settle(g);
	expect(g, BROKER, "", 1);
	/* The broker's last words cannot reach it (conn.c closes here)... */
	send_msg(g, BROKER, "too late");
	rig_settle(g);
	ck_assert_int_eq(g->flushed, -1);
	ck_assert_int_eq(g->status, RELAY_OPEN);
	/* ...nor can our close_notify: still a clean end, both sides having ended. */
	send_end(g, BROKER);
	rig_settle(g);
	ck_assert_msg(g->status == RELAY_FINISHED, "status %d: %s", g->status,
	    g->r.error ? g->r.error : "");
	ck_assert_msg(ERR_peek_error() == 0, "OpenSSL errors left on the queue");
	rig_free(g);
}
END_TEST

/* The broker closes its socket. */
static void
broker_close(struct rig *g)
{
	close(g->broker);
	g->broker = -1;
}

/* The relay has failed, saying "${what}: " and the text of ${err}. */
static void
assert_failed(struct rig *g, const char *what, int err)
{
	char want[128];

	ck_assert_int_eq(g->status, RELAY_FAILED);
	ck_assert_ptr_nonnull(g->r.error);
	snprintf(want, sizeof(want), "%s: %s", what, strerror(err));
	ck_assert_str_eq(g->r.error, want);
}

START_TEST(test_backend_fails)
{
	int unread = _i / 2;
	struct rig *g = rig_new(versions[_i % 2], 0, 0);

	rig_start(g);
	if (unread) {
		send_msg(g, DEVICE, "ping");
		rig_settle(g);
	}
	broker_close(g);
	rig_settle(g);
	if (unread) {
		/* Closed with "ping" unread: a reset. */
		assert_failed(g, "backend read", ECONNRESET);
	} else {
		/* A clean close: its end, then a close_notify; what the device
		 * sends then cannot be delivered. */
		ck_assert_int_eq(g->status, RELAY_OPEN);
		expect(g, DEVICE, "", 1);
		send_msg(g, DEVICE, "anyone?");
		rig_settle(g);
		assert_failed(g, "backend write", EPIPE);
	}
	rig_free(g);
}
END_TEST

START_TEST(test_client_garbage)
{
	struct rig *g = rig_new(versions[_i], 0, 0);
	/* An application data record that no key made. */
	static const unsigned char record[] = { 0x17, 0x03, 0x03, 0x00, 0x20,
	    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

	rig_start(g);
	ck_assert_int_eq(write(g->t->client_fd, record, sizeof(record)), (int)sizeof(record));
	rig_settle(g);
	ck_assert_int_eq(g->status, RELAY_FAILED);
	ck_assert_ptr_nonnull(g->r.error);
	ck_assert_msg(strncmp(g->r.error, "client read: ", 13) == 0 &&
	    strlen(g->r.error) > 13, "error: %s", g->r.error);
	ck_assert_msg(ERR_peek_error() == 0, "OpenSSL errors left on the queue");
	ck_assert_uint_eq(g->r.bytes_to_backend, 0);
	rig_free(g);
}
END_TEST

/* Run the relay ${n} times whatever is ready: it must not move or grow. */
static void
assert_held(struct rig *g, int n)
{
	uint64_t in = g->r.bytes_to_backend, out = g->r.bytes_to_client;
	uint32_t up = g->r.to_backend.len, down = g->r.to_client.len;

	for (int i = 0; i < n; i++) {
		sockbio_readable(&g->sock);
		relay_backend_readable(&g->r);
		rig_run(g);
		ck_assert_int_eq(g->status, RELAY_OPEN);
		ck_assert_uint_eq(g->r.bytes_to_backend, in);
		ck_assert_uint_eq(g->r.bytes_to_client, out);
		ck_assert_uint_eq(g->r.to_backend.len, up);
		ck_assert_uint_eq(g->r.to_client.len, down);
	}
}

START_TEST(test_bounded)
{
	int down = _i / 2;		/* 0: device to broker, 1: broker to device */
	/* A small buffer on the relay's side of the receiver. */
	struct rig *g = rig_new(versions[_i % 2], down ? 4096 : 0, down ? 0 : 4096);
	struct relay_pending *held = down ? &g->r.to_client : &g->r.to_backend;
	struct relay_pending *other = down ? &g->r.to_backend : &g->r.to_client;
	unsigned waits = down ? RELAY_WANT_CLIENT_WRITE : RELAY_WANT_BACKEND_WRITE;
	unsigned stops = down ? RELAY_WANT_BACKEND_READ : RELAY_WANT_CLIENT_READ;
	struct flow f, none;

	flow_init(&f, 4 * MIB, 6);
	flow_init(&none, 0, 7);
	rig_start(g);
	/* The receiver does not read: everything stops, the sender included. */
	ck_assert_int_eq(pump(g, down ? &none : &f, down ? &f : &none, down, !down), 0);
	ck_assert_uint_lt(f.sent, f.total);
	ck_assert_ptr_nonnull(held->data);
	ck_assert_uint_le(held->len, SCRATCH_LEN);
	ck_assert_ptr_null(other->data);
	/* It waits to write the receiver, and no longer reads the sender. */
	ck_assert(g->wants & waits);
	ck_assert(!(g->wants & stops));
	assert_held(g, 3);
	/* The receiver reads again: all of it, in order. */
	ck_assert_int_eq(pump(g, down ? &none : &f, down ? &f : &none, 1, 1), 1);
	flow_check(&f, down ? "broker to device" : "device to broker");
	ck_assert_uint_eq(down ? g->r.bytes_to_client : g->r.bytes_to_backend, f.total);
	ck_assert_ptr_null(held->data);
	flow_free(&f);
	flow_free(&none);
	rig_free(g);
}
END_TEST

START_TEST(test_backend_read_after_readable)
{
	struct rig *g = rig_new(versions[_i], 0, 0);
	unsigned wants;

	rig_start(g);
	ck_assert_uint_eq(g->wants, RELAY_WANT_CLIENT_READ | RELAY_WANT_BACKEND_READ);
	/* The last read emptied the backend: data that comes is left to the event loop. */
	send_msg(g, BROKER, "abc");
	ck_assert_int_eq(relay_run(&g->r, g->scratch, sizeof(g->scratch), &wants), RELAY_OPEN);
	ck_assert_uint_eq(g->r.bytes_to_client, 0);
	ck_assert(wants & RELAY_WANT_BACKEND_READ);
	relay_backend_readable(&g->r);
	ck_assert_int_eq(relay_run(&g->r, g->scratch, sizeof(g->scratch), &wants), RELAY_OPEN);
	ck_assert_uint_eq(g->r.bytes_to_client, 3);
	ck_assert_int_eq(sockbio_flush(&g->sock), 1);
	expect(g, DEVICE, "abc", 0);
	rig_free(g);
}
END_TEST

/* Count the KeyUpdate messages the device receives. */
static void
count_key_updates(int write_p, int version, int content_type, const void *buf, size_t len,
    SSL *ssl, void *arg)
{
	(void)version;
	(void)ssl;
	if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
	    ((const unsigned char *)buf)[0] == SSL3_MT_KEY_UPDATE)
		++*(int *)arg;
}

START_TEST(test_key_update)
{
	struct rig *g = rig_new(TLS1_3_VERSION, 0, 0);
	int received = 0;

	SSL_set_msg_callback(g->t->client, count_key_updates);
	SSL_set_msg_callback_arg(g->t->client, &received);
	rig_start(g);
	/* New keys both ways: the relay's SSL_read must send its own KeyUpdate. */
	ck_assert_int_eq(SSL_key_update(g->t->client, SSL_KEY_UPDATE_REQUESTED), 1);
	round_trip(g, "new keys", "fine");
	ck_assert_int_eq(received, 1);
	/* The device's keys only: nothing to answer. */
	ck_assert_int_eq(SSL_key_update(g->t->client, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
	round_trip(g, "again", "still fine");
	ck_assert_int_eq(received, 1);
	ck_assert_int_eq(g->status, RELAY_OPEN);
	rig_free(g);
}
END_TEST

static Suite *
relay_suite(void)
{
	Suite *s = suite_create("relay");
	TCase *tc;

	tc = tl_tls_tcase("data");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_both_ways_intact, 0, 2);
	tcase_add_loop_test(tc, test_nothing_held_back, 0, 2);
	tcase_add_loop_test(tc, test_proxy_header_not_counted, 0, 2);
	tcase_add_test(tc, test_queue_and_release);
	tcase_add_test(tc, test_key_update);
	suite_add_tcase(s, tc);

	tc = tl_tls_tcase("ends");
	tcase_add_loop_test(tc, test_half_close, 0, 4);
	tcase_add_loop_test(tc, test_client_fin_without_close_notify, 0, 2);
	tcase_add_loop_test(tc, test_client_left, 0, 2);
	tcase_add_loop_test(tc, test_backend_fails, 0, 4);
	tcase_add_loop_test(tc, test_client_garbage, 0, 2);
	suite_add_tcase(s, tc);

	tc = tl_tls_tcase("backpressure");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_bounded, 0, 4);
	tcase_add_loop_test(tc, test_backend_read_after_readable, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(relay_suite());
}
