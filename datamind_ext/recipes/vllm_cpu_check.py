"""``make test-vllm-cpu``: 2 GRPO steps of stock ``verl.trainer.main_ppo`` with verl's own vLLM rollout, on CPU.

What it proves, without a GPU: verl 0.9.1's ``vLLMReplica`` (the rollout GPU users run) serves
our agent loop (``datamind_code_agent``: multi-turn, interpreter in the loop), our rewards
(``reward_manager=datamind``) and our trainer mode (``datamind_sync``: the combined SFT + DAPO
loss), with weights synced from the FSDP2 actor into vLLM after each step. The model is a random
2-layer Qwen2 with head_dim 32 and the offline tokenizer; the data is programmatic synthesis over
data/samples/files. The config is the CPU quickstart's (recipes/quickstart/rl.yaml + cpu.yaml) with
the rollout switched to ``vllm`` and the workarounds of :mod:`datamind_ext.integrations.vllm_cpu`.
Asserted: the step metrics the CPU quickstart's RL test asserts (tests/test_verl_loss_main_ppo.py):
2 steps, γ from the cosine schedule, expert rows and SFT tokens > 0, finite positive sft_loss, a
reward, ``loss = γ·sft_loss + (1−γ)·pg_loss``, a void rate in [0, 1] with RL tokens > 0 exactly when
some trajectory is not void (a random model's all are: the RL term is then masked, as designed),
plus the rollout ran through verl's vLLM server.

Runs in ``.venv-vllm-cpu`` only (``vllm-cpu``, a third-party CPU repackaging of vLLM).
Usage: ``python -m datamind_ext.recipes.vllm_cpu_check [--out DIR]``; exit 0 only when all hold.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from datamind_ext.integrations import vllm_cpu

ROOT = Path(__file__).resolve().parents[2]
STEPS = 2
#: ray/_private/node.py waits a hard-coded 30 s for the raylet; on a loaded 2-core machine that can pass
RAY_START_TIMEOUT = "The current node timed out during startup"
RAY_START_ATTEMPTS = 3
DECAY_STEPS = 3
#: head_dim 32 = hidden 64 / 2 heads (vLLM's CPU attention needs ≥ 32; W7)
HEAD32 = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
          "num_key_value_heads": 2, "max_position_embeddings": 4096, "tie_word_embeddings": True}


def build_head32_model(out: Path) -> Path:
    """A random Qwen2 (head_dim 32) with the offline test tokenizer; nothing downloaded."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from datamind_ext.models.tiny import build_tiny_model

    if (out / "config.json").is_file():
        return out
    tokenizer = AutoTokenizer.from_pretrained(build_tiny_model("test"))
    config = Qwen2Config(vocab_size=len(tokenizer), eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None, torch_dtype="float32", **HEAD32)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def command(parquet: Path, model: Path, out: Path) -> list[str]:
    """``main_ppo`` on the CPU quickstart's RL config, rollout switched to vLLM (2 steps, no checkpoints)."""
    return [sys.executable, "-m", "verl.trainer.main_ppo", f"--config-path={ROOT / 'recipes' / 'quickstart'}",
            "--config-name=rl", f"data.train_files={parquet}", f"data.val_files={parquet}",
            f"actor_rollout_ref.model.path={model}", f"trainer.default_local_dir={out / 'ckpt'}",
            *vllm_cpu.ROLLOUT_OVERRIDES,
            "actor_rollout_ref.rollout.gpu_memory_utilization=0.5", "actor_rollout_ref.rollout.max_num_seqs=8",
            "actor_rollout_ref.rollout.max_model_len=1024", "actor_rollout_ref.rollout.max_num_batched_tokens=1024",
            f"trainer.total_training_steps={STEPS}", "trainer.total_epochs=1000", "trainer.save_freq=-1",
            "trainer.test_freq=-1", "trainer.val_before_train=false", "trainer.logger=[console]",
            f"actor_rollout_ref.datamind_loss.schedule.decay_steps={DECAY_STEPS}",
            "algorithm.filter_groups.enable=false",  # a random model's rewards are all equal
            "+ray_kwargs.ray_init._node_ip_address=127.0.0.1", "+ray_kwargs.ray_init.include_dashboard=false"]


