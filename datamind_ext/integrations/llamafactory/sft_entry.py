"""The SFT stage on LLaMA-Factory: prepare the data, register our components, call ``run_exp``.

``datamind-ext sft CONFIG.yaml [key=value ...]`` runs :func:`run_sft_stage` in-process, or
re-launches this module under ``torch.distributed.run`` (the way ``llamafactory-cli train``
does: ``FORCE_TORCHRUN=1`` or more than one GPU; ``NNODES``, ``NODE_RANK``, ``NPROC_PER_NODE``,
``MASTER_ADDR``, ``MASTER_PORT`` honoured). The data is prepared once, in the launching process,
and every rank reads the same prepared config. ``torchrun -m
datamind_ext.integrations.llamafactory.sft_entry CONFIG.yaml`` also works.

Preparation guarantees what LLaMA-Factory does not: malformed trajectories are reported with
their ids and skipped, and trajectories longer than ``cutoff_len`` are dropped and counted
instead of being truncated.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamind_ext.config import read_yaml
from datamind_ext.errors import UserError
from datamind_ext.ports import free_port
from datamind_ext.protocol import read_jsonl
from datamind_ext.sft.config import BLOCK_KEY, LLAMAFACTORY_CONFIG, DatamindSFTConfig, split_sft_config
from datamind_ext.sft.export import REPORT_FILE, ExportReport, export_llamafactory_dataset

#: LLaMA-Factory flags that change which tokens are trained (every assistant turn, nothing else).
_MASK_CHANGING_FLAGS = ("train_on_prompt", "mask_history")
#: LLaMA-Factory's own loss replacements; they bypass ``model.loss_function``.
_OWN_LOSS_FLAGS = ("use_dft_loss", "use_eaft_loss", "use_asft_loss", "enable_liger_kernel")
RESOLVED_CONFIG = "datamind_sft_resolved.yaml"


@dataclass
class PreparedSFT:
    """A run ready for ``run_exp``: LLaMA-Factory's arguments, our block, the export report."""

    lf_args: dict[str, Any]
    block: DatamindSFTConfig
    export: ExportReport | None = None
    notes: list[str] = field(default_factory=list)


def _lf_defaults() -> dict[str, Any]:
    """Every key LLaMA-Factory's train parser accepts, with its default."""
    from llamafactory.hparams import (
        DataArguments,
        FinetuningArguments,
        GeneratingArguments,
        ModelArguments,
        TrainingArguments,
    )

    out: dict[str, Any] = {}
    for cls in (ModelArguments, DataArguments, TrainingArguments, FinetuningArguments, GeneratingArguments):
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            else:
                out.setdefault(f.name, None)
    return out


def load_sft_config(path: str | Path, overrides: Sequence[str] = ()) -> tuple[dict[str, Any], DatamindSFTConfig]:
    """Read the yaml, apply ``key=value`` overrides (as LLaMA-Factory's CLI does), split it."""
    raw = read_yaml(path)
    if overrides:
        from omegaconf import OmegaConf

        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise UserError(f"overrides must be key=value, got: {' '.join(bad)}")
        if not isinstance(raw, dict):
            raise UserError(f"{path}: an SFT config must be a mapping")
        merged = OmegaConf.merge(OmegaConf.create(raw), OmegaConf.from_dotlist(list(overrides)))
        raw = OmegaConf.to_container(merged, resolve=True)
    return split_sft_config(raw, str(path))


def _read_trajectories(paths: Sequence[str]) -> Iterator[dict[str, Any]]:
    for p in paths:
        if not Path(p).is_file():
            raise UserError(f"trajectory file not found: {p}")
        try:
            yield from read_jsonl(p)
        except json.JSONDecodeError as err:
            raise UserError(f"{p}: not JSONL (line {err.lineno}: {err.msg})") from None


