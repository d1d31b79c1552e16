"""Registration of every datamind_ext component into verl's registries.

Each component lives in its own module of this package with a ``register()`` function that is
idempotent; ``COMPONENT_MODULES`` lists them. verl loads plugins while ``import verl`` runs and
swallows their errors at DEBUG level, so a failure here is logged at ERROR with the component's
name and kept in ``FAILURES`` for ``datamind-ext doctor`` (which exits non-zero).
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback

log = logging.getLogger("datamind_ext.verl")

#: Modules of this package with a ``register()``; added to as components land.
COMPONENT_MODULES: tuple[str, ...] = ("agent_loop", "cpu_rollout", "rewards", "loss")

FAILURES: dict[str, str] = {}
_done = False


def register_all() -> dict[str, str]:
    """Register every component once per process; return ``{module: error}`` for failures."""
    global _done
    if _done:
        return FAILURES
    _done = True
    for name in COMPONENT_MODULES:
        mod = f"datamind_ext.integrations.verl.{name}"
        try:
            importlib.import_module(mod).register()
        except Exception as err:  # noqa: BLE001 - reported loudly, never hidden like verl's DEBUG log
            FAILURES[mod] = f"{type(err).__name__}: {err}"
            msg = f"datamind_ext: registering {mod} into verl failed: {err}\n{traceback.format_exc()}"
            log.error(msg)
            print(msg, file=sys.stderr)
    return FAILURES
