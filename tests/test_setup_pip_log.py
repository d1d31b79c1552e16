"""scripts/pip_logged.sh: a failed pip install in a setup says why, retries once, and fails the setup.

Why: CI's setup once ended with only make's "Error 1" to read, pip's error having scrolled out of
sight. These tests run the helper on stand-in pip commands (no install, no network)."""

from __future__ import annotations

import subprocess
from pathlib import Path

HELPER = Path(__file__).resolve().parents[1] / "scripts" / "pip_logged.sh"


def _run(tmp_path: Path, command: str) -> subprocess.CompletedProcess[str]:
    script = f'set -euo pipefail; source "{HELPER}"; pip_logged t "{tmp_path}/venv/pip-install.log" {command}; echo AFTER'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_a_failing_install_prints_its_error_and_status_retries_once_and_stops_the_setup(tmp_path):
    counter = tmp_path / "attempts"
    fake_pip = (f"bash -c 'echo x >> {counter}; echo Collecting torch==9; echo \"cache: ${{PIP_NO_CACHE_DIR:-on}}\"; "
                "echo \"ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device\" >&2; exit 3'")
    out = _run(tmp_path, fake_pip)
    assert out.returncode == 3
    assert "AFTER" not in out.stdout
    assert counter.read_text().count("x") == 2  # one retry, no more
    assert "No space left on device" in out.stdout  # pip's stderr shown live, in order with its progress
    assert "exit status 3, attempt 1 of 2" in out.stderr and "attempt 2 of 2" in out.stderr
    assert "free disk" in out.stderr
    assert "cache: 1" in (tmp_path / "venv" / "pip-install.log").read_text()  # the retry ran without pip's cache


def test_a_successful_install_shows_progress_only_and_keeps_the_whole_log(tmp_path):
    fake_pip = "bash -c 'echo Collecting six==1.17.0; echo some detail; echo Successfully installed six-1.17.0'"
    out = _run(tmp_path, fake_pip)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["Collecting six==1.17.0", "Successfully installed six-1.17.0", "AFTER"]
    assert "some detail" in (tmp_path / "venv" / "pip-install.log").read_text()
