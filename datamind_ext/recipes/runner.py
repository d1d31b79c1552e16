"""``datamind-ext run RECIPE``: the recipe's stages in order, each a subprocess, each resumable.

Why subprocesses: verl and LLaMA-Factory must never be imported into one process (they pin and
patch different things), and a stage run by hand must behave exactly like a stage run here, so
each stage is the same command line the runner prints. A stage is skipped when its marker
(``RUN/.markers/STAGE.json``) holds the same hash (the stage's spec, the bytes of its config
files and the hashes of the stages it reads from) and its outputs exist.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamind_ext.errors import UserError
from datamind_ext.ports import free_port
from datamind_ext.recipes.spec import STAGES, TRAIN_VARIANT_SEED, RecipeSpec, load_recipe
from datamind_ext.recipes.summary import ROLLOUTS_DIR
from datamind_ext.sft.config import LLAMAFACTORY_CONFIG


@dataclass
class Command:
    """One subprocess of a stage, with the form printed for users to run by hand."""

    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    cwd: Path | None = None  # hydra writes its outputs/ folder here (verl's trainer)

    def shown(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        argv = list(self.argv)
        if argv[:3] == [sys.executable, "-m", "datamind_ext"]:
            argv[:3] = ["datamind-ext"]
        elif argv and argv[0] == sys.executable:
            argv[0] = "python"
        return (env + " " if env else "") + shlex.join(argv)


@dataclass
class StageResult:
    name: str
    status: str  # ran | skipped | failed
    seconds: float
    outputs: list[str]
    commands: list[str]


class Recipe:
    """A loaded recipe and its run folder; stage methods build and run each stage."""

    def __init__(self, recipe: Path, *, run_dir: Path | None = None, log: Callable[[str], None] = print,
                 overrides: Sequence[str] = ()) -> None:
        self.spec: RecipeSpec
        self.spec, self.recipe_dir = load_recipe(recipe, overrides)
        self.run_dir = (run_dir or Path(self.spec.run_dir)).resolve()
        self.markers = self.run_dir / ".markers"
        self.log = log
        self.hashes: dict[str, str] = {}

    # -- paths every stage agrees on -------------------------------------------------------
    def cfg(self, rel: str) -> Path:
        p = (self.recipe_dir / rel).resolve()
        if not p.is_file():
            raise UserError(f"{self.recipe_dir / 'recipe.yaml'}: config file not found: {p}")
        return p

    @property
    def model_file(self) -> Path:
        return self.run_dir / "model" / "path.txt"

    def base_model(self) -> str:
        if not self.model_file.is_file():
            raise UserError(f"{self.model_file} is missing: run the 'model' stage first")
        return self.model_file.read_text().strip()

    @property
    def synth_dir(self) -> Path:
        return self.run_dir / "synth" / "train"

    def heldout_dir(self, name: str) -> Path:
        return self.run_dir / "heldout" / name

    @property
    def sft_dir(self) -> Path:
        return self.run_dir / "sft"

    @property
    def rl_dir(self) -> Path:
        return self.run_dir / "rl"

    def rl_model(self) -> Path | None:
        """The Hugging Face export of the last RL checkpoint (verl's ``actor/huggingface``)."""
        found = sorted(self.rl_dir.glob("ckpt/global_step_*/actor/huggingface"),
                       key=lambda p: int(p.parent.parent.name.rsplit("_", 1)[1]))
        return found[-1] if found else None

    def checkpoint(self, name: str) -> str:
        if name == "base":
            return self.base_model()
        if name == "sft":
            return str(self.sft_dir)
        rl = self.rl_model()
        if rl is None:
            raise UserError(f"no RL checkpoint with a huggingface/ export under {self.rl_dir / 'ckpt'}")
        return str(rl)

    # -- hashing and markers ---------------------------------------------------------------
    def stage_hash(self, stage: str, files: list[Path], upstream: list[str]) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(getattr(self.spec, stage).model_dump(), sort_keys=True).encode())
        for f in files:
            h.update(f.name.encode() + f.read_bytes())
        for up in upstream:
            h.update(self.hashes.get(up, "").encode())
        return h.hexdigest()[:16]

    def complete(self, stage: str, digest: str, outputs: list[Path]) -> bool:
        marker = self.markers / f"{stage}.json"
        if not marker.is_file():
            return False
        data = json.loads(marker.read_text())
        return data.get("hash") == digest and all(p.exists() for p in outputs)

    def mark(self, stage: str, digest: str, outputs: list[Path]) -> None:
        self.markers.mkdir(parents=True, exist_ok=True)
        (self.markers / f"{stage}.json").write_text(
            json.dumps({"hash": digest, "outputs": [str(p) for p in outputs], "finished": time.time()}))

    # -- running ---------------------------------------------------------------------------
    def execute(self, cmd: Command) -> subprocess.CompletedProcess[str]:
        cmd.log.parent.mkdir(parents=True, exist_ok=True)
        self.log(f"  $ {cmd.shown()}")
        self.log(f"    (log: {cmd.log})")
        env = dict(os.environ, **cmd.env)
        with cmd.log.open("w") as out:
            proc = subprocess.run(cmd.argv, stdout=out, stderr=subprocess.STDOUT, env=env, text=True,
                                  timeout=cmd.timeout_s, check=False, cwd=cmd.cwd)
        if proc.returncode != 0:
            tail = "\n".join(cmd.log.read_text(errors="replace").splitlines()[-25:])
            raise UserError(f"stage command failed (exit {proc.returncode}), see {cmd.log}:\n{tail}")
        return proc


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "datamind_ext", *args]


