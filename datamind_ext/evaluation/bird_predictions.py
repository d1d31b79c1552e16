"""BIRD's published prediction format, ``predict_dev.json``, read as it is released.

BIRD's evaluation code reads a JSON object mapping each question's index (as a string) to
``"SQL\\t----- bird -----\\tdb_id"``; it splits on the separator and runs the first part on
the database. Here each entry becomes one responses-file record ``{id, sql}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datamind_ext.errors import UserError

BIRD_SEPARATOR = "\t----- bird -----\t"


def bird_prediction_records(data: dict[str, Any], path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(key, {"id", "sql"}) for every entry of a ``predict_dev.json`` object."""
    out = []
    for key, value in data.items():
        if isinstance(value, str):
            sql = value.split(BIRD_SEPARATOR)[0] if BIRD_SEPARATOR in value else value
            out.append((key, {"id": key, "sql": sql}))
        elif value is None:
            out.append((key, {"id": key, "sql": None}))
        else:
            raise UserError(f"{path}: key {key!r}: expected 'SQL\\t----- bird -----\\tdb_id', got "
                            f"{type(value).__name__} (is this BIRD's predict_dev.json?)")
    return out
