"""Keep a session's machinery working whatever a cell does to its own process.

A cell runs in the same interpreter as the runner, so it can rebind builtins
(``builtins.compile = None``), patch the modules the runner uses (``json.dumps = None``), set
an alarm that kills the process after the cell, install a trace function, or redirect
``sys.stdout``. :class:`Guard` snapshots what the runner depends on once, when the session is
assigned, and puts it back before and after every cell, so such a cell poisons at most itself.
Names a cell *adds* are kept; only what existed at the snapshot is restored.

Memory: the snapshot copies hold a reference to every value of those namespaces, and taking
them writes the reference count of each (thousands of objects spread over the image the
session shares with the zygote: about 1.4 MiB of pages copied per session). So the zygote
takes them once before it forks (:func:`prepare`) and a session adopts each copy whose
namespace is unchanged since; and ``restore`` skips a namespace whose PEP 509 dict version is
the one it last saw (a dict's version changes with every modification), instead of reading
every value again, which would write those reference counts once more.
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
_id = id
_enumerate = enumerate  # restore() runs before it puts the builtins back
_get_referents = gc.get_referents
# (live dict, its copy, the live dict's version when copied or last restored; None: not known)
_Snapshot = tuple[dict[str, Any], dict[str, Any], "int | None"]


def _version_reader() -> Any:
    """``ma_version_tag`` of a dict (PEP 509), read in place without touching its values, or
    None where the layout is not known to be CPython 3.11/3.12's (then every restore compares
    every value, as it must). Checked on a probe dict before it is trusted."""
    if sys.implementation.name != "cpython" or sys.version_info[:2] not in ((3, 11), (3, 12)):
        return None
    at = ctypes.c_uint64.from_address
    value = ctypes._SimpleCData.__dict__["value"].__get__  # the C getter itself: a cell patching the class cannot change it
    offset = 3 * ctypes.sizeof(ctypes.c_ssize_t)  # ob_refcnt, ob_type, ma_used, then ma_version_tag

    def version(d: dict[str, Any]) -> int:
        return value(at(_id(d) + offset))

    probe: dict[str, Any] = {"a": 1}
    seen = [version(probe)]
    for change in (lambda: probe.__setitem__("a", 2), lambda: probe.__setitem__("b", 1), lambda: probe.pop("a")):
        change()
        seen.append(version(probe))
    same = version(probe) == seen[-1]
    return version if same and all(x < y for x, y in zip(seen, seen[1:])) else None


_version = _version_reader()
_PREPARED: dict[int, _Snapshot] = {}


def _class_dict(cls: type) -> dict[str, Any]:
    """The dict behind ``cls.__dict__`` (a read-only proxy), for its version."""
    return _get_referents(cls.__dict__)[0]


def _snapshot(live: dict[str, Any]) -> _Snapshot:
    """The zygote's copy of ``live`` when it is unchanged since (no value read, no reference
    count written), else a fresh copy."""
    if _version is not None:
        ready = _PREPARED.get(_id(live))
        if ready is not None and ready[0] is live and ready[2] == _version(live):
            return ready
    return (live, dict(live), _version(live) if _version is not None else None)


def prepare(modules: tuple[Any, ...] = (), classes: tuple[type, ...] = ()) -> None:
    """Copy, before the zygote forks, the namespaces every session's guard restores (the
    standard ones and these), so sessions share the copies instead of each writing them."""
    if _version is None:
        return
    for live in [m.__dict__ for m in (*_MODULES, *modules)] + [_class_dict(c) for c in (*_CLASSES, *classes)]:
        _PREPARED[_id(live)] = (live, dict(live), _version(live))


def _restore_dict(live: dict[str, Any], snap: dict[str, Any]) -> None:
    for k, v in snap.items():
        if live.get(k, _MISSING) is not v:
            live[k] = v


class Guard:
    """Snapshot of the runner's dependencies, restored around each cell."""

    def __init__(self, globals_: dict[str, Any], handlers: dict[int, Any], out_fd: int, streams: tuple[Any, Any, Any]) -> None:
        self.globals = globals_
        self.handlers = dict(handlers)
        self.out_fd = out_fd
        self.streams = streams
        self.modules = [_snapshot(m.__dict__) for m in _MODULES]
        self.classes = [(c, *_snapshot(_class_dict(c))) for c in _CLASSES]
        self.sys_names = {n: getattr(sys, n) for n in _SYS_NAMES}
        self.recursion_limit = _getrecursionlimit()
        self.extra: list[_Snapshot] = []

    def protect(self, *modules: Any) -> None:
        """Also restore these modules (the runner's own, the SQL tools)."""
        self.extra += [_snapshot(m.__dict__) for m in modules]

    def protect_classes(self, *classes: type) -> None:
        """Also restore these classes' attributes (the wire records the runner builds and reads)."""
        self.classes += [(c, *_snapshot(_class_dict(c))) for c in classes]

    def restore(self) -> None:
        """Undo what a cell did to the runner's machinery (timers first: an alarm must not fire)."""
        for which in _ITIMERS:
            _setitimer(which, 0)
        _sigmask(signal.SIG_SETMASK, set())
        for sig, handler in self.handlers.items():
            _signal(sig, handler)
        _settrace(None)
        _setprofile(None)
        for group in (self.modules, self.extra):
            for i, (live, snap, seen) in _enumerate(group):
                if seen is None or _version(live) != seen:  # changed since: compare every value
                    _restore_dict(live, snap)
                    group[i] = (live, snap, None if seen is None else _version(live))
        for i, (cls, live, snap, seen) in _enumerate(self.classes):
            if seen is not None and _version(live) == seen:
                continue
            for k, v in snap.items():
                if k not in ("__dict__", "__weakref__", "__doc__") and cls.__dict__.get(k, _MISSING) is not v:
                    try:
                        setattr(cls, k, v)
                    except (AttributeError, TypeError):
                        pass
            self.classes[i] = (cls, live, snap, None if seen is None else _version(live))
        for k, v in self.sys_names.items():
            if sys.__dict__.get(k, _MISSING) is not v:
                setattr(sys, k, v)
        if _getrecursionlimit() < self.recursion_limit:
            _setrecursionlimit(self.recursion_limit)
        sys.stdout, sys.stderr, sys.stdin = self.streams
        self.globals["__builtins__"] = builtins
        _dup2(self.out_fd, 1)
        _dup2(self.out_fd, 2)
