"""Registration of datamind_ext's dataset converter(s) and template(s) into LLaMA-Factory.

LLaMA-Factory has no entry points: our SFT entry calls :func:`register_all` in-process before
``run_exp``. Components are modules of this package with an idempotent ``register()``.
"""

from __future__ import annotations

import importlib

#: Modules of this package with a ``register()``; added to as components land.
COMPONENT_MODULES: tuple[str, ...] = ("converter",)

_done = False


def register_all() -> None:
    global _done
    if _done:
        return
    for name in COMPONENT_MODULES:
        importlib.import_module(f"datamind_ext.integrations.llamafactory.{name}").register()
    _done = True
