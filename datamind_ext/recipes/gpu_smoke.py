"""``make gpu-smoke``: the GPU RL stage end-to-end on one NVIDIA GPU, nothing downloaded.

What it proves: stock ``verl.trainer.main_ppo`` with vLLM rollout, our agent loop, combined loss
(``datamind_sync``) and rewards runs 2 steps of the datamind-7b RL config on a model of
Qwen2.5-0.5B's architecture (24 layers, hidden 896, 14 heads / 2 KV heads, intermediate 4,864,
tied embeddings), randomly initialised, with the offline tokenizer's vocabulary (the only
deviation: Qwen's 151,936-token vocabulary would need its tokenizer, i.e. a download). Then it
asserts that verl's console logger printed both steps with reward, γ, sft_loss and pg_loss.

Not part of CI (CI has no GPU). Usage: ``python -m datamind_ext.recipes.gpu_smoke [--out DIR]``.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

#: Qwen2.5-0.5B's architecture (its config.json), vocabulary aside.
QWEN25_05B = {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
              "num_key_value_heads": 2, "max_position_embeddings": 32768, "rope_theta": 1_000_000.0,
              "rms_norm_eps": 1e-6, "tie_word_embeddings": True}
REQUIRED_METRICS = ("critic/score/mean", "actor/gamma", "actor/sft_loss", "actor/pg_loss")
STEPS = 2


def build_random_qwen05b(out: Path) -> Path:
    """A randomly initialised Qwen2.5-0.5B-architecture model (bf16) with the offline tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from datamind_ext.models.tiny import build_tiny_model

    if (out / "config.json").is_file():
        return out
    tok_dir = build_tiny_model("quickstart")
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    config = Qwen2Config(vocab_size=len(tokenizer), eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None, torch_dtype="bfloat16", **QWEN25_05B)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config.eos_token_id = config.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def smoke_command(parquet: Path, model: Path, out: Path, rollout: str = "vllm") -> list[str]:
    """``main_ppo`` on recipes/datamind-7b/rl.yaml, shrunk to one GPU and 2 steps (paper settings otherwise)."""
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "datamind-7b"
    return [sys.executable, "-m", "verl.trainer.main_ppo", f"--config-path={recipe}", "--config-name=rl",
            f"data.train_files={parquet}", f"data.val_files={parquet}", f"actor_rollout_ref.model.path={model}",
            f"trainer.default_local_dir={out / 'ckpt'}", f"actor_rollout_ref.rollout.name={rollout}",
            "trainer.n_gpus_per_node=1", "trainer.nnodes=1", f"trainer.total_training_steps={STEPS}",
            "trainer.save_freq=-1", "trainer.test_freq=-1", "trainer.val_before_train=false", "trainer.logger=[console]",
            "data.train_batch_size=4", "data.max_prompt_length=1024",
            "data.max_response_length=2048", "actor_rollout_ref.actor.ppo_mini_batch_size=2",
            "actor_rollout_ref.actor.ulysses_sequence_parallel_size=1",
            "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384",
            "actor_rollout_ref.rollout.tensor_model_parallel_size=1", "actor_rollout_ref.rollout.agent.num_workers=2",
            "actor_rollout_ref.rollout.max_num_batched_tokens=4096", "actor_rollout_ref.rollout.gpu_memory_utilization=0.4",
            # a random model's rewards are all equal: dynamic sampling would discard every group
            "algorithm.filter_groups.enable=false", "datamind.agent.max_turns=3", "+datamind.agent.max_tokens_per_turn=512"]


def main(argv: list[str] | None = None) -> int:
    from datamind_ext.recipes.summary import rl_steps

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/gpu-smoke", help="working folder (model, data, log)")
    p.add_argument("--rollout", default="vllm", choices=["vllm", "sglang"])
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    model = build_random_qwen05b(out / "model")
    synth = out / "synth"
    if not (synth / "export" / "rl" / "train.parquet").is_file():
        subprocess.run([sys.executable, "-m", "datamind_ext", "synth", "all", "--data", "data/samples/files",
                        "--out", str(synth), "--tasks-per-table", "4"], check=True)
    cmd = smoke_command(synth / "export" / "rl" / "train.parquet", model, out, args.rollout)
    log = out / "rl_log.txt"
    print("$ " + " ".join(cmd), flush=True)
    env = dict(os.environ, WANDB_MODE="disabled", HF_HUB_OFFLINE="1", RAY_DEDUP_LOGS="0")
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            sys.stdout.write(line)
        rc = proc.wait()
    if rc != 0:
        print(f"gpu-smoke: FAILED, main_ppo exited with {rc} (log: {log})", file=sys.stderr)
        return 1
    steps = rl_steps(log.read_text(errors="replace"))
    got = [int(s["step"]) for s in steps]
    missing = [(int(s["step"]), k) for s in steps for k in REQUIRED_METRICS if not math.isfinite(s.get(k, math.nan))]
    if got != list(range(1, STEPS + 1)) or missing:
        print(f"gpu-smoke: FAILED, steps logged {got}, missing/non-finite metrics {missing} (log: {log})", file=sys.stderr)
        return 1
    for s in steps:
        print("gpu-smoke: step " + str(int(s["step"])) + ": " + ", ".join(f"{k}={s[k]:.4g}" for k in REQUIRED_METRICS))
    print(f"gpu-smoke: OK ({STEPS} steps logged; log: {log})")
    shutil.rmtree(out / "ckpt", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
