"""The registered ``datamind`` converter: LLaMA-Factory loads trajectory JSONL directly, rejects
unusable records by id (instead of skipping them silently), and tokenizes the rest exactly as
our renderer does."""

from __future__ import annotations

import json
import logging

import pytest

from datamind_ext.protocol import Message, render_messages
from datamind_ext.sft.samples import sample_trajectories

pytest.importorskip("llamafactory")


def _load(dataset_dir, model_path, out_dir):
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    from datamind_ext.integrations.llamafactory.registration import register_all

    register_all()
    args = {"stage": "sft", "do_train": True, "model_name_or_path": str(model_path), "dataset": "traj",
            "dataset_dir": str(dataset_dir), "template": "qwen", "cutoff_len": 4096, "output_dir": str(out_dir),
            "overwrite_cache": True, "finetuning_type": "full", "report_to": "none", "use_cpu": True}
    model_args, data_args, training_args, _, _ = get_train_args(args)
    tok = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tok["tokenizer"], data_args)
    return get_dataset(template, model_args, data_args, training_args, stage="sft", **tok)["train_dataset"]


def test_converter_is_registered_in_llamafactory():
    from llamafactory.data.converter import DATASET_CONVERTERS

    from datamind_ext.integrations.llamafactory.converter import DataMindTrajectoryConverter
    from datamind_ext.integrations.llamafactory.registration import register_all

    register_all()
    register_all()  # idempotent
    assert DATASET_CONVERTERS["datamind"] is DataMindTrajectoryConverter


def test_trajectory_jsonl_loads_and_bad_records_are_named(tmp_path, tiny_model_path, tiny_tokenizer, caplog):
    from datamind_ext.integrations.llamafactory.converter import DATASET_INFO_TEMPLATE

    good = sample_trajectories(2, seed=3)
    bad = sample_trajectories(1, seed=4)[0].model_copy(update={"id": "no-answer-42"})
    bad.messages[-1] = Message(role="assistant", content="<think>I give up</think>")
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "trajectories.jsonl", "w") as f:
        for t in [good[0], bad, good[1]]:
            f.write(json.dumps(t.model_dump()) + "\n")
    (data / "dataset_info.json").write_text(json.dumps({"traj": {"file_name": "trajectories.jsonl", **DATASET_INFO_TEMPLATE}}))

    with caplog.at_level(logging.WARNING, logger="datamind_ext.llamafactory"):
        rows = _load(data, tiny_model_path, tmp_path / "out")

    assert len(rows) == 2
    assert any("no-answer-42" in r.message and "missing_answer" in r.message for r in caplog.records)
    for traj, row in zip(good, rows):
        ours = render_messages(tiny_tokenizer, traj.messages)
        assert row["input_ids"] == ours.input_ids
        assert [int(x != -100) for x in row["labels"]] == ours.loss_mask