# -- the stages ------------------------------------------------------------------------------
def stage_model(r: Recipe) -> tuple[list[Path], list[Path], list[str], Callable[[], None]]:
    m = r.spec.model
    cmds: list[Command] = []
    if m.tiny_preset:
        cmds.append(Command(_cli("tiny-model", "--preset", m.tiny_preset), r.run_dir / "model" / "log.txt"))

    def run() -> None:
        if m.tiny_preset:
            r.execute(cmds[0])
            path = cmds[0].log.read_text().strip().splitlines()[-1].strip()
        else:
            path = str(m.path)
        r.model_file.parent.mkdir(parents=True, exist_ok=True)
        r.model_file.write_text(path + "\n")

    return [], [r.model_file], [c.shown() for c in cmds] or [f"(model: {m.path})"], run


def stage_synth(r: Recipe) -> tuple[list[Path], list[Path], list[str], Callable[[], None]]:
    from datamind_ext.recipes.heldout import make_heldout_folder, readable_sources

    s = r.spec.synth
    cfg = r.cfg(s.config)
    data = Path(s.data).resolve()
    # with variants, synthesis reads a folder holding the data and its resampled copies
    train_data = r.run_dir / "synth" / "data" if s.train_variants else data
    cmds = [Command(_cli("synth", "all", "--config", str(cfg), "--data", str(train_data), "--out", str(r.synth_dir)),
                    r.synth_dir / "log.txt")]
    for h in s.heldout:
        d = r.heldout_dir(h.name)
        cmds.append(Command(_cli("synth", "all", "--config", str(cfg), "--data", str(d / "data"), "--out",
                                 str(d / "synth"), "--tasks-per-table", str(h.tasks_per_table), "--seed", str(h.seed)),
                            d / "log.txt"))
    outputs = [r.synth_dir / "export" / "rl" / "train.parquet", r.synth_dir / "filtered" / "kept.jsonl"]
    outputs += [r.heldout_dir(h.name) / "synth" / "export" / "rl" / "train.parquet" for h in s.heldout]

    def run() -> None:
        if not data.is_dir():
            raise UserError(f"synth.data: not a folder: {data}")
        sources = readable_sources(data)
        if s.train_variants:
            shutil.rmtree(train_data, ignore_errors=True)
            shutil.copytree(data, train_data / "original")
            for k in range(1, s.train_variants + 1):
                make_heldout_folder(data, train_data / f"variant_{k}", "fresh_tables", seed=TRAIN_VARIANT_SEED + k,
                                    sources=sources)
            r.log(f"  training data: {data} and {s.train_variants} resampled copies in {train_data}")
        r.execute(cmds[0])
        for h, cmd in zip(s.heldout, cmds[1:], strict=True):
            written = make_heldout_folder(data, r.heldout_dir(h.name) / "data", h.kind, seed=h.seed, sources=sources)
            r.log(f"  held-out set {h.name} ({h.kind}): {len(written)} new tables in {r.heldout_dir(h.name) / 'data'}")
            r.execute(cmd)

    return [cfg], outputs, [c.shown() for c in cmds], run


