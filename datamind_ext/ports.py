"""A free TCP port on the loopback interface, for the servers the project starts itself."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the caller binds it next; every server binds 127.0.0.1)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
