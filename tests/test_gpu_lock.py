"""requirements/gpu.lock.txt agrees with what the project declares (offline; `make check-gpu-lock` asks PyPI)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_gpu_lock_pins_the_stack_setup_cfg_and_its_inputs_name() -> None:
    lock = pins(ROOT / "requirements" / "gpu.lock.txt")
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    declared = [r for extra in ("train", "vllm") for r in cfg["options.extras_require"][extra].split()]
    exact = dict(r.lower().split("==") for r in declared if "==" in r)
    assert exact and all(lock.get(name) == version for name, version in exact.items()), exact
    wanted = pins(ROOT / "scripts" / "gpu_lock.in")
    assert all(lock.get(name) == version for name, version in wanted.items()), wanted
    assert {"torch", "deepspeed", "vllm", "verl", "llamafactory", "transformers"} <= set(lock)
    # one version per package, no local builds (CPU wheels) and no URLs in a GPU lock
    lines = [ln for ln in (ROOT / "requirements" / "gpu.lock.txt").read_text().splitlines() if ln and ln[0] != "#"]
    assert len(lines) == len(lock) and not any("+" in v or "://" in v for v in lock.values())
