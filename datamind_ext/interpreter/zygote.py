"""The warm zygote: imports the data stack once, then forks a session per request.

Started by the pool as ``python -m datamind_ext.interpreter.zygote FD`` with a scrubbed
environment, in its own process group. It never runs user code itself. It reaps its children,
and when a session ends it kills whatever the session left behind (by process group, by the
session's uid, and through child-subreaper adoption) before telling the pool. When the pool
goes away (its control socket reaches EOF, even after a SIGKILL of the pool) the zygote kills
every session and exits, so nothing outlives the pool.

Control messages (:mod:`messages`) are :mod:`wire` frames, one per datagram of a SOCK_SEQPACKET
socket; a spawn request carries the session's end of a socketpair as SCM_RIGHTS.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import json
import os
import select
import signal
import socket
import sys
import time
from typing import Any

from datamind_ext.interpreter import heap, memcg, sandbox, uids, wire
from datamind_ext.interpreter.messages import (
    POOL_TO_ZYGOTE,
    Exited,
    Kill,
    Message,
    SessionSpec,
    Shutdown,
    Signal,
    Spawn,
    Spawned,
    ZygoteReady,
    decode,
)

DEFAULT_PRELOAD: tuple[str, ...] = (
    "numpy",
    "pandas",
    "scipy.stats",
    "scipy.optimize",
    "sklearn.linear_model",
    "sklearn.preprocessing",
    "sklearn.model_selection",
    "sklearn.metrics",
    "sklearn.cluster",
    "sklearn.ensemble",
    "sklearn.tree",
    "matplotlib",
    "matplotlib.pyplot",
    "openpyxl",
    "sqlite3",
    "pyarrow.parquet",
    "json",
    "csv",
)
#: What every session runs on, whatever the preload list (imported after it).
RUNNER_MODULES: tuple[str, ...] = ("datamind_ext.interpreter.cell_runner", "datamind_ext.interpreter.sqltools")


def _preload(modules: list[str]) -> dict[str, str]:
    import importlib

    failed = {}
    for name in [*modules, *(m for m in RUNNER_MODULES if m not in modules)]:
        if name == "matplotlib":
            try:
                import matplotlib

                matplotlib.use("Agg")
            except Exception as exc:  # noqa: BLE001
                failed[name] = str(exc)
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - an optional library missing is reported, not fatal
            failed[name] = f"{type(exc).__name__}: {exc}"
    _warm_up({name.split(".")[0] for name in modules})
    return failed


def _warm_up(packages: set[str]) -> None:
    """Touch the lazily imported paths analysts hit, so sessions inherit them instead of paying.

    Only for the preloaded ``packages``: warming a library up imports it, and a smaller warm
    image is what a shorter preload list is for (every fork copies the image's page tables)."""
    if "pandas" in packages:
        _warm_up_pandas()
    if "scipy" in packages:
        _warm_up_scipy()
    if "sklearn" in packages:
        _warm_up_sklearn()
    if "matplotlib" in packages:
        _warm_up_matplotlib()


def _warm_up_pandas() -> None:
    try:
        import pandas as pd

        df = pd.read_csv(io.StringIO("a,b,c\n1,x,2.5\n2,y,3.5\n3,x,\n"))
        df.describe(include="all").to_string()
        df.groupby("b").agg({"a": ["mean", "sum"], "c": "max"}).reset_index().to_string()
        df.sort_values("a").head(2).to_string()
        df["b"].value_counts().to_string()
        df.isna().sum().to_string()
        df.to_csv(io.StringIO(), index=False)
        df.merge(df, on="a").pivot_table(index="b_x", values="a", aggfunc="mean")
        pd.to_datetime(pd.Series(["2024-01-01", "2024-02-01"])).dt.month.tolist()
        df.corr(numeric_only=True).round(2).to_string()
        pd.read_json(io.StringIO('[{"a": 1}]'))
        ts = pd.DataFrame({"date": pd.to_datetime(["2024-01-01 10:00", "2024-02-03 11:30", "2024-03-05 12:00"]),
                           "v": [1.0, 2.0, 4.0], "k": ["a", "b", "a"]})
        ts.set_index("date").resample("MS")["v"].sum().tail(2).round(2).to_string()
        ts.groupby(["k"])["v"].sum().nlargest(2).to_string()
        ts[["v"]].describe().round(2).to_string()
        buf = io.BytesIO()
        ts.to_excel(buf, index=False)
        pd.read_excel(io.BytesIO(buf.getvalue()))
        buf = io.BytesIO()
        ts.to_parquet(buf)
        pd.read_parquet(io.BytesIO(buf.getvalue()))
    except Exception:  # noqa: BLE001
        pass


def _warm_up_scipy() -> None:
    try:
        import numpy as np
        from scipy import stats

        x = np.arange(10.0)
        stats.pearsonr(x, x**2)
        stats.ttest_ind(x, x + 1)
        np.percentile(x, [25, 50, 75])
    except Exception:  # noqa: BLE001
        pass


def _warm_up_sklearn() -> None:
    try:
        import numpy as np
        from sklearn.linear_model import LinearRegression, LogisticRegression
        from sklearn.model_selection import train_test_split

        X = np.arange(20.0).reshape(10, 2)
        y = X @ np.array([1.0, 2.0])
        LinearRegression().fit(X, y).score(X, y)
        LogisticRegression().fit(X, (y > y.mean()).astype(int)).predict(X)
        train_test_split(X, y, test_size=0.2, random_state=0)
        # DataFrame input takes another path: sklearn validates it through narwhals, imported
        # lazily (20 modules). Left to the first such cell, every session paid for them:
        # 3.4 MiB more unique memory after the benchmark's five cells.
        import pandas as pd

        frame = pd.DataFrame(X, columns=["u", "v"])
        target = pd.Series(y, name="y")
        model = LinearRegression().fit(frame, target)
        model.predict(frame).round(3)
        model.score(frame, target)
        train_test_split(frame, target, test_size=0.2, random_state=0)
    except Exception:  # noqa: BLE001
        pass


def _warm_up_matplotlib() -> None:
    try:
        import matplotlib.pyplot as plt

        fig = plt.figure()
        plt.plot([1, 2], [3, 4])
        fig.savefig(io.BytesIO(), format="png")
        plt.close(fig)
    except Exception:  # noqa: BLE001
        pass


class Zygote:
    def __init__(self, ctrl: socket.socket, isolate_network: bool, isolate_user: bool = True, n_uids: int = 0) -> None:
        self.ctrl = ctrl
        self.n_uids = n_uids
        self.uid_base = 0
        self.uid_locks: list[int] = []
        self.root = os.getcwd()  # the pool's temporary root
        self.janitor_fd: int | None = None
        self.janitor_pid: int | None = None
        self.sessions: dict[int, SessionSpec] = {}
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.isolate_network = isolate_network
        self.isolate_user = isolate_user
        self.sweeper: tuple[int, socket.socket] | None = None
        self.pid_ns_fd: int | None = None  # our own pid namespace, to return to after each session fork
        self.alive_fd: int | None = None  # a pidfd of ourselves: a session checks we still live

    def send(self, msg: Message) -> None:
        wire.send_datagram(self.ctrl, msg.to_wire())

    # --- lifecycle -------------------------------------------------------------------------
    def start(self, preload: list[str]) -> None:
        facts: dict[str, str] = {}
        if self.isolate_network:
            why = sandbox.unshare_network()
            facts["network"] = (
                "network namespace with no interface up; non-Unix sockets also blocked by audit hook"
                if why is None
                else f"sockets blocked by audit hook only (no network namespace: unshare failed: {why})"
            )
        else:
            facts["network"] = "sockets blocked by audit hook only (network namespace disabled by configuration)"
        facts["cleanup"] = (
            "process group + sweep of the session uid + zygote as child subreaper; processes a cell starts die with it"
            if sandbox.set_child_subreaper()
            else "process groups only"
        )
        self.uid_mode = sandbox.can_switch_uid() and self.isolate_user
        if not self.isolate_user:
            facts["filesystem"] = "sessions keep the pool's uid (per-session uids disabled by configuration)"
        elif not self.uid_mode:
            facts["filesystem"] = "sessions keep the pool's uid (not root: per-session uids need CAP_SETUID)"
        if self.uid_mode:
            here = os.getcwd()  # the pool's own directory: traversable, deliberately not listable
            needed = [p for p in [*sys.path, sys.prefix, sys.base_prefix, os.path.dirname(sys.executable)] if p and os.path.realpath(p) != here]
            hidden = sorted(sandbox.blocked_dirs(needed))
            why = sandbox.expose_paths(needed, os.getcwd())
            if why is not None:
                self.uid_mode = False
                facts["filesystem"] = f"sessions keep the pool's uid: the Python installation is not readable by other uids ({why})"
            elif hidden:
                facts["filesystem"] = (
                    f"private mount namespace: {', '.join(hidden)} covered by an empty tmpfs except the Python "
                    "installation inside it"
                )
            else:
                facts["filesystem"] = "host filesystem, per-session uid permissions"
        if self.uid_mode:
            try:
                self.uid_base, self.uid_locks = uids.lease(self.n_uids)
            except OSError as exc:
                self.uid_mode = False
                facts["filesystem"] = f"sessions keep the pool's uid: {exc}"
        if self.uid_mode:
            self._start_sweeper()
        try:
            self.alive_fd = os.pidfd_open(os.getpid())
        except (AttributeError, OSError) as exc:
            why = f"no pidfd: {exc}"  # a session then checks its parent pid instead, which needs our namespace
        else:
            self.pid_ns_fd, why = sandbox.pid_namespace_switch() if self.uid_mode else (None, "they come with per-session uids")
        if self.pid_ns_fd is None:
            facts["proc"] = f"off: sessions share the pool's pid namespace and see its /proc ({why})"
        self.memcg: tuple[str, str] | None = None
        try:
            self.memcg = memcg.create_pool_group()
        except OSError as exc:
            facts["memory_accounting"] = f"off: RLIMIT_AS only (memfd, tmpfs and shm not counted): {exc.strerror or exc}"
        t0 = time.perf_counter()
        failed = _preload(preload)
        from datamind_ext.interpreter import cell_runner

        cell_runner.prepare_guard()  # after the preload, before the freeze: shared by every session
        self.read_paths = sandbox.runtime_read_paths()  # after the preload: what was imported from where
        gc.collect()
        self.pool_filler = heap.fill_small_object_pools()  # after the collection: its holes too
        self.malloc_filler = heap.fill_malloc_holes()  # last: the filling above allocates too
        gc.freeze()  # keep the warm heap out of the collector so forks share its pages
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.set_wakeup_fd(self.wake_w)
        self.send(
            ZygoteReady(
                pid=os.getpid(),
                isolation=facts,
                preload_failed=failed,
                preload_s=round(time.perf_counter() - t0, 3),
                uid_mode=self.uid_mode,
                uid_base=self.uid_base,
                memory_cgroup=list(self.memcg) if self.memcg else None,
                helper_pids=sorted(self._helpers()),
            )
        )

    def _start_sweeper(self) -> None:
        """Fork, while still small (before the preload), a root helper that kills every process
        of a given uid: ``kill(-1)`` from a child switched to that uid is atomic against forks,
        and forking this helper costs a fraction of a millisecond, unlike forking the warm image."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            ours.close()
            self.ctrl.close()
            if self.janitor_fd is not None:
                os.close(self.janitor_fd)
            sandbox.set_parent_death_signal(signal.SIGKILL)
            while True:
                data = theirs.recv(4)
                if len(data) < 4:
                    os._exit(0)
                uid = int.from_bytes(data, "little")
                if uid < 65536:  # session uids are far above system and user uids; never sweep those
                    theirs.sendall(b"k")
                    continue
                child = os.fork()
                if child == 0:
                    try:
                        os.setresuid(uid, uid, uid)
                        os.kill(-1, signal.SIGKILL)
                    except BaseException:  # noqa: BLE001
                        pass
                    os._exit(0)
                os.waitpid(child, 0)
                theirs.sendall(b"k")
        theirs.close()
        self.sweeper = (pid, ours)

    def start_janitor(self) -> None:
        """Fork, first of all (still small, still in the pool's mount namespace), the process that
        removes the pool's root — unmounting the sessions' working directories — once the zygote
        and every session are gone, however they went (a SIGKILL of the pool included). It
        waits for EOF on a pipe whose write end only the zygote holds."""
        r, w = os.pipe2(os.O_CLOEXEC)
        zygote = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(w)
                self.ctrl.close()
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                while os.read(r, 1):
                    pass
                sandbox.remove_tree(self.root)
                memcg.remove_pool_group(zygote)
            finally:
                os._exit(0)
        os.close(r)
        self.janitor_fd, self.janitor_pid = w, pid

    def _sweep_uid(self, uid: int) -> None:
        pid, sock = self.sweeper
        try:
            sock.sendall(uid.to_bytes(4, "little"))
            sock.recv(1)
        except OSError:
            pass

    def _on_term(self, *_: Any) -> None:
        raise SystemExit(0)

    def serve(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self.ctrl, self.wake_r], [], [])
                if self.wake_r in ready:
                    try:
                        while os.read(self.wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    self.reap()
                if self.ctrl in ready:
                    data, fds, _, _ = socket.recv_fds(self.ctrl, wire.MAX_DATAGRAM_BYTES, 4)
                    if not data:  # the pool is gone without a shutdown (killed); the janitor removes its root
                        return
                    try:
                        msg = decode(wire.decode_datagram(data), *POOL_TO_ZYGOTE)
                    except wire.WireCorrupt:  # only the pool holds this socket: a bug, not an attack
                        for fd in fds:
                            os.close(fd)
                        raise
                    self.handle(msg, fds)
                    self.reap()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        for pid in list(self.sessions):
            self._kill(pid)
        deadline = time.monotonic() + 5
        while self.sessions and time.monotonic() < deadline:
            self.reap(notify=False)
            time.sleep(0.01)
        if self.memcg is not None and not self.sessions:
            memcg.remove(self.memcg[1])

    # --- requests --------------------------------------------------------------------------
    def handle(self, msg: Message, fds: list[int]) -> None:
        spawned = isinstance(msg, Spawn)
        try:
            if isinstance(msg, Spawn):
                self.spawn(msg, fds[0])  # a spawn request always carries the session's socket
            elif isinstance(msg, Signal):
                if msg.pid in self.sessions:
                    try:
                        os.kill(msg.pid, msg.sig)
                    except ProcessLookupError:
                        pass
            elif isinstance(msg, Kill):
                if msg.pid in self.sessions:
                    self._kill(msg.pid)
            elif isinstance(msg, Shutdown):
                raise SystemExit(0)
        finally:
            for fd in fds[1:] if spawned else fds:
                os.close(fd)

    def spawn(self, msg: Spawn, fd: int) -> None:
        spec = dataclasses.replace(msg.spec, read_paths=self.read_paths, memcg=list(self.memcg) if self.memcg else None)
        zygote_pid = os.getpid()
        pid = os.fork() if self.pid_ns_fd is None else sandbox.fork_into_new_pid_namespace(self.pid_ns_fd)
        if pid == 0:
            try:
                if self.pid_ns_fd is not None:
                    os.close(self.pid_ns_fd)
                self.ctrl.close()
                os.close(self.wake_r)
                os.close(self.wake_w)
                if self.sweeper is not None:
                    self.sweeper[1].close()  # a session must never reach the root sweeper
                for lock in self.uid_locks:
                    os.close(lock)  # nor release its pool's uid range
                if self.janitor_fd is not None:
                    os.close(self.janitor_fd)  # the janitor waits for the zygote and every session to be gone
                from datamind_ext.interpreter.cell_runner import session_main

                session_main(socket.socket(fileno=fd), spec, zygote_pid, self.alive_fd)
            finally:
                os._exit(73)
        os.close(fd)
        self.sessions[pid] = spec
        self.send(Spawned(id=msg.id, pid=pid))

    def _kill(self, pid: int) -> None:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except OSError:
                pass

    # --- reaping ---------------------------------------------------------------------------
    def reap(self, notify: bool = True) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            spec = self.sessions.pop(pid, None)
            if spec is None:
                continue  # an adopted orphan, the sweeper or the janitor
            self.sweep(pid, spec)
            oom = False
            if self.memcg is not None:
                oom = memcg.oom_killed(*self.memcg, pid)
                memcg.remove(memcg.session_dir(self.memcg[1], pid))
            if notify:
                if os.WIFSIGNALED(status):
                    exited = Exited(pid=pid, signal=os.WTERMSIG(status), oom=oom)
                else:
                    exited = Exited(pid=pid, code=os.waitstatus_to_exitcode(status))
                try:
                    self.send(exited)
                except OSError:
                    pass

    def sweep(self, pid: int, spec: SessionSpec) -> None:
        """Kill everything a dead session left behind."""
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        uid = spec.uid
        if uid is not None and self.sweeper is not None:
            self._sweep_uid(uid)  # every process of that uid, atomically
        # Orphans re-parented to us (a session that escaped its group without its own uid).
        for child in self._children():
            if child not in self.sessions and child not in self._helpers():
                try:
                    os.kill(child, signal.SIGKILL)
                except OSError:
                    pass

    def _helpers(self) -> set[int]:
        return {p for p in (self.sweeper[0] if self.sweeper else None, self.janitor_pid) if p}

    def _children(self) -> list[int]:
        out: list[int] = []
        try:
            for tid in os.listdir("/proc/self/task"):
                with open(f"/proc/self/task/{tid}/children", encoding="ascii") as f:
                    out += [int(x) for x in f.read().split()]
        except OSError:
            pass
        return out


def main(argv: list[str]) -> int:
    fd = int(argv[0])
    config = json.loads(argv[1]) if len(argv) > 1 else {}
    ctrl = socket.socket(fileno=fd)
    ctrl.set_inheritable(False)
    zygote = Zygote(
        ctrl,
        isolate_network=config.get("isolate_network", True),
        isolate_user=config.get("isolate_user", True),
        n_uids=config.get("n_uids", 1),
    )
    zygote.start_janitor()
    zygote.start(list(config.get("preload", DEFAULT_PRELOAD)))
    zygote.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
