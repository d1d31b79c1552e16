"""pass@1 / pass@k arithmetic and the Markdown summary."""

from __future__ import annotations

import pytest

from datamind_ext.evaluation.benchmark import get_benchmark
from datamind_ext.evaluation.items import ItemResult, Score
from datamind_ext.evaluation.report import pass_at, summarize, to_markdown


def result(item: str, run: int, correct: bool | None, level: str = "easy") -> ItemResult:
    s = Score(correct=correct, value=float(bool(correct)), scorer="x | y")
    return ItemResult(benchmark="dabench", item_id=item, run=run, categories={"level": level}, answer="a", gold="g",
                      scores={"official": s, "paper": s})


def test_pass_at_1_is_mean_over_runs_and_pass_at_k_any_run():
    # 3 items x 3 runs: run accuracies 2/3, 1/3, 0 -> pass@1 = 1/3; items a and b right at least once
    rows = [result("a", 0, True), result("a", 1, True), result("a", 2, False),
            result("b", 0, True), result("b", 1, False), result("b", 2, False),
            result("c", 0, False), result("c", 1, False), result("c", 2, False)]
    m = pass_at(rows, "official")
    assert m["pass@1"] == pytest.approx(1 / 3) and m["pass@k"] == pytest.approx(2 / 3)
    assert m["per_run"] == {0: pytest.approx(2 / 3), 1: pytest.approx(1 / 3), 2: 0.0}
    assert m["scored"] == 9 and m["unscored"] == 0


def test_unscored_and_missing_count_wrong_in_the_headline_with_coverage_beside_it():
    rows = [result("a", 0, True), result("b", 0, None), result("c", 0, False)]
    m = pass_at(rows, "official", item_ids=["a", "b", "c", "d"], k=1)  # d has no result at all
    assert m["pass@1"] == 0.25 and m["pass@k"] == 0.25 and m["coverage"] == 0.5
    assert m["pass@1_scored"] == 0.5 and m["unscored"] == 1 and m["items"] == 4 and m["items_scored"] == 2
    one_of_fifteen = pass_at([result("a", 0, True)], "official", item_ids=[str(i) for i in range(14)] + ["a"], k=1)
    assert one_of_fifteen["pass@1"] == pytest.approx(1 / 15) and one_of_fifteen["pass@1_scored"] == 1.0


def test_incomplete_runs_weigh_items_equally_among_scored_and_count_wrong_in_the_headline():
    rows = [result("a", 0, True), result("a", 1, True), result("b", 0, False)]  # b's second run is missing
    m = pass_at(rows, "official", k=2)
    assert m["pass@1_scored"] == 0.5 and m["pass@1"] == 0.5 and m["coverage"] == 0.75


def test_markdown_escapes_pipes_and_lists_categories():
    bench = get_benchmark("dabench")
    rows = [result("a", 0, True, "easy"), result("b", 0, False, "hard")]
    md = to_markdown(summarize(bench, rows, k=1, item_categories={"a": {"level": "easy"}, "b": {"level": "hard"}},
                               notes=["a note"], run_info={}))
    assert "x \\| y" in md and "- a note" in md
    assert "| easy | 1 | 100.00 | 100.00 |\n" in md and "| hard | 1 | 0.00 | 0.00 |\n" in md
    md2 = to_markdown(summarize(bench, [result("a", 0, True), result("a", 1, False)], k=2,
                                item_categories={"a": {"level": "easy"}}, notes=[], run_info={}))
    assert "| level | items | paper pass@1 | paper pass@2 | official pass@1 | official pass@2 |" in md2