def _check_lf_args(lf_args: dict[str, Any], block: DatamindSFTConfig, defaults: dict[str, Any]) -> None:
    unknown = sorted(k for k in lf_args if k not in defaults)
    if unknown and os.environ.get("ALLOW_EXTRA_ARGS", "").lower() not in ("1", "true", "y"):
        raise UserError(
            f"unknown LLaMA-Factory keys: {', '.join(unknown)} (datamind_ext's own keys go under `{BLOCK_KEY}:`)"
        )
    if lf_args.get("stage", "sft") != "sft":
        raise UserError(f"stage must be sft, got {lf_args['stage']!r}")
    for flag in _MASK_CHANGING_FLAGS:
        if lf_args.get(flag):
            raise UserError(f"{flag}: true changes which tokens are trained; DataMind SFT trains every assistant turn")
    if block.loss != "ce":
        on = [f for f in _OWN_LOSS_FLAGS if lf_args.get(f)]
        if on:
            raise UserError(f"{BLOCK_KEY}.loss={block.loss} cannot be combined with {', '.join(on)}")
    if not lf_args.get("model_name_or_path"):
        raise UserError("model_name_or_path is required")


def _load_tokenizer(lf_args: dict[str, Any]) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        lf_args["model_name_or_path"], trust_remote_code=bool(lf_args.get("trust_remote_code", False))
    )


