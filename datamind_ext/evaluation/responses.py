"""Reading responses produced elsewhere, in the formats other harnesses write.

Accepted: JSONL (one object a line) or a JSON list. Each object names its item with ``id``
(or ``item_id``) and carries the answer as ``response`` (DABench's official format), ``pred``
(QRData's), ``text``, ``answer`` or a ``messages`` transcript; optional ``run`` (0-based, for
k runs), and for BIRD ``sql`` or ``result_csv`` (relative paths are read from the responses
file's folder). Our own ``responses.jsonl`` (written by agent runs) reads back the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datamind_ext.errors import UserError
from datamind_ext.evaluation.files import read_json, read_jsonl
from datamind_ext.evaluation.items import Response

_TEXT_KEYS = ("text", "response", "pred", "answer", "prediction")


def response_from_record(obj: dict[str, Any], where: str, base_dir: Path) -> Response:
    """One :class:`Response` from one record of a responses file."""
    item_id = obj.get("item_id", obj.get("id"))
    if item_id is None:
        raise UserError(f"{where}: missing field 'id' (the benchmark item the response answers)")
    text = next((obj[k] for k in _TEXT_KEYS if isinstance(obj.get(k), str)), "")
    messages = obj.get("trajectory") or obj.get("messages")
    if messages is not None and not (
        isinstance(messages, list) and all(isinstance(m, dict) and "role" in m for m in messages)
    ):
        raise UserError(f"{where}: 'messages' must be a list of {{role, content}} objects")
    run = obj.get("run", 0)
    if not isinstance(run, int) or run < 0:
        raise UserError(f"{where}: 'run' must be a non-negative integer, got {run!r}")
    result_csv = obj.get("result_csv")
    if isinstance(result_csv, str) and not Path(result_csv).is_absolute():
        result_csv = str(base_dir / result_csv)
    return Response(
        item_id=str(item_id),
        run=run,
        text=text,
        sql=obj.get("sql") if isinstance(obj.get("sql"), str) else None,
        result_csv=result_csv if isinstance(result_csv, str) else None,
        trajectory=[{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in messages]
        if messages
        else None,
        error=obj.get("error") if isinstance(obj.get("error"), str) else None,
        meta=obj.get("meta") if isinstance(obj.get("meta"), dict) else {},
    )


def read_responses(path: Path, known_ids: set[str]) -> list[Response]:
    """Every response in ``path``; ids the benchmark does not have and repeats are errors."""
    if not path.exists() or path.is_dir():  # not is_file(): a pipe (<(...)) is fine
        raise UserError(f"responses file not found: {path}")
    if path.suffix == ".json":
        data = read_json(path)
        if not isinstance(data, list):
            raise UserError(f"{path}: expected a JSON list of responses (or use .jsonl, one object a line)")
        records = [(i, obj) for i, obj in enumerate(data)]
        label = "record"
    else:
        records = read_jsonl(path)
        label = "line"
    out: list[Response] = []
    seen: dict[tuple[str, int], str] = {}
    for n, obj in records:
        where = f"{path}: {label} {n}" if label == "record" else f"{path}:{n}"
        if not isinstance(obj, dict):
            raise UserError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        resp = response_from_record(obj, where, path.parent)
        if resp.item_id not in known_ids:
            raise UserError(f"{where}: id {resp.item_id!r} is not a question of this benchmark (wrong --data?)")
        key = (resp.item_id, resp.run)
        if key in seen:
            raise UserError(f"{where}: a second response for id {resp.item_id!r} run {resp.run} (first at {seen[key]})")
        seen[key] = where
        out.append(resp)
    if not out:
        raise UserError(f"{path}: no responses")
    return out


def dump_response(resp: Response) -> str:
    """The JSONL line for one response, as :func:`read_responses` reads it back."""
    return json.dumps(resp.model_dump(), ensure_ascii=False)
