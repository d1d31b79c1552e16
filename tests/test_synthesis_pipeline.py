"""``datamind-ext synth`` end to end, offline: datasets that LLaMA-Factory and verl load, a real
``kill -9`` then resume with nothing lost or duplicated, seeded determinism, and the Ray backend."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from datamind_ext.cli.main import main
from datamind_ext.protocol import Message, Trajectory
from datamind_ext.synthesis.pipeline import canonical_order

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples" / "files"


def _subset(tmp: Path, names: list[str]) -> Path:
    d = tmp / "data"
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(SAMPLES / n, d)
    return d


def _keys(path: Path) -> list[str]:
    return [json.loads(x)["key"] for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full offline run over every format (and the corrupt file)."""
    tmp = tmp_path_factory.mktemp("synth")
    data = _subset(tmp, ["retail_sales.csv", "employees.tsv", "school_grades.xlsx", "products.json", "web_events.jsonl",
                         "energy_readings.parquet", "library.sqlite", "corrupt_export.xlsx"])
    out = tmp / "out"
    assert main(["synth", "all", "--data", str(data), "--out", str(out), "--tasks-per-table", "2", "--seed", "7"]) == 0
    return out


def test_all_stages_produce_datasets_and_card(synth_run: Path) -> None:
    out = synth_run
    report = json.loads((out / "filtered" / "report.json").read_text())
    assert report["kept"] >= 12  # 12 tables, two candidate tasks each
    card = (out / "export" / "README.md").read_text()
    for fmt in ("csv", "tsv", "xlsx", "json", "jsonl", "parquet", "sqlite"):
        assert f"| {fmt} |" in card
    assert (out / "export" / "token_lengths.png").read_bytes()[:4] == b"\x89PNG"
    rl = pd.read_parquet(out / "export" / "rl" / "train.parquet")
    assert set(rl.columns) == {"prompt", "data_source", "ability", "reward_model", "extra_info", "agent_name"}
    row = rl.iloc[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    ex = row["extra_info"]
    assert all(Path(f).is_file() for f in ex["files"])
    assert ex["category"] and 1 <= ex["difficulty"] <= 5 and ex["task_id"] and ex["question"] == row["prompt"][1]["content"]
    expert = list(ex["expert_messages"])
    assert expert[-1]["role"] == "assistant" and row["reward_model"]["ground_truth"] in expert[-1]["content"]
    profiles = [json.loads(x) for x in (out / "profiles.jsonl").read_text().splitlines()]
    assert any(f["reason"] for p in profiles for f in p["failures"])
    # the card: provenance (seed, config, source tables), an example question per category
    assert "- seed: 7" in card and "- retail_sales.csv" in card and "## Example questions" in card
    assert "not length-filtered" in json.loads((out / "export" / "summary.json").read_text())["sft_note"]


def test_export_with_a_tokenizer_is_length_filtered_for_the_sft_stage(synth_run: Path, tiny_tokenizer, tmp_path: Path) -> None:
    from datamind_ext.protocol import Trajectory
    from datamind_ext.synthesis.export import DEFAULT_SFT_CUTOFF_TOKENS, export_all

    kept = [Trajectory.model_validate_json(x) for x in (synth_run / "filtered" / "kept.jsonl").read_text().splitlines()]
    summary = export_all(kept, {}, tmp_path / "exp", "d", tiny_tokenizer)
    assert summary["sft_max_tokens"] == DEFAULT_SFT_CUTOFF_TOKENS and "sft_note" not in summary
    report = json.loads((tmp_path / "exp" / "sft" / "export_report.json").read_text())
    assert report["max_tokens"] == DEFAULT_SFT_CUTOFF_TOKENS
    assert f"cutoff {DEFAULT_SFT_CUTOFF_TOKENS}:" in (tmp_path / "exp" / "README.md").read_text()


def test_sft_dataset_loads_in_llamafactory(synth_run: Path, tiny_model_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("llamafactory")
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    sft_dir = synth_run / "export" / "sft"
    n = len((sft_dir / "datamind_synth.jsonl").read_text().splitlines())
    args = {"stage": "sft", "do_train": True, "model_name_or_path": str(tiny_model_path), "dataset": "datamind_synth",
            "dataset_dir": str(sft_dir), "template": "qwen", "cutoff_len": 4096, "output_dir": str(tmp_path / "o"),
            "overwrite_cache": True, "finetuning_type": "full", "report_to": "none", "use_cpu": True}
    model_args, data_args, training_args, _, _ = get_train_args(args)
    tok = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tok["tokenizer"], data_args)
    rows = get_dataset(template, model_args, data_args, training_args, stage="sft", **tok)["train_dataset"]
    assert len(rows) == n
    assert any(x != -100 for x in rows[0]["labels"])


def test_rl_parquet_loads_in_verl(synth_run: Path, tiny_tokenizer) -> None:
    pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    cfg = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 4096, "filter_overlong_prompts": False,
                            "return_raw_chat": True, "truncation": "error"})
    ds = RLHFDataset(str(synth_run / "export" / "rl" / "train.parquet"), tiny_tokenizer, cfg)
    item = ds[0]
    assert item["raw_prompt"][1]["role"] == "user"
    assert item["extra_info"]["files"] and item["agent_name"] == "datamind_code_agent"


