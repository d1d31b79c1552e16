import json
import subprocess
import sys

import pytest

from datamind_ext.cli.main import main
from datamind_ext.config import StrictModel, load_config
from datamind_ext.errors import UserError


class Demo(StrictModel):
    timeout_s: float = 30.0
    rollouts_per_prompt: int = 4


def test_unknown_key_is_named(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("timeout_s: 5\nrollout_per_prompt: 3\n")
    with pytest.raises(UserError, match="unknown key 'rollout_per_prompt'"):
        load_config(Demo, cfg)


def test_bad_value_and_missing_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("timeout_s: soon\n")
    with pytest.raises(UserError, match="timeout_s"):
        load_config(Demo, cfg)
    with pytest.raises(UserError, match="not found"):
        load_config(Demo, tmp_path / "missing.yaml")


def test_cli_user_error_is_one_line(capsys, monkeypatch):
    def boom(args):
        raise UserError("data file not found: x.csv")

    monkeypatch.setattr("datamind_ext.cli.doctor.run", boom)
    assert main(["doctor"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "datamind-ext doctor: error: data file not found: x.csv"


def test_cli_does_not_import_frameworks():
    code = "import sys; from datamind_ext.cli.main import build_parser; build_parser(); print('verl' in sys.modules, 'llamafactory' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_doctor_reads_registrations_back():
    proc = subprocess.run([sys.executable, "-m", "datamind_ext", "doctor", "--json"], capture_output=True, text=True, timeout=600)
    report = json.loads(proc.stdout)
    assert report["packages"]["verl"] == "0.9.1"
    assert report["packages"]["llamafactory"] == "0.9.5"
    assert report["packages"]["transformers"] == "5.5.4"
    assert "registered" in report["verl"], report["verl"]
    assert "registered" in report["llamafactory"], report["llamafactory"]
    assert proc.returncode == (1 if report["problems"] else 0)
    assert report["problems"] == [], report["problems"]
