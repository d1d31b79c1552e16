"""BIRD (dev): text-to-SQL over sqlite databases, scored by execution.

Official layout (the ``dev.zip`` from the BIRD website, or bird-bench/mini_dev)::

    dev.json                 [{"question_id", "db_id", "question", "evidence", "SQL", "difficulty"}, ...]
    dev_databases/<db_id>/<db_id>.sqlite

(``mini_dev_sqlite.json`` with the same fields is accepted too.) Gold result tables are not
distributed: they are computed here by running each gold SQL on its database, read-only and
with a time limit, and cached under the output folder.

A prediction is a result table: the CSV the agent saved (its answer names it), a CSV path in a
responses file, or SQL (from a responses file, or the last ``execute_sql`` / sql fence of a
transcript), which is executed the same way. BIRD's released ``predict_dev.json`` (id ->
``"SQL\t----- bird -----\tdb"``) is read as is. Scorers: the paper's protocol (the predicted
CSV's columns must cover the gold columns, order ignored, numbers within 1e-2), and BIRD's
standard execution accuracy as its ``evaluation.py`` computes it: the predicted SQL's result
rows, as a set, equal the gold's; any error is 0, and so is a pair of queries that together
run past its 30 s limit (``meta_time_out``) or return text that is not UTF-8 (sqlite3's
default decoding, which it uses, raises).
"""

from __future__ import annotations

import ast
import asyncio
import re
import time
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
from datamind_ext.evaluation.sqlite_exec import (
    SQLError,
    UndecodableText,
    run_query,
    write_csv,
)
from datamind_ext.protocol import parse_response

