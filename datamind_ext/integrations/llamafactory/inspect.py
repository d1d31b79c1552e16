"""Read back, from LLaMA-Factory's own registries, what datamind_ext registered (JSON on stdout)."""

from __future__ import annotations

from typing import Any

from datamind_ext.integrations.readback import OURS, main, report, target_of


def read_back() -> dict[str, Any]:
    import llamafactory
    from llamafactory.data.converter import DATASET_CONVERTERS
    from llamafactory.data.template import TEMPLATES

    from datamind_ext.integrations.llamafactory.registration import COMPONENT_MODULES, register_all

    failures: dict[str, str] = {}
    try:
        register_all()
    except Exception as err:  # noqa: BLE001 - reported by doctor
        failures["register_all"] = f"{type(err).__name__}: {err}"
    found = {
        "dataset_converter": {k: target_of(v) for k, v in DATASET_CONVERTERS.items() if OURS in target_of(v)},
        # Templates are instances (no module to read); ours are named with our prefix.
        "template": {k: f"{type(v).__module__}.{type(v).__name__}" for k, v in TEMPLATES.items() if k.startswith("datamind")},
    }
    return report("llamafactory", llamafactory.__version__, COMPONENT_MODULES, failures, found)


if __name__ == "__main__":
    main(read_back)
