"""Pydantic base for every configuration block, and a YAML loader with one-line errors.

Unknown keys are errors that name the key (with its dotted path), so a typo never silently
falls back to a default, the failure mode of verl's legacy reward keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from datamind_ext.errors import UserError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """A config block: unknown keys are rejected, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def describe_validation_error(err: ValidationError, where: str) -> str:
    """Turn pydantic's multi-line report into one line naming each bad key."""
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(root)"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key {key!r}")
        else:
            parts.append(f"{key}: {e['msg']}")
    return f"{where}: " + "; ".join(parts)


def parse_config(model: type[M], data: Any, where: str) -> M:
    """Validate ``data`` against ``model``; raise :class:`UserError` naming the bad keys."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as err:
        raise UserError(describe_validation_error(err, where)) from None


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file, with a one-line error for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p}")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{p}: not valid YAML{at}: {getattr(err, 'problem', err)}") from None


def load_config(model: type[M], path: str | Path) -> M:
    """Load and validate a YAML config file."""
    return parse_config(model, read_yaml(path), str(path))
