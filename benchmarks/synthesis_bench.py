"""Synthesis throughput, printed next to the targets of issue 8.

1. Programmatic path: verified tasks per second over the sample folder (every program executed
   in the interpreter to get its ground truth), then expert trajectories per second (every cell
   executed again, one turn at a time, and checked against the ground truth).
2. LLM path: chat requests per second through the synthesis client at concurrency 64 against the
   local OpenAI-compatible test server with a fixed latency, as a fraction of the ideal
   ``concurrency / latency``.

Run: ``.venv/bin/python benchmarks/synthesis_bench.py [--tasks-per-table 20] [--latency-s 0.2]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

from datamind_ext.llm import ChatClient, UsageLedger
from datamind_ext.synthesis import pipeline
from datamind_ext.synthesis.config import LLMConfig, SynthConfig
from datamind_ext.testing.openai_server import OpenAITestServer

REPO = Path(__file__).resolve().parents[1]


def programmatic(tasks_per_table: int, concurrency: int, verify_batch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(REPO / "data" / "samples" / "files", data)
        cfg = SynthConfig(data=str(data), out=str(Path(tmp) / "out"), tasks_per_table=tasks_per_table,
                          concurrency=concurrency, verify_batch=verify_batch, seed=0)
        t0 = time.perf_counter()
        asyncio.run(pipeline.run_profile(cfg))
        t1 = time.perf_counter()
        tasks = asyncio.run(pipeline.run_tasks(cfg))
        t2 = time.perf_counter()
        trajs = asyncio.run(pipeline.run_trajectories(cfg))
        t3 = time.perf_counter()
    n_tasks = sum(tasks.values())
    print(f"profile: {t1 - t0:.2f} s for the sample folder")
    ok = tasks.get("ok", 0)
    print(f"programmatic tasks: {n_tasks} programs executed in {t2 - t1:.2f} s, {ok} verified (rest rejected with a "
          f"reason) = {ok / (t2 - t1):.1f} verified tasks/s (target >= 50/s on 2 cores)")
    n_traj = sum(trajs.values())
    print(f"expert trajectories (every cell executed): {n_traj} in {t3 - t2:.2f} s = {n_traj / (t3 - t2):.1f} /s")
    print(f"tasks + expert trajectories end to end: {trajs.get('ok', 0) / (t3 - t1):.1f} kept tasks/s")


async def _llm(url: str, n: int, concurrency: int) -> tuple[float, UsageLedger]:
    client = ChatClient(LLMConfig(base_url=url, max_concurrency=concurrency, max_retries=0))
    try:
        await client.chat([{"role": "user", "content": "warm up"}])
        t0 = time.perf_counter()
        await asyncio.gather(*(client.chat([{"role": "user", "content": f"q{i}"}]) for i in range(n)))
        return time.perf_counter() - t0, client.ledger
    finally:
        await client.aclose()


def llm(latency_s: float, concurrency: int, n: int) -> None:
    with OpenAITestServer(["<question>q</question>"], latency_s=latency_s) as srv:
        elapsed, _ = asyncio.run(_llm(srv.base_url, n, concurrency))
        peak = srv.max_in_flight
    ideal = concurrency / latency_s
    got = n / elapsed
    print(f"LLM client: {n} requests at concurrency {concurrency}, latency {latency_s} s: {got:.1f} req/s, "
          f"ideal {ideal:.1f} req/s = {100 * got / ideal:.1f}% of ideal (target >= 90%); peak in flight {peak}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks-per-table", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--verify-batch", type=int, default=SynthConfig().verify_batch, help="programs per interpreter session")
    ap.add_argument("--latency-s", type=float, default=0.2)
    ap.add_argument("--llm-requests", type=int, default=1280)
    ap.add_argument("--skip-programmatic", action="store_true")
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}")
    if not args.skip_programmatic:
        programmatic(args.tasks_per_table, args.concurrency, args.verify_batch)
    llm(args.latency_s, 64, args.llm_requests)


if __name__ == "__main__":
    main()
