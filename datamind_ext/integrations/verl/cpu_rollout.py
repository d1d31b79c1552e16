"""A CPU rollout backend for verl 0.9.1: our transformers engine behind verl's rollout registries.

verl 0.9.1 ships vLLM, SGLang and TensorRT-LLM rollout servers only, so neither the agent loop
nor ``main_ppo`` runs on a CPU machine. This module registers, under the rollout name
``datamind_hf`` (``actor_rollout_ref.rollout.name=datamind_hf``):

* :class:`HFRolloutServer`, a Ray actor wrapping :class:`~datamind_ext.generation.HFGenerationEngine`
  with the token-in/token-out ``generate`` verl's ``LLMServerClient`` calls, weight loading,
  no-op memory lifecycle methods, and an OpenAI-compatible HTTP address;
* :class:`HFReplica` in ``RolloutReplicaRegistry`` (starts or finds the server actor);
* :class:`HFServerAdapter` in ``_ROLLOUT_REGISTRY[(name, "async")]``, built inside the FSDP worker
  (weight sync: every rank drains the parameter generator, rank 0 ships tensors to the server).

Sync trainer mode only (``trainer.v1.trainer_mode=sync``, which forces verl's naive checkpoint
engine, a plain call into the adapter). For tests and laptops: GPU users keep vLLM/SGLang.
Why not a real engine's CPU build: see the README section "Multi-turn rollout".
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator
from typing import Any

import ray
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

ROLLOUT_NAME = "datamind_hf"  # registered by registration.TABLE (by import path)
log = logging.getLogger(__name__)
_WEIGHT_CHUNK = 64  # tensors per Ray call during weight sync


def server_actor_name(replica_rank: int) -> str:
    return f"datamind_hf_rollout_server_{replica_rank}"


class HFRolloutServer:
    """The server side of one replica (instantiated as a Ray actor by :class:`HFReplica`)."""

    def __init__(self, model_path: str, max_batch_size: int = 64, max_model_len: int | None = None,
                 http: bool = True) -> None:
        from datamind_ext.generation.engine import HFGenerationEngine

        self.engine = HFGenerationEngine(model_path, max_batch_size=max_batch_size, max_model_len=max_model_len)
        self.http = None
        if http:
            from datamind_ext.generation.server import BackgroundServer

            # Loopback only: this CPU backend serves agent loops on its own machine (tests, the CPU
            # quickstart); binding the node's IP would expose the server on an external interface.
            self.http = BackgroundServer(self.engine, host="127.0.0.1").start()
        self.global_steps: int | None = None

    def address(self) -> str:
        return f"{self.http.host}:{self.http.port}" if self.http else f"datamind-hf-{id(self)}"

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any],
                       image_data: Any = None, video_data: Any = None, **kwargs: Any) -> Any:
        if image_data or video_data:
            raise ValueError("the datamind_hf CPU rollout is text-only")
        g = await self.engine.generate(prompt_ids, dict(sampling_params))
        return TokenOutput(
            token_ids=g.token_ids,
            log_probs=g.log_probs,
            stop_reason="aborted" if g.finish_reason == "abort" else "completed",
            num_preempted=0,
            extra_fields={"finish_reason": g.finish_reason, "global_steps": self.global_steps},
        )

    def load_weights(self, named_tensors: list[tuple[str, Any]], global_steps: int | None = None) -> int:
        if global_steps is not None:
            self.global_steps = global_steps
        return self.engine.load_weights(named_tensors)

    def batch_stats(self) -> dict[str, int]:
        return {"batches_run": self.engine.batches_run, "max_batch_seen": self.engine.max_batch_seen}

    # Lifecycle calls verl fans out to every server: nothing to free on CPU.
    async def wake_up(self, *a: Any, **k: Any) -> None: ...
    async def sleep(self, *a: Any, **k: Any) -> None: ...
    async def clear_kv_cache(self, *a: Any, **k: Any) -> None: ...
    async def release_kv_cache(self, *a: Any, **k: Any) -> None: ...
    async def resume_kv_cache(self, *a: Any, **k: Any) -> None: ...
    async def start_profile(self, *a: Any, **k: Any) -> None: ...
    async def stop_profile(self, *a: Any, **k: Any) -> None: ...

    async def abort_all_requests(self, *a: Any, **k: Any) -> None:
        self.engine.abort_all()

    async def resume_generation(self, *a: Any, **k: Any) -> None:
        self.engine.resume()


class HFReplica(RolloutReplica):
    """One CPU server per replica; it owns no GPU and needs no worker processes of its own."""

    def rollout_worker_use_gpu(self) -> bool:
        return False

    async def launch_servers(self) -> None:
        # model_config is an HFModelConfig in some callers and a struct DictConfig (no local_path key)
        # in verl 0.9.1's sync trainer; getattr's default covers both (ConfigAttributeError is an AttributeError)
        path = getattr(self.model_config, "local_path", None) or self.model_config.path
        actor_cls = ray.remote(HFRolloutServer)
        handle = actor_cls.options(
            name=server_actor_name(self.replica_rank), get_if_exists=True, num_cpus=0,
            max_concurrency=self.max_concurrency,
        ).remote(path, max_batch_size=max(1, int(self.config.max_num_seqs or 64)),
                 max_model_len=self.config.max_model_len)
        self.servers = [handle]
        self._server_handle = handle
        self._server_address = await handle.address.remote()


class HFServerAdapter(BaseRollout):
    """Runs in each FSDP worker: forwards trained weights to this rank's replica server."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, replica_rank: int = -1, **kw: Any) -> None:
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        world = (self.config.tensor_model_parallel_size * self.config.data_parallel_size
                 * self.config.pipeline_model_parallel_size)
        self.replica_rank = rank // world if replica_rank == -1 else replica_rank
        self.is_leader = rank % world == 0
        self._server = None

    def _server_handle(self) -> Any:
        # The replica (and its actor) is created after this adapter: look it up lazily.
        if self._server is None:
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]) -> None:
        return None

    async def release(self) -> None:
        return None

    async def update_weights(self, weights: Generator[tuple[str, Any], None, None],
                             wire_format: str = "named_tensors", **kwargs: Any) -> None:
        if wire_format != "named_tensors":
            raise ValueError(f"datamind_hf rollout supports wire_format='named_tensors' only, got {wire_format!r}")
        batch: list[tuple[str, Any]] = []
        pending = []
        for name, tensor in weights:  # every rank drains the generator: it runs collectives
            if not self.is_leader:
                continue
            full = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
            batch.append((name, full.detach().to("cpu", copy=True)))
            if len(batch) >= _WEIGHT_CHUNK:
                pending.append(self._server_handle().load_weights.remote(batch, kwargs.get("global_steps")))
                batch = []
        if self.is_leader:
            if batch or not pending:
                pending.append(self._server_handle().load_weights.remote(batch, kwargs.get("global_steps")))
            for ref in pending:
                await ref
