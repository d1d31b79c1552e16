"""The LLM path: task generation, knowledge-augmented sampling, self-consistency, judge, critique.

* Tasks: per table, a category is drawn from the taxonomy and an LLM writes a task from the
  file's meta information, the category definition and its few-shot examples; composition asks
  for a harder task built on the previous one's result, 2–5 levels (the chain is recorded).
* Trajectories: N samples per task (default 3) through the project's one multi-turn loop
  (:class:`datamind_ext.agent.TurnLoop`), with the category's workflow hint added to the system
  prompt and every code cell executed for real in the interpreter. The stored trajectory has the
  plain system prompt, so training does not depend on the hint.
* Consistency: if all N answers agree (the rewards matcher), a judge picks the best one and its
  answer becomes the gold; if not, the judge's reasoning is fed back as a critique and N new
  samples are drawn, for at most ``critique_rounds`` rounds. Either way a consensus record says
  what happened, so the filter report can count it.

Resumable like every stage: each sampled trajectory and each consensus is appended under its
content key; a rerun reuses stored samples and only draws what is missing.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datamind_ext.agent.chat import ChatCompletionsPolicy
from datamind_ext.agent.config import AgentBudgets
from datamind_ext.agent.loop import TurnLoop
from datamind_ext.agent.prompts import system_prompt
from datamind_ext.llm import ChatClient, LLMError, UsageLedger
from datamind_ext.protocol import Message, Trajectory
from datamind_ext.synthesis.config import SynthConfig
from datamind_ext.synthesis.execute import close_providers, provider_for
from datamind_ext.synthesis.filters import answers_agree
from datamind_ext.synthesis.programs import TaskSpec, _difficulty
from datamind_ext.synthesis.prompts import critique_text, generator_prompt, judge_prompt
from datamind_ext.synthesis.records import (
    ConsensusRecord,
    LLMTaskItem,
    LLMTaskResult,
    TaskRecord,
    TrajectoryRecord,
    UnmadeTask,
)
from datamind_ext.synthesis.runner import map_unordered, progress
from datamind_ext.synthesis.store import JsonlStore, content_key
from datamind_ext.synthesis.taxonomy import load_taxonomy, workflow_hint

_TAG = {t: re.compile(rf"<{t}>(.*?)</{t}>", re.DOTALL) for t in ("question", "description", "type", "reasoning", "correct", "number")}


def tag(text: str, name: str) -> str | None:
    m = _TAG[name].search(text or "")
    return m.group(1).strip() if m else None


def _save_ledger(cfg: SynthConfig, ledger: UsageLedger) -> None:
    if ledger.requests:
        ledger.save_into(Path(cfg.out) / "ledger.json", cfg.llm)


# ------------------------------------------------------------------------------------- tasks


async def generate_llm_task(client: ChatClient, profile: Any, categories: list[Any], depth: int, seed: int) -> tuple[dict | None, str | None]:
    """One composed task: ``depth`` generator calls, each building on the previous question."""
    chain: list[dict[str, str]] = []
    previous: str | None = None
    for level, cat in enumerate(categories[:depth]):
        prompt = generator_prompt(profile, cat, previous)
        try:
            r = await client.chat([{"role": "user", "content": prompt}], temperature=0.7, seed=seed + level)
        except LLMError as err:
            return None, f"llm_error:{err}"[:200]
        q = tag(r.content, "question")
        if not q:
            return None, "unparseable_task"
        chain.append({"op": f"llm_level_{level + 1}", "category": cat.slug, "question": q,
                      "description": tag(r.content, "description") or ""})
        previous = q
    return {"question": chain[-1]["question"], "category": chain[-1]["category"], "chain": chain}, None


async def run_llm_tasks(cfg: SynthConfig, store: JsonlStore[TaskRecord]) -> None:
    from datamind_ext.synthesis.pipeline import load_profiles

    profiles, _ = load_profiles(cfg)
    tax = list(load_taxonomy().values())
    todo = []
    for p in profiles:
        rng = random.Random(f"{cfg.seed}|llm|{p.key}")
        for i in range(cfg.llm_tasks_per_table):
            depth = rng.randint(cfg.min_depth, cfg.max_depth)
            cats = [tax[rng.randrange(len(tax))] for _ in range(depth)]
            seed = rng.randrange(1 << 30)  # drawn whether or not the task is done: keeps later draws stable
            key = content_key("llm-task", p.key, cfg.seed, i, cfg.llm.model, [c.slug for c in cats])
            if key not in store:
                todo.append((key, p, cats, depth, seed))
    ledger = UsageLedger()
    client = ChatClient(cfg.llm, ledger=ledger, seed=cfg.seed)

    async def one(item: tuple) -> TaskRecord:
        key, p, cats, depth, seed = item
        task, why = await generate_llm_task(client, p, cats, depth, seed)
        if task is None:
            return TaskRecord(key=key, status="error" if (why or "").startswith("llm_error") else "rejected", reason=why,
                              spec=UnmadeTask(category=cats[-1].slug))
        spec = TaskSpec(key=key, question=task["question"], category=task["category"], chain=task["chain"], depth=depth,
                        difficulty=_difficulty(depth), table_key=p.key, table_label=p.label, file_format=p.format,
                        files=[p.path], seed=seed, source="llm")
        return TaskRecord(key=key, status="ok", spec=spec)

    try:
        with progress(len(todo), "tasks (llm)") as bar:
            for fut in asyncio.as_completed([one(x) for x in todo]):
                rec = await fut
                if rec.status != "error":
                    store.append(rec)
                bar.update(1)
    finally:
        await client.aclose()
        _save_ledger(cfg, ledger)


# ------------------------------------------------------------------------------ trajectories


async def judge(client: ChatClient, cfg: SynthConfig, question: str, answers: list[str]) -> tuple[bool | None, int, str]:
    """(consistent per the judge or None if unparseable, 0-based best index, reasoning)."""
    try:
        r = await client.chat([{"role": "user", "content": judge_prompt(question, answers)}],
                              model=cfg.llm.judge_model or cfg.llm.model, temperature=0.0)
    except LLMError as err:
        return None, 0, f"judge unavailable: {err}"
    correct = (tag(r.content, "correct") or "").lower()
    try:
        best = int(tag(r.content, "number") or "1") - 1
    except ValueError:
        best = 0
    best = best if 0 <= best < len(answers) else 0
    return (True if correct == "yes" else False if correct == "no" else None), best, tag(r.content, "reasoning") or ""


async def sample_task(task: TaskRecord, cfg: SynthConfig, client: ChatClient,
                      stored: dict[str, TrajectoryRecord], on_sample: Callable[[TrajectoryRecord], Any] | None = None,
                      ) -> tuple[ConsensusRecord, list[TrajectoryRecord]]:
    """Sample, check consistency, judge; critique-and-resample up to ``critique_rounds`` times.

    ``stored`` holds this task's samples from an interrupted run (reused, not redrawn). Returns the
    consensus record and the new sample records; ``on_sample`` also gets each one as it finishes
    (the local backend stores it at once)."""
    spec = task.task
    files = [str(Path(f).resolve()) for f in spec.files]
    plain_system = system_prompt(spec.files, max_turns=cfg.max_turns, template=cfg.system_prompt, kind="files")
    hinted_system = system_prompt(spec.files, max_turns=cfg.max_turns, template=cfg.system_prompt, kind="files",
                                  knowledge=workflow_hint(spec.category))
    # the cell time limit is the interpreter's (cfg.interpreter.limits.timeout_s)
    budgets = AgentBudgets(max_turns=cfg.max_turns, max_tokens_per_turn=cfg.llm.max_tokens,
                           max_response_tokens=cfg.max_turns * cfg.llm.max_tokens, max_observation_chars=cfg.max_obs_chars)
    executor = provider_for(cfg.interpreter)
    new: list[TrajectoryRecord] = []
    critique = ""
    reason = "inconsistent"
    for rnd in range(cfg.critique_rounds + 1):
        keys = [content_key("llm-sample", spec.key, rnd, i, cfg.llm.model) for i in range(cfg.samples_per_task)]

        async def draw(i: int, key: str, rnd: int = rnd, critique: str = critique) -> TrajectoryRecord:
            if key in stored:
                return stored[key]
            user = spec.question + critique
            loop = TurnLoop(ChatCompletionsPolicy(client, seed=spec.seed * 100 + rnd * 10 + i), executor.session, budgets)
            ep = await loop.run([{"role": "system", "content": hinted_system}, {"role": "user", "content": user}], files)
            if ep.error and "LLMError" in ep.error:
                return TrajectoryRecord(key=key, task_key=spec.key, sampler="llm", round=rnd, status="error", reason=ep.error)
            msgs = [Message(role="system", content=plain_system), Message(role="user", content=spec.question)]
            msgs += [Message(**m) for m in ep.messages[2:]]
            traj = Trajectory(id=content_key("llm-traj", key), messages=msgs, task_id=spec.key, files=list(spec.files),
                              category=spec.category, difficulty=spec.depth,
                              meta={"source": "llm", "question": spec.question, "chain": spec.chain, "round": rnd,
                                    "difficulty_label": spec.difficulty, "file_format": spec.file_format,
                                    "table": spec.table_label})
            rec = TrajectoryRecord(key=key, task_key=spec.key, sampler="llm", round=rnd, answer=ep.answer,
                                   status="rejected" if ep.void else "ok", reason=ep.void_reason, trajectory=traj)
            new.append(rec)
            if on_sample is not None:
                on_sample(rec)
            return rec

        recs = await asyncio.gather(*(draw(i, k) for i, k in enumerate(keys)))
        failed = [r for r in recs if r.status == "error"]
        if failed:
            return ConsensusRecord(key=content_key("consensus", spec.key), task_key=spec.key, category=spec.category,
                                   status="error", reason=failed[0].reason, rounds=rnd + 1), new
        answers = [r.answer if r.status == "ok" else None for r in recs]
        consistent = answers_agree(answers)
        verdict, best, reasoning = await judge(client, cfg, spec.question, [a or "(no answer)" for a in answers])
        if consistent and verdict is not False:
            chosen = recs[best] if answers[best] is not None else recs[0]
            assert chosen.trajectory is not None  # every answer agrees, so every sample is ok
            return ConsensusRecord(key=content_key("consensus", spec.key), task_key=spec.key, category=spec.category,
                                   status="ok", selected=chosen.trajectory.id, gold=chosen.answer, rounds=rnd + 1,
                                   answers=answers), new
        reason = "inconsistent" if not consistent else "judge_rejected"
        critique = critique_text(reasoning or f"The attempts gave different answers: {answers}.")
    return ConsensusRecord(key=content_key("consensus", spec.key), task_key=spec.key, category=spec.category,
                           status="rejected", reason=reason, rounds=cfg.critique_rounds + 1), new


async def _sample_task_in_worker(item: LLMTaskItem) -> LLMTaskResult:
    """One LLM task as a Ray task: its own client (ledger returned), the worker's interpreter pool."""
    client = ChatClient(item.cfg.llm, seed=item.cfg.seed)
    try:
        consensus, new = await sample_task(item.task, item.cfg, client, item.stored)
    finally:
        await client.aclose()
    return LLMTaskResult(consensus=consensus, samples=new, ledger=client.ledger.as_dict())


