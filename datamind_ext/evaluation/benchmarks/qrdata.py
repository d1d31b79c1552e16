"""QRData: statistical and causal reasoning questions over data files.

Official layout (xxxiaol/QRData, ``benchmark/``)::

    QRData.json   [{"data_description", "question", "answer", "data_files": [...],
                    "meta_data": {"reference", "keywords", "question_type", "multiple_choices"?}}, ...]
    data/<file>   (unzipped from data.zip)

Items have no id in the official file; the id is the position in the list (0-based).
Scorers: QRData's official rule (``benchmark/eval.py``: numbers, first number of the answer with
% read as /100, strictly within 3 % of the gold; multiple choice, the lower-cased answer starts
with the gold choice), applied as ``eval.py`` applies it: to the prediction as given (another
harness's raw text untouched, this project's ``<answer>`` block content), no "Final Answer:"
prefix removed; and the paper's protocol (LLM judge, or the shared 3 % / choice matcher), which
is the lenient column (prefix removed).
"""

from __future__ import annotations

import re
from pathlib import Path

from datamind_ext.errors import UserError
from datamind_ext.evaluation.answers import (
    final_answer,
    has_protocol_tags,
    strip_final_answer_prefix,
)
from datamind_ext.evaluation.benchmark import BENCHMARKS, Benchmark, ScoringContext
from datamind_ext.evaluation.files import (
    check_files_exist,
    find_file,
    read_json,
    require_keys,
)
from datamind_ext.evaluation.items import EvalItem, Response, Score
from datamind_ext.evaluation.paper_protocol import judge_or_rule

_FIRST_NUMBER = re.compile(r"-?\d+\.?\d*%?")
QUESTION_TYPES = ("numerical", "multiple_choice")


def _as_number(text: str) -> float:
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


def official_correct(pred: str, gold: str, question_type: str, rel_tol: float = 0.03) -> bool:
    """QRData's own rule, restated: see the module docstring."""
    pred, gold = pred.lower(), gold.lower()
    if question_type == "numerical":
        m = _FIRST_NUMBER.search(pred)
        if m is None:
            return False
        try:
            g, p = _as_number(gold), _as_number(m.group())
        except ValueError:
            return False
        lo, hi = sorted((g * (1 - rel_tol), g * (1 + rel_tol)))
        return lo < p < hi
    return pred[: len(gold)] == gold


@BENCHMARKS.register("qrdata")
class QRData(Benchmark):
    name = "qrdata"
    title = "QRData"
    scorers = ("paper", "official")

    def load(self, data_dir: Path, *, need_files: bool = True) -> list[EvalItem]:
        path = find_file(data_dir, ["QRData.json", "benchmark/QRData.json"], "QRData.json")
        rows = read_json(path)
        if not isinstance(rows, list):
            raise UserError(f"{path}: expected a JSON list of questions, got {type(rows).__name__}")
        files_dir = path.parent / "data"
        items: list[EvalItem] = []
        for i, row in enumerate(rows):
            where = f"{path}: question {i}"
            require_keys(row, ["question", "answer", "data_files", "meta_data"], where)
            meta = row["meta_data"]
            require_keys(meta, ["question_type"], f"{where}: meta_data")
            qtype = meta["question_type"]
            if qtype not in QUESTION_TYPES:
                raise UserError(f"{where}: meta_data.question_type {qtype!r} is not one of {', '.join(QUESTION_TYPES)}")
            choices = [str(c) for c in meta.get("multiple_choices") or []]
            if qtype == "multiple_choice" and not choices:
                raise UserError(f"{where}: a multiple_choice question needs meta_data.multiple_choices")
            question = f"{str(row.get('data_description') or '').strip()}\n\n{str(row['question']).strip()}".strip()
            if choices:
                question += "\n\nChoose one of: " + "; ".join(choices) + ". Answer with the choice text only."
            else:
                question += "\n\nAnswer with a single number."
            keywords = meta.get("keywords") or ["unknown"]
            items.append(
                EvalItem(
                    benchmark=self.name,
                    item_id=str(i),
                    question=question,
                    gold={"answer": str(row["answer"]), "question_type": qtype, "choices": choices},
                    categories={"question_type": qtype, "keyword": str(keywords[-1])},
                    files=[str(files_dir / str(f)) for f in row["data_files"]],
                )
            )
        if need_files:
            check_files_exist(
                sorted({Path(f) for it in items for f in it.files}), f"{files_dir} (unzip benchmark/data.zip here)"
            )
        return items

    async def score(self, item: EvalItem, response: Response, ctx: ScoringContext) -> dict[str, Score]:
        from datamind_ext.rewards import match_answer

        raw = final_answer(response)
        answer = strip_final_answer_prefix(raw) if raw is not None else None
        gold = item.gold["answer"]
        qtype = item.gold["question_type"]
        choices = item.gold["choices"] or None
        pred = raw if has_protocol_tags(response) else response.text  # what eval.py would be given
        off = pred is not None and official_correct(pred, gold, qtype)
        official = Score(
            correct=off,
            value=float(off),
            scorer="qrdata-official (eval.py: first number within 3%, choices by prefix)",
            reason="no answer" if pred is None else ("match" if off else "no match"),
        )
        rule = match_answer(answer, gold, rel_tol=0.03, choices=choices) if answer is not None else None
        paper = await judge_or_rule(
            item,
            answer,
            reference=gold,
            rule_correct=bool(rule and rule.correct),
            rule_reason=rule.reason if rule else "no answer",
            rule_label="numbers within 3%, choices exact",
            ctx=ctx,
        )
        return {"paper": paper, "official": official}
