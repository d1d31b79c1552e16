"""The sandboxed, persistent, forked code interpreter used by synthesis, rollouts and evaluation.

Async (rollouts, synthesis)::

    from datamind_ext.interpreter import InterpreterPool, Limits

    async with InterpreterPool(limits=Limits(timeout_s=30), max_sessions=256) as pool:
        async with pool.session(files=["sales.csv", "shop.sqlite"]) as s:
            r = await s.run("import pandas as pd\\ndf = pd.read_csv('sales.csv')\\nprint(df.shape)")
            r.output, r.ok, r.error, r.timed_out, r.duration_s

Synchronous (scripts)::

    from datamind_ext.interpreter import SyncInterpreterPool

    with SyncInterpreterPool(limits=Limits()) as pool, pool.session(files=["sales.csv"]) as s:
        print(s.run("print(1 + 1)").output)

How it works: a zygote process imports pandas, numpy, scipy, scikit-learn, matplotlib (Agg),
openpyxl, pyarrow and sqlite3 once (``preload``: a shorter list is a smaller image to fork); each
session is a fork of it (milliseconds), in its own
process group, with its own uid from a host-wide leased range when the pool runs as root, inside
a network namespace when the kernel allows one, with a scrubbed environment and resource limits
(:class:`Limits`). Kernel layers, each reported by ``datamind-ext doctor`` as on or off with the
reason: a Landlock filesystem view (runtime read-only; working directory and private /tmp
writable; nothing else exists), a memory cgroup counting every byte a session holds (memfd,
tmpfs, shm included), a tmpfs working directory and /tmp as disk quota, and a seccomp filter (no
namespaces, no netlink/vsock). Cells run in persistent globals; the runner restores what a cell
may have broken of its own machinery before each cell, and a reply is accepted only if it is the
cell's own (sequence number + nonce, typed: :mod:`messages` defines every message on the wire), so bytes a cell writes anywhere never make ``run``
raise. A crash, a timeout that ignores the interrupt, a corrupted channel or stray threads
rebuild the session by replaying its successful cells within ``Limits.replay_budget_s``
(``Limits.on_crash``), falling back to a fresh session when replay fails again. Processes a cell
starts do not outlive the cell. Failed cells carry ``error_name`` / ``error_value`` besides the
rendered ``error``; every result carries ``stdout`` / ``stderr`` (each stream alone) besides the
interleaved ``output`` the model sees. Sessions opened over a sqlite file get ``get_db_info()`` and
``execute_sql(sql, output_path)``.

The observation text for the model is not built here: pass the result to
:func:`datamind_ext.protocol.observation_text`.
"""

from datamind_ext.interpreter.config import InterpreterConfig
from datamind_ext.interpreter.isolation import isolation_report
from datamind_ext.interpreter.limits import Limits
from datamind_ext.interpreter.pool import InterpreterError, InterpreterPool, MemoryReport, Session, describe_exit
from datamind_ext.interpreter.provider import SessionProvider
from datamind_ext.interpreter.result import ExecResult
from datamind_ext.interpreter.sync import SyncInterpreterPool, SyncSession

__all__ = [
    "ExecResult",
    "InterpreterConfig",
    "InterpreterError",
    "InterpreterPool",
    "Limits",
    "MemoryReport",
    "Session",
    "SessionProvider",
    "SyncInterpreterPool",
    "SyncSession",
    "describe_exit",
    "isolation_report",
]