async def run_llm_trajectories(cfg: SynthConfig, store: JsonlStore[TrajectoryRecord], tasks: list[TaskRecord]) -> None:
    """Per task: N samples, consistency, judge, critique rounds; in-process or as Ray tasks."""
    from datamind_ext.synthesis.pipeline import CONSENSUS, out_path

    consensus = JsonlStore(out_path(cfg, CONSENSUS), ConsensusRecord)
    todo = [t for t in tasks if content_key("consensus", t.key) not in consensus]
    ledger = UsageLedger()
    by_task: dict[str, dict[str, TrajectoryRecord]] = {}
    for r in store.records():  # samples stored by an interrupted run are reused, not redrawn
        if r.sampler == "llm":
            by_task.setdefault(r.task_key, {})[r.key] = r

    def finish(rec: ConsensusRecord) -> None:
        if rec.status != "error":
            consensus.append(rec)

    try:
        with consensus, progress(len(todo), "trajectories (llm)") as bar:
            if cfg.backend == "ray":
                items = [LLMTaskItem(task=t, cfg=cfg, stored=by_task.get(t.key, {})) for t in todo]
                async for out in map_unordered(_sample_task_in_worker, items, "ray", cfg.concurrency):
                    for rec in out.samples:
                        store.append(rec)
                    for k, v in out.ledger.items():
                        setattr(ledger, k, getattr(ledger, k) + v)
                    finish(out.consensus)
                    bar.update(1)
            else:
                client = ChatClient(cfg.llm, ledger=ledger, seed=cfg.seed)
                sem = asyncio.Semaphore(max(1, cfg.llm.max_concurrency // max(1, cfg.samples_per_task)))

                async def one(t: TaskRecord) -> ConsensusRecord:
                    async with sem:
                        rec, _ = await sample_task(t, cfg, client, by_task.get(t.key, {}), store.append)
                        return rec

                try:
                    for fut in asyncio.as_completed([one(t) for t in todo]):
                        finish(await fut)
                        bar.update(1)
                finally:
                    await client.aclose()
    finally:
        await close_providers()
        _save_ledger(cfg, ledger)
