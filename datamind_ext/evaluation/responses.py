"""Reading responses produced elsewhere, in the formats other harnesses write.

Accepted: JSONL (one object a line) or a JSON list (BIRD also: its ``predict_dev.json``, see
:mod:`datamind_ext.evaluation.bird_predictions`). Each object names its item with ``id`` (or
``item_id``); optional ``run`` (0-based, for k runs). The prediction is read from exactly one
documented key, chosen by the record's format:

==========================  ===========================================================
format                      prediction key
==========================  ===========================================================
this project's responses    ``text``, or the ``trajectory`` / ``messages`` transcript
DABench (official)          ``response``
QRData                      ``pred``
TableBench inference files  ``prediction``
BIRD                        ``sql`` or ``result_csv`` (relative paths: from the file's folder)
==========================  ===========================================================

``--field NAME`` names the key instead. No other key is ever read as the answer: released
result files keep the *gold* in ``answer`` (TableBench) and a reader that fell back to it
scored every record correct. A record whose prediction key is missing, null or not a string
is kept and scored wrong, with the reason in ``void_reason``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datamind_ext.errors import UserError
from datamind_ext.evaluation.files import read_json, read_jsonl
from datamind_ext.evaluation.items import Response

#: Text prediction keys, one per supported format (see the module docstring).
TEXT_KEYS = ("text", "response", "pred", "prediction")
TRANSCRIPT_KEYS = ("trajectory", "messages")
SQL_KEYS = ("sql", "result_csv")
PREDICTION_KEYS = (*TEXT_KEYS, *TRANSCRIPT_KEYS, *SQL_KEYS)


def _messages(value: Any, key: str, where: str) -> list[dict[str, str]]:
    if not (isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value)):
        raise UserError(f"{where}: '{key}' must be a list of {{role, content}} objects")
    return [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in value]


def _void(obj: dict[str, Any], key: str) -> str:
    """Why ``obj[key]`` is not a usable prediction."""
    if key not in obj:
        return f"no prediction: field {key!r} is missing"
    if obj[key] is None:
        return f"no prediction: field {key!r} is null"
    if isinstance(obj[key], str):
        return f"no prediction: field {key!r} is empty"
    return f"no prediction: field {key!r} is a {type(obj[key]).__name__}, not a string"


def _text_key(obj: dict[str, Any], where: str, file_key: str | None = None) -> str | None:
    """The one text key of this record's format (``file_key``, the file's, if it has none)."""
    present = [k for k in TEXT_KEYS if k in obj] or ([file_key] if file_key else [])
    if len(present) > 1:
        # Our own dump writes text "" beside a transcript or sql; other formats use one key.
        present = [k for k in present if obj.get(k) not in (None, "")] or present[:1]
    if len(present) > 1:
        raise UserError(f"{where}: fields {', '.join(map(repr, present))} could each be the prediction; "
                        "name it with --field")
    return present[0] if present else None


def response_from_record(
    obj: dict[str, Any], where: str, base_dir: Path, *, field: str | None = None, file_key: str | None = None
) -> Response:
    """One :class:`Response` from one record of a responses file.

    ``field``: the prediction key the user named; ``file_key``: the text key the file's other
    records use (so a record lacking it is reported as missing that key).
    """
    item_id = obj.get("item_id", obj.get("id"))
    if item_id is None:
        raise UserError(f"{where}: missing field 'id' (the benchmark item the response answers)")
    run = obj.get("run", 0)
    if not isinstance(run, int) or run < 0:
        raise UserError(f"{where}: 'run' must be a non-negative integer, got {run!r}")
    resp = Response(
        item_id=str(item_id),
        run=run,
        error=obj.get("error") if isinstance(obj.get("error"), str) else None,
        meta=obj.get("meta") if isinstance(obj.get("meta"), dict) else {},
        void_reason=obj.get("void_reason") if isinstance(obj.get("void_reason"), str) else None,
    )
    if field is not None:
        keys = [field]
    else:
        transcript = next((k for k in TRANSCRIPT_KEYS if obj.get(k) is not None), None)
        keys = [k for k in (transcript or _text_key(obj, where, file_key), *SQL_KEYS) if k is not None]
    for key in keys:
        value = obj.get(key)
        if key in TRANSCRIPT_KEYS or (field is not None and isinstance(value, list)):
            if value is not None:
                resp.trajectory = _messages(value, key, where)
        elif not isinstance(value, str):
            continue
        elif key == "sql":
            resp.sql = value
        elif key == "result_csv":
            resp.result_csv = value if Path(value).is_absolute() else str(base_dir / value)
        else:
            resp.text = value
    has_prediction = resp.trajectory is not None or resp.sql is not None or resp.result_csv is not None
    if not has_prediction and resp.void_reason is None and resp.error is None:
        text_key = keys[0] if keys and keys[0] not in SQL_KEYS else None
        sql_key = next((k for k in SQL_KEYS if k in obj), None)
        if text_key is None and sql_key is not None:
            resp.void_reason = _void(obj, sql_key)
        elif text_key is None:
            resp.void_reason = f"no prediction: none of the fields {', '.join(PREDICTION_KEYS)}"
        elif not (isinstance(obj.get(text_key), str) and obj[text_key].strip()):
            resp.void_reason = _void(obj, text_key)
    return resp


def _records(path: Path) -> list[tuple[str, Any]]:
    """(where, object) for every record of a JSON list or JSONL file."""
    if path.suffix == ".json":
        data = read_json(path)
        if isinstance(data, dict):
            from datamind_ext.evaluation.bird_predictions import bird_prediction_records

            return [(f"{path}: key {k!r}", obj) for k, obj in bird_prediction_records(data, path)]
        if not isinstance(data, list):
            raise UserError(f"{path}: expected a JSON list of responses (or use .jsonl, one object a line)")
        return [(f"{path}: record {i}", obj) for i, obj in enumerate(data)]
    return [(f"{path}:{n}", obj) for n, obj in read_jsonl(path)]


def read_responses(
    path: Path, known_ids: set[str], *, field: str | None = None, dropped_ids: set[str] | None = None,
    skipped: list[str] | None = None,
) -> list[Response]:
    """Every response in ``path``; ids the benchmark does not have and repeats are errors.

    Responses to ``dropped_ids`` (questions the benchmark's loader leaves out, e.g. TableBench's
    chart generation) are skipped and their ids appended to ``skipped``.
    """
    if not path.exists() or path.is_dir():  # not is_file(): a pipe (<(...)) is fine
        raise UserError(f"responses file not found: {path}")
    records = _records(path)
    for where, obj in records:
        if not isinstance(obj, dict):
            raise UserError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    file_keys = sorted({k for _, obj in records for k in TEXT_KEYS if obj.get(k) not in (None, "")})
    if len(file_keys) > 1 and field is None:
        raise UserError(f"{path}: records use different prediction fields ({', '.join(file_keys)}); "
                        "name the one holding the model's answer with --field")
    out: list[Response] = []
    seen: dict[tuple[str, int], str] = {}
    for where, obj in records:
        resp = response_from_record(obj, where, path.parent, field=field, file_key=(file_keys or [None])[0])
        if dropped_ids and resp.item_id in dropped_ids and resp.item_id not in known_ids:
            if skipped is not None:
                skipped.append(resp.item_id)
            continue
        if resp.item_id not in known_ids:
            raise UserError(f"{where}: id {resp.item_id!r} is not a question of this benchmark (wrong --data?)")
        key = (resp.item_id, resp.run)
        if key in seen:
            raise UserError(f"{where}: a second response for id {resp.item_id!r} run {resp.run} (first at {seen[key]})")
        seen[key] = where
        out.append(resp)
    if not out:
        raise UserError(f"{path}: no responses")
    if field is not None and all(r.void_reason for r in out):
        raise UserError(f"{path}: no record has a string in field {field!r}")
    if field is None and all(r.void_reason and "none of the fields" in r.void_reason for r in out):
        raise UserError(f"{path}: no record has a prediction field ({', '.join(PREDICTION_KEYS)}); "
                        "name the one holding the model's answer with --field")
    return out


def dump_response(resp: Response) -> str:
    """The JSONL line for one response, as :func:`read_responses` reads it back."""
    return json.dumps(resp.model_dump(), ensure_ascii=False)
