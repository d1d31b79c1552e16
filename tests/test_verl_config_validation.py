"""Every datamind block of the RL config is checked on the driver, before Ray starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from datamind_ext.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        return compose(config_name="ppo_trainer", overrides=["trainer.v1.trainer_mode=datamind_sync", *overrides])


@pytest.mark.parametrize(("override", "message"), [
    ("+actor_rollout_ref.datamind_loss.gama=0.5", "unknown key 'gama'"),
    ("+datamind.agent.max_turn=3", "unknown key 'max_turn'"),
    ("+datamind.interpreter.max_session=3", "unknown key 'max_session'"),
    ("+datamind.interpreter.limits.timeout=3", "unknown key 'limits.timeout'"),
    ("+datamind.agnet.max_turns=3", "unknown key(s) ['agnet']"),
    ("actor_rollout_ref.actor.use_kl_loss=true", "use_kl_loss=false"),
])
def test_a_mistake_in_a_datamind_block_is_one_line(override: str, message: str) -> None:
    from datamind_ext.integrations.verl.validate import validate_rl_config

    with pytest.raises(UserError) as err:
        validate_rl_config(_compose([override]))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_reward_kwargs_are_checked_when_our_reward_is_selected() -> None:
    from datamind_ext.integrations.verl.validate import validate_rl_config

    ours = "reward.custom_reward_function.path=pkg://datamind_ext.integrations.verl.rewards"
    validate_rl_config(_compose([ours, "+datamind.agent.max_turns=3", "+datamind.interpreter.limits.timeout_s=5"]))
    with pytest.raises(UserError, match="wrong_rewrd"):
        validate_rl_config(_compose([ours, "+reward.custom_reward_function.reward_kwargs.reward.wrong_rewrd=1"]))
    # another reward function's kwargs are its own business
    validate_rl_config(_compose(["reward.custom_reward_function.path=/x/r.py",
                                 "+reward.custom_reward_function.reward_kwargs.anything=1"]))


def test_main_ppo_exits_2_before_ray_on_a_typo_in_the_recipe_config(tmp_path: Path) -> None:
    """The quickstart's rl.yaml enables the check; a typo stops verl's main_ppo with one line."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    cmd = [sys.executable, "-m", "verl.trainer.main_ppo", f"--config-path={ROOT / 'recipes' / 'quickstart'}",
           "--config-name=rl", "+actor_rollout_ref.datamind_loss.schedule.decay_stepz=3", "hydra.run.dir=."]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("datamind-ext: error:")]
    assert len(errors) == 1 and "decay_stepz" in errors[0]
    assert "Traceback" not in proc.stderr and "ray init kwargs" not in proc.stdout