def stage_sft(r: Recipe) -> tuple[list[Path], list[Path], list[str], Callable[[], None]]:
    s = r.spec.sft
    cfg = r.cfg(s.config)
    kept = r.synth_dir / "filtered" / "kept.jsonl"
    model = r.base_model() if r.model_file.is_file() else (r.spec.model.path or "<model stage output>")
    cmd = Command(_cli("sft", str(cfg), f"model_name_or_path={model}", f"output_dir={r.sft_dir}",
                       f"datamind.trajectories=[{kept}]", *s.overrides), r.run_dir / "logs" / "sft.txt")
    outputs = [r.sft_dir / "config.json", r.sft_dir / "trainer_log.jsonl"]
    by_hand = f"llamafactory-cli train {r.sft_dir / LLAMAFACTORY_CONFIG}   # the same training, once the command above exported the data"

    def run() -> None:
        r.execute(cmd)
        r.log(f"  by hand: {by_hand}")

    return [cfg], outputs, [cmd.shown(), by_hand], run


def rl_command(r: Recipe) -> Command:
    s = r.spec.rl
    cfg = r.cfg(s.config)
    val = r.heldout_dir(r.spec.synth.heldout[0].name) / "synth/export/rl/train.parquet" if r.spec.synth.heldout \
        else r.synth_dir / "export/rl/train.parquet"
    argv = [sys.executable, "-m", "verl.trainer.main_ppo", f"--config-path={cfg.parent}", f"--config-name={cfg.stem}",
            f"data.train_files={r.synth_dir / 'export/rl/train.parquet'}", f"data.val_files={val}",
            f"actor_rollout_ref.model.path={r.sft_dir}", f"trainer.default_local_dir={r.rl_dir / 'ckpt'}",
            # each step's rollouts with their scores: the summary's per-step reward noise band
            f"trainer.rollout_data_dir={r.rl_dir / ROLLOUTS_DIR}", *s.overrides]
    # verl's tensorboard logger writes to $TENSORBOARD_DIR, wandb to $WANDB_DIR: both into the run folder
    env = {"TENSORBOARD_DIR": str(r.rl_dir / "tensorboard"), "WANDB_DIR": str(r.rl_dir), **s.env}
    return Command(argv, r.rl_dir / "log.txt", env=env, timeout_s=s.timeout_s, cwd=r.rl_dir)


RL_INPUTS_FILE = "datamind_inputs.txt"


def retire_other_rl_state(rl_dir: Path, digest: str) -> Path | None:
    """Move checkpoints and rollout dumps made from other inputs out of verl's way; return where.

    verl resumes from the latest checkpoint in ``default_local_dir`` (``resume_mode: auto``): right
    after an interruption of the same run (same stage hash: resumed, nothing lost), wrong after the
    SFT model or the config changed, where it would load the old run's last step and train nothing.
    Nothing is deleted: the old run moves to ``rl_dir/replaced-<time>-<random>/``."""
    ckpt, stamp = rl_dir / "ckpt", rl_dir / "ckpt" / RL_INPUTS_FILE
    moved = None
    old = [p for p in (ckpt, rl_dir / ROLLOUTS_DIR) if p.exists()]
    if old and not (stamp.is_file() and stamp.read_text().strip() == digest):
        moved = Path(tempfile.mkdtemp(prefix=f"replaced-{time.strftime('%Y%m%d-%H%M%S')}-", dir=rl_dir))
        for p in old:
            p.rename(moved / p.name)
    ckpt.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")
    return moved


