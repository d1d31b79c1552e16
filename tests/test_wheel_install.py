"""A wheel works without the checkout: build it, install it into a fresh virtual environment, and
run ``datamind-ext doctor`` and a replay rollout from a folder outside the checkout.

This is how verl's Ray workers on a cluster get the package, so nothing the code reads at run time
may live outside it (the system prompts, taxonomy and knowledge are package data).

The fresh environment gets its third-party dependencies cheaply: a ``.pth`` file appends this
environment's site-packages to its ``sys.path`` (a plain path line does not run this
environment's own ``.pth`` hooks, so the editable install of the checkout stays invisible); the
wheel itself is installed into the fresh environment and comes first on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "samples" / "files" / "retail_sales.csv"

pytestmark = pytest.mark.slow


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    """(fresh venv's bin folder, environment without PYTHONPATH, a working folder outside the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "datamind_ext", src / "datamind_ext",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    dist = root / "dist"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                  "-q", "-w", str(dist), str(src)], root, env)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("datamind_ext-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("datamind_ext/data/prompts/system_files.md", "datamind_ext/data/prompts/system_database.md",
                    "datamind_ext/data/taxonomy/categories.yaml", "datamind_ext/data/knowledge/workflows.yaml"):
        assert shipped in names, f"{shipped} missing from the wheel"
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root, env)
    assert made.returncode == 0, made.stderr[-2000:]
    py = venv / "bin" / "python"
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root, env)
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib.stdout.strip()) / "zz_shared_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    installed = _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                      str(wheel)], root, env)
    assert installed.returncode == 0, installed.stderr[-3000:]
    work = root / "work"
    work.mkdir()
    return venv / "bin", env, work


def test_wheel_reads_its_own_package_data(wheel_env: tuple[Path, dict[str, str], Path]) -> None:
    bin_dir, env, work = wheel_env
    code = ("import json, datamind_ext, datamind_ext.agent.prompts as p, datamind_ext.synthesis.taxonomy as t;"
            "print(json.dumps([datamind_ext.__file__, str(p.PROMPTS_DIR), len(t.load_taxonomy()),"
            " p.system_prompt(['a.csv'])[:40]]))")
    out = _run([str(bin_dir / "python"), "-c", code], work, env)
    assert out.returncode == 0, out.stderr[-3000:]
    module, prompts, n_categories, prompt = json.loads(out.stdout)
    venv = str(bin_dir.parent)
    assert module.startswith(venv) and prompts.startswith(venv), (module, prompts)  # not the checkout
    assert n_categories == 18 and prompt


def test_wheel_doctor_and_replay_rollout(wheel_env: tuple[Path, dict[str, str], Path]) -> None:
    bin_dir, env, work = wheel_env
    doctor = _run([str(bin_dir / "datamind-ext"), "doctor"], work, env)
    assert doctor.returncode == 0, doctor.stdout[-3000:] + doctor.stderr[-3000:]
    shutil.copy(SAMPLE, work / "retail_sales.csv")
    n_rows = sum(1 for _ in SAMPLE.open(encoding="utf-8")) - 1
    row = {"id": "wheel", "files": ["retail_sales.csv"], "messages": [
        {"role": "user", "content": "How many rows?"},
        {"role": "assistant", "content": "<code>\n```python\nimport pandas as pd\n"
                                         "print(len(pd.read_csv('retail_sales.csv')))\n```\n</code>"},
        {"role": "user", "content": f"<interpreter>\n{n_rows}\n</interpreter>"},
        {"role": "assistant", "content": f"<answer>{n_rows}</answer>"},
    ]}
    (work / "trajs.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    rollout = _run([str(bin_dir / "datamind-ext"), "rollout", "--policy", "replay", "--data", "trajs.jsonl",
                    "--out", "out.jsonl"], work, env)
    assert rollout.returncode in (0, 1), rollout.stderr[-3000:]  # 1: an observation differs (formatting)
    summary = json.loads(rollout.stdout.strip().splitlines()[-1])
    assert summary["rows"] == 1 and summary["void"] == 0 and summary["failed"] == 0, summary
    (out,) = [json.loads(line) for line in (work / "out.jsonl").read_text().splitlines()]
    assert out["answer"] == str(n_rows)
    replayed = next(m["content"] for m in out["messages"] if m["content"].startswith("<interpreter>"))
    assert str(n_rows) in replayed  # the wheel's interpreter really ran the cell
