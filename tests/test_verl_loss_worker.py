"""verl's real actor worker (TrainingWorker, FSDP2, CPU shims) updating with the combined loss.

The scenarios run in one child process (``python this_file.py MODEL_DIR``), because the CPU
shims select verl's platform for the whole process and the worker needs a process group; the
child prints one JSON object that the tests below check. Five workers are built from the same
tiny model and fp32 weights, each updated once on the same rows:

- ``combined``: the default cosine schedule at step 1 on rollouts + a void rollout + experts;
- ``gamma1`` vs ``stock_sft``: constant γ=1 on that batch vs verl's own ``sft_loss`` on the expert
  rows alone (pure SFT) — same loss, same updated weights;
- ``gamma0`` vs ``stock_dapo``: constant γ=0 on that batch vs verl's own ``ppo_loss`` (vanilla,
  clip 0.2/0.28, dual clip 10, token-mean) on the non-void rollouts alone — same loss and weights.

Independent references come from a plain transformers forward of the same model.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Largest parameter difference between two updates whose gradients were summed in another order (gloo's
#: reduction across ranks, another micro-batch split): float noise, which Adam, moving every weight by
#: ~lr = 1e-2, lifts above 1e-6 on some CPUs (seen: 1.006e-6, AVX-512). A wrong update moves weights ~1e-2.
REORDERED_SUM_PARAM_DIFF = 1e-5

EXPERT_A = [
    {"role": "system", "content": "You are a data analyst."},
    {"role": "user", "content": "What is the mean of column a?"},
    {"role": "assistant", "content": "<think>load it</think><code>print(df.a.mean())</code>"},
    {"role": "user", "content": "<interpreter>2.5</interpreter>"},
    {"role": "assistant", "content": "<answer>2.5</answer>"},
]
EXPERT_B = [
    {"role": "user", "content": "How many rows?"},
    {"role": "assistant", "content": "<answer>42</answer>"},
]


def _child(model_dir: str, out_dir: str, rank: int = 0, world_size: int = 1) -> dict:  # pragma: no cover - child
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK="0", WG_BACKEND="ray",
                      VERL_USE_EXTERNAL_PLUGINS="none")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    from datamind_ext.integrations.verl.cpu import activate_cpu_shims

    activate_cpu_shims()
    from functools import partial

    import torch
    from tensordict import TensorDict
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from verl.utils import tensordict_utils as tu
    from verl.workers.config import (
        ActorConfig,
        FSDPEngineConfig,
        FSDPOptimizerConfig,
        HFModelConfig,
    )
    from verl.workers.engine_workers import TrainingWorker, TrainingWorkerConfig
    from verl.workers.utils.losses import ppo_loss, sft_loss

    from datamind_ext.integrations.verl.contract import DataMindLossConfig
    from datamind_ext.integrations.verl.worker import (
        DataMindTrainingWorker,
        expert_row,
        install_loss,
        rows_to_tensordict,
    )
    from datamind_ext.losses import ScheduleConfig

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    mc = HFModelConfig(path=model_dir, use_remove_padding=False, override_config={"attn_implementation": "sdpa"})
    fp32 = {"param_dtype": "fp32", "reduce_dtype": "fp32", "buffer_dtype": "fp32"}

    def new_worker(cls, max_tokens_per_micro_batch: int | None = None):
        ec = FSDPEngineConfig(strategy="fsdp2", use_dynamic_bsz=max_tokens_per_micro_batch is not None,
                              micro_batch_size_per_gpu=1, max_token_len_per_gpu=max_tokens_per_micro_batch,
                              use_torch_compile=False, mixed_precision=fp32)
        oc = FSDPOptimizerConfig(lr=1e-2, total_training_steps=4)
        w = cls(TrainingWorkerConfig(model_type="language_model", model_config=mc, engine_config=ec, optimizer_config=oc))
        w.reset()
        return w

    def params(w) -> dict:
        out = {}
        for k, v in w.engine.module.state_dict().items():
            v = v.full_tensor() if hasattr(v, "full_tensor") else v
            out[k] = v.detach().clone().float()
        return out

    def run(w, td: TensorDict, global_rows: int | None = None) -> dict:
        n = global_rows or td.shape[0]
        tu.assign_non_tensor(td, datamind_step=1, mini_batch_size=n, epochs=1, seed=1,
                             dataloader_kwargs={"shuffle": False}, global_batch_size=n, calculate_entropy=True,
                             temperature=1.0)
        output = w.train_mini_batch(td)
        if output is None:  # only the output rank of a data-parallel group returns metrics
            return {}
        metrics = output["metrics"]
        return {k: [float(x) for x in v] if isinstance(v, list) else float(v) for k, v in metrics.items()}

    # rows: 3 rollouts (sampled token ids, old log-probs, group advantages), 1 void rollout, 2 experts
    ea, eb = expert_row(tok, EXPERT_A), expert_row(tok, EXPERT_B)
    g = torch.Generator().manual_seed(0)
    rollouts = []
    for i, adv in enumerate([1.0, -0.5, 0.8, 1.0]):
        n_resp = 6 + 2 * i
        mask = torch.ones(n_resp, dtype=torch.int64)
        mask[3:5] = 0  # an observation span inside the response
        rollouts.append({
            "prompts": ea["prompts"][: 8 + i], "responses": torch.randint(5, 300, (n_resp,), generator=g),
            "response_mask": mask, "old_log_probs": -1.0 - 4.0 * torch.rand(n_resp, generator=g),
            "advantages": torch.full((n_resp,), adv), "is_void": int(i == 3),
        })
    experts = [dict(ea, is_expert=1), dict(eb, is_expert=1)]
    mixed = rollouts + experts

    if world_size > 1:
        # data parallel: verl hands each rank a contiguous shard; here rank 0 gets 3 rollouts and
        # rank 1 the void rollout and both experts, so the ranks' RL/SFT token counts differ
        shard = mixed[:3] if rank == 0 else mixed[3:]
        w = new_worker(DataMindTrainingWorker)
        install_loss(w, DataMindLossConfig())
        metrics = run(w, rows_to_tensordict(shard), global_rows=len(mixed))
        p = params(w)
        if rank == 0:
            torch.save(p, f"{out_dir}/params_dp2.pt")
        return metrics

    # independent references from a plain transformers forward (same fp32 weights)
    hf = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="sdpa")

    def token_logps(row) -> torch.Tensor:
        ids = torch.cat([row["prompts"], row["responses"]])[None]
        with torch.no_grad():
            logits = hf(input_ids=ids).logits[0].float()
        lp = torch.log_softmax(logits[:-1], -1).gather(-1, ids[0, 1:, None])[:, 0]
        return lp[len(row["prompts"]) - 1 :]  # lp[j] = log p(response token j)

    sft_num = sum(float(-(token_logps(e) * e["response_mask"]).sum()) for e in experts)
    sft_tokens = sum(int(e["response_mask"].sum()) for e in experts)
    shifted_num = sum(float(-(token_logps(e)[1:] * e["response_mask"][:-1]).sum()) for e in experts)
    def token_entropy(row) -> torch.Tensor:
        ids = torch.cat([row["prompts"], row["responses"]])[None]
        with torch.no_grad():
            logp = torch.log_softmax(hf(input_ids=ids).logits[0].float()[:-1], -1)
        return -(logp.exp() * logp).sum(-1)[len(row["prompts"]) - 1 :]

    ent_num = sum(float((token_entropy(r) * r["response_mask"]).sum()) for r in rollouts[:3])
    pg_num, rl_tokens = 0.0, 0
    for r in rollouts[:3]:
        ratio = torch.exp(token_logps(r) - r["old_log_probs"])
        a = r["advantages"]
        l1, l2 = -a * ratio, -a * ratio.clamp(0.8, 1.28)
        tok_loss = torch.where(a < 0, torch.minimum(torch.maximum(l1, l2), -a * 10.0), torch.maximum(l1, l2))
        pg_num += float((tok_loss * r["response_mask"]).sum())
        rl_tokens += int(r["response_mask"].sum())
    gamma1 = 0.05 + 0.85 * 0.5 * (1 + math.cos(math.pi / 350))

    out: dict = {"ref": {"sft_loss": sft_num / sft_tokens, "sft_loss_shifted": shifted_num / sft_tokens,
                         "pg_loss": pg_num / rl_tokens, "gamma_step1": gamma1, "rl_entropy": ent_num / rl_tokens,
                         "sft_tokens": sft_tokens, "rl_tokens": rl_tokens}}
    ours = DataMindTrainingWorker
    for name, sched in [("combined", ScheduleConfig()), ("gamma1", ScheduleConfig(name="constant", value=1.0)),
                        ("gamma0", ScheduleConfig(name="constant", value=0.0))]:
        w = new_worker(ours)
        install_loss(w, DataMindLossConfig(schedule=sched))
        out[name] = run(w, rows_to_tensordict(mixed))
        torch.save(params(w), f"/tmp/_dm_{os.getpid()}_{name}.pt")
        del w

    # the same combined update with dynamic batch sizes (micro-batches packed by a token budget):
    # global token-mean reductions make the result independent of the micro-batch split
    w = new_worker(ours, max_tokens_per_micro_batch=90)
    install_loss(w, DataMindLossConfig())
    out["combined_dynamic_bsz"] = run(w, rows_to_tensordict(mixed))
    p_dyn = params(w)
    del w

    # adaptive schedule at step 500 (cosine base 0.05) on a batch where no rollout succeeded, split
    # into 2 mini-batches by count as the datamind_sync trainer asks (num_mini_batch, not size)
    w = new_worker(ours)
    install_loss(w, DataMindLossConfig(schedule=ScheduleConfig(name="adaptive", success_floor=0.2)))
    td = rows_to_tensordict([dict(r, rm_scores=torch.zeros(len(r["responses"])),
                                  entropy=torch.ones(len(r["responses"]))) for r in mixed])
    tu.assign_non_tensor(td, datamind_step=500, mini_batch_size=len(mixed), datamind_num_mini_batch=2, epochs=1,
                         seed=1, dataloader_kwargs={"shuffle": False}, global_batch_size=3, calculate_entropy=True,
                         temperature=1.0)
    m = w.train_mini_batch(td)["metrics"]
    out["adaptive"] = {k: [float(x) for x in v] if isinstance(v, list) else float(v) for k, v in m.items()}
    del w

    # verl's own SFT loss on the experts alone: NO_PADDING layout, loss_mask over the full sequence
    w = new_worker(TrainingWorker)
    w.set_loss_fn(partial(sft_loss, ActorConfig(strategy="fsdp2", ppo_mini_batch_size=2, ppo_micro_batch_size_per_gpu=2, use_dynamic_bsz=False, rollout_n=1)))
    td = rows_to_tensordict(experts)
    td["loss_mask"] = torch.nested.as_nested_tensor(
        [torch.cat([torch.zeros(len(e["prompts"]), dtype=torch.int64), e["response_mask"]]) for e in experts],
        layout=torch.jagged)
    out["stock_sft"] = run(w, td)
    p_sft = params(w)
    del w

    # verl's own ppo_loss (vanilla = DAPO decoupled clip) on the non-void rollouts alone
    w = new_worker(TrainingWorker)
    actor_cfg = ActorConfig(strategy="fsdp2", ppo_mini_batch_size=3, ppo_micro_batch_size_per_gpu=2,
                            clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=10.0, loss_agg_mode="token-mean",
                            use_dynamic_bsz=False, rollout_n=1)
    w.set_loss_fn(partial(ppo_loss, actor_cfg))
    out["stock_dapo"] = run(w, rows_to_tensordict(rollouts[:3]))
    p_dapo = params(w)

    def max_diff(a: dict, b: dict) -> float:
        return max(float((a[k] - b[k]).abs().max()) for k in a)

    p1 = torch.load(f"/tmp/_dm_{os.getpid()}_gamma1.pt")
    p0 = torch.load(f"/tmp/_dm_{os.getpid()}_gamma0.pt")
    out["param_diff_gamma1_vs_sft"] = max_diff(p1, p_sft)
    out["param_diff_gamma0_vs_dapo"] = max_diff(p0, p_dapo)
    out["param_diff_gamma1_vs_gamma0"] = max_diff(p1, p0)
    out["param_diff_dynamic_vs_fixed"] = max_diff(torch.load(f"/tmp/_dm_{os.getpid()}_combined.pt"), p_dyn)
    torch.save(torch.load(f"/tmp/_dm_{os.getpid()}_combined.pt"), f"{out_dir}/params_dp1.pt")
    for name in ("combined", "gamma1", "gamma0"):
        os.remove(f"/tmp/_dm_{os.getpid()}_{name}.pt")
    return out


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("verl_loss_worker")


@pytest.fixture(scope="module")
def results(tiny_model_path: Path, out_dir: Path) -> dict:
    env = dict(os.environ, MASTER_PORT=str(29600 + os.getpid() % 300), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__, str(tiny_model_path), str(out_dir)], capture_output=True,
                          text=True, check=False, timeout=600, env=env, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_data_parallel_ranks_give_the_single_rank_update(tiny_model_path: Path, out_dir: Path, results: dict) -> None:
    """Global token counts are all-reduced: 2 gloo ranks with unequal shards = 1 rank with all rows."""
    import torch

    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29300 + os.getpid() % 300), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, __file__, str(tiny_model_path), str(out_dir), str(rank), "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              cwd=Path(__file__).resolve().parents[1]) for rank in (0, 1)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-4000:]
    dp2 = json.loads(outs[0][0].strip().splitlines()[-1])
    single = results["combined"]
    assert _one(dp2["loss"]) == pytest.approx(_one(single["loss"]), rel=1e-5)
    assert sum(dp2["actor/sft_loss"]) == pytest.approx(_one(single["actor/sft_loss"]), rel=1e-5)
    assert sum(dp2["actor/pg_loss"]) == pytest.approx(_one(single["actor/pg_loss"]), rel=1e-5)
    p1, p2 = torch.load(out_dir / "params_dp1.pt"), torch.load(out_dir / "params_dp2.pt")
    assert max(float((p1[k] - p2[k]).abs().max()) for k in p1) < REORDERED_SUM_PARAM_DIFF


def _one(v):
    return v[0] if isinstance(v, list) else v


def test_combined_update_logs_expected_gamma_sft_and_pg(results: dict) -> None:
    m, ref = results["combined"], results["ref"]
    assert _one(m["actor/gamma"]) == pytest.approx(ref["gamma_step1"], abs=1e-9)
    assert _one(m["actor/sft_loss"]) == pytest.approx(ref["sft_loss"], rel=1e-4)
    assert _one(m["actor/pg_loss"]) == pytest.approx(ref["pg_loss"], rel=1e-4, abs=1e-5)
    assert _one(m["actor/sft_tokens"]) == ref["sft_tokens"] and _one(m["actor/rl_tokens"]) == ref["rl_tokens"]
    g = ref["gamma_step1"]
    assert _one(m["loss"]) == pytest.approx(g * ref["sft_loss"] + (1 - g) * ref["pg_loss"], rel=1e-4)
    assert _one(m["actor/rl_entropy"]) == pytest.approx(ref["rl_entropy"], rel=1e-4)
    for key in ("actor/pg_clipfrac", "grad_norm"):
        assert math.isfinite(_one(m[key]))


def test_micro_batch_split_does_not_change_the_update(results: dict) -> None:
    fixed, dyn = results["combined"], results["combined_dynamic_bsz"]
    assert len(dyn["actor/sft_tokens"]) != len(fixed["actor/sft_tokens"])  # the split really differs
    assert _one(dyn["loss"]) == pytest.approx(_one(fixed["loss"]), rel=1e-5)
    assert _one(dyn["actor/sft_loss"]) == pytest.approx(_one(fixed["actor/sft_loss"]), rel=1e-5)
    assert _one(dyn["actor/pg_loss"]) == pytest.approx(_one(fixed["actor/pg_loss"]), rel=1e-5)
    assert results["param_diff_dynamic_vs_fixed"] < REORDERED_SUM_PARAM_DIFF


def test_first_assistant_token_is_trained(results: dict) -> None:
    """The logged SFT loss is the label-aligned NLL, not the reference's shifted (off-by-one) one."""
    ref = results["ref"]
    assert abs(ref["sft_loss"] - ref["sft_loss_shifted"]) > 1e-3
    assert _one(results["combined"]["actor/sft_loss"]) == pytest.approx(ref["sft_loss"], rel=1e-4)


