/*
 * fuzzlib: what the libFuzzer targets share: a reader that takes typed
 * values from the fuzzer's bytes (every take bounded by what is left), a
 * temporary directory holding the test PKI (testlib's), removed at exit,
 * and the abort that makes a failed check a finding.
 */
#ifndef TLSPROXY_FUZZLIB_H
#define TLSPROXY_FUZZLIB_H

#include <stddef.h>
#include <stdint.h>

/* The fuzzer's bytes, read from the front. */
struct fz_in {
	const uint8_t *p;
	size_t left;
};

/** fz_u8(in): the next byte, or 0 once ${in} is empty. */
unsigned fz_u8(struct fz_in *in);

/** fz_u16(in): the next two bytes, big-endian; missing bytes read as 0. */
unsigned fz_u16(struct fz_in *in);

/**
 * fz_bytes(in, max, len): up to ${max} bytes (how many: the next byte, or
 * two when ${max} > 255), pointing into the input; their count in ${*len}.
 */
const uint8_t *fz_bytes(struct fz_in *in, size_t max, size_t *len);

/**
 * fz_string(in, max, buf, buflen): fz_bytes() as a NUL-terminated string
 * in ${buf} (${buflen} > ${max}), cut at its first NUL; returns ${buf}.
 */
char *fz_string(struct fz_in *in, size_t max, char *buf, size_t buflen);

/**
 * fz_fail(fmt, ...): print "fuzz: check failed: ..." and abort(), which
 * libFuzzer reports as a crash with the input that caused it.
 */
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/**
 * fz_setup(with_pki): make testlib's temporary directory (under $TMPDIR)
 * and, with ${with_pki}, the test PKI written into it; both go at exit.
 * Call once, from LLVMFuzzerInitialize().
 */
void fz_setup(int with_pki);

/**
 * fz_write_conf(name, data, len, substitute): write ${len} bytes to ${name}
 * in the temporary directory (mode 600), with ${substitute} every "@DIR@"
 * replaced by the directory; returns the path, valid until exit.  The
 * same file may be written again and again.
 */
const char *fz_write_conf(const char *name, const uint8_t *data, size_t len,
    int substitute);

#endif
