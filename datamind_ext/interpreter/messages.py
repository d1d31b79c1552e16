"""Every message on the interpreter's wire, as a typed record with one encoding and one decoding.

Three channels carry them, all framed by :mod:`wire`:

- pool -> zygote (control): :class:`Spawn`, :class:`Signal`, :class:`Kill`, :class:`Shutdown`;
- zygote -> pool: :class:`ZygoteReady`, :class:`Spawned`, :class:`Exited`;
- pool <-> session: :class:`Assign`, :class:`RunCell` one way; :class:`SpareReady`,
  :class:`SessionReady`, :class:`StartFailed`, :class:`CellReply` the other.

A message travels as a JSON object whose ``"type"`` names its record. :func:`decode` accepts only
the records the receiver expects there, and checks every field's type (``bool`` is not an
``int``, floats are finite), that no field is missing or extra, and each record's own invariants
(a reply is ``ok`` exactly when it has no error; counts are not negative). It raises
:class:`Malformed` otherwise. This matters most for :class:`CellReply`: the session runs hostile
code that can write frames of its own into its channel, so the pool also checks a reply's
sequence number and nonce and bounds its text (:func:`datamind_ext.interpreter.result.parse_reply`).

The checks are built once per record at import from its type hints, so decoding a cell's reply
costs a dozen type tests: these are per cell.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from math import isfinite  # noqa: I001 - bound here: the session's guard restores this module's names, not math's
from typing import Any, ClassVar, TypeVar, Union

import pydantic

from datamind_ext.interpreter.limits import Limits
from datamind_ext.interpreter.wire import WireCorrupt

M = TypeVar("M", bound="Message")


class Malformed(WireCorrupt):
    """A frame that is valid JSON but not a message the receiver expects there (wrong type, a
    missing, extra or mistyped field, inconsistent contents): for a session, a forged frame."""


class Message:
    """Base of the wire records; ``TYPE`` is the value of the ``"type"`` key on the wire."""

    __slots__ = ()

    TYPE: ClassVar[str]
    _FIELDS: ClassVar[tuple[tuple[str, Callable[[Any], Any], Callable[[Any], Any]], ...]]

    def to_wire(self) -> dict[str, Any]:
        """The JSON object this record travels as."""
        out: dict[str, Any] = {"type": self.TYPE}
        for name, _, encode in self._FIELDS:
            out[name] = encode(getattr(self, name))
        return out

    def _invalid(self) -> str | None:
        """Why this record's contents are inconsistent, or None (records with invariants override)."""
        return None


_REGISTRY: typing.Mapping[str, type[Message]] = {}  # made read-only once every record is defined


def _identity(value: Any) -> Any:
    return value


def _bad(name: str, value: Any) -> Malformed:
    return Malformed(f"field {name!r}: unexpected {type(value).__name__}")


