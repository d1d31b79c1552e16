"""The typed synthesis stage records: each round-trips through its store (and, as a work item,
through pickle, as Ray ships it), stores written by the earlier dict writers still read, and a
malformed record is refused naming the file, the line and the field."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pandas as pd
import pytest

from datamind_ext.errors import UserError
from datamind_ext.interpreter.config import InterpreterConfig
from datamind_ext.protocol import Message, Trajectory
from datamind_ext.synthesis.config import SynthConfig
from datamind_ext.synthesis.profile import ProfileFailure, TableProfile, profile_file
from datamind_ext.synthesis.programs import TaskSpec, make_task_specs
from datamind_ext.synthesis.records import (
    ConsensusRecord,
    Drop,
    ExpertItem,
    LLMTaskItem,
    LLMTaskResult,
    ProfileItem,
    ProfileRecord,
    TaskRecord,
    TrajectoryRecord,
    UnmadeTask,
    VerifyBatch,
)
from datamind_ext.synthesis.store import JsonlStore, read_records


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[TableProfile, list[TaskSpec]]:
    path = tmp_path_factory.mktemp("data") / "sales.csv"
    pd.DataFrame({"region": ["N", "S", "E", "W"] * 5, "units": range(20), "price": [1.5 + i for i in range(20)]}).to_csv(path, index=False)
    (profile,) = profile_file(path)
    assert isinstance(profile, TableProfile)
    specs = make_task_specs(profile, 4, seed=0, min_depth=1, max_depth=2)
    assert specs
    return profile, specs


def _traj(task_key: str) -> Trajectory:
    return Trajectory(id=f"traj-{task_key}", task_id=task_key, category="aggregation", messages=[
        Message(role="system", content="sys"), Message(role="user", content="How many?"),
        Message(role="assistant", content="<think>Known.</think>\n<answer>4</answer>")])


def _stage_records(profile: TableProfile, specs: list[TaskSpec]) -> list[ProfileRecord | TaskRecord | TrajectoryRecord | ConsensusRecord]:
    spec = specs[0]
    return [
        ProfileRecord(key="p1", file="sales.csv", profiles=[profile],
                      failures=[ProfileFailure(path="bad.csv", reason="not a text table")]),
        TaskRecord(key=spec.key, status="ok", gold="4", spec=spec),
        TaskRecord(key=specs[-1].key, status="rejected", reason="ill_posed:tie", spec=specs[-1]),
        TaskRecord(key="llm1", status="rejected", reason="unparseable_task", spec=UnmadeTask(category="ranking")),
        TrajectoryRecord(key="e1", task_key=spec.key, sampler="expert", status="ok", trajectory=_traj(spec.key)),
        TrajectoryRecord(key="l1", task_key="llm1", sampler="llm", round=1, answer="4", status="ok", trajectory=_traj("llm1")),
        ConsensusRecord(key="c1", task_key="llm1", category="ranking", status="ok", selected="traj-llm1", gold="4",
                        rounds=1, answers=["4", None]),
        ConsensusRecord(key="c2", task_key="llm2", status="rejected", reason="inconsistent", rounds=2),
    ]


def test_every_stage_record_round_trips_through_its_store(tmp_path: Path, table: tuple[TableProfile, list[TaskSpec]]) -> None:
    for rec in _stage_records(*table):
        path = tmp_path / f"{type(rec).__name__}-{rec.key}.jsonl"
        with JsonlStore(path, type(rec)) as store:
            assert store.append(rec) and not store.append(rec)
        assert list(read_records(path, type(rec))) == [rec]
        assert JsonlStore(path, type(rec)).keys == {rec.key}  # a reopened store resumes past it
    drop = Drop(id="t1", task_id="t1", category=None, reason="audit:nan_answer", stage="audit")
    assert Drop.model_validate(json.loads(json.dumps(drop.model_dump()))) == drop


def test_work_items_survive_pickling_as_ray_ships_them(table: tuple[TableProfile, list[TaskSpec]]) -> None:
    _, specs = table
    task = TaskRecord(key=specs[0].key, status="ok", spec=specs[0])
    sample = TrajectoryRecord(key="l1", task_key=task.key, sampler="llm", round=0, status="ok", trajectory=_traj(task.key))
    interp = InterpreterConfig()
    items = [
        ProfileItem(key="p", path="/abs/sales.csv", shown="sales.csv", max_rows=100),
        VerifyBatch(specs=specs, interpreter=interp, data_root="/data"),
        ExpertItem(key="e", spec=specs[0], gold="4", interpreter=interp, data_root="/data", max_obs_chars=512, system_prompt=None),
        LLMTaskItem(task=task, cfg=SynthConfig(generator="llm"), stored={sample.key: sample}),
        LLMTaskResult(consensus=ConsensusRecord(key="c", task_key=task.key, status="rejected", reason="inconsistent"),
                      samples=[sample], ledger={"requests": 3, "prompt_tokens": 120}),
    ]
    for item in items:
        assert pickle.loads(pickle.dumps(item)) == item


def test_lines_written_by_the_earlier_dict_writers_still_read(tmp_path: Path, table: tuple[TableProfile, list[TaskSpec]]) -> None:
    """Stores from before the typed records resume: the same keys, some absent where now defaulted."""
    spec = table[1][0].model_dump()
    traj = _traj(spec["key"]).model_dump()
    old = {
        TaskRecord: [{"key": "a", "status": "ok", "reason": None, "gold": "4", "spec": spec},
                     {"key": "b", "status": "rejected", "reason": "unparseable_task", "spec": {"category": "ranking"}}],
        TrajectoryRecord: [{"key": "e", "task_key": "a", "sampler": "expert", "status": "ok", "reason": None, "trajectory": traj},
                           {"key": "l", "task_key": "a", "sampler": "llm", "round": 0, "answer": "4", "status": "rejected",
                            "reason": "no_answer", "trajectory": traj}],
        ConsensusRecord: [{"key": "c", "task_key": "a", "category": "x", "status": "ok", "reason": None, "selected": traj["id"],
                           "gold": "4", "rounds": 1, "answers": ["4", "4", "4"]},
                          {"key": "d", "task_key": "b", "category": "x", "status": "rejected", "reason": "inconsistent",
                           "selected": None, "gold": None, "rounds": 2}],
    }
    for model, lines in old.items():
        path = tmp_path / f"{model.__name__}.jsonl"
        path.write_text("".join(json.dumps(x, ensure_ascii=False, default=str) + "\n" for x in lines))
        recs = list(read_records(path, model))
        assert [r.key for r in recs] == [x["key"] for x in lines]
        # rewritten by the typed writer, every old key keeps its value
        for rec, line in zip(recs, lines):
            assert {k: v for k, v in rec.model_dump().items() if k in line} == line
    assert list(read_records(tmp_path / "TaskRecord.jsonl", TaskRecord))[1].category == "ranking"


@pytest.mark.parametrize(("line", "named"), [
    ({"key": "a", "status": "ok", "gold": "4", "colour": "red"}, "unknown key 'colour'"),
    ({"key": "a", "status": "done"}, "status: Input should be 'ok', 'rejected' or 'error'"),
    ({"key": "a", "status": "ok", "gold": "4"}, "an ok task needs its full spec"),
])
def test_a_malformed_task_record_is_refused_by_name(tmp_path: Path, line: dict, named: str) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"key": "z", "status": "rejected", "reason": "r"}) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(UserError, match=rf"tasks.jsonl line 2 \(TaskRecord\): .*{named}"):
        list(read_records(path, TaskRecord))
    with pytest.raises(UserError, match=named):  # a stage does not resume past it either
        JsonlStore(path, TaskRecord)


def test_a_wrong_sampler_is_refused_and_the_cli_says_so_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "trajectories.jsonl"
    path.write_text(json.dumps({"key": "x", "task_key": "t", "sampler": "human", "status": "rejected"}) + "\n")
    with pytest.raises(UserError, match=r"line 1 \(TrajectoryRecord\): sampler: Input should be 'expert' or 'llm'"):
        list(read_records(path, TrajectoryRecord))

    from datamind_ext.cli.main import main

    (tmp_path / "tasks.jsonl").write_text(json.dumps({"key": "a", "status": "ok", "gold": "4", "spec": None, "extra": 1}) + "\n")
    assert main(["synth", "audit", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown key 'extra'" in err and "Traceback" not in err and len(err.splitlines()) == 1
