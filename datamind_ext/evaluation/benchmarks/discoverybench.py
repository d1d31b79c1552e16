"""DiscoveryBench (real, test): data-driven hypothesis discovery, scored by an LLM judge.

Official layout (allenai/discoverybench)::

    discoverybench/real/test/<dataset>/metadata_<id>.json   datasets (name, description, columns), queries
    discoverybench/real/test/<dataset>/<file>.csv
    eval/answer_key_real.csv                                dataset, metadataid, query_id, gold_hypo

``--data`` may be the repository root or a folder holding the dataset folders and
``answer_key_real.csv``. One item per answer-key row that names a test dataset. The gold is a
free-text hypothesis, so scoring needs the LLM judge (configured with ``--judge-model``); the
official evaluation's finer context/variable/relation scores are not reproduced.
"""

from __future__ import annotations

import csv
from pathlib import Path

from datamind_ext.errors import UserError
from datamind_ext.evaluation.answers import final_answer
from datamind_ext.evaluation.benchmark import BENCHMARKS, Benchmark, ScoringContext
from datamind_ext.evaluation.files import (
    check_files_exist,
    find_file,
    read_json,
    require_keys,
)
from datamind_ext.evaluation.items import EvalItem, Response, Score

_TEST_DIRS = ("", "real/test", "discoverybench/real/test")
ANSWER_KEY_COLUMNS = ("dataset", "metadataid", "query_id", "gold_hypo")


def _find_query(meta: dict, query_id: str) -> dict | None:
    groups = meta.get("queries") or []
    for group in groups if isinstance(groups, list) else []:
        for q in group if isinstance(group, list) else [group]:
            if isinstance(q, dict) and str(q.get("qid")) == query_id:
                return q
    return None


def _describe(meta: dict, where: str) -> tuple[str, list[str]]:
    """The datasets' description for the prompt, and their file names."""
    datasets = meta.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise UserError(f"{where}: 'datasets' must be a non-empty list")
    lines, names = [], []
    for d in datasets:
        require_keys(d, ["name"], f"{where}: datasets")
        names.append(str(d["name"]))
        lines.append(f"Dataset {d['name']}: {str(d.get('description') or '').strip()}")
        cols = (d.get("columns") or {}).get("raw") or []
        for c in cols:
            if isinstance(c, dict) and "name" in c:
                lines.append(f"  - column {c['name']}: {str(c.get('description') or '').strip()}")
    return "\n".join(lines), names


@BENCHMARKS.register("discoverybench")
class DiscoveryBench(Benchmark):
    name = "discoverybench"
    title = "DiscoveryBench (real, test)"
    scorers = ("judge",)
    requires_judge = True

    def load(self, data_dir: Path, *, need_files: bool = True) -> list[EvalItem]:
        key_path = find_file(data_dir, ["answer_key_real.csv", "eval/answer_key_real.csv"], "DiscoveryBench answer key")
        test_dir = next((data_dir / d for d in _TEST_DIRS if d and (data_dir / d).is_dir()), data_dir)
        try:
            with open(key_path, encoding="utf-8", newline="") as f:
                reader = csv.DictReader(f)
                header = reader.fieldnames or []
                missing = [c for c in ANSWER_KEY_COLUMNS if c not in header]
                if missing:
                    raise UserError(f"{key_path}: missing column(s) {', '.join(missing)} in the header")
                key_rows = [(n, r) for n, r in enumerate(reader, start=2)]
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise UserError(f"{key_path}: cannot read: {err}") from None
        datasets_here = {p.name for p in test_dir.iterdir() if p.is_dir()}
        if not datasets_here:
            raise UserError(f"{test_dir}: no dataset folders (expected discoverybench/real/test/<dataset>/)")
        items: list[EvalItem] = []
        metas: dict[Path, dict] = {}
        for lineno, r in key_rows:
            if r["dataset"] not in datasets_here:
                continue  # the answer key also covers datasets the user did not download
            meta_path = test_dir / r["dataset"] / f"metadata_{r['metadataid']}.json"
            if not meta_path.is_file():
                raise UserError(f"{key_path}:{lineno}: names {meta_path.name} in {r['dataset']}, which does not exist")
            if meta_path not in metas:
                metas[meta_path] = read_json(meta_path)
            meta = metas[meta_path]
            query = _find_query(meta, str(r["query_id"]))
            if query is None or "question" not in query:
                raise UserError(f"{meta_path}: no query with qid {r['query_id']} (named at {key_path}:{lineno})")
            description, names = _describe(meta, str(meta_path))
            question = (
                f"{description}\n\nQuery: {str(query['question']).strip()}\n\n"
                "Answer with a scientific hypothesis supported by the data, in one or two sentences."
            )
            items.append(
                EvalItem(
                    benchmark=self.name,
                    item_id=f"{r['dataset']}/{r['metadataid']}/{r['query_id']}",
                    question=question,
                    gold=str(r["gold_hypo"]),
                    categories={
                        "domain": str(meta.get("domain") or "unknown"),
                        "question_type": str(query.get("question_type") or "unknown"),
                    },
                    files=[str(meta_path.parent / n) for n in names],
                )
            )
        if not items:
            raise UserError(f"{key_path}: no answer-key row names a dataset folder found in {test_dir}")
        if need_files:
            check_files_exist(sorted({Path(f) for it in items for f in it.files}), str(test_dir))
        return items

    async def score(self, item: EvalItem, response: Response, ctx: ScoringContext) -> dict[str, Score]:
        answer = final_answer(response)
        label = "discoverybench-judge (hypothesis matches the gold, by LLM)"
        if answer is None:
            return {"judge": Score(correct=False, value=0.0, scorer=label, reason="no answer")}
        if ctx.judge is None:
            raise UserError("DiscoveryBench is scored only by an LLM judge: pass --judge-model and --judge-base-url")
        verdict = await ctx.judge.judge(question=item.question, reference=item.gold, answer=answer)
        return {
            "judge": Score(
                correct=verdict.correct, value=float(bool(verdict.correct)), scorer=label,
                judge=verdict.judge, reason=verdict.reason,
            )
        }
