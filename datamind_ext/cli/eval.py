"""``datamind-ext eval``: score a benchmark, from responses produced elsewhere or by running the agent.

    datamind-ext eval BENCH --data DIR --responses FILE --out DIR
    datamind-ext eval BENCH --data DIR --model NAME --base-url URL [--k 3] --out DIR [key=value ...]
    datamind-ext eval report --runs OUT_DIR [OUT_DIR ...] --out DIR
    datamind-ext eval contamination --train SYNTH_OUT --bench BENCH --data DIR [--out DIR]
"""

from __future__ import annotations

import argparse

BENCH_NAMES = ("dabench", "tablebench", "bird", "qrdata", "discoverybench", "synth")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate on DABench, TableBench, BIRD, QRData or DiscoveryBench",
        description="Score responses (--responses) or run the agent against an OpenAI-compatible server "
        "(--model/--base-url). Rerunning with the same --out continues where it stopped. "
        "'eval report --runs DIR...' combines finished runs into one table and plot.",
    )
    p.add_argument("bench", choices=[*BENCH_NAMES, "report", "contamination"],
                   help="benchmark, 'report' to combine runs, or 'contamination' to check a training set against one")
    p.add_argument("--data", help="folder holding the benchmark's official files (see eval/BENCH/README.md)")
    p.add_argument("--out", help="output folder (results.jsonl, summary.md/json, plot); required but for "
                   "'contamination', where it is optional (contamination.json)")
    p.add_argument("--train", help="with 'contamination': a synthesis output folder (export/rl/train.parquet)")
    p.add_argument("--bench", dest="against", choices=BENCH_NAMES, help="with 'contamination': the benchmark")
    p.add_argument("--ngram", type=int, default=8, help="with 'contamination': words per question n-gram")
    p.add_argument("--responses", help="JSONL/JSON file of responses to score (id, response|messages, run, sql)")
    p.add_argument("--field", help="with --responses: the key holding the model's answer (default: the one key "
                   "of the file's format: text, response, pred, prediction, messages or sql)")
    p.add_argument("--model", help="model name served at --base-url")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env var with the server's API key, if any")
    p.add_argument("--config", help="YAML run settings (default: eval/BENCH/config.yaml values built in)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="changes to the run settings, as for 'datamind-ext run', e.g. k=1 budgets.max_turns=8")
    p.add_argument("--k", type=int, help="runs per question (default from config: 3)")
    p.add_argument("--concurrency", type=int, help="episodes in flight at once")
    p.add_argument("--limit", type=int, help="only the first N questions (smoke runs)")
    p.add_argument("--judge-model", help="LLM judge model (DiscoveryBench needs one; others use it for 'paper')")
    p.add_argument("--judge-base-url", help="OpenAI-compatible endpoint of the judge")
    p.add_argument("--runs", nargs="+", help="with 'report': output folders of finished runs")
    p.add_argument("--restart", action="store_true",
                   help="start over: remove the previous run's results in --out (needed when settings changed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from datamind_ext.errors import UserError
    from datamind_ext.evaluation.cli_run import run_eval_command, run_report_command

    if args.bench == "contamination":
        from datamind_ext.evaluation.contamination_cli import run_contamination_command

        return run_contamination_command(args)
    if not args.out:
        raise UserError("--out DIR is required: the folder for results, summary and plot")
    if args.bench == "report":
        return run_report_command(args)
    return run_eval_command(args)
