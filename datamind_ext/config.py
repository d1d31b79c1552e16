"""Pydantic base for every configuration block, and a YAML loader with one-line errors.

Unknown keys are errors that name the key (with its dotted path), so a typo never silently
falls back to a default, the failure mode of verl's legacy reward keys.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def apply_overrides(raw: Any, overrides: Sequence[str], where: str) -> Any:
    """``raw`` with dotted ``key=value`` overrides merged in, as ``datamind-ext sft`` applies them
    (``datamind-ext run`` to a recipe, ``datamind-ext eval`` to its run settings).

    Why OmegaConf's dot-list: it is the syntax verl and LLaMA-Factory users already type
    (``rl.overrides=[trainer.nnodes=1,...]``, ``eval.k=3``); values are parsed as YAML.
    """
    if not overrides:
        return raw
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    bad = [o for o in overrides if "=" not in o or o.startswith("=")]
    if bad:
        raise UserError(f"overrides must be key=value, got: {' '.join(bad)}")
    if not isinstance(raw, dict):
        raise UserError(f"{where}: the settings must be a mapping")
    try:
        merged = OmegaConf.merge(OmegaConf.create(raw), OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as err:
        raise UserError(f"{where}: cannot apply overrides {' '.join(overrides)}: {str(err).splitlines()[0]}") from None
    return OmegaConf.to_container(merged, resolve=False)
