"""TableBench: table question answering with the table inline in each record.

Official file: ``TableBench.jsonl`` (the full test set, distributed on the Hugging Face hub as
``Multilingual-Multimodal-NLP/TableBench``), one record per line:
``{"id", "qtype", "qsubtype", "table": {"columns": [...], "data": [[...], ...]}, "question", "answer"}``.
Files with one record per instruction type (DP, TCoT, SCoT, PoT) repeat an id; the first is kept.

As in the DataMind paper, trend-forecasting and chart-generation questions are dropped (their
answers are forecasts or plots, not checkable values); the loader reports how many. The table
is written to the agent's workspace as ``table.csv``.

Scorers: the paper's protocol (LLM judge, or without one every comma-separated answer part
equal or within 3 %), and TableBench's own metric per question type (graded, reported as a
mean; see :mod:`tablebench_metrics`).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from datamind_ext.errors import UserError
from datamind_ext.evaluation.answers import (
    final_answer,
    has_protocol_tags,
    strip_final_answer_prefix,
)
from datamind_ext.evaluation.benchmark import BENCHMARKS, Benchmark, ScoringContext
from datamind_ext.evaluation.benchmarks.tablebench_metrics import (
    official_score,
    parse_final_answer,
)
from datamind_ext.evaluation.files import find_file, read_jsonl, require_keys
from datamind_ext.evaluation.items import EvalItem, Response, Score
from datamind_ext.evaluation.paper_protocol import judge_or_rule

#: Question subtypes the paper removed (forecasts and plots have no checkable answer).
DROPPED_SUBTYPES = ("TrendForecasting", "ChartGeneration")
TABLE_FILE = "table.csv"
# Answer lists are "a, b, c"; a comma NOT followed by a space is a thousands separator ("1,062").
_PART_SPLIT = re.compile(r"\s*[,;]\s+|\n+")


def table_to_csv(table: object, where: str) -> str:
    """The inline ``{"columns", "data"}`` table as CSV text."""
    if not isinstance(table, dict) or not isinstance(table.get("columns"), list) or not isinstance(
        table.get("data"), list
    ):
        raise UserError(f"{where}: 'table' must be an object with 'columns' (list) and 'data' (list of rows)")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["" if c is None else c for c in table["columns"]])
    for i, row in enumerate(table["data"]):
        if not isinstance(row, list) or len(row) != len(table["columns"]):
            raise UserError(f"{where}: table row {i} has {len(row) if isinstance(row, list) else 'no'} cells, "
                            f"expected {len(table['columns'])}")
        writer.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def answer_parts(text: str) -> list[str]:
    return [p.strip().strip("'\"") for p in _PART_SPLIT.split(text.strip()) if p.strip().strip("'\"")]


def official_prediction(response: Response) -> str:
    """What TableBench's own parser takes as the answer.

    Another harness's raw output is parsed exactly as TableBench parses it (its first
    ``Final Answer: `` line; none: the empty string, scored 0). This project's agent answers
    in an ``<answer>`` block, which plays the role of that line: its content, or the
    ``Final Answer: `` line inside it if it has one.
    """
    if not has_protocol_tags(response):
        return parse_final_answer(response.text or "")
    answer = final_answer(response) or ""
    return parse_final_answer(answer) or answer.strip()


@BENCHMARKS.register("tablebench")
class TableBench(Benchmark):
    name = "tablebench"
    title = "TableBench (trend forecasting and chart generation removed)"
    scorers = ("paper", "official")
    graded_scorers = ("official",)

    def load(self, data_dir: Path, *, need_files: bool = True) -> list[EvalItem]:
        path = find_file(
            data_dir, ["TableBench.jsonl", "data/TableBench.jsonl", "TableBench_DP.jsonl"], "TableBench.jsonl"
        )
        items: list[EvalItem] = []
        seen: set[str] = set()
        dropped: dict[str, int] = {}
        repeated = 0
        for lineno, row in read_jsonl(path):
            where = f"{path}:{lineno}"
            require_keys(row, ["id", "qtype", "qsubtype", "table", "question", "answer"], where)
            qid = str(row["id"])
            if qid in seen:
                repeated += 1
                continue
            seen.add(qid)
            if row["qsubtype"] in DROPPED_SUBTYPES or row["qtype"] == "Visualization":
                dropped[str(row["qsubtype"])] = dropped.get(str(row["qsubtype"]), 0) + 1
                self.dropped_ids.add(qid)
                continue
            question = (
                f"{str(row['question']).strip()}\n\nThe table is in the file {TABLE_FILE}. Give the final answer as "
                "short values only (several values separated by ', '), without explanation."
            )
            items.append(
                EvalItem(
                    benchmark=self.name,
                    item_id=qid,
                    question=question,
                    gold=str(row["answer"]),
                    categories={"qtype": str(row["qtype"]), "qsubtype": str(row["qsubtype"])},
                    inline_files={TABLE_FILE: table_to_csv(row["table"], where)},
                )
            )
        if dropped:
            self.notes.append(
                "dropped as in the DataMind paper: "
                + ", ".join(f"{n} {k}" for k, n in sorted(dropped.items()))
            )
        if repeated:
            self.notes.append(f"{repeated} repeated ids (other instruction types) skipped")
        if not items:
            raise UserError(f"{path}: no questions left after dropping {', '.join(DROPPED_SUBTYPES)}")
        return items

    async def score(self, item: EvalItem, response: Response, ctx: ScoringContext) -> dict[str, Score]:
        from datamind_ext.rewards import match_answer

        raw = final_answer(response)
        answer = strip_final_answer_prefix(raw) if raw is not None else None
        gold_parts = answer_parts(item.gold)
        pred_parts = answer_parts(answer) if answer else []
        unused = list(pred_parts)
        per_part: dict[str, bool] = {}
        for g in gold_parts:
            hit = next((p for p in unused if match_answer(p, g, rel_tol=0.03).correct), None)
            per_part[g] = hit is not None
            if hit is not None:
                unused.remove(hit)
        n_right = sum(per_part.values())
        correct = bool(gold_parts) and n_right == len(gold_parts) and not unused
        reason = "no answer" if answer is None else f"{n_right}/{len(gold_parts)} answer parts match, {len(unused)} extra"
        detail = {"parts": per_part, "part_fraction": n_right / max(len(gold_parts), 1), "extra_parts": unused}
        paper = await judge_or_rule(
            item,
            answer,
            reference=item.gold,
            rule_correct=correct,
            rule_reason=reason,
            rule_label="every answer part equal or within 3%",
            ctx=ctx,
            detail=detail,
        )
        metric, value = official_score(official_prediction(response), item.gold, item.categories["qtype"],
                                       item.categories["qsubtype"])
        return {
            "paper": paper,
            "official": Score(
                correct=None, value=value, scorer=f"tablebench-official {metric} (graded)", detail={"metric": metric}
            ),
        }
