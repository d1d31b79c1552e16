"""Token equality: LLaMA-Factory's own data pipeline (converter, ``qwen`` template, supervised
processor) and the project's one renderer give identical token ids and loss masks on exported
trajectories, and nothing is silently skipped or truncated on the way."""

from __future__ import annotations

import pytest

from datamind_ext.protocol import Message, Trajectory, observation_message, render_messages
from datamind_ext.sft import export_llamafactory_dataset
from datamind_ext.sft.samples import sample_trajectories, sample_trajectory

pytest.importorskip("llamafactory")

IGNORE_INDEX = -100


def _edge_cases() -> list[Trajectory]:
    base = sample_trajectory(1)
    weird = [
        Message(role="system", content="  a system prompt with {{content}} and a trailing space \n"),
        Message(role="user", content="\nQ: naïve café — 价格? {{content}}  "),
        Message(role="assistant", content="  <think> x </think>\n<code>\n```python\nprint('a\\tb')\n```\n</code>\n\n"),
        observation_message("The code ran successfully:\n  \t tabs\r\nCRLF "),
        Message(role="assistant", content="<answer>ok</answer>   "),
    ]
    return [
        Trajectory(id="no-system", messages=base.messages[1:]),  # both sides use the template's default system
        Trajectory(id="whitespace-unicode", messages=weird),
        sample_trajectory(2, n_code_turns=5),
    ]


def _lf_dataset(dataset_dir, name, model_path, cutoff_len, out_dir):
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    args = {"stage": "sft", "do_train": True, "model_name_or_path": str(model_path), "dataset": name,
            "dataset_dir": str(dataset_dir), "template": "qwen", "cutoff_len": cutoff_len, "output_dir": str(out_dir),
            "overwrite_cache": True, "finetuning_type": "full", "report_to": "none", "use_cpu": True}
    model_args, data_args, training_args, _, _ = get_train_args(args)
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    return get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)["train_dataset"]


def test_llamafactory_pipeline_equals_our_renderer(tmp_path, tiny_model_path, tiny_tokenizer):
    trajs = sample_trajectories(3, seed=5) + _edge_cases()
    cutoff_len = 2048
    report = export_llamafactory_dataset(trajs, tmp_path / "data", tokenizer=tiny_tokenizer, max_tokens=cutoff_len)
    assert report.n_written == len(trajs), report.summary()

    rows = _lf_dataset(tmp_path / "data", "datamind", tiny_model_path, cutoff_len, tmp_path / "out")

    assert len(rows) == len(trajs)  # LLaMA-Factory skipped nothing
    for traj, row in zip(trajs, rows):
        ours = render_messages(tiny_tokenizer, traj.messages)
        assert row["input_ids"] == ours.input_ids, traj.id
        lf_mask = [int(x != IGNORE_INDEX) for x in row["labels"]]
        assert lf_mask == ours.loss_mask, traj.id
        assert [x for x in row["labels"] if x != IGNORE_INDEX] == [
            t for t, m in zip(ours.input_ids, ours.loss_mask) if m
        ]
        n_assistant = sum(m.role == "assistant" for m in traj.messages)
        trained_spans = sum(1 for a, b in zip([0, *lf_mask], lf_mask) if b and not a)
        assert trained_spans == n_assistant  # every assistant turn, and nothing else


def test_llamafactory_truncates_what_the_export_drops(tmp_path, tiny_model_path, tiny_tokenizer):
    """Why the length filter exists: past cutoff_len LLaMA-Factory cuts the trajectory silently."""
    long_traj = sample_trajectory(9, n_code_turns=6)
    n_tokens = len(render_messages(tiny_tokenizer, long_traj.messages))
    cutoff_len = n_tokens // 2
    export_llamafactory_dataset([long_traj], tmp_path / "raw")  # no length filter
    rows = _lf_dataset(tmp_path / "raw", "datamind", tiny_model_path, cutoff_len, tmp_path / "out")
    assert len(rows) == 1 and len(rows[0]["input_ids"]) <= cutoff_len < n_tokens

    report = export_llamafactory_dataset([long_traj, sample_trajectory(1)], tmp_path / "kept",
                                         tokenizer=tiny_tokenizer, max_tokens=cutoff_len)
    assert report.too_long == {long_traj.id: n_tokens}
    rows = _lf_dataset(tmp_path / "kept", "datamind", tiny_model_path, cutoff_len, tmp_path / "out2")
    assert len(rows) == 1
    assert rows[0]["input_ids"] == render_messages(tiny_tokenizer, sample_trajectory(1).messages).input_ids


def test_template_check_finds_layout_differences_before_training(tiny_tokenizer):
    """The pre-training check runs LLaMA-Factory's converter + template + processor on exported rows."""
    from datamind_ext.integrations.llamafactory.template_check import check_template
    from datamind_ext.sft import sharegpt_record

    rows = [sharegpt_record(t) for t in [sample_trajectory(0), *_edge_cases()]]
    assert check_template({"template": "qwen", "cutoff_len": 4096}, tiny_tokenizer, rows) == []
    # qwen3_nothink has no default system prompt: only the trajectory without a system turn differs.
    found = check_template({"template": "qwen3_nothink", "cutoff_len": 4096}, tiny_tokenizer, rows)
    assert [m.trajectory_id for m in found] == ["no-system"] and found[0].position == 1
    # qwen3 (a reasoning template) inserts empty <think> blocks into trained turns.
    found = check_template({"template": "qwen3", "cutoff_len": 4096}, tiny_tokenizer, rows)
    assert "whitespace-unicode" in [m.trajectory_id for m in found]
    assert any("<think>" in m.llamafactory for m in found)


def test_sft_refuses_a_template_that_renders_differently(tmp_path, tiny_model_path):
    from datamind_ext.errors import UserError
    from datamind_ext.integrations.llamafactory.sft_entry import prepare_sft
    from datamind_ext.protocol import write_jsonl
    from datamind_ext.sft.config import DatamindSFTConfig

    write_jsonl(tmp_path / "t.jsonl", [_edge_cases()[0], *sample_trajectories(2)])
    lf = {"model_name_or_path": str(tiny_model_path), "template": "qwen3_nothink", "cutoff_len": 1024,
          "output_dir": str(tmp_path / "out"), "do_train": True}
    block = DatamindSFTConfig(trajectories=[str(tmp_path / "t.jsonl")])
    with pytest.raises(UserError, match="no-system: ids differ at token 1"):
        prepare_sft(lf, block)
    prepared = prepare_sft({**lf, "template": "qwen"}, block)
    assert any("matches the chat template on 3 rows" in n for n in prepared.notes)
