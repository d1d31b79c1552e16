"""``datamind-ext run RECIPE [key=value ...]``: run a recipe's stages (model, synth, sft, rl, eval) in order.

Each stage is a subprocess running the command it prints (so a stage can be rerun by hand),
skipped when its marker says its outputs are complete for the same configs.
"""

from __future__ import annotations

import argparse

STAGE_NAMES = ("model", "synth", "sft", "rl", "eval")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a recipe folder's stages: model → synth → sft → rl → eval, then a summary")
    p.add_argument("recipe", help="recipe folder (holding recipe.yaml), e.g. recipes/quickstart")
    p.add_argument("overrides", nargs="*",
                   help="key=value changes to recipe.yaml, e.g. synth.data=data/mine 'rl.overrides=[trainer.nnodes=1]'")
    p.add_argument("--from", dest="from_stage", choices=STAGE_NAMES, help="first stage to run")
    p.add_argument("--to", dest="to_stage", choices=STAGE_NAMES, help="last stage to run")
    p.add_argument("--run-dir", help="output folder (default: recipe.yaml's run_dir)")
    p.add_argument("--force", action="store_true", help="rerun stages even when their outputs are complete")
    p.add_argument("--dry-run", action="store_true", help="print each stage's commands without running them")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from datamind_ext.errors import UserError
    from datamind_ext.recipes.runner import run_recipe

    recipe = Path(args.recipe)
    if not (recipe / "recipe.yaml").is_file() and not recipe.is_file():
        raise UserError(f"{recipe}: no recipe.yaml (a recipe is a folder like recipes/quickstart)")
    run_recipe(recipe, from_stage=args.from_stage, to_stage=args.to_stage,
               run_dir=Path(args.run_dir) if args.run_dir else None, force=args.force, dry_run=args.dry_run,
               overrides=args.overrides)
    return 0
