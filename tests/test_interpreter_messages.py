"""The interpreter's wire records (messages.py) and framing (wire.py): every message type round-trips
through both framings, and a malformed or forged frame of each type is refused, by the decoder
and, for frames a cell writes into its own channel, by a live session (reported as SessionBroken)."""

from __future__ import annotations

import json
import math
import socket

import pytest
import pytest_asyncio

from datamind_ext.interpreter import InterpreterPool, Limits, messages, wire
from datamind_ext.interpreter.messages import (
    Assign,
    CellReply,
    Exited,
    Kill,
    Malformed,
    RunCell,
    SessionReady,
    SessionSpec,
    Shutdown,
    Signal,
    SpareReady,
    Spawn,
    Spawned,
    StartFailed,
    ZygoteReady,
    decode,
)
from datamind_ext.interpreter.result import parse_reply

LIMITS = Limits(timeout_s=20, interrupt_grace_s=3, memory_mib=1024, output_max_chars=600)
SPEC = SessionSpec(uid=70001, gid=70001, pool_root="/var/tmp/pool", limits=LIMITS, read_paths=["/usr"], memcg=["v2", "/sys/fs/cgroup/x"])
REPLY = CellReply(
    seq=3, nonce="ab" * 8, output="hi\n", stdout="hi\n", stderr="", ok=False, error="Traceback ...\nKeyError: 'a'", error_name="KeyError",
    error_value="'a'", interrupted=False, output_chars=3, truncated_chars=0, cell_s=0.25, stray_threads=0,
)
EXAMPLES = [
    SessionSpec(uid=70002, gid=70002, pool_root="/tmp/p", limits=Limits()),
    SpareReady(),
    Assign(workdir="/tmp/p/sessions/1", files=["a.csv", "b.sqlite"], db="b.sqlite"),
    SessionReady(pid=4242, isolation={"network": "namespace", "user": "own uid"}),
    StartFailed(error="OSError: no"),
    RunCell(code="print('é\\u2603')", cell=3, nonce="ab" * 8, cpu_s=60.0, memory_mib=4096),
    REPLY,
    Spawn(id=7, spec=SPEC),
    Spawned(id=7, pid=4242),
    Signal(pid=4242, sig=2),
    Kill(pid=4242),
    Shutdown(),
    Exited(pid=4242, signal=9, oom=True),
    ZygoteReady(
        pid=11, isolation={"network": "x"}, preload_failed={"torch": "ModuleNotFoundError"}, preload_s=1.5, uid_mode=True,
        uid_base=70000, memory_cgroup=None, helper_pids=[12, 13],
    ),
]


def test_every_message_type_has_an_example():
    assert {type(m) for m in EXAMPLES} == set(messages._REGISTRY.values())
    assert {*messages.SESSION_TO_POOL, *messages.POOL_TO_SESSION, *messages.ZYGOTE_TO_POOL, *messages.POOL_TO_ZYGOTE, SessionSpec} == set(
        messages._REGISTRY.values()
    )


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: m.TYPE)
def test_each_message_round_trips_through_both_framings(msg):
    a, b = socket.socketpair()
    with a, b:
        wire.send_sync(a, msg.to_wire())
        assert decode(wire.recv_sync(b), type(msg)) == msg
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with a, b:
        wire.send_datagram(a, msg.to_wire())
        assert decode(wire.decode_datagram(b.recv(wire.MAX_DATAGRAM_BYTES)), type(msg)) == msg


def test_a_datagram_carries_descriptors_with_its_frame():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r, w = socket.socketpair()
    with a, b, r, w:
        wire.send_datagram(a, Spawn(id=1, spec=SPEC).to_wire(), [w.fileno()])
        data, fds, _, _ = socket.recv_fds(b, wire.MAX_DATAGRAM_BYTES, 4)
        assert decode(wire.decode_datagram(data), Spawn).spec == SPEC and len(fds) == 1
        with socket.socket(fileno=fds[0]) as passed:
            passed.sendall(b"x")
            assert r.recv(1) == b"x"


@pytest.mark.parametrize("data", [b"", b"\x00\x00", wire.encode({"type": "shutdown"})[:-1], wire.encode({"type": "shutdown"}) + b"}"])
def test_a_datagram_that_is_not_exactly_one_frame_is_refused(data):
    with pytest.raises(wire.WireCorrupt):
        wire.decode_datagram(data)


