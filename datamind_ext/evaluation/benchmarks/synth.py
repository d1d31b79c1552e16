"""Held-out synthesized tasks: the RL parquet written by ``datamind-ext synth ... export``.

Layout: ``--data`` is a synthesis output folder (``export/rl/train.parquet`` inside it), the
``export`` folder, or the parquet file's folder. Each row is one task: the user turn of
``prompt`` is the question, ``reward_model.ground_truth`` the answer, ``extra_info.files`` the
absolute paths of its data files. Recipes use it to measure a checkpoint on tasks it did not
train on (fresh tables, or tables whose column names never occur in training).

Scorer: the rewards matcher (``match_answer``, numbers within 3 %, the RL reward's rule), under
the name ``rule``; the same verdict the RL reward gives a correct answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datamind_ext.errors import UserError
from datamind_ext.evaluation.answers import final_answer, strip_final_answer_prefix
from datamind_ext.evaluation.benchmark import BENCHMARKS, Benchmark, ScoringContext
from datamind_ext.evaluation.files import check_files_exist
from datamind_ext.evaluation.items import EvalItem, Response, Score

PARQUET_CANDIDATES = ("export/rl/train.parquet", "rl/train.parquet", "train.parquet")


def find_parquet(data_dir: Path) -> Path:
    """The RL parquet under ``data_dir`` (or ``data_dir`` itself when it is the file)."""
    if data_dir.is_file():
        return data_dir
    for rel in PARQUET_CANDIDATES:
        if (data_dir / rel).is_file():
            return data_dir / rel
    raise UserError(f"{data_dir}: no synthesized RL parquet ({', '.join(PARQUET_CANDIDATES)}); run datamind-ext synth all")


def _user_question(prompt: Any) -> str:
    for msg in reversed(list(prompt)):
        if msg["role"] == "user":
            return str(msg["content"])
    raise ValueError("prompt has no user turn")


def _system_turn(prompt: Any) -> str | None:
    """The system prompt the task was synthesized (and trained) with, if the row has one."""
    first = list(prompt)[0] if len(prompt) else None
    return str(first["content"]) if first is not None and first["role"] == "system" else None


@BENCHMARKS.register("synth")
class SynthHeldOut(Benchmark):
    name = "synth"
    title = "Held-out synthesized tasks"
    scorers = ("rule",)

    def load(self, data_dir: Path, *, need_files: bool = True) -> list[EvalItem]:
        import pandas as pd

        path = find_parquet(data_dir)
        df = pd.read_parquet(path)
        items: list[EvalItem] = []
        for i, row in enumerate(df.itertuples(index=False)):
            extra = dict(row.extra_info)
            items.append(
                EvalItem(
                    benchmark=self.name,
                    item_id=str(extra.get("task_id") or i),
                    question=_user_question(row.prompt),
                    system=_system_turn(row.prompt),
                    gold={"answer": str(row.reward_model["ground_truth"])},
                    categories={"category": str(extra.get("category", "unknown")),
                                "difficulty": str(extra.get("difficulty_label", "unknown"))},
                    files=[str(f) for f in extra.get("files", [])],
                )
            )
        if need_files:
            check_files_exist(sorted({Path(f) for it in items for f in it.files}), str(path))
        return items

    async def score(self, item: EvalItem, response: Response, ctx: ScoringContext) -> dict[str, Score]:
        from datamind_ext.rewards import match_answer

        raw = final_answer(response)
        answer = strip_final_answer_prefix(raw) if raw is not None else None
        if answer is None:
            return {"rule": Score(correct=False, value=0.0, scorer="rewards.match_answer (3%)", reason="no answer")}
        m = match_answer(answer, item.gold["answer"], rel_tol=0.03)
        return {"rule": Score(correct=bool(m.correct), value=float(bool(m.correct)),
                              scorer="rewards.match_answer (3%)", reason=m.reason)}
