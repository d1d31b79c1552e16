"""Running a benchmark: answers (from the agent or a file) -> scores -> results, resumably.

Every (item, run) pair is one unit of work. Units run concurrently under a bound; each writes
its response (agent runs) and then its result as one JSONL line the moment it finishes, so a
killed run loses at most the units in flight and a rerun with the same ``--out`` continues
where it stopped. Units whose result recorded an error (agent or scorer failure) are redone, and
so are units whose response changed (responses mode). ``run.json`` records what the folder
holds (benchmark, mode, model or responses file, judge); resuming with another is an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from datamind_ext.atomic_files import write_text_atomic
from datamind_ext.errors import UserError
from datamind_ext.evaluation.answers import final_answer
from datamind_ext.evaluation.benchmark import Benchmark, ScoringContext
from datamind_ext.evaluation.items import EvalItem, ItemResult, Response, Score
from datamind_ext.evaluation.plots import plot_benchmark
from datamind_ext.evaluation.report import summarize, write_summary
from datamind_ext.evaluation.responses import dump_response, response_from_record

Generate = Callable[[EvalItem, int], Awaitable[Response]]
RESULTS_FILE = "results.jsonl"
RESPONSES_FILE = "responses.jsonl"
RUN_FILE = "run.json"
#: What must not change between a run and its resumption in the same folder.
IDENTITY_KEYS = ("benchmark", "mode", "model", "responses", "judge", "settings_sha")
#: Everything a run writes in its folder (``--restart`` removes these and nothing else).
RUN_OUTPUTS = (RESULTS_FILE, RESPONSES_FILE, RUN_FILE, "summary.json", "summary.md", "work")


def settings_digest(settings: dict[str, Any]) -> str:
    """A short hash of the run settings that change answers or scores (recorded in run.json)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def clear_run(out_dir: Path) -> None:
    """Remove a previous run's outputs from ``out_dir`` (``--restart``), leaving other files alone."""
    import shutil

    for name in RUN_OUTPUTS:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for plot in out_dir.glob("*_pass_at_1.png"):
        plot.unlink()


def _changed_settings(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ (for the refusal message)."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [c for key in sorted(set(before) | set(after))
                for c in _changed_settings(before.get(key), after.get(key), f"{prefix}{key}.")]
    return [] if before == after else [f"{prefix.rstrip('.')} {before!r} -> {after!r}"]


def response_sha(resp: Response) -> str:
    """A short hash of a response: a result is reused only for the very response it scored."""
    return hashlib.sha256(dump_response(resp).encode("utf-8")).hexdigest()[:16]


def check_identity(out_dir: Path, identity: dict[str, Any]) -> None:
    """Refuse to mix two different runs (another model, responses file or judge) in one folder."""
    path = out_dir / RUN_FILE
    if path.is_file():
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            before = {}
        changed = [k for k in IDENTITY_KEYS if k != "settings_sha" and k in before
                   and before.get(k) != identity.get(k)]
        if changed:
            what = ", ".join(f"{k} {before.get(k)!r} -> {identity.get(k)!r}" for k in changed)
            raise UserError(f"{out_dir} holds another run ({what}); use a new --out folder (or --restart)")
        if before.get("settings_sha") != identity.get("settings_sha"):
            diff = _changed_settings(before.get("settings") or {}, identity.get("settings") or {})
            what = "; ".join(diff[:4]) or f"settings hash {before.get('settings_sha')} -> {identity.get('settings_sha')}"
            raise UserError(f"{out_dir} holds a run made with other settings ({what}); resuming would mix them: "
                            "use a new --out folder, or --restart to start over")
    record = {k: identity.get(k) for k in IDENTITY_KEYS}
    record["settings"] = identity.get("settings")
    path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")


