"""Small, deterministic, well-formed trajectories for smoke runs and tests of the SFT stage.

They follow the protocol exactly (system, question, ``<think>``/``<code>`` turns each answered by
an ``<interpreter>`` observation, a final ``<answer>``) so that the whole path — checks, export,
LLaMA-Factory's data pipeline, training — can run offline without the synthesis stage.
"""

from __future__ import annotations

import random

from datamind_ext.protocol import Message, Trajectory, observation_message

SYSTEM_PROMPT = "You are an expert-level data analyst. Solve the task with code, then answer."
_COLUMNS = ("price", "qty", "cost", "revenue", "profit", "score")
_FILES = ("sales", "shop", "orders", "weather")


def sample_trajectory(index: int, *, n_code_turns: int = 2, seed: int = 0) -> Trajectory:
    """Trajectory ``index`` of a fixed family: reproducible for a given (index, seed)."""
    rng = random.Random(seed * 1_000_003 + index)
    f, c = rng.choice(_FILES), rng.choice(_COLUMNS)
    values = [rng.randint(1, 99) for _ in range(4)]
    mean = round(sum(values) / len(values), 2)
    msgs = [Message(role="system", content=SYSTEM_PROMPT),
            Message(role="user", content=f"What is the mean {c} in {f}.csv?")]
    for turn in range(n_code_turns):
        if turn == 0:
            code, out = f"import pandas as pd\ndf = pd.read_csv('{f}.csv')\nprint(df.columns.tolist())", f"['{c}']"
        else:
            code, out = f"print(round(df['{c}'].mean(), 2))", str(mean)
        msgs.append(Message(role="assistant", content=f"<think>step {turn + 1}</think>\n<code>\n```python\n{code}\n```\n</code>"))
        msgs.append(observation_message(f"The code ran successfully:\n{out}"))
    msgs.append(Message(role="assistant", content=f"<think>done</think>\n<answer>{mean}</answer>"))
    return Trajectory(id=f"sample-{seed}-{index}", messages=msgs, ground_truth=str(mean), task_id=f"task-{index}")


def sample_trajectories(n: int, *, seed: int = 0, n_code_turns: int = 2) -> list[Trajectory]:
    """``n`` sample trajectories (ids ``sample-<seed>-<i>``)."""
    return [sample_trajectory(i, n_code_turns=n_code_turns, seed=seed) for i in range(n)]
