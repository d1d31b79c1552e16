"""Keep a session's machinery working whatever a cell does to its own process.

A cell runs in the same interpreter as the runner, so it can rebind builtins
(``builtins.compile = None``), patch the modules the runner uses (``json.dumps = None``), set
an alarm that kills the process after the cell, install a trace function, or redirect
``sys.stdout``. :class:`Guard` snapshots what the runner depends on once, when the session is
assigned, and puts it back before and after every cell, so such a cell poisons at most itself.
Names a cell *adds* are kept; only what existed at the snapshot is restored.
"""

from __future__ import annotations

import builtins
import ctypes
import gc
import json
import json.decoder
import json.encoder
import linecache
import os
import resource
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from typing import Any

_MISSING = object()

# Modules whose attributes the runner reaches at call time (directly or through the stdlib).
_MODULES = (builtins, os, gc, ctypes, resource, signal, struct, json, json.encoder, json.decoder, socket, threading, time, traceback, linecache)
_CLASSES = (json.JSONEncoder, json.JSONDecoder, socket.socket, traceback.TracebackException)
_SYS_NAMES = ("modules", "getrecursionlimit", "setrecursionlimit", "exc_info", "_getframe", "settrace", "setprofile")

# Private references: the guard itself must not look anything up in the patched namespaces.
_setitimer = signal.setitimer
_signal = signal.signal
_sigmask = signal.pthread_sigmask
_settrace = sys.settrace
_setprofile = sys.setprofile
_dup2 = os.dup2
_getrecursionlimit = sys.getrecursionlimit
_setrecursionlimit = sys.setrecursionlimit
_ITIMERS = (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF)
_ALL_SIGNALS = set(signal.valid_signals())


class Guard:
    """Snapshot of the runner's dependencies, restored around each cell."""

    def __init__(self, globals_: dict[str, Any], handlers: dict[int, Any], out_fd: int, streams: tuple[Any, Any, Any]) -> None:
        self.globals = globals_
        self.handlers = dict(handlers)
        self.out_fd = out_fd
        self.streams = streams
        self.modules = [(m.__dict__, dict(m.__dict__)) for m in _MODULES]
        self.classes = [(c, dict(c.__dict__)) for c in _CLASSES]
        self.sys_names = {n: getattr(sys, n) for n in _SYS_NAMES}
        self.recursion_limit = _getrecursionlimit()
        self.extra: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def protect(self, *modules: Any) -> None:
        """Also restore these modules (the runner's own, the SQL tools)."""
        self.extra += [(m.__dict__, dict(m.__dict__)) for m in modules]

    def protect_classes(self, *classes: type) -> None:
        """Also restore these classes' attributes (the wire records the runner builds and reads)."""
        self.classes += [(c, dict(c.__dict__)) for c in classes]

    def restore(self) -> None:
        """Undo what a cell did to the runner's machinery (timers first: an alarm must not fire)."""
        for which in _ITIMERS:
            _setitimer(which, 0)
        _sigmask(signal.SIG_SETMASK, set())
        for sig, handler in self.handlers.items():
            _signal(sig, handler)
        _settrace(None)
        _setprofile(None)
        for live, snap in (*self.modules, *self.extra):
            for k, v in snap.items():
                if live.get(k, _MISSING) is not v:
                    live[k] = v
        for cls, snap in self.classes:
            for k, v in snap.items():
                if k not in ("__dict__", "__weakref__", "__doc__") and cls.__dict__.get(k, _MISSING) is not v:
                    try:
                        setattr(cls, k, v)
                    except (AttributeError, TypeError):
                        pass
        for k, v in self.sys_names.items():
            if sys.__dict__.get(k, _MISSING) is not v:
                setattr(sys, k, v)
        if _getrecursionlimit() < self.recursion_limit:
            _setrecursionlimit(self.recursion_limit)
        sys.stdout, sys.stderr, sys.stdin = self.streams
        self.globals["__builtins__"] = builtins
        _dup2(self.out_fd, 1)
        _dup2(self.out_fd, 2)
