"""Each private verl name the verl wing relies on still exists in the installed verl, with the
signature we rely on: an upgrade that changes one fails here, by name."""

from __future__ import annotations

import importlib
import inspect

import pytest

from datamind_ext.integrations.verl.private_api import PRIVATE_USES


def _resolve(target: str):
    module, qualname = target.split(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("use", PRIVATE_USES, ids=[u.target for u in PRIVATE_USES])
def test_private_verl_name_is_still_what_we_rely_on(use) -> None:
    obj = _resolve(use.target)
    if use.reads is not None:
        assert isinstance(obj, property), f"{use.target} is no longer a property"
        assert use.reads in inspect.getsource(obj.fget), f"{use.target} no longer returns {use.reads}"
        return
    if use.params is None:
        assert isinstance(obj, dict), f"{use.target} is no longer a registry dict ({type(obj).__name__})"
        return
    fn = getattr(obj, "__wrapped__", obj)  # verl's @register keeps the function under the decorator
    # Ray's tracing adds a _ray_trace_ctx keyword to actor methods of an imported class
    params = [p for p in inspect.signature(fn).parameters if p != "_ray_trace_ctx"]
    assert params == list(use.params), f"{use.target} changed signature"


def test_every_private_override_of_the_trainer_is_listed() -> None:
    """A new override of a private verl method must be added to private_api.PRIVATE_USES."""
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    from datamind_ext.integrations.verl.trainer import DapoDropTrackingReplayBuffer, DataMindTrainerSync

    listed = {u.target.split(":")[1].split(".")[-1] for u in PRIVATE_USES}
    for ours, base in ((DataMindTrainerSync, PPOTrainerSync), (DapoDropTrackingReplayBuffer, ReplayBuffer)):
        overridden = {n for n in vars(ours) if n.startswith("_") and not n.startswith("__") and callable(getattr(base, n, None))}
        assert overridden <= listed, f"unlisted private overrides in {ours.__name__}: {sorted(overridden - listed)}"
