#!/usr/bin/env python3
"""soak_backend: the soak's MQTT-like echo backend, a process of its own so
that the soak can kill it (SIGKILL) and start it again on the same port.

Each connection opens with an MQTT CONNECT whose client id says what the
backend does with it, "soak/MODE/ARG/...":

    echo           CONNACK, then echo every byte; at EOF, FIN after the echo
    breset/N       CONNACK, echo until N bytes came back, then a TCP RST
    bfin/G/SEED    CONNACK, G seeded bytes, FIN; read and drop until EOF

Anything else (garbage that got through, a CONNECT cut short) is closed.
Usage: soak_backend.py PORT.  It prints "ready" once it listens.
"""

import asyncio
import random
import signal
import socket
import struct
import sys

CONNACK = b"\x20\x02\x00\x00"
MAX_CONNECT = 1024      # a CONNECT longer than this is not one of ours


async def read_connect(reader):
    """The client id of the CONNECT that opens the stream, or None."""
    head = await reader.readexactly(1)
    if head != b"\x10":
        return None
    length, shift = 0, 0
    for _ in range(4):
        b = (await reader.readexactly(1))[0]
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    if length > MAX_CONNECT or length < 12:
        return None
    body = await reader.readexactly(length)
    # protocol name (2+4), level, flags, keep-alive (2), then the id.
    if body[:6] != b"\x00\x04MQTT":
        return None
    (idlen,) = struct.unpack("!H", body[10:12])
    return body[12:12 + idlen].decode("ascii", "replace")


def rst(writer):
    """Close with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def echo(reader, writer, limit=None):
    """Echo until EOF (then FIN), or until ${limit} bytes (then RST)."""
    done = 0
    while limit is None or done < limit:
        want = 65536 if limit is None else min(65536, limit - done)
        data = await reader.read(want)
        if not data:
            writer.write_eof()
            await writer.drain()
            return
        writer.write(data)
        await writer.drain()
        done += len(data)
    rst(writer)


async def serve(reader, writer):
    try:
        cid = await read_connect(reader)
        parts = (cid or "").split("/")
        if len(parts) < 2 or parts[0] != "soak":
            return
        writer.write(CONNACK)
        if parts[1] == "echo":
            await echo(reader, writer)
        elif parts[1] == "breset":
            await echo(reader, writer, int(parts[2]))
        elif parts[1] == "bfin":
            writer.write(random.Random(int(parts[3])).randbytes(int(parts[2])))
            writer.write_eof()
            await writer.drain()
            while await reader.read(65536):
                pass
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
        pass
    finally:
        writer.transport.abort() if writer.transport.is_closing() else writer.close()


async def main(port):
    server = await asyncio.start_server(serve, "127.0.0.1", port, reuse_address=True,
                                        backlog=512)
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    print("ready", flush=True)
    async with server:
        await stop


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