def test_kept_order_depends_on_content_not_on_completion_order(synth_run: Path, tmp_path: Path) -> None:
    """SFT shuffles kept.jsonl with a fixed seed: its order must not depend on which sample finished first."""
    out = tmp_path / "out"
    shutil.copytree(synth_run, out)
    lines = (out / "trajectories.jsonl").read_text().splitlines()
    (out / "trajectories.jsonl").write_text("\n".join(reversed(lines)) + "\n")  # another completion order
    assert main(["synth", "filter", "--data", str(synth_run.parent / "data"), "--out", str(out),
                 "--tasks-per-table", "2", "--seed", "7"]) == 0
    kept = (out / "filtered" / "kept.jsonl").read_text()
    assert len(kept.splitlines()) >= 12 and kept == (synth_run / "filtered" / "kept.jsonl").read_text()


def test_canonical_order_is_the_same_in_another_run_folder(tmp_path: Path) -> None:
    def traj(root: Path, name: str, question: str) -> Trajectory:
        return Trajectory(id=f"{root.name}-{name}-{question}", files=[str(root / name)],
                          messages=[Message(role="user", content=question), Message(role="assistant", content="x")])

    rows = [("variant_2/b.csv", "q1"), ("original/b.csv", "q2"), ("original/b.csv", "q1"), ("original/a.csv", "q9")]
    orders = []
    for root, order in ((tmp_path / "run1", rows), (tmp_path / "elsewhere" / "run2", rows[::-1])):
        orders.append([(Path(t.files[0]).relative_to(root).as_posix(), t.messages[0].content)
                       for t in canonical_order([traj(root, n, q) for n, q in order], root)])
    assert orders[0] == orders[1] == [("original/a.csv", "q9"), ("original/b.csv", "q1"), ("original/b.csv", "q2"),
                                      ("variant_2/b.csv", "q1")]


def test_kill_9_then_rerun_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    data = _subset(tmp_path, ["retail_sales.csv", "weather_stations.csv", "employees.tsv"])
    # one batch (one table's 12 programs) in flight at a time, so the kill lands between stored batches
    args = ["--data", str(data), "--tasks-per-table", "12", "--seed", "1", "--concurrency", "1"]
    ref = tmp_path / "ref"
    assert main(["synth", "profile", "--out", str(ref), *args]) == 0
    assert main(["synth", "tasks", "--out", str(ref), *args]) == 0
    out = tmp_path / "out"
    assert main(["synth", "profile", "--out", str(out), *args]) == 0
    tasks = out / "tasks.jsonl"
    cmd = [sys.executable, "-m", "datamind_ext", "synth", "tasks", "--out", str(out), *args]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not tasks.exists() or not tasks.read_text().strip()):
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stage, no chance to clean up
        proc.wait(timeout=30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the interpreter processes it started, if any survive
        except ProcessLookupError:
            pass
    done_before = _keys(tasks)
    assert 1 <= len(done_before) < 36, "the kill must land mid-stage"
    assert main(["synth", "tasks", "--out", str(out), *args]) == 0
    after = _keys(tasks)
    assert len(after) == len(set(after))  # no duplicates
    assert set(done_before) <= set(after)  # nothing lost
    assert sorted(after) == sorted(_keys(ref / "tasks.jsonl"))  # same work as an uninterrupted run
    golds = lambda p: {json.loads(x)["key"]: json.loads(x).get("gold") for x in p.read_text().splitlines()}
    assert golds(tasks) == golds(ref / "tasks.jsonl")  # and the same results (seeded)


@pytest.mark.slow
def test_ray_backend_on_a_local_instance(tmp_path: Path) -> None:
    pytest.importorskip("ray")

    import ray
    from helpers.scripted_expert import expert_reply as _expert_reply

    from datamind_ext.testing.openai_server import OpenAITestServer

    data = _subset(tmp_path, ["retail_sales.csv", "products.json"])
    out = tmp_path / "out"
    llm_out = tmp_path / "llm"
    try:
        for stage in ("profile", "tasks", "trajectories"):
            assert main(["synth", stage, "--data", str(data), "--out", str(out), "--tasks-per-table", "2",
                         "--backend", "ray", "--concurrency", "2"]) == 0
        # the LLM path's per-task work (N samples with real execution, judge) as Ray tasks too
        llm_data = _subset(tmp_path / "l", ["retail_sales.csv"])
        with OpenAITestServer(_expert_reply) as srv:
            for stage in ("profile", "tasks", "trajectories", "filter"):
                assert main(["synth", stage, "--data", str(llm_data), "--out", str(llm_out), "--generator", "llm",
                             "--llm-base-url", srv.base_url, "--min-depth", "2", "--max-depth", "2",
                             "--backend", "ray", "--concurrency", "2"]) == 0
    finally:
        ray.shutdown()
    llm_report = json.loads((llm_out / "filtered" / "report.json").read_text())
    assert llm_report["kept"] == 2  # llm_tasks_per_table default 2, each consistent over N=3 samples
    assert json.loads((llm_out / "ledger.json").read_text())["requests"] > 0
    local = tmp_path / "local"
    for stage in ("profile", "tasks"):
        assert main(["synth", stage, "--data", str(data), "--out", str(local), "--tasks-per-table", "2"]) == 0
    assert sorted(_keys(out / "tasks.jsonl")) == sorted(_keys(local / "tasks.jsonl"))
    trajs = [json.loads(x) for x in (out / "trajectories.jsonl").read_text().splitlines()]
    assert len(trajs) == 4 and all(t["status"] == "ok" for t in trajs)


def test_cli_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "profile", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "data folder not found" in capsys.readouterr().err
    assert main(["synth", "export", "--out", str(tmp_path / "o2")]) == 2
    assert main(["synth", "tasks", "--min-depth", "4", "--max-depth", "2", "--out", str(tmp_path / "o3")]) == 2
