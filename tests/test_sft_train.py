"""``datamind-ext sft`` on CPU with the tiny model: LLaMA-Factory trains on exported
trajectories, the loss falls on a repeated small set, the loss variants are really installed,
and the checkpoint loads in transformers and through verl's loaders (the RL stage's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from datamind_ext.cli.main import main
from datamind_ext.errors import UserError
from datamind_ext.protocol import render_messages, write_jsonl
from datamind_ext.sft import export_llamafactory_dataset
from datamind_ext.sft.samples import sample_trajectories, sample_trajectory

pytest.importorskip("llamafactory")

REPO = Path(__file__).resolve().parents[1]


def _config(tmp: Path, model_path: Path, trajectories: Path, *, max_steps: int, **datamind) -> dict:
    return {
        "model_name_or_path": str(model_path), "stage": "sft", "do_train": True, "finetuning_type": "full",
        "template": "qwen", "cutoff_len": 1024, "overwrite_cache": True, "dataloader_num_workers": 0,
        "output_dir": str(tmp / "out"), "overwrite_output_dir": True, "logging_steps": 1, "save_strategy": "no",
        "report_to": "none", "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
        "learning_rate": 3.0e-3, "lr_scheduler_type": "constant", "max_steps": max_steps, "use_cpu": True,
        "bf16": False, "seed": 0, "datamind": {"trajectories": [str(trajectories)], **datamind},
    }


def _write(tmp: Path, cfg: dict) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "sft.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _losses(out_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (out_dir / "trainer_log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.fixture(scope="module")
def trajectories(tmp_path_factory) -> Path:
    """8 good trajectories, one malformed (ends on an observation) and one too long for cutoff_len 1024."""
    path = tmp_path_factory.mktemp("trajs") / "trajs.jsonl"
    good = sample_trajectories(8)
    broken = sample_trajectory(20).model_copy(update={"id": "broken"})
    broken.messages = broken.messages[:-1]
    write_jsonl(path, [*good, broken, sample_trajectory(21, n_code_turns=30)])
    return path


@pytest.fixture(scope="module")
def ce_run(tmp_path_factory, tiny_model_path, trajectories):
    """The CPU recipe, as its header says to run it (plus an output folder of the test's own)."""
    out = tmp_path_factory.mktemp("sft_ce") / "out"
    argv = ["sft", str(REPO / "recipes" / "tiny-cpu" / "sft.yaml"), f"model_name_or_path={tiny_model_path}",
            f"output_dir={out}", f"datamind.trajectories=[{trajectories}]"]
    assert main(argv) == 0
    return out


def test_sft_trains_and_loss_decreases(ce_run):
    losses = _losses(ce_run)
    assert len(losses) == 16
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses


def test_plain_llamafactory_config_is_written_for_rerunning_by_hand(ce_run):
    """The written config holds LLaMA-Factory keys only and its own parser accepts it."""
    from llamafactory.hparams import get_train_args

    cfg = yaml.safe_load((ce_run / "llamafactory_train.yaml").read_text())
    assert "datamind" not in cfg and cfg["dataset"] == "datamind"
    assert Path(cfg["dataset_dir"]) == ce_run / "datamind_dataset"
    model_args, data_args, training_args, *_ = get_train_args(cfg)
    assert data_args.dataset == ["datamind"] and training_args.output_dir == str(ce_run)


def test_sft_reports_skipped_and_dropped_trajectories(ce_run):
    report = json.loads((ce_run / "datamind_dataset" / "export_report.json").read_text())
    assert report["n_input"] == 10 and report["n_written"] == 8
    assert list(report["malformed"]) == ["broken"] and "ends_without_assistant_turn" in report["malformed"]["broken"]
    assert list(report["too_long"]) == ["sample-0-21"] and report["too_long"]["sample-0-21"] > 1024


def test_checkpoint_loads_in_transformers(ce_run, tiny_model_path, tiny_tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(ce_run)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), base.state_dict().values()))
    tok = AutoTokenizer.from_pretrained(ce_run)
    msgs = sample_trajectory(3).messages
    assert render_messages(tok, msgs).input_ids == render_messages(tiny_tokenizer, msgs).input_ids
    assert tok.eos_token == "<|im_end|>"
    ids = tok.apply_chat_template([m.model_dump() for m in msgs[:2]], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_checkpoint_loads_through_verl_loaders(ce_run):
    """The RL stage (verl's FSDP workers) reads the model with these verl utilities."""
    from transformers import AutoConfig
    from verl.utils import hf_tokenizer
    from verl.utils.model import get_generation_config, get_hf_auto_model_class

    tok = hf_tokenizer(str(ce_run))
    assert tok.pad_token_id is not None
    config = AutoConfig.from_pretrained(ce_run)
    model = get_hf_auto_model_class(config).from_pretrained(ce_run, torch_dtype=torch.float32)
    assert model.config.model_type == "qwen2"
    eos = get_generation_config(str(ce_run)).eos_token_id  # LLaMA-Factory saves it as a list
    assert tok.convert_tokens_to_ids("<|im_end|>") in (eos if isinstance(eos, list) else [eos])


def test_dft_loss_is_installed_through_the_callback(tmp_path, tiny_model_path, trajectories, ce_run):
    cfg = _config(tmp_path, tiny_model_path, trajectories, max_steps=2, loss="dft")
    assert main(["sft", str(_write(tmp_path, cfg))]) == 0
    dft, ce = _losses(tmp_path / "out"), _losses(ce_run)
    # Same data, seed and initial model: dft weights each token's NLL by p ≈ 1/vocab on a random model.
    assert 0 < dft[0] < 0.05 * ce[0]


def test_time_budget_stops_training_early_and_says_so(tmp_path, tiny_model_path, trajectories, capsys):
    cfg = _config(tmp_path, tiny_model_path, trajectories, max_steps=50, max_train_s=0.001)
    assert main(["sft", str(_write(tmp_path, cfg))]) == 0
    report = json.loads((tmp_path / "out" / "time_budget.json").read_text())
    assert report["stopped_early"] and report["steps_done"] == 1 and report["max_steps"] == 50
    assert len(_losses(tmp_path / "out")) == 1 and (tmp_path / "out" / "config.json").is_file()
    assert "time budget of 0 s reached at step 1/50" in capsys.readouterr().out


def test_bad_configs_are_one_line_user_errors(tmp_path, tiny_model_path, trajectories, capsys):
    from datamind_ext.integrations.llamafactory.sft_entry import load_sft_config, prepare_sft

    def prepare(**changes):
        cfg = _config(tmp_path, tiny_model_path, trajectories, max_steps=1)
        for k, v in changes.items():
            if v is None:
                cfg.pop(k, None)
            else:
                cfg[k] = v
        prepare_sft(*load_sft_config(_write(tmp_path, cfg)))

    with pytest.raises(UserError, match="unknown LLaMA-Factory keys: learning_rat"):
        prepare(learning_rat=1.0)
    with pytest.raises(UserError, match="train_on_prompt"):
        prepare(train_on_prompt=True)
    with pytest.raises(UserError, match="either"):
        prepare(dataset="alpaca_en")
    with pytest.raises(UserError, match="exceeds cutoff_len"):
        prepare(datamind={"trajectories": [str(trajectories)], "max_tokens": 4096})
    with pytest.raises(UserError, match="cannot be combined"):
        prepare(datamind={"trajectories": [str(trajectories)], "loss": "dft"}, use_dft_loss=True)
    with pytest.raises(UserError, match="not found"):
        prepare(datamind={"trajectories": [str(tmp_path / "missing.jsonl")]})
    with pytest.raises(UserError, match="length_batches orders the rows itself"):
        prepare(datamind={"trajectories": [str(trajectories)], "length_batches": True},
                train_sampling_strategy="group_by_length")
    # A dataset exported without a length filter would be truncated by LLaMA-Factory: refused.
    export_llamafactory_dataset(sample_trajectories(2), tmp_path / "unfiltered", name="dm")
    with pytest.raises(UserError, match="truncate"):
        prepare(datamind={}, dataset="dm", dataset_dir=str(tmp_path / "unfiltered"))
    # Through the CLI: exit code 2 and one line naming the bad key.
    cfg = _config(tmp_path, tiny_model_path, trajectories, max_steps=1)
    cfg["datamind"]["los"] = "dft"
    assert main(["sft", str(_write(tmp_path, cfg))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'los'" in err[0]


def test_prepare_only_prints_the_report_without_training(tmp_path, tiny_model_path, trajectories, capsys):
    cfg = _config(tmp_path, tiny_model_path, trajectories, max_steps=1)
    assert main(["sft", "--prepare-only", str(_write(tmp_path, cfg)), "cutoff_len=512"]) == 0
    out = capsys.readouterr().out
    assert "exported 8/10" in out and "longer than 512 tokens" in out
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_gpu_recipe_has_the_reference_settings_and_only_known_keys():
    from datamind_ext.config import read_yaml
    from datamind_ext.integrations.llamafactory.sft_entry import _check_lf_args, _lf_defaults
    from datamind_ext.sft.config import split_sft_config

    path = REPO / "recipes" / "datamind-7b" / "sft.yaml"
    lf, block = split_sft_config(read_yaml(path), str(path))
    _check_lf_args(lf, block, _lf_defaults())  # raises on a key LLaMA-Factory 0.9.5 would reject
    assert lf["model_name_or_path"] == "Qwen/Qwen2.5-Coder-7B-Instruct" and lf["finetuning_type"] == "full"
    assert (lf["template"], lf["cutoff_len"], lf["num_train_epochs"]) == ("qwen", 8192, 3.0)
    assert (lf["learning_rate"], lf["lr_scheduler_type"], lf["warmup_ratio"], lf["bf16"]) == (1e-5, "cosine", 0.1, True)
    assert lf["per_device_train_batch_size"] * lf["gradient_accumulation_steps"] * 4 == 16  # on 4 GPUs
    ds = json.loads((REPO / lf["deepspeed"]).read_text())
    assert ds["zero_optimization"]["stage"] == 3
    assert block.loss == "ce"


@pytest.mark.slow
def test_torchrun_launch_trains_on_two_cpu_ranks_with_the_loss_variant(tmp_path, tiny_model_path, trajectories):
    """FORCE_TORCHRUN=1, as LLaMA-Factory users launch: data prepared once, every rank trains."""
    import os
    import subprocess
    import sys

    cfg = _config(tmp_path, tiny_model_path, trajectories, max_steps=2, loss="chord_phi")
    env = {**os.environ, "FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2"}
    proc = subprocess.run([sys.executable, "-m", "datamind_ext", "sft", str(_write(tmp_path, cfg))],
                          check=False, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch.distributed.run" in proc.stdout and "exported 8/10" in proc.stdout
    resolved = yaml.safe_load((tmp_path / "out" / "datamind_sft_resolved.yaml").read_text())
    assert resolved["datamind"] == {"loss": "chord_phi"} and resolved["dataset"] == "datamind"
    losses = _losses(tmp_path / "out")
    # chord_phi weights each token by p(1-p) ≈ 1/vocab on the random model: far below plain CE (~6.8).
    assert len(losses) == 2 and 0 < losses[0] < 0.5
