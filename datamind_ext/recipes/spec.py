"""A recipe folder's ``recipe.yaml``: which stages run, with which per-stage config files.

Why a separate file: each stage keeps its framework's own config (LLaMA-Factory yaml for SFT,
verl hydra yaml for RL, ``SynthConfig``/``EvalConfig`` yaml), runnable by hand; ``recipe.yaml``
only says how they chain (which model, which data, where outputs go). Relative paths in it are
relative to the recipe folder, except ``run_dir`` and ``synth.data``, which are relative to the
directory the command runs in (the repository root, where ``data/`` lives).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveInt, model_validator

from datamind_ext.config import StrictModel, apply_overrides, parse_config, read_yaml
from datamind_ext.errors import UserError

STAGES: tuple[str, ...] = ("model", "synth", "sft", "rl", "eval")
CHECKPOINTS: tuple[str, ...] = ("base", "sft", "rl")
#: seeds of the resampled training copies (``synth.train_variants``) are this plus 1, 2, ...
TRAIN_VARIANT_SEED = 1000


class ModelSpec(StrictModel):
    """The starting model: the offline tiny model (built locally) or a path / hub id."""

    tiny_preset: Literal["test", "quickstart"] | None = None
    path: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.tiny_preset is None) == (self.path is None):
            raise ValueError("set exactly one of tiny_preset and path")
        return self


class HeldoutSpec(StrictModel):
    """One held-out evaluation set, synthesized over new tables made from the training data."""

    name: str
    kind: Literal["fresh_tables", "unseen_names"]
    tasks_per_table: int = Field(4, ge=1)
    seed: int = 1


class SynthSpec(StrictModel):
    config: str = Field(description="SynthConfig yaml, relative to the recipe folder")
    data: str = Field("data/samples/files", description="folder of training data files")
    train_variants: int = Field(
        0, ge=0, le=50, description="also synthesize over this many resampled copies of the data files (same names "
        "and formats, new values): the same question then has different answers across trajectories, so a model "
        "must read them from the interpreter instead of remembering them (a tiny model otherwise remembers)")
    heldout: list[HeldoutSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _heldout_differs_from_training(self) -> SynthSpec:
        """A held-out set made with a training copy's seed would be that copy: training data."""
        clash = [h.name for h in self.heldout if h.kind == "fresh_tables"
                 and TRAIN_VARIANT_SEED < h.seed <= TRAIN_VARIANT_SEED + self.train_variants]
        if clash:
            raise ValueError(f"held-out set(s) {', '.join(clash)} use a seed of a training copy "
                             f"({TRAIN_VARIANT_SEED + 1}..{TRAIN_VARIANT_SEED + self.train_variants}); pick another seed")
        return self


class SftSpec(StrictModel):
    config: str = Field(description="LLaMA-Factory SFT yaml with a datamind: block")
    overrides: list[str] = Field(default_factory=list, description="extra key=value passed to datamind-ext sft")


class RlSpec(StrictModel):
    config: str = Field(description="verl hydra yaml (its folder is --config-path, its stem --config-name)")
    overrides: list[str] = Field(default_factory=list, description="extra hydra overrides")
    env: dict[str, str] = Field(default_factory=dict, description="environment of the trainer process (CPU opt-ins)")
    timeout_s: float = Field(3600.0, gt=0)


class BenchmarkEval(StrictModel):
    """A published benchmark evaluated on every checkpoint (``datamind-ext eval BENCH``)."""

    name: Literal["dabench", "tablebench", "bird", "qrdata", "discoverybench"]
    data: str = Field(description="folder of the benchmark's official files (eval/BENCH/README.md)")
    config: str | None = Field(None, description="EvalConfig yaml, relative to the repository root")


class EvalSpec(StrictModel):
    checkpoints: list[Literal["base", "sft", "rl"]] = Field(default_factory=lambda: list(CHECKPOINTS))
    config: str | None = Field(None, description="EvalConfig yaml (sampling, budgets), relative to the recipe")
    k: int = Field(1, ge=1)
    limit: int | None = Field(None, ge=1, description="questions per set (None: all)")
    checkpoint_limits: dict[Literal["base", "sft", "rl"], PositiveInt] = Field(
        default_factory=dict, description="questions per set for these checkpoints, instead of `limit` (an untrained "
        "base answers nothing and spends every token budget: a few dozen questions show its 0 % as well as all)")
    checkpoint_sets: dict[Literal["base", "sft", "rl"], list[str]] = Field(
        default_factory=dict, description="the only sets (benchmark or held-out names) these checkpoints are "
        "evaluated on; the others get every set (e.g. RL on the set whose before/after is compared)")
    concurrency: int = Field(8, ge=1)
    server: Literal["datamind_hf", "vllm"] = Field(
        "datamind_hf", description="how each checkpoint is served: our CPU server or `vllm serve`")
    server_args: list[str] = Field(default_factory=list, description="extra server flags (vllm: --max-model-len ...)")
    server_start_timeout_s: float = Field(600.0, gt=0)
    heldout: bool = Field(True, description="evaluate on the synth.heldout sets")
    benchmarks: list[BenchmarkEval] = Field(default_factory=list)
    judge_model: str | None = None
    judge_base_url: str | None = None


class RecipeSpec(StrictModel):
    name: str
    run_dir: str = Field(description="where every stage writes, relative to the working directory")
    model: ModelSpec
    synth: SynthSpec
    sft: SftSpec
    rl: RlSpec
    eval: EvalSpec = Field(default_factory=EvalSpec)

    def eval_sets(self, ckpt: str | None = None) -> list[str]:
        """Names of the sets ``ckpt`` is evaluated on (None: every evaluated set): the benchmarks,
        then the held-out sets."""
        names = [b.name for b in self.eval.benchmarks] + ([h.name for h in self.synth.heldout] if self.eval.heldout else [])
        only = self.eval.checkpoint_sets.get(ckpt) if ckpt else None
        return [n for n in names if n in only] if only is not None else names

    @model_validator(mode="after")
    def _known_eval_sets(self) -> RecipeSpec:
        known = self.eval_sets()
        for ckpt, names in self.eval.checkpoint_sets.items():
            if not names:
                raise ValueError(f"eval.checkpoint_sets.{ckpt} is empty: name a set, or drop {ckpt} from eval.checkpoints")
            unknown = sorted(set(names) - set(known))
            if unknown:
                raise ValueError(f"eval.checkpoint_sets.{ckpt}: no evaluated set named {', '.join(unknown)} "
                                 f"(known: {', '.join(sorted(known)) or 'none'})")
        return self


def load_recipe(recipe: Path, overrides: Sequence[str] = ()) -> tuple[RecipeSpec, Path]:
    """The spec of ``recipe`` (a folder holding ``recipe.yaml``, or the yaml itself) with ``key=value``
    overrides applied, and its folder."""
    path = recipe / "recipe.yaml" if recipe.is_dir() else recipe
    where = str(path) + (" (with overrides)" if overrides else "")
    return parse_config(RecipeSpec, apply_overrides(read_yaml(path), overrides, str(path)), where), path.parent.resolve()
