"""``datamind-ext rollout``: run the multi-turn loop outside verl, with a model or as a replay.

``--policy replay`` re-executes the code of recorded trajectories (expert SFT data, synthesized
data) through the same loop the RL stage uses and reports every observation that differs from
the recorded one; ``--policy model --model PATH`` generates with a local Hugging Face model on
CPU (the transformers backend). Output: one JSONL row per input row with the messages, token
ids and ``response_mask`` (when a tokenizer is known), per-turn metrics and the diffs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from datamind_ext.atomic_files import read_jsonl_rows, write_jsonl
from datamind_ext.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rollout", help="run the multi-turn code-interpreter loop (replay or a model) on a JSONL file")
    p.add_argument("--policy", choices=["replay", "model"], required=True,
                   help="replay: re-run recorded assistant turns; model: generate with --model")
    p.add_argument("--data", required=True, help="JSONL of trajectories ({messages, files, id}) or tasks")
    p.add_argument("--model", default=None, help="Hugging Face model folder (required for --policy model)")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder for token ids in replay (default: --model)")
    p.add_argument("--files-dir", default=None, help="folder the rows' relative file paths are resolved against "
                                                     "(default: the data file's folder)")
    p.add_argument("--out", default=None, help="output JSONL (default: <data>.rollout.jsonl)")
    p.add_argument("--max-turns", type=int, default=10)
    p.add_argument("--max-tokens-per-turn", type=int, default=1024)
    p.add_argument("--max-response-tokens", type=int, default=8192)
    p.add_argument("--max-observation-chars", type=int, default=2048)
    p.add_argument("--cell-timeout-s", type=float, default=30.0)
    p.add_argument("--concurrency", type=int, default=16, help="trajectories run at once")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=run)


def _resolve_files(files: list[str], base: Path) -> list[str]:
    out = []
    for f in files:
        p = Path(f).expanduser()
        out.append(str(p if p.is_absolute() else base / p))
    return out


def _load_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    rows = []
    for n, row in read_jsonl_rows(path):
        if not isinstance(row.get("messages"), list):
            raise UserError(f"{path}:{n}: each row needs a 'messages' list")
        rows.append(row)
    return rows


async def _run(args: argparse.Namespace) -> dict[str, int]:
    from datamind_ext.agent import (
        AgentBudgets,
        ReplayPolicy,
        TokenServerPolicy,
        TurnLoop,
        engine_generate_fn,
    )
    from datamind_ext.agent.replay import observation_diffs, split_prompt
    from datamind_ext.interpreter import InterpreterConfig, Limits, SessionProvider

    data = Path(args.data)
    rows = _load_rows(data)
    base = Path(args.files_dir) if args.files_dir else data.parent
    budgets = AgentBudgets(max_turns=args.max_turns, max_tokens_per_turn=args.max_tokens_per_turn,
                           max_response_tokens=args.max_response_tokens,
                           max_observation_chars=args.max_observation_chars)
    tokenizer = engine = None
    if args.policy == "model":
        if not args.model:
            raise UserError("--policy model needs --model PATH")
        from datamind_ext.generation import HFGenerationEngine

        engine = HFGenerationEngine(args.model, max_batch_size=args.concurrency, seed=args.seed)
        tokenizer = engine.tokenizer
    elif args.tokenizer or args.model:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.model)
    sessions = SessionProvider(InterpreterConfig(limits=Limits(timeout_s=args.cell_timeout_s)))
    gate = asyncio.Semaphore(max(1, args.concurrency))
    out_path = Path(args.out) if args.out else data.with_suffix(".rollout.jsonl")
    counts = {"rows": len(rows), "void": 0, "failed": 0, "with_diffs": 0, "observation_diffs": 0}

    async def one(i: int, row: dict[str, Any]) -> dict[str, Any]:
        prompt, turns = split_prompt(row["messages"])
        files = _resolve_files([str(f) for f in row.get("files") or []], base)
        b = budgets
        if args.policy == "replay":
            policy: Any = ReplayPolicy(turns, tokenizer)
            if len(turns) > b.max_turns:
                b = b.model_copy(update={"max_turns": len(turns)})
        else:
            policy = TokenServerPolicy(engine_generate_fn(engine), tokenizer,
                                       {"temperature": args.temperature, "seed": args.seed + i})
        async with gate:
            ep = await TurnLoop(policy, sessions, b, tokenizer=tokenizer).run(prompt, files)
        rec = {"id": row.get("id", i), **ep.to_record()}
        if args.policy == "replay":
            diffs = observation_diffs(row["messages"], ep.messages)
            rec["observation_diffs"] = [d.as_dict() for d in diffs]
            counts["with_diffs"] += int(bool(diffs))
            counts["observation_diffs"] += len(diffs)
        counts["void"] += int(ep.void)
        counts["failed"] += int(ep.metrics.failed)
        return rec

    try:
        records = await asyncio.gather(*[one(i, r) for i, r in enumerate(rows)])
    finally:
        await sessions.aclose()
        if engine is not None:
            engine.close()
    await asyncio.to_thread(write_jsonl, out_path, list(records))
    counts["out"] = str(out_path)  # type: ignore[assignment]
    return counts


def run(args: argparse.Namespace) -> int:
    counts = asyncio.run(_run(args))
    print(json.dumps(counts))
    if args.policy == "replay" and counts["with_diffs"]:
        print(f"{counts['with_diffs']} of {counts['rows']} trajectories have observations that differ "
              f"from the recorded ones (see 'observation_diffs' in {counts['out']})", file=sys.stderr)
        return 1
    return 0
