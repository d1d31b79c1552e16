"""Run a programmatic task for real: its ground truth, and its expert trajectory.

The ground truth of a programmatic task is the last line its program prints when the whole
program runs in the interpreter, so it is exact by construction. The expert trajectory replays the
same program one cell per assistant turn in a fresh interpreter session and records the real
observations; it is kept only if its final printed value equals the ground truth (a second,
independent execution). Nothing here writes an observation by hand.
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

from datamind_ext.agent.prompts import system_prompt
from datamind_ext.protocol import (
    Message,
    Trajectory,
    observation_message,
    observation_text,
)
from datamind_ext.protocol.observation import ExecutionLike
from datamind_ext.synthesis.execute import Executor
from datamind_ext.synthesis.programs import TaskSpec
from datamind_ext.synthesis.store import content_key

#: printed values that mean the program computed nothing usable
BAD_ANSWERS = frozenset({"", "nan", "none", "inf", "-inf", "nat", "<na>"})


def final_value(output: str) -> str:
    """The last non-empty printed line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def answer_problem(value: str) -> str | None:
    """Why a printed value cannot be a ground truth (None if it can)."""
    v = value.strip().lower()
    if v in BAD_ANSWERS:
        return f"degenerate_answer:{v or 'empty'}"
    try:
        if not math.isfinite(float(v)):
            return "degenerate_answer:non_finite"
    except ValueError:
        pass
    if len(value) > 200:
        return "answer_too_long"
    return None


def abs_files(files: list[str], data_root: str | Path | None) -> list[str]:
    root = Path(data_root) if data_root else Path.cwd()
    return [str((root / f) if not Path(f).is_absolute() else Path(f)) for f in files]


def isolated_program(spec: TaskSpec, preloaded: bool = False, code: str | None = None) -> str:
    """The whole program (or ``code``, a variant of it that starts with the same load lines) as one
    cell whose variables stay local to a function, so several programs can run in one session
    without seeing each other's results. With ``preloaded`` the program's opening load lines are
    replaced by a copy of the table the session already loaded with those very lines (the expert
    replay still runs the full program fresh)."""
    code = code if code is not None else "\n".join(c.code for c in spec.cells)
    if preloaded:
        code = f"import pandas as pd\ndf = _loaded_tables[{spec.load_code!r}].copy()\n" + code[len(spec.load_code):]
    body = textwrap.indent(code, "    ")
    return f"def _task_program():\n{body}\n\n_task_program()\ndel _task_program"


def load_cell(spec: TaskSpec) -> str:
    """Run a program's load lines once and keep its table for the programs that share them."""
    body = textwrap.indent(f"{spec.load_code}\nreturn df", "    ")
    return (f"def _load():\n{body}\n\nif '_loaded_tables' not in globals():\n    _loaded_tables = {{}}\n"
            f"_loaded_tables[{spec.load_code!r}] = _load()\ndel _load")


def _shares_load(spec: TaskSpec) -> bool:
    return bool(spec.load_code) and bool(spec.cells) and spec.cells[0].code.startswith(spec.load_code) and \
        all(v.startswith(spec.load_code) for v in [spec.verify_code or spec.load_code, *(a["code"] for a in spec.ablations)])


_ILL_POSED = re.compile(r"ill_posed:(\w+)")


def _judge_run(res: ExecutionLike) -> tuple[str | None, str | None]:
    if not res.ok:
        first = (res.error or "").strip().splitlines()
        m = _ILL_POSED.search(res.error or "")
        if m:
            return None, f"ill_posed:{m.group(1)}"
        return None, "program_timed_out" if res.timed_out else f"program_error:{first[-1][:120] if first else 'unknown'}"
    gold = final_value(res.output)
    bad = answer_problem(gold)
    return (None, bad) if bad else (gold, None)


async def ground_truths(specs: list[TaskSpec], executor: Executor, data_root: str | Path | None = None) -> list[tuple[str | None, str | None]]:
    """Run each program once (all in one session: the programs must share their data files);
    return (gold, None) or (None, reason) per program."""
    files = sorted({f for s in specs for f in abs_files(s.files, data_root)})
    out = []
    loaded: set[str] = set()
    async with executor.session(files) as sess:
        for spec in specs:
            shared = _shares_load(spec) and len(specs) > 1
            if shared and spec.load_code not in loaded:
                res = await sess.run(load_cell(spec))
                if res.ok:
                    loaded.add(spec.load_code)
            preloaded = shared and spec.load_code in loaded
            gold, why = _judge_run(await sess.run(isolated_program(spec, preloaded, spec.verify_code or None)))
            for abl in spec.ablations if gold is not None else []:
                res = await sess.run(isolated_program(spec, preloaded, abl["code"]))
                if res.ok and final_value(res.output) == gold:  # an ablation that fails or differs is fine
                    gold, why = None, f"step_without_effect:{abl['op']}"
                    break
            out.append((gold, why))
    return out


async def ground_truth(spec: TaskSpec, executor: Executor, data_root: str | Path | None = None) -> tuple[str | None, str | None]:
    """Run the whole program once; return (gold, None) or (None, reason)."""
    return (await ground_truths([spec], executor, data_root))[0]


def assistant_code_turn(think: str, code: str) -> Message:
    return Message(role="assistant", content=f"<think>{think}</think>\n<code>\n```python\n{code}\n```\n</code>")


def assistant_answer_turn(answer: str, *, think: bool = True) -> Message:
    """The expert's last turn. The value is written once, inside ``<answer>``, exactly as printed:
    restating it in the think (" 39.16.") would tokenize its first digits differently from the
    printed line ("39.16"), and a small model then has to learn a mapping instead of a copy.
    ``think=False`` drops the fixed think: for a tiny model it is ten tokens of boilerplate
    between the printed value and its copy."""
    prefix = "<think>The last output answers the question.</think>\n" if think else ""
    return Message(role="assistant", content=f"{prefix}<answer>{answer}</answer>")


async def expert_trajectory(spec: TaskSpec, gold: str, executor: Executor, data_root: str | Path | None = None,
                            max_obs_chars: int = 2048, system_template: str | None = None,
                            answer_think: bool = True) -> tuple[Trajectory | None, str | None]:
    """Replay the program cell by cell; return (trajectory, None) or (None, reason).

    The system prompt is the files prompt (programs read databases with python too), from
    ``system_template`` when given; ``answer_think``: see :func:`assistant_answer_turn`."""
    system = system_prompt(spec.files, template=system_template, kind="files")
    messages = [Message(role="system", content=system), Message(role="user", content=spec.question)]
    last_output = ""
    async with executor.session(abs_files(spec.files, data_root)) as s:
        for i, cell in enumerate(spec.cells):
            res = await s.run(cell.code)
            messages.append(assistant_code_turn(cell.think, cell.code))
            text, _cut = observation_text(res, max_obs_chars)
            messages.append(observation_message(text))
            if not res.ok:
                return None, f"cell_{i}_failed"
            last_output = res.output
    answer = final_value(last_output)
    if answer != gold:
        return None, "replay_disagrees_with_ground_truth"
    messages.append(assistant_answer_turn(answer, think=answer_think))
    traj = Trajectory(
        id=content_key("expert", spec.key, [m.content for m in messages]),
        messages=messages, task_id=spec.key, files=list(spec.files), ground_truth=gold, category=spec.category,
        difficulty=spec.depth,
        meta={"source": "programmatic_expert", "question": spec.question, "chain": spec.chain,
              "difficulty_label": spec.difficulty, "file_format": spec.file_format, "table": spec.table_label},
    )
    return traj, None