_EXECUTE_SQL = re.compile(r"execute_sql\(\s*(?:sql\s*=\s*)?(?P<q>\"\"\"|'''|\"|')(?P<sql>.*?)(?P=q)", re.DOTALL)
_SQL_FENCE = re.compile(r"```sql\s*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_CSV_NAME = re.compile(r"[\"'`]?([\w./-]+\.csv)[\"'`]?", re.IGNORECASE)

class GoldSQLError(RuntimeError):
    """The gold SQL of a question failed or timed out (recorded as that unit's error)."""


PAPER_LABEL = "bird-paper (result CSV: gold columns matched, order ignored, abs_tol 1e-2)"
#: BIRD evaluation.py's default ``--meta_time_out``: one limit for the predicted and the gold query together.
BIRD_EX_TIMEOUT_S = 30.0
OFFICIAL_LABEL = f"bird-official-ex (evaluation.py: set of result rows equal, {BIRD_EX_TIMEOUT_S:g} s)"


def _execute_sql_calls(cell: str) -> list[tuple[str, str | None]]:
    """(sql, output_path) of every ``execute_sql(...)`` call in a code cell, in order.

    Read with :mod:`ast` so quoting and escapes are handled as Python does; a cell that does not
    parse falls back to a regular expression (sql only).
    """
    try:
        tree = ast.parse(cell)
    except SyntaxError:
        return [(m.group("sql"), None) for m in _EXECUTE_SQL.finditer(cell)]
    calls: list[tuple[int, int, str, str | None]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "execute_sql"):
            continue
        args = {kw.arg: kw.value for kw in node.keywords if kw.arg}
        for name, value in zip(("sql", "output_path"), node.args, strict=False):
            args.setdefault(name, value)
        sql, out = args.get("sql"), args.get("output_path")
        if isinstance(sql, ast.Constant) and isinstance(sql.value, str):
            path = out.value if isinstance(out, ast.Constant) and isinstance(out.value, str) else None
            calls.append((node.lineno, node.col_offset, sql.value, path))
    return [(sql, path) for _, _, sql, path in sorted(calls)]


def extract_sql(response: Response) -> str | None:
    """The query a response stands on.

    Its ``sql`` field if given; else, in a transcript, the ``execute_sql`` call that wrote the
    CSV the answer names (the last such call), or the last call if the answer names none; else
    the last ``sql`` fence, or an answer that is itself a query.
    """
    if response.sql:
        return response.sql
    texts = [m.get("content", "") for m in response.trajectory or [] if m.get("role") == "assistant"]
    texts = texts or [response.text or ""]
    calls: list[tuple[str, str | None]] = []
    fences: list[str] = []
    for text in texts:
        for cell in parse_response(text).code_cells or [text]:
            calls += _execute_sql_calls(cell)
            fences += _SQL_FENCE.findall(cell)
    answer = final_answer(response)
    named = answer_csv_name(answer)
    if calls:
        chosen = [sql for sql, path in calls if named and path and Path(path).name == Path(named).name]
        return (chosen or [calls[-1][0]])[-1].strip()
    if fences:
        return fences[-1].strip()
    if answer and re.match(r"\s*(select|with)\b", answer, re.IGNORECASE):
        return answer.strip()
    return None


def answer_csv_name(answer: str | None) -> str | None:
    """The CSV file an answer names ("... saved in the CSV file named 'result.csv'")."""
    if not answer:
        return None
    names = _CSV_NAME.findall(answer)
    return names[-1] if names else None


@BENCHMARKS.register("bird")
class Bird(Benchmark):
    name = "bird"
    title = "BIRD (dev)"
    scorers = ("paper", "official")

    def load(self, data_dir: Path, *, need_files: bool = True) -> list[EvalItem]:
        path = find_file(
            data_dir,
            ["dev.json", "dev_20240627/dev.json", "mini_dev_sqlite.json", "llm/data/mini_dev_sqlite.json"],
            "BIRD questions (dev.json)",
        )
        rows = read_json(path)
        if not isinstance(rows, list):
            raise UserError(f"{path}: expected a JSON list of questions, got {type(rows).__name__}")
        db_root = next(
            (d for d in (path.parent / "dev_databases", data_dir / "dev_databases") if d.is_dir()),
            path.parent / "dev_databases",
        )
        items: list[EvalItem] = []
        for i, row in enumerate(rows):
            where = f"{path}: question {i}"
            require_keys(row, ["db_id", "question", "SQL"], where)
            qid = str(row.get("question_id", i))
            evidence = str(row.get("evidence") or "").strip()
            question = str(row["question"]).strip()
            if evidence:
                question += f"\n\nExternal knowledge: {evidence}"
            question += (
                "\n\nAnswer with one SQL query executed on the database; save its result with"
                " execute_sql(sql=..., output_path='result.csv') and name that CSV file in your answer."
            )
            db = db_root / str(row["db_id"]) / f"{row['db_id']}.sqlite"
            items.append(
                EvalItem(
                    benchmark=self.name,
                    item_id=qid,
                    question=question,
                    gold={"sql": str(row["SQL"]), "db_id": str(row["db_id"])},
                    categories={"difficulty": str(row.get("difficulty") or "unknown"), "db_id": str(row["db_id"])},
                    database=str(db),
                )
            )
        # Gold tables come from executing the gold SQL, so the databases are always needed.
        check_files_exist(sorted({Path(it.database) for it in items if it.database}), f"{db_root} (BIRD databases)")
        return items

    def __init__(self) -> None:
        super().__init__()
        self._gold: dict[str, tuple[list[tuple], float, bool]] = {}

    def gold(self, item: EvalItem, ctx: ScoringContext) -> tuple[Path, list[tuple], float, bool]:
        """The gold result table, computed by executing the gold SQL once per item.

        Returns (CSV path, typed rows, seconds the query took, whether its text decodes as
        sqlite3 decodes by default). The CSV is cached in the output folder (a rerun reuses it);
        rows and timing, needed for the official comparison, are kept for the k runs of an item.
        """
        path = ctx.work_dir / "bird_gold" / f"{_safe(item.item_id)}.csv"
        if item.item_id not in self._gold:
            strict = True
            t0 = time.monotonic()
            try:
                try:
                    columns, rows = run_query(item.database or "", item.gold["sql"], timeout_s=ctx.sql_timeout_s,
                                              strict_text=True)
                except UndecodableText:
                    strict = False
                    columns, rows = run_query(item.database or "", item.gold["sql"], timeout_s=ctx.sql_timeout_s)
            except SQLError as err:
                # Not a UserError: one slow or broken gold query fails its own units, not the run.
                raise GoldSQLError(f"the gold SQL failed on {item.database}: {err}") from None
            self._gold[item.item_id] = (rows, time.monotonic() - t0, strict)
            if not path.is_file():
                write_csv(path, columns, rows)
        rows, seconds, strict = self._gold[item.item_id]
        return path, rows, seconds, strict

    async def score(self, item: EvalItem, response: Response, ctx: ScoringContext) -> dict[str, Score]:
        return await asyncio.to_thread(self._score_sync, item, response, ctx)

    def _score_sync(self, item: EvalItem, response: Response, ctx: ScoringContext) -> dict[str, Score]:
        from datamind_ext.rewards import compare_tables

        gold_path, gold_rows, gold_s, gold_decodes = self.gold(item, ctx)
        if response.trajectory is not None and final_answer(response) is None:
            # An agent run that never answered scores 0, as in the paper (the answer names the CSV).
            return {
                "paper": Score(correct=False, value=0.0, scorer=PAPER_LABEL, reason="no final answer"),
                "official": Score(correct=False, value=0.0, scorer=OFFICIAL_LABEL, reason="no final answer"),
            }
        sql = extract_sql(response)
        pred_rows: list[tuple] | None = None
        sql_error: str | None = None
        ex_error: str | None = None  # why evaluation.py would score 0 although the query ran
        pred_csv: Path | None = Path(response.result_csv) if response.result_csv else None
        if sql is not None:
            t0 = time.monotonic()
            try:
                try:
                    columns, pred_rows = run_query(item.database or "", sql, timeout_s=ctx.sql_timeout_s,
                                                   strict_text=True)
                except UndecodableText as err:
                    ex_error = f"{err} (evaluation.py fails on it)"
                    columns, pred_rows = run_query(item.database or "", sql, timeout_s=ctx.sql_timeout_s)
                pred_s = time.monotonic() - t0
                if pred_s + gold_s > BIRD_EX_TIMEOUT_S:
                    ex_error = f"predicted + gold query took {pred_s + gold_s:.1f} s > {BIRD_EX_TIMEOUT_S:g} s"
                if pred_csv is None or not pred_csv.is_file():
                    pred_csv = write_csv(
                        ctx.work_dir / "bird_pred" / f"{_safe(item.item_id)}.run{response.run}.csv", columns, pred_rows
                    )
            except SQLError as err:
                sql_error = str(err)
        if not gold_decodes:
            ex_error = "the gold result holds text that is not UTF-8 (evaluation.py fails on it)"
        if pred_csv is not None and pred_csv.is_file():
            match = compare_tables(str(pred_csv), str(gold_path), abs_tol=1e-2)
            paper = Score(
                correct=bool(match.correct), value=float(bool(match.correct)), scorer=PAPER_LABEL,
                reason=str(match.reason), detail={"pred_csv": str(pred_csv), "gold_csv": str(gold_path)},
            )
        else:
            why = sql_error or ("result CSV not found: " + str(pred_csv) if pred_csv else "no result table or SQL")
            paper = Score(correct=False, value=0.0, scorer=PAPER_LABEL, reason=why)
        if pred_rows is not None and ex_error is None:
            same = set(pred_rows) == set(gold_rows)
            official = Score(
                correct=same, value=float(same), scorer=OFFICIAL_LABEL,
                reason="row sets equal" if same else "row sets differ", detail={"sql": sql},
            )
        else:
            official = Score(
                correct=False, value=0.0, scorer=OFFICIAL_LABEL,
                reason=ex_error or sql_error or "no SQL to execute", detail={"sql": sql},
            )
        return {"paper": paper, "official": official}


def _safe(item_id: str) -> str:
    return re.sub(r"[^\w.-]", "_", item_id)
