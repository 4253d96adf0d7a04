#ifndef MQTT_WIRE_H
#define MQTT_WIRE_H

/*
 * The few MQTT 3.1.1 packets a simulated device sends and reads: CONNECT,
 * CONNACK, PINGREQ/PINGRESP and DISCONNECT.  Plain bytes, no I/O.
 */

#include <stddef.h>

#define MQTT_CONNECT_MAX	300	/* room for CONNECT with a short client id */

enum mqtt_type {
	MQTT_CONNACK = 2,
	MQTT_PINGRESP = 13,
};

/* PINGREQ and DISCONNECT are two fixed bytes each. */
extern const unsigned char mqtt_pingreq[2];
extern const unsigned char mqtt_disconnect[2];

/**
 * mqtt_connect(buf, len, client_id, clean, keepalive): write a CONNECT for
 * ${client_id} (at most 200 bytes) with the clean-session flag ${clean} and
 * ${keepalive} seconds into ${buf} of ${len} bytes.  Returns its length, or
 * 0 if it does not fit.
 */
size_t mqtt_connect(unsigned char *buf, size_t len, const char *client_id, int clean,
    unsigned keepalive);

/**
 * mqtt_next(buf, len, type, sp, rc): look at the packet at the start of
 * ${buf} (${len} bytes received so far).  Returns its total length when it
 * is complete, 0 when more bytes are needed, -1 when it is malformed.  For
 * a complete packet, ${type} gets its type; for a CONNACK, ${sp} gets the
 * session-present flag and ${rc} the return code.
 */
long mqtt_next(const unsigned char *buf, size_t len, int *type, int *sp, int *rc);

#endif
