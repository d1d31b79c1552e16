"""``datamind-ext run RECIPE key=value …``: overrides of recipe.yaml, and missing inputs failing in --dry-run."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamind_ext.cli.main import main as cli_main
from datamind_ext.recipes.runner import Recipe, rl_command, run_recipe

ROOT = Path(__file__).resolve().parents[1]


def test_overrides_change_the_printed_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    lines: list[str] = []
    run_recipe(ROOT / "recipes" / "datamind-14b", run_dir=tmp_path, dry_run=True, from_stage="rl", to_stage="rl",
               log=lines.append, overrides=["rl.overrides=[trainer.nnodes=1,trainer.n_gpus_per_node=8]"])
    rl = next(line for line in lines if "verl.trainer.main_ppo" in line)
    assert rl.endswith("trainer.nnodes=1 trainer.n_gpus_per_node=8")
    assert "TENSORBOARD_DIR=" + str(tmp_path / "rl" / "tensorboard") in rl  # logs land in the run folder


def test_overridden_data_folder_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    r = Recipe(ROOT / "recipes" / "quickstart", run_dir=tmp_path, overrides=["synth.data=data/samples", "eval.k=5"])
    assert (r.spec.synth.data, r.spec.eval.k) == ("data/samples", 5)
    assert rl_command(r).env["TENSORBOARD_DIR"] == str(tmp_path / "rl" / "tensorboard")


def test_missing_data_folder_fails_in_dry_run_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    assert cli_main(["run", "recipes/datamind-7b", "--dry-run", "--run-dir", str(tmp_path), "--to", "synth"]) == 2
    err = capsys.readouterr().err.strip()
    assert "input folder(s) not found: synth.data=data/files" in err and "\n" not in err
    # pointing synth.data at a folder that exists lets the dry run print the synthesis commands
    assert cli_main(["run", "recipes/datamind-7b", "synth.data=data/samples/files", "--dry-run",
                     "--run-dir", str(tmp_path), "--to", "synth"]) == 0
    assert "--data " + str(ROOT / "data" / "samples" / "files") in capsys.readouterr().out


@pytest.mark.parametrize("bad, message", [("eval.k", "must be key=value"), ("eval.nope=1", "unknown key 'eval.nope'"),
                                          ("eval.k=zero", "eval.k"),
                                          ("eval.checkpoint_sets={rl: [nope]}", "no evaluated set named nope"),
                                          ("eval.checkpoint_sets={rl: []}", "eval.checkpoint_sets.rl is empty")])
def test_bad_overrides_are_one_line_errors(bad: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["run", str(ROOT / "recipes" / "quickstart"), bad, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err
