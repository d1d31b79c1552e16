"""``datamind-ext eval contamination``: list every table and question a training set shares with a benchmark."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from datamind_ext.errors import UserError
from datamind_ext.evaluation.benchmark import get_benchmark
from datamind_ext.evaluation.contamination import find_overlap


def run_contamination_command(args: argparse.Namespace) -> int:
    if not (args.train and args.against and args.data):
        raise UserError("'eval contamination' needs --train SYNTH_OUT --bench BENCH --data DIR")
    if args.ngram < 3:
        raise UserError("--ngram must be at least 3 (shorter n-grams match ordinary phrasing)")
    train = get_benchmark("synth").load(Path(args.train).expanduser().resolve(), need_files=False)
    bench = get_benchmark(args.against).load(Path(args.data).expanduser().resolve(), need_files=False)
    overlap = find_overlap(train, bench, ngram=args.ngram)
    print(f"{len(train)} training tasks vs {args.against} ({len(bench)} questions): "
          f"{len(overlap.tables)} shared table(s), {len(overlap.questions)} question pair(s) sharing "
          f"a {args.ngram}-gram")
    for t in overlap.tables:
        print(f"table  {t['train']}  ==  {t['bench']}  (rows jaccard {t['row_jaccard']}, columns "
              f"{', '.join(t['columns'])})")
    for q in overlap.questions:
        print(f"question  {q['train']}  ~  {q['bench']}  ({q['shared_ngrams']} shared, e.g. \"{q['example']}\")")
    if args.out:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {args.out}: is a file; give a folder for contamination.json")
        out.mkdir(parents=True, exist_ok=True)
        (out / "contamination.json").write_text(json.dumps(
            {"train": str(args.train), "bench": args.against, "ngram": args.ngram,
             "tables": overlap.tables, "questions": overlap.questions}, indent=2) + "\n", encoding="utf-8")
        print(f"written {out / 'contamination.json'}")
    return 0
