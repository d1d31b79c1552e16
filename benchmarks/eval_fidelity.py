"""Do our "official" columns equal each benchmark's own evaluation code? Per item, on the same predictions.

    python benchmarks/eval_fidelity.py --tablebench DIR --infiagent DIR --qrdata DIR --bird DIR [--deps DIR]

Each DIR is a benchmark's public repository (a checkout, or a bare mirror such as
/work/.mirror/OWNER+NAME/repo, which is extracted with ``git archive`` into a temporary folder):
TableBench/TableBench, InfiAgent/InfiAgent, xxxiaol/QRData, and AlibabaResearch/DAMO-ConvAI
(BIRD's ``bird/llm/src/evaluation.py``). Their code runs unchanged, imported from there; the
few third-party packages it imports are taken from ``--deps`` (``pip install --target DIR
rouge_score==0.1.2 func-timeout==4.3.5``) and the ones that only fetch things from the network
are replaced by local equivalents (``evaluate.load('rouge')`` -> ``rouge_score``, TableBench's
unused ``datasets.load_metric``, ``wrapt_timeout_decorator``), listed in the output.

Predictions: TableBench's released inference results (the only released prediction file any of
these repositories ship), and for every benchmark prediction files made here from the gold
answers with right, wrong and borderline variants (formatting, tolerance edges, prefixes,
case, column and row order, errors). Our side reads each file with ``datamind-ext eval``'s
responses reader (so the gold-holding ``answer`` field of released files is in play) and scores
with the benchmark's ``official`` scorer. Printed: per benchmark and prediction set, items
compared and agreement, beside a baseline measured in the same run -- a naive scorer
(case-insensitive equality after stripping "Final Answer:") -- to show the sets discriminate.
No benchmark file is copied into this repository; everything is written under a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import runpy
import sqlite3
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datamind_ext.evaluation.benchmark import ScoringContext, get_benchmark
from datamind_ext.evaluation.responses import read_responses

SUBSTITUTED: list[str] = []


def checkout(repo: Path, tmp: Path, name: str, *paths: str) -> Path:
    """A work tree of ``repo``: itself if it is one, else ``git archive HEAD [paths]`` extracted under ``tmp``."""
    if not (repo / "HEAD").is_file() or (repo / ".git").exists():
        return repo
    out = tmp / name
    out.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", "HEAD", *paths], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def _forget_modules(*names: str) -> None:
    """Drop already imported top-level packages of these names (two benchmarks' repos both have one)."""
    for key in [k for k in sys.modules if k.split(".")[0] in names]:
        del sys.modules[key]


def naive(pred: str, gold: str) -> bool:
    p = pred.strip()
    if p.lower().startswith("final answer:"):
        p = p[len("final answer:"):]
    return p.strip().lower() == gold.strip().lower()


def score_ours(bench_name: str, data_dir: Path, responses_path: Path, work: Path) -> dict[str, float]:
    """Our official value per item id, reading the responses file as ``datamind-ext eval`` does."""
    bench = get_benchmark(bench_name)
    items = {it.item_id: it for it in bench.load(data_dir, need_files=False)}
    responses = read_responses(responses_path, set(items), dropped_ids=bench.dropped_ids, skipped=[])
    ctx = ScoringContext(work_dir=work)
    work.mkdir(parents=True, exist_ok=True)

    async def go() -> dict[str, float]:
        from datamind_ext.evaluation.runner import void_scores

        out = {}
        for r in responses:
            scores = void_scores(bench, r.void_reason) if r.void_reason else await bench.score(items[r.item_id], r, ctx)
            out[r.item_id] = scores["official"].value
        return out

    return asyncio.run(go())


def report(bench: str, label: str, theirs: dict[str, float], ours: dict[str, float], base: dict[str, float],
           tol: float = 1e-9) -> tuple[int, int]:
    ids = sorted(set(theirs) & set(ours))
    agree = [i for i in ids if abs(theirs[i] - ours[i]) <= tol]
    base_agree = [i for i in ids if abs(theirs[i] - base.get(i, 0.0)) <= tol]
    print(f"{bench:11} {label:34} items {len(ids):4}  agree {len(agree):4} ({100 * len(agree) / max(len(ids), 1):6.2f} %)"
          f"  naive baseline {100 * len(base_agree) / max(len(ids), 1):6.2f} %"
          f"  official mean {100 * sum(theirs[i] for i in ids) / max(len(ids), 1):6.2f}")
    for i in [i for i in ids if i not in agree][:3]:
        print(f"    disagree {i}: theirs {theirs[i]:.4f} ours {ours[i]:.4f}")
    return len(agree), len(ids)


# ---------------------------------------------------------------- TableBench
def _tablebench_stubs(deps: Path | None) -> None:
    """Replace the network-only imports of TableBench's metric code (see the module docstring)."""
    from rouge_score import (
        rouge_scorer,  # from --deps: the package evaluate's 'rouge' wraps
    )

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

    class _Rouge:
        def compute(self, references: list[str], predictions: list[str]) -> dict[str, float]:
            # evaluate's rouge: mean F over pairs (bootstrap "mid"; exact for the one pair asked here)
            f = [scorer.score(r, p)["rougeL"].fmeasure for r, p in zip(references, predictions, strict=True)]
            return {"rougeL": sum(f) / len(f)}

    evaluate = types.ModuleType("evaluate")
    evaluate.load = lambda name: _Rouge()  # type: ignore[attr-defined]
    datasets = types.ModuleType("datasets")
    datasets.load_metric = datasets.list_metrics = lambda *a, **k: None  # type: ignore[attr-defined]
    wrapt = types.ModuleType("wrapt_timeout_decorator")
    wrapt.timeout = lambda *a, **k: (lambda f: f)  # type: ignore[attr-defined]
    sys.modules.update(evaluate=evaluate, datasets=datasets, wrapt_timeout_decorator=wrapt)
    SUBSTITUTED.extend(["evaluate.load('rouge') -> rouge_score.RougeScorer(['rougeL'])",
                        "datasets.load_metric/list_metrics (unused) -> None", "wrapt_timeout_decorator.timeout -> no-op"])


def _tablebench_metric(qtype: str, qsubtype: str) -> str:
    """The metric eval_tablebench_script.py's eval_by_type uses for a question type."""
    if qtype in ("FactChecking", "NumericalReasoning") or qsubtype == "ImpactAnalysis":
        return "EM"
    if qsubtype in ("CorrelationAnalysis", "TrendForecasting", "StatisticalAnalysis"):
        return "EM_with_error_10"
    return "ROUGE-L"


def _variants_text(answer: str) -> dict[str, str]:
    """Right, wrong and borderline renderings of a gold answer, as raw model outputs."""
    out = {"gold": f"Final Answer: {answer}", "no prefix": answer, "lower prefix": f"final answer: {answer}",
           "upper case": f"Final Answer: {answer.upper()}", "trailing period": f"Final Answer: {answer}.",
           "two answers, first counts": f"Final Answer: {answer}\nFinal Answer: wrong",
           "wrong": "Final Answer: zzz", "empty": ""}
    try:
        x = float(answer.rstrip("%"))
        pct = "%" if answer.endswith("%") else ""
        out.update({"x1.05": f"Final Answer: {x * 1.05:.4g}{pct}", "x1.12": f"Final Answer: {x * 1.12:.4g}{pct}",
                    ".0 appended": f"Final Answer: {answer.rstrip('%')}.0{pct}",
                    "percent sign": f"Final Answer: {answer.rstrip('%')}%",
                    "thousands comma": f"Final Answer: {x * 1000:,.0f}"})
    except ValueError:
        pass
    return out


def run_tablebench(repo: Path, tmp: Path, deps: Path | None) -> list[tuple[int, int]]:
    _tablebench_stubs(deps)
    _forget_modules("utils", "metrics")  # DABench's code has its own top-level 'utils'
    sys.path.insert(0, str(repo))
    from metrics.qa_metrics import QAMetric  # TableBench's own code
    from parse_tablebench_instruction_response_script import parse_dp_prediction

    engine = QAMetric()
    released = next((repo / "eval_examples" / "inference_results").glob("*.jsonl"))
    rows = [json.loads(x) for x in released.read_text(encoding="utf-8").splitlines() if x.strip()]
    data = tmp / "tablebench_data"
    data.mkdir()
    (data / "TableBench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    kept = [r for r in rows if r["qsubtype"] not in ("TrendForecasting", "ChartGeneration")
            and r["qtype"] != "Visualization"]

    def theirs(preds: dict[str, str]) -> dict[str, float]:
        out = {}
        for r in kept:
            if r["id"] in preds:
                m = engine.compute(references=[r["answer"]], predictions=[parse_dp_prediction(preds[r["id"]])])
                out[r["id"]] = m[_tablebench_metric(r["qtype"], r["qsubtype"])] / 100
        return out

    results = []
    sets: dict[str, dict[str, str]] = {"released o3-mini DP predictions": {r["id"]: r["prediction"] for r in rows}}
    names = sorted({k for r in kept for k in _variants_text(r["answer"])})
    for name in names:
        sets[f"made: {name}"] = {r["id"]: v for r in kept if (v := _variants_text(r["answer"]).get(name)) is not None}
    for label, preds in sets.items():
        path = tmp / f"tb_{len(results)}.jsonl"
        # the released file's own layout (gold in 'answer', output in 'prediction') for every set
        by_id = {r["id"]: r for r in rows}
        path.write_text("".join(json.dumps({**by_id[i], "prediction": p}) + "\n" for i, p in preds.items()))
        ours = score_ours("tablebench", data, path, tmp / f"tb_work_{len(results)}")
        base = {r["id"]: float(naive(preds[r["id"]], r["answer"])) for r in kept if r["id"] in preds}
        results.append(report("tablebench", label, theirs(preds), ours, base, tol=0.00005 + 1e-9))
        if label.startswith("released"):
            _tablebench_categories(repo, kept, ours)
    return results


def _tablebench_categories(repo: Path, kept: list[dict], ours: dict[str, float]) -> None:
    """Our per-subtype means on the released file beside TableBench's published numbers for it."""
    published = json.loads((repo / "eval_examples" / "evaluation_results" / "llm_eval_subtype_results.json")
                           .read_text(encoding="utf-8"))
    (method,) = published
    same = total = 0
    for key, figures in published[method].items():
        qtype, qsubtype = key.split("_", 1)
        ids = [r["id"] for r in kept if r["qtype"] == qtype and r["qsubtype"] == qsubtype]
        if not ids:
            continue
        metric = _tablebench_metric(qtype, qsubtype)
        mine = round(100 * sum(ours[i] for i in ids) / len(ids), 2)
        total += 1
        same += abs(mine - figures[metric]) < 0.006
        if abs(mine - figures[metric]) >= 0.006:
            print(f"    published {key} {metric} {figures[metric]} ours {mine}")
    print(f"tablebench  published per-subtype figures reproduced: {same} of {total}")


# ---------------------------------------------------------------- DABench
def _dabench_variants(pairs: list[list[str]]) -> dict[str, str]:
    def fmt(f: Callable[[str, str], str]) -> str:
        return " ".join(f"@{n}[{f(n, v)}]" for n, v in pairs)

    def shift(v: str, d: float) -> str:
        try:
            return repr(float(v) + d)
        except ValueError:
            return v

    out = {"gold": fmt(lambda n, v: v), "gold in prose": "The answer is " + fmt(lambda n, v: v) + ".",
           "+1e-7": fmt(lambda n, v: shift(v, 1e-7)), "+1e-5": fmt(lambda n, v: shift(v, 1e-5)),
           "spaces in brackets": fmt(lambda n, v: f" {v} "), "upper case": fmt(lambda n, v: v.upper()),
           "last sub-answer missing": " ".join(f"@{n}[{v}]" for n, v in pairs[:-1]),
           "repeated name, last wrong": fmt(lambda n, v: v) + f" @{pairs[0][0]}[wrong]",
           "wrong": fmt(lambda n, v: "wrong"), "bare value": pairs[0][1]}
    return out


def run_dabench(repo: Path, tmp: Path) -> list[tuple[int, int]]:
    agent = repo / "examples" / "DA-Agent"
    sys.path.insert(0, str(agent))
    eval_closed_form = runpy.run_path(str(agent / "eval_closed_form.py"), run_name="eval_closed_form")
    labels = [json.loads(x) for x in (agent / "data" / "da-dev-labels.jsonl").read_text().splitlines() if x.strip()]
    results = []
    for name in _dabench_variants(labels[0]["common_answers"]):
        responses = [{"id": lab["id"], "response": _dabench_variants(lab["common_answers"])[name]} for lab in labels]
        verdicts = eval_closed_form["evaluate_responses"](labels, responses)
        theirs = {str(v["id"]): float(all(v["correctness"].values())) for v in verdicts}
        path = tmp / f"da_{len(results)}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in responses))
        ours = score_ours("dabench", agent / "data", path, tmp / f"da_work_{len(results)}")
        gold = {str(lab["id"]): " ".join(f"@{n}[{v}]" for n, v in lab["common_answers"]) for lab in labels}
        base = {str(r["id"]): float(naive(r["response"], gold[str(r["id"])])) for r in responses}
        results.append(report("dabench", f"made: {name}", theirs, ours, base))
    return results


# ---------------------------------------------------------------- QRData
def _qrdata_variants(answer: str, qtype: str) -> dict[str, str]:
    out = {"gold": answer, "Final Answer: prefix": f"Final Answer: {answer}", "leading space": f" {answer}",
           "upper case": answer.upper(), "gold then prose": f"{answer}, because of the data", "wrong": "zzz"}
    if qtype == "numerical":
        x = float(answer.rstrip("%")) / (100 if answer.endswith("%") else 1)
        out.update({"x1.029": f"{x * 1.029:.6g}", "x1.031": f"{x * 1.031:.6g}", "x0.97 exactly": repr(x * 0.97),
                    "as percent": f"{x * 100:.6g}%", "number in prose": f"about {answer} overall"})
    return out


def run_qrdata(repo: Path, tmp: Path) -> list[tuple[int, int]]:
    rows = json.loads((repo / "benchmark" / "QRData.json").read_text(encoding="utf-8"))
    eval_py = repo / "benchmark" / "eval.py"
    work = tmp / "qrdata_cwd"
    work.mkdir()

    def theirs_one(row: dict, pred: str) -> float:
        (work / "tmp.json").write_text(json.dumps([{**row, "pred": pred}]))
        buf = io.StringIO()
        with contextlib.chdir(work), contextlib.redirect_stdout(buf):
            runpy.run_path(str(eval_py), run_name="__main__")  # eval.py unchanged: reads tmp.json, prints
        return float(buf.getvalue().strip())

    results = []
    names = list(_qrdata_variants("1", "numerical"))
    for name in names:
        preds = {str(i): v for i, r in enumerate(rows)
                 if (v := _qrdata_variants(str(r["answer"]), r["meta_data"]["question_type"]).get(name)) is not None}
        theirs = {i: theirs_one(rows[int(i)], p) for i, p in preds.items()}
        path = tmp / f"qr_{len(results)}.json"
        path.write_text(json.dumps([{"id": int(i), "pred": p} for i, p in preds.items()]))
        ours = score_ours("qrdata", repo / "benchmark", path, tmp / f"qr_work_{len(results)}")
        base = {i: float(naive(p, str(rows[int(i)]["answer"]))) for i, p in preds.items()}
        results.append(report("qrdata", f"made: {name}", theirs, ours, base))
    return results


# ---------------------------------------------------------------- BIRD
BIRD_DB = """
CREATE TABLE city (id INTEGER PRIMARY KEY, name TEXT, country TEXT, population INTEGER, area REAL);
INSERT INTO city VALUES (1,'Avon','UK',120000,31.5),(2,'Bree','UK',80000,12.25),(3,'Cole','FR',80000,40.0),
 (4,'Dale','FR',310000,88.0),(5,'Eton','DE',NULL,5.5),(6,'Fife','DE',45000,19.75);
CREATE TABLE trip (id INTEGER PRIMARY KEY, city_id INTEGER, year INTEGER, cost REAL);
INSERT INTO trip VALUES (1,1,2023,100.0),(2,1,2024,250.5),(3,2,2024,80.0),(4,4,2023,80.0),(5,4,2024,410.0),
 (6,6,2024,33.3),(7,3,2022,12.0);
"""
BIRD_GOLD = [
    ("SELECT name FROM city WHERE country = 'UK'", "simple"),
    ("SELECT country, COUNT(*) FROM city GROUP BY country", "simple"),
    ("SELECT c.name, SUM(t.cost) FROM city c JOIN trip t ON t.city_id = c.id GROUP BY c.name", "moderate"),
    ("SELECT AVG(population) FROM city", "moderate"),
    ("SELECT name FROM city WHERE population IS NULL", "simple"),
    ("SELECT MAX(cost) FROM trip WHERE year = 2024", "challenging"),
]


def _bird_variants(gold: str) -> dict[str, str | None]:
    return {"gold": gold, "rows reordered": f"SELECT * FROM ({gold}) ORDER BY 1 DESC",
            "duplicated rows": f"SELECT * FROM ({gold}) UNION ALL SELECT * FROM ({gold})",
            "columns reordered": gold.replace("SELECT c.name, SUM(t.cost)", "SELECT SUM(t.cost), c.name")
            .replace("SELECT country, COUNT(*)", "SELECT COUNT(*), country"),
            "lower-cased text": f"SELECT * FROM ({gold.replace('name', 'lower(name)', 1)})",
            "integer as float": gold.replace("COUNT(*)", "CAST(COUNT(*) AS REAL)"),
            "syntax error": "SELEC name FROM city", "two statements": f"{gold}; SELECT 1",
            "wrong filter": gold.replace("'UK'", "'FR'").replace("2024", "2023"), "no prediction (null)": None}


def run_bird(repo: Path, tmp: Path) -> list[tuple[int, int]]:
    evaluation = runpy.run_path(str(repo / "bird" / "llm" / "src" / "evaluation.py"), run_name="bird_evaluation")
    data = tmp / "bird"
    (data / "dev_databases" / "trips").mkdir(parents=True)
    db = data / "dev_databases" / "trips" / "trips.sqlite"
    with sqlite3.connect(db) as con:
        con.executescript(BIRD_DB)
    dev = [{"question_id": i, "db_id": "trips", "question": f"q{i}", "evidence": "", "SQL": sql, "difficulty": d}
           for i, (sql, d) in enumerate(BIRD_GOLD)]
    (data / "dev.json").write_text(json.dumps(dev))
    results = []
    for name in _bird_variants(BIRD_GOLD[0][0]):
        preds = {str(i): _bird_variants(sql)[name] for i, (sql, _) in enumerate(BIRD_GOLD)}
        released = {i: (f"{p}\t----- bird -----\ttrips" if p is not None else None) for i, p in preds.items()}
        path = tmp / f"predict_dev_{len(results)}.json"
        path.write_text(json.dumps(released))
        theirs = {}
        for i, p in preds.items():
            # package_sqls' handling of a non-string entry: " " on the 'financial' database
            sql, path_db = (p, str(db)) if p is not None else (" ", str(data / "dev_databases/financial/financial.sqlite"))
            theirs[i] = float(evaluation["execute_model"](sql, BIRD_GOLD[int(i)][0], path_db, int(i), 30.0)["res"])
        ours = score_ours("bird", data, path, tmp / f"bird_work_{len(results)}")
        base = {i: float(p is not None and naive(p, BIRD_GOLD[int(i)][0])) for i, p in preds.items()}
        results.append(report("bird", f"made: {name}", theirs, ours, base))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tablebench", type=Path, help="TableBench/TableBench repository")
    p.add_argument("--infiagent", type=Path, help="InfiAgent/InfiAgent repository (DABench)")
    p.add_argument("--qrdata", type=Path, help="xxxiaol/QRData repository")
    p.add_argument("--bird", type=Path, help="AlibabaResearch/DAMO-ConvAI repository (bird/llm/src/evaluation.py)")
    p.add_argument("--deps", type=Path, help="folder of pip --target packages their code imports (rouge_score, "
                   "func_timeout)")
    a = p.parse_args(argv)
    if a.deps:
        sys.path.append(str(a.deps.resolve()))
    totals: list[tuple[int, int]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if a.infiagent:
            totals += run_dabench(checkout(a.infiagent, tmp, "infiagent", *(f"examples/DA-Agent/{f}" for f in (
                "eval_closed_form.py", "utils", "data/da-dev-labels.jsonl", "data/da-dev-questions.jsonl"))), tmp)
        if a.qrdata:
            totals += run_qrdata(checkout(a.qrdata, tmp, "qrdata", "benchmark/QRData.json", "benchmark/eval.py"), tmp)
        if a.bird:
            totals += run_bird(checkout(a.bird, tmp, "damo", "bird/llm/src/evaluation.py"), tmp)
        if a.tablebench:
            totals += run_tablebench(checkout(a.tablebench, tmp, "tablebench", "metrics", "utils", "eval_examples",
                                           "parse_tablebench_instruction_response_script.py"), tmp, a.deps)
    agree, n = sum(x for x, _ in totals), sum(y for _, y in totals)
    print(f"overall: {agree} of {n} item verdicts agree ({100 * agree / max(n, 1):.2f} %)")
    if SUBSTITUTED:
        print("substituted imports: " + "; ".join(SUBSTITUTED))
    return 0 if agree == n else 1


if __name__ == "__main__":
    sys.exit(main())
