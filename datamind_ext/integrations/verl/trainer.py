"""The ``datamind_sync`` trainer mode: verl's sync PPO trainer plus the DataMind actor update.

Run with stock ``python -m verl.trainer.main_ppo ... trainer.v1.trainer_mode=datamind_sync``.
What it changes, and why each needs the trainer (verl's own hooks stop short of it):

1. Config: the ``datamind_loss`` block is parsed once, here (``contract.resolve_loss_config``),
   and handed to the actor workers in the public ``on_init_end`` hook.
2. Workers: the actor role runs :class:`DataMindActorRolloutRefWorker`, which installs the
   combined loss and the per-step γ / global token bookkeeping (see ``loss.py``).
3. Expert rows: right before the actor update (after old log-probs and GRPO advantages, so expert
   sequences never enter group statistics), one expert row per prompt of the update batch is
   rendered by the one renderer and put into TransferQueue next to the rollouts, as extra rows of
   the same batch: the same forward / log-prob path as rollouts (no extra full-vocabulary
   softmax) and their tokens count in the dynamic batch-size budget. They are built exactly like
   verl's own synthetic padding samples (``verl.trainer.ppo.padding_utils``): a real sample as
   template, sequence fields replaced. They are cleared after the update.
4. Layout: expert rows are padded (with zero-mask rows) to a multiple of ``dp × mini-batches`` and
   interleaved so every rank and every mini-batch gets rollouts and experts; the worker switches
   the split from ``mini_batch_size`` to ``num_mini_batch`` so the optimizer steps per update stay
   what the user configured.
5. The mode name: verl compares ``trainer_mode`` with ``"sync"`` in several places (replay buffer,
   refill, checkpoint/resume), so the instance keeps ``trainer_mode = "sync"`` internally.

Zero-variance groups: verl's DAPO filter evicts them from TransferQueue before the update, so the
trainer remembers each submitted prompt's expert trajectory (``_submit_batch_to_rollout``) and the
replay buffer (:class:`DapoDropTrackingReplayBuffer`, built with the settings verl chose for its
own) reports which groups it dropped; those prompts get an expert row too (SFT only).

The private verl methods overridden here are listed, with why, in ``private_api.py``.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import ray
import torch
from tensordict import TensorDict
from verl.trainer.ppo.utils import Role
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils import tensordict_utils as tu
from verl.utils.tensordict_utils import list_of_dict_to_tensordict
from verl.utils.transferqueue_utils import tq

from datamind_ext.integrations.verl import registration
from datamind_ext.integrations.verl.contract import (
    EXPERT_UID_PREFIX,
    IS_EXPERT,
    IS_VOID,
    NUM_MINI_BATCH_KEY,
    ROLE_FIELDS,
    STEP_KEY,
    VERL_SYNC_MODE,
    DataMindLossConfig,
    check_actor_settings,
    resolve_loss_config,
)
from datamind_ext.integrations.verl.worker import (
    DataMindActorRolloutRefWorker,
    expert_row,
)
from datamind_ext.records import RLExtraInfo, RolloutExtraFields

#: How long a submitted prompt's expert trajectory is remembered without reaching an update.
EXPERT_MEMORY_STEPS = 4


def expert_messages_from(extra_info: Any) -> list[dict[str, str]] | None:
    """The expert trajectory stored in a row's ``extra_info`` (a messages list or its JSON text)."""
    return RLExtraInfo.read(extra_info).expert()


def padded_expert_count(n_experts: int, dp_size: int, num_mini_batch: int) -> int:
    """Smallest multiple of ``dp_size × num_mini_batch`` holding ``n_experts`` rows."""
    unit = dp_size * num_mini_batch
    return max(unit, math.ceil(n_experts / unit) * unit) if n_experts else 0


def interleave(rl: list[Any], experts: list[Any], dp_size: int, num_mini_batch: int) -> list[Any]:
    """Order rows so each rank's contiguous chunk, and each of its mini-batches, holds both kinds.

    verl dispatches contiguous equal chunks to ranks and (without shuffle) cuts each chunk into
    contiguous mini-batches; ``rl`` is already seq-length balanced across ranks by verl.
    """
    assert len(rl) % (dp_size * num_mini_batch) == 0 and len(experts) % (dp_size * num_mini_batch) == 0
    rl_rank, ex_rank = len(rl) // dp_size, len(experts) // dp_size
    rl_mb, ex_mb = rl_rank // num_mini_batch, ex_rank // num_mini_batch
    out: list[Any] = []
    for r in range(dp_size):
        rl_r, ex_r = rl[r * rl_rank : (r + 1) * rl_rank], experts[r * ex_rank : (r + 1) * ex_rank]
        for j in range(num_mini_batch):
            out += rl_r[j * rl_mb : (j + 1) * rl_mb] + ex_r[j * ex_mb : (j + 1) * ex_mb]
    return out


