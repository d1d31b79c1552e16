"""Every private verl 0.9.1 name the verl wing overrides or touches, and why no public hook serves.

``tests/test_verl_private_api.py`` checks each entry against the installed verl
(``inspect.signature`` for callables, the type for registries), so a verl upgrade that renames
or re-signs one fails by name instead of misbehaving at step 300. Public hooks used instead
where verl has one: ``on_init_end`` (installs the loss), ``ActorRolloutRefWorker.actor_worker_cls``
(the actor's worker class), ``set_loss_fn`` (the loss), and the public registries.
"""

from __future__ import annotations

from typing import NamedTuple


class PrivateUse(NamedTuple):
    target: str  # "module:Qualified.name"
    params: tuple[str, ...] | None  # the parameters we rely on (None: a registry dict, or see `reads`)
    why: str
    reads: str | None = None  # for a public property: the private attribute it must still return


PRIVATE_USES: tuple[PrivateUse, ...] = (
    PrivateUse(
        "verl.trainer.ppo.v1.replay_buffer:ReplayBuffer._evict_terminal_groups",
        ("self", "global_steps", "partition_id", "eviction_reasons"),
        "overridden (DapoDropTrackingReplayBuffer): the only place that sees the uids the DAPO filter "
        "evicts; sample() returns counts only, and those prompts still get their expert row",
    ),
    PrivateUse(
        "verl.trainer.ppo.v1.replay_buffer:ReplayBuffer.__init__",
        ("self", "trainer_mode", "trainer_config", "max_off_policy_threshold", "max_off_policy_strategy",
         "sampler_kwargs", "poll_interval", "refill_fn", "filter_groups_metric", "train_batch_size",
         "gen_batch_size", "max_inflight_gen_batches", "sync_refill_failed_groups"),
        "DapoDropTrackingReplayBuffer.like rebuilds verl's buffer from its same-named attributes, so it "
        "keeps every setting verl chose (a custom_sampler is built without the DAPO settings)",
    ),
    PrivateUse(
        "verl.trainer.ppo.v1.trainer_base:PPOTrainer._build_replay_buffer",
        ("self",),
        "overridden: builds the tracking buffer and keeps trainer_mode='sync' (verl compares the mode "
        "name with 'sync'); trainer.v1.sampler.custom_sampler skips the DAPO settings",
    ),
    PrivateUse(
        "verl.trainer.ppo.v1.trainer_base:PPOTrainer._submit_batch_to_rollout",
        ("self", "batch"),
        "overridden: the one place the trainer sees each prompt's extra_info before the DAPO filter can "
        "evict its group",
    ),
    PrivateUse(
        "verl.trainer.ppo.v1.trainer_base:PPOTrainer._init_resource_pool_mgr",
        ("self",),
        "overridden: maps the actor roles to DataMindActorRolloutRefWorker; no v1 config key selects "
        "the actor worker class",
    ),
    PrivateUse(
        "verl.trainer.ppo.v1.trainer_base:PPOTrainer._update_actor",
        ("self", "batch", "metrics"),
        "overridden: no hook runs between the advantages and the actor update, where expert rows join "
        "the batch",
    ),
    PrivateUse(
        "verl.single_controller.base.worker:Worker._query_dispatch_info",
        ("self", "mesh_name"),
        "called on the actor worker group (a Ray method of every worker) for the actor's data-parallel "
        "size, which expert rows are padded to; verl's own _balance_batch and sft_trainer_ray do the same",
    ),
    PrivateUse(
        "verl.experimental.agent_loop.agent_loop:_agent_loop_registry",
        None,
        "written by import path ({'_target_': path}, what @register stores): registering must not "
        "import the agent loop while `import verl` runs; the public @register needs the class",
    ),
    PrivateUse(
        "verl.workers.rollout.base:_ROLLOUT_REGISTRY",
        None,
        "the rollout adapter by import path; verl has no register function for it",
    ),
    PrivateUse(
        "verl.workers.rollout.replica:RolloutReplica.server_handle",
        None,
        "HFReplica.launch_servers sets _server_handle, as verl's own replicas do: the public property "
        "returns it and launch_servers has no return value to carry it",
        reads="_server_handle",
    ),
    PrivateUse(
        "verl.workers.rollout.replica:RolloutReplica.server_address",
        None,
        "HFReplica.launch_servers sets _server_address (same reason)",
        reads="_server_address",
    ),
    PrivateUse(
        "verl.workers.engine.base:EngineRegistry._engines",
        None,
        "read by the CPU shims only, so registering the CPU engine stays idempotent",
    ),
    PrivateUse(
        "verl.utils.distributed:initialize_global_process_group",
        ("timeout_second",),
        "replaced by the CPU shims only (DATAMIND_VERL_CPU=1): verl builds 'cpu:gloo,cpu:gloo'",
    ),
    PrivateUse(
        "verl.utils.distributed:initialize_global_process_group_ray",
        ("timeout_second", "backend"),
        "replaced by the CPU shims only (DATAMIND_VERL_CPU=1), same reason",
    ),
)