def stage_rl(r: Recipe) -> tuple[list[Path], list[Path], list[str], Callable[[], None]]:
    cmd = rl_command(r)
    cfg = r.cfg(r.spec.rl.config)
    extra = sorted(p for p in cfg.parent.glob("*.yaml") if p != cfg)  # hydra defaults (the CPU preset)

    def run() -> None:
        from datamind_ext.recipes.rl_length import check_rl_length

        r.log("  " + check_rl_length(cfg, r.spec.rl.overrides, r.synth_dir / "export/rl/train.parquet"))
        r.rl_dir.mkdir(parents=True, exist_ok=True)
        moved = retire_other_rl_state(r.rl_dir, r.hashes["rl"])
        if moved:
            r.log(f"  {r.rl_dir} held a run of other inputs (SFT model, data or config): moved to {moved}, "
                  "so verl starts fresh instead of resuming it")
        r.execute(cmd)
        if r.rl_model() is None:
            raise UserError(f"verl finished but wrote no huggingface/ checkpoint under {r.rl_dir / 'ckpt'} "
                            "(set trainer.save_freq and actor.checkpoint.save_contents to include hf_model)")

    return [cfg, *extra], [r.rl_dir / "log.txt"], [cmd.shown()], run


def _wait_for_server(url: str, proc: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"model server exited with {proc.returncode}, see {log}")
        try:
            with urllib.request.urlopen(url + "/models", timeout=5):
                return
        except OSError:
            time.sleep(1.0)
    raise UserError(f"model server at {url} not ready after {timeout_s:.0f} s, see {log}")


def eval_commands(r: Recipe, ckpt: str, model: str, port: int) -> tuple[Command, list[Command]]:
    e = r.spec.eval
    url = f"http://127.0.0.1:{port}/v1"
    if e.server == "datamind_hf":
        server = Command([sys.executable, "-m", "datamind_ext.generation.server", "--model", model, "--port", str(port)],
                         r.run_dir / "eval" / ckpt / "server.txt")
    else:
        server = Command(["vllm", "serve", model, "--served-model-name", "datamind", "--port", str(port)],
                         r.run_dir / "eval" / ckpt / "server.txt")
    server.argv += e.server_args
    served = model if e.server == "datamind_hf" else "datamind"
    limit = e.checkpoint_limits.get(ckpt, e.limit)
    judge = (["--judge-model", e.judge_model] if e.judge_model else []) + \
        (["--judge-base-url", e.judge_base_url] if e.judge_base_url else [])
    clients = []
    sets = r.spec.eval_sets(ckpt)
    for b in (b for b in e.benchmarks if b.name in sets):
        argv = _cli("eval", b.name, "--data", str(Path(b.data).resolve()), "--model", served, "--base-url", url,
                    "--k", str(e.k), "--concurrency", str(e.concurrency), "--out", str(r.run_dir / "eval" / ckpt / b.name),
                    "--no-progress", *judge)
        if limit:
            argv += ["--limit", str(limit)]
        if b.config:
            argv += ["--config", str(Path(b.config).resolve())]
        clients.append(Command(argv, r.run_dir / "eval" / ckpt / f"{b.name}.log.txt"))
    for h in (h for h in r.spec.synth.heldout if h.name in sets):
        argv = _cli("eval", "synth", "--data", str(r.heldout_dir(h.name) / "synth"), "--model", served,
                    "--base-url", url, "--k", str(e.k), "--concurrency", str(e.concurrency),
                    "--out", str(r.run_dir / "eval" / ckpt / h.name), "--no-progress")
        if limit:
            argv += ["--limit", str(limit)]
        if e.config:
            argv += ["--config", str(r.cfg(e.config))]
        clients.append(Command(argv, r.run_dir / "eval" / ckpt / f"{h.name}.log.txt"))
    return server, clients


