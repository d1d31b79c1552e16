"""The synthesis stages, each resumable: profile → tasks → trajectories → filter → export.

Every stage reads the previous stage's JSONL in ``out/``, skips work whose content key is
already in its own JSONL, runs the rest through :func:`runner.map_unordered` (asyncio or Ray)
and appends each result as it completes. Rejected items are stored too, with their reason, so
they are not retried and the report can count them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

from datamind_ext.atomic_files import atomic_open, write_json_atomic, write_jsonl
from datamind_ext.errors import UserError
from datamind_ext.protocol import Trajectory
from datamind_ext.synthesis import profile as prof_mod
from datamind_ext.synthesis.config import SynthConfig
from datamind_ext.synthesis.execute import close_providers, provider_for
from datamind_ext.synthesis.expert import expert_trajectory, ground_truths
from datamind_ext.synthesis.programs import TaskSpec, make_task_specs
from datamind_ext.synthesis.records import (
    ConsensusRecord,
    Drop,
    ExpertItem,
    ProfileItem,
    ProfileRecord,
    TaskRecord,
    TrajectoryRecord,
    VerifyBatch,
)
from datamind_ext.synthesis.runner import ensure_ray, map_unordered, progress
from datamind_ext.synthesis.store import JsonlStore, content_key, read_records

log = logging.getLogger(__name__)

PROFILES = "profiles.jsonl"
TASKS = "tasks.jsonl"
TRAJECTORIES = "trajectories.jsonl"


def out_path(cfg: SynthConfig, name: str) -> Path:
    return Path(cfg.out) / name


def _prepare_backend(cfg: SynthConfig) -> None:
    if cfg.backend == "ray":
        # Workers import datamind_ext from this checkout and resolve relative data paths from here.
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
        ensure_ray(cfg.ray_num_cpus, cfg.ray_address)


# ----------------------------------------------------------------------------------- profile


async def _profile_one(item: ProfileItem) -> ProfileRecord:
    from datamind_ext.synthesis.combine import combined_profiles

    results = prof_mod.profile_file(item.path, max_rows=item.max_rows, shown_path=item.shown)
    tables = [r for r in results if isinstance(r, prof_mod.TableProfile)]
    try:
        results += combined_profiles(item.path, tables, item.max_rows)
    except Exception as err:  # noqa: BLE001 — the stored tables are still profiled; the combination is reported
        results.append(prof_mod.ProfileFailure(path=item.shown, table="(joined/stacked)", reason=f"{type(err).__name__}: {err}"[:300]))
    return ProfileRecord(key=item.key, file=item.shown,
                         profiles=[r for r in results if isinstance(r, prof_mod.TableProfile)],
                         failures=[r for r in results if isinstance(r, prof_mod.ProfileFailure)])


async def run_profile(cfg: SynthConfig) -> dict[str, int]:
    data = Path(cfg.data)
    if not data.exists():
        raise UserError(f"data folder not found: {data}")
    files = prof_mod.find_data_files(data)
    if not files:
        raise UserError(f"no supported data files (csv, tsv, xlsx, json, jsonl, parquet, sqlite) under {data}")
    store = JsonlStore(out_path(cfg, PROFILES), ProfileRecord)
    items = []
    for f in files:
        try:
            digest = prof_mod.file_digest(f)
        except OSError as err:
            digest = f"unreadable:{err.errno}"
        key = content_key("profile", digest, str(f), cfg.max_rows)
        if key not in store:
            items.append(ProfileItem(key=key, path=str(f.resolve()), shown=str(f), max_rows=cfg.max_rows))
    _prepare_backend(cfg)
    with store, progress(len(items), "profile") as bar:
        async for rec in map_unordered(_profile_one, items, cfg.backend, cfg.concurrency):
            store.append(rec)
            bar.update(1)
    return profile_counts(cfg)


def load_profiles(cfg: SynthConfig) -> tuple[list[prof_mod.TableProfile], list[prof_mod.ProfileFailure]]:
    profiles: list[prof_mod.TableProfile] = []
    failures: list[prof_mod.ProfileFailure] = []
    for rec in read_records(out_path(cfg, PROFILES), ProfileRecord):
        profiles += rec.profiles
        failures += rec.failures
    profiles.sort(key=lambda p: (p.path, p.table or ""))
    return profiles, failures


def profile_counts(cfg: SynthConfig) -> dict[str, int]:
    profiles, failures = load_profiles(cfg)
    return {"tables": len(profiles), "unreadable": len(failures)}


# ------------------------------------------------------------------------------------- tasks


async def _verify_batch(item: VerifyBatch) -> list[TaskRecord]:
    """Ground truths of a batch of programs over the same table, in one interpreter session."""
    try:
        results = await ground_truths(item.specs, provider_for(item.interpreter), item.data_root)
    except Exception as err:  # noqa: BLE001 — an infrastructure failure: not stored, retried on the next run
        return [TaskRecord(key=s.key, status="error", reason=f"{type(err).__name__}: {err}"[:300]) for s in item.specs]
    return [TaskRecord(key=s.key, status="ok" if gold is not None else "rejected", reason=why, gold=gold, spec=s)
            for s, (gold, why) in zip(item.specs, results)]


def batches(specs: list[TaskSpec], size: int) -> list[list[TaskSpec]]:
    """Consecutive specs of the same table, at most ``size`` per batch."""
    out: list[list[TaskSpec]] = []
    for s in specs:
        if out and len(out[-1]) < size and out[-1][0].table_key == s.table_key:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def programmatic_specs(cfg: SynthConfig, rejected: Counter[str] | None = None) -> list[TaskSpec]:
    """Candidate tasks of every profiled table. A table above ``max_task_rows`` is not skipped: its
    programs read its first ``max_task_rows`` rows and the questions say so (the table label
    carries "first N rows"); ``rejected`` counts what composition threw away, by rule."""
    profiles, _ = load_profiles(cfg)
    specs = []
    for p in profiles:
        if p.n_rows < 2:
            if rejected is not None:
                rejected["table_too_small"] += 1
            continue
        if p.n_rows > cfg.max_task_rows:
            p = p.model_copy(update={"read": {**p.read, "nrows": cfg.max_task_rows}})
            log.warning("%s has %d rows: tasks use its first %d rows", p.path, p.n_rows, cfg.max_task_rows)
        specs += make_task_specs(p, cfg.tasks_per_table, cfg.seed, cfg.min_depth, cfg.max_depth, ops=cfg.ops,
                                 style=cfg.expert_style, rejected=rejected)
    return specs


async def run_tasks(cfg: SynthConfig) -> dict[str, int]:
    if not out_path(cfg, PROFILES).exists():
        raise UserError(f"no profiles in {cfg.out}: run `datamind-ext synth profile` first")
    store = JsonlStore(out_path(cfg, TASKS), TaskRecord)
    errors: Counter[str] = Counter()
    composition: Counter[str] = Counter()
    if cfg.generator in ("programmatic", "both"):
        todo = [s for s in programmatic_specs(cfg, composition) if s.key not in store]
        # the interpreter settings travel with each item to the process that runs it (see execute.py)
        items = [VerifyBatch(specs=b, interpreter=cfg.interpreter, data_root=os.getcwd())
                 for b in batches(todo, cfg.verify_batch)]
        _prepare_backend(cfg)
        try:
            with store, progress(len(todo), "tasks (programmatic)") as bar:
                async for recs in map_unordered(_verify_batch, items, cfg.backend, cfg.concurrency):
                    for rec in recs:
                        _append_or_count(store, rec, errors)
                    bar.update(len(recs))
        finally:
            await close_providers()
    if cfg.generator in ("llm", "both"):
        from datamind_ext.synthesis.llm_pipeline import run_llm_tasks

        await run_llm_tasks(cfg, store)
    store.close()
    out_path(cfg, TASKS).touch()  # an empty stage file: the next stage says "no usable tasks", not "run tasks"
    counts: dict[str, Any] = {**status_counts(out_path(cfg, TASKS), TaskRecord), **_error_counts(errors)}
    rejected = rejection_counts(out_path(cfg, TASKS))
    if rejected or composition:
        counts["rejected_by_rule"] = dict((rejected + composition).most_common())
    return counts


def rejection_counts(path: Path) -> Counter[str]:
    """Rejected candidate tasks per rule (the part of the reason before any detail)."""
    c: Counter[str] = Counter()
    for rec in read_records(path, TaskRecord):
        if rec.status == "rejected":
            reason = rec.reason or "unknown"
            c[reason.split(":")[0] + (":" + reason.split(":")[1] if reason.startswith("ill_posed:") else "")] += 1
    return c


def _append_or_count(store: JsonlStore[Any], rec: TaskRecord | TrajectoryRecord, errors: Counter[str]) -> None:
    """Store a finished item; an infrastructure error is only counted (the next run retries it)."""
    if rec.status == "error":
        reason = rec.reason or "unknown"
        errors[reason] += 1
        if len(errors) == 1 and errors[reason] == 1:
            log.warning("synthesis item failed (will be retried on the next run): %s", reason)
    else:
        store.append(rec)


def _error_counts(errors: Counter[str]) -> dict[str, int]:
    return {"errors_to_retry": sum(errors.values())} if errors else {}


def status_counts(path: Path, model: type[TaskRecord | TrajectoryRecord]) -> dict[str, int]:
    c: Counter[str] = Counter()
    for rec in read_records(path, model):
        c[rec.status] += 1
    return dict(c)


def load_tasks(cfg: SynthConfig) -> list[TaskRecord]:
    """The tasks ready for sampling (``ok``)."""
    return [r for r in read_records(out_path(cfg, TASKS), TaskRecord) if r.status == "ok"]


# ------------------------------------------------------------------------------ trajectories


async def _expert_one(item: ExpertItem) -> TrajectoryRecord:
    spec = item.spec
    try:
        traj, why = await expert_trajectory(spec, item.gold, provider_for(item.interpreter), item.data_root,
                                            item.max_obs_chars, system_template=item.system_prompt,
                                            answer_think=item.answer_think)
    except Exception as err:  # noqa: BLE001 — not stored, retried on the next run
        return TrajectoryRecord(key=item.key, task_key=spec.key, sampler="expert", status="error",
                                reason=f"{type(err).__name__}: {err}"[:300])
    return TrajectoryRecord(key=item.key, task_key=spec.key, sampler="expert", status="ok" if traj else "rejected",
                            reason=why, trajectory=traj)


async def run_trajectories(cfg: SynthConfig) -> dict[str, int]:
    if not out_path(cfg, TASKS).exists():
        raise UserError(f"no tasks in {cfg.out}: run `datamind-ext synth tasks` first")
    store = JsonlStore(out_path(cfg, TRAJECTORIES), TrajectoryRecord)
    errors: Counter[str] = Counter()
    tasks = load_tasks(cfg)
    if not tasks:
        profiles, failures = load_profiles(cfg)
        why = ", ".join(f"{r} {n}" for r, n in rejection_counts(out_path(cfg, TASKS)).most_common(5)) or "none made"
        raise UserError(f"no usable tasks in {cfg.out} ({len(profiles)} tables profiled, {len(failures)} unreadable; "
                        f"candidates rejected: {why})")
    items = []
    for t in tasks:
        if t.task.source != "programmatic" or t.gold is None:
            continue
        key = content_key("expert", t.key)
        if key not in store:
            items.append(ExpertItem(key=key, spec=t.task, gold=t.gold, interpreter=cfg.interpreter, data_root=os.getcwd(),
                                    max_obs_chars=cfg.max_obs_chars, system_prompt=cfg.system_prompt,
                                    answer_think=cfg.answer_think))
    _prepare_backend(cfg)
    try:
        with store, progress(len(items), "trajectories (expert)") as bar:
            async for rec in map_unordered(_expert_one, items, cfg.backend, cfg.concurrency):
                _append_or_count(store, rec, errors)
                bar.update(1)
    finally:
        await close_providers()
    llm_tasks = [t for t in tasks if t.task.source == "llm"]
    if llm_tasks:
        from datamind_ext.synthesis.llm_pipeline import run_llm_trajectories

        await run_llm_trajectories(cfg, store, llm_tasks)
    store.close()
    return {**status_counts(out_path(cfg, TRAJECTORIES), TrajectoryRecord), **_error_counts(errors)}


def run_sync(coro: Any) -> Any:
    return asyncio.run(coro)


# ------------------------------------------------------------------------------------ filter

FILTER_DIR = "filtered"
CONSENSUS = "consensus.jsonl"


def run_filter(cfg: SynthConfig) -> dict[str, Any]:
    """Rule-filter expert and judge-selected trajectories; report every drop of every stage.

    Pure and fast, so it is recomputed from the stage files on every run (idempotent)."""
    from datamind_ext.synthesis.filters import filter_trajectories

    if not out_path(cfg, TRAJECTORIES).exists():
        raise UserError(f"no trajectories in {cfg.out}: run `datamind-ext synth trajectories` first")
    earlier: list[Drop] = []
    for task in read_records(out_path(cfg, TASKS), TaskRecord):
        if task.status != "ok":
            earlier.append(Drop(id=task.key, task_id=task.key, category=task.category, reason=task.reason or "unknown",
                                stage="tasks"))
    expert: list[Trajectory] = []
    by_id: dict[str, Trajectory] = {}
    for sample in read_records(out_path(cfg, TRAJECTORIES), TrajectoryRecord):
        if sample.status == "ok" and sample.trajectory is not None:
            by_id[sample.trajectory.id] = sample.trajectory
            if sample.sampler == "expert":
                expert.append(sample.trajectory)
        elif sample.sampler == "expert":
            earlier.append(Drop(id=sample.key, task_id=sample.task_key, category=None, reason=sample.reason or "unknown",
                                stage="trajectories"))
    selected = []
    for con in read_records(out_path(cfg, CONSENSUS), ConsensusRecord):
        if con.status == "ok" and con.selected in by_id:
            selected.append(by_id[con.selected].model_copy(update={"ground_truth": con.gold}))
        else:
            earlier.append(Drop(id=con.key, task_id=con.task_key, category=con.category,
                                reason=con.reason or "not_selected", stage="consistency"))
    expert, selected, audited = _audit_filter(cfg, expert, selected)
    res = filter_trajectories(canonical_order(expert, cfg.data), canonical_order(selected, cfg.data),
                              cfg.max_answer_chars, cfg.max_obs_chars)
    res.dropped = earlier + audited + res.dropped
    folder = out_path(cfg, FILTER_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    kept_path = folder / "kept.jsonl"
    with atomic_open(kept_path) as f:
        for t in res.kept:
            f.write(t.model_dump_json() + "\n")
    write_jsonl(folder / "dropped.jsonl", res.dropped)
    report = res.report()
    write_json_atomic(folder / "report.json", report)
    return report


def canonical_order(trajectories: list[Trajectory], data_root: str | Path) -> list[Trajectory]:
    """``trajectories`` in an order that depends on their content only.

    Why: ``trajectories.jsonl`` is written in completion order, which depends on concurrency and
    machine speed; SFT shuffles ``kept.jsonl`` with a fixed seed, so a different file order is a
    different data order and (measured on the quickstart) a different model. The key uses file
    paths relative to the data folder, so the same data in another run folder sorts the same way.
    """
    root = Path(data_root).resolve()

    def rel(path: str) -> str:
        p = Path(path)
        return p.relative_to(root).as_posix() if p.is_relative_to(root) else p.as_posix()

    def key(t: Trajectory) -> tuple[list[str], str]:
        return [rel(f) for f in t.files], json.dumps([m.model_dump(mode="json") for m in t.messages], sort_keys=True)

    return sorted(trajectories, key=key)


def _audit_filter(cfg: SynthConfig, expert: list[Trajectory], selected: list[Trajectory],
                  ) -> tuple[list[Trajectory], list[Trajectory], list[Drop]]:
    """Drop trajectories whose task fails an audit check (``synth audit``), with the check's name."""
    from datamind_ext.synthesis.audit import roles_by_table, task_problems

    roles = roles_by_table(load_profiles(cfg)[0])
    tasks = {t.key: t for t in load_tasks(cfg)}
    dropped: list[Drop] = []

    def keep(t: Trajectory) -> bool:
        rec = tasks.get(t.task_id or "")
        if rec is None:
            return True
        problems = task_problems(rec.task, t.ground_truth or rec.gold, roles.get(rec.task.table_key, {}))
        if problems:
            dropped.append(Drop(id=t.id, task_id=t.task_id, category=t.category, reason=f"audit:{problems[0]}", stage="audit"))
        return not problems

    return [t for t in expert if keep(t)], [t for t in selected if keep(t)], dropped