def _converter(name: str, hint: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(decode, encode) of one field: decode checks a JSON value and returns the field's value."""
    if hint is Any:
        return _identity, _identity
    if hint is str or hint is bool or hint is type(None):
        exact = hint

        def check_exact(v: Any) -> Any:
            if type(v) is not exact:
                raise _bad(name, v)
            return v

        return check_exact, _identity
    if hint is int:

        def check_int(v: Any) -> Any:
            if type(v) is not int:  # bool is an int subclass: refused
                raise _bad(name, v)
            return v

        return check_int, _identity
    if hint is float:

        def check_float(v: Any) -> Any:
            if type(v) is int:
                return float(v)
            if type(v) is not float or not isfinite(v):  # json.loads accepts NaN and Infinity
                raise _bad(name, v)
            return v

        return check_float, _identity
    if isinstance(hint, type) and issubclass(hint, pydantic.BaseModel):
        model = hint

        def check_model(v: Any) -> Any:
            try:
                return model.model_validate(v)
            except pydantic.ValidationError as err:
                raise Malformed(f"field {name!r}: {err.error_count()} invalid value(s)") from None

        return check_model, lambda m: m.model_dump()
    if isinstance(hint, type) and issubclass(hint, Message):
        record = hint
        return (lambda v: decode(v, record)), (lambda m: m.to_wire())
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union or origin is types.UnionType:
        options = [_converter(name, a)[0] for a in args]

        def check_union(v: Any) -> Any:
            for option in options:
                try:
                    return option(v)
                except Malformed:
                    pass
            raise _bad(name, v)

        return check_union, _identity
    if origin is list:
        (item,) = [_converter(name, a)[0] for a in args]

        def check_list(v: Any) -> Any:
            if type(v) is not list:
                raise _bad(name, v)
            return [item(x) for x in v]

        return check_list, _identity
    if origin is dict:
        key, value = (_converter(name, a)[0] for a in args)

        def check_dict(v: Any) -> Any:
            if type(v) is not dict:
                raise _bad(name, v)
            return {key(k): value(x) for k, x in v.items()}

        return check_dict, _identity
    raise TypeError(f"no wire converter for field {name!r} of type {hint!r}")


def message(type_name: str) -> Callable[[type[M]], type[M]]:
    """Make a class a frozen wire record named ``type_name`` and build its field checks."""

    def wrap(cls: type[M]) -> type[M]:
        cls = dataclasses.dataclass(frozen=True, slots=True)(cls)
        hints = typing.get_type_hints(cls)
        cls.TYPE = type_name
        cls._FIELDS = tuple((f.name, *_converter(f.name, hints[f.name])) for f in dataclasses.fields(cls))
        if type_name in _REGISTRY:
            raise ValueError(f"two wire messages named {type_name!r}")
        _REGISTRY[type_name] = cls  # type: ignore[index]
        return cls

    return wrap


def decode(raw: Any, *expected: type[M]) -> M:
    """The record ``raw`` (a decoded frame) encodes, if it is one of ``expected``; else Malformed."""
    if type(raw) is not dict:
        raise Malformed(f"a frame of {type(raw).__name__}, not an object")
    cls = _REGISTRY.get(raw.get("type"))  # type: ignore[arg-type]
    if cls is None or cls not in expected:
        raise Malformed(f"unexpected message type {str(raw.get('type'))[:40]!r}")
    fields = cls._FIELDS
    if len(raw) != len(fields) + 1:
        names = {name for name, _, _ in fields}
        extra = sorted(str(k)[:40] for k in raw if k != "type" and k not in names)
        missing = sorted(n for n in names if n not in raw)
        raise Malformed(f"{cls.TYPE}: extra fields {extra}, missing {missing}")
    values = {}
    for name, check, _ in fields:
        if name not in raw:
            raise Malformed(f"{cls.TYPE}: missing field {name!r}")
        values[name] = check(raw[name])
    record = cls(**values)
    why = record._invalid()
    if why is not None:
        raise Malformed(f"{cls.TYPE}: {why}")
    return record  # type: ignore[return-value]


# --- the session's start and spec ---------------------------------------------------------


@message("session_spec")
class SessionSpec(Message):
    """What a forked session process is made with: sent by the pool inside :class:`Spawn`; the
    zygote fills in what only it knows (``read_paths``, ``memcg``) before it forks."""

    uid: int | None
    gid: int | None
    pool_root: str
    limits: Limits
    read_paths: list[str] = dataclasses.field(default_factory=list)
    memcg: list[str] | None = None  # (cgroup root, pool group) of the memory cgroup, when on


@message("spare_ready")
class SpareReady(Message):
    """Session -> pool: the process is forked and sandboxed, waiting for :class:`Assign`."""


@message("assign")
class Assign(Message):
    """Pool -> session: become this session (its prepared working directory and data files)."""

    workdir: str
    files: list[str]
    db: str | None


@message("session_ready")
class SessionReady(Message):
    """Session -> pool: assigned, ready for cells; ``isolation`` is what is in force, measure by measure."""

    pid: int
    isolation: dict[str, str]


@message("start_failed")
class StartFailed(Message):
    """Session -> pool: setting up the process or the session failed; it exits."""

    error: str


# --- cells ----------------------------------------------------------------------------------


@message("run")
class RunCell(Message):
    """Pool -> session: run one cell. ``cell`` numbers the session's cells; ``nonce`` is fresh per cell."""

    code: str
    cell: int
    nonce: str
    cpu_s: float
    memory_mib: int


@message("cell_reply")
class CellReply(Message):
    """Session -> pool: what the cell did. ``seq`` and ``nonce`` repeat the request's ``cell`` and ``nonce``."""

    seq: int
    nonce: str
    output: str  # stdout and stderr interleaved, head + tail kept (capture.py)
    stdout: str  # what went through sys.stdout alone, head + tail kept
    stderr: str  # what went through sys.stderr alone
    ok: bool
    error: str | None  # the rendered traceback
    error_name: str | None
    error_value: str | None
    interrupted: bool  # stopped by the pool's wall-clock interrupt
    output_chars: int  # characters printed before truncation
    truncated_chars: int
    cell_s: float
    stray_threads: int

    def _invalid(self) -> str | None:
        if self.ok == (self.error is not None):
            return "ok must be true exactly when there is no error"
        if min(self.output_chars, self.truncated_chars, self.stray_threads) < 0 or self.cell_s < 0:
            return "negative count or duration"
        return None

    def answers(self, req: RunCell) -> bool:
        """Whether this is the reply to ``req`` (not an earlier cell's, nor one forged without it)."""
        return self.seq == req.cell and self.nonce == req.nonce


# --- the zygote's control channel -----------------------------------------------------------


@message("spawn")
class Spawn(Message):
    """Pool -> zygote: fork a session process; its end of a socketpair rides along as SCM_RIGHTS."""

    id: int
    spec: SessionSpec


@message("spawned")
class Spawned(Message):
    """Zygote -> pool: the answer to the :class:`Spawn` numbered ``id``."""

    id: int
    pid: int


@message("signal")
class Signal(Message):
    """Pool -> zygote: send ``sig`` to a session process (the wall-clock interrupt)."""

    pid: int
    sig: int


@message("kill")
class Kill(Message):
    """Pool -> zygote: kill a session process and everything it left; :class:`Exited` follows."""

    pid: int


@message("shutdown")
class Shutdown(Message):
    """Pool -> zygote: kill every session and exit."""


@message("exited")
class Exited(Message):
    """Zygote -> pool: a session process ended and was swept; by ``signal`` or with exit ``code``."""

    pid: int
    code: int | None = None
    signal: int | None = None
    oom: bool = False  # killed by the memory cgroup's OOM killer

    def _invalid(self) -> str | None:
        return None if (self.code is None) != (self.signal is None) else "exactly one of code and signal"


@message("zygote_ready")
class ZygoteReady(Message):
    """Zygote -> pool, once: preloaded and serving; the facts the pool reports and relies on."""

    pid: int
    isolation: dict[str, str]
    preload_failed: dict[str, str]
    preload_s: float
    uid_mode: bool
    uid_base: int
    memory_cgroup: list[str] | None
    helper_pids: list[int]


_REGISTRY = types.MappingProxyType(dict(_REGISTRY))

SESSION_TO_POOL = (SpareReady, SessionReady, StartFailed, CellReply)
ZYGOTE_TO_POOL = (ZygoteReady, Spawned, Exited)
POOL_TO_ZYGOTE = (Spawn, Signal, Kill, Shutdown)
POOL_TO_SESSION = (Assign, RunCell)