def _first_rows(data_file: Path, n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if n <= 0 or not data_file.is_file():
        return rows
    for row in read_jsonl(data_file):
        rows.append(row)
        if len(rows) >= n:
            break
    return rows


def _check_template(lf_args: dict[str, Any], block: DatamindSFTConfig, data_file: Path, tokenizer: Any = None) -> str | None:
    """Fail unless LLaMA-Factory's template renders the first rows exactly as the chat template."""
    rows = _first_rows(data_file, block.template_check_rows)
    if not rows:
        return None
    from datamind_ext.integrations.llamafactory.template_check import check_template

    mismatches = check_template(lf_args, tokenizer or _load_tokenizer(lf_args), rows)
    if mismatches:
        shown = "; ".join(m.describe() for m in mismatches[:3])
        raise UserError(
            f"LLaMA-Factory's template {lf_args.get('template')!r} renders {len(mismatches)}/{len(rows)} checked "
            f"trajectories differently from the model's chat template (used by RL and evaluation): {shown}. "
            f"Pick the matching template (or register one); {BLOCK_KEY}.template_check_rows=0 skips this check"
        )
    return f"LLaMA-Factory's template {lf_args.get('template')!r} matches the chat template on {len(rows)} rows"


def _check_existing_dataset(lf_args: dict[str, Any], block: DatamindSFTConfig, cutoff_len: int) -> list[str]:
    """For a dataset exported earlier, check its length filter against ``cutoff_len`` and its rendering."""
    notes = []
    dataset_dir = Path(lf_args.get("dataset_dir") or "data")
    report_path = dataset_dir / REPORT_FILE
    names = [n.strip() for n in str(lf_args.get("dataset", "")).split(",") if n.strip()]
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else None
    for name in names:
        if report is None or report.get("name") != name:
            notes.append(f"dataset {name!r} was not exported by datamind_ext: its lengths and roles are not checked")
            continue
        max_tokens = report.get("max_tokens")
        if max_tokens is None or max_tokens > cutoff_len:
            raise UserError(
                f"dataset {name!r} in {dataset_dir} was exported with max_tokens={max_tokens}; LLaMA-Factory would "
                f"truncate trajectories at cutoff_len={cutoff_len}. Re-export with max_tokens <= cutoff_len "
                f"(`datamind-ext synth export --tokenizer MODEL_DIR --max-tokens {cutoff_len}`)"
            )
        note = _check_template(lf_args, block, dataset_dir / Path(report["data_file"]).name)
        if note:
            notes.append(note)
    return notes


def prepare_sft(lf_args: dict[str, Any], block: DatamindSFTConfig, *, export_suffix: str = "") -> PreparedSFT:
    """Check the config, export the trajectories (if any) and point LLaMA-Factory at them."""
    defaults = _lf_defaults()
    _check_lf_args(lf_args, block, defaults)
    lf_args = dict(lf_args)
    lf_args.setdefault("stage", "sft")
    cutoff_len = int(lf_args.get("cutoff_len") or defaults["cutoff_len"])
    if block.max_tokens is not None and block.max_tokens > cutoff_len:
        raise UserError(f"{BLOCK_KEY}.max_tokens={block.max_tokens} exceeds cutoff_len={cutoff_len}: rows would be truncated")
    prepared = PreparedSFT(lf_args=lf_args, block=block)
    if not block.trajectories:
        if not lf_args.get("dataset"):
            raise UserError(f"no data: set `dataset` (LLaMA-Factory) or `{BLOCK_KEY}.trajectories`")
        prepared.notes += _check_existing_dataset(lf_args, block, cutoff_len)
        return prepared
    if lf_args.get("dataset"):
        raise UserError(f"set either `dataset` or `{BLOCK_KEY}.trajectories`, not both")
    if not lf_args.get("output_dir"):
        raise UserError("output_dir is required")
    export_dir = Path(block.export_dir or Path(lf_args["output_dir"]) / "datamind_dataset") / export_suffix
    tokenizer = _load_tokenizer(lf_args)
    batch_rows = _length_batch_rows(lf_args, block)
    if batch_rows:
        lf_args["train_sampling_strategy"] = "sequential"  # the exported order is the training order
    report = export_llamafactory_dataset(
        _read_trajectories(block.trajectories),
        export_dir,
        name=block.dataset_name,
        tokenizer=tokenizer,
        max_tokens=block.max_tokens or cutoff_len,
        max_observation_chars=block.max_observation_chars,
        length_batch_rows=batch_rows,
        order_seed=int(lf_args.get("data_seed") or lf_args.get("seed") or 0),
    )
    if report.n_written < block.min_trajectories:
        raise UserError(
            f"only {report.n_written} of {report.n_input} trajectories are usable "
            f"(min_trajectories={block.min_trajectories}); {report.reason_counts()} — see {export_dir / REPORT_FILE}"
        )
    note = _check_template(lf_args, block, Path(report.data_file), tokenizer)
    if note:
        prepared.notes.append(note)
    lf_args["dataset"] = block.dataset_name
    lf_args["dataset_dir"] = str(export_dir)
    prepared.export = report
    prepared.notes.append(_write_llamafactory_config(lf_args, block))
    return prepared


def _length_batch_rows(lf_args: dict[str, Any], block: DatamindSFTConfig) -> int | None:
    """The batch size ``length_batches`` groups rows by, or None; refuses samplers that would reorder them."""
    if not block.length_batches:
        return None
    other = [f"{k}={lf_args[k]}" for k in ("train_sampling_strategy", "group_by_length")
             if k in lf_args and lf_args[k] not in ("sequential", False)]
    if other:
        raise UserError(f"{BLOCK_KEY}.length_batches orders the rows itself: drop {' and '.join(other)}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError(f"{BLOCK_KEY}.length_batches is for one training process: its batches would be split across ranks")
    return int(lf_args.get("per_device_train_batch_size") or 8)


def _write_llamafactory_config(lf_args: dict[str, Any], block: DatamindSFTConfig) -> str:
    """Write the run as a plain LLaMA-Factory config (the exported dataset is standard sharegpt),
    so the stage can be rerun by hand with ``llamafactory-cli train``; say what that leaves out."""
    import yaml

    out_dir = Path(lf_args["output_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LLAMAFACTORY_CONFIG
    path.write_text(yaml.safe_dump(lf_args, sort_keys=False), encoding="utf-8")
    extras = ([f"loss={block.loss}"] if block.loss != "ce" else []) + \
        ([f"max_train_s={block.max_train_s:g}"] if block.max_train_s is not None else [])
    left_out = f" (without the {BLOCK_KEY}: block's {', '.join(extras)})" if extras else ""
    return f"the same run by hand: llamafactory-cli train {path}{left_out}"


def callbacks_for(block: DatamindSFTConfig) -> list[Any]:
    """Trainer callbacks implementing the ``datamind:`` block (none for plain CE without a time budget)."""
    callbacks: list[Any] = []
    if block.loss != "ce":
        from datamind_ext.integrations.llamafactory.loss_callback import TokenWeightedLossCallback

        callbacks.append(TokenWeightedLossCallback(block.loss))
    if block.max_train_s is not None:
        from datamind_ext.integrations.llamafactory.time_budget import TimeBudgetCallback

        callbacks.append(TimeBudgetCallback(block.max_train_s))
    return callbacks


def train(prepared: PreparedSFT) -> None:
    """Register our components into LLaMA-Factory and run its SFT workflow in this process."""
    from llamafactory.train.tuner import run_exp

    from datamind_ext.integrations.llamafactory.registration import register_all

    register_all()
    run_exp(args=dict(prepared.lf_args), callbacks=callbacks_for(prepared.block))


def print_preparation(prepared: PreparedSFT) -> None:
    if prepared.export is not None:
        print(f"[datamind sft] {prepared.export.summary()}".replace("\n", "\n[datamind sft] "), flush=True)
    for note in prepared.notes:
        print(f"[datamind sft] note: {note}", flush=True)
    print(f"[datamind sft] loss: {prepared.block.loss}", flush=True)


def run_sft_stage(config: str | Path, overrides: Sequence[str] = ()) -> PreparedSFT:
    """Prepare and train in this process (one CPU/GPU, or one rank under torchrun)."""
    lf_args, block = load_sft_config(config, overrides)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    # Launched by torchrun directly: every rank exports its own copy rather than racing on one folder.
    suffix = f"rank{os.environ.get('RANK', '0')}" if world > 1 and block.trajectories else ""
    prepared = prepare_sft(lf_args, block, export_suffix=suffix)
    if int(os.environ.get("RANK", "0")) == 0:
        print_preparation(prepared)
    train(prepared)
    return prepared


def wants_torchrun() -> bool:
    """LLaMA-Factory's rule: ``FORCE_TORCHRUN`` set, or more than one accelerator visible."""
    if os.environ.get("FORCE_TORCHRUN", "").lower() in ("1", "true", "y"):
        return True
    try:
        import torch

        return torch.cuda.device_count() > 1
    except ImportError:
        return False


def launch_distributed(config: str | Path, overrides: Sequence[str] = ()) -> int:
    """Prepare once here, write the resolved config, and start every rank with torchrun."""
    import torch

    lf_args, block = load_sft_config(config, overrides)
    prepared = prepare_sft(lf_args, block)
    print_preparation(prepared)
    resolved_block = prepared.block.model_copy(update={"trajectories": [], "export_dir": None})
    resolved = {**prepared.lf_args, BLOCK_KEY: resolved_block.model_dump(exclude_defaults=True)}
    out_dir = Path(prepared.lf_args.get("output_dir") or ".")
    out_dir.mkdir(parents=True, exist_ok=True)
    resolved_path = out_dir / RESOLVED_CONFIG
    import yaml

    resolved_path.write_text(yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")
    env = os.environ
    nproc = env.get("NPROC_PER_NODE", str(max(torch.cuda.device_count(), 1)))
    master_port = env.get("MASTER_PORT") or str(free_port())
    cmd = [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", env.get("NNODES", "1"), "--node_rank", env.get("NODE_RANK", "0"),
        "--nproc_per_node", nproc, "--master_addr", env.get("MASTER_ADDR", "127.0.0.1"), "--master_port", master_port,
        "-m", "datamind_ext.integrations.llamafactory.sft_entry", str(resolved_path),
    ]  # fmt: skip
    print(f"[datamind sft] launching: {' '.join(cmd)}", flush=True)
    return subprocess.run(cmd, check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m datamind_ext.integrations.llamafactory.sft_entry CONFIG.yaml [key=value ...]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m datamind_ext.integrations.llamafactory.sft_entry CONFIG.yaml [key=value ...]", file=sys.stderr)
        return 2
    try:
        run_sft_stage(args[0], args[1:])
    except UserError as err:
        print(f"datamind sft: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
