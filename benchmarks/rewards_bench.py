"""Reward throughput: rule-based scoring on one core, the judge path, and the judge cache.

    .venv/bin/python benchmarks/rewards_bench.py            # full run (100,000 responses)
    .venv/bin/python benchmarks/rewards_bench.py --n 20000  # quicker

Prints, next to the issue's targets:
* rule-based responses/s over ``--n`` mixed responses (numbers, percentages, DABench, multiple
  choice, lists, booleans, bad format, long answers), the process pinned to one core;
* judge-path throughput against the local OpenAI-compatible test server (run in its own process,
  fixed latency 200 ms) at concurrency 64, and the ratio to the ideal rate concurrency/latency;
* cache-hit throughput (the same judgements again, answered from the sqlite cache).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datamind_ext.rewards import JudgeClient, JudgeConfig, ScoringConfig, score_sample

CODE = "<think>Load the file and compute.</think>\n<code>\n```python\nimport pandas as pd\ndf = pd.read_csv('data.csv')\nprint(df.describe())\n```\n</code>\n<interpreter>count 100\nmean 29.1389</interpreter>\n"


def mixed_samples(n: int, seed: int = 0) -> list[tuple[str, str, object, dict]]:
    """(data_source, response, ground_truth, extra_info) of varied kinds and outcomes."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = i % 8
        v = round(rng.uniform(-1000, 1000), 2)
        if k == 0:
            out.append(("file_qa", CODE + f"<answer>The mean is {v * rng.choice([1, 1.01, 1.2])}.</answer>", str(v), {}))
        elif k == 1:
            out.append(("file_qa", CODE + f"<answer>{abs(v) / 10:.1f}%</answer>", f"{abs(v) / 1000:.4f}", {}))
        elif k == 2:
            gold = f"@mean[{v}] @kind[normal] @n[{i % 97}]"
            pred = f"@mean[{v}] @kind[{rng.choice(['normal', 'not normal'])}] @n[{i % 97}]"
            out.append(("dabench", CODE + f"<answer>{pred}</answer>", gold, {"task_kind": "dabench"}))
        elif k == 3:
            opts = ["increase", "decrease", "no change", "cannot tell"]
            out.append(("mcq", CODE + f"<answer>{rng.choice('ABCD')}</answer>", rng.choice(opts), {"task_kind": "choice", "choices": opts}))
        elif k == 4:
            items = [f"item{j}" for j in range(rng.randint(2, 8))]
            shuffled = rng.sample(items, len(items))
            out.append(("file_qa", CODE + f"<answer>{', '.join(shuffled)}</answer>", str(items), {}))
        elif k == 5:
            out.append(("file_qa", f"<answer>{rng.choice(['Yes', 'No'])}</answer>", "yes", {}))  # no code: bad format
        elif k == 6:
            long = f"The value is {v}. " + "Because " * rng.randint(10, 300)
            out.append(("file_qa", CODE + f"<answer>{long}</answer>", str(v), {}))
        else:
            out.append(("file_qa", CODE + "<code>unclosed" + f"<answer>${v:,}</answer>", str(v), {"dm_void": 1}))
    return out


def bench_rules(n: int) -> tuple[float, float]:
    """(wall-clock, CPU-time) responses/s; CPU time is what one core delivers on a shared machine."""
    samples = mixed_samples(n)
    cfg = ScoringConfig()
    for s in samples[:200]:  # warm-up (regex compilation, imports)
        score_sample(*s, config=cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    for s in samples:
        score_sample(*s, config=cfg)
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def _serve(port_q: mp.Queue, stop: mp.Event, latency_s: float) -> None:
    from datamind_ext.testing import OpenAITestServer

    # The server stands in for a remote endpoint whose latency is exactly latency_s: switch its
    # 64 handler threads quickly so GIL hand-offs do not add to that latency.
    sys.setswitchinterval(1e-4)
    with OpenAITestServer(["Checked.\n<verdict>correct</verdict>"], latency_s=latency_s) as srv:
        port_q.put(srv.base_url)
        stop.wait(600)


async def _judge_all(client: JudgeClient, n: int, tag: str) -> float:
    t0 = time.perf_counter()
    verdicts = await asyncio.gather(*(client.judge(f"question {i}", "29.14", f"answer {tag} {i}") for i in range(n)))
    dt = time.perf_counter() - t0
    bad = [v for v in verdicts if not v.decided]
    if bad:
        raise SystemExit(f"{len(bad)} judgements failed: {bad[0]}")
    return n / dt


def bench_judge(n: int, latency_s: float, concurrency: int, repeat: int) -> tuple[list[float], float, float]:
    """Judge throughput of ``repeat`` fresh batches of ``n`` (each a cache miss), the ideal rate, cache hits."""
    ctx = mp.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_serve, args=(q, stop, latency_s), daemon=True)
    proc.start()
    try:
        base_url = q.get(timeout=60)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = JudgeConfig(base_url=base_url, model="bench-judge", max_concurrency=concurrency,
                              cache_path=str(Path(tmp) / "judge.sqlite"), timeout_s=30)

            async def run() -> tuple[list[float], float]:
                client = JudgeClient(cfg)
                await _judge_all(client, concurrency, "warmup")  # open the connections
                lives = [await _judge_all(client, n, f"live{r}") for r in range(repeat)]
                cached = await _judge_all(client, n, "live0")
                await client.aclose()
                return lives, cached

            lives, cached = asyncio.run(run())
    finally:
        stop.set()
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
    ideal = n / (math.ceil(n / concurrency) * latency_s)
    return lives, ideal, cached


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="rule-based responses to score")
    ap.add_argument("--judge-n", type=int, default=1280, help="judge requests (a multiple of the concurrency)")
    ap.add_argument("--latency-s", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="judge runs (the median is reported)")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core for the rule-based part
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} (wall-clock rates suffer when it exceeds 1 per core)")
    wall, cpu = bench_rules(args.n)
    print(f"rule-based scoring: {cpu:,.0f} responses/s per core of CPU time ({wall:,.0f}/s wall-clock) over "
          f"{args.n:,} mixed responses, one process pinned to one core "
          f"(target >= 5,000/s) {'OK' if cpu >= 5000 else 'BELOW TARGET'}")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    lives, ideal, cached = bench_judge(args.judge_n, args.latency_s, args.concurrency, args.repeat)
    live = statistics.median(lives)
    ratio = live / ideal
    runs = ", ".join(f"{x / ideal:.1%}" for x in lives)
    print(f"judge path: {live:,.1f} judgements/s (median of {len(lives)} runs: {runs}) vs ideal {ideal:,.1f}/s "
          f"({args.concurrency} concurrent, {args.latency_s * 1000:.0f} ms latency) = {ratio:.1%} "
          f"(target >= 90%) {'OK' if ratio >= 0.9 else 'BELOW TARGET'}")
    print(f"judge cache hits: {cached:,.0f} judgements/s ({args.judge_n} cached verdicts)")


if __name__ == "__main__":
    main()