def expert_sample(template: dict[str, Any], row: dict[str, torch.Tensor] | None, uid: str) -> dict[str, Any]:
    """A TransferQueue sample for one expert row (or a zero-mask filler when ``row`` is None).

    Every field of the rollout ``template`` is kept so TransferQueue sees one schema; sequence
    fields are replaced, and per-response-token tensors (log-probs, advantages, scores...) become
    zeros of the new length, which the loss never reads for expert rows (masks exclude them).
    """
    if row is None:  # filler: one masked token after a one-token prompt
        row = {"prompts": template["prompts"][:1].clone(), "responses": template["responses"][:1].clone(),
               "response_mask": torch.zeros(1, dtype=torch.int64)}
    old_resp = int(template["responses"].shape[0])
    prompts, responses, mask = row["prompts"], row["responses"], row["response_mask"]
    input_ids = torch.cat([prompts, responses])
    sample: dict[str, Any] = {}
    for key, value in template.items():
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == old_resp and key not in (
            "prompts", "input_ids", "position_ids", "attention_mask"
        ):
            sample[key] = torch.zeros((len(responses), *value.shape[1:]), dtype=value.dtype)
        elif isinstance(value, torch.Tensor):
            sample[key] = value.clone()
        else:
            sample[key] = value
    sample.update(
        prompts=prompts, responses=responses, response_mask=mask, loss_mask=mask, input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids), position_ids=torch.arange(len(input_ids), dtype=torch.int64),
        uid=uid, num_turns=0, **{IS_EXPERT: torch.tensor(1, dtype=torch.int64), IS_VOID: torch.tensor(0, dtype=torch.int64)},
    )
    sample.pop("routed_experts", None)
    if "multi_modal_inputs" in sample:
        sample["multi_modal_inputs"] = {}
    return sample


