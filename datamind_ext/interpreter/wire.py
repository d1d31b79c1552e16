"""Length-prefixed JSON frames between the pool, the zygote and the sessions.

One framing everywhere: a frame is a 4-byte big-endian length and that many bytes of UTF-8
JSON (what goes in a frame is typed in :mod:`messages`). It travels over two kinds of socket:

- pool <-> session: a stream socket. The session side uses blocking calls (it is its own
  process and has nothing else to do), the pool side asyncio streams so it never blocks the
  event loop. The session runs hostile code that may write bytes into this channel, so a
  reader checks every length and every decoded message.
- pool <-> zygote (control): a SOCK_SEQPACKET socket, one frame per datagram
  (:func:`send_datagram` / :func:`decode_datagram`). It is not a stream because a spawn
  request carries the new session's socket as SCM_RIGHTS: on a datagram the descriptor is
  bound to its message, whereas on a stream it is bound to whichever bytes happened to carry it
  and asyncio's buffered stream readers cannot receive it at all. A datagram also arrives whole,
  so the zygote's select() loop never holds half a message. The frame's length must equal the
  datagram's, so a truncated datagram is refused rather than misread.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Sequence
from typing import Any

_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 64 * 1024 * 1024
MAX_DATAGRAM_BYTES = 1 << 20  # the control channel's messages are small (a spawn spec, an exit status)


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


def send_datagram(sock: socket.socket, obj: Any, fds: Sequence[int] = ()) -> None:
    """Send one frame as one datagram, with ``fds`` attached (SCM_RIGHTS); raises BlockingIOError
    on a full non-blocking socket, like ``socket.send``."""
    frame = encode(obj)
    if len(frame) > MAX_DATAGRAM_BYTES:
        raise ValueError(f"control message of {len(frame)} bytes exceeds {MAX_DATAGRAM_BYTES}")
    if fds:
        socket.send_fds(sock, [frame], list(fds))
    else:
        sock.send(frame)


def decode_datagram(data: bytes) -> Any:
    """The object in one received datagram, which must hold exactly one whole frame."""
    if len(data) < _HEADER.size:
        raise WireCorrupt(f"datagram of {len(data)} bytes is shorter than a frame header")
    (n,) = _HEADER.unpack_from(data)
    if n != len(data) - _HEADER.size:
        raise WireCorrupt(f"datagram of {len(data)} bytes holds a frame of {n}")
    return _decode(data[_HEADER.size :])