OPTIONAL = {"db", "error", "error_name", "error_value", "uid", "gid", "memcg", "memory_cgroup", "code", "signal"}


def _wrong_values(name, value):
    """JSON values a field holding ``value`` must refuse: other kinds (a bool is not an int, nor an
    int a bool), NaN, and containers whose items are of the wrong kind."""
    nan = float("nan")
    out = []
    for c in (True, 7, 2.5, "s", None, [True], {"k": True}, nan):
        if c is nan or type(c) in (list, dict):
            out.append(c)
        elif type(c) is type(value) or (c is None and name in OPTIONAL) or (type(value) is float and type(c) is int):
            continue
        else:
            out.append(c)
    return out


def _malformed_variants(msg):
    good = msg.to_wire()
    yield "not-an-object", [good]
    yield "no-type", {k: v for k, v in good.items() if k != "type"}
    yield "unknown-type", {**good, "type": "nope"}
    yield "extra-field", {**good, "extra": 1}
    for name in good:
        if name != "type":
            yield f"missing-{name}", {k: v for k, v in good.items() if k != name}
            for bad in _wrong_values(name, good[name]):
                yield f"{name}={bad!r}", {**good, name: bad}


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: m.TYPE)
def test_each_message_type_refuses_malformed_frames(msg):
    variants = list(_malformed_variants(msg))
    assert len(variants) >= 4
    for what, raw in variants:
        with pytest.raises(Malformed):
            decode(raw, type(msg))
            pytest.fail(f"{msg.TYPE}: {what} was accepted")
    others = [m for m in EXAMPLES if type(m) is not type(msg)]
    for other in others:  # a valid message of another type is not this one
        with pytest.raises(Malformed):
            decode(other.to_wire(), type(msg))


@pytest.mark.parametrize(
    "change",
    [{"ok": True}, {"ok": False, "error": None}, {"output_chars": -1}, {"truncated_chars": -5}, {"stray_threads": -1},
     {"cell_s": -0.5}, {"cell_s": math.inf}, {"seq": True}, {"interrupted": 0}],
    ids=["ok-with-error", "failed-without-error", "neg-output", "neg-truncated", "neg-threads", "neg-duration", "inf-duration",
         "bool-seq", "int-bool"],
)
def test_an_inconsistent_reply_is_refused(change):
    with pytest.raises(Malformed):
        decode({**REPLY.to_wire(), **change}, CellReply)


def test_exited_has_exactly_one_of_code_and_signal():
    assert decode(Exited(pid=1, code=0).to_wire(), Exited).code == 0
    for raw in ({"type": "exited", "pid": 1, "code": None, "signal": None, "oom": False},
                {"type": "exited", "pid": 1, "code": 1, "signal": 9, "oom": False}):
        with pytest.raises(Malformed):
            decode(raw, Exited)


def test_parse_reply_takes_only_the_requests_own_reply_and_bounds_its_text():
    req = RunCell(code="x", cell=3, nonce="ab" * 8, cpu_s=1.0, memory_mib=64)
    assert parse_reply(REPLY.to_wire(), req, 600) == REPLY
    assert parse_reply({**REPLY.to_wire(), "seq": 2}, req, 600) is None
    assert parse_reply({**REPLY.to_wire(), "nonce": "0" * 16}, req, 600) is None
    assert parse_reply({**REPLY.to_wire(), "ok": "yes"}, req, 600) is None
    assert parse_reply(json.loads(json.dumps(REPLY.to_wire())), req, 600) == REPLY
    long = parse_reply({**REPLY.to_wire(), "output": "A\x00" + "x" * 100_000, "stderr": "y" * 9000, "error_value": "\ud800"}, req, 600)
    assert long is not None and "\x00" not in long.output and len(long.output) < 1000 and "characters cut" in long.output
    assert len(long.stderr) < 1000 and "characters cut" in long.stderr
    assert long.error_value.encode("utf-8")


# --- a live session: frames a cell writes into its own channel ------------------------------

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool():
    async with InterpreterPool(limits=LIMITS, max_sessions=2, spare_sessions=1, preload=["json"]) as p:
        yield p
    assert p.processes() == []


