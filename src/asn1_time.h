/*
 * asn1_time: the times that certificates, CRLs and OCSP responses carry,
 * as Unix time.
 */
#ifndef TLSPROXY_ASN1_TIME_H
#define TLSPROXY_ASN1_TIME_H

#include <stdint.h>

#include <openssl/asn1.h>

/**
 * asn1_time_seconds(t): ${t} (UTCTime or GeneralizedTime) in seconds since
 * 1970-01-01T00:00:00Z; 0 when ${t} is NULL or cannot be read.
 */
int64_t asn1_time_seconds(const ASN1_TIME *t);

#endif
