"""``datamind-ext tiny-model``: build the offline tiny model used by tests and the quickstart."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tiny-model", help="build (or find in the cache) the tiny random Qwen2 model")
    p.add_argument("--preset", default="test", choices=["test", "quickstart"])
    p.add_argument("--cache-dir", default=None, help="where model folders are kept (default: $DATAMIND_EXT_CACHE)")
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from datamind_ext.models.tiny import build_tiny_model

    print(build_tiny_model(args.preset, args.cache_dir, force=args.force))
    return 0
