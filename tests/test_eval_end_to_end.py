"""Evaluation end to end: ``datamind-ext eval`` runs the agent (real interpreter sessions) against a
local OpenAI-compatible test server replaying scripted turns, scores, writes results, summary
and plot, and resumes; the responses mode and the LLM judge go through the same CLI."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from datamind_ext.cli.main import main
from datamind_ext.testing.openai_server import OpenAITestServer, RecordedRequest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval"
PING = "Reply with OK."  # the endpoint check's one-token request, sent once before every agent run


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "bench"
    shutil.copytree(FIXTURES, root)
    db = root / "bird" / "dev_databases" / "shop" / "shop.sqlite"
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as con:
        con.executescript((root / "bird" / "shop.sql").read_text())
    return root


def scripted(turns: dict[str, tuple[str, str]]):
    """A responder: for the question containing KEY, first the code turn, then the answer turn
    ({obs} in the answer is the last line the code printed)."""

    def respond(req: RecordedRequest) -> str:
        question = next(m["content"] for m in req.messages if m["role"] == "user")
        if question == PING:
            return "OK"
        code, answer = next(v for key, v in turns.items() if key in question)
        if not any(m["role"] == "assistant" for m in req.messages):
            return f"<think>look at the data</think>\n<code>\n```python\n{code}\n```\n</code>"
        observation = req.messages[-1]["content"]
        assert observation.startswith("<interpreter>"), observation
        printed = [ln for ln in observation.splitlines() if ln.strip() and "interpreter>" not in ln][-1]
        return f"<think>the output answers it</think>\n<answer>{answer.format(obs=printed.strip())}</answer>"

    return respond


def read_results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_dabench_agent_run_k2_resume_and_outputs(data, tmp_path, capsys):
    turns = {
        "mean number of units": ("import pandas as pd\nprint(round(pd.read_csv('shop_sales.csv').units.mean(), 2))",
                                 "@mean_units[10.00]"),
        "highest price": ("import pandas as pd\nd = pd.read_csv('shop_sales.csv')\nprint(d.price.max())",
                          "@max_price[6.0] @top_region[south]"),  # one of two sub-answers wrong
        "rainfall correlated": ("print('no idea')", "@correlation[0.5] @mean_rain[1] @wettest_month[may]"),
    }
    out = tmp_path / "out"
    argv = ["eval", "dabench", "--data", str(data / "dabench"), "--model", "test-model", "--base-url", "", "--k", "2",
            "--out", str(out), "--no-progress", "--concurrency", "4"]
    with OpenAITestServer(respond=scripted(turns)) as srv:
        argv[argv.index("--base-url") + 1] = srv.base_url
        assert main(argv) == 0
        first_requests = srv.request_count
        assert first_requests == 1 + 3 * 2 * 2  # the check, then 3 questions x 2 runs x (code + answer turn)
        assert srv.requests[0].last_user_text == PING and srv.requests[0].body["max_tokens"] == 1
        body = srv.requests[1].body
        assert body["temperature"] == 0.7 and body["top_p"] == 0.95 and "</code>" in body["stop"]
        assert body["messages"][0]["role"] == "system" and "shop_sales.csv" in body["messages"][0]["content"]
        # rerun: everything is done, nothing is asked again (but the check), no duplicate lines
        assert main(argv) == 0
        assert srv.request_count == first_requests + 1
    rows = read_results(out)
    assert len(rows) == 6 and len({(r["item_id"], r["run"]) for r in rows}) == 6
    by_item = {r["item_id"]: r for r in rows if r["run"] == 0}
    assert by_item["1"]["scores"]["official"]["correct"] is True and by_item["1"]["turns"] == 2
    assert by_item["2"]["scores"]["official"]["detail"]["sub_fraction"] == 0.5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["k"] == 2 and summary["run"]["mode"] == "agent"
    assert summary["overall"]["official"]["pass@1"] == pytest.approx(1 / 3)
    assert summary["overall"]["official"]["pass@k"] == pytest.approx(1 / 3)
    assert summary["categories"]["level"]["easy"]["official"]["pass@1"] == 1.0
    md = (out / "summary.md").read_text()
    assert "| official | dabench-official" in md and "## by level" in md and "pass@2" in md
    assert (out / "dabench_pass_at_1.png").read_bytes()[:4] == b"\x89PNG"
    responses = [json.loads(x) for x in (out / "responses.jsonl").read_text().splitlines()]
    assert "<interpreter>" in responses[0]["trajectory"][3]["content"]  # real interpreter output
    assert "10.0" in next(r for r in responses if r["item_id"] == "1")["trajectory"][3]["content"]
    assert "pass@1 33.33" in capsys.readouterr().out

    # resume after a crash: drop one result line and one response line, rerun asks only for that unit
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:10])  # torn last line
    lost = json.loads(lines[-1])
    kept = [x for x in (out / "responses.jsonl").read_text().splitlines()
            if (json.loads(x)["item_id"], json.loads(x)["run"]) != (lost["item_id"], lost["run"])]
    (out / "responses.jsonl").write_text("\n".join(kept) + "\n")
    with OpenAITestServer(respond=scripted(turns)) as srv:
        argv[argv.index("--base-url") + 1] = srv.base_url
        assert main(argv) == 0
        assert srv.request_count == 1 + 2
    assert len(read_results(out)) == 6


def test_tablebench_and_bird_agent_runs(data, tmp_path):
    tb_turns = {
        "total number of wins": (
            "import pandas as pd\nd = pd.read_csv('table.csv')\nprint(d[(d.year >= 2020) & (d.year <= 2022)].wins.sum())",
            "{obs}",
        ),
        "more than 10 games": ("print('Owls, Lynx')", "Owls, Lynx"),
        "correlation between wins": ("print(1)", "Negative correlation, -1.00"),
        "How many more wins": ("print(1)", "5"),
    }
    out = tmp_path / "tb"
    with OpenAITestServer(respond=scripted(tb_turns)) as srv:
        assert main(["eval", "tablebench", "--data", str(data / "tablebench"), "--model", "test-model", "--base-url",
                     srv.base_url, "--k", "1", "--out", str(out), "--no-progress"]) == 0
    rows = {r["item_id"]: r for r in read_results(out)}
    # the table reached the interpreter as table.csv: the observation (35) became the answer
    assert rows["tb-num-1"]["scores"]["paper"]["correct"] is True
    assert rows["tb-num-2"]["scores"]["paper"]["correct"] is False
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["paper"]["pass@1"] == 0.75
    assert any("TrendForecasting" in n for n in summary["notes"])

    bird_turns = {
        "How many customers live in Avon": (
            "execute_sql(sql=\"SELECT COUNT(*) AS n FROM customers WHERE city = 'Avon'\", output_path='result.csv')",
            "The result is saved in the CSV file named 'result.csv'."),
        "total order amount in 2024": (
            "execute_sql(sql=\"SELECT name FROM customers\", output_path='result.csv')",
            "The result is saved in the CSV file named 'result.csv'."),
        "average order amount": ("get_db_info()", "I do not know"),
    }
    out = tmp_path / "bird"
    with OpenAITestServer(respond=scripted(bird_turns)) as srv:
        assert main(["eval", "bird", "--data", str(data / "bird"), "--model", "test-model", "--base-url", srv.base_url,
                     "--k", "1", "--out", str(out), "--no-progress"]) == 0
        assert "execute_sql" in srv.requests[1].body["messages"][0]["content"]  # the database prompt
    rows = {r["item_id"]: r for r in read_results(out)}
    assert rows["0"]["scores"]["paper"]["correct"] is True and rows["0"]["scores"]["official"]["correct"] is True
    assert rows["1"]["scores"]["paper"]["correct"] is False
    assert rows["2"]["scores"]["official"]["reason"] == "no SQL to execute"
    assert (out / "work" / "bird_gold" / "1.csv").is_file()


def test_qrdata_agent_run_and_responses_mode(data, tmp_path):
    turns = {
        "treatment group improved": (
            "import pandas as pd\nd = pd.read_csv('trial.csv')\nprint((d[d.group == 'treatment'].outcome == 'improved').mean())",
            "{obs}",
        ),
        "higher improvement rate": ("print(1)", "treatment group"),
        "variance in sales": ("print(1)", "42"),
    }
    out = tmp_path / "agent"
    with OpenAITestServer(respond=scripted(turns)) as srv:
        assert main(["eval", "qrdata", "--data", str(data / "qrdata"), "--model", "test-model", "--base-url", srv.base_url,
                     "--k", "1", "--out", str(out), "--no-progress"]) == 0
    rows = {r["item_id"]: r for r in read_results(out)}
    assert rows["0"]["scores"]["official"]["correct"] is True  # "0.75" came from the real interpreter
    assert rows["2"]["scores"]["official"]["correct"] is False

    # the same scorers on responses written by another harness (QRData's own format: a JSON list with "pred")
    responses = tmp_path / "other_harness.json"
    responses.write_text(json.dumps([{"id": 0, "pred": "0.75"}, {"id": 1, "pred": "Treatment group."},
                                     {"id": 2, "pred": "about 99.5%"}]))
    out2 = tmp_path / "scored"
    assert main(["eval", "qrdata", "--data", str(data / "qrdata"), "--responses", str(responses), "--out", str(out2),
                 "--no-progress"]) == 0
    summary = json.loads((out2 / "summary.json").read_text())
    assert summary["overall"]["official"]["pass@1"] == 1.0 and summary["run"]["mode"] == "responses"


def test_discoverybench_with_llm_judge(data, tmp_path):
    def judge(req: RecordedRequest) -> str:
        candidate = req.last_user_text.split("<candidate>")[1]
        return "Both say the same.\n<verdict>correct</verdict>" if "lower asthma" in candidate else \
            "Different.\n<verdict>incorrect</verdict>"

    responses = tmp_path / "r.jsonl"
    responses.write_text(
        json.dumps({"id": "city_parks/0/0", "response": "<answer>More park area goes with lower asthma rates.</answer>"})
        + "\n" + json.dumps({"id": "city_parks/0/1", "response": "<answer>Avon</answer>"}) + "\n"
    )
    out = tmp_path / "out"
    argv = ["eval", "discoverybench", "--data", str(data / "discoverybench"), "--responses", str(responses),
            "--out", str(out), "--no-progress"]
    assert main(argv) == 2  # no judge configured: a one-line user error
    with OpenAITestServer(respond=judge) as srv:
        assert main([*argv, "--judge-model", "judge-m", "--judge-base-url", srv.base_url]) == 0
        assert srv.request_count == 2
    rows = {r["item_id"]: r for r in read_results(out)}
    assert rows["city_parks/0/0"]["scores"]["judge"]["correct"] is True
    assert rows["city_parks/0/1"]["scores"]["judge"]["correct"] is False
    assert rows["city_parks/0/0"]["scores"]["judge"]["judge"].startswith("judge-m @ http://127.0.0.1")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["judge"]["pass@1"] == 0.5 and summary["judges"]


def test_judge_unreachable_fails_the_unit_and_rerun_retries(data, tmp_path):
    responses = tmp_path / "r.jsonl"
    responses.write_text(json.dumps({"id": 1, "response": "<answer>@mean_units[10.00]</answer>"}) + "\n")
    out = tmp_path / "out"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("judge:\n  max_retries: 0\n  timeout_s: 5\n")
    argv = ["eval", "dabench", "--data", str(data / "dabench"), "--responses", str(responses), "--out", str(out),
            "--no-progress", "--config", str(cfg), "--judge-model", "j"]
    with OpenAITestServer(respond=["<verdict>correct</verdict>"], errors=[503]) as srv:
        assert main([*argv, "--judge-base-url", srv.base_url]) == 1  # a failed unit: non-zero exit
        row = read_results(out)[0]
        assert row["error"].startswith("scoring failed: JudgeUnreachable") and row["scores"] == {}
        assert main([*argv, "--judge-base-url", srv.base_url]) == 0  # the rerun retries the failed unit
    row = read_results(out)[0]
    assert row["error"] is None and row["scores"]["paper"]["scorer"] == "paper-protocol: LLM judge"
    assert row["scores"]["official"]["correct"] is True


def test_cli_user_errors_are_one_line(data, tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main(["eval", "dabench", "--data", str(data / "dabench"), "--out", out]) == 2
    assert "either --responses FILE" in capsys.readouterr().err
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"id": 99, "response": "x"}\n')
    assert main(["eval", "dabench", "--data", str(data / "dabench"), "--responses", str(bad), "--out", out]) == 2
    assert "r.jsonl:1: id '99' is not a question of this benchmark" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("k: 3\nturns: 5\n")
    assert main(["eval", "dabench", "--data", str(data / "dabench"), "--responses", str(bad), "--out", out,
                 "--config", str(cfg)]) == 2
    assert "unknown key 'turns'" in capsys.readouterr().err


def test_report_combines_runs(data, tmp_path):
    outs = []
    for bench, answers in (("dabench", {1: "@mean_units[10.00]", 2: "@max_price[1]"}),
                           ("qrdata", {0: "0.75", 1: "control group"})):
        f = tmp_path / f"{bench}.jsonl"
        f.write_text("".join(json.dumps({"id": i, "response": a}) + "\n" for i, a in answers.items()))
        outs.append(str(tmp_path / bench))
        assert main(["eval", bench, "--data", str(data / bench), "--responses", str(f), "--out", outs[-1],
                     "--no-progress"]) == 0
    assert main(["eval", "report", "--runs", *outs, "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    # over all items of each benchmark (3 each, one missing from DABench's file): 1 of 3 right
    assert "| dabench (dabench.jsonl) | dabench | paper | 33.33 | (k = 1) | 1 | 3 | 66.67 |" in md
    assert "| qrdata (qrdata.jsonl) | qrdata | paper | 33.33 |" in md
    assert "| **average over 2 benchmarks** | | | 33.33" in md
    assert (tmp_path / "report" / "benchmarks_pass_at_1.png").stat().st_size > 1000
    # two runs of one benchmark are named apart and never averaged together
    f = tmp_path / "better.jsonl"
    f.write_text(json.dumps({"id": 2, "response": "@max_price[6.0] @top_region[north]"}) + "\n")
    assert main(["eval", "dabench", "--data", str(data / "dabench"), "--responses", str(f), "--out",
                 str(tmp_path / "dabench2"), "--no-progress"]) == 0
    assert main(["eval", "report", "--runs", outs[0], str(tmp_path / "dabench2"), "--out", str(tmp_path / "r2")]) == 0
    md = (tmp_path / "r2" / "report.md").read_text()
    assert "| dabench (dabench.jsonl) |" in md and "| dabench2 (better.jsonl) |" in md and "average" not in md
    assert main(["eval", "report", "--runs", outs[0], "--out", str(f)]) == 2  # --out is a file


def test_judge_fallback_rule_is_labelled(data, tmp_path):
    responses = tmp_path / "r.jsonl"
    responses.write_text(json.dumps({"id": 1, "response": "<answer>@mean_units[10.00]</answer>"}) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("judge:\n  max_retries: 0\n  on_unreachable: fallback_rule\n")
    out = tmp_path / "out"
    with OpenAITestServer(respond=["I will not give a verdict"]) as srv:
        assert main(["eval", "dabench", "--data", str(data / "dabench"), "--responses", str(responses), "--out",
                     str(out), "--no-progress", "--config", str(cfg), "--judge-model", "j", "--judge-base-url",
                     srv.base_url]) == 0
    paper = read_results(out)[0]["scores"]["paper"]
    assert paper["correct"] is True and paper["scorer"].endswith("(judge gave no verdict)")
    assert paper["judge"].startswith("j @ ") and "unparsed" in paper["reason"]


@pytest.mark.slow
def test_agent_run_against_a_real_model_server(data, tmp_path, tiny_model_path):
    """The whole path against a model (the tiny random Qwen2 on the project's CPU OpenAI server, as
    a stand-in for ``vllm serve``): its turns are noise, so every episode ends without an answer and
    scores 0 — but every unit runs, is recorded, and nothing fails."""
    from datamind_ext.generation import HFGenerationEngine
    from datamind_ext.generation.server import BackgroundServer

    cfg = tmp_path / "c.yaml"
    cfg.write_text("budgets:\n  max_turns: 2\n  max_tokens_per_turn: 24\n")
    out = tmp_path / "out"
    engine = HFGenerationEngine(tiny_model_path, max_batch_size=8)
    try:
        with BackgroundServer(engine) as srv:
            assert main(["eval", "dabench", "--data", str(data / "dabench"), "--model", Path(tiny_model_path).name, "--base-url",
                         srv.base_url, "--k", "1", "--out", str(out), "--no-progress", "--config", str(cfg)]) == 0
    finally:
        engine.close()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == 0 and summary["results"] == 3
    assert summary["overall"]["official"]["pass@1"] == 0.0
    responses = [json.loads(x) for x in (out / "responses.jsonl").read_text().splitlines()]
    assert all(r["trajectory"][0]["role"] == "system" and len(r["trajectory"]) >= 3 for r in responses)


def test_responses_rescored_when_changed_and_runs_not_mixed(data, tmp_path, capsys):
    responses = tmp_path / "r.jsonl"
    responses.write_text(json.dumps({"id": 1, "response": "@mean_units[3]"}) + "\n")
    out = tmp_path / "out"
    argv = ["eval", "dabench", "--data", str(data / "dabench"), "--responses", str(responses), "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    assert read_results(out)[0]["scores"]["official"]["correct"] is False
    responses.write_text(json.dumps({"id": 1, "response": "@mean_units[10.00]"}) + "\n")  # fixed answer
    assert main(argv) == 0
    rows = read_results(out)
    assert len(rows) == 1 and rows[0]["scores"]["official"]["correct"] is True
    other = tmp_path / "other.jsonl"
    other.write_text(responses.read_text())
    assert main(["eval", "dabench", "--data", str(data / "dabench"), "--responses", str(other), "--out", str(out)]) == 2
    assert "holds another run (responses" in capsys.readouterr().err