def test_gamma_one_equals_pure_sft(results: dict) -> None:
    ours, stock = results["gamma1"], results["stock_sft"]
    assert _one(ours["loss"]) == pytest.approx(_one(stock["loss"]), rel=1e-5)
    assert _one(ours["loss"]) == pytest.approx(results["ref"]["sft_loss"], rel=1e-4)
    assert results["param_diff_gamma1_vs_sft"] < 1e-6
    assert results["param_diff_gamma1_vs_gamma0"] > 1e-4  # the comparison can fail: the updates differ


def test_adaptive_gamma_rises_on_collapse_and_mini_batches_split_by_count(results: dict) -> None:
    m = results["adaptive"]
    assert len(m["grad_norm"]) == 2  # two optimizer steps: num_mini_batch=2 replaced mini_batch_size
    assert m["actor/gamma"] == pytest.approx([0.9] * len(m["actor/gamma"]))  # base 0.05, no success -> ceiling
    assert m["actor/gamma_base"] == pytest.approx([0.05] * len(m["actor/gamma_base"]))
    assert set(m["actor/collapse_success"]) == {1.0} and set(m["actor/collapse_entropy"]) == {0.0}


def test_gamma_zero_equals_stock_dapo(results: dict) -> None:
    ours, stock = results["gamma0"], results["stock_dapo"]
    assert _one(ours["loss"]) == pytest.approx(_one(stock["loss"]), rel=1e-5, abs=1e-7)
    assert _one(ours["actor/pg_loss"]) == pytest.approx(_one(stock["actor/pg_loss"]), rel=1e-5, abs=1e-7)
    assert results["param_diff_gamma0_vs_dapo"] < 1e-6


if __name__ == "__main__":  # pragma: no cover - child process entry
    rank_args = [int(a) for a in sys.argv[3:5]]
    print(json.dumps(_child(sys.argv[1], sys.argv[2], *rank_args)))
