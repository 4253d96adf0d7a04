/*
 * client_hello: the few fields of a ClientHello (RFC 8446 section 4.1.2,
 * RFC 5246 section 7.4.1.2) that say whether it can resume.  Every length
 * is checked against what is left before it is used: the input is
 * whatever a client sent.
 */
#include <stdint.h>

#include "client_hello.h"

#define RECORD_HANDSHAKE	22
#define HANDSHAKE_CLIENT_HELLO	1
#define EXT_SESSION_TICKET	35
#define EXT_PRE_SHARED_KEY	41
#define EXT_SUPPORTED_VERSIONS	43
#define VERSION_TLS13		0x0304

/* A bounded reader: every take fails once the input is short. */
struct reader {
	const unsigned char *p;
	size_t left;
};

static int
take(struct reader *r, size_t n, const unsigned char **out)
{
	if (n > r->left)
		return -1;
	*out = r->p;
	r->p += n;
	r->left -= n;
	return 0;
}

static int
take_uint(struct reader *r, size_t bytes, size_t *out)
{
	const unsigned char *b;
	size_t v = 0;

	if (take(r, bytes, &b) != 0)
		return -1;
	for (size_t i = 0; i < bytes; i++)
		v = v << 8 | b[i];
	*out = v;
	return 0;
}

/* A vector with a ${bytes}-byte length in front: its contents in ${inner}. */
static int
take_vector(struct reader *r, size_t bytes, struct reader *inner)
{
	size_t n;

	if (take_uint(r, bytes, &n) != 0 || take(r, n, &inner->p) != 0)
		return -1;
	inner->left = n;
	return 0;
}

/* Does the supported_versions extension ${ext} list TLS 1.3? */
static int
offers_tls13(struct reader ext)
{
	struct reader list;
	size_t v;

	if (take_vector(&ext, 1, &list) != 0)
		return 0;
	while (take_uint(&list, 2, &v) == 0)
		if (v == VERSION_TLS13)
			return 1;
	return 0;
}

enum client_hello_kind
client_hello_kind(const unsigned char *buf, size_t len, int tls13)
{
	struct reader in = { buf, len }, rec, hello, skip, exts, ext;
	size_t type, version, rec_len, hs_len, sid_len, ext_type;
	const unsigned char *b;
	int ticket = 0, psk = 0, tls13_offered = 0;

	/* The record: complete, or come back when it is. */
	if (len < 5)
		return CLIENT_HELLO_PARTIAL;
	if (take_uint(&in, 1, &type) != 0 || type != RECORD_HANDSHAKE ||
	    take_uint(&in, 2, &version) != 0 || (version >> 8) != 3 ||
	    take_uint(&in, 2, &rec_len) != 0)
		return CLIENT_HELLO_OTHER;
	if (rec_len > in.left)
		return CLIENT_HELLO_PARTIAL;
	rec.p = in.p;
	rec.left = rec_len;

	/* One whole ClientHello in it. */
	if (take_uint(&rec, 1, &type) != 0 || type != HANDSHAKE_CLIENT_HELLO ||
	    take_uint(&rec, 3, &hs_len) != 0 || hs_len > rec.left ||
	    take(&rec, hs_len, &hello.p) != 0)
		return CLIENT_HELLO_OTHER;
	hello.left = hs_len;
	if (take(&hello, 2 + 32, &b) != 0 ||		/* legacy_version, random */
	    take_uint(&hello, 1, &sid_len) != 0 || take(&hello, sid_len, &b) != 0 ||
	    take_vector(&hello, 2, &skip) != 0 ||	/* cipher_suites */
	    take_vector(&hello, 1, &skip) != 0)		/* compression_methods */
		return CLIENT_HELLO_OTHER;
	if (hello.left == 0)
		exts.left = 0;			/* no extensions at all */
	else if (take_vector(&hello, 2, &exts) != 0 || hello.left != 0)
		return CLIENT_HELLO_OTHER;

	while (exts.left > 0) {
		if (take_uint(&exts, 2, &ext_type) != 0 || take_vector(&exts, 2, &ext) != 0)
			return CLIENT_HELLO_OTHER;
		if (ext_type == EXT_SESSION_TICKET && ext.left > 0)
			ticket = 1;
		else if (ext_type == EXT_PRE_SHARED_KEY)
			psk = 1;
		else if (ext_type == EXT_SUPPORTED_VERSIONS)
			tls13_offered = offers_tls13(ext);
	}
	if (ticket || psk)
		return CLIENT_HELLO_RESUMING;
	/* A session ID resumes only in TLS 1.2. */
	if (sid_len > 0 && !(tls13 && tls13_offered))
		return CLIENT_HELLO_RESUMING;
	return CLIENT_HELLO_NEW;
}

size_t
client_hello_wanted(const unsigned char *buf, size_t len)
{
	if (len < 5)
		return 5;
	return 5 + ((size_t)buf[3] << 8 | buf[4]);
}