class DapoDropTrackingReplayBuffer(ReplayBuffer):
    """verl's sync replay buffer, also recording the uids its DAPO filter evicts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datamind_dapo_dropped: set[str] = set()

    @classmethod
    def like(cls, buffer: ReplayBuffer) -> DapoDropTrackingReplayBuffer:
        """A new buffer with every constructor setting verl chose for ``buffer`` (stored as attributes)."""
        names = [n for n in inspect.signature(ReplayBuffer.__init__).parameters if n != "self"]
        return cls(**{n: getattr(buffer, n) for n in names})

    def _evict_terminal_groups(self, global_steps, partition_id, eviction_reasons):
        if partition_id == "train":
            self.datamind_dapo_dropped.update(str(u) for u in eviction_reasons[1])
        return super()._evict_terminal_groups(global_steps, partition_id, eviction_reasons)


class DataMindTrainerSync(PPOTrainerSync):
    """Sync PPO trainer whose actor update is ``γ(t)·L_SFT + (1−γ(t))·L_DAPO``."""

    def __init__(self, config: Any) -> None:
        # parsed once, before verl builds anything; the workers get this object (on_init_end)
        self.datamind_loss: DataMindLossConfig = resolve_loss_config(config.actor_rollout_ref)
        check_actor_settings(config.actor_rollout_ref, self.datamind_loss)
        self._datamind_expert_by_uid: dict[str, tuple[int, list[dict[str, str]] | None]] = {}
        self._datamind_actor_dp: int | None = None
        super().__init__(config)

    def _build_replay_buffer(self) -> ReplayBuffer:
        self.trainer_mode = VERL_SYNC_MODE  # the registered name must not select verl's async paths
        buffer = super()._build_replay_buffer()
        return DapoDropTrackingReplayBuffer.like(buffer) if type(buffer) is ReplayBuffer else buffer

    def _init_resource_pool_mgr(self) -> None:
        super()._init_resource_pool_mgr()
        worker = ray.remote(DataMindActorRolloutRefWorker)
        for role in (Role.ActorRollout, Role.ActorRolloutRef, Role.Actor):
            if role in self.role_worker_mapping:
                self.role_worker_mapping[role] = worker

    def on_init_end(self) -> None:
        if self.datamind_loss.enable:
            self.actor_rollout_wg.set_datamind_loss(self.datamind_loss)
        super().on_init_end()

    def _submit_batch_to_rollout(self, batch) -> int:
        self.remember_experts(batch)
        return super()._submit_batch_to_rollout(batch)

    def remember_experts(self, batch: TensorDict) -> None:
        """Remember each submitted prompt's expert trajectory, for groups the DAPO filter drops."""
        uids = tu.get(batch, "uid", default=None) or []
        infos = tu.get(batch, "extra_info", default=None) or [None] * len(uids)
        store = self._datamind_expert_by_uid
        for uid, info in zip(uids, infos):
            store[str(uid)] = (int(self.global_steps), expert_messages_from(info))
        for uid in [u for u, (step, _) in store.items() if step < self.global_steps - EXPERT_MEMORY_STEPS]:
            del store[uid]

    def _update_actor(self, batch, metrics: dict):
        return self.update_actor_with_experts(batch, metrics)

    def update_actor_with_experts(self, batch, metrics: dict):
        """verl's actor update on the rollouts plus one expert row per prompt; returns ``batch``."""
        batch.extra_info[STEP_KEY] = int(self.global_steps)
        if not self.datamind_loss.enable:
            return super()._update_actor(batch, metrics)
        combined, extra_keys = self._with_expert_rows(batch, metrics)
        try:
            super()._update_actor(combined, metrics)
        finally:
            if extra_keys:
                tq.kv_clear(keys=extra_keys, partition_id=batch.partition_id)
        return batch

    def _dapo_dropped(self) -> set[str]:
        dropped = getattr(self.replay_buffer, "datamind_dapo_dropped", None)
        if dropped is None:
            return set()
        out = set(dropped)
        dropped.clear()
        return out

    def _with_expert_rows(self, batch, metrics: dict):
        pid = batch.partition_id
        real = [i for i, tag in enumerate(batch.tags) if not tag.get("is_padding", False)]
        info = tq.kv_batch_get(keys=batch.keys, partition_id=pid, select_fields=["uid", "extra_info", "extra_fields"])
        uids = [str(u) for u in tu.get(info, "uid")]
        extra_infos = tu.get(info, "extra_info", default=None) or [None] * len(uids)
        extra_fields = tu.get(info, "extra_fields", default=None) or [None] * len(uids)
        # role flags for the rollouts: never expert; void from the agent loop's extra_fields
        flags = {
            IS_EXPERT: torch.zeros(len(batch), dtype=torch.int64),
            IS_VOID: torch.tensor([int(RolloutExtraFields.is_void(extra_fields[i])) for i in range(len(batch))],
                                  dtype=torch.int64),
        }
        tq.kv_batch_put(keys=batch.keys, partition_id=pid, fields=TensorDict(flags, batch_size=len(batch)))
        # share of this step's (non-padding) rollouts the agent loop flagged void: the recipes'
        # summary reports it per step (verl logs no agent-loop extra field itself)
        metrics["datamind/void_rate"] = float(flags[IS_VOID][real].float().mean()) if real else 0.0

        # one expert row per prompt of the update batch, plus one per prompt whose group the
        # DAPO filter dropped since the last update (the paper gives those SFT only)
        store = self._datamind_expert_by_uid
        prompts: dict[str, list[dict[str, str]] | None] = {}
        for i in real:
            if uids[i] not in prompts:
                remembered = store.pop(uids[i], (0, None))[1]
                prompts[uids[i]] = remembered or expert_messages_from(extra_infos[i])
        dropped = sorted(self._dapo_dropped() - set(prompts))
        for uid in dropped:
            prompts[uid] = store.pop(uid, (0, None))[1]
        rows = [expert_row(self.tokenizer, m) for m in prompts.values() if m is not None]
        metrics["datamind/expert_rows"] = len(rows)
        metrics["datamind/expert_rows_from_dropped_groups"] = sum(prompts[u] is not None for u in dropped)
        metrics["datamind/prompts_without_expert"] = len(prompts) - len(rows)
        if not rows:
            return batch, []

        dp = self._actor_dp_size()
        mini = self.config.actor_rollout_ref.actor.ppo_mini_batch_size * self.config.actor_rollout_ref.rollout.n
        num_mb = max(1, len(batch) // mini)
        total = padded_expert_count(len(rows), dp, num_mb)
        template = tq.kv_batch_get(keys=[batch.keys[real[0]]], partition_id=pid)[0]
        template = {k: template[k] for k in template.keys()}  # noqa: SIM118 - a TensorDict iterates over its batch dim
        template.update({IS_EXPERT: torch.tensor(0), IS_VOID: torch.tensor(0)})
        samples = [expert_sample(template, rows[j] if j < len(rows) else None, f"{EXPERT_UID_PREFIX}_{self.global_steps}_{j}")
                   for j in range(total)]
        keys = [s["uid"] for s in samples]
        tags = [{"status": "success", "is_expert": True,
                 "prompt_len": len(s["prompts"]), "response_len": len(s["responses"]),
                 "seq_len": len(s["input_ids"]), "global_steps": self.global_steps} for s in samples]
        tq.kv_batch_put(keys=keys, partition_id=pid, fields=list_of_dict_to_tensordict(samples), tags=tags)
        order = interleave(list(range(len(batch))), list(range(len(batch), len(batch) + total)), dp, num_mb)
        all_keys, all_tags = batch.keys + keys, batch.tags + tags
        combined = type(batch)(
            keys=[all_keys[i] for i in order], tags=[all_tags[i] for i in order], partition_id=pid,
            # verl's dispatch fetches only the listed fields: add the role flags written above
            fields=None if batch.fields is None else [*batch.fields, *(f for f in ROLE_FIELDS if f not in batch.fields)],
            extra_info=dict(batch.extra_info),
        )
        combined.extra_info[NUM_MINI_BATCH_KEY] = num_mb
        return combined, keys

    def _actor_dp_size(self) -> int:
        if self._datamind_actor_dp is None:
            # no public accessor: verl's own _balance_batch / sft_trainer_ray ask the worker group this way
            self._datamind_actor_dp = max(self.actor_rollout_wg._query_dispatch_info("actor")) + 1
        return self._datamind_actor_dp


registration.loaded(__name__)
