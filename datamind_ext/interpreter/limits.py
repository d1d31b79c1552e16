"""Per-cell and per-session limits of an interpreter session, with the defaults the recipe needs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from datamind_ext.config import StrictModel


class Limits(StrictModel):
    """What one session may use. Every field has a unit in its name.

    ``memory_mib`` bounds the address space a session may add on top of the warm image it was
    forked from (``RLIMIT_AS`` = image + limit), so the limit never breaks ``import numpy`` or
    BLAS, which reserve large virtual areas at import time (the reference's 1 GB cap did).
    """

    timeout_s: float = Field(30.0, gt=0, description="wall-clock time per cell")
    interrupt_grace_s: float = Field(1.0, ge=0, description="after a timeout, time for the interrupted cell to unwind before its process is killed")
    cpu_s_per_cell: float = Field(60.0, gt=0, description="CPU time per cell (SIGXCPU -> exception)")
    cpu_s_per_session: float = Field(1800.0, gt=0, description="CPU time of a session process (then SIGKILL, and rebuild)")
    memory_mib: int = Field(4096, gt=0, description="address space a session may add over the warm image")
    max_processes: int = Field(64, gt=1, description="processes + threads of a session (RLIMIT_NPROC on its own uid)")
    disk_mib: int = Field(1024, gt=0, description="disk quota of the session's working directory (a tmpfs where the pool runs as root)")
    tmp_mib: int = Field(512, gt=0, description="size of the session's private /tmp and /dev/shm (RAM: counted in memory_mib too)")
    max_file_mib: int = Field(256, gt=0, description="largest file a session may write")
    max_open_files: int = Field(256, gt=16, description="open file descriptors of a session")
    output_max_chars: int = Field(2048, gt=0, description="characters of a cell's output kept (head + tail)")
    sql_max_rows: int = Field(100_000, gt=0, description="rows execute_sql reads and writes at most")
    sql_print_rows: int = Field(20, ge=0, description="rows of an execute_sql result printed in the observation")
    replay_budget_s: float = Field(
        60.0, gt=0, description="time a rebuild may spend replaying earlier cells; past it the session restarts fresh"
    )
    on_crash: Literal["replay", "fresh"] = Field(
        "replay", description="after a crash, timeout kill or eviction: replay the successful cells, or start fresh"
    )
