"""Rollout overhead per turn (generation excluded) and host memory at N concurrent trajectories.

Both sides run through verl 0.9.1's real ``AgentLoopWorker.generate_sequences`` in this process,
with a replay "server" that returns each recorded turn instantly (so generation time is ~0
and what is measured is the rollout machinery plus code execution):

* **datamind**: our ``datamind_code_agent`` loop, one sandboxed interpreter session per
  trajectory (forked from a warm zygote), observations rendered by the chat template;
* **baseline**: verl's stock ``tool_agent`` (``ToolAgentLoop``) with a hermes ``<tool_call>``
  to a ``@function_tool`` that runs each cell in a fresh ``python -c`` subprocess (stock
  tools keep no state across calls, so every cell is self-contained).

Same workload: N trajectories × K code turns + 1 answer turn, identical cells. Reported per
side: batch wall time; ``overhead_per_turn_ms`` = (trajectory time − generation time) / turns,
i.e. the latency a turn adds to one trajectory while N run at once; ``amortized_ms_per_turn`` =
batch wall / (N × turns), the machine's cost per turn; peak host memory (USS summed over this
process and every descendant, sampled every 0.5 s: short-lived subprocesses can be missed) and
the memory added over the idle process.

    .venv/bin/python benchmarks/rollout_bench.py            # 256 trajectories, 3 code turns each
    .venv/bin/python benchmarks/rollout_bench.py --trajectories 64 --code-turns 2

This file is also loaded by verl as the baseline's ``function_tool_path`` (hence the guarded
decorator below): keep its top level light.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Self

CELL = "import math\nprint(sum(math.isqrt(i) for i in range(20000)))"


async def run_python(code: str) -> str:
    """Run a python snippet in a fresh subprocess and return its output.

    Args:
        code: the python source to run.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return out.decode(errors="replace")


if __name__ != "__main__":  # loaded by verl's function_tool_path: register the baseline tool
    from verl.tools.function_tool import function_tool

    run_python = function_tool(run_python)


# ---------------------------------------------------------------------------------------------
class ReplayServer:
    """Server-manager stand-in: returns the scripted turn for the prompt's turn number at once,
    honouring max_tokens and stop strings/ids like a real server."""

    def __init__(self, tokenizer: Any, turns: list[str]) -> None:
        self.tok = tokenizer
        self.turn_ids = [tokenizer.encode(t, add_special_tokens=False) for t in turns]
        self.gen_s: dict[str, float] = {}

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **kw: Any):
        from verl.workers.rollout.replica import TokenOutput

        t0 = time.perf_counter()
        turn = self.tok.decode(prompt_ids).count("<|im_start|>assistant") - 1
        ids = self.turn_ids[min(turn, len(self.turn_ids) - 1)][: sampling_params.get("max_tokens", 10**9)]
        stop_ids = set(sampling_params.get("stop_token_ids") or [])
        out = []
        for t in ids:
            out.append(t)
            if t in stop_ids:
                break
        self.gen_s[request_id] = self.gen_s.get(request_id, 0.0) + time.perf_counter() - t0
        return TokenOutput(token_ids=out, log_probs=[0.0] * len(out), stop_reason="completed", extra_fields={})


