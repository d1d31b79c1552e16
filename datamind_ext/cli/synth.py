"""``datamind-ext synth``: data files → tasks → trajectories → filtered SFT and RL datasets.

Sub-commands run one stage each (``profile``, ``tasks``, ``trajectories``, ``filter``,
``export``) or all of them (``all``). Every stage is resumable: rerun the same command after an
interruption and it finishes the remaining work without duplicating any.
"""

from __future__ import annotations

import argparse
import json

STAGES = ("profile", "tasks", "trajectories", "filter", "export", "all", "audit")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="synthesize tasks and trajectories from data files (SFT + RL datasets)")
    p.add_argument("stage", choices=STAGES, help="the stage to run, all of them in order, or audit (a quality "
                   "report of the tasks in OUT: audit.md and audit.json)")
    p.add_argument("folder", nargs="?", help="audit: the output folder to audit (default --out)")
    p.add_argument("--config", help="YAML file with SynthConfig keys (flags override it)")
    p.add_argument("--data", help="folder of data files (default data/samples)")
    p.add_argument("--out", help="output folder (default synth_out)")
    p.add_argument("--seed", type=int)
    p.add_argument("--backend", choices=["local", "ray"])
    p.add_argument("--ray-address", dest="ray_address", help="existing Ray cluster (default: start a local one)")
    p.add_argument("--concurrency", type=int, help="work items in flight")
    p.add_argument("--generator", choices=["programmatic", "llm", "both"])
    p.add_argument("--tasks-per-table", dest="tasks_per_table", type=int)
    p.add_argument("--min-depth", dest="min_depth", type=int)
    p.add_argument("--max-depth", dest="max_depth", type=int)
    p.add_argument("--samples", dest="samples_per_task", type=int, help="trajectories sampled per LLM task (N)")
    p.add_argument("--llm-base-url", dest="llm_base_url", help="OpenAI-compatible endpoint, …/v1")
    p.add_argument("--llm-model", dest="llm_model")
    p.add_argument("--tokenizer", help="tokenizer folder (token counts in the card, --max-tokens filter)")
    p.add_argument("--max-tokens", dest="max_tokens", type=int)
    p.set_defaults(handler=run)


def build_config(args: argparse.Namespace):
    from datamind_ext.config import load_config, parse_config
    from datamind_ext.synthesis.config import SynthConfig

    cfg = load_config(SynthConfig, args.config) if args.config else SynthConfig()
    data = cfg.model_dump()
    for key in ("data", "out", "seed", "backend", "ray_address", "concurrency", "generator", "tasks_per_table",
                "min_depth", "max_depth", "samples_per_task", "tokenizer", "max_tokens"):
        v = getattr(args, key, None)
        if v is not None:
            data[key] = v
    if args.llm_base_url:
        data["llm"]["base_url"] = args.llm_base_url
    if args.llm_model:
        data["llm"]["model"] = args.llm_model
    cfg = parse_config(SynthConfig, data, "synth options")
    if cfg.min_depth > cfg.max_depth:
        from datamind_ext.errors import UserError

        raise UserError(f"--min-depth {cfg.min_depth} is above --max-depth {cfg.max_depth}")
    return cfg


def run(args: argparse.Namespace) -> int:
    from datamind_ext.synthesis.lock import out_lock

    cfg = build_config(args)
    if args.stage == "audit":
        return _audit(args.folder or cfg.out)
    if args.folder:
        from datamind_ext.errors import UserError

        raise UserError(f"unexpected argument {args.folder!r}: give the output folder with --out")
    with out_lock(cfg.out):
        return _run_stages(args, cfg)


def _audit(folder: str) -> int:
    from datamind_ext.synthesis.audit import run_audit

    rep = run_audit(folder)
    checks = ", ".join(f"{k} {v['count']}" for k, v in rep["checks"].items())
    print(f"synth audit: {rep['tasks']} tasks; {checks}; {rep['templates']['distinct']} templates "
          f"(top 10: {rep['templates']['top10_share']:.1%}); {len(rep['by_category'])} categories; "
          f"report in {folder}/audit.md")
    return 0


def _run_stages(args: argparse.Namespace, cfg) -> int:
    from datamind_ext.synthesis import pipeline

    stages = ["profile", "tasks", "trajectories", "filter", "export"] if args.stage == "all" else [args.stage]
    for stage in stages:
        if stage == "profile":
            out = pipeline.run_sync(pipeline.run_profile(cfg))
            _, failures = pipeline.load_profiles(cfg)
            for f in failures:
                print(f"synth profile: skipped {f.path}{' [' + f.table + ']' if f.table else ''}: {f.reason}")
        elif stage == "tasks":
            out = pipeline.run_sync(pipeline.run_tasks(cfg))
        elif stage == "trajectories":
            out = pipeline.run_sync(pipeline.run_trajectories(cfg))
        elif stage == "filter":
            out = pipeline.run_filter(cfg)
        else:
            out = pipeline.run_export(cfg)
        print(f"synth {stage}: {json.dumps(out, sort_keys=True)}")
    ledger = pipeline.ledger_summary(cfg)
    if ledger:
        print(f"synth: LLM usage {json.dumps(ledger, sort_keys=True)}")
    return 0
