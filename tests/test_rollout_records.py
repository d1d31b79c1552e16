"""The typed records between stages: the RL row the export writes reads back on verl's side."""

from __future__ import annotations

from pathlib import Path

from datamind_ext.records import ROLLOUT_EXTRA_KEYS, TASK_KINDS, VOID_FIELD, RLExtraInfo, RLRow, RolloutExtraFields
from datamind_ext.rewards import SCORERS
from datamind_ext.rewards.composite import RewardConfig


def test_exported_rl_row_round_trips_through_parquet(tmp_path: Path) -> None:
    import pandas as pd

    from datamind_ext.protocol import Message, Trajectory
    from datamind_ext.synthesis.export import rl_rows

    data = tmp_path / "sales.csv"
    data.write_text("a\n1\n")
    msgs = [Message(role="system", content="sys"), Message(role="user", content="mean of a?"),
            Message(role="assistant", content="<answer>1</answer>")]
    traj = Trajectory(id="t1", messages=msgs, task_id="task1", files=[str(data)], ground_truth="1",
                      category="stats", difficulty=2)
    rows = rl_rows([traj])
    RLRow.model_validate(rows[0])  # what the writer writes is the typed row
    pd.DataFrame(rows).to_parquet(tmp_path / "rl.parquet", index=False)
    back = pd.read_parquet(tmp_path / "rl.parquet").iloc[0]
    info = RLExtraInfo.read(back["extra_info"])  # numpy arrays and all, as verl hands it over
    assert info.task_kind == "file_qa" and info.task_kind in SCORERS
    assert info.files == [str(data.resolve())] and info.difficulty == 2 and info.task_id == "task1"
    assert info.expert() == [m.model_dump() for m in msgs]


def test_reading_is_total_and_ignores_what_verl_merges_in() -> None:
    merged = {"task_kind": "sql", "difficulty": "hard", "dm_void": 1, "num_turns": 3, "rollout_reward_scores": {}}
    info = RLExtraInfo.read(merged)
    assert info.task_kind == "sql" and info.difficulty == 0  # a malformed value drops that key only
    assert RLExtraInfo.read(None) == RLExtraInfo() and RLExtraInfo.read("") == RLExtraInfo()


def test_one_void_spelling_and_one_task_kind_list() -> None:
    assert VOID_FIELD in ROLLOUT_EXTRA_KEYS and RolloutExtraFields.is_void({VOID_FIELD: 1})
    assert not RolloutExtraFields.is_void({"void": 1}) and not RolloutExtraFields.is_void({VOID_FIELD: float("nan")})
    assert set(TASK_KINDS) <= set(SCORERS)  # every built-in kind has its scorer
    assert RewardConfig().default_kind in TASK_KINDS
    fields = RolloutExtraFields(dm_void=1).to_dict()
    assert [k for k in fields if k.startswith("dm_")] == list(ROLLOUT_EXTRA_KEYS)
