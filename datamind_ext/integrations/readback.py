"""What both frameworks' read-backs share (``integrations/verl/inspect.py``, ``integrations/llamafactory/inspect.py``).

``datamind-ext doctor`` runs each read-back in its own subprocess (verl and LLaMA-Factory are
never imported together) and reads one JSON object from it: the framework's version, the
component modules we expected to register, the registration failures, and what the framework's
own registries now hold that points into this package.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

OURS = "datamind_ext"


def target_of(obj: Any) -> str:
    """The import path a registry entry points to (a class, function, fqdn string or config dict)."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        return str(obj.get("_target_", "")) or " ".join(target_of(v) for v in obj.values())
    mod = getattr(obj, "__module__", "") or ""
    return f"{mod}.{getattr(obj, '__qualname__', getattr(obj, '__name__', ''))}"


def report(framework: str, version: str, expected_modules: Sequence[str], failures: dict[str, str],
           registered: dict[str, dict[str, str]]) -> dict[str, Any]:
    return {f"{framework}_version": version, "expected_modules": list(expected_modules), "failures": failures,
            "registered": registered}


def main(read_back: Callable[[], dict[str, Any]]) -> None:
    print(json.dumps(read_back()))
