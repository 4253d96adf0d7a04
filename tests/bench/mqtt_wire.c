/*
 * mqtt_wire: MQTT 3.1.1 CONNECT, CONNACK, PINGREQ/PINGRESP and DISCONNECT
 * as bytes (OASIS MQTT 3.1.1, sections 3.1, 3.2, 3.12-3.14).
 */
#include <string.h>

#include "mqtt_wire.h"

const unsigned char mqtt_pingreq[2] = { 0xc0, 0x00 };
const unsigned char mqtt_disconnect[2] = { 0xe0, 0x00 };

size_t
mqtt_connect(unsigned char *buf, size_t len, const char *client_id, int clean,
    unsigned keepalive)
{
	size_t idlen = strlen(client_id), rem, n = 0;

	if (idlen > 200)
		return 0;
	rem = 10 + 2 + idlen;		/* variable header, then the id */
	if (len < 2 + rem)		/* rem < 128: one length byte */
		return 0;
	buf[n++] = 0x10;
	buf[n++] = (unsigned char)rem;
	buf[n++] = 0;
	buf[n++] = 4;
	memcpy(buf + n, "MQTT", 4);
	n += 4;
	buf[n++] = 4;			/* protocol level: 3.1.1 */
	buf[n++] = clean ? 0x02 : 0x00;
	buf[n++] = (unsigned char)(keepalive >> 8);
	buf[n++] = (unsigned char)(keepalive & 0xff);
	buf[n++] = (unsigned char)(idlen >> 8);
	buf[n++] = (unsigned char)(idlen & 0xff);
	memcpy(buf + n, client_id, idlen);
	return n + idlen;
}

long
mqtt_next(const unsigned char *buf, size_t len, int *type, int *sp, int *rc)
{
	size_t rem = 0, i;
	unsigned shift = 0;

	if (len < 2)
		return 0;
	for (i = 1; ; i++) {
		if (i >= len)
			return 0;
		if (i > 4)
			return -1;	/* at most four length bytes */
		rem |= (size_t)(buf[i] & 0x7f) << shift;
		shift += 7;
		if ((buf[i] & 0x80) == 0)
			break;
	}
	if (len < i + 1 + rem)
		return 0;
	*type = buf[0] >> 4;
	if (*type == MQTT_CONNACK) {
		if (rem != 2)
			return -1;
		*sp = buf[i + 1] & 1;
		*rc = buf[i + 2];
	}
	return (long)(i + 1 + rem);
}
