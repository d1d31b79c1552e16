"""Length-prefixed JSON frames between the pool, the zygote and the sessions.

One framing for both ends: the session side uses blocking sockets (it is its own process and
has nothing else to do), the pool side uses asyncio streams so it never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 64 * 1024 * 1024


class WireClosed(EOFError):
    """The other end closed the connection (for a session: its process is gone)."""


class WireCorrupt(ValueError):
    """Bytes that are not a frame of this protocol arrived (a cell wrote into the channel)."""


def encode(obj: Any) -> bytes:
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return _HEADER.pack(len(body)) + body


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise WireCorrupt(f"undecodable frame of {len(body)} bytes") from err


def send_sync(sock: socket.socket, obj: Any) -> None:
    sock.sendall(encode(obj))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise WireClosed("connection closed")
        buf += chunk
    return bytes(buf)


def recv_sync(sock: socket.socket) -> Any:
    (n,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if n > MAX_FRAME_BYTES:
        raise WireClosed(f"frame of {n} bytes exceeds {MAX_FRAME_BYTES}")
    return _decode(_recv_exact(sock, n))


async def recv_async(reader: asyncio.StreamReader) -> Any:
    try:
        (n,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
        if n > MAX_FRAME_BYTES:
            raise WireCorrupt(f"frame of {n} bytes exceeds {MAX_FRAME_BYTES}")
        return _decode(await reader.readexactly(n))
    except (asyncio.IncompleteReadError, ConnectionError) as err:
        raise WireClosed("connection closed") from err


async def send_async(writer: asyncio.StreamWriter, obj: Any) -> None:
    try:
        writer.write(encode(obj))
        await writer.drain()
    except ConnectionError as err:
        raise WireClosed("connection closed") from err