class MemorySampler:
    """Peak of the summed USS of this process and all its descendants."""

    def __init__(self, period_s: float = 1.0) -> None:
        import psutil

        self.proc = psutil.Process()
        self.period_s = period_s
        self.peak_mib = 0.0
        self.max_procs = 0
        self._task: asyncio.Task | None = None

    def sample(self) -> float:
        import psutil

        total, n = 0, 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_full_info().uss
                n += 1
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        self.max_procs = max(self.max_procs, n)
        mib = total / 2**20
        self.peak_mib = max(self.peak_mib, mib)
        return mib

    async def _loop(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(self.period_s)

    def __enter__(self) -> Self:
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
        self.sample()


def compose(model_path: Path, overrides: list[str]):
    from hydra import compose as hcompose
    from hydra import initialize_config_module

    with initialize_config_module("verl.trainer.config", version_base=None):
        return hcompose("ppo_trainer", overrides=[
            f"actor_rollout_ref.model.path={model_path}", "actor_rollout_ref.rollout.name=datamind_hf",
            "actor_rollout_ref.rollout.prompt_length=1024", "actor_rollout_ref.rollout.response_length=2048",
            *overrides])


def batch(n: int):
    import numpy as np
    from verl import DataProto

    raw = np.empty(n, dtype=object)
    extra = np.empty(n, dtype=object)
    for i in range(n):
        raw[i] = [{"role": "system", "content": "You analyse data with python."},
                  {"role": "user", "content": f"Question {i}: compute the sum."}]
        extra[i] = {"files": []}
    return DataProto.from_dict(non_tensors={"raw_prompt": raw, "extra_info": extra, "index": np.arange(n)})


async def run_side(name: str, cfg: Any, server: ReplayServer, n: int, k: int) -> dict[str, Any]:
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    worker = AgentLoopWorker(cfg, llm_client=server)
    idle = await asyncio.to_thread(MemorySampler().sample)
    with MemorySampler(period_s=0.5) as mem:
        t0 = time.perf_counter()
        out = await worker.generate_sequences(batch(n))
        wall = time.perf_counter() - t0
    turns = out.non_tensor_batch["__num_turns__"]
    gen_total = sum(server.gen_s.values())
    row: dict[str, Any] = {
        "side": name, "trajectories": n, "code_turns": k,
        "batch_wall_s": round(wall, 2),
        "overhead_per_turn_ms": round(1000 * (wall * n - gen_total) / (n * (k + 1)), 1),
        "amortized_ms_per_turn": round(1000 * wall / (n * (k + 1)), 2),
        "peak_host_uss_mib": round(mem.peak_mib), "added_uss_mib": round(mem.peak_mib - idle),
        "peak_processes": mem.max_procs,
        "mean_chat_turns": float(sum(turns) / len(turns)),
    }
    if "dm_code_cells" in out.non_tensor_batch:
        nt = out.non_tensor_batch
        row["cells_run"] = int(sum(nt["dm_code_cells"]))
        row["void"] = int(sum(nt["dm_void"]))
        row["mean_traj_interpreter_s"] = round(float(sum(nt["dm_interpreter_s"]) / n), 3)
        row["mean_traj_loop_overhead_s"] = round(float(sum(nt["dm_overhead_s"]) / n), 3)
    return row


async def main_async(args: Any) -> list[dict[str, Any]]:
    from transformers import AutoTokenizer

    import datamind_ext.integrations.verl  # noqa: F401
    from datamind_ext.integrations.verl.agent_loop import DataMindAgentLoop
    from datamind_ext.interpreter import InterpreterConfig, SessionProvider
    from datamind_ext.models.tiny import build_tiny_model

    model = build_tiny_model("test")
    tok = AutoTokenizer.from_pretrained(model)
    n, k = args.trajectories, args.code_turns
    fence = "```python\n" + CELL + "\n```"
    ours = [f"<think>step {j}</think><code>\n{fence}\n</code>" for j in range(k)] + ["<answer>done</answer>"]
    call = json.dumps({"name": "run_python", "arguments": {"code": CELL}})
    stock = [f"step {j}<tool_call>{call}</tool_call>" for j in range(k)] + ["done"]
    results = []

    sessions = SessionProvider(InterpreterConfig(max_sessions=max(n, 1)))
    DataMindAgentLoop.session_factory = sessions
    await sessions.pool()  # start the zygote before timing (a once-per-worker cost)
    try:
        cfg = compose(model, ["actor_rollout_ref.rollout.agent.default_agent_loop=datamind_code_agent",
                              f"+datamind.agent.max_turns={k + 1}"])
        results.append(await run_side("datamind", cfg, ReplayServer(tok, ours), n, k))
    finally:
        await sessions.aclose()
    cfg = compose(model, ["actor_rollout_ref.rollout.agent.default_agent_loop=tool_agent",
                          "actor_rollout_ref.rollout.multi_turn.format=hermes",
                          f"actor_rollout_ref.rollout.multi_turn.function_tool_path={Path(__file__).resolve()}",
                          f"actor_rollout_ref.rollout.multi_turn.max_assistant_turns={k + 1}"])
    results.append(await run_side("verl tool_agent + subprocess tool", cfg, ReplayServer(tok, stock), n, k))
    return results


def main() -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trajectories", type=int, default=256)
    p.add_argument("--code-turns", type=int, default=3)
    args = p.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    results = asyncio.run(main_async(args))
    for r in results:
        print(json.dumps(r))
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