def load_kept(cfg: SynthConfig) -> list[Trajectory]:
    path = out_path(cfg, FILTER_DIR) / "kept.jsonl"
    if not path.exists():
        raise UserError(f"no filtered trajectories in {cfg.out}: run `datamind-ext synth filter` first")
    return [Trajectory.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ------------------------------------------------------------------------------------ export


def run_export(cfg: SynthConfig) -> dict[str, Any]:
    from datamind_ext.synthesis.export import export_all

    trajs = load_kept(cfg)
    report_path = out_path(cfg, FILTER_DIR) / "report.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else {}
    tokenizer = None
    if cfg.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer)
    profiles, _ = load_profiles(cfg)
    meta = {"seed": cfg.seed, "generator": cfg.generator,
            "config": cfg.model_dump(exclude={"llm"}) | {"llm_model": cfg.llm.model if cfg.generator != "programmatic" else None},
            "sources": sorted({p.label for p in profiles})}
    return export_all(trajs, report, out_path(cfg, "export"), cfg.dataset_name, tokenizer, cfg.max_tokens, meta)


def ledger_summary(cfg: SynthConfig) -> dict[str, Any] | None:
    """Token and cost ledger of every LLM call made for ``cfg.out`` (None if none was made)."""
    path = out_path(cfg, "ledger.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
