"""``datamind-ext run``: stage plans, printed upstream commands, markers, held-out data, summary, synth benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from datamind_ext.cli.main import main as cli_main
from datamind_ext.recipes.heldout import UNSEEN_WORDS, make_heldout_folder, readable_sources
from datamind_ext.recipes.runner import Recipe, run_recipe, stage_rl, stage_synth
from datamind_ext.recipes.summary import rl_steps

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "quickstart"
SAMPLES = ROOT / "data" / "samples" / "files"


def test_dry_run_prints_every_stage_as_its_upstream_command(tmp_path: Path) -> None:
    lines: list[str] = []
    run_recipe(QUICKSTART, run_dir=tmp_path / "run", dry_run=True, log=lines.append)
    text = "\n".join(lines)
    assert [ln for ln in lines if ln.startswith("==")] == [f"== stage {s} ==" for s in ("model", "synth", "sft", "rl", "eval")]
    assert "datamind-ext tiny-model --preset quickstart" in text
    assert f"datamind-ext synth all --config {QUICKSTART / 'synth.yaml'}" in text
    assert f"datamind-ext sft {QUICKSTART / 'sft.yaml'}" in text
    assert f"llamafactory-cli train {tmp_path / 'run' / 'sft' / 'llamafactory_train.yaml'}" in text
    assert f"python -m verl.trainer.main_ppo --config-path={QUICKSTART} --config-name=rl" in text
    assert "DATAMIND_VERL_CPU=1 VERL_PLATFORM=cpu" in text  # the CPU opt-ins travel with the printed command
    assert "datamind-ext eval synth" in text and "python -m datamind_ext.generation.server" in text
    evals = [ln for ln in lines if "datamind-ext eval synth" in ln]
    # eval.checkpoint_limits: the base model is asked 20 questions per set, the trained ones all of them
    assert [("--limit 20" in ln) for ln in evals] == [("<base checkpoint>" in ln) for ln in evals]
    # eval.checkpoint_sets: base and rl on familiar_names only, sft on both sets
    sets = [(next(c for c in ("base", "sft", "rl") if f"<{c} checkpoint>" in ln), ln.split("/heldout/")[1].split("/")[0])
            for ln in evals]
    assert sets == [("base", "familiar_names"), ("sft", "familiar_names"), ("sft", "unseen_names"), ("rl", "familiar_names")]
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


def test_from_to_selects_stages(tmp_path: Path) -> None:
    lines: list[str] = []
    run_recipe(QUICKSTART, run_dir=tmp_path, dry_run=True, from_stage="sft", to_stage="rl", log=lines.append)
    assert [ln for ln in lines if ln.startswith("==")] == ["== stage sft ==", "== stage rl =="]
    with pytest.raises(Exception, match="comes after"):
        run_recipe(QUICKSTART, run_dir=tmp_path, dry_run=True, from_stage="rl", to_stage="sft", log=lines.append)


def test_marker_skips_only_with_same_hash_and_outputs(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    for f in QUICKSTART.iterdir():
        (recipe / f.name).write_bytes(f.read_bytes())
    r = Recipe(recipe, run_dir=tmp_path / "run")
    files, outputs, _, _ = stage_rl(r)
    digest = r.stage_hash("rl", files, ["sft"])
    assert not r.complete("rl", digest, outputs)
    outputs[0].parent.mkdir(parents=True)
    outputs[0].write_text("log")
    r.mark("rl", digest, outputs)
    assert r.complete("rl", digest, outputs)
    # editing the CPU preset (a hydra default of rl.yaml) changes the hash
    (recipe / "cpu.yaml").write_text((recipe / "cpu.yaml").read_text() + "\n# edited\n")
    files2, _, _, _ = stage_rl(r)
    assert not r.complete("rl", r.stage_hash("rl", files2, ["sft"]), outputs)
    # an upstream stage rerun with another hash invalidates it too
    r.hashes["sft"] = "different"
    assert r.stage_hash("rl", files, ["sft"]) != digest
    outputs[0].unlink()
    assert not r.complete("rl", digest, outputs)


def test_heldout_tables_fresh_values_and_unseen_names(tmp_path: Path) -> None:
    from datamind_ext.synthesis.profile import TableProfile, find_data_files, profile_file, read_table

    def tables(folder: Path) -> dict[str, list[TableProfile]]:
        return {f.name: [p for p in profile_file(f) if isinstance(p, TableProfile)] for f in find_data_files(folder)}

    source = {name: profs for name, profs in tables(SAMPLES).items() if profs}
    fresh = make_heldout_folder(SAMPLES, tmp_path / "fresh", "fresh_tables", seed=1)
    unseen = make_heldout_folder(SAMPLES, tmp_path / "unseen", "unseen_names", seed=1)
    assert len(fresh) == len(unseen) == len(source) >= 10
    # fresh tables: same file names, formats, sheets/tables, columns and load code; new values
    for name, profs in tables(tmp_path / "fresh").items():
        assert [(p.format, p.table, [c.name for c in p.columns]) for p in profs] == \
            [(p.format, p.table, [c.name for c in p.columns]) for p in source[name]], name
        for new, old in zip(profs, source[name], strict=True):  # the training load code reads the new file
            assert read_table(old, tmp_path / "fresh" / name).equals(read_table(new))
            assert len(read_table(new)) == len(read_table(old))
    src = pd.read_csv(SAMPLES / "retail_sales.csv")
    assert not pd.read_csv(tmp_path / "fresh" / "retail_sales.csv").equals(src)
    # unseen names: same formats, every file, sheet, table and column name new
    train_names = {c.name.lower() for profs in source.values() for p in profs for c in p.columns}
    train_names |= {str(p.table).lower() for profs in source.values() for p in profs}
    assert sorted(f.suffix for f in unseen) == sorted(Path(n).suffix for n in source)
    for f in unseen:
        assert f.stem.lower() not in {Path(n).stem.lower() for n in source}
        for p in profile_file(f):
            assert isinstance(p, TableProfile), p
            assert not {c.name.lower() for c in p.columns} & train_names
            assert str(p.table).lower() not in train_names or p.table is None
    assert not {w.lower() for w in UNSEEN_WORDS} & train_names
    # profiled once for many folders (the recipe's variants): the same tables as profiling each time
    sources = readable_sources(SAMPLES)
    assert {src.name for src, _ in sources} == set(source)
    for kind, files in (("fresh_tables", fresh), ("unseen_names", unseen)):
        again = make_heldout_folder(SAMPLES, tmp_path / f"again_{kind}", kind, seed=1, sources=sources)
        assert [f.name for f in again] == [f.name for f in files]
        for a, b in zip(again, files, strict=True):
            pa, pb = ([p for p in profile_file(f) if isinstance(p, TableProfile)] for f in (a, b))
            assert len(pa) == len(pb) and all(read_table(x).equals(read_table(y)) for x, y in zip(pa, pb, strict=True))


def test_rl_steps_parses_verl_console_lines() -> None:
    log = ("(TaskRunnerV1 pid=1) step:1 - actor/gamma:0.9 - actor/sft_loss:2.5 - actor/pg_loss:-0.01 - "
           "critic/score/mean:0.25 - timing_s/step:12.3\nnoise step: without metrics\n"
           "\x1b[36m(TaskRunnerV1 pid=1)\x1b[0m step:2 - actor/gamma:0.8999 - critic/score/mean:1e-2 - actor/pg_loss:nan\n")
    steps = rl_steps(log)
    assert [s["step"] for s in steps] == [1, 2]
    assert steps[0]["actor/sft_loss"] == 2.5 and steps[0]["actor/pg_loss"] == -0.01
    assert steps[1]["critic/score/mean"] == 0.01


def test_synth_benchmark_loads_and_scores_the_rl_parquet(tmp_path: Path) -> None:
    import asyncio

    from datamind_ext.evaluation.benchmark import ScoringContext, get_benchmark
    from datamind_ext.evaluation.items import Response

    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    rows = [{"prompt": [{"role": "system", "content": f"s{i}"}, {"role": "user", "content": f"Q{i}?"}],
             "data_source": "datamind_synth", "ability": "data", "reward_model": {"ground_truth": str(10 * i), "style": "rule"},
             "extra_info": {"task_id": f"t{i}", "files": [str(data)], "category": "counting", "difficulty_label": "easy"},
             "agent_name": "datamind_code_agent"} for i in range(3)]
    (tmp_path / "export" / "rl").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(tmp_path / "export" / "rl" / "train.parquet")
    bench = get_benchmark("synth")
    items = bench.load(tmp_path)
    assert [it.question for it in items] == ["Q0?", "Q1?", "Q2?"] and items[2].gold == {"answer": "20"}
    assert items[1].categories == {"category": "counting", "difficulty": "easy"}
    assert [it.system for it in items] == ["s0", "s1", "s2"]  # asked with the prompt it was synthesized with
    ctx = ScoringContext(work_dir=tmp_path)
    good = asyncio.run(bench.score(items[2], Response(item_id="t2", text="<answer>20.1</answer>"), ctx))
    bad = asyncio.run(bench.score(items[2], Response(item_id="t2", text="<answer>25</answer>"), ctx))
    none = asyncio.run(bench.score(items[2], Response(item_id="t2", text="<think>hm</think>"), ctx))
    assert good["rule"].correct and not bad["rule"].correct and not none["rule"].correct


def test_cli_run_missing_recipe_is_a_one_line_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["run", str(tmp_path / "nope")]) == 2
    assert "no recipe.yaml" in capsys.readouterr().err


def test_heldout_seed_of_a_training_copy_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (QUICKSTART / "recipe.yaml").read_text().replace("tasks_per_table: 12, seed: 1}", "tasks_per_table: 12, seed: 1003}")
    (tmp_path / "recipe.yaml").write_text(text)
    assert cli_main(["run", str(tmp_path), "--dry-run"]) == 2
    assert "familiar_names use a seed of a training copy (1001..1019)" in capsys.readouterr().err


def test_training_copies_are_synthesized_beside_the_data(tmp_path: Path) -> None:
    """``train_variants``: the data plus resampled copies in one folder, which synthesis reads."""
    spec = yaml.safe_load((QUICKSTART / "recipe.yaml").read_text())
    spec["synth"] |= {"config": str(QUICKSTART / "synth.yaml"), "train_variants": 2, "heldout": []}
    spec["eval"]["checkpoint_sets"] = {}  # they name held-out sets, and this recipe has none
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(spec))
    r = Recipe(tmp_path, run_dir=tmp_path / "run", log=lambda _: None)
    *_, shown, run = stage_synth(r)
    assert f"--data {tmp_path / 'run' / 'synth' / 'data'} " in shown[0]
    r.execute = lambda cmd: None  # the folders only; synthesis itself is tested elsewhere
    run()
    data = tmp_path / "run" / "synth" / "data"
    assert sorted(p.name for p in data.iterdir()) == ["original", "variant_1", "variant_2"]
    one, two = (pd.read_csv(data / v / "retail_sales.csv") for v in ("variant_1", "variant_2"))
    assert list(one.columns) == list(two.columns) and not one.equals(two)


def test_unknown_recipe_key_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "recipe.yaml").write_text((QUICKSTART / "recipe.yaml").read_text() + "\nstages: [x]\n")
    assert cli_main(["run", str(tmp_path), "--dry-run"]) == 2
    assert "unknown key 'stages'" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", ["quickstart", "datamind-7b", "datamind-14b"])
def test_rl_configs_compose_with_stock_verl_hydra(recipe: str, tmp_path: Path) -> None:
    """``main_ppo --cfg job`` composes the recipe's RL config (verl's defaults + ours) without running."""
    proc = subprocess.run([sys.executable, "-m", "verl.trainer.main_ppo", f"--config-path={ROOT / 'recipes' / recipe}",
                           "--config-name=rl", "--cfg", "job"], capture_output=True, text=True, timeout=300, check=False,
                          cwd=tmp_path,
                          env={"VERL_USE_EXTERNAL_PLUGINS": "none", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    import yaml

    cfg = yaml.safe_load(proc.stdout)
    assert cfg["trainer"]["v1"]["trainer_mode"] == "datamind_sync"
    assert cfg["actor_rollout_ref"]["rollout"]["agent"]["default_agent_loop"] == "datamind_code_agent"
    assert cfg["reward"]["custom_reward_function"]["path"] == "pkg://datamind_ext.integrations.verl.rewards"
    assert cfg["actor_rollout_ref"]["datamind_loss"]["schedule"] == {"name": "cosine", "peak": 0.9, "valley": 0.05,
                                                                     "decay_steps": 350, **({"warmup_steps": 0} if recipe != "quickstart" else {})}
    assert cfg["actor_rollout_ref"]["actor"]["use_kl_loss"] is False
    if recipe == "quickstart":  # the CPU preset applies; the GPU recipes keep vLLM
        assert cfg["actor_rollout_ref"]["rollout"]["name"] == "datamind_hf"
        assert cfg["ray_kwargs"]["ray_init"]["num_gpus"] == 1
        assert cfg["transfer_queue"]["backend"]["SimpleStorage"]["num_data_storage_units"] == 1
    else:
        assert cfg["actor_rollout_ref"]["rollout"]["name"] == "vllm"
        assert cfg["actor_rollout_ref"]["rollout"]["n"] == 4
        assert cfg["algorithm"]["filter_groups"]["enable"] is True
        assert cfg["actor_rollout_ref"]["actor"]["optim"]["lr"] == 1e-6
        assert cfg["actor_rollout_ref"]["actor"]["optim"]["lr_warmup_steps"] == 20
        assert (cfg["data"]["max_prompt_length"], cfg["data"]["max_response_length"]) == (2048, 8192)
        assert cfg["datamind"]["agent"]["max_turns"] == 10
        assert "datamind_hf" not in json.dumps(cfg)


def test_gpu_smoke_command_composes_with_the_7b_config(tmp_path: Path) -> None:
    """Every override of ``make gpu-smoke`` is a key verl's config accepts (checked without a GPU)."""
    import yaml

    from datamind_ext.recipes.gpu_smoke import QWEN25_05B, smoke_command

    cmd = smoke_command(tmp_path / "t.parquet", tmp_path / "model", tmp_path) + ["--cfg", "job"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
                          env={"VERL_USE_EXTERNAL_PLUGINS": "none", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["actor_rollout_ref"]["rollout"]["name"] == "vllm" and cfg["trainer"]["total_training_steps"] == 2
    assert cfg["trainer"]["n_gpus_per_node"] == 1 and cfg["trainer"]["v1"]["trainer_mode"] == "datamind_sync"
    assert cfg["datamind"]["agent"] == {"max_turns": 3, "max_observation_chars": 2048, "max_tokens_per_turn": 512}
    assert (QWEN25_05B["num_hidden_layers"], QWEN25_05B["hidden_size"], QWEN25_05B["num_key_value_heads"]) == (24, 896, 2)


def test_rl_state_of_other_inputs_is_moved_aside_and_same_inputs_resume(tmp_path: Path) -> None:
    from datamind_ext.recipes.runner import retire_other_rl_state

    rl = tmp_path / "rl"
    assert retire_other_rl_state(rl, "aaa") is None  # first run: nothing to move
    (rl / "ckpt" / "global_step_3").mkdir()
    (rl / "rollouts").mkdir()
    (rl / "rollouts" / "1.jsonl").write_text("{}\n")
    assert retire_other_rl_state(rl, "aaa") is None  # same inputs (an interrupted run): verl resumes it
    assert (rl / "ckpt" / "global_step_3").is_dir()
    moved = retire_other_rl_state(rl, "bbb")  # a new SFT model or config: the old run must not be resumed
    assert moved is not None and (moved / "ckpt" / "global_step_3").is_dir() and (moved / "rollouts" / "1.jsonl").is_file()
    assert [p.name for p in (rl / "ckpt").iterdir()] == ["datamind_inputs.txt"] and not (rl / "rollouts").exists()
    (rl / "ckpt" / "datamind_inputs.txt").unlink()  # a checkpoint folder of unknown origin is moved too
    (rl / "ckpt" / "global_step_1").mkdir()
    assert retire_other_rl_state(rl, "bbb") is not None and not (rl / "ckpt" / "global_step_1").exists()