# The cell writes PAYLOAD (a JSON object, with NONCE and SEQ replaced by its own request's, which
# it can read from the runner's frame) as a frame into every socket it holds.
_FORGE = """
import json, os, struct, sys
f = sys._getframe()
while 'req' not in f.f_locals:
    f = f.f_back
req = f.f_locals['req']
body = json.dumps(PAYLOAD).replace('"NONCE"', json.dumps(req.nonce)).replace('"SEQ"', str(req.cell)).replace('"NAN"', 'NaN')
for fd in os.listdir('/proc/self/fd'):
    try:
        if os.readlink(f'/proc/self/fd/{fd}').startswith('socket:'):
            os.write(int(fd), struct.pack('>I', len(body.encode())) + body.encode())
    except OSError:
        pass
"""


def _own(change: dict) -> dict:
    return {**REPLY.to_wire(), "seq": "SEQ", "nonce": "NONCE", **change}


_FORGERIES = [(m.TYPE, m.to_wire()) for m in EXAMPLES if not isinstance(m, CellReply)] + [
    ("reply-other-nonce", REPLY.to_wire()),
    ("reply-ok-with-error", _own({"ok": True})),
    ("reply-bool-count", _own({"output_chars": True})),
    ("reply-negative-count", _own({"stray_threads": -1})),
    ("reply-nan-duration", _own({"cell_s": "NAN"})),
    ("reply-missing-field", {k: v for k, v in _own({}).items() if k != "interrupted"}),
    ("reply-extra-field", _own({"stdout_bytes": "x"})),
    ("reply-untyped", {k: v for k, v in _own({}).items() if k != "type"}),
]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("payload", [p for _, p in _FORGERIES], ids=[n for n, _ in _FORGERIES])
async def test_a_forged_frame_of_each_type_breaks_only_that_cell(pool, payload):
    code = _FORGE.replace("PAYLOAD", repr(payload))
    async with pool.session() as s:
        assert (await s.run("kept = 41")).ok
        r = await s.run(code)
        assert not r.ok and r.restarted and r.error_name == "SessionBroken" and r.replayed_cells == 1, r
        r = await s.run("print(kept + 1)")
        assert r.ok and r.output == "42\n" and not r.restarted, r


@pytest.mark.asyncio(loop_scope="module")
async def test_a_perfect_forgery_lies_only_about_its_own_cell(pool):
    """A cell that reads its own request can forge a well-formed reply: it only lies about itself.
    The runner's true reply that follows is skipped (never taken as the next cell's output, nor
    breaking the session), also after a replay re-runs the forging cell; other sessions are untouched."""
    forge = _FORGE.replace("PAYLOAD", repr(_own({"ok": True, "error": None, "output": "FORGED\n"})))
    async with pool.session() as other:
        assert (await other.run("mine = 7")).ok
        async with pool.session() as s:
            assert (await s.run("kept = 41")).ok
            r = await s.run(forge)
            assert r.output == "FORGED\n"
            r = await s.run("print(kept + 1)")
            assert r.ok and r.output == "42\n" and not r.restarted, r
            r = await s.run("import os\nos._exit(3)")  # a rebuild replays the three earlier cells, the forgery too
            assert not r.ok and r.restarted and r.replayed_cells == 3, r
            for i in range(2, 4):
                r = await s.run(f"print(kept + {i})")
                assert r.ok and r.output == f"{41 + i}\n" and not r.restarted, r
        r = await other.run("print(mine)")
        assert r.ok and r.output == "7\n" and not r.restarted, r


@pytest.mark.asyncio(loop_scope="module")
async def test_a_flood_of_forged_replies_breaks_the_session_once_then_it_starts_fresh(pool):
    """Copies of a perfect forgery beyond what the pool skips break the channel; the replay re-runs
    the flooding cell and breaks it again, so the session starts fresh instead of looping."""
    flood = _FORGE.replace("PAYLOAD", repr(_own({"ok": True, "error": None, "output": "FORGED\n"}))).replace(
        "os.write(int(fd), struct.pack('>I', len(body.encode())) + body.encode())",
        "os.write(int(fd), (struct.pack('>I', len(body.encode())) + body.encode()) * 100)",
    )
    async with pool.session() as s:
        assert (await s.run("kept = 41")).ok
        assert (await s.run(flood)).output == "FORGED\n"
        r = await s.run("print(kept)")
        assert not r.ok and r.error_name == "SessionBroken" and r.restarted and r.replayed_cells == 2, r
        r = await s.run("print(kept)")
        assert not r.ok and r.error_name == "SessionBroken" and r.replayed_cells == 0 and "fresh" in r.error, r
        r = await s.run("print('ok')")
        assert r.ok and r.output == "ok\n" and not r.restarted, r
