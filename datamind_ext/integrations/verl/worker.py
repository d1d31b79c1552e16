"""Actor-side glue: expert rows for the batch, and the workers that install the combined loss.

- :func:`expert_row` renders an expert trajectory with the ONE renderer
  (``datamind_ext.protocol.render_messages``) and lays it out exactly like a rollout row (prompt
  = everything before the first trained token, i.e. up to and including the first assistant
  header; response = the rest; ``response_mask`` = the renderer's label-aligned loss mask). SFT
  data, rollouts and expert rows therefore share token ids and masks by construction.
- :func:`rows_to_tensordict` builds verl's V1 no-padding TensorDict for a list of rows.
- :class:`DataMindTrainingWorker` computes, once per step and per mini-batch, γ and the global
  token counts the loss normalises with (see ``loss.py`` for why this needs a worker).
- :class:`DataMindActorRolloutRefWorker` uses that worker for the actor; the trainer installs the
  loss with :meth:`~DataMindActorRolloutRefWorker.set_datamind_loss`, passing the config it parsed
  once (the workers never parse the raw block).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from verl.single_controller.base.decorator import (
    Dispatch,
    make_nd_compute_dataproto_dispatch_fn,
    register,
)
from verl.utils import tensordict_utils as tu
from verl.workers.engine_workers import ActorRolloutRefWorker, TrainingWorker

from datamind_ext.integrations.verl.contract import (
    GAMMA_KEY,
    IS_EXPERT,
    IS_VOID,
    NUM_MINI_BATCH_KEY,
    RL_TOKENS_KEY,
    SCHEDULE_METRICS_KEY,
    SFT_TOKENS_KEY,
    STEP_KEY,
    TRAINER_MODE,
    DataMindLossConfig,
)
from datamind_ext.integrations.verl.loss import datamind_actor_loss
from datamind_ext.losses import BatchStats, build_schedule
from datamind_ext.protocol import render_messages


def expert_row(tokenizer: Any, messages: Sequence[Any]) -> dict[str, torch.Tensor]:
    """One expert trajectory as ``prompts`` / ``responses`` / ``response_mask`` int64 tensors."""
    rendered = render_messages(tokenizer, messages)
    try:
        split = rendered.loss_mask.index(1)
    except ValueError:
        raise ValueError("expert trajectory has no assistant token to train on") from None
    return {
        "prompts": torch.tensor(rendered.input_ids[:split], dtype=torch.int64),
        "responses": torch.tensor(rendered.input_ids[split:], dtype=torch.int64),
        "response_mask": torch.tensor(rendered.loss_mask[split:], dtype=torch.int64),
    }


def _nested(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.nested.as_nested_tensor(tensors, layout=torch.jagged)


def rows_to_tensordict(rows: list[dict[str, Any]]) -> Any:
    """verl V1's per-sample layout (as its agent loop writes it) for rollout and expert rows.

    Each row needs ``prompts``, ``responses``, ``response_mask``; optional ``old_log_probs``,
    ``advantages`` (response length, default zeros), ``is_expert``, ``is_void`` (default 0),
    ``rm_scores`` and ``entropy``.
    """
    from tensordict import TensorDict

    fields: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("prompts", "responses", "response_mask", "loss_mask", "input_ids", "position_ids",
                        "old_log_probs", "advantages")
    }
    extra = [k for k in ("rm_scores", "entropy") if all(k in r for r in rows)]
    for k in extra:
        fields[k] = []
    is_expert, is_void = [], []
    for r in rows:
        resp_len = len(r["responses"])
        ids = torch.cat([r["prompts"], r["responses"]])
        fields["prompts"].append(r["prompts"])
        fields["responses"].append(r["responses"])
        fields["response_mask"].append(r["response_mask"])
        fields["loss_mask"].append(r["response_mask"])
        fields["input_ids"].append(ids)
        fields["position_ids"].append(torch.arange(len(ids), dtype=torch.int64))
        for k in ("old_log_probs", "advantages"):
            fields[k].append(torch.as_tensor(r.get(k, torch.zeros(resp_len)), dtype=torch.float32))
        for k in extra:
            fields[k].append(torch.as_tensor(r[k], dtype=torch.float32))
        is_expert.append(int(r.get(IS_EXPERT, 0)))
        is_void.append(int(r.get(IS_VOID, 0)))
    td = {k: _nested(v) for k, v in fields.items()}
    td[IS_EXPERT] = torch.tensor(is_expert, dtype=torch.int64)
    td[IS_VOID] = torch.tensor(is_void, dtype=torch.int64)
    return TensorDict(td, batch_size=[len(rows)])


def _row_sums(nested: torch.Tensor) -> torch.Tensor:
    """Per-row sum of a nested (jagged) or padded 2-D tensor."""
    if nested.is_nested:
        return torch.stack([t.sum() for t in nested.unbind()])
    return nested.sum(dim=-1)


def _flags(data: Any, key: str, n: int) -> torch.Tensor:
    return data[key].reshape(-1).float().cpu() if key in data else torch.zeros(n)


def local_stat_sums(data: Any, success_threshold: float) -> list[float]:
    """``[successes, rollouts, entropy sum, tokens]`` of this rank's rollouts (expert rows excluded).

    A rollout succeeds when its reward (the sum of its ``rm_scores``) is above the threshold; void
    rollouts count as rollouts (they failed) but not in the entropy, which covers RL tokens only.
    """
    n = data.shape[0]
    rollout = 1.0 - _flags(data, IS_EXPERT, n)
    sums = [0.0, 0.0, 0.0, 0.0]
    if "rm_scores" in data:
        scores = _row_sums(data["rm_scores"]).float().cpu()
        sums[0] = float(((scores > success_threshold).float() * rollout).sum())
        sums[1] = float(rollout.sum())
    if "entropy" in data:
        valid = rollout * (1.0 - _flags(data, IS_VOID, n))
        ent = data["entropy"].unbind() if data["entropy"].is_nested else list(data["entropy"])
        masks = data["response_mask"].unbind() if data["response_mask"].is_nested else list(data["response_mask"])
        per_row = torch.tensor([float((e.float() * m.float()).sum()) for e, m in zip(ent, masks)])
        toks = torch.tensor([float(m.sum()) for m in masks])
        sums[2], sums[3] = float((per_row * valid).sum()), float((toks * valid).sum())
    return sums


def _all_reduce_sum(values: list[float], group: Any) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64)
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM, group=group)
    return t.tolist()


def _step_of(data: Any) -> int:
    step = tu.get_non_tensor_data(data=data, key=STEP_KEY, default=None)
    if step is None and "global_steps" in data:
        steps = tu.get(data, "global_steps")
        step = steps[0] if isinstance(steps, list | tuple) else steps
        step = step.item() if isinstance(step, torch.Tensor) and step.numel() == 1 else step
    if step is None:
        raise RuntimeError(f"the batch carries no step ({STEP_KEY} or global_steps) for the γ schedule")
    return int(step)


class DataMindTrainingWorker(TrainingWorker):
    """TrainingWorker that writes γ and the RL/SFT global token counts into each mini-batch.

    Until :func:`install_loss` gives it a config, it is verl's TrainingWorker unchanged.
    """

    loss_config: DataMindLossConfig | None = None

    def set_loss_config(self, cfg: DataMindLossConfig) -> None:
        self.loss_config = cfg
        self._schedule = build_schedule(cfg.schedule)

    def _batch_stats(self, data: Any, cfg: DataMindLossConfig) -> BatchStats:
        """Success rate and RL-token entropy over the whole step (all ranks): adaptive γ input."""
        sums = local_stat_sums(data, cfg.success_threshold)
        succ, rows, ent_sum, toks = _all_reduce_sum(sums, self.engine.get_data_parallel_group())
        return BatchStats(
            success_rate=succ / rows if rows > 0 else None,
            entropy=ent_sum / toks if toks > 0 else None,
        )

    @register(dispatch_mode=make_nd_compute_dataproto_dispatch_fn(mesh_name="train"), blocking=False)
    def train_mini_batch(self, data: Any) -> Any:
        cfg = self.loss_config
        if cfg is None:
            return super().train_mini_batch(data)
        num_mb = tu.pop(data, key=NUM_MINI_BATCH_KEY, default=None)
        if num_mb is not None:
            # expert rows were added by DataMindTrainerSync: keep the configured number of
            # optimizer steps by splitting into mini-batches by count, not by size
            tu.pop(data, key="mini_batch_size", default=None)
            tu.assign_non_tensor(data, num_mini_batch=int(num_mb))
        if IS_EXPERT not in data:
            # without row roles, expert rows would silently count as rollouts in the RL term
            raise RuntimeError(f"the update batch has no {IS_EXPERT} field; run the trainer with "
                               f"trainer.v1.trainer_mode={TRAINER_MODE}")
        step = _step_of(data)
        gamma, schedule_metrics = self._schedule(step, self._batch_stats(data, cfg))
        tu.assign_non_tensor(data, **{GAMMA_KEY: float(gamma), SCHEDULE_METRICS_KEY: dict(schedule_metrics)})
        return super().train_mini_batch(data)

    @register(dispatch_mode=make_nd_compute_dataproto_dispatch_fn(mesh_name="train"), blocking=False)
    def train_batch(self, data: Any) -> Any:
        if self.loss_config is not None:
            n = data.shape[0]
            tokens = _row_sums(data["response_mask"]).float().cpu()
            expert, void = _flags(data, IS_EXPERT, n), _flags(data, IS_VOID, n)
            local = [float((tokens * (1 - expert) * (1 - void)).sum()), float((tokens * expert).sum())]
            rl_tokens, sft_tokens = _all_reduce_sum(local, self.engine.get_data_parallel_group())
            tu.assign_non_tensor(data, **{RL_TOKENS_KEY: rl_tokens, SFT_TOKENS_KEY: sft_tokens})
        return super().train_batch(data)


def install_loss(training_worker: DataMindTrainingWorker, cfg: DataMindLossConfig) -> None:
    """Point a DataMindTrainingWorker at the combined loss with ``cfg``."""
    training_worker.set_loss_config(cfg)
    training_worker.set_loss_fn(partial(datamind_actor_loss, cfg))


class DataMindActorRolloutRefWorker(ActorRolloutRefWorker):
    """verl's hybrid worker whose actor is a :class:`DataMindTrainingWorker`."""

    actor_worker_cls = DataMindTrainingWorker

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def set_datamind_loss(self, cfg: DataMindLossConfig) -> None:
        """Install the combined loss with the config the trainer parsed (called once, after init_model)."""
        if self.actor is not None:
            install_loss(self.actor, cfg)
