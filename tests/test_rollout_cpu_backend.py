"""The ``datamind_hf`` CPU rollout backend inside verl: a Ray server actor started by our
``HFReplica``, reached through verl's own load balancer and ``LLMServerClient`` by verl's
``AgentLoopWorker`` running our agent loop with the tiny model; weight sync via the adapter."""

from __future__ import annotations

import asyncio

import pytest
from helpers.verl_batches import compose_config, make_batch

pytestmark = pytest.mark.slow  # starts Ray and a server actor (~40 s on 2 cores)




@pytest.fixture(scope="module")
def ray_backend(tiny_model_path):
    import ray
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.rollout.replica import get_rollout_replica_class
    from verl.workers.rollout.router import GlobalRequestLoadBalancer, get_router_handle

    cfg = compose_config(tiny_model_path, "+datamind.agent.max_turns=3",
                                    "+datamind.agent.max_tokens_per_turn=48")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}})
    try:
        model_config = omega_conf_to_dataclass(cfg.actor_rollout_ref.model)
        replica = get_rollout_replica_class("datamind_hf")(
            replica_rank=0, config=cfg.actor_rollout_ref.rollout, model_config=model_config, gpus_per_node=1)
        asyncio.run(replica.launch_servers())
        lb = get_router_handle(servers={replica.server_address: replica.server_handle},
                               load_balancer_cls=GlobalRequestLoadBalancer)
        yield cfg, replica, lb
    finally:
        ray.shutdown()


async def test_tiny_model_through_verl_worker_and_cpu_backend(ray_backend, tiny_tokenizer, sessions):
    import ray
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.workers.rollout.llm_server import LLMServerClient

    cfg, replica, lb = ray_backend
    worker = AgentLoopWorker(cfg, llm_client=LLMServerClient(cfg, load_balancer_handle=lb))
    rows = [{"question": f"question {i}: what is the mean price?", "files": []} for i in range(4)]
    out = await worker.generate_sequences(make_batch(rows))
    nt, b = out.non_tensor_batch, out.batch
    assert list(nt["dm_failed"]) == [0, 0, 0, 0]
    assert set(nt) >= set(verl_tests_extra_keys())
    for i in range(4):
        n = int(b["attention_mask"][i, 1024:].sum())
        m = b["response_mask"][i, :n].tolist()
        lp = b["rollout_log_probs"][i, :n].tolist()
        assert n > 0 and m[0] == 1  # the response starts with model tokens
        assert all(v < 0 or k == 0 for v, k in zip(lp, m))  # model tokens carry real log-probs
        turn = nt["dm_turns"][i]
        assert 1 <= turn <= 3
        if nt["dm_void"][i] == 0:  # a random model rarely answers, but if it does the tags are right
            assert "</answer>" in tiny_tokenizer.decode(b["responses"][i, :n].tolist())
        else:
            assert nt["dm_code_cells"][i] <= 2
    stats = await replica.server_handle.batch_stats.remote()
    assert stats["max_batch_seen"] > 1  # concurrent trajectories were decoded together
    assert ray.get(replica.server_handle.address.remote()) == replica.server_address


def verl_tests_extra_keys():
    from datamind_ext.integrations.verl.agent_loop import EXTRA_KEYS

    return EXTRA_KEYS


@pytest.fixture()
async def sessions():
    from datamind_ext.integrations.verl.agent_loop import DataMindAgentLoop
    from datamind_ext.interpreter import SessionProvider

    factory = SessionProvider()
    DataMindAgentLoop.session_factory = factory
    yield factory
    await factory.aclose()
    DataMindAgentLoop.session_factory = None


async def test_weight_sync_through_server_adapter(ray_backend, tiny_model_path, tiny_tokenizer):
    import torch
    from transformers import AutoModelForCausalLM
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.rollout.base import get_rollout_class

    cfg, replica, _ = ray_backend
    server = replica.server_handle
    ids = tiny_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=True,
                                             add_generation_prompt=True, return_dict=False)
    params = {"temperature": 0, "max_tokens": 8}
    before = await server.generate.remote("r1", prompt_ids=ids, sampling_params=params)
    adapter = get_rollout_class("datamind_hf", "async")(
        config=cfg.actor_rollout_ref.rollout, model_config=omega_conf_to_dataclass(cfg.actor_rollout_ref.model),
        device_mesh=None)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    torch.manual_seed(1)
    weights = ((n, torch.randn_like(p)) for n, p in model.named_parameters())
    await adapter.update_weights(weights, global_steps=3)
    after = await server.generate.remote("r2", prompt_ids=ids, sampling_params=params)
    assert after.log_probs != pytest.approx(before.log_probs, abs=1e-3)
    assert after.extra_fields["global_steps"] == 3