def stage_eval(r: Recipe) -> tuple[list[Path], list[Path], list[str], Callable[[], None]]:
    e = r.spec.eval
    files = [r.cfg(e.config)] if e.config else []
    outputs = [r.run_dir / "eval" / c / n / "summary.json" for c in e.checkpoints for n in r.spec.eval_sets(c)]
    shown = []
    for c in e.checkpoints:
        server, clients = eval_commands(r, c, f"<{c} checkpoint>", 8000)
        shown += [server.shown() + " &", *(cl.shown() for cl in clients)]

    def run() -> None:
        for c in e.checkpoints:
            if all((r.run_dir / "eval" / c / n / "summary.json").is_file() for n in r.spec.eval_sets(c)) \
                    and (r.markers / f"eval-{c}.json").is_file() \
                    and json.loads((r.markers / f"eval-{c}.json").read_text()).get("model") == r.checkpoint(c):
                r.log(f"  eval {c}: done before, skipped")
                continue
            server, clients = eval_commands(r, c, r.checkpoint(c), free_port())
            server.log.parent.mkdir(parents=True, exist_ok=True)
            r.log(f"  $ {server.shown()} &")
            with server.log.open("w") as out:
                proc = subprocess.Popen(server.argv, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
            try:
                _wait_for_server(clients[0].argv[clients[0].argv.index("--base-url") + 1], proc,
                                 e.server_start_timeout_s, server.log)
                for cl in clients:
                    r.execute(cl)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            r.markers.mkdir(parents=True, exist_ok=True)
            (r.markers / f"eval-{c}.json").write_text(json.dumps({"model": r.checkpoint(c)}))

    return files, outputs, shown, run


STAGE_FUNCS = {"model": stage_model, "synth": stage_synth, "sft": stage_sft, "rl": stage_rl, "eval": stage_eval}
UPSTREAM = {"model": [], "synth": [], "sft": ["model", "synth"], "rl": ["sft", "synth"], "eval": ["model", "sft", "rl"]}


def missing_inputs(r: Recipe, stages: Sequence[str]) -> list[str]:
    """The user-provided input folders the ``stages`` read that do not exist (checked before anything runs)."""
    missing = []
    if "synth" in stages and not Path(r.spec.synth.data).resolve().is_dir():
        missing.append(f"synth.data={r.spec.synth.data}")
    if "eval" in stages:
        missing += [f"eval.benchmarks[{b.name}].data={b.data}" for b in r.spec.eval.benchmarks
                    if not Path(b.data).resolve().is_dir()]
    return missing


def run_recipe(recipe: Path, *, from_stage: str | None = None, to_stage: str | None = None,
               run_dir: Path | None = None, force: bool = False, dry_run: bool = False,
               log: Callable[[str], None] = print, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Run (or print, with ``dry_run``) the stages ``from_stage..to_stage``; return the summary.

    ``overrides`` are ``key=value`` changes to ``recipe.yaml`` (``rl.overrides=[trainer.nnodes=1]``).
    Missing input folders fail first, in a dry run too: a typo must not wait for a GPU job to start.
    """
    from datamind_ext.recipes.summary import write_summary

    r = Recipe(recipe, run_dir=run_dir, log=log, overrides=overrides)
    names = list(STAGES)
    lo = names.index(from_stage) if from_stage else 0
    hi = names.index(to_stage) if to_stage else len(names) - 1
    if lo > hi:
        raise UserError(f"--from {from_stage} comes after --to {to_stage} (stages: {', '.join(names)})")
    missing = missing_inputs(r, names[lo:hi + 1])
    if missing:
        raise UserError(f"{r.recipe_dir / 'recipe.yaml'}: input folder(s) not found: {', '.join(missing)} "
                        "(create them or override, e.g. synth.data=PATH)")
    results: list[StageResult] = []
    for i, name in enumerate(names):
        files, outputs, shown, run = STAGE_FUNCS[name](r)
        digest = r.stage_hash(name, files, UPSTREAM[name])
        r.hashes[name] = digest
        if not lo <= i <= hi:
            continue
        log(f"== stage {name} ==")
        if dry_run:
            for s in shown:
                log(f"  $ {s}")
            continue
        if not force and r.complete(name, digest, outputs):
            log(f"  complete (marker {digest}), skipped; outputs: {', '.join(str(o) for o in outputs)}")
            results.append(StageResult(name, "skipped", 0.0, [str(o) for o in outputs], shown))
            continue
        t0 = time.monotonic()
        run()
        seconds = time.monotonic() - t0
        r.mark(name, digest, outputs)
        log(f"  done in {seconds:.0f} s")
        results.append(StageResult(name, "ran", seconds, [str(o) for o in outputs], shown))
    if dry_run:
        return {}
    return write_summary(r, results, log=log)
