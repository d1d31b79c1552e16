"""Run a programmatic task for real: its ground truth, and its expert trajectory.

The ground truth of a programmatic task is the last line its program prints when the whole
program runs in the interpreter, so it is exact by construction. The expert trajectory replays the
same program one cell per assistant turn in a fresh interpreter session and records the real
observations; it is kept only if its final printed value equals the ground truth (a second,
independent execution). Nothing here writes an observation by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

from datamind_ext.protocol import Message, Trajectory, observation_message, observation_text
from datamind_ext.synthesis.execute import Executor
from datamind_ext.synthesis.programs import TaskSpec
from datamind_ext.synthesis.prompts import system_prompt
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


def user_question(spec_question: str) -> str:
    return spec_question


def abs_files(files: list[str], data_root: str | Path | None) -> list[str]:
    root = Path(data_root) if data_root else Path.cwd()
    return [str((root / f) if not Path(f).is_absolute() else Path(f)) for f in files]


async def ground_truth(spec: TaskSpec, executor: Executor, data_root: str | Path | None = None) -> tuple[str | None, str | None]:
    """Run the whole program once; return (gold, None) or (None, reason)."""
    program = "\n".join(c.code for c in spec.cells)
    async with executor.session(abs_files(spec.files, data_root)) as s:
        res = await s.run(program)
    if not res.ok:
        first = (res.error or "").strip().splitlines()
        return None, "program_timed_out" if res.timed_out else f"program_error:{first[-1][:120] if first else 'unknown'}"
    gold = final_value(res.output)
    bad = answer_problem(gold)
    return (None, bad) if bad else (gold, None)


def assistant_code_turn(think: str, code: str) -> Message:
    return Message(role="assistant", content=f"<think>{think}</think>\n<code>\n```python\n{code}\n```\n</code>")


def assistant_answer_turn(answer: str) -> Message:
    return Message(role="assistant", content=f"<think>The last output gives the result: {answer}.</think>\n<answer>{answer}</answer>")


async def expert_trajectory(spec: TaskSpec, gold: str, executor: Executor, data_root: str | Path | None = None,
                            max_obs_chars: int = 2048) -> tuple[Trajectory | None, str | None]:
    """Replay the program cell by cell; return (trajectory, None) or (None, reason)."""
    messages = [Message(role="system", content=system_prompt(spec.files)), Message(role="user", content=spec.question)]
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
    messages.append(assistant_answer_turn(answer))
    traj = Trajectory(
        id=content_key("expert", spec.key, [m.content for m in messages]),
        messages=messages, task_id=spec.key, files=list(spec.files), ground_truth=gold, category=spec.category,
        difficulty=spec.depth,
        meta={"source": "programmatic_expert", "question": spec.question, "chain": spec.chain,
              "difficulty_label": spec.difficulty, "file_format": spec.file_format, "table": spec.table_label},
    )
    return traj, None
