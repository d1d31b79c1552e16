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
openpyxl, pyarrow and sqlite3 once; each session is a fork of it (milliseconds), in its own
process group, with its own uid when the pool runs as root, inside a network namespace when
the kernel allows one (sockets are blocked by an audit hook in any case), with a scrubbed
environment and resource limits (:class:`Limits`). Cells run in persistent globals. A crash,
a timeout that ignores the interrupt, or stray threads rebuild the session by replaying its
successful cells (``Limits.on_crash``). Processes a cell starts do not outlive the cell.
Sessions opened over a sqlite file get ``get_db_info()`` and ``execute_sql(sql, output_path)``.

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
