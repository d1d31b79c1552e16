"""Programmatic generator: composition depth and chain, category coverage, question variety,
determinism; the program's ground truth and the expert trajectory come from real execution."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from datamind_ext.interpreter import SessionProvider
from datamind_ext.protocol import parse_response, validate_structure
from datamind_ext.synthesis.expert import expert_trajectory, ground_truth
from datamind_ext.synthesis.profile import TableProfile, find_data_files, profile_file
from datamind_ext.synthesis.programs import (
    OPS,
    PROGRAMMATIC_CATEGORIES,
    can_finish,
    make_task_specs,
)
from datamind_ext.synthesis.taxonomy import load_knowledge, load_taxonomy

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "files"


@pytest.fixture(scope="module")
def profiles() -> list[TableProfile]:
    return [p for f in find_data_files(SAMPLES) for p in profile_file(f) if isinstance(p, TableProfile)]


@pytest.fixture(scope="module")
def run_in_pool():
    """One interpreter pool for the module (its warm start costs seconds), driven from one loop."""
    loop = asyncio.new_event_loop()
    ex = SessionProvider(close_in_background=True)
    yield lambda make: loop.run_until_complete(make(ex))
    loop.run_until_complete(ex.aclose())
    loop.close()


def test_taxonomy_and_knowledge_cover_18_categories() -> None:
    tax = load_taxonomy()
    assert len(tax) == 18 and all(len(c.examples) >= 4 for c in tax.values())
    assert set(tax) <= set(load_knowledge())
    assert PROGRAMMATIC_CATEGORIES <= set(tax)
    assert len(PROGRAMMATIC_CATEGORIES) >= 12


def test_composition_depth_chain_and_categories(profiles: list[TableProfile]) -> None:
    specs = [s for p in profiles for s in make_task_specs(p, 10, seed=0, min_depth=1, max_depth=5)]
    assert Counter(s.depth for s in specs).keys() == {1, 2, 3, 4, 5}
    for s in specs:
        assert len(s.chain) == s.depth and len(s.cells) == s.depth + 1  # inspect cell + one per step
        assert s.difficulty == {1: "easy", 2: "easy", 3: "medium", 4: "hard", 5: "hard"}[s.depth]
    assert len({s.category for s in specs}) >= 12
    # the same question text never appears for two files
    by_text: dict[str, set[str]] = {}
    for s in specs:
        by_text.setdefault(s.question, set()).add(s.table_key)
    assert all(len(v) == 1 for v in by_text.values())
    assert len(by_text) == len(specs)


def test_chains_can_always_be_finished() -> None:
    for depth in range(1, 6):
        assert can_finish("table", depth)
    assert not can_finish("table", 0) and can_finish("number", 0)
    assert {o.inp for o in OPS} == {"table", "groups", "label"}


def test_seeded_determinism(profiles: list[TableProfile]) -> None:
    p = profiles[0]
    a = [s.model_dump() for s in make_task_specs(p, 8, seed=3)]
    b = [s.model_dump() for s in make_task_specs(p, 8, seed=3)]
    c = [s.model_dump() for s in make_task_specs(p, 8, seed=4)]
    assert a == b and a != c


def test_ground_truth_and_expert_trajectory_from_real_execution(profiles: list[TableProfile], run_in_pool) -> None:
    by_name = {p.label: p for p in profiles}
    specs = [s for name in ("retail_sales.csv", "library.sqlite (books)", "school_grades.xlsx (term1)")
             for s in make_task_specs(by_name[name], 4, seed=1, min_depth=2, max_depth=3)]

    async def run(ex) -> tuple[list, list]:
        out, rejected = [], []
        for s in specs:
            gold, why = await ground_truth(s, ex)
            if gold is None:  # an ill-posed task (tie, tiny selection, ...) or a step without effect
                rejected.append(why)
                continue
            traj, why = await expert_trajectory(s, gold, ex)
            out.append((s, gold, traj, why))
        return out, rejected

    kept, rejected = run_in_pool(run)
    assert len(kept) >= 4 and {s.table_label for s, *_ in kept} >= {"retail_sales.csv", "library.sqlite (books)"}
    assert all(w.startswith(("ill_posed:", "step_without_effect:")) for w in rejected), rejected
    for spec, gold, traj, why in kept:
        assert traj is not None, why
        assert validate_structure(traj) == []
        assert traj.final_answer == gold == traj.ground_truth
        obs = [m.content for m in traj.messages if m.role == "user"][1:]
        assert len(obs) == len(spec.cells) and all("The code ran successfully" in o for o in obs)
        # the inspect cell's observation is the real table shape
        assert obs[0].count("(") >= 1
        for m in traj.messages:
            if m.role == "assistant":
                assert parse_response(m.content, model_turn=True).format_ok(soft=("text_outside_tags", "no_answer"))


def test_failing_program_is_rejected_with_reason(profiles: list[TableProfile], run_in_pool) -> None:
    spec = make_task_specs(profiles[0], 1, seed=0)[0]
    plain = {"verify_code": "", "ablations": []}  # the cells themselves are the program
    broken = spec.model_copy(update={"cells": [*spec.cells[:-1], spec.cells[-1].model_copy(update={"code": "print(undefined_name)"})], **plain})
    empty = spec.model_copy(update={"cells": [*spec.cells, spec.cells[-1].model_copy(update={"code": "print(float('nan'))"})], **plain})

    async def run(ex) -> tuple:
        return await ground_truth(broken, ex), await ground_truth(empty, ex)

    (g1, why1), (g2, why2) = run_in_pool(run)
    assert g1 is None and why1.startswith("program_error:") and "NameError" in why1
    assert g2 is None and why2 == "degenerate_answer:nan"


def test_direct_style_and_ops_filter(profiles: list[TableProfile]) -> None:
    allowed = ["mean", "count_above", "group_mean", "top_label", "filter_category"]
    specs = [s for p in profiles for s in make_task_specs(p, 12, seed=0, min_depth=1, max_depth=2, ops=allowed,
                                                          style="direct")]
    assert len(specs) > 50
    assert {link["op"] for s in specs for link in s.chain} <= set(allowed)
    assert {s.depth for s in specs} == {1, 2}
    for s in specs:
        (cell,) = s.cells  # one cell: load, every step, one print of the answer
        assert cell.code.startswith(s.load_code) and s.load_code.startswith("import pandas as pd\n")
        assert sum(line.startswith("print(") for line in cell.code.splitlines()) == 1
        assert cell.think.startswith(f"I load {s.table_label}.")


def test_unknown_op_names_are_rejected_by_name() -> None:
    from datamind_ext.errors import UserError
    from datamind_ext.synthesis.config import SynthConfig
    from datamind_ext.config import parse_config

    with pytest.raises(UserError, match="unknown operation.*nosuch_op"):
        parse_config(SynthConfig, {"ops": ["mean", "nosuch_op"]}, "synth.yaml")
    assert parse_config(SynthConfig, {"ops": ["mean"]}, "synth.yaml").ops == ["mean"]


def test_direct_programs_verified_in_one_session_match_single_runs(profiles: list[TableProfile], run_in_pool,
                                                                    tmp_path: Path) -> None:
    """The batch path shares the table load between programs; it must print what a lone run prints,
    and the expert trajectory uses the given system prompt template."""
    from datamind_ext.synthesis.expert import ground_truths

    prof = next(p for p in profiles if p.label == "retail_sales.csv")
    specs = make_task_specs(prof, 6, seed=2, min_depth=1, max_depth=2, style="direct",
                            ops=["mean", "nunique", "group_mean", "top_label", "filter_category", "row_count"])
    template = tmp_path / "prompt.md"
    template.write_text("Short prompt {max_turns} turns. {not_a_placeholder}\nFiles:\n{file_list}\n")

    async def run(ex) -> tuple:
        batch = await ground_truths(specs, ex)
        single = [await ground_truth(s, ex) for s in specs]
        first = next(i for i, (gold, _) in enumerate(batch) if gold is not None)
        traj, why = await expert_trajectory(specs[first], batch[first][0], ex, system_template=str(template))
        bare, _ = await expert_trajectory(specs[first], batch[first][0], ex, answer_think=False)
        return batch, single, traj, why, first, bare

    batch, single, traj, why, first, bare = run_in_pool(run)
    assert batch == single and sum(gold is not None for gold, _ in batch) >= 4
    assert traj is not None, why
    assert traj.messages[0].content == "Short prompt 10 turns. {not_a_placeholder}\nFiles:\n- retail_sales.csv"
    assert [m.role for m in traj.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert traj.final_answer == batch[first][0]
    assert traj.messages[-1].content.startswith("<think>")
    assert bare.messages[-1].content == f"<answer>{batch[first][0]}</answer>" and bare.final_answer == traj.final_answer
