/*
 * asn1_time: one conversion from ASN.1 times to Unix time, for the CRL,
 * OCSP, session and metrics modules.  OpenSSL parses; timegm() does the
 * calendar in UTC.
 */
#define _GNU_SOURCE	/* timegm */
#include <time.h>

#include "asn1_time.h"

int64_t
asn1_time_seconds(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}
