/*
 * check_sockbio: the client socket BIO over a real non-blocking socket
 * pair.  Small writes stay held until sockbio_flush() and then arrive in
 * order; a large write goes out at once behind what is held; a full socket
 * keeps what it cannot take until it drains, and a write that would grow
 * the held bytes past their bound is refused with "retry"; a closed peer
 * makes the client "gone".  A short read means "drained": the next read
 * does not touch the socket until sockbio_readable().
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testlib.h"
#include "../../src/sockbio.h"

struct pair {
	int ours, peer;
	struct sockbio_state st;
	BIO *bio;
};

static void
pair_open(struct pair *p, int sndbuf)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	if (sndbuf > 0)
		ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf,
		    sizeof(sndbuf)), 0);
	p->ours = sv[0];
	p->peer = sv[1];
	p->bio = sockbio_new(&p->st, p->ours);
	ck_assert_ptr_nonnull(p->bio);
}

static void
pair_close(struct pair *p)
{
	BIO_free(p->bio);
	sockbio_release(&p->st);
	close(p->ours);
	if (p->peer >= 0)
		close(p->peer);
}

/* Everything the peer can read now (non-blocking), up to ${len}. */
static size_t
peer_drain(struct pair *p, unsigned char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len && (n = read(p->peer, buf + got, len - got)) > 0)
		got += (size_t)n;
	return got;
}

static void
fill_pattern(unsigned char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(seed + i * 7 + (i >> 8));
}

START_TEST(test_small_writes_held_until_flush)
{
	struct pair p;
	unsigned char out[300], in[600];

	pair_open(&p, 0);
	fill_pattern(out, sizeof(out), 1);
	ck_assert_int_eq(BIO_write(p.bio, out, 100), 100);
	ck_assert_int_eq(BIO_write(p.bio, out + 100, 200), 200);
	/* Nothing has left yet. */
	ck_assert_int_eq(read(p.peer, in, sizeof(in)), -1);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_int_eq(sockbio_flush(&p.st), 1);
	ck_assert_uint_eq(peer_drain(&p, in, sizeof(in)), 300);
	ck_assert_mem_eq(in, out, 300);
	/* Nothing held: flushing again is a no-op. */
	ck_assert_int_eq(sockbio_flush(&p.st), 1);
	ck_assert_ptr_null(p.st.held);
	pair_close(&p);
}
END_TEST

START_TEST(test_large_write_goes_out_behind_held)
{
	struct pair p;
	static unsigned char out[20000], in[30000];

	pair_open(&p, 0);
	fill_pattern(out, sizeof(out), 2);
	ck_assert_int_eq(BIO_write(p.bio, out, 50), 50);
	/* 16 KiB is not copied: it leaves now, after the 50 held bytes. */
	ck_assert_int_eq(BIO_write(p.bio, out + 50, 16384), 16384);
	ck_assert_ptr_null(p.st.held);
	ck_assert_uint_eq(peer_drain(&p, in, sizeof(in)), 50 + 16384);
	ck_assert_mem_eq(in, out, 50 + 16384);
	pair_close(&p);
}
END_TEST

START_TEST(test_full_socket_keeps_held_bytes)
{
	struct pair p;
	static unsigned char out[1 << 20], in[1 << 20];
	size_t written = 0, got = 0;
	int n, flushed;

	pair_open(&p, 4096);
	fill_pattern(out, sizeof(out), 3);
	/* Fill the socket with large writes until it pushes back. */
	while ((n = BIO_write(p.bio, out + written, 16384)) > 0)
		written += (size_t)n;
	ck_assert(BIO_should_retry(p.bio) && BIO_should_write(p.bio));
	/* Small writes are still taken, up to the bound, then refused. */
	while ((n = BIO_write(p.bio, out + written, 100)) == 100)
		written += 100;
	ck_assert_int_eq(n, -1);
	ck_assert(BIO_should_retry(p.bio) && BIO_should_write(p.bio));
	ck_assert_ptr_nonnull(p.st.held);
	ck_assert_int_eq(sockbio_flush(&p.st), 0);
	/* The peer reads; what was held follows, in order, after some flushes. */
	for (int i = 0; i < 10000 && got < written; i++) {
		got += peer_drain(&p, in + got, sizeof(in) - got);
		flushed = sockbio_flush(&p.st);
		ck_assert_int_ge(flushed, 0);
	}
	got += peer_drain(&p, in + got, sizeof(in) - got);
	ck_assert_uint_eq(got, written);
	ck_assert_mem_eq(in, out, written);
	ck_assert_int_eq(sockbio_flush(&p.st), 1);
	ck_assert_ptr_null(p.st.held);
	pair_close(&p);
}
END_TEST

START_TEST(test_closed_peer_is_gone)
{
	struct pair p;
	unsigned char out[64] = { 0 };

	pair_open(&p, 0);
	ck_assert_int_eq(sockbio_peer_gone(&p.st), 0);
	ck_assert_int_eq(BIO_write(p.bio, out, sizeof(out)), (int)sizeof(out));
	close(p.peer);
	p.peer = -1;
	ck_assert_int_eq(sockbio_flush(&p.st), -1);
	ck_assert_int_eq(sockbio_peer_gone(&p.st), 1);
	ck_assert_ptr_null(p.st.held);
	/* Once gone, writes fail at once instead of being held. */
	ck_assert_int_eq(BIO_write(p.bio, out, sizeof(out)), -1);
	ck_assert(!BIO_should_retry(p.bio));
	pair_close(&p);
}
END_TEST

START_TEST(test_short_read_means_drained)
{
	struct pair p;
	unsigned char buf[1000];

	pair_open(&p, 0);
	ck_assert_int_eq(write(p.peer, "hello", 5), 5);
	ck_assert_int_eq(BIO_read(p.bio, buf, sizeof(buf)), 5);
	/* More arrives, but the socket is not read until the loop says so. */
	ck_assert_int_eq(write(p.peer, "world", 5), 5);
	ck_assert_int_eq(BIO_read(p.bio, buf, sizeof(buf)), -1);
	ck_assert(BIO_should_retry(p.bio) && BIO_should_read(p.bio));
	sockbio_readable(&p.st);
	ck_assert_int_eq(BIO_read(p.bio, buf, sizeof(buf)), 5);
	ck_assert_mem_eq(buf, "world", 5);
	/* A read that fills the buffer says nothing about what is left. */
	ck_assert_int_eq(write(p.peer, "0123456789", 10), 10);
	sockbio_readable(&p.st);
	ck_assert_int_eq(BIO_read(p.bio, buf, 4), 4);
	ck_assert_int_eq(BIO_read(p.bio, buf, 4), 4);
	ck_assert_int_eq(BIO_read(p.bio, buf, 4), 2);
	/* EOF is reported as such. */
	close(p.peer);
	p.peer = -1;
	sockbio_readable(&p.st);
	ck_assert_int_eq(BIO_eof(p.bio), 0);
	ck_assert_int_eq(BIO_read(p.bio, buf, sizeof(buf)), 0);
	ck_assert_int_eq(BIO_eof(p.bio), 1);
	pair_close(&p);
}
END_TEST

static Suite *
sockbio_suite(void)
{
	Suite *s = suite_create("sockbio");
	TCase *tc = tcase_create("socket pair");

	tcase_add_test(tc, test_small_writes_held_until_flush);
	tcase_add_test(tc, test_large_write_goes_out_behind_held);
	tcase_add_test(tc, test_full_socket_keeps_held_bytes);
	tcase_add_test(tc, test_closed_peer_is_gone);
	tcase_add_test(tc, test_short_read_means_drained);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(sockbio_suite());
}