def check_steps(log: str) -> list[str]:
    """Problems with the logged steps (empty: the same metrics as the CPU quickstart's RL test hold)."""
    from datamind_ext.recipes.summary import rl_steps

    steps = rl_steps(log)
    problems = []
    if [int(s["step"]) for s in steps] != list(range(1, STEPS + 1)):
        return [f"steps logged: {[int(s['step']) for s in steps]}"]
    for t, s in zip(range(1, STEPS + 1), steps, strict=True):
        gamma = 0.05 + 0.85 * 0.5 * (1 + math.cos(math.pi * t / DECAY_STEPS))
        got = {k: s.get(k, math.nan) for k in ("actor/gamma", "datamind/expert_rows", "actor/sft_tokens",
                                               "actor/rl_tokens", "actor/sft_loss", "actor/pg_loss", "actor/loss")}
        if not math.isclose(got["actor/gamma"], gamma, rel_tol=1e-6):
            problems.append(f"step {t}: actor/gamma {got['actor/gamma']} != {gamma}")
        for k in ("datamind/expert_rows", "actor/sft_tokens", "actor/sft_loss"):
            if not (math.isfinite(got[k]) and got[k] > 0):
                problems.append(f"step {t}: {k}={got[k]} (must be > 0)")
        # a random model writes no well-formed turn: every trajectory is void, and void ones are masked
        # out of the RL term, so RL tokens are > 0 exactly when some trajectory is not void
        void = s.get("datamind/void_rate", math.nan)
        if not 0 <= void <= 1 or (got["actor/rl_tokens"] > 0) != (void < 1):
            problems.append(f"step {t}: actor/rl_tokens={got['actor/rl_tokens']} with datamind/void_rate={void}")
        if not math.isfinite(s.get("critic/score/mean", math.nan)):
            problems.append(f"step {t}: no reward (critic/score/mean)")
        combined = gamma * got["actor/sft_loss"] + (1 - gamma) * got["actor/pg_loss"]
        if not math.isclose(got["actor/loss"], combined, rel_tol=1e-2, abs_tol=1e-4):  # bf16-logged terms
            problems.append(f"step {t}: actor/loss {got['actor/loss']} != γ·sft + (1−γ)·pg = {combined}")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/vllm-cpu-check", help="working folder (model, data, log)")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    model = build_head32_model(out / "model")
    synth = out / "synth"
    parquet = synth / "export" / "rl" / "train.parquet"
    if not parquet.is_file():
        subprocess.run([sys.executable, "-m", "datamind_ext", "synth", "all", "--data", str(ROOT / "data/samples/files"),
                        "--out", str(synth), "--tasks-per-table", "2"], check=True)
    cmd = command(parquet, model, out)
    env = dict(os.environ, **vllm_cpu.ENV, DATAMIND_VERL_CPU="1", VERL_PLATFORM="cpu", OMP_NUM_THREADS="1",
               WANDB_MODE="disabled", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", RAY_DEDUP_LOGS="0")
    print("$ " + " ".join(cmd), flush=True)
    log_path = out / "rl_log.txt"
    t1 = time.monotonic()
    for attempt in range(1, RAY_START_ATTEMPTS + 1):
        with log_path.open("w") as fh:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=out, check=False, timeout=1800)
        log = log_path.read_text(errors="replace")
        if proc.returncode == 0 or RAY_START_TIMEOUT not in log or attempt == RAY_START_ATTEMPTS:
            break
        print(f"vllm-cpu: attempt {attempt}: {RAY_START_TIMEOUT!r} (Ray waits 30 s, hard-coded, for its raylet on a "
              "loaded machine); starting again", flush=True)
    problems = [] if proc.returncode == 0 else [f"main_ppo exited with {proc.returncode}"]
    problems += check_steps(log)
    if "(vLLMHttpServer pid=" not in log:
        problems.append("no sign of verl's vLLM server in the log")
    print(f"vllm-cpu: setup {t1 - t0:.0f} s, main_ppo {time.monotonic() - t1:.0f} s (log: {log_path})")
    if problems:
        print("\n".join(log.splitlines()[-40:]), file=sys.stderr)
        print("vllm-cpu: FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"vllm-cpu: OK, {STEPS} GRPO steps through verl's vLLM rollout with the combined loss")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
