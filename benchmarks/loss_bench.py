"""Actor-update cost of the combined SFT+RL loss vs verl's stock DAPO loss (CPU, tiny model).

    .venv/bin/python benchmarks/loss_bench.py [--preset test|quickstart] [--rollouts 16] [--experts 4] [--steps 5]

Each variant runs in its own child process (verl's real TrainingWorker, FSDP2, CPU shims):

- ``stock``: verl's ``ppo_loss`` (vanilla = DAPO clip 0.2/0.28, token-mean) on the rollout rows;
- ``combined_rl_only``: the DataMind loss on the same rollout rows only (the loss's own overhead);
- ``combined``: the DataMind loss (cosine γ) on the same rollout rows plus one expert row per
  prompt, as the ``datamind_sync`` trainer feeds it.

It prints, side by side, the median update time, the peak resident-memory growth during the
updates (sampled every millisecond; CPU has no allocator counters like CUDA's), and the tokens
each variant forwards. The combined loss's extra cost should be about the extra forward/backward
over the expert tokens: compare the time ratio with the token ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _child(variant: str, preset: str, n_rollouts: int, n_experts: int, steps: int) -> dict:
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", WG_BACKEND="ray", VERL_USE_EXTERNAL_PLUGINS="none")
    sys.path.insert(0, str(REPO))
    from datamind_ext.integrations.verl.cpu import activate_cpu_shims

    activate_cpu_shims()
    from functools import partial

    import psutil
    import torch
    from transformers import AutoTokenizer
    from verl.utils import tensordict_utils as tu
    from verl.workers.config import (
        ActorConfig,
        FSDPEngineConfig,
        FSDPOptimizerConfig,
        HFModelConfig,
    )
    from verl.workers.engine_workers import TrainingWorker, TrainingWorkerConfig
    from verl.workers.utils.losses import ppo_loss

    from datamind_ext.integrations.verl.contract import DataMindLossConfig
    from datamind_ext.integrations.verl.worker import (
        DataMindTrainingWorker,
        expert_row,
        install_loss,
        rows_to_tensordict,
    )
    from datamind_ext.models.tiny import build_tiny_model

    model_dir = str(build_tiny_model(preset))
    tok = AutoTokenizer.from_pretrained(model_dir)
    g = torch.Generator().manual_seed(0)
    vocab = len(tok)

    def expert(k: int) -> dict:
        msgs = [{"role": "system", "content": "You are a data analyst."},
                {"role": "user", "content": f"Question {k}: what is the mean of column value in data.csv?"}]
        for t in range(3):
            msgs.append({"role": "assistant", "content": f"<think>step {t} of the plan</think><code>import pandas as pd\nprint(pd.read_csv('data.csv').value.mean() * {t})</code>"})
            msgs.append({"role": "user", "content": f"<interpreter>{12.5 * t}</interpreter>"})
        msgs.append({"role": "assistant", "content": "<answer>12.5</answer>"})
        return dict(expert_row(tok, msgs), is_expert=1)

    experts = [expert(k) for k in range(n_experts)]
    rollouts = []
    for i in range(n_rollouts):
        n_resp = int(torch.randint(96, 160, (1,), generator=g))
        mask = torch.ones(n_resp, dtype=torch.int64)
        mask[40:60] = 0
        rollouts.append({"prompts": experts[i % n_experts]["prompts"], "responses": torch.randint(5, vocab, (n_resp,), generator=g),
                         "response_mask": mask, "old_log_probs": -5.0 - torch.rand(n_resp, generator=g),
                         "advantages": torch.full((n_resp,), 1.0 if i % 2 else -1.0)})
    rows = rollouts + experts if variant == "combined" else rollouts

    mc = HFModelConfig(path=model_dir, use_remove_padding=False, override_config={"attn_implementation": "sdpa"})
    ec = FSDPEngineConfig(strategy="fsdp2", use_dynamic_bsz=False, micro_batch_size_per_gpu=4, use_torch_compile=False,
                          mixed_precision={"param_dtype": "fp32", "reduce_dtype": "fp32", "buffer_dtype": "fp32"})
    oc = FSDPOptimizerConfig(lr=1e-5, total_training_steps=steps + 2)
    if variant == "stock":
        w = TrainingWorker(TrainingWorkerConfig(model_type="language_model", model_config=mc, engine_config=ec, optimizer_config=oc))
        w.reset()
        w.set_loss_fn(partial(ppo_loss, ActorConfig(strategy="fsdp2", ppo_mini_batch_size=len(rows), ppo_micro_batch_size_per_gpu=4,
                                                    clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=10.0,
                                                    use_dynamic_bsz=False, rollout_n=1)))
    else:
        w = DataMindTrainingWorker(TrainingWorkerConfig(model_type="language_model", model_config=mc, engine_config=ec, optimizer_config=oc))
        w.reset()
        install_loss(w, DataMindLossConfig())

    def batch(step: int):
        td = rows_to_tensordict(rows)
        n = len(rows) + (-len(rows)) % 4
        assert n == len(rows), "use row counts divisible by the micro-batch size (4)"
        tu.assign_non_tensor(td, datamind_step=step, mini_batch_size=len(rows), epochs=1, seed=1,
                             dataloader_kwargs={"shuffle": False}, global_batch_size=len(rows), calculate_entropy=True,
                             temperature=1.0)
        return td

    proc = psutil.Process()
    w.train_mini_batch(batch(1))  # warm-up
    base_rss = proc.memory_info().rss
    peak = [base_rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    times = []
    for s in range(steps):
        td = batch(s + 2)
        t0 = time.perf_counter()
        w.train_mini_batch(td)
        times.append(time.perf_counter() - t0)
    stop.set()
    sampler.join()
    return {
        "variant": variant, "rows": len(rows),
        "tokens": int(sum(len(r["prompts"]) + len(r["responses"]) for r in rows)),
        "expert_tokens": int(sum(len(r["prompts"]) + len(r["responses"]) for r in rows if r.get("is_expert"))),
        "median_s": statistics.median(times), "min_s": min(times),
        "peak_rss_growth_mib": (peak[0] - base_rss) / 2**20, "rss_mib": base_rss / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="test", choices=["test", "quickstart"])
    ap.add_argument("--rollouts", type=int, default=16)
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(a.child, a.preset, a.rollouts, a.experts, a.steps)))
        return
    results = {}
    for port, variant in enumerate(("stock", "combined_rl_only", "combined")):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29900 + port), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
        out = subprocess.run([sys.executable, __file__, "--child", variant, "--preset", a.preset, "--rollouts", str(a.rollouts),
                              "--experts", str(a.experts), "--steps", str(a.steps)], capture_output=True, text=True, env=env, cwd=REPO,
                             check=False)
        if out.returncode != 0:
            sys.exit(f"{variant} failed:\n{out.stderr[-3000:]}")
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    s, r, c = results["stock"], results["combined_rl_only"], results["combined"]
    print(f"actor update, tiny model '{a.preset}', CPU, {a.steps} timed steps after 1 warm-up")
    print(f"{'':28}{'stock DAPO':>12}{'ours, RL rows':>15}{'ours, +experts':>16}{'ratio':>7}")
    print(f"{'rows (rollouts + experts)':28}{s['rows']:>12}{r['rows']:>15}{c['rows']:>16}")
    print(f"{'tokens forwarded':28}{s['tokens']:>12}{r['tokens']:>15}{c['tokens']:>16}{c['tokens'] / s['tokens']:>7.2f}")
    for key, label in (("median_s", "median update time (s)"), ("min_s", "min update time (s)")):
        print(f"{label:28}{s[key]:>12.3f}{r[key]:>15.3f}{c[key]:>16.3f}{c[key] / s[key]:>7.2f}")
    print(f"{'peak RSS growth (MiB)':28}{s['peak_rss_growth_mib']:>12.1f}{r['peak_rss_growth_mib']:>15.1f}{c['peak_rss_growth_mib']:>16.1f}")
    print(f"{'RSS before updates (MiB)':28}{s['rss_mib']:>12.1f}{r['rss_mib']:>15.1f}{c['rss_mib']:>16.1f}")
    print("ratio = ours with experts / stock; it should track the token ratio (extra forward/backward over expert tokens)")


if __name__ == "__main__":
    main()
