"""What ``datamind-ext eval`` does once its arguments are parsed (kept out of the CLI module so
``datamind-ext --help`` imports nothing heavy)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from datamind_ext.config import apply_overrides, parse_config, read_yaml
from datamind_ext.errors import UserError
from datamind_ext.evaluation.benchmark import ScoringContext, get_benchmark
from datamind_ext.evaluation.config import EvalConfig
from datamind_ext.evaluation.plots import plot_benchmarks
from datamind_ext.evaluation.report import pass_headers
from datamind_ext.evaluation.responses import read_responses
from datamind_ext.evaluation.runner import clear_run, run_benchmark, settings_digest


def _config(args: argparse.Namespace) -> EvalConfig:
    overrides = list(getattr(args, "overrides", None) or [])
    where = (args.config or "the run settings") + (" (with overrides)" if overrides else "")
    raw = read_yaml(args.config) if args.config else {}
    cfg = parse_config(EvalConfig, apply_overrides(raw if raw is not None else {}, overrides, where), where)
    if cfg.benchmark is not None and cfg.benchmark != args.bench:
        raise UserError(f"{args.config}: is for benchmark {cfg.benchmark!r}, not {args.bench!r}")
    if args.k is not None:
        if args.k < 1:
            raise UserError("--k must be at least 1")
        cfg.k = args.k
    if args.concurrency is not None:
        if args.concurrency < 1:
            raise UserError("--concurrency must be at least 1")
        cfg.concurrency = args.concurrency
    if args.judge_model:
        cfg.judge.model = args.judge_model
    if args.judge_base_url:
        cfg.judge.base_url = args.judge_base_url
    return cfg


def run_eval_command(args: argparse.Namespace) -> int:
    if not args.data:
        raise UserError("--data DIR is required: the folder holding the benchmark's official files")
    agent_mode = bool(args.model or args.base_url)
    if agent_mode == bool(args.responses):
        raise UserError("give either --responses FILE (score answers) or --model NAME --base-url URL (run the agent)")
    if agent_mode and not (args.model and args.base_url):
        raise UserError("running the agent needs both --model and --base-url")
    if args.field and not args.responses:
        raise UserError("--field names the answer key of a --responses file")
    out_dir = Path(args.out).expanduser().resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {args.out}: is a file; give a folder (it will hold results.jsonl, summary.md, ...)")
    cfg = _config(args)
    bench = get_benchmark(args.bench)
    items = bench.load(Path(args.data).expanduser().resolve(), need_files=agent_mode)
    if args.limit is not None:
        items = items[: max(args.limit, 0)]
    if agent_mode:
        from datamind_ext.evaluation.endpoint_check import check_endpoint

        check_endpoint(args.base_url, args.model, api_key=os.environ.get(args.api_key_env) or None)
    if args.restart:
        clear_run(out_dir)

    from datamind_ext.evaluation.judge import make_judge

    judge = make_judge(cfg.judge, cache_dir=out_dir / "work" / "judge_cache")
    if bench.requires_judge and judge is None:
        raise UserError(f"{bench.name} is scored only by an LLM judge: pass --judge-model and --judge-base-url")
    ctx = ScoringContext(work_dir=out_dir / "work", judge=judge, sql_timeout_s=cfg.sql_timeout_s)
    run_info: dict[str, Any] = {
        "mode": "agent" if agent_mode else "responses",
        "data": str(Path(args.data).resolve()),
        "judge": cfg.judge.resolved_model(),
    }
    # What changes the answers or their scores: a resumed run must have been made with the same.
    settings: dict[str, Any] = {
        "sql_timeout_s": cfg.sql_timeout_s,
        "judge": cfg.judge.model_dump(include={"model", "temperature", "max_tokens", "on_unreachable"}),
    }
    if agent_mode:
        settings.update(sampling=cfg.sampling.model_dump(), budgets=cfg.budgets.model_dump(),
                        interpreter=cfg.interpreter.model_dump(), request_timeout_s=cfg.request_timeout_s)
    run_info["settings"] = settings
    run_info["settings_sha"] = settings_digest(settings)
    notes = list(bench.notes)
    gen = None
    responses = None
    if agent_mode:
        from datamind_ext.evaluation.agent_run import AgentGenerator

        run_info.update(model=args.model, base_url=args.base_url, sampling=cfg.sampling.model_dump(),
                        budgets=cfg.budgets.model_dump(), interpreter=cfg.interpreter.model_dump())
        gen = AgentGenerator(
            base_url=args.base_url, model=args.model, budgets=cfg.budgets, sampling=cfg.sampling.model_dump(),
            interpreter=cfg.interpreter,
            files_dir=out_dir / "work" / "inline_files", api_key=os.environ.get(args.api_key_env) or None,
            request_timeout_s=cfg.request_timeout_s,
        )
    else:
        skipped: list[str] = []
        responses = read_responses(Path(args.responses).expanduser().absolute(), {it.item_id for it in items},
                                   field=args.field, dropped_ids=bench.dropped_ids, skipped=skipped)
        if skipped:
            notes.append(f"{len(skipped)} response(s) to questions this benchmark drops skipped")
            print(f"note: skipped {len(skipped)} response(s) to dropped questions (e.g. {skipped[0]})")
        run_info["responses"] = str(Path(args.responses).expanduser().absolute())

    async def go() -> dict[str, Any]:
        try:
            return await run_benchmark(
                bench, items, out_dir, ctx, k=cfg.k if agent_mode else 1, generate=gen, responses=responses,
                concurrency=cfg.concurrency, progress=not args.no_progress, notes=notes, run_info=run_info,
            )
        finally:
            if gen is not None:
                await gen.aclose()
            if judge is not None:
                await judge.aclose()

    summary = asyncio.run(go())
    _print_headline(summary, out_dir)
    return 1 if summary["errors"] else 0


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def _print_headline(summary: dict[str, Any], out_dir: Path) -> None:
    k = summary["k"]
    for name, m in summary["overall"].items():
        cov = f"coverage {_fmt(m['coverage'])} % ({m['scored']} of {m['items'] * k} scored)"
        if name in summary["graded_scorers"]:
            print(f"{summary['benchmark']} {name}: mean {m['mean_value'] or 0:.4f} over all {m['items']} items")
        else:
            figures = "  ".join(f"{h} {_fmt(m['pass@1' if h == 'pass@1' else 'pass@k'])}" for h in pass_headers(k))
            print(f"{summary['benchmark']} {name}: {figures}  {cov}")
    a = summary["answers"]
    void = "; ".join(f"{n} {reason}" for reason, n in a["void_reasons"].items())
    print(f"answered {_fmt(a['answered_rate'])} %, void {_fmt(a['void_rate'])} %" + (f" ({void})" if void else ""))
    if summary["errors"]:
        print(f"{summary['errors']} unit(s) failed (first: {summary['first_error']}); rerun the same command to retry")
    print(f"results in {out_dir}")


def run_name(summary: dict[str, Any], folder: str) -> str:
    """How a run is named in reports: its folder, and the model or responses file it scored."""
    run = summary.get("run") or {}
    source = run.get("model") or (Path(run["responses"]).name if run.get("responses") else None)
    return f"{Path(folder).name} ({source})" if source else Path(folder).name


def run_report_command(args: argparse.Namespace) -> int:
    """Combine finished runs: one Markdown table (a row per run, each named) and one plot."""
    if not args.runs:
        raise UserError("'eval report' needs --runs OUT_DIR [OUT_DIR ...]")
    summaries, names = [], []
    for d in args.runs:
        path = Path(d) / "summary.json"
        if not path.is_file():
            raise UserError(f"{path}: not found (is {d} the --out folder of a finished eval run?)")
        try:
            summaries.append(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: not valid JSON: {err.msg}") from None
        names.append(run_name(summaries[-1], d))
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {args.out}: is a file; give a folder for report.md and the plot")
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["| run | benchmark | scorer | pass@1 | pass@k | k | items | coverage |", "|---|---|---|---|---|---|---|---|"]
    for name, s in zip(names, summaries, strict=True):
        m = s["overall"][s["primary_scorer"]]
        pk = _fmt(m["pass@k"]) if s["k"] > 1 else "(k = 1)"
        lines.append(f"| {name} | {s['benchmark']} | {s['primary_scorer']} | {_fmt(m['pass@1'])} | {pk} | "
                     f"{s['k']} | {m['items']} | {_fmt(m.get('coverage'))} |")
    benchmarks = [s["benchmark"] for s in summaries]
    scored = [s["overall"][s["primary_scorer"]]["pass@1"] for s in summaries]
    # An average only means something over distinct benchmarks (one run each), never over repeats.
    if len(summaries) > 1 and len(set(benchmarks)) == len(benchmarks) and all(x is not None for x in scored):
        lines.append(f"| **average over {len(scored)} benchmarks** | | | {_fmt(sum(scored) / len(scored))} "
                     "| | | | |")
    (out_dir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot_benchmarks(summaries, names, out_dir / "benchmarks_pass_at_1.png")
    print("\n".join(lines))
    print(f"report in {out_dir}")
    return 0
