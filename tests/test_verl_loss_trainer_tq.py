"""The datamind_sync trainer's expert rows in a real TransferQueue (Ray, in-process; slow).

The trainer is built with its public constructor (which builds verl's replay buffer but no Ray
workers; ``init()`` would start those), rollouts are put into TransferQueue the way verl's agent
loop stores them, and ``update_actor_with_experts`` (what the trainer's actor update runs) calls a
recording stand-in for the actor worker group.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow

MSGS = {
    "u0": [{"role": "user", "content": "mean of a?"}, {"role": "assistant", "content": "<answer>2.5</answer>"}],
    "u1": [{"role": "user", "content": "rows?"}, {"role": "assistant", "content": "<code>len(df)</code>"},
           {"role": "user", "content": "<interpreter>42</interpreter>"}, {"role": "assistant", "content": "<answer>42</answer>"}],
    "u2": [{"role": "user", "content": "max of b?"}, {"role": "assistant", "content": "<answer>7</answer>"}],
}


@pytest.fixture(scope="module")
def tq():
    import ray
    from omegaconf import OmegaConf

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    import transfer_queue as tq

    tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
    yield tq
    ray.shutdown()


class RecordingWorkerGroup:
    """Stands in for actor_rollout_wg: dp size 2, records what update_actor receives."""

    def __init__(self, tq) -> None:
        self.tq, self.seen = tq, None

    def _query_dispatch_info(self, mesh_name: str) -> list[int]:
        assert mesh_name == "actor"
        return [0, 1]  # the dp rank of each of the two workers

    def update_actor(self, batch):
        from tensordict import TensorDict

        # like verl's dispatch (kv_batch_meta2batch_meta): only the fields the meta lists
        self.seen = (batch, self.tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id,
                                                 select_fields=batch.fields))
        return TensorDict({}, batch_size=[]).set_non_tensor("metrics", {"mfu": 0.0, "loss": 1.0})


def test_update_adds_one_expert_row_per_prompt_including_dropped_groups(tq, tiny_tokenizer) -> None:
    from hydra import compose, initialize_config_module
    from transfer_queue import KVBatchMeta
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    from datamind_ext.integrations.verl.contract import NUM_MINI_BATCH_KEY, STEP_KEY
    from datamind_ext.integrations.verl.trainer import (
        DapoDropTrackingReplayBuffer,
        DataMindTrainerSync,
    )
    from datamind_ext.integrations.verl.worker import expert_row
    from datamind_ext.records import RolloutExtraFields

    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        config = compose(config_name="ppo_trainer", overrides=[
            "trainer.v1.trainer_mode=datamind_sync", "actor_rollout_ref.actor.ppo_mini_batch_size=1",
            "actor_rollout_ref.rollout.n=4", "+actor_rollout_ref.datamind_loss.schedule.name=linear",
        ])
    g = torch.Generator().manual_seed(0)
    keys, samples = [], []
    for uid in ("u0", "u1"):
        for s in range(4):
            prompt, resp = torch.randint(5, 200, (6,), generator=g), torch.randint(5, 200, (5 + s,), generator=g)
            ids = torch.cat([prompt, resp])
            keys.append(f"{uid}_{s}_0")
            samples.append({
                "prompts": prompt, "responses": resp, "response_mask": torch.ones(5 + s, dtype=torch.int64),
                "loss_mask": torch.ones(5 + s, dtype=torch.int64), "input_ids": ids, "position_ids": torch.arange(len(ids)),
                "old_log_probs": -torch.rand(5 + s, generator=g), "advantages": torch.randn(5 + s, generator=g),
                "rm_scores": torch.zeros(5 + s), "uid": uid, "num_turns": 2,
                "extra_info": {"expert_messages": MSGS[uid], "task_id": uid},
                "extra_fields": RolloutExtraFields(dm_void=int(uid == "u1" and s == 3)).to_dict(),
            })
    tags = [{"status": "success", "seq_len": len(x["input_ids"])} for x in samples]
    tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict(samples), tags=tags)

    trainer = DataMindTrainerSync(config)
    assert type(trainer.replay_buffer) is DapoDropTrackingReplayBuffer and trainer.trainer_mode == "sync"
    # set by init() in a real run: the tokenizer, the step, the actor worker group
    trainer.tokenizer, trainer.global_steps = tiny_tokenizer, 3
    trainer.actor_rollout_wg = wg = RecordingWorkerGroup(tq)
    # u2 was submitted at this step, then its group was dropped by the DAPO filter
    trainer.remember_experts(list_of_dict_to_tensordict([{"uid": "u2", "extra_info": {"expert_messages": MSGS["u2"]}}]))
    trainer.replay_buffer.datamind_dapo_dropped.add("u2")
    metrics: dict = {}
    fields = sorted(samples[0])  # as the replay buffer lists them: the rollouts' own fields
    batch = KVBatchMeta(keys=list(keys), tags=list(tags), partition_id="train", fields=fields, extra_info={})
    returned = trainer.update_actor_with_experts(batch, metrics)

    assert returned is batch  # metrics downstream see the rollouts only
    assert metrics["datamind/expert_rows"] == 3 and metrics["datamind/expert_rows_from_dropped_groups"] == 1
    seen_batch, data = wg.seen
    assert seen_batch.extra_info[NUM_MINI_BATCH_KEY] == 2 and seen_batch.extra_info[STEP_KEY] == 3
    # 8 rollouts + 3 experts padded to 4 (dp 2 × 2 mini-batches), interleaved per rank and mini-batch
    assert len(seen_batch.keys) == 12
    flags = data["is_expert"].tolist()
    for chunk in (flags[:6], flags[6:]):
        assert chunk[:3].count(1) == 1 and chunk[3:].count(1) == 1
    assert data["is_void"].tolist().count(1) == 1
    # expert rows are the one renderer's tokens for the remembered / stored trajectories
    experts = [i for i, f in enumerate(flags) if f]
    rendered = {uid: expert_row(tiny_tokenizer, MSGS[uid]) for uid in MSGS}
    got = []
    for i in experts:
        ids = data["input_ids"][i]
        for uid, row in rendered.items():
            if torch.equal(ids, torch.cat([row["prompts"], row["responses"]])):
                assert torch.equal(data["response_mask"][i], row["response_mask"])
                got.append(uid)
    assert sorted(got) == ["u0", "u1", "u2"]
    fillers = [i for i in experts if int(data["response_mask"][i].sum()) == 0]
    assert len(fillers) == 1
    for i in experts:
        assert not data["advantages"][i].any() and not data["old_log_probs"][i].any()
    # the expert keys are gone after the update; the rollouts stay for verl's own cleanup
    remaining = tq.kv_list(partition_id="train")
    listed = set(remaining.get("train", remaining) if isinstance(remaining, dict) else remaining)
    assert not any(k.startswith("datamind_expert") for k in listed)
    assert set(keys) <= listed
