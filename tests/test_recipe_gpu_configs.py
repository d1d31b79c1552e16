"""The GPU recipes' RL configs, resolved through verl 0.9.1's own config code (no GPU needed).

Each variant is hydra-composed with verl's ``ppo_trainer``, run through verl's ``validate_config``,
its config dataclasses and its trainer's DAPO check with warnings captured; any warning, any key
verl's schema lacks, or any value verl's trainer rewrites fails. Then every ``key=value`` of the
recipe README's paper table must equal the resolved value (or sft.yaml's / recipe.yaml's).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("verl")

from datamind_ext.recipes import rl_config_check as check  # noqa: E402
from datamind_ext.recipes.rl_length import check_rl_length  # noqa: E402
from datamind_ext.recipes.spec import load_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
ONE_NODE_14B = ["trainer.nnodes=1", "actor_rollout_ref.actor.fsdp_config.param_offload=true",
                "actor_rollout_ref.actor.fsdp_config.optimizer_offload=true"]
VARIANTS = {  # name: (recipe, rl overrides, GPUs)
    "7b-8gpu": ("datamind-7b", [], 8),
    "7b-4gpu": ("datamind-7b", ["trainer.n_gpus_per_node=4"], 4),
    "14b-16gpu": ("datamind-14b", [], 16),
    "14b-8gpu": ("datamind-14b", ONE_NODE_14B, 8),
}
TOKEN = re.compile(r"`((?:sft\.yaml: |recipe\.yaml: )?[a-z_][\w.]*=[^`\s]+)`")


def paper_table_tokens(readme: Path) -> list[str]:
    """The checked ``key=value`` cells of the README's paper → config table."""
    text = readme.read_text()
    table = text[text.index("## Paper hyperparameter"):]
    table = table[:table.index("\n## ", 5)]
    return [t for line in table.splitlines() if line.startswith("| ") for t in TOKEN.findall(line)]


def lookup(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        node = node[part]
    return node


@pytest.fixture(scope="module")
def resolved() -> dict[str, tuple[Any, dict[str, Any], list[str]]]:
    from omegaconf import OmegaConf

    out = {}
    for name, (recipe, overrides, _) in VARIANTS.items():
        cfg = check.compose(RECIPES / recipe, overrides)
        objs, problems = check.resolve(cfg)
        problems += [f"key verl does not have: {k}"
                     for k in check.keys_verl_does_not_have(RECIPES / recipe / "rl.yaml", overrides)]
        out[name] = (OmegaConf.to_container(cfg, resolve=True), objs, problems)
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_verl_resolves_the_config_without_a_warning_an_override_or_an_unknown_key(resolved, variant: str) -> None:
    cfg, objs, problems = resolved[variant]
    assert problems == []
    gpus = VARIANTS[variant][2]
    assert cfg["trainer"]["n_gpus_per_node"] * cfg["trainer"]["nnodes"] == gpus
    assert type(objs["actor"]).__name__ == "FSDPActorConfig" and objs["actor"].strategy == "fsdp2"
    assert objs["filter_groups_metric"] == "reward" and objs["algorithm"].filter_groups.max_inflight_gen_batches == 2
    assert objs["rollout"].name == "vllm" and gpus % objs["rollout"].tensor_model_parallel_size == 0
    assert objs["checkpoint"].save_contents[-1] == "hf_model"  # the runner reads the RL model from hf_model
    assert cfg["trainer"]["max_actor_ckpt_to_keep"] == 2
    # the γ schedule decays over exactly the run
    assert cfg["actor_rollout_ref"]["datamind_loss"]["schedule"]["decay_steps"] == cfg["trainer"]["total_training_steps"]
    # sdpa by default: no Ulysses SP (it is implemented in verl's flash-attention path only)
    assert cfg["actor_rollout_ref"]["model"]["override_config"]["attn_implementation"] == "sdpa"
    assert cfg["actor_rollout_ref"]["actor"]["ulysses_sequence_parallel_size"] == 1
    seq = cfg["data"]["max_prompt_length"] + cfg["data"]["max_response_length"]
    assert cfg["actor_rollout_ref"]["actor"]["ppo_max_token_len_per_gpu"] >= seq
    if variant == "14b-8gpu":
        fsdp = cfg["actor_rollout_ref"]["actor"]["fsdp_config"]
        assert fsdp["param_offload"] is True and fsdp["optimizer_offload"] is True


def test_the_check_catches_what_verl_ignores_or_overrides(tmp_path: Path) -> None:
    """The settings issue 19 found (gen_batch_size 32, max_num_gen_batches 10, a typo) are reported."""
    text = (RECIPES / "datamind-7b" / "rl.yaml").read_text()
    text = text.replace("max_num_gen_batches: 0 ", "max_num_gen_batches: 10 ")
    text = text.replace("  train_batch_size: 16 ", "  gen_batch_size: 32\n  train_batch_size: 16 ")
    text = text.replace("  save_freq: 50", "  save_freq: 50\n  max_actor_ckpt_to_kep: 2")
    (tmp_path / "rl.yaml").write_text(text)
    _, problems = check.resolve(check.compose(tmp_path))
    problems += check.keys_verl_does_not_have(tmp_path / "rl.yaml")
    joined = "\n".join(problems)
    assert "max_num_gen_batches=10 is ignored" in joined
    assert "data.gen_batch_size=32 is overridden to 1" in joined
    assert "trainer.max_actor_ckpt_to_kep" in problems


@pytest.mark.parametrize("recipe", ["datamind-7b", "datamind-14b"])
def test_paper_table_matches_the_resolved_configs(resolved, recipe: str) -> None:
    readme = RECIPES / "datamind-7b" / "README.md"  # the 14B README defers to the 7B table
    tokens = paper_table_tokens(readme)
    assert len(tokens) >= 60
    cfg = resolved["7b-8gpu" if recipe == "datamind-7b" else "14b-16gpu"][0]
    spec, recipe_dir = load_recipe(RECIPES / recipe)
    sft = yaml.safe_load((recipe_dir / spec.sft.config).read_text())
    wrong = []
    for token in tokens:
        where, _, assignment = token.rpartition(": ")
        key, _, value = assignment.partition("=")
        want = yaml.safe_load(value)
        if where == "sft.yaml":
            got = sft[key]
        elif where == "recipe.yaml":
            got = lookup(spec.model_dump(), key)
            if key == "model.path":
                want = want.replace("7B", "14B") if recipe == "datamind-14b" else want
        else:
            got = lookup(cfg, key)
        if key == "model_name_or_path" and recipe == "datamind-14b":
            continue  # the 14B recipe reuses sft.yaml and sets the model from recipe.yaml
        if got != want:
            wrong.append(f"{token}: resolved {got!r}")
    assert wrong == []


def test_run_length_is_checked_against_the_data(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datamind_ext.errors import UserError

    parquet = tmp_path / "train.parquet"
    pq.write_table(pa.table({"prompt": [f"q{i}" for i in range(400)]}), parquet)
    rl = RECIPES / "datamind-7b" / "rl.yaml"
    line = check_rl_length(rl, [], parquet)  # 400 // 16 = 25 steps per epoch, 350 steps = 14 passes
    assert line.startswith("RL plan: 350 steps = 14.00 passes over 400 prompts")
    with pytest.raises(UserError, match=r"stop after 25 of trainer.total_training_steps=350 .*total_epochs=14"):
        check_rl_length(rl, ["trainer.total_epochs=1"], parquet)
