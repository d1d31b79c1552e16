"""InfiAgent-DABench (dev): closed-form ``@name[value]`` answers over CSV tables.

Official layout (InfiAgent/InfiAgent, ``examples/DA-Agent/data/``)::

    da-dev-questions.jsonl   {"id", "question", "concepts", "constraints", "format", "file_name", "level"}
    da-dev-labels.jsonl      {"id", "common_answers": [[name, value], ...]}
    da-dev-tables/<file_name>

Scored two ways, side by side: the official rule (``eval_closed_form.py``: every sub-answer
must match, exact string or numbers within 1e-6) and the DataMind paper's protocol (LLM judge,
or 3 % relative tolerance per sub-answer without one). The fraction of sub-answers right is
recorded too, as the official script's "accuracy by sub-question".
"""

from __future__ import annotations

import re
from pathlib import Path

from datamind_ext.errors import UserError
from datamind_ext.evaluation.answers import final_answer
from datamind_ext.evaluation.benchmark import BENCHMARKS, Benchmark, ScoringContext
from datamind_ext.evaluation.files import (
    check_files_exist,
    find_dir,
    find_file,
    read_jsonl,
    require_keys,
)
from datamind_ext.evaluation.items import EvalItem, Response, Score
from datamind_ext.evaluation.paper_protocol import judge_or_rule

_DATA_DIRS = ("", "data/", "examples/DA-Agent/data/")
#: A number with something glued to it ("88.32_x", "12abc"); an exponent ("1e-5") is not junk.
_GLUED_JUNK = re.compile(r"\d(?:_|[^\W\deE]|[eE](?![+-]?\d))")


def _is_number(text: str) -> bool:
    try:
        float(text.rstrip("%"))
    except ValueError:
        return False
    return True


def paper_value_equal(pred: str, gold: str, rel_tol: float = 0.03) -> bool:
    """One sub-answer under the paper's no-judge rule: equal text (an empty label included), or
    the shared matcher's 3 % -- but not for a number with junk glued to it."""
    from datamind_ext.rewards import match_answer

    p, g = pred.strip(), gold.strip()
    if p.lower() == g.lower():
        return True
    if not p or not g:
        return False
    if _is_number(g) and _GLUED_JUNK.search(p):
        return False
    return bool(match_answer(p, g, rel_tol=rel_tol).correct)


def paper_rule(answer: str, pairs: list[list[str]]) -> tuple[bool, str, dict]:
    """(correct, reason, detail) of the paper's no-judge rule over every ``@name[value]``.

    Names are case-insensitive; a single-answer question also accepts a bare answer.
    """
    from datamind_ext.rewards import parse_sub_answers

    preds = {n.lower(): v for n, v in parse_sub_answers(answer).items()}
    if not preds and len(pairs) == 1:
        preds = {pairs[0][0].lower(): answer}
    per_sub = {name: name.lower() in preds and paper_value_equal(preds[name.lower()], gold) for name, gold in pairs}
    n_right = sum(per_sub.values())
    detail = {"sub_answers": per_sub, "sub_fraction": n_right / max(len(per_sub), 1)}
    wrong = [n for n, ok in per_sub.items() if not ok]
    reason = f"dabench:{n_right}/{len(pairs)}" if not wrong else \
        f"dabench_wrong:{','.join(wrong[:5])}({n_right}/{len(pairs)})"
    return not wrong, reason, detail


def gold_text(common_answers: list[list[str]]) -> str:
    """The labels in the answer format the questions ask for: ``@name[value] @name2[value2]``."""
    return " ".join(f"@{name}[{value}]" for name, value in common_answers)


@BENCHMARKS.register("dabench")
class DABench(Benchmark):
    name = "dabench"
    title = "InfiAgent-DABench (dev)"
    scorers = ("paper", "official")

    def load(self, data_dir: Path, *, need_files: bool = True) -> list[EvalItem]:
        questions_path = find_file(data_dir, [f"{d}da-dev-questions.jsonl" for d in _DATA_DIRS], "DABench questions")
        labels_path = find_file(
            questions_path.parent, ["da-dev-labels.jsonl"], "DABench labels (da-dev-labels.jsonl)"
        )
        labels: dict[str, list[list[str]]] = {}
        for lineno, row in read_jsonl(labels_path):
            where = f"{labels_path}:{lineno}"
            require_keys(row, ["id", "common_answers"], where)
            answers = row["common_answers"]
            if not isinstance(answers, list) or not answers or not all(
                isinstance(a, list) and len(a) == 2 for a in answers
            ):
                raise UserError(f"{where}: 'common_answers' must be a non-empty list of [name, value] pairs")
            labels[str(row["id"])] = [[str(n), str(v)] for n, v in answers]

        tables_dir = questions_path.parent / "da-dev-tables"
        items: list[EvalItem] = []
        for lineno, row in read_jsonl(questions_path):
            where = f"{questions_path}:{lineno}"
            require_keys(row, ["id", "question", "format", "file_name"], where)
            qid = str(row["id"])
            if qid not in labels:
                raise UserError(f"{labels_path}: no label for question id {qid} (asked at {where})")
            question = str(row["question"]).strip()
            if row.get("constraints"):
                question += f"\n\nConstraints: {str(row['constraints']).strip()}"
            question += (
                f"\n\nAnswer format: {str(row['format']).strip()}\n\nThe data file is {row['file_name']}."
                " Put the final answer in exactly this @name[value] format."
            )
            items.append(
                EvalItem(
                    benchmark=self.name,
                    item_id=qid,
                    question=question,
                    gold=labels[qid],
                    categories={
                        "level": str(row.get("level") or "unknown"),
                        "concept": str((row.get("concepts") or ["unknown"])[0]),
                    },
                    files=[str(tables_dir / str(row["file_name"]))],
                )
            )
        if need_files:
            if not tables_dir.is_dir():
                find_dir(questions_path.parent, ["da-dev-tables"], "DABench tables folder")
            check_files_exist(sorted({Path(f) for it in items for f in it.files}), str(tables_dir))
        return items

    async def score(self, item: EvalItem, response: Response, ctx: ScoringContext) -> dict[str, Score]:
        from datamind_ext.rewards import match_dabench, sub_answer_correctness

        answer = final_answer(response)
        pairs: list[list[str]] = item.gold
        verdicts: dict[bool, tuple[bool, str, dict]] = {}
        for official in (True, False):
            if answer is None:
                verdicts[official] = (False, "no answer", {"sub_answers": {}, "sub_fraction": 0.0})
            elif not official:
                verdicts[official] = paper_rule(answer, pairs)
            else:
                match = match_dabench(answer, pairs, official=True)
                per_sub = sub_answer_correctness(answer, pairs, official=True)
                detail = {"sub_answers": per_sub, "sub_fraction": sum(per_sub.values()) / max(len(per_sub), 1)}
                verdicts[official] = (bool(match.correct), match.reason, detail)
        correct, reason, detail = verdicts[True]
        official_score = Score(
            correct=correct,
            value=float(correct),
            scorer="dabench-official (every @name[value] exact or |d|<1e-6)",
            reason=reason,
            detail=detail,
        )
        correct, reason, detail = verdicts[False]
        paper = await judge_or_rule(
            item,
            answer,
            reference=gold_text(pairs),
            rule_correct=correct,
            rule_reason=reason,
            rule_label="every @name[value] within 3% (numbers) or equal (text)",
            ctx=ctx,
            detail=detail,
        )
        return {"paper": paper, "official": official_score}
