"""``datamind-ext eval`` never fails silently: unusable endpoints are refused before starting (one
line, exit 2), failed units make the exit non-zero, a resumed run must use the same settings,
and the headline is over every item of the benchmark with coverage and answered/void rates beside it."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from datamind_ext.cli.main import main
from datamind_ext.testing.openai_server import OpenAITestServer

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval"


@pytest.fixture
def dabench(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES / "dabench", tmp_path / "dabench")
    return tmp_path / "dabench"


def _agent_argv(data: Path, out: Path, base_url: str, model: str = "test-model") -> list[str]:
    return ["eval", "dabench", "--data", str(data), "--model", model, "--base-url", base_url, "--k", "1",
            "--out", str(out), "--no-progress"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _OnlyUnderV1(BaseHTTPRequestHandler):
    """A server that, like vLLM, serves the OpenAI API under /v1 only."""

    def log_message(self, *args) -> None:
        return

    def do_GET(self) -> None:
        ok = self.path == "/v1/models"
        body = json.dumps({"data": [{"id": "test-model"}]} if ok else {"detail": "Not Found"}).encode()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_endpoint_is_checked_before_starting(dabench, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_agent_argv(dabench, out, f"http://127.0.0.1:{_closed_port()}/v1")) == 2
    err = capsys.readouterr().err
    assert "cannot reach the server" in err and len(err.strip().splitlines()) == 1
    assert not (out / "results.jsonl").exists()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _OnlyUnderV1)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        assert main(_agent_argv(dabench, out, base)) == 2
        assert f"try {base}/v1" in capsys.readouterr().err
    finally:
        httpd.shutdown()
        httpd.server_close()

    with OpenAITestServer(respond=["OK"]) as srv:
        assert main(_agent_argv(dabench, out, srv.base_url, model="no-such-model")) == 2
        err = capsys.readouterr().err
        assert "does not serve model 'no-such-model' (it serves: test-model)" in err
        assert srv.request_count == 0  # refused before any episode


def test_failed_units_exit_non_zero(dabench, tmp_path, capsys):
    # the check passes (first request), then every chat request of the episodes gets a 400
    with OpenAITestServer(respond=["OK"], errors=[None] + [400] * 50) as srv:
        assert main(_agent_argv(dabench, tmp_path / "out", srv.base_url)) == 1
    assert "unit(s) failed" in capsys.readouterr().out


def test_out_pointing_at_a_file_is_one_line(dabench, tmp_path, capsys):
    f = tmp_path / "taken.txt"
    f.write_text("x")
    r = tmp_path / "r.jsonl"
    r.write_text(json.dumps({"id": 1, "response": "@mean_units[10.00]"}) + "\n")
    assert main(["eval", "dabench", "--data", str(dabench), "--responses", str(r), "--out", str(f)]) == 2
    assert "is a file" in capsys.readouterr().err and f.read_text() == "x"


def test_resume_with_changed_settings_is_refused_and_restart_starts_over(dabench, tmp_path, capsys):
    r = tmp_path / "r.jsonl"
    r.write_text(json.dumps({"id": 1, "response": "@mean_units[10.00]"}) + "\n")
    out = tmp_path / "out"
    argv = ["eval", "dabench", "--data", str(dabench), "--responses", str(r), "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert json.loads((out / "run.json").read_text())["settings_sha"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sql_timeout_s: 5\n")
    assert main([*argv, "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "other settings (sql_timeout_s 60.0 -> 5.0)" in err and "--restart" in err
    (out / "keep.txt").write_text("mine")
    assert main([*argv, "--config", str(cfg), "--restart"]) == 0
    assert (out / "keep.txt").read_text() == "mine"
    assert json.loads((out / "run.json").read_text())["settings"]["sql_timeout_s"] == 5.0


def test_headline_is_over_all_items_with_coverage_and_void_rates(dabench, tmp_path, capsys):
    r = tmp_path / "r.jsonl"
    r.write_text(json.dumps({"id": 1, "response": "@mean_units[10.00]"}) + "\n"
                 + json.dumps({"id": 2, "response": None}) + "\n")
    out = tmp_path / "out"
    assert main(["eval", "dabench", "--data", str(dabench), "--responses", str(r), "--out", str(out),
                 "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())
    official = s["overall"]["official"]
    # 1 right of 3 items (item 2 has no prediction, item 3 is missing from the file)
    assert official["pass@1"] == pytest.approx(1 / 3) and official["pass@1_scored"] == 0.5
    assert official["coverage"] == pytest.approx(2 / 3)
    a = s["answers"]
    assert a["answered"] == 1 and a["void"] == 1 and a["missing"] == 1
    assert a["void_reasons"] == {"no prediction: field 'response' is null": 1}
    printed = capsys.readouterr().out
    assert "pass@1 33.33  coverage 66.67 %" in printed and "pass@1 33.33  pass@1" not in printed
    md = (out / "summary.md").read_text()
    assert "void (no answer): 1 of 3" in md and "1 × no prediction: field 'response' is null" in md
    assert "| scorer | how it scores | pass@1 | scored only | coverage | unscored |" in md  # k = 1: one pass column


def test_plot_reads_when_every_score_is_zero(tmp_path):
    from datamind_ext.evaluation.plots import plot_benchmark

    summary = {"title": "T", "k": 1, "graded_scorers": [], "items_in_benchmark": 4, "primary_scorer": "official",
               "overall": {"official": {"pass@1": 0.0, "items": 4, "coverage": 1.0}},
               "categories": {"level": {"easy": {"official": {"pass@1": 0.0, "items": 4}}}}}
    path = plot_benchmark(summary, tmp_path / "p.png")
    import matplotlib.image

    img = matplotlib.image.imread(path)
    assert img.shape[0] > 100 and img.std() > 0  # drawn, not blank


def test_key_value_overrides_change_the_run_settings_and_typos_are_named(dabench, tmp_path, capsys):
    r = tmp_path / "r.jsonl"
    r.write_text(json.dumps({"id": 1, "response": "@mean_units[10.00]"}) + "\n")
    out = tmp_path / "out"
    argv = ["eval", "dabench", "--data", str(dabench), "--responses", str(r), "--out", str(out), "--no-progress"]
    assert main([*argv, "sql_timeout_s=5"]) == 0
    assert json.loads((out / "run.json").read_text())["settings"]["sql_timeout_s"] == 5.0
    capsys.readouterr()
    assert main([*argv, "--restart", "sql_timeot_s=5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key 'sql_timeot_s'" in err
