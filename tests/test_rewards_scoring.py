"""Format scorer, length penalty, composite reward, scorer registry, SQL scoring in session dirs, void flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamind_ext.config import parse_config
from datamind_ext.errors import UserError
from datamind_ext.rewards import (
    RESULT_KEYS,
    LengthPenaltyConfig,
    RewardConfig,
    ScoringConfig,
    length_factor,
    SCORERS,
    Decision,
    MatchResult,
    Sample,
    resolve_kind,
    score_format,
    score_sample,
    score_sample_async,
)
from datamind_ext.records import RLExtraInfo

CODE = "<think>plan</think>\n<code>\n```python\nprint(df.head(3))\n```\n</code>\n<interpreter>rows</interpreter>\n"


def resp(answer: str, *, code: bool = True) -> str:
    return (CODE if code else "<think>plan</think>\n") + f"<answer>{answer}</answer>"


# -- format -------------------------------------------------------------------------------------
def test_format_valid_and_violations_by_name() -> None:
    assert score_format(resp("1")).ok
    assert score_format(resp("1", code=False)).violations == ("no_code",)
    assert score_format(resp("1", code=False), require_code=False).ok
    two = score_format(resp("1") + "<answer>2</answer>")
    assert not two.ok and "multiple_answers" in two.violations
    fake = score_format("<think>x</think><interpreter>made up</interpreter>" + resp("1"))
    assert "model_wrote_interpreter" in fake.violations
    assert "unclosed_tag:answer" in score_format(CODE + "<answer>1").violations
    assert "no_answer" in score_format(CODE).violations
    assert score_format(resp("1")).reason == "format_ok"


# -- length penalty and composite ---------------------------------------------------------------
def test_length_factor_paper_defaults() -> None:
    cfg = LengthPenaltyConfig()
    assert length_factor(0, cfg) == 1.0
    assert length_factor(256, cfg) == 1.0
    assert length_factor(640, cfg) == pytest.approx(0.75)
    assert length_factor(1024, cfg) == 0.5
    assert length_factor(5000, cfg) == 0.5
    custom = LengthPenaltyConfig(min_len=10, max_len=20, floor=0.0)
    assert length_factor(15, custom) == pytest.approx(0.5)


def test_composite_paper_rule_and_fixed_keys() -> None:
    ok = score_sample("file_qa", resp("29.14"), "29.14", {})
    wrong = score_sample("file_qa", resp("31"), "29.14", {})
    bad = score_sample("file_qa", resp("31", code=False), "29.14", {})
    bad_but_right = score_sample("file_qa", resp("29.14", code=False), "29.14", {})
    assert [r.values["score"] for r in (ok, wrong, bad, bad_but_right)] == [1.0, 0.0, -0.1, 1.0]
    for r in (ok, wrong, bad, bad_but_right):
        assert list(r.values) == list(RESULT_KEYS)
        assert all(isinstance(v, float) for v in r.values.values())
    assert ok.values["acc"] == 1.0 and wrong.values["acc"] == 0.0 and bad.values["format_ok"] == 0.0


def test_length_penalty_chars_and_tokens(tiny_tokenizer) -> None:
    long_answer = "29.14 " + "data " * 126 + "xxxx"  # 640 characters, far fewer tokens (a word is one token)
    by_chars = score_sample("file_qa", resp(long_answer), "29.14", {})
    assert by_chars.values["answer_len"] == 640 and by_chars.values["score"] == pytest.approx(0.75)
    by_tokens = score_sample("file_qa", resp(long_answer), "29.14", {}, tokenizer=tiny_tokenizer)
    n_tokens = len(tiny_tokenizer.encode(long_answer, add_special_tokens=False))
    assert by_tokens.values["answer_len"] == n_tokens < 400
    chars_cfg = ScoringConfig(reward=RewardConfig(length=LengthPenaltyConfig(unit="chars")))
    forced = score_sample("file_qa", resp(long_answer), "29.14", {}, config=chars_cfg, tokenizer=tiny_tokenizer)
    assert forced.values["answer_len"] == 640


def test_every_number_is_configurable() -> None:
    cfg = parse_config(
        ScoringConfig,
        {"reward": {"correct_reward": 2.0, "wrong_reward": -0.5, "format_penalty": -1.0, "rel_tol": 0.1}},
        "test",
    )
    assert score_sample("file_qa", resp("31"), "29.14", {}, config=cfg).values["score"] == 2.0  # within 10 %
    assert score_sample("file_qa", resp("40"), "29.14", {}, config=cfg).values["score"] == -0.5
    assert score_sample("file_qa", resp("40", code=False), "29.14", {}, config=cfg).values["score"] == -1.0
    with pytest.raises(UserError, match="unknown key 'reward.wrong'"):
        parse_config(ScoringConfig, {"reward": {"wrong": 1}}, "test")


def test_per_sample_options_from_extra_info() -> None:
    assert score_sample("file_qa", resp("31"), "29.14", {"rel_tol": 0.1}).values["acc"] == 1.0
    assert score_sample("file_qa", resp("[2, 1]"), "[1, 2]", {"ordered": True}).values["acc"] == 0.0
    assert score_sample("file_qa", resp("1", code=False), "1", {"require_code": False}).values["format_ok"] == 1.0


# -- routing: the scorer registry, keyed by the row's task_kind -------------------------------------
def test_kind_is_the_rows_task_kind_then_an_exact_data_source_then_the_default() -> None:
    cfg = RewardConfig(kind_by_data_source={"tablebench": "judged"})
    assert resolve_kind("anything", RLExtraInfo(task_kind="sql"), cfg) == "sql"
    assert resolve_kind("tablebench", RLExtraInfo(), cfg) == "judged"
    # no substring routing: names that merely contain "sql" or "open" are the default kind
    for ds in ("darl/sql", "BIRD_DEV", "open_qa", "TableBench"):
        assert resolve_kind(ds, RLExtraInfo(), cfg) == "file_qa"


def test_users_add_a_scorer_by_name(tmp_path: Path, monkeypatch) -> None:
    def always_right(sample: Sample, ctx) -> Decision:
        return Decision(MatchResult(True, f"custom:{sample.answer}"))

    SCORERS.register("test_always_right")(always_right)
    r = score_sample("x", resp("anything"), "gold", {"task_kind": "test_always_right"})
    assert r.values["acc"] == 1.0 and r.reason.endswith("custom:anything") and r.kind == "test_always_right"
    # by import path in the reward config, as a verl reward function is named
    (tmp_path / "my_scorers.py").write_text(
        "from datamind_ext.rewards import Decision, MatchResult\n"
        "async def length_two(sample, ctx):\n"
        "    return Decision(MatchResult(len(sample.answer) == 2, 'length_two'))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = parse_config(ScoringConfig, {"scorers": {"test_length_two": "my_scorers.length_two"},
                                       "require_code_kinds": []}, "reward_kwargs")
    assert score_sample("x", resp("ab", code=False), "", {"task_kind": "test_length_two"}, config=cfg).values["score"] == 1.0
    with pytest.raises(UserError, match="no_such_kind"):
        score_sample("x", resp("1"), "1", {"task_kind": "no_such_kind"})
    with pytest.raises(UserError, match="no scorer for task kind"):
        parse_config(ScoringConfig, {"reward": {"default_kind": "nope"}}, "reward_kwargs")
    with pytest.raises(UserError, match="cannot import"):
        parse_config(ScoringConfig, {"scorers": {"k": "no_such_module_xyz.fn"}}, "reward_kwargs")


def test_dabench_and_choice_kinds() -> None:
    gold = "@mean[2.6] @kind[normal]"
    dab = {"task_kind": "dabench"}
    ok = score_sample("dabench", resp("@mean[2.61] @kind[Normal]"), gold, dab)
    assert ok.values["acc"] == 1.0 and ok.reason.endswith("dabench:2/2")  # routed once, to the dabench scorer
    assert score_sample("dabench", resp("@mean[2.61]"), gold, dab).values["acc"] == 0.0
    extra = {"task_kind": "choice", "choices": ["increase", "decrease", "no change"]}
    assert score_sample("mcq", resp("B"), "decrease", extra).values["acc"] == 1.0
    assert score_sample("mcq", resp("no change"), "B", extra).values["acc"] == 0.0


async def test_one_async_core_and_its_sync_wrapper_agree() -> None:
    args = ("file_qa", resp("29.14"), "29.14", {})
    core = await score_sample_async(*args)
    wrapped = score_sample(*args)  # called from inside a running loop: runs on a private thread
    assert core.values == wrapped.values and core.reason == wrapped.reason


def test_nested_ground_truth_as_in_datamind_parquet() -> None:
    gt = {"ground_truth": "29.14", "task_id": "t1"}
    assert score_sample("file_qa", resp("29.14"), gt, {}).values["acc"] == 1.0


def test_overlong_answer_is_wrong_without_matching() -> None:
    cfg = ScoringConfig(reward=RewardConfig(max_answer_chars=10))
    r = score_sample("file_qa", resp("29.14 " + "y" * 20), "29.14", {}, config=cfg)
    assert r.values["acc"] == 0.0 and "answer_too_long" in r.reason


# -- SQL tasks: each trajectory reads its own session directory ------------------------------
def _session(root: Path, name: str, csv_text: str) -> Path:
    d = root / name
    d.mkdir()
    (d / "result.csv").write_text(csv_text)
    return d


def test_sql_scoring_reads_each_trajectory_session(tmp_path: Path) -> None:
    gold = tmp_path / "gold.csv"
    gold.write_text("region,total\nn,3.0\ns,5.0\n")
    good = _session(tmp_path, "traj-a", "total,region\n5.0,s\n3.004,n\n")
    bad = _session(tmp_path, "traj-b", "total,region\n9.0,s\n3.0,n\n")
    answer = "The result is saved in the CSV file named 'result.csv'."
    sql_resp = "<code>\n```python\nexecute_sql(sql='select 1', output_path='result.csv')\n```\n</code>\n" \
               "<interpreter>ok</interpreter>\n" + f"<answer>{answer}</answer>"
    sql = {"task_kind": "sql", "gold_csv": str(gold)}
    ra = score_sample("bird", sql_resp, "", {**sql, "session_dir": str(good)})
    rb = score_sample("bird", sql_resp, "", {**sql, "session_dir": str(bad)})
    assert (ra.values["score"], rb.values["score"]) == (1.0, 0.0)
    assert rb.reason.endswith("gold_column_1_unmatched")
    escape = sql_resp.replace("'result.csv'", "'../traj-a/result.csv'")
    re_ = score_sample("bird", escape, "", {**sql, "session_dir": str(bad)})
    assert re_.values["acc"] == 0.0 and "outside_session" in re_.reason
    missing = score_sample("bird", sql_resp, "", sql)
    assert "sql_no_session_dir" in missing.reason
    no_code = score_sample("bird", f"<answer>{answer}</answer>", "", {**sql, "session_dir": str(good)})
    assert no_code.values["format_ok"] == 1.0  # SQL tasks do not require a code block


# -- void flag --------------------------------------------------------------------------------------
def test_void_flag_is_exposed_and_scored_as_the_rollout_says() -> None:
    # dm_void: our agent loop's extra_fields key, merged into extra_info by verl's reward loop
    plain = score_sample("file_qa", CODE, "1", {"dm_void": 1})
    assert plain.values["void"] == 1.0 and plain.values["mask_out"] == 1.0
    assert plain.values["score"] == -0.1  # no answer: paper keeps the reward, masks the tokens
    told = score_sample("file_qa", CODE, "1", {"dm_void": True, "void_score": -1.0})
    assert told.values["void"] == 1.0 and told.values["score"] == -1.0
    cfg = ScoringConfig(reward=RewardConfig(void_score=0.0))
    assert score_sample("file_qa", CODE, "1", {"dm_void": 1}, config=cfg).values["score"] == 0.0
    assert score_sample("file_qa", resp("1"), "1", {"dm_void": 0}).values["void"] == 0.0
    # one spelling: other names are not a void flag
    assert score_sample("file_qa", CODE, "1", {"void": True, "is_valid_trajectory": 0}).values["void"] == 0.0


def test_sql_gold_from_gold_sql_and_db(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "db.sqlite"
    con = sqlite3.connect(db)
    con.execute("create table t(k text, v real)")
    con.executemany("insert into t values (?, ?)", [("a", 1.0), ("b", 2.0)])
    con.commit()
    con.close()
    session = _session(tmp_path, "traj", "key,value\nb,2\na,1\n")
    extra = {"task_kind": "sql", "session_dir": str(session), "gold_sql": "select k, v from t", "db_path": str(db)}
    ok = score_sample("darl/sql", "<answer>saved in 'result.csv'</answer>", "", extra)
    assert ok.values["acc"] == 1.0, ok.reason
    bad = score_sample("darl/sql", "<answer>saved in 'result.csv'</answer>", "", {**extra, "gold_sql": "select nope"})
    assert bad.values["acc"] == 0.0 and "gold_sql_failed" in bad.reason


def test_core_rewards_import_no_framework() -> None:
    import subprocess
    import sys

    code = ("import sys, datamind_ext.rewards, datamind_ext.testing; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('verl', 'llamafactory', 'torch')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