def void_scores(bench: Benchmark, reason: str) -> dict[str, Score]:
    """Every scorer's verdict on a response with no answer: wrong (graded metrics 0), with why."""
    return {
        name: Score(correct=None if name in bench.graded_scorers else False, value=0.0,
                    scorer=f"{bench.name}-{name} (no answer)", reason=reason)
        for name in bench.scorers
    }


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """Objects of a JSONL file we wrote; a torn last line (killed mid-write) is dropped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            rows.append(obj)
    return rows


def load_results(out_dir: Path) -> dict[tuple[str, int], ItemResult]:
    """Results already in ``out_dir``, the last line per (item, run) winning."""
    out: dict[tuple[str, int], ItemResult] = {}
    for obj in _read_lines(out_dir / RESULTS_FILE):
        try:
            r = ItemResult.model_validate(obj)
        except ValueError:
            continue
        out[(r.item_id, r.run)] = r
    return out


def _rewrite(path: Path, lines: list[str]) -> None:
    write_text_atomic(path, "".join(line + "\n" for line in lines))


async def run_benchmark(
    bench: Benchmark,
    items: list[EvalItem],
    out_dir: Path,
    ctx: ScoringContext,
    *,
    k: int,
    generate: Generate | None = None,
    responses: list[Response] | None = None,
    concurrency: int = 8,
    progress: bool = True,
    notes: list[str] | None = None,
    run_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Answer (``generate``) or take (``responses``) every unit, score it, write the report.

    Returns the summary dict (also written as summary.json / summary.md, and a PNG plot).
    """
    if (generate is None) == (responses is None):
        raise ValueError("give exactly one of generate= and responses=")
    if bench.requires_judge and ctx.judge is None:
        raise UserError(f"{bench.name} is scored only by an LLM judge: pass --judge-model and --judge-base-url")
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    run_info = dict(run_info or {})
    check_identity(out_dir, {"benchmark": bench.name, **run_info})
    by_id = {it.item_id: it for it in items}
    cached: dict[tuple[str, int], Response] = {}
    if generate is not None:
        for obj in _read_lines(out_dir / RESPONSES_FILE):
            try:
                resp = response_from_record(obj, str(out_dir / RESPONSES_FILE), out_dir)
            except UserError:
                continue
            if resp.error is None:
                cached[(resp.item_id, resp.run)] = resp
        _rewrite(out_dir / RESPONSES_FILE, [dump_response(r) for r in cached.values()])
        units = [(it, run, cached.get((it.item_id, run))) for it in items for run in range(k)]
    else:
        units = [(by_id[r.item_id], r.run, r) for r in responses or []]
        k = max([k, *(r.run + 1 for r in responses or [])])

    # Resume: keep a finished result if it scored the same response; redo errors and changes.
    wanted = {(it.item_id, run): resp for it, run, resp in units}
    done: dict[tuple[str, int], ItemResult] = {}
    for key, r in load_results(out_dir).items():
        if r.error is not None:
            continue
        if key in wanted and wanted[key] is not None and r.response_sha != response_sha(wanted[key]):  # type: ignore[arg-type]
            continue
        done[key] = r  # results of units outside this run (another k, --limit) are kept, not reported
    _rewrite(out_dir / RESULTS_FILE, [r.model_dump_json() for r in done.values()])
    todo = [u for u in units if (u[0].item_id, u[1]) not in done]

    # Line-sized appends flushed per unit: cheap enough to do on the event loop.
    results_f = open(out_dir / RESULTS_FILE, "a", encoding="utf-8")  # noqa: ASYNC230, SIM115 - closed in finally
    responses_f = (
        open(out_dir / RESPONSES_FILE, "a", encoding="utf-8")  # noqa: ASYNC230, SIM115 - closed in finally
        if generate is not None
        else None
    )
    sem = asyncio.Semaphore(max(1, concurrency))
    bar = _progress(len(units), len(units) - len(todo), bench.name, progress)

    async def one(item: EvalItem, run: int, resp: Response | None) -> None:
        async with sem:
            if resp is None:
                assert generate is not None
                resp = await generate(item, run)
                if responses_f is not None:
                    responses_f.write(dump_response(resp) + "\n")
                    responses_f.flush()
            error = resp.error
            try:
                if error is not None:
                    scores = {}
                elif resp.void_reason is not None:
                    scores = void_scores(bench, resp.void_reason)
                else:
                    scores = await bench.score(item, resp, ctx)
            except UserError:
                raise
            except Exception as err:  # noqa: BLE001 - one bad unit must not stop the run
                scores, error = {}, f"scoring failed: {type(err).__name__}: {err}"
            result = ItemResult(
                benchmark=bench.name,
                item_id=item.item_id,
                run=run,
                categories=item.categories,
                answer=final_answer(resp),
                gold=item.gold,
                scores=scores,
                error=error,
                void_reason=resp.void_reason if error is None else None,
                turns=resp.meta.get("turns"),
                response_sha=response_sha(resp),
            )
            results_f.write(result.model_dump_json() + "\n")
            results_f.flush()
            bar.update(1)

    try:
        async with asyncio.TaskGroup() as tg:  # the first user error cancels the other units
            for it, run, resp in todo:
                tg.create_task(one(it, run, resp))
    except* UserError as group:
        raise group.exceptions[0] from None
    finally:
        results_f.close()
        if responses_f is not None:
            responses_f.close()
        bar.close()

    results = [r for key, r in sorted(load_results(out_dir).items()) if key in wanted]
    summary = summarize(bench, results, k=k, item_categories={it.item_id: it.categories for it in items},
                        notes=list(notes or []), run_info=run_info)
    write_summary(out_dir, summary)
    plot_benchmark(summary, out_dir / f"{bench.name}_pass_at_1.png")
    return summary


def _progress(total: int, initial: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="answer", disable=not enabled, dynamic_ncols=True)
