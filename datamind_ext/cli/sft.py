"""``datamind-ext sft CONFIG.yaml [key=value ...]``: the SFT stage on LLaMA-Factory.

The config is a LLaMA-Factory SFT yaml plus a ``datamind:`` block (loss variant, trajectory
files to export). One process on CPU or one GPU; torchrun on several GPUs, decided as
``llamafactory-cli train`` decides it (``FORCE_TORCHRUN=1`` or more than one GPU visible).
"""

from __future__ import annotations

import argparse
import os


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sft", help="SFT with LLaMA-Factory (config: LLaMA-Factory yaml + a datamind: block)")
    p.add_argument("config", help="LLaMA-Factory SFT yaml with an optional `datamind:` block")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. learning_rate=1e-5 datamind.loss=dft")
    p.add_argument("--prepare-only", action="store_true", help="check and export the data, print the report, do not train")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from datamind_ext.integrations.llamafactory import sft_entry

    if args.prepare_only:
        lf_args, block = sft_entry.load_sft_config(args.config, args.overrides)
        sft_entry.print_preparation(sft_entry.prepare_sft(lf_args, block))
        return 0
    if sft_entry.wants_torchrun() and "WORLD_SIZE" not in os.environ:
        return sft_entry.launch_distributed(args.config, args.overrides)
    sft_entry.run_sft_stage(args.config, args.overrides)
    return 0
