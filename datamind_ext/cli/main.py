"""Entry point of ``datamind-ext``: one sub-command per stage, user errors as one line.

Each sub-command lives in its own module exposing ``add_parser(subparsers)``; the module named
in ``COMMANDS`` is imported only to build its parser, and its heavy imports happen in the
handler, so ``datamind-ext --help`` stays fast and framework-free.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from datamind_ext import __version__
from datamind_ext.errors import UserError

# Sub-command modules (datamind_ext.cli.<name>), in the order --help lists them.
COMMANDS: tuple[str, ...] = ("doctor", "tiny_model", "sft", "eval", "synth", "rollout", "run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datamind-ext", description="DataMind recipe on verl and LLaMA-Factory.")
    parser.add_argument("--version", action="version", version=f"datamind-ext {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"datamind_ext.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Why parse_known_args: argparse binds a trailing ``nargs="*"`` positional (the ``key=value``
    # overrides of run/sft/eval) as soon as it meets the first option, so overrides written after
    # the options (``eval dabench --data D --out O k=1``) would be "unrecognized"; they are taken here.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(t.startswith("-") or "=" not in t for t in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*(args.overrides or []), *extra]
    try:
        return int(args.handler(args) or 0)
    except UserError as err:
        print(f"datamind-ext {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"datamind-ext {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
